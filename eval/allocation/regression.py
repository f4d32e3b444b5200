"""Regression check of the allocator against a stored reference run.

The reference (``reference_results.json.gz``, written by ``--write``) holds, for the
eval scenarios of :mod:`eval.allocation.scenarios` and the two 10k-signal benchmark
instances of ``benchmarks/bench_allocation.py`` (``backlog``, ``week``): the objective
terms, every assignment (signal -> resource) and every unmet signal's reason code.

:func:`compare` re-runs :func:`~assistant.allocation.allocate` and reports per case:

* ``objective_diff``: new minus reference objective (must be ``|d| <= 1e-9 * |obj|``);
* ``served_same``: the same set of signals is served;
* ``unmet_same``: the same reason code for every unmet signal;
* ``slots_differ``: served patients placed on a different resource than in the
  reference. With the same objective such a plan is an *equally optimal* alternative
  (the LP has ties: e.g. two doctors of one department in the same session with the
  same sub-specialty and languages are interchangeable); it is reported, not hidden;
* ``outcome_differs``: of those, patients whose slot differs in what matters to them
  (kind, department, bed type / modality, start, sub-specialties, languages), i.e.
  not just another of several identical doctors' sessions;
* ``fcfs_inversions`` / ``fcfs_inversions_reference``: equally placed patients served
  out of arrival order (:func:`fcfs_inversions`), new plan / reference plan;
* ``problems``: the independent plan checks (capacity, compatibility, integrality,
  urgency order, overflow) of :func:`eval.allocation.scenarios.check`.

Run from the repository root::

    python -m eval.allocation.regression            # compare (exit 1 on a regression)
    python -m eval.allocation.regression --write    # refresh the reference (after review)
"""

from __future__ import annotations

import argparse
import gzip
import json
import sys
from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from assistant.allocation import AllocationResult, Resource, allocate
from eval.allocation.scenarios import (
    MIX_WEEK,
    NEIGHBOURS,
    SCENARIOS,
    SHARED,
    Scenario,
    check,
    synthetic_hospital,
    synthetic_signals,
)

REFERENCE = Path(__file__).with_name("reference_results.json.gz")
OBJECTIVE_RTOL = 1e-9


def _bench(name: str, **kw: object) -> Callable[[int], Scenario]:
    def make(seed: int = 0) -> Scenario:
        return Scenario(
            name,
            f"bench_allocation {name}, 10k signals",
            synthetic_signals(10_000, 1, **kw),  # type: ignore[arg-type]
            synthetic_hospital(seed),
        )

    return make


CASES: dict[str, Callable[[int], Scenario]] = {
    **SCENARIOS,
    "bench_backlog_10k": _bench("bench_backlog_10k"),
    "bench_week_10k": _bench("bench_week_10k", mix=MIX_WEEK, future_share=0.8),
}


def fingerprint(result: AllocationResult) -> dict[str, object]:
    """The comparable content of a result: status, objective terms, assignments, unmet codes."""
    return {
        "status": str(result.status.value),
        "objective": result.objective.model_dump(),
        "assignments": {a.signal_id: a.resource_id for a in result.assignments},
        "unmet": {u.signal_id: str(u.reason_code.value) for u in result.unmet},
    }


def _same_unmet(new: dict[str, str], old: dict[str, str]) -> bool:
    """Same reason per signal; scenarios with generated (uuid) ids compare the codes only."""
    if set(new) == set(old):
        return new == old
    return sorted(new.values()) == sorted(old.values())


def _profile(r: Resource) -> tuple[object, ...]:
    """What a patient gets from a resource: all but its id, label and capacity."""
    return (r.kind, r.department, r.bed_type, r.modality, r.start,
            tuple(sorted(r.sub_specialties)), tuple(sorted(r.languages)))


