"""The ``transformers`` chat backend: any local HF model directory or GGUF file.

CPU: fp32 with ``torch.set_num_threads``; CUDA: bf16 with ``device_map="auto"``
(accelerate); ``settings.llm_dtype`` overrides either. ``settings.llm_compile`` decodes
with a static KV cache and a ``torch.compile``d forward. Decoding is greedy, so answers
are deterministic for fixed weights.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from assistant.errors import GenerationError
from assistant.llm.base import Message
from assistant.llm.loading import load_model_and_tokenizer
from assistant.llm.structured import GrammarCache
from assistant.settings import Settings

log = logging.getLogger(__name__)


class TransformersBackend:
    """Local causal LM behind the :class:`~assistant.llm.base.ChatBackend` protocol.

    Args:
        settings: ``llm_model``, ``llm_gguf_file``, ``device``, ``num_threads``,
            ``max_new_tokens`` and ``data_dir`` (model cache) are used.

    Raises:
        ModelNotFoundError: the weights are missing.
    """

    name = "transformers"

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        (
            self.model, self.tokenizer, self.source, self.device, self.loaded_from
        ) = load_model_and_tokenizer(settings)
        self.model_id = self.source.model_id
        if settings.llm_compile:
            use_decode_gqa_attention(self.model)
        vocab = int(getattr(self.model.config, "vocab_size", len(self.tokenizer)))
        self.grammars = GrammarCache(self.tokenizer, vocab)
        # one generate() at a time per model: torch CPU kernels already use all threads
        self._lock = threading.Lock()

    # -- prompt ----------------------------------------------------------------------
    def encode(self, messages: Sequence[Message]) -> dict[str, Any]:
        """Apply the chat template; returns ``{"input_ids", "attention_mask"}`` tensors."""
        enc = self.tokenizer.apply_chat_template(
            list(messages), add_generation_prompt=True, return_tensors="pt", return_dict=True
        )
        return {k: v.to(self.model.device) for k, v in enc.items()}

    def _generate_ids(self, enc: dict[str, Any], max_new_tokens: int, **kwargs: Any) -> list[int]:
        import torch

        if self.settings.llm_compile:
            kwargs = {**self._compile_kwargs(), **kwargs}
        with self._lock, torch.inference_mode():
            out = self.model.generate(
                **enc,
                max_new_tokens=max_new_tokens,
                do_sample=False,
                pad_token_id=self.tokenizer.pad_token_id or self.tokenizer.eos_token_id,
                **kwargs,
            )
        return out[0][enc["input_ids"].shape[1]:].tolist()

    def _compile_kwargs(self) -> dict[str, Any]:
        """``generate`` arguments for a static KV cache and a compiled decode step.

        transformers compiles the forward pass automatically only on accelerators; the
        ``_compile_all_devices`` flag of its ``CompileConfig`` opts the CPU in.

        CPU: inductor with its C++ wrapper (``cpp_wrapper``: the graph's ~200 matrix-vector
        calls and ~100 fused kernels are launched from generated C++ instead of Python,
        about 7 ms a token less for SmolLM2-135M on 2 threads) and without guards on the
        model's modules (``torch.compiler.skip_guard_on_all_nn_modules_unsafe``: the
        weights are never replaced after loading, so re-checking ~270 parameter tensors
        before every decoded token, ~1.5 ms, buys nothing; guards on the inputs and the
        KV cache stay, so a new shape still recompiles). Measured with
        ``benchmarks/bench_llm.py --compile``. CUDA: ``reduce-overhead`` (CUDA graphs).
        """
        import torch
        from transformers import CompileConfig

        if self.device == "cpu":
            config = CompileConfig(dynamic=None, mode=None, options={
                "cpp_wrapper": True,
                "guard_filter_fn": torch.compiler.skip_guard_on_all_nn_modules_unsafe,
            })
        else:
            config = CompileConfig(dynamic=None, mode="reduce-overhead")
        config._compile_all_devices = True
        return {"cache_implementation": "static", "compile_config": config}

    # -- protocol ----------------------------------------------------------------------
    def generate(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        max_new_tokens: int | None = None,
    ) -> Any:
        """Greedy completion; see :meth:`ChatBackend.generate`.

        With a schema, decoding is constrained by xgrammar. If the token budget runs
        out before the JSON closes, one retry is made with twice the budget and a
        repetition penalty (tiny models sometimes loop inside a string).

        Raises:
            GenerationError: the output still fails to parse or validate.
        """
        budget = max_new_tokens or self.settings.max_new_tokens
        enc = self.encode(messages)
        if schema is None:
            ids = self._generate_ids(enc, budget, repetition_penalty=self.settings.repetition_penalty)
            return self.tokenizer.decode(ids, skip_special_tokens=True).strip()

        last_error = ""
        for attempt, extra in enumerate(({}, {"repetition_penalty": 1.3})):
            ids = self._generate_ids(
                enc,
                budget * (attempt + 1),
                logits_processor=[self.grammars.logits_processor(schema)],
                **extra,
            )
            text = self.tokenizer.decode(ids, skip_special_tokens=True).strip()
            try:
                if isinstance(schema, dict):
                    return json.loads(text)
                return schema.model_validate_json(text)
            except (ValueError, ValidationError) as exc:
                last_error = str(exc).splitlines()[0]
                log.warning("constrained output invalid (attempt %d): %s", attempt + 1, last_error)
        raise GenerationError(f"model output did not match the schema: {last_error}")

    def stream(
        self, messages: Sequence[Message], *, max_new_tokens: int | None = None
    ) -> Iterator[str]:
        """Yield decoded text pieces of the greedy completion as they are produced.

        Closing the iterator early (a caller that has read enough) stops the generation
        at the next token, so the model does not keep both CPU cores busy for nothing.
        """
        from transformers import StoppingCriteriaList, TextIteratorStreamer

        enc = self.encode(messages)
        closed = threading.Event()
        streamer = TextIteratorStreamer(
            self.tokenizer, skip_prompt=True, skip_special_tokens=True, timeout=120
        )
        budget = max_new_tokens or self.settings.max_new_tokens
        errors: list[BaseException] = []

        def run() -> None:
            try:
                self._generate_ids(
                    enc, budget, streamer=streamer,
                    repetition_penalty=self.settings.repetition_penalty,
                    stopping_criteria=StoppingCriteriaList([_StopWhenClosed(closed)]),
                )
            except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
                errors.append(exc)
                streamer.end()

        worker = threading.Thread(target=run, daemon=True)
        worker.start()
        try:
            yield from streamer
        finally:
            closed.set()  # no-op after a full generation; stops an abandoned one
        worker.join()
        if errors:
            raise GenerationError(f"generation failed: {errors[0]}") from errors[0]


DECODE_GQA_ATTENTION = "sdpa_decode_gqa"


def sdpa_decode_gqa(
    module: Any, query: Any, key: Any, value: Any, attention_mask: Any, **kwargs: Any
) -> tuple[Any, None]:
    """transformers' SDPA attention, with grouped-query decode steps run on the KV heads.

    Shapes: ``query`` (batch, heads, q_len, head_dim); ``key``/``value`` (batch, kv_heads,
    kv_len, head_dim); ``attention_mask`` broadcastable to (batch, heads, q_len, kv_len);
    returns ((batch, q_len, heads, head_dim), None) like every transformers attention
    function.

    For one query token (a decode step) with grouped-query attention (``heads`` a multiple
    of ``kv_heads``), the ``heads // kv_heads`` query heads that share a KV head become
    that KV head's query rows: (batch, kv_heads, groups, head_dim). Same arithmetic, but
    the cached K and V are read as they are. transformers does this itself in eager decode
    only; in a compiled step it copies K and V ``groups`` times over the whole static cache
    (``repeat_kv``) in every layer: for SmolLM2-135M (9 query / 3 KV heads, 30 layers)
    ~16 MB written and read again per token at 108 cached positions, growing with the
    context. Everything else (prefill, no GQA, position bias, softcap) is transformers'
    own ``sdpa_attention_forward``.
    """
    import torch
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    groups = int(getattr(module, "num_key_value_groups", 1) or 1)
    if (query.shape[2] != 1 or groups == 1 or kwargs.get("position_bias") is not None
            or kwargs.get("softcap") is not None or kwargs.get("output_attentions")):
        return sdpa_attention_forward(module, query, key, value, attention_mask, **kwargs)
    batch, heads, _, dim = query.shape
    packed = query.reshape(batch, heads // groups, groups, dim)
    if attention_mask is not None and attention_mask.shape[1] != 1:  # a per-head mask
        attention_mask = attention_mask.reshape(attention_mask.shape[0], heads // groups, groups, -1)
    out = torch.nn.functional.scaled_dot_product_attention(
        packed, key, value, attn_mask=attention_mask, dropout_p=kwargs.get("dropout", 0.0),
        scale=kwargs.get("scaling"),
    )
    return out.reshape(out.shape[0], heads, 1, dim).transpose(1, 2).contiguous(), None


def use_decode_gqa_attention(model: Any) -> bool:
    """Switch a model that runs transformers' ``sdpa`` attention to :func:`sdpa_decode_gqa`
    (registered once, with SDPA's own mask function). Returns whether it switched: models
    on another attention implementation are left as they are.

    Measured with ``/tmp`` A/B runs of the compiled decode step (SmolLM2-135M, 64 tokens,
    2 threads, 3 paired process pairs): 67.3 % -> 69.0 % of the bandwidth bound on average;
    greedy tokens identical.
    """
    from transformers import AttentionInterface
    from transformers.masking_utils import ALL_MASK_ATTENTION_FUNCTIONS, sdpa_mask

    if getattr(model.config, "_attn_implementation", None) != "sdpa":
        return False
    AttentionInterface.register(DECODE_GQA_ATTENTION, sdpa_decode_gqa)
    ALL_MASK_ATTENTION_FUNCTIONS.register(DECODE_GQA_ATTENTION, sdpa_mask)
    model.set_attn_implementation(DECODE_GQA_ATTENTION)
    return True


class _StopWhenClosed:
    """A ``transformers`` stopping criterion: stop once ``event`` is set (the stream's
    reader went away)."""

    def __init__(self, event: threading.Event) -> None:
        self.event = event

    def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
        import torch

        return torch.full((input_ids.shape[0],), self.event.is_set(), dtype=torch.bool, device=input_ids.device)


def load_backend(settings: Settings) -> TransformersBackend:
    """The ``transformers`` backend factory (see :data:`assistant.llm.base._BUILTIN`)."""
    return TransformersBackend(settings)
