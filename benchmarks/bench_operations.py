"""Operations benchmark (issue 15): the figures of ``assistant eval operations`` plus speed.

Prints, on the seeded demo hospital and history (see ``assistant/operations/evaluate.py``):

1. forecast backtest: mean MASE of ETS vs seasonal naive per department (goal: >= 10 %
   lower), MAPE, 80 % interval coverage, EMERG hourly MASE;
2. plan: unmet demand and urgency-weighted wait, plan vs fixed timetable, on the
   forecast week (goal: >= 20 % less unmet, same sessions) and the held-out actual week;
3. monitor: emergency share x1.5 for two days flagged within two days (seeded history and
   the rate over fresh seeds); alerts in an unshifted week;
4. region: P90 travel and occupancy spread, LP vs nearest-site;
5. speed: import of statsmodels, one 7-day forecast of all departments, the plan MIP,
   one monitoring pass, one regional LP.

Examples::

    python benchmarks/bench_operations.py             # everything (a few minutes on 2 cores)
    python benchmarks/bench_operations.py --quick     # 3 origins, 5 seeds
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def _import_seconds() -> float:
    code = "import time; t=time.perf_counter(); import statsmodels.tsa.holtwinters; print(time.perf_counter()-t)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", default=None, help="folder for the JSON and plots (default: a temp dir)")
    args = ap.parse_args()
    from assistant.operations.evaluate import markdown, run_operations_eval

    print(f"statsmodels Holt-Winters import: {_import_seconds():.2f} s (fresh process)")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        t0 = time.perf_counter()
        res = run_operations_eval(out, origins=3 if args.quick else 8, seeds=5 if args.quick else 30)
        wall = time.perf_counter() - t0
        print(markdown(res))
        print()
        f = res["forecast"]
        print("per-department MASE (ets / snaive):")
        for code, v in f["per_department"].items():
            print(f"  {code:10s} {v['ets']:.3f} / {v['snaive']:.3f}")
        print(f"timings (s): {res['timings_s']}; whole run {wall:.1f} s")
        speed = _speed(out)
        print("speed (s): " + ", ".join(f"{k} {v:.2f}" for k, v in speed.items()))
        print(f"goals: {res['goals']}")


def _speed(out: Path) -> dict[str, float]:
    """Wall time of each operation on the scratch demo database (one run each)."""
    from datetime import date

    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital
    from assistant.operations import service

    db = out / "speed.sqlite"
    build_demo_hospital(db, seed=7, start_date=date(2026, 12, 7))
    factory = open_db(db, create=False)
    times = {}
    t0 = time.perf_counter()
    from assistant.operations.history import ensure_history

    ensure_history(factory)
    times["history_180d"] = time.perf_counter() - t0
    for name, fn in (("forecast_all_departments", service.forecast_report), ("plan_week", service.plan_report),
                     ("monitor", service.monitor_report), ("region", service.region_report)):
        t0 = time.perf_counter()
        fn(factory)
        times[name] = time.perf_counter() - t0
    factory.kw["bind"].dispose()
    return times


if __name__ == "__main__":
    main()
