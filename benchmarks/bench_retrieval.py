"""Knowledge-base benchmark: ingest throughput, query latency, index size, memory.

1. Ingest: ``ingest_literature`` of MedQuAD (``--limit`` records, default all 16,407)
   into a fresh index; reports chunks/s of embedding + writing (CPU threads: torch
   default, i.e. all cores). ``--source-data-dir`` skips this and reuses an existing index.
2. Latency: for each size in ``--sizes`` (default 20000,100000 chunks) a temporary index
   is filled from the ingested collection, re-using its stored embeddings; above the
   corpus size the chunks are replicated under distinct ids (``<id>~r<n>``). Then every
   lay question of ``eval/retrieval/lay_questions.jsonl`` is searched in each mode with
   the query-vector cache off, so dense and hybrid latencies include embedding the
   query. Reports p50/p95 per mode, the one-off BM25 build, index size on disk and RSS.

Examples::

    python benchmarks/bench_retrieval.py --limit 300 --sizes 2000,5000   # smoke, ~1 min
    python benchmarks/bench_retrieval.py                                  # full (long)
    python benchmarks/bench_retrieval.py --source-data-dir .assistant-data --sizes 20000
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assistant.knowledge import Retriever, ingest_literature, open_collection, print_summary
from assistant.knowledge.store import forget_client
from assistant.settings import Settings, load_settings

LAY_QUESTIONS = ROOT / "eval" / "retrieval" / "lay_questions.jsonl"
ZH_QUESTIONS = ROOT / "eval" / "retrieval" / "zh_lay_questions.jsonl"
PAGE = 2000


def dir_size_mb(path: Path) -> float:
    """Total size of the files under ``path`` in MiB."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) / 2**20


def rss_mb() -> tuple[float, float]:
    """``(current RSS, peak RSS)`` of this process in MiB."""
    import psutil

    current = psutil.Process().memory_info().rss / 2**20
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return round(current, 1), round(peak, 1)


