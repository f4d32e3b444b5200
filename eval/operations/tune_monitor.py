"""Choose the EWMA chart's lambda and L on simulated histories (seeds 100-139).

For each (lambda, L): the share of seeds whose unshifted last week raises any alert (6
charts x 7 days) and the share whose emergency share x1.5 on the last two days is
flagged within those two days. The evaluation (``assistant eval operations``) uses
seeds 0..29, never these. Run: ``.venv/bin/python eval/operations/tune_monitor.py``.
"""

from __future__ import annotations

import copy
import sys
import tempfile
from datetime import date
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))


def main() -> None:
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital
    from assistant.operations import history
    from assistant.operations.evaluate import WEEK_START, _detects

    policy = history.kb_yaml("ops_policy.yaml")
    with tempfile.TemporaryDirectory() as tmp:
        build_demo_hospital(Path(tmp) / "h.sqlite", seed=7, start_date=WEEK_START)
        factory = open_db(Path(tmp) / "h.sqlite", create=False)
        bases = history.department_bases(factory, policy)
        factory.kw["bind"].dispose()
    end = date(2026, 11, 29)
    hists = [history.simulate_history(bases, end, days=90, seed=s, policy=policy) for s in range(100, 140)]
    print("lambda  L    clean weeks with an alert   shift flagged within 2 days")
    for lam in (0.2, 0.3, 0.4, 0.5, 0.7):
        for L in (2.7, 3.0, 3.2):
            p = copy.deepcopy(policy)
            p["monitor"]["lambda"], p["monitor"]["L"] = lam, L
            res = [_detects(h, end, p) for h in hists]
            fa = sum(a > 0 for _, a, _ in res) / len(res)
            det = sum(f for f, _, _ in res) / len(res)
            print(f"{lam:5.1f} {L:4.1f}   {fa:10.2f}                  {det:10.2f}")


if __name__ == "__main__":
    main()
