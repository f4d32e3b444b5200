"""Independent checks of an allocation plan, and comparison metrics.

These assume the default shared-service departments (``DEFAULT_SHARED``). They
re-derive compatibility from the raw objects (plain Python, no shared code with
the vectorised enumeration) so that tests and scenario runs catch enumeration bugs.
Each ``*_violations`` function returns a list of human-readable problems (empty = OK).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from assistant.allocation.models import (
    DEFAULT_NEIGHBOURS,
    DEFAULT_SHARED,
    AllocationResult,
    Resource,
)
from assistant.domain import DemandSignal


def is_compatible(
    signal: DemandSignal,
    resource: Resource,
    *,
    now: datetime,
    neighbours: Mapping[str, Sequence[str]] | None = None,
    shared: Sequence[str] | None = None,
) -> tuple[bool, bool]:
    """Whether ``resource`` can serve ``signal``, and whether that would be overflow.

    ``neighbours``: overflow table; ``shared``: shared-service departments (both default
    to none).

    Returns:
        ``(compatible, overflow)``.
    """
    nb = DEFAULT_NEIGHBOURS if neighbours is None else neighbours
    if resource.kind != signal.resource_type:
        return False, False
    if signal.resource_type == "bed" and resource.bed_type != signal.bed_type:
        return False, False
    if signal.resource_type == "imaging" and resource.modality != signal.modality:
        return False, False
    if not (max(signal.earliest, now) <= resource.start <= signal.latest):
        return False, False
    if resource.department == signal.department or resource.department in (
            DEFAULT_SHARED if shared is None else shared):
        return True, False
    if resource.department in nb.get(signal.department, ()):
        return True, True
    return False, False


def capacity_violations(result: AllocationResult, resources: Sequence[Resource]) -> list[str]:
    """Resources used beyond capacity, unknown resource ids, signals assigned twice."""
    cap = {r.id: r.capacity for r in resources}
    problems: list[str] = []
    used = Counter(a.resource_id for a in result.assignments)
    for rid, n in used.items():
        if rid not in cap:
            problems.append(f"unknown resource {rid}")
        elif n > cap[rid]:
            problems.append(f"resource {rid}: {n} assigned > capacity {cap[rid]}")
    twice = [s for s, n in Counter(a.signal_id for a in result.assignments).items() if n > 1]
    problems.extend(f"signal {s} assigned {n} times" for s, n in [(s, 2) for s in twice])
    return problems


def compatibility_violations(
    result: AllocationResult,
    signals: Sequence[DemandSignal],
    resources: Sequence[Resource],
    *,
    now: datetime,
    neighbours: Mapping[str, Sequence[str]] | None = None,
    shared: Sequence[str] | None = None,
) -> list[str]:
    """Assignments that break type, department/overflow or time-window compatibility."""
    sig = {s.id: s for s in signals}
    res = {r.id: r for r in resources}
    problems = []
    for a in result.assignments:
        ok, over = is_compatible(
            sig[a.signal_id], res[a.resource_id], now=now, neighbours=neighbours, shared=shared
        )
        if not ok:
            problems.append(f"{a.signal_id} -> {a.resource_id}: not compatible")
        elif over != a.overflow:
            problems.append(f"{a.signal_id} -> {a.resource_id}: overflow flag wrong")
    covered = {a.signal_id for a in result.assignments} | {u.signal_id for u in result.unmet}
    if covered != set(sig) or len(result.assignments) + len(result.unmet) != len(sig):
        problems.append("assignments + unmet do not partition the signals")
    return problems


def _arrays(resources: Sequence[Resource], result: AllocationResult) -> dict[str, np.ndarray]:
    used = Counter(a.resource_id for a in result.assignments)
    return {
        "kind": np.array([r.kind for r in resources], object),
        "sub": np.array([r.bed_type or r.modality or "" for r in resources], object),
        "dept": np.array([r.department for r in resources], object),
        "start": np.array([r.start.timestamp() for r in resources]),
        "spare": np.array([r.capacity - used[r.id] for r in resources]),
    }


def _compatible_mask(
    s: DemandSignal, arr: dict[str, np.ndarray], depts: Sequence[str], now: datetime
) -> np.ndarray:
    sub = (
        s.bed_type
        if s.resource_type == "bed"
        else s.modality
        if s.resource_type == "imaging"
        else ""
    )
    lo, hi = max(s.earliest, now).timestamp(), s.latest.timestamp()
    return (
        (arr["kind"] == s.resource_type)
        & (arr["sub"] == (sub or ""))
        & np.isin(arr["dept"], list(depts))
        & (arr["start"] >= lo)
        & (arr["start"] <= hi)
    )


def urgency_order_violations(
    result: AllocationResult,
    signals: Sequence[DemandSignal],
    resources: Sequence[Resource],
    *,
    now: datetime,
    neighbours: Mapping[str, Sequence[str]] | None = None,
) -> list[str]:
    """Unmet signals that could use a resource holding a less urgent patient.

    A violation is a resource ``r`` serving a signal of lower urgency (higher
    disposition rank) while a more urgent signal compatible with ``r`` is unmet.
    """
    nb = DEFAULT_NEIGHBOURS if neighbours is None else neighbours
    sig = {s.id: s for s in signals}
    worst: dict[str, int] = {}
    for a in result.assignments:
        worst[a.resource_id] = max(worst.get(a.resource_id, -1), a.disposition.rank)
    index = {r.id: i for i, r in enumerate(resources)}
    worst_arr = np.full(len(resources), -1)
    for rid, rank in worst.items():
        worst_arr[index[rid]] = rank
    arr = _arrays(resources, result)
    problems = []
    for u in result.unmet:
        s = sig[u.signal_id]
        depts = [s.department, *DEFAULT_SHARED, *nb.get(s.department, ())]
        bad = _compatible_mask(s, arr, depts, now) & (worst_arr > s.disposition.rank)
        for i in np.flatnonzero(bad)[:3]:
            problems.append(
                f"unmet {s.id} ({s.disposition.value}) could take {resources[i].id}, "
                "which serves a less urgent patient"
            )
    return problems


def overflow_violations(
    result: AllocationResult,
    signals: Sequence[DemandSignal],
    resources: Sequence[Resource],
    *,
    now: datetime,
    shared: Sequence[str] | None = None,
) -> list[str]:
    """Overflow assignments made while an own-department compatible resource had room.

    ``shared``: shared-service departments counted as the signal's own (default none).
    """
    sig = {s.id: s for s in signals}
    arr = _arrays(resources, result)
    problems = []
    for a in result.assignments:
        if a.overflow:
            s = sig[a.signal_id]
            own = [s.department, *(DEFAULT_SHARED if shared is None else shared)]
            room = _compatible_mask(s, arr, own, now) & (arr["spare"] > 0)
            if room.any():
                problems.append(
                    f"{s.id} overflowed to {a.department} while {s.department} had room"
                )
    return problems


def urgency_weighted_wait(result: AllocationResult, signals: Sequence[DemandSignal]) -> float:
    """Urgency-weighted mean wait in hours, counting unmet signals at their full window.

    ``sum_s w_s * wait_s / sum_s w_s`` with ``w_s`` the disposition's urgency weight,
    ``wait_s`` = hours from ``earliest`` to the assigned start, or, for an unmet
    signal, the window length ``latest - earliest`` (a lower bound on its real wait,
    so plans that leave patients unmet are not rewarded). Lower is better.
    """
    served = result.by_signal()
    num = den = 0.0
    for s in signals:
        w = s.disposition.urgency_weight
        a = served.get(s.id)
        wait = a.wait_hours if a else (s.latest - s.earliest).total_seconds() / 3600.0
        num += w * wait
        den += w
    return num / den if den else 0.0
