"""Routing latency per triage turn: p50/p95 milliseconds.

Times, on the written cases (``eval/cases/triage_cases.jsonl``, English and Chinese), with
the packaged models, no retrieval index and no hospital tables (CPU):

* ``conditions``: BM25 condition retrieval + NHAMCS prior (what condition grounding adds;
  the multilingual steps, embedding router and Chinese conditions, are timed in ``route``);
* ``route``: the whole department ranking (classifier + conditions + prior + rules);
* ``turn``: a whole triage turn (screening, red flags, complaint coding, acuity, routing).

Usage: ``.venv/bin/python benchmarks/bench_routing.py [--repeat 3]``
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q * (len(values) - 1)))]


def main() -> None:
    from assistant.settings import Settings
    from assistant.triage.complaints import code_complaint
    from assistant.triage.engine import Triager

    ap = argparse.ArgumentParser()
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    cases = [json.loads(x) for x in (REPO / "eval/cases/triage_cases.jsonl").read_text(encoding="utf-8").splitlines() if x]
    t0 = time.perf_counter()
    triager = Triager(Settings(), retriever=None, hospital=None)
    triager.triage("warm-up: sore throat", lead_in=False)
    print(f"load + first turn: {1000 * (time.perf_counter() - t0):.0f} ms")
    timings: dict[str, list[float]] = {"conditions": [], "route": [], "turn": []}
    for _ in range(args.repeat):
        for c in cases:
            coding = code_complaint(c["text"])
            t = time.perf_counter()
            triager._evidence(c["text"], coding, age=c.get("age"), sex=c.get("sex"))
            timings["conditions"].append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            triager._route(c["text"], age=c.get("age"), sex=c.get("sex"), pregnant=c.get("pregnant"),
                           emergency=False, coding=coding)
            timings["route"].append(1000 * (time.perf_counter() - t))
            t = time.perf_counter()
            triager.triage(c["text"], age=c.get("age"), sex=c.get("sex"), pregnant=c.get("pregnant"), lead_in=False)
            timings["turn"].append(1000 * (time.perf_counter() - t))
    print(f"{len(cases)} written cases x {args.repeat}")
    for name, v in timings.items():
        print(f"{name:>10}: p50 {statistics.median(v):6.1f} ms   p95 {pct(v, 0.95):6.1f} ms")


if __name__ == "__main__":
    main()
