"""Hybrid retrieval: dense (Chroma + MiniLM) and lexical (BM25) fused by reciprocal rank.

Reciprocal-rank fusion (RRF): ``score(d) = sum_i w_i / (k + rank_i(d))`` with ``k = 60``
and ranks starting at 1 — G. V. Cormack, C. L. A. Clarke, S. Büttcher, "Reciprocal rank
fusion outperforms Condorcet and individual rank learning methods", SIGIR 2009.

The packaged MiniLM model is English-only, so for a mostly-Chinese query the dense list
gets the weight ``cjk_dense_weight`` (default 0.5) and BM25, which segments Chinese with
jieba, dominates; when BM25 finds nothing (e.g. a Chinese query against the English
MedQuAD texts) hybrid search returns no passages rather than English-only vector noise. Metadata filters (Chroma ``where`` syntax) apply in every mode: the
dense search passes them to Chroma and the BM25 search masks out the chunks Chroma does
not return for the same filter.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.errors import DataError, InputError
from assistant.knowledge.embeddings import DEFAULT_MODEL_ID
from assistant.knowledge.lexical import LexicalCache, LexicalIndex
from assistant.knowledge.store import COLLECTIONS, get_client, open_collection
from assistant.knowledge.textproc import is_mostly_cjk
from assistant.settings import Settings

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
RRF_K = 60
MAX_QUERY_CHARS = 4000


class Passage(BaseModel):
    """A retrieved chunk, ready to cite.

    Attributes:
        id: chunk id (content hash).
        doc_id: the source document id (MedQuAD ``source:qid``, ``doc:<path>``, or a
            hospital record id such as ``dept:ENT``).
        text: chunk text (literature chunks start with the title line).
        score: hybrid = RRF score; dense = cosine similarity in [-1, 1]; bm25 = BM25 score.
        source: publisher / data set (e.g. ``GHR``, ``CancerGov``, ``hospital``).
        url: where the text comes from ("" when none).
        title: document title (MedQuAD focus, file title or record name).
        collection: ``literature`` or ``hospital``.
        metadata: all stored metadata (licence, qtype, question, origin, kind, ...).
    """

    id: str
    doc_id: str = ""
    text: str
    score: float
    source: str = ""
    url: str = ""
    title: str = ""
    collection: str
    metadata: dict[str, Any] = Field(default_factory=dict)

    def citation(self) -> str:
        """One-line reference: ``title — source (licence), url``."""
        licence = self.metadata.get("licence")
        parts = [self.title or self.doc_id, f"— {self.source}" if self.source else ""]
        if licence:
            parts.append(f"({licence})")
        if self.url:
            parts.append(f", {self.url}")
        return " ".join(p for p in parts if p).replace(" ,", ",")


def rrf_fuse(rankings: list[tuple[list[str], float]], *, k: int = RRF_K) -> list[tuple[str, float]]:
    """Weighted reciprocal-rank fusion (Cormack et al. 2009).

    Args:
        rankings: ``(ids best first, weight)`` per ranked list.
        k: the RRF constant (60 in the paper).

    Returns:
        ``[(id, fused score)]`` sorted by score (ties by id).
    """
    scores: dict[str, float] = {}
    for ids, weight in rankings:
        if weight <= 0:
            continue
        for rank, cid in enumerate(ids, start=1):
            scores[cid] = scores.get(cid, 0.0) + weight / (k + rank)
    return sorted(scores.items(), key=lambda item: (-item[1], item[0]))


class Retriever:
    """Search the ``literature`` and ``hospital`` collections.

    Loads the embedding model and BM25 indexes lazily (first search, or
    :meth:`warm_up`). Safe to share between threads. Queries are embedded with ONNX
    Runtime when the model has been exported (no torch import); when the export is
    missing, constructing a retriever schedules it for the next process
    (:func:`~assistant.knowledge.embeddings.schedule_onnx_export`) and this process uses
    sentence-transformers.

    Args:
        settings: index location (``resolved_index_dir`` / ``chroma_url``) and model.
        candidates: how many hits each ranker contributes to the fusion (at least ``k``).
        rrf_k: the RRF constant.
        cjk_dense_weight: dense weight for mostly-Chinese queries when the embedder is the
            English-only default (1.0 for any other model).
        query_cache: how many query vectors to keep in memory (0 = none; the same text
            searched in several modes or collections is embedded once).
    """

    def __init__(
        self,
        settings: Settings,
        *,
        candidates: int = 50,
        rrf_k: int = RRF_K,
        cjk_dense_weight: float = 0.5,
        query_cache: int = 256,
    ) -> None:
        self.settings = settings
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.cjk_dense_weight = cjk_dense_weight
        self.query_cache = query_cache
        self._lexical = LexicalCache(settings.resolved_index_dir / "bm25")
        self._collections: dict[str, Any] = {}
        self._masks: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._vectors: OrderedDict[str, Any] = OrderedDict()
        self._lock = threading.Lock()
        self._schedule_export()

    def _schedule_export(self) -> None:
        """Export the embedding model to ONNX for later processes when it is missing."""
        from assistant.knowledge.embeddings import schedule_onnx_export

        if self.settings.chroma_url is None and not self.settings.resolved_index_dir.exists():
            return  # nothing to search yet
        try:
            schedule_onnx_export(self.settings)
        except Exception as exc:  # noqa: BLE001 - an optimisation, never a blocker
            logger.debug("ONNX export not scheduled: %s", exc)

    # ----------------------------------------------------------------- plumbing
    def _collection(self, name: str) -> Any:
        if name not in COLLECTIONS:
            raise ValueError(f"unknown collection {name!r}; expected one of {COLLECTIONS}")
        with self._lock:
            col = self._collections.get(name)
            if col is None:
                col = open_collection(self.settings, name, create=False)
                self._collections[name] = col
            return col

    def _state(self, name: str, collection: Any) -> tuple[str, int]:
        """Current ``(revision, count)`` of a collection (re-read on each call)."""
        fresh = get_client(self.settings).get_collection(name)
        return str((fresh.metadata or {}).get("revision", "")), int(collection.count())

    def _lexical_index(self, name: str, collection: Any) -> tuple[LexicalIndex, str]:
        revision, count = self._state(name, collection)
        return self._lexical.get(name, collection, revision, count), revision

    def _mask(
        self, name: str, collection: Any, index: LexicalIndex, where: dict[str, Any], revision: str
    ) -> Any:
        import numpy as np

        key = (name, revision, json.dumps(where, sort_keys=True, default=str))
        with self._lock:
            cached = self._masks.get(key)
            if cached is not None and len(cached) == index.count:
                self._masks.move_to_end(key)
                return cached
        allowed = collection.get(where=where, include=[])["ids"]
        mask = np.zeros(index.count, dtype=np.float32)
        for cid in allowed:
            row = index.position.get(cid)
            if row is not None:
                mask[row] = 1.0
        with self._lock:
            self._masks[key] = mask
            while len(self._masks) > 32:
                self._masks.popitem(last=False)
        return mask

    def warm_up(self, collections: tuple[str, ...] = COLLECTIONS) -> None:
        """Load the embedding model, BM25 indexes and vector segments of existing collections.

        A missing ONNX export is made here (synchronously: a long-running caller would
        otherwise load torch for every query of its lifetime).
        """
        from assistant.knowledge.embeddings import get_embedder

        get_embedder(self.settings, export="sync")
        for name in collections:
            try:
                col = self._collection(name)
            except DataError:  # missing collection: nothing to warm
                continue
            self._lexical_index(name, col)
            self._dense(col, "warm up", 1, None)  # loads the HNSW segment into memory

    # ----------------------------------------------------------------- rankers
    def _dense(
        self, collection: Any, query: str, n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float, str, dict[str, Any]]]:
        from assistant.knowledge.embeddings import get_embedder

        count = collection.count()
        if count == 0:
            return []
        with self._lock:
            vector = self._vectors.get(query)
        if vector is None:
            vector = get_embedder(self.settings).encode([query])[0]
            with self._lock:
                self._vectors[query] = vector
                while len(self._vectors) > self.query_cache:
                    self._vectors.popitem(last=False)
        res = collection.query(
            query_embeddings=[vector],
            n_results=min(n, count),
            where=where or None,
            include=["documents", "metadatas", "distances"],
        )
        return [
            (cid, 1.0 - float(dist), doc or "", meta or {})
            for cid, dist, doc, meta in zip(
                res["ids"][0], res["distances"][0], res["documents"][0], res["metadatas"][0]
            )
        ]

    def _bm25(
        self, name: str, collection: Any, query: str, n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        index, revision = self._lexical_index(name, collection)
        if index.count == 0:
            return []
        mask = self._mask(name, collection, index, where, revision) if where else None
        return index.search(query, n, mask)

    # ----------------------------------------------------------------- public
    def search(
        self,
        query: str,
        *,
        collection: str = "literature",
        k: int = 5,
        where: dict[str, Any] | None = None,
        mode: Mode = "hybrid",
    ) -> list[Passage]:
        """Find the ``k`` chunks most relevant to ``query``.

        Args:
            query: patient or staff text, English or Chinese (never logged).
            collection: ``"literature"`` or ``"hospital"``.
            k: number of passages (1..100).
            where: Chroma metadata filter, e.g. ``{"kind": "department"}`` or
                ``{"$and": [{"source": "GHR"}, {"qtype": "symptoms"}]}``.
            mode: ``"hybrid"`` (RRF of both), ``"dense"`` or ``"bm25"``.

        Returns:
            Up to ``k`` :class:`Passage` objects, best first (fewer if the collection or
            the filter leaves fewer; ``[]`` for an empty collection).

        Raises:
            InputError: empty or over-long query.
            ValueError: bad ``collection``, ``mode`` or ``k``; malformed ``where``.
            DataError: the collection does not exist (run the ingest first).
            ModelNotFoundError: the embedding model is missing.
        """
        if mode not in MODES:
            raise ValueError(f"mode must be one of {MODES}, not {mode!r}")
        if not 1 <= k <= 100:
            raise ValueError("k must be between 1 and 100")
        if not isinstance(query, str) or not query.strip():
            raise InputError("empty search query")
        if len(query) > MAX_QUERY_CHARS:
            raise InputError(f"search query longer than {MAX_QUERY_CHARS} characters")
        from chromadb.errors import NotFoundError

        try:
            return self._search(query, collection, k, where, mode)
        except NotFoundError:  # collection re-created by another process: reopen once
            with self._lock:
                self._collections.pop(collection, None)
            return self._search(query, collection, k, where, mode)

    def _search(
        self, query: str, collection: str, k: int, where: dict[str, Any] | None, mode: str
    ) -> list[Passage]:
        col = self._collection(collection)
        n = max(self.candidates, k)

        dense = self._dense(col, query, n, where) if mode in ("dense", "hybrid") else []
        lexical = self._bm25(collection, col, query, n, where) if mode in ("bm25", "hybrid") else []
        logger.debug(
            "search %s/%s: %d dense, %d bm25 candidates", collection, mode, len(dense), len(lexical)
        )

        known: dict[str, tuple[str, dict[str, Any]]] = {
            cid: (doc, meta) for cid, _, doc, meta in dense
        }
        if mode == "dense":
            ranked = [(cid, score) for cid, score, _, _ in dense[:k]]
        elif mode == "bm25":
            ranked = lexical[:k]
        else:
            dense_weight = 1.0
            if is_mostly_cjk(query) and self._english_only():
                if not lexical:  # English-only vectors alone would return noise
                    return []
                dense_weight = self.cjk_dense_weight
            ranked = rrf_fuse(
                [([cid for cid, *_ in dense], dense_weight), ([cid for cid, _ in lexical], 1.0)],
                k=self.rrf_k,
            )[:k]

        missing = [cid for cid, _ in ranked if cid not in known]
        if missing:
            got = col.get(ids=missing, include=["documents", "metadatas"])
            for cid, doc, meta in zip(got["ids"], got["documents"], got["metadatas"]):
                known[cid] = (doc or "", meta or {})
        out = []
        for cid, score in ranked:
            if cid not in known:  # deleted between ranking and fetching
                continue
            doc, meta = known[cid]
            out.append(
                Passage(
                    id=cid,
                    doc_id=str(meta.get("doc_id", "")),
                    text=doc,
                    score=round(float(score), 6),
                    source=str(meta.get("source", "")),
                    url=str(meta.get("url", "")),
                    title=str(meta.get("title", "")),
                    collection=collection,
                    metadata=dict(meta),
                )
            )
        return out

    def _english_only(self) -> bool:
        return self.settings.embedding_model is None  # the packaged MiniLM (DEFAULT_MODEL_ID)


__all__ = ["DEFAULT_MODEL_ID", "MODES", "Passage", "Retriever", "rrf_fuse"]
