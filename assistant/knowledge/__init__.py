"""Knowledge base: offline ingest of medical literature and hospital records, and hybrid
(dense + BM25, reciprocal-rank fused) retrieval over two Chroma collections,
``literature`` and ``hospital``.

Public API::

    ingest_literature(settings, *, limit=None, progress=True) -> IngestSummary
    ingest_hospital_records(settings, records, *, origin="hospital") -> IngestSummary
    print_summary(summary)
    Retriever(settings).search(query, *, collection="literature", k=5, where=None,
                               mode="hybrid") -> list[Passage]
    get_embedder(settings) -> Embedder
    index_progress(settings) -> IndexProgress   # done/total of the (background) ingest

Importing this package is cheap: torch, sentence-transformers, chromadb, bm25s and jieba
are imported on first use.
"""

from __future__ import annotations

from assistant.knowledge.chunking import ChunkingParams, chunk_text
from assistant.knowledge.embeddings import Embedder, chroma_embedding_function, get_embedder
from assistant.knowledge.ingest import (
    IngestSummary,
    SkippedItem,
    ingest_hospital_records,
    ingest_literature,
    print_summary,
)
from assistant.knowledge.progress import IndexProgress, index_progress
from assistant.knowledge.retrieval import Passage, Retriever, rrf_fuse
from assistant.knowledge.store import COLLECTIONS, get_client, open_collection

__all__ = [
    "COLLECTIONS",
    "ChunkingParams",
    "Embedder",
    "IndexProgress",
    "IngestSummary",
    "Passage",
    "Retriever",
    "SkippedItem",
    "chroma_embedding_function",
    "chunk_text",
    "get_client",
    "get_embedder",
    "index_progress",
    "ingest_hospital_records",
    "ingest_literature",
    "open_collection",
    "print_summary",
    "rrf_fuse",
]
