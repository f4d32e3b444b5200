"""ONNX Runtime embedder: same vectors as sentence-transformers, and no torch on its path.

One export per test module (``torch.onnx.export`` of the packaged all-MiniLM-L6-v2); the
equality tests compare it with ``SentenceTransformer.encode(normalize_embeddings=True)``.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.knowledge import embeddings as emb
from assistant.knowledge.embeddings import (
    ONNX_FILE,
    Embedder,
    OnnxEmbedder,
    export_onnx,
    get_embedder,
    onnx_available,
    onnx_export_dir,
)
from assistant.settings import Settings

pytestmark = pytest.mark.slow

ENGLISH = [
    "Sore throat and a mild fever for two days.",
    "Crushing chest pain spreading to the left arm, sweating.",
    "my toddler keeps pulling at his ear and cries at night",
    "  leading and trailing whitespace  ",
    "Headache. " * 200,  # longer than max_seq_length=256 word pieces: truncated alike
]
CHINESE = [
    "咽喉痛两天，伴有低烧。",
    "胸口剧痛，向左臂放射，出冷汗。",
    "孩子耳朵疼，晚上哭闹",
]


@pytest.fixture(scope="module")
def reference() -> Embedder:
    """The sentence-transformers embedder (cached, so the export reuses this instance)."""
    path, model_id = emb.resolve_model_dir(Settings())
    cached = emb._CACHE.get((str(path), "cpu"))
    if isinstance(cached, Embedder):
        return cached
    embedder = Embedder(path, model_id, "cpu")
    emb._CACHE[(str(path), "cpu")] = embedder
    return embedder


@pytest.fixture(scope="module")
def onnx_settings(tmp_path_factory: pytest.TempPathFactory, reference: Embedder) -> Settings:
    settings = Settings(data_dir=tmp_path_factory.mktemp("onnx"), device="cpu", num_threads=2)
    path = export_onnx(settings)
    assert path.is_file() and path.name == ONNX_FILE
    return settings


@pytest.fixture(scope="module")
def onnx(onnx_settings: Settings) -> OnnxEmbedder:
    embedder = get_embedder(onnx_settings)
    assert isinstance(embedder, OnnxEmbedder)
    return embedder


def _st(reference: Embedder, texts: list[str]):
    import numpy as np

    return np.asarray(
        reference._model.encode(texts, normalize_embeddings=True, convert_to_numpy=True),
        dtype=np.float32,
    )


@pytest.mark.parametrize("texts", [ENGLISH, CHINESE, ENGLISH + CHINESE], ids=["en", "zh", "mixed"])
def test_batch_matches_sentence_transformers(
    onnx: OnnxEmbedder, reference: Embedder, texts: list[str]
) -> None:
    import numpy as np

    want = _st(reference, texts)
    for batch_size in (32, 2):
        got = onnx.encode(texts, batch_size=batch_size)
        assert got.shape == want.shape == (len(texts), 384) and got.dtype == np.float32
        assert np.abs(got - want).max() < 1e-4
        assert (got * want).sum(axis=1).min() >= 0.9999
        assert np.allclose(np.linalg.norm(got, axis=1), 1.0, atol=1e-5)


def test_single_texts_match(onnx: OnnxEmbedder, reference: Embedder) -> None:
    import numpy as np

    for text in ENGLISH[:3] + CHINESE[:2]:
        got = onnx.encode([text])[0]
        want = _st(reference, [text])[0]
        assert np.abs(got - want).max() < 1e-4 and float(got @ want) >= 0.9999
    assert onnx.encode([]).shape == (0, 384)


def test_metadata_and_tokens(
    onnx: OnnxEmbedder, reference: Embedder, onnx_settings: Settings
) -> None:
    assert (onnx.dimension, onnx.max_seq_length) == (reference.dimension, reference.max_seq_length)
    assert onnx.max_seq_length == 256 and onnx.model_id == emb.DEFAULT_MODEL_ID
    for text in ("chest pain", "胸痛", ENGLISH[-1]):
        assert onnx.tokens(text) == reference.tokens(text)
    export_dir = onnx_export_dir(onnx_settings)
    assert export_dir.parent == onnx_settings.model_cache_dir
    assert export_dir.name.startswith("onnx-")
    meta = json.loads((export_dir / emb.ONNX_META_FILE).read_text())
    assert meta["inputs"][0] == "input_ids" and meta["opset"] >= 14
    assert onnx_available(onnx_settings)
    assert not list(export_dir.parent.glob(".onnx-*"))  # no temporary folder or lock left
    assert export_onnx(onnx_settings) == export_dir / ONNX_FILE  # already there: no-op


def test_chroma_function_uses_the_same_embedder(
    onnx: OnnxEmbedder, onnx_settings: Settings
) -> None:
    import numpy as np

    ef = emb.chroma_embedding_function(onnx_settings)
    assert ef._embedder() is onnx
    vectors = ef(["sore throat", "咽喉痛"])
    assert np.allclose(np.asarray(vectors), onnx.encode(["sore throat", "咽喉痛"]))
    assert set(ef.get_config()) == {"model_path", "model_id", "device"}


def test_onnx_path_does_not_import_torch(onnx_settings: Settings) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from assistant.settings import Settings
        from assistant.knowledge.embeddings import OnnxEmbedder, get_embedder
        s = Settings(data_dir={str(onnx_settings.data_dir)!r}, device="auto")
        e = get_embedder(s)
        assert isinstance(e, OnnxEmbedder), type(e)
        assert e.encode(["sore throat", "咽喉痛"]).shape == (2, 384)
        e.tokens("sore throat")
        heavy = [m for m in ("torch", "transformers", "sentence_transformers") if m in sys.modules]
        assert not heavy, heavy
        print("ok")
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().endswith("ok")


def test_fallback_without_export_schedules_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path, device="cpu")
    assert not onnx_available(settings)
    monkeypatch.setattr(emb, "_SCHEDULED", {})
    monkeypatch.setattr(emb, "_ATEXIT_REGISTERED", True)  # keep the real atexit hook out
    path, _ = emb.resolve_model_dir(settings)
    monkeypatch.setitem(emb._CACHE, (str(path), "cpu"), reference)  # no second model load
    embedder = get_embedder(settings)
    assert embedder is reference  # sentence-transformers for this call
    assert not onnx_available(settings)  # the query did not wait for an export
    (job,) = emb._SCHEDULED.values()
    assert Path(job[2]) == onnx_export_dir(settings).resolve()
    assert get_embedder(settings, export="never") is reference


def test_broken_export_falls_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, reference: Embedder
) -> None:
    settings = Settings(data_dir=tmp_path, device="cpu")
    export_dir = onnx_export_dir(settings)
    export_dir.mkdir(parents=True)
    (export_dir / ONNX_FILE).write_bytes(b"not a model")
    (export_dir / emb.ONNX_META_FILE).write_text("{}")
    path, _ = emb.resolve_model_dir(settings)
    monkeypatch.setitem(emb._CACHE, (str(path), "cpu"), reference)
    assert get_embedder(settings, export="never") is reference
    assert not export_dir.exists()  # removed: the next export replaces it
