"""First-run benchmark: how soon can a fresh install answer with citations? (prints figures)

Into a fresh data dir:

1. ONNX export of the packaged MiniLM (once per install; loads torch).
2. First slice: ``ingest_first_slice`` (MedlinePlus health topics of MedQuAD, ~1,000
   chunks) — after this the web UI can serve answers with citations.
3. With ``--full``: the background ingest of the rest (a separate process, as
   ``assistant demo`` starts it), followed through ``index_progress`` until done (or
   ``--max-minutes``), then the multilingual condition index.

Prints seconds and chunks/s for each step and the load average (the machine is shared:
compare runs at similar load).

Usage::

    python benchmarks/bench_ingest.py                 # export + first slice
    python benchmarks/bench_ingest.py --full          # + the whole MedQuAD in the background
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from assistant.knowledge.background import ingest_first_slice, start_background_ingest
from assistant.knowledge.embeddings import export_onnx
from assistant.knowledge.progress import index_progress
from assistant.settings import load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--full", action="store_true", help="also run the background ingest")
    parser.add_argument("--max-minutes", type=float, default=60.0)
    parser.add_argument("--work-dir", type=Path, default=None)
    parser.add_argument("--keep", action="store_true")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-ingest-", dir=args.work_dir))
    settings = load_settings(data_dir=work, num_threads=2)
    out: dict[str, object] = {"cpu_count": os.cpu_count(), "load_start": os.getloadavg()}
    try:
        t = time.perf_counter()
        export_onnx(settings)
        out["onnx_export_s"] = round(time.perf_counter() - t, 1)

        t = time.perf_counter()
        first = ingest_first_slice(settings, background=False)
        out["first_slice"] = {
            "chunks": first.chunks,
            "seconds": round(time.perf_counter() - t, 1),
            "chunks_per_s": first.chunks_per_s,
        }
        print(json.dumps(out), flush=True)

        if args.full:
            t = time.perf_counter()
            proc = start_background_ingest(settings)
            deadline = time.monotonic() + 60 * args.max_minutes
            while proc.poll() is None and time.monotonic() < deadline:
                time.sleep(5)
                state = index_progress(settings)
                print(
                    f"  {state.state} {state.done}/{state.total} {state.chunks_per_s} chunks/s",
                    flush=True,
                )
            state = index_progress(settings)
            if proc.poll() is None:
                proc.terminate()
            out["rest"] = {
                "state": state.state,
                "chunks_done": state.done,
                "chunks_total": state.total,
                "seconds": round(time.perf_counter() - t, 1),
                "chunks_per_s": state.chunks_per_s,
            }
        out["load_end"] = os.getloadavg()
        print(json.dumps(out, indent=2))
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
