"""Greedy baseline: priority order, first fit.

Signals are processed by urgency (disposition rank), then ``created_at``, then input
order. Each takes the earliest compatible resource with capacity left in its own (or a
shared-service) department, else the earliest one in a neighbour department (a booking
desk's rule).
Used for comparison with the LP and as the fallback plan when the solver stops early.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np
from numpy.typing import NDArray

from assistant.allocation.compat import Pairs, ResourceTable, SignalBatch, prepare
from assistant.allocation.explain import build_result
from assistant.allocation.models import (
    AllocationResult,
    AllocationStatus,
    AllocationWeights,
    Resource,
)
from assistant.triage.schemas import DemandSignal


def greedy_take(batch: SignalBatch, table: ResourceTable, pairs: Pairs) -> NDArray[np.int64]:
    """Indices into ``pairs`` chosen by priority-order first fit.

    Relies on ``pairs`` being sorted by signal, own-department pairs first (by start),
    as produced by :func:`~assistant.allocation.compat.enumerate_pairs`.
    """
    n_sig = len(batch)
    if n_sig == 0 or len(pairs) == 0:
        return np.zeros(0, np.int64)
    ptr = np.searchsorted(pairs.sig, np.arange(n_sig + 1))
    order = np.lexsort((np.arange(n_sig), batch.created_s, batch.rank))
    cap = table.capacity.copy()
    res, overflow, start = pairs.res, pairs.overflow, table.start_s
    take: list[int] = []
    for i in order.tolist():
        a, b = int(ptr[i]), int(ptr[i + 1])
        if a == b:
            continue
        r = res[a:b]
        free = cap[r] > 0
        own = free & ~overflow[a:b]
        cand = np.flatnonzero(own if own.any() else free)
        if cand.size == 0:
            continue
        k = int(cand[np.argmin(start[r[cand]])])  # earliest (first on ties)
        cap[r[k]] -= 1
        take.append(a + k)
    return np.asarray(sorted(take), np.int64)


def greedy_allocate(
    signals: Sequence[DemandSignal],
    resources: Sequence[Resource] | ResourceTable,
    *,
    weights: AllocationWeights | None = None,
    now: datetime | None = None,
    neighbours: Mapping[str, Sequence[str]] | None = None,
    shared: Sequence[str] | None = None,
) -> AllocationResult:
    """Priority-order first-fit allocation (baseline for :func:`allocate`).

    Args:
        signals: demand signals; ids must be unique.
        resources: resources with remaining capacity, or a :class:`ResourceTable`.
        weights: only used to report objective terms comparable with the LP.
        now: current time (aware); defaults to the wall clock.
        neighbours: overflow table; defaults to ``DEFAULT_NEIGHBOURS``.
        shared: shared-service departments; defaults to ``DEFAULT_SHARED`` (RADIOL).

    Returns:
        :class:`AllocationResult` with ``method="greedy"`` and no dual values.

    Raises:
        InputError: duplicate ids or naive datetimes.
    """
    t0 = time.perf_counter()
    batch, table, pairs, weights, now_s = prepare(signals, resources, weights, neighbours, now, shared)
    t1 = time.perf_counter()
    take = greedy_take(batch, table, pairs)
    t2 = time.perf_counter()
    return build_result(
        status=AllocationStatus.OPTIMAL,
        method="greedy",
        batch=batch,
        table=table,
        pairs=pairs,
        take=take,
        weights=weights,
        now_s=now_s,
        message="greedy baseline: not optimal in general",
        build_seconds=t1 - t0,
        solve_seconds=t2 - t1,
    )
