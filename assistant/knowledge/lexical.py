"""BM25 index over a Chroma collection, cached on disk next to the Chroma index.

The index is built with ``bm25s`` (Lucene BM25 variant, k1=1.5, b=0.75) from the
collection's documents, tokenised by :func:`assistant.knowledge.textproc.tokenize`, and
saved under ``<resolved_index_dir>/bm25/<collection>/``. Its key is the collection
``revision`` and ``count`` (cheap to check on every search) backed by a content
fingerprint (sha256 of the sorted chunk ids, which are themselves content hashes) and the
tokenizer version: the index is rebuilt only when the contents really changed.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from assistant.knowledge.textproc import TOKENIZER_VERSION, tokenize

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

logger = logging.getLogger(__name__)

_PAGE = 5000
BM25_K1 = 1.5
BM25_B = 0.75


def fingerprint(ids: list[str]) -> str:
    """Content fingerprint of a collection: sha256 (first 24 hex) of its sorted ids."""
    digest = hashlib.sha256()
    for cid in sorted(ids):
        digest.update(cid.encode())
        digest.update(b"\n")
    return digest.hexdigest()[:24]


@dataclass
class LexicalIndex:
    """A loaded BM25 index.

    Attributes:
        ids: chunk ids in index order (length n).
        position: id -> row.
        revision: collection revision the index was checked against.
        count: number of chunks n.
        fingerprint: content fingerprint (see :func:`fingerprint`).
    """

    model: Any
    ids: list[str]
    position: dict[str, int]
    revision: str
    count: int
    fingerprint: str
    loaded_at: float = 0.0  # time.monotonic() when built or loaded

    def search(self, query: str, k: int, mask: np.ndarray | None = None) -> list[tuple[str, float]]:
        """Top-``k`` chunks for ``query``.

        Args:
            query: raw query text (tokenised here).
            k: how many hits at most.
            mask: optional float array of shape (n,), 1.0 for allowed chunks, 0.0 otherwise.

        Returns:
            ``[(chunk_id, bm25_score), ...]`` best first; only positive scores.
        """
        import numpy as np

        tokens = tokenize(query)
        if not tokens or self.count == 0:
            return []
        token_ids = self.model.get_tokens_ids(tokens)
        if not token_ids:
            return []
        scores = self.model.get_scores(token_ids, weight_mask=mask)
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k] if k < len(scores) else np.arange(len(scores))
        order = sorted(top.tolist(), key=lambda i: (-float(scores[i]), self.ids[i]))
        return [(self.ids[i], float(scores[i])) for i in order if scores[i] > 0]


def _all_ids(collection: Any) -> list[str]:
    ids: list[str] = []
    offset = 0
    while True:
        page = collection.get(include=[], limit=_PAGE, offset=offset)
        ids.extend(page["ids"])
        if len(page["ids"]) < _PAGE:
            return ids
        offset += _PAGE


def _all_documents(collection: Any) -> tuple[list[str], list[str]]:
    ids: list[str] = []
    docs: list[str] = []
    offset = 0
    while True:
        page = collection.get(include=["documents"], limit=_PAGE, offset=offset)
        ids.extend(page["ids"])
        docs.extend(d or "" for d in page["documents"])
        if len(page["ids"]) < _PAGE:
            return ids, docs
        offset += _PAGE


class LexicalCache:
    """Per-process holder of BM25 indexes, backed by ``<index_dir>/bm25/<name>/``."""

    def __init__(self, root: Path, *, min_rebuild_interval: float = 60.0) -> None:
        self.root = root
        self.min_rebuild_interval = min_rebuild_interval
        self._indexes: dict[str, LexicalIndex] = {}
        self._rebuilding: set[str] = set()
        self._lock = threading.Lock()

    def get(
        self, name: str, collection: Any, revision: str, count: int, *, allow_stale: bool = False
    ) -> LexicalIndex:
        """The index of collection ``name`` for its current ``(revision, count)``.

        Loads from memory, then disk, else rebuilds from the collection contents (and
        saves). Raises nothing for an empty collection (an empty index is returned).

        Args:
            allow_stale: return the index in memory even when the collection changed
                since (used while an ingest writes batch after batch); it is rebuilt on a
                background thread, at most once every ``min_rebuild_interval`` seconds,
                and swapped in when ready, so no search waits for a rebuild.
        """
        with self._lock:
            current = self._indexes.get(name)
            if current is not None and (current.revision, current.count) == (revision, count):
                return current
            if allow_stale and current is not None and current.count > 0:
                due = time.monotonic() - current.loaded_at >= self.min_rebuild_interval
                if due and name not in self._rebuilding:
                    self._rebuilding.add(name)
                    threading.Thread(
                        target=self._rebuild,
                        args=(name, collection, revision, count),
                        name=f"bm25-rebuild-{name}",
                        daemon=True,
                    ).start()
                return current
            index = self._load_or_build(name, collection, revision, count)
            index.loaded_at = time.monotonic()
            self._indexes[name] = index
            return index

    def _rebuild(self, name: str, collection: Any, revision: str, count: int) -> None:
        try:
            index = self._load_or_build(name, collection, revision, count)
            index.loaded_at = time.monotonic()
            with self._lock:
                self._indexes[name] = index
        except Exception as exc:  # noqa: BLE001 - keep serving the previous index
            logger.warning("background BM25 rebuild of %s failed: %s", name, exc)
        finally:
            with self._lock:
                self._rebuilding.discard(name)

    def _dir(self, name: str) -> Path:
        return self.root / name

    def _read_meta(self, name: str) -> dict[str, Any] | None:
        try:
            return json.loads((self._dir(name) / "meta.json").read_text())
        except (OSError, ValueError):
            return None

    def _load_or_build(self, name: str, collection: Any, revision: str, count: int) -> LexicalIndex:
        meta = self._read_meta(name)
        same_tokenizer = meta is not None and meta.get("tokenizer") == TOKENIZER_VERSION
        if (
            same_tokenizer
            and meta
            and (meta.get("revision"), meta.get("count")) == (revision, count)
        ):
            loaded = self._load(name, meta, revision)
            if loaded is not None:
                return loaded
        ids = _all_ids(collection)
        fp = fingerprint(ids)
        if same_tokenizer and meta and meta.get("fingerprint") == fp:
            loaded = self._load(name, meta, revision)
            if loaded is not None:
                self._write_meta(name, {**meta, "revision": revision, "count": len(ids)})
                return loaded
        return self._build(name, collection, revision)

    def _load(self, name: str, meta: dict[str, Any], revision: str) -> LexicalIndex | None:
        import bm25s

        folder = self._dir(name)
        try:
            ids = json.loads((folder / "ids.json").read_text())
            model = (
                bm25s.BM25.load(str(folder / "model"), load_corpus=False, mmap=False)
                if ids
                else None
            )
        except (OSError, ValueError, KeyError) as exc:
            logger.warning("BM25 cache %s unreadable (%s): rebuilding", folder, exc)
            return None
        return LexicalIndex(
            model=model,
            ids=ids,
            position={cid: i for i, cid in enumerate(ids)},
            revision=revision,
            count=len(ids),
            fingerprint=str(meta.get("fingerprint")),
        )

    def _build(self, name: str, collection: Any, revision: str) -> LexicalIndex:
        import bm25s

        t0 = time.perf_counter()
        logging.getLogger("bm25s").setLevel(max(logging.getLogger("bm25s").level, logging.INFO))
        ids, docs = _all_documents(collection)
        model = None
        if ids:
            model = bm25s.BM25(k1=BM25_K1, b=BM25_B)
            model.index([tokenize(d) for d in docs], show_progress=False)
        fp = fingerprint(ids)
        folder = self._dir(name)
        tmp = self.root / f".{name}.{uuid.uuid4().hex[:8]}.tmp"
        try:
            tmp.mkdir(parents=True)
            if model is not None:
                model.save(str(tmp / "model"))
            (tmp / "ids.json").write_text(json.dumps(ids))
            meta = {
                "fingerprint": fp,
                "revision": revision,
                "count": len(ids),
                "tokenizer": TOKENIZER_VERSION,
                "k1": BM25_K1,
                "b": BM25_B,
                "built_at": time.strftime("%Y-%m-%dT%H:%M:%S"),
            }
            (tmp / "meta.json").write_text(json.dumps(meta))
            old = self.root / f".{name}.{uuid.uuid4().hex[:8]}.old"
            if folder.exists():
                os.replace(folder, old)
            os.replace(tmp, folder)
            shutil.rmtree(old, ignore_errors=True)
        except OSError as exc:  # read-only index dir: keep the in-memory index only
            logger.warning("cannot save BM25 cache in %s: %s", self.root, exc)
            shutil.rmtree(tmp, ignore_errors=True)
        logger.info(
            "built BM25 index for %s: %d chunks in %.1fs", name, len(ids), time.perf_counter() - t0
        )
        return LexicalIndex(
            model=model,
            ids=ids,
            position={cid: i for i, cid in enumerate(ids)},
            revision=revision,
            count=len(ids),
            fingerprint=fp,
        )

    def _write_meta(self, name: str, meta: dict[str, Any]) -> None:
        try:
            tmp = self._dir(name) / f"meta.json.{uuid.uuid4().hex[:6]}"
            tmp.write_text(json.dumps(meta))
            os.replace(tmp, self._dir(name) / "meta.json")
        except OSError:
            pass
