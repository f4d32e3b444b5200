"""Scoring of triage rows: proportions with Wilson 95 % intervals.

Wilson score interval: E. B. Wilson, JASA 22:209-212 (1927), z = 1.96.
Under-triage = predicted less urgent than gold (3-level scale); over-triage = more
urgent. Emergency recall = gold ``em`` predicted ``em``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

URGENCY3_RANK = {"em": 0, "ne": 1, "sc": 2}


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95 % Wilson score interval for ``successes / n`` (``(0, 1)`` when n = 0)."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def proportion(successes: int, n: int) -> dict[str, Any]:
    """``{"k", "n", "p", "lo", "hi"}`` with the Wilson interval."""
    lo, hi = wilson(successes, n)
    return {"k": successes, "n": n, "p": (successes / n) if n else None, "lo": lo, "hi": hi}


def score_triage(rows: Iterable[dict[str, Any]]) -> dict[str, Any]:
    """Metrics over scored rows (rows with ``error`` are counted separately).

    Returns:
        ``{"cases", "errors", "disposition5", "urgency3", "emergency_recall",
        "emergency_precision", "others_sent_to_em" (gold non-emergency predicted
        emergency), "under_triage", "over_triage", "department_top1", "department_top3",
        "per_level": {gold_urgency3: proportion}}``.
    """
    rows = list(rows)
    ok = [r for r in rows if not r.get("error")]
    d5 = [r for r in ok if r.get("gold_disposition")]
    u3 = [r for r in ok if r.get("gold_urgency3")]
    em = [r for r in u3 if r["gold_urgency3"] == "em"]
    dept = [r for r in ok if r.get("gold_departments")]
    under = sum(URGENCY3_RANK[r["pred_urgency3"]] > URGENCY3_RANK[r["gold_urgency3"]] for r in u3)
    over = sum(URGENCY3_RANK[r["pred_urgency3"]] < URGENCY3_RANK[r["gold_urgency3"]] for r in u3)
    per_level = {}
    for level in ("em", "ne", "sc"):
        sub = [r for r in u3 if r["gold_urgency3"] == level]
        per_level[level] = proportion(sum(r["pred_urgency3"] == level for r in sub), len(sub))
    return {
        "cases": len(rows),
        "errors": len(rows) - len(ok),
        "disposition5": proportion(sum(r["pred_disposition"] == r["gold_disposition"] for r in d5), len(d5)),
        "urgency3": proportion(sum(r["pred_urgency3"] == r["gold_urgency3"] for r in u3), len(u3)),
        "emergency_recall": proportion(sum(r["pred_urgency3"] == "em" for r in em), len(em)),
        "under_triage": proportion(under, len(u3)),
        "over_triage": proportion(over, len(u3)),
        "emergency_precision": proportion(sum(r["gold_urgency3"] == "em" for r in u3 if r["pred_urgency3"] == "em"),
                                          sum(r["pred_urgency3"] == "em" for r in u3)),
        "others_sent_to_em": proportion(sum(r["pred_urgency3"] == "em" for r in u3 if r["gold_urgency3"] != "em"),
                                        sum(r["gold_urgency3"] != "em" for r in u3)),
        "department_top1": proportion(
            sum(bool(r["pred_departments"]) and r["pred_departments"][0] in r["gold_departments"] for r in dept),
            len(dept)),
        "department_top3": proportion(
            sum(bool(set(r["pred_departments"][:3]) & set(r["gold_departments"])) for r in dept), len(dept)),
        "per_level": per_level,
    }