def fcfs_inversions(assignments: dict[str, str], sc: Scenario) -> int:
    """Pairs of equally placed patients served out of order.

    Two served patients of one class (same resource kind and sub-type, department,
    disposition, sub-specialty, language and window length: the LP cannot tell them
    apart) form an inversion when the one who asked earlier got the strictly later slot
    although each could take the other's (both slots inside both windows). Swapping
    them leaves the objective unchanged, so every inversion is an arbitrary tie-break.
    """
    sig = {s.id: s for s in sc.signals}
    start = {r.id: r.start for r in sc.resources}
    classes: dict[tuple[object, ...], list[tuple[datetime, datetime, datetime]]] = {}
    for sid, rid in assignments.items():
        s = sig[sid]
        key = (s.resource_type, s.bed_type, s.modality, s.department, s.disposition,
               s.sub_specialty, s.language, s.latest - s.earliest)
        classes.setdefault(key, []).append((max(s.earliest, sc.now), s.latest, start[rid]))
    count = 0
    for members in classes.values():
        members.sort()
        for i, (lo_i, hi_i, t_i) in enumerate(members):
            for lo_j, hi_j, t_j in members[i + 1 :]:
                if t_i > t_j and lo_i <= t_j <= hi_i and lo_j <= t_i <= hi_j:
                    count += 1
    return count


def run_case(sc: Scenario) -> AllocationResult:
    """``allocate`` with the scenario's settings (those of the scenario runner)."""
    return allocate(sc.signals, sc.resources, now=sc.now, neighbours=NEIGHBOURS, shared=SHARED)


def write_reference(path: Path = REFERENCE, seed: int = 0) -> None:
    """Run every case and store its fingerprint (gzipped JSON)."""
    data = {name: fingerprint(run_case(make(seed))) for name, make in CASES.items()}
    with gzip.open(path, "wt", encoding="utf-8") as fh:
        json.dump(data, fh, sort_keys=True, separators=(",", ":"))


def compare(path: Path = REFERENCE, seed: int = 0) -> list[dict[str, object]]:
    """Re-run every case and compare with the reference.

    Returns:
        One row per case with ``objective_diff``, ``served_same``, ``unmet_same``,
        ``slots_differ``, ``served``, ``problems`` (plan checks) and ``ok`` (same
        status, objective within ``1e-9`` relative, same served set, same unmet
        reasons, no problems).

    Raises:
        FileNotFoundError: no reference file (run with ``--write`` first).
    """
    with gzip.open(path, "rt", encoding="utf-8") as fh:
        ref = json.load(fh)
    rows: list[dict[str, object]] = []
    for name, make in CASES.items():
        sc = make(seed)
        result = run_case(sc)
        new, old = fingerprint(result), ref[name]
        obj_new = float(new["objective"]["total"])  # type: ignore[index]
        obj_old = float(old["objective"]["total"])
        diff = obj_new - obj_old
        a_new: dict[str, str] = new["assignments"]  # type: ignore[assignment]
        a_old: dict[str, str] = old["assignments"]
        served_same = set(a_new) == set(a_old)
        slots_differ = sum(1 for s, r in a_new.items() if a_old.get(s, r) != r)
        prof = {r.id: _profile(r) for r in sc.resources}
        outcome_differs = sum(
            1 for s, r in a_new.items() if s in a_old and prof[a_old[s]] != prof[r]
        )
        problems = check(sc, result)
        inversions = (fcfs_inversions(a_new, sc), fcfs_inversions(a_old, sc))
        row = {
            "case": name,
            "signals": len(sc.signals),
            "served": len(a_new),
            "objective": round(obj_new, 6),
            "objective_diff": diff,
            "served_same": served_same,
            "unmet_same": _same_unmet(new["unmet"], old["unmet"]),  # type: ignore[arg-type]
            "slots_differ": slots_differ,
            "outcome_differs": outcome_differs,
            "fcfs_inversions": inversions[0],
            "fcfs_inversions_reference": inversions[1],
            "status_same": new["status"] == old["status"],
            "problems": problems,
        }
        row["ok"] = bool(
            row["status_same"]
            and abs(diff) <= OBJECTIVE_RTOL * max(1.0, abs(obj_old))
            and served_same
            and row["unmet_same"]
            and not problems
        )
        rows.append(row)
    return rows


def main(argv: list[str] | None = None) -> int:
    """CLI: compare with the reference (exit 1 on a regression) or ``--write`` it."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--write", action="store_true", help="refresh the reference file")
    args = parser.parse_args(argv)
    if args.write:
        write_reference()
        print(f"wrote {REFERENCE}")
        return 0
    rows = compare()
    for row in rows:
        print(json.dumps(row, default=str))
    return 0 if all(r["ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
