"""Hybrid retrieval: dense (Chroma + MiniLM) and lexical (BM25) fused by reciprocal rank.

Reciprocal-rank fusion (RRF): ``score(d) = sum_i w_i / (k + rank_i(d))`` with ``k = 60``
and ranks starting at 1 — G. V. Cormack, C. L. A. Clarke, S. Büttcher, "Reciprocal rank
fusion outperforms Condorcet and individual rank learning methods", SIGIR 2009.

The two rankers run concurrently (BM25 on a worker thread while the query is embedded
and the HNSW index searched); each returns ids and scores only, and the ``k`` fused
passages are then fetched in one read. Query vectors are kept in an LRU cache. Metadata
filters (Chroma ``where`` syntax) apply in every mode: a filter matching up to
``FILTER_BRUTE_FORCE_MAX`` chunks is searched exactly over those chunks' vectors (cached
per collection revision), a wider one through the HNSW index; the BM25 search masks out
the chunks the filter does not select.

The packaged MiniLM model is English-only, so a mostly-Chinese query in hybrid mode skips
the dense ranker (its vectors of Chinese text are noise) and fuses instead: BM25 (jieba
segments Chinese, for Chinese documents a hospital adds), the query's complaint phrases
translated to English through both rankers, and, for ``literature``, the multilingual
condition index (see :mod:`assistant.knowledge.crosslingual`). When none of them finds
anything, the search returns no passages rather than noise.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.errors import DataError, InputError
from assistant.knowledge.embeddings import DEFAULT_MODEL_ID
from assistant.knowledge.lexical import LexicalCache, LexicalIndex
from assistant.knowledge.store import (
    COLLECTIONS,
    get_client,
    open_collection,
    write_generation,
)
from assistant.knowledge.textproc import is_mostly_cjk
from assistant.settings import Settings

logger = logging.getLogger(__name__)

Mode = Literal["hybrid", "dense", "bm25"]
MODES: tuple[str, ...] = ("hybrid", "dense", "bm25")
RRF_K = 60
MAX_QUERY_CHARS = 4000
# a metadata filter matching at most this many chunks is searched exactly, over its
# vectors held in memory (20k x 384 float32 = 29 MiB); a wider one through the HNSW index
FILTER_BRUTE_FORCE_MAX = 20_000


@dataclass(frozen=True)
class _Subset:
    """The chunks a metadata filter selects: ids, id set, and (when few) their vectors."""

    ids: list[str]
    id_set: frozenset[str]
    vectors: Any  # numpy (len(ids), dim) float32, or None above FILTER_BRUTE_FORCE_MAX


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
        cjk_dense_weight: kept for callers; mostly-Chinese queries on the English-only
            default embedder now skip the (noise) dense ranker and use the cross-lingual
            rankers instead (see :meth:`search`).
        query_cache: how many query vectors to keep in memory (0 = none; the same text
            searched in several modes or collections is embedded once).
        state_ttl: seconds a collection's ``(revision, count)`` is trusted before it is
            read again (each read is two SQLite queries; an ingest running in the
            background changes them on every batch). 0 = re-read on every search.
        bm25_rebuild_interval: least seconds between two rebuilds of a BM25 index while
            its collection keeps changing (a background ingest): in between, searches use
            the last index (new chunks are found by the dense ranker only until then).
        parallel: run the BM25 ranker on a worker thread while the dense ranker (ONNX
            Runtime and Chroma's HNSW, both release the GIL) runs on the caller's.
        condition_weight: RRF weight of the multilingual condition index for Chinese
            queries on ``literature`` (0 = off).
        condition_candidates: condition names it contributes.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        candidates: int = 50,
        rrf_k: int = RRF_K,
        cjk_dense_weight: float = 0.5,
        query_cache: int = 256,
        state_ttl: float = 2.0,
        bm25_rebuild_interval: float = 60.0,
        parallel: bool = True,
        condition_weight: float = 1.0,
        condition_candidates: int = 20,
    ) -> None:
        self.settings = settings
        self.candidates = candidates
        self.rrf_k = rrf_k
        self.cjk_dense_weight = cjk_dense_weight
        self.query_cache = query_cache
        self.state_ttl = state_ttl
        self.parallel = parallel
        self.condition_weight = condition_weight
        self.condition_candidates = condition_candidates
        self._lexical = LexicalCache(
            settings.resolved_index_dir / "bm25", min_rebuild_interval=bm25_rebuild_interval
        )
        self._collections: dict[str, Any] = {}
        self._masks: OrderedDict[tuple[str, str, str], Any] = OrderedDict()
        self._vectors: OrderedDict[str, Any] = OrderedDict()
        self._states: dict[str, tuple[float, str, int, int]] = {}
        self._subsets: OrderedDict[tuple[str, str, str], _Subset] = OrderedDict()
        self._pool: ThreadPoolExecutor | None = None
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
        """``(revision, count)`` of a collection, re-read at most every ``state_ttl`` s."""
        now = time.monotonic()
        generation = write_generation()
        with self._lock:
            cached = self._states.get(name)
        if cached is not None and now - cached[0] < self.state_ttl and cached[3] == generation:
            return cached[1], cached[2]
        fresh = get_client(self.settings).get_collection(name)
        revision = str((fresh.metadata or {}).get("revision", ""))
        count = int(collection.count())
        with self._lock:
            self._states[name] = (now, revision, count, generation)
        return revision, count

    def _executor(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="retriever")
            return self._pool

    def _query_vector(self, query: str) -> Any:
        """The query's embedding, from the LRU cache of ``query_cache`` entries."""
        from assistant.knowledge.embeddings import get_embedder

        with self._lock:
            vector = self._vectors.get(query)
            if vector is not None:
                self._vectors.move_to_end(query)
                return vector
        vector = get_embedder(self.settings).encode([query])[0]
        if self.query_cache > 0:
            with self._lock:
                self._vectors[query] = vector
                while len(self._vectors) > self.query_cache:
                    self._vectors.popitem(last=False)
        return vector

    def _lexical_index(self, name: str, collection: Any) -> tuple[LexicalIndex, str]:
        revision, count = self._state(name, collection)
        stale_ok = self._ingest_running()
        return self._lexical.get(name, collection, revision, count, allow_stale=stale_ok), revision

    def _ingest_running(self) -> bool:
        """Whether a (background) ingest is writing this index now (checked every
        ``state_ttl`` s); while it runs, BM25 indexes are rebuilt at most every
        ``bm25_rebuild_interval`` s instead of after every written batch."""
        from assistant.knowledge.progress import ingest_running

        now = time.monotonic()
        with self._lock:
            cached = self._states.get("\0ingest")
        if cached is not None and now - cached[0] < self.state_ttl:
            return bool(cached[2])
        running = ingest_running(self.settings)
        with self._lock:
            self._states["\0ingest"] = (now, "", int(running), 0)
        return running

    def _mask(
        self, name: str, collection: Any, index: LexicalIndex, where: dict[str, Any], revision: str
    ) -> Any:
        import numpy as np

        key = (
            name,
            f"{index.fingerprint}:{index.count}",
            json.dumps(where, sort_keys=True, default=str),
        )
        with self._lock:
            cached = self._masks.get(key)
            if cached is not None and len(cached) == index.count:
                self._masks.move_to_end(key)
                return cached
        allowed = self._subset(name, collection, where).ids
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
            self._dense(name, col, "warm up", 1, None)  # loads the HNSW segment into memory

    # ----------------------------------------------------------------- rankers
    def _dense(
        self, name: str, collection: Any, query: str, n: int, where: dict[str, Any] | None
    ) -> list[tuple[str, float]]:
        """Top-``n`` ``(chunk id, cosine similarity)`` by the vector index.

        Only ids and distances come back from Chroma: the documents and metadata of the
        final ``k`` passages are fetched once, after fusion. With a filter: when it selects
        at most ``FILTER_BRUTE_FORCE_MAX`` chunks, an exact search over their vectors (held
        in memory, cached per collection revision); otherwise the unfiltered HNSW search
        for ``4 n`` candidates masked by the filter, and Chroma's own filtered search only
        when fewer than ``n`` of those pass.
        """
        _, count = self._state(name, collection)
        if count == 0:
            return []
        vector = self._query_vector(query)
        if where:
            subset = self._subset(name, collection, where)
            if not subset.ids:
                return []
            if subset.vectors is not None:  # exact search over the filtered vectors
                import numpy as np

                # einsum: no BLAS threads for a matrix-vector product (see crosslingual)
                scores = np.einsum("ij,j->i", subset.vectors, np.asarray(vector, np.float32))
                top = min(n, len(scores))
                idx = np.argpartition(-scores, top - 1)[:top] if top < len(scores) else None
                order = sorted(
                    (idx if idx is not None else range(len(scores))),
                    key=lambda i: (-float(scores[i]), subset.ids[i]),
                )
                return [(subset.ids[i], float(scores[i])) for i in order]
            wide = min(count, 4 * n)
            res = collection.query(query_embeddings=[vector], n_results=wide, include=["distances"])
            hits = [
                (cid, 1.0 - float(dist))
                for cid, dist in zip(res["ids"][0], res["distances"][0])
                if cid in subset.id_set
            ]
            if len(hits) >= n or wide >= count:
                return hits[:n]
        res = collection.query(
            query_embeddings=[vector],
            n_results=min(n, count),
            where=where or None,
            include=["distances"],
        )
        return [(cid, 1.0 - float(dist)) for cid, dist in zip(res["ids"][0], res["distances"][0])]

    def _subset(self, name: str, collection: Any, where: dict[str, Any]) -> _Subset:
        """Ids matching a metadata filter, and their vectors when there are at most
        ``FILTER_BRUTE_FORCE_MAX`` of them (cached per collection revision, LRU of 16)."""
        revision, count = self._state(name, collection)
        key = (name, f"{revision}:{count}", json.dumps(where, sort_keys=True, default=str))
        with self._lock:
            cached = self._subsets.get(key)
            if cached is not None:
                self._subsets.move_to_end(key)
                return cached
        ids = list(collection.get(where=where, include=[])["ids"])
        vectors = None
        if 0 < len(ids) <= FILTER_BRUTE_FORCE_MAX:
            import numpy as np

            rows: dict[str, Any] = {}
            for start in range(0, len(ids), 5000):
                got = collection.get(ids=ids[start : start + 5000], include=["embeddings"])
                rows.update(zip(got["ids"], got["embeddings"]))
            ids = [cid for cid in ids if cid in rows]
            vectors = np.asarray([rows[cid] for cid in ids], dtype=np.float32).reshape(len(ids), -1)
        subset = _Subset(ids, frozenset(ids), vectors)
        with self._lock:
            self._subsets[key] = subset
            while len(self._subsets) > 16:
                self._subsets.popitem(last=False)
        return subset

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

        lexical_job = None
        if mode == "hybrid" and self.parallel:
            lexical_job = self._executor().submit(self._bm25, collection, col, query, n, where)
        try:
            skip_dense = mode == "bm25" or (
                mode == "hybrid" and is_mostly_cjk(query) and self._english_only()
            )
            dense = [] if skip_dense else self._dense(collection, col, query, n, where)
        finally:
            lexical = (
                lexical_job.result()
                if lexical_job is not None
                else self._bm25(collection, col, query, n, where)
                if mode != "dense"
                else []
            )
        logger.debug(
            "search %s/%s: %d dense, %d bm25 candidates", collection, mode, len(dense), len(lexical)
        )

        known: dict[str, tuple[str, dict[str, Any]]] = {}
        if mode == "dense":
            ranked = dense[:k]
        elif mode == "bm25":
            ranked = lexical[:k]
        elif is_mostly_cjk(query) and self._english_only():
            # English-only vectors of Chinese text are noise: cross-lingual rankers instead
            rankings = [([cid for cid, _ in lexical], 1.0)]
            rankings += self._cross_lingual(collection, col, query, n, where)
            if not any(ids for ids, _ in rankings):
                return []
            ranked = rrf_fuse(rankings, k=self.rrf_k)[:k]
        else:
            ranked = rrf_fuse(
                [([cid for cid, _ in dense], 1.0), ([cid for cid, _ in lexical], 1.0)],
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

    def _cross_lingual(
        self, name: str, collection: Any, query: str, n: int, where: dict[str, Any] | None
    ) -> list[tuple[list[str], float]]:
        """Rankings for a Chinese query over English texts (see :mod:`.crosslingual`).

        * ``literature``, when the multilingual package is installed and the condition
          index built: the condition index (USE query vs MedQuAD documents, max-pooled
          per condition), weight ``condition_weight``; the BM25 hits of the query's
          complaint phrases translated to English boost their conditions in it;
        * otherwise, or when no condition reaches ``CONDITION_MIN_SCORE``: those
          translated phrases through the dense and BM25 rankers (weight 1 each).
        """
        from assistant.knowledge.crosslingual import (
            CONDITION_MIN_SCORE,
            get_multilingual_encoder,
            load_condition_index,
            translate_terms,
        )

        rankings: list[tuple[list[str], float]] = []
        terms = translate_terms(query, self.settings.resolved_knowledge_base_dir)
        english = " ".join(terms)
        bm25_job = (
            self._executor().submit(self._bm25, name, collection, english, n, where)
            if terms
            else None
        )
        index = encoder = None
        if name == "literature" and self.condition_weight > 0:
            index = load_condition_index(self.settings)
            encoder = get_multilingual_encoder(self.settings) if index is not None else None
        if index is not None and encoder is not None:
            # the translated terms' BM25 hits only boost their conditions in the
            # condition ranking (crosslingual.RELATED_BOOST): measured better than
            # fusing the two lists (eval/retrieval/README.md)
            vector = encoder.query([query])[0]
            related = [cid for cid, _ in bm25_job.result()] if bm25_job is not None else []
            hits = [
                cid
                for _, cid, score in index.search(
                    vector, self.condition_candidates, related=related
                )
                if score >= CONDITION_MIN_SCORE
            ]
            if where:
                allowed = self._subset(name, collection, where).id_set
                hits = [cid for cid in hits if cid in allowed]
            if hits:
                return [(hits, self.condition_weight)]
        if bm25_job is not None:
            dense = self._dense(name, collection, english, n, where)
            rankings.append(([cid for cid, _ in dense], 1.0))
            rankings.append(([cid for cid, _ in bm25_job.result()], 1.0))
        return rankings

    def _english_only(self) -> bool:
        return self.settings.embedding_model is None  # the packaged MiniLM (DEFAULT_MODEL_ID)


__all__ = ["DEFAULT_MODEL_ID", "MODES", "Passage", "Retriever", "rrf_fuse"]