def percentile(values: list[float], q: float) -> float:
    """``q``-th percentile (0..100) by linear interpolation."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    pos = (len(ordered) - 1) * q / 100
    lo, hi = int(pos), min(int(pos) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def bench_ingest(settings: Settings, limit: int | None) -> dict[str, Any]:
    """Run the literature ingest and return its figures."""
    summary = ingest_literature(settings, limit=limit, progress=True)
    print_summary(summary, max_skips=3)
    return {
        "documents": summary.documents,
        "chunks": summary.chunks,
        "seconds": summary.seconds,
        "chunks_per_s": summary.chunks_per_s,
        "cpu_count": os.cpu_count(),
        "index_mb": round(dir_size_mb(settings.resolved_index_dir), 1),
        "rss_mb": rss_mb(),
    }


def fill_replicated(source: Settings, target: Settings, size: int) -> dict[str, Any]:
    """Copy (and replicate) ``size`` chunks with their embeddings into ``target``."""
    src = open_collection(source, "literature", create=False)
    dst = open_collection(target, "literature")
    total = src.count()
    if total == 0:
        raise SystemExit("source collection is empty")
    t0 = time.perf_counter()
    written = 0
    replica = 0
    while written < size:
        offset = 0
        while offset < total and written < size:
            page = src.get(
                include=["embeddings", "documents", "metadatas"], limit=PAGE, offset=offset
            )
            offset += len(page["ids"])
            n = min(len(page["ids"]), size - written)
            suffix = "" if replica == 0 else f"~r{replica}"
            metas = [{**(m or {}), "replica": replica} for m in page["metadatas"][:n]]
            dst.add(
                ids=[cid + suffix for cid in page["ids"][:n]],
                embeddings=page["embeddings"][:n],
                documents=page["documents"][:n],
                metadatas=metas,
            )
            written += n
        replica += 1
    return {
        "chunks": dst.count(),
        "replicas": replica,
        "fill_seconds": round(time.perf_counter() - t0, 1),
    }


def bench_latency(
    settings: Settings,
    queries: list[str],
    modes: tuple[str, ...],
    *,
    zh_queries: list[str] | None = None,
) -> dict[str, Any]:
    """Search every query in every mode; latency percentiles in milliseconds.

    Also: ``hybrid (cached)`` = the same queries again with the query-vector cache on,
    ``hybrid+filter`` = with ``where={"source": "NIDDK"}``, and ``hybrid zh`` = the
    Chinese lay questions (cross-lingual path) when given.
    """
    retriever = Retriever(settings, query_cache=0)
    t0 = time.perf_counter()
    retriever.warm_up(("literature",))
    warm = time.perf_counter() - t0
    retriever.search("warm up query", k=5, mode="hybrid")
    out: dict[str, Any] = {"warm_up_seconds_incl_bm25_build": round(warm, 1)}
    for mode in modes:
        times = []
        for query in queries:
            t = time.perf_counter()
            retriever.search(query, k=5, mode=mode)  # type: ignore[arg-type]
            times.append((time.perf_counter() - t) * 1000)
        out[mode] = {
            "n": len(times),
            "p50_ms": round(percentile(times, 50), 1),
            "p95_ms": round(percentile(times, 95), 1),
        }
    filt = []
    for query in queries:
        t = time.perf_counter()
        retriever.search(query, k=5, mode="hybrid", where={"source": "NIDDK"})
        filt.append((time.perf_counter() - t) * 1000)
    out["hybrid+filter"] = {
        "n": len(filt),
        "p50_ms": round(percentile(filt, 50), 1),
        "p95_ms": round(percentile(filt, 95), 1),
    }
    cached_retriever = Retriever(settings)
    for query in queries:
        cached_retriever.search(query, k=5, mode="hybrid")
    again = []
    for query in queries:
        t = time.perf_counter()
        cached_retriever.search(query, k=5, mode="hybrid")
        again.append((time.perf_counter() - t) * 1000)
    out["hybrid (cached)"] = {
        "n": len(again),
        "p50_ms": round(percentile(again, 50), 1),
        "p95_ms": round(percentile(again, 95), 1),
    }
    if zh_queries:
        retriever.search(zh_queries[0], k=5, mode="hybrid")  # loads the multilingual model
        zh = []
        for query in zh_queries:
            t = time.perf_counter()
            retriever.search(query, k=5, mode="hybrid")
            zh.append((time.perf_counter() - t) * 1000)
        out["hybrid zh"] = {
            "n": len(zh),
            "p50_ms": round(percentile(zh, 50), 1),
            "p95_ms": round(percentile(zh, 95), 1),
        }
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Knowledge-base ingest / retrieval benchmark")
    parser.add_argument(
        "--limit", type=int, default=None, help="MedQuAD records to ingest (default all)"
    )
    parser.add_argument(
        "--sizes", default="20000,100000", help="comma-separated index sizes in chunks"
    )
    parser.add_argument("--modes", default="dense,bm25,hybrid")
    parser.add_argument("--queries", type=int, default=0, help="use only the first N lay questions")
    parser.add_argument(
        "--source-data-dir", type=Path, default=None, help="reuse this state dir's index; no ingest"
    )
    parser.add_argument(
        "--work-dir", type=Path, default=None, help="where temp indexes go (default: system temp)"
    )
    parser.add_argument("--keep", action="store_true", help="keep the temp indexes")
    parser.add_argument(
        "--reuse",
        type=Path,
        default=None,
        help="work dir of an earlier --keep run: its filled size<N> indexes are reused",
    )
    parser.add_argument(
        "--zh", action="store_true", help="also time the Chinese lay questions (cross-lingual)"
    )
    parser.add_argument(
        "--out", type=Path, default=None, help="also write the figures as JSON here"
    )
    args = parser.parse_args(argv)

    if args.reuse is not None:
        work = args.reuse
        args.keep = True
    else:
        work = Path(tempfile.mkdtemp(prefix="bench-kb-", dir=args.work_dir))
    results: dict[str, Any] = {"load_avg_start": [round(x, 2) for x in os.getloadavg()]}
    try:
        if args.source_data_dir is not None:
            source = load_settings(data_dir=args.source_data_dir)
            results["ingest"] = "skipped (reusing index)"
        else:
            source = load_settings(data_dir=work / "ingest")
            results["ingest"] = bench_ingest(source, args.limit)
            print(json.dumps(results["ingest"]))

        rows = [json.loads(x) for x in LAY_QUESTIONS.read_text().splitlines() if x.strip()]
        queries = [r["question"] for r in rows][: args.queries or None]
        modes = tuple(args.modes.split(","))
        results["latency"] = {}
        for size in (int(s) for s in args.sizes.split(",") if s):
            target = load_settings(data_dir=work / f"size{size}")
            if (work / f"size{size}" / "index").is_dir():
                fill = {"chunks": open_collection(target, "literature", create=False).count()}
            else:
                fill = fill_replicated(source, target, size)
            zh = None
            if args.zh:
                zh = [json.loads(x)["question"] for x in ZH_QUESTIONS.read_text().splitlines() if x]
                from assistant.knowledge.crosslingual import build_condition_index

                build_condition_index(target)
            lat = bench_latency(target, queries, modes, zh_queries=zh)
            lat.update(fill)
            lat["index_mb"] = round(dir_size_mb(target.resolved_index_dir), 1)
            lat["rss_mb"] = rss_mb()
            results["latency"][size] = lat
            print(json.dumps({size: lat}))
            forget_client(target)
            if not args.keep:
                shutil.rmtree(work / f"size{size}", ignore_errors=True)
        results["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
        _print_table(results)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(results, indent=2))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


def _print_table(results: dict[str, Any]) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console(width=150)
    if isinstance(results.get("ingest"), dict):
        ing = results["ingest"]
        console.print(
            f"ingest: {ing['documents']} docs -> {ing['chunks']} chunks in {ing['seconds']:.0f}s, "
            f"{ing['chunks_per_s']:.1f} chunks/s on {ing['cpu_count']} cores; index {ing['index_mb']} MiB; "
            f"RSS {ing['rss_mb'][0]} MiB (peak {ing['rss_mb'][1]})"
        )
    table = Table(title="query latency (k=5, includes query embedding), ms")
    table.add_column("chunks")
    modes = [
        m
        for m in ("dense", "bm25", "hybrid", "hybrid+filter", "hybrid (cached)", "hybrid zh")
        if any(m in v for v in results["latency"].values())
    ]
    for mode in modes:
        table.add_column(f"{mode} p50/p95")
    table.add_column("BM25 build s")
    table.add_column("index MiB")
    table.add_column("RSS MiB")
    for lat in results["latency"].values():
        table.add_row(
            str(lat["chunks"]),
            *[f"{lat[m]['p50_ms']:.0f} / {lat[m]['p95_ms']:.0f}" for m in modes],
            str(lat.get("warm_up_seconds_incl_bm25_build", "")),
            str(lat["index_mb"]),
            f"{lat['rss_mb'][0]} (peak {lat['rss_mb'][1]})",
        )
    console.print(table)
    console.print(
        f"load average start {results['load_avg_start']}, end {results.get('load_avg_end')}"
    )


if __name__ == "__main__":
    raise SystemExit(main())
