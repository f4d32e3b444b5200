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

from assistant.allocation.compat import (
    Pairs,
    ResourceTable,
    SignalBatch,
    Windows,
    make_pairs,
    prepare,
)
from assistant.allocation.explain import build_result
from assistant.allocation.models import (
    AllocationResult,
    AllocationStatus,
    AllocationWeights,
    Resource,
)
from assistant.domain import DemandSignal


def greedy_take(
    batch: SignalBatch, table: ResourceTable, win: Windows, weights: AllocationWeights, now_ms: int
) -> Pairs:
    """Assignments chosen by priority-order first fit, as :class:`Pairs`.

    Works on the in-window ranges (no pair enumeration): within a range the table is
    sorted by start, so the first resource with capacity left is the earliest one.

    Args:
        batch: encoded signals.
        table: encoded resources (capacity is read, not modified).
        win: in-window ranges from :func:`~assistant.allocation.compat.compute_windows`.
        weights: objective weights (for the coefficients of the result).
        now_ms: current time (milliseconds since 2000-01-01 UTC).
    """
    order = np.lexsort((np.arange(len(batch)), batch.created_ms, batch.rank))
    live = order[win.n_pairs[order] > 0]
    cap = table.capacity.copy()
    start = table.start_ms
    lo_all, cnt_all = win.lo, win.cnt
    own_cols = np.flatnonzero(~win.overflow).tolist()
    nb_cols = np.flatnonzero(win.overflow).tolist()
    sig: list[int] = []
    res: list[int] = []
    over: list[bool] = []
    for i in live.tolist():
        lo_i, cnt_i = lo_all[i], cnt_all[i]
        for cols, is_overflow in ((own_cols, False), (nb_cols, True)):
            best = -1
            for c in cols:
                n = int(cnt_i[c])
                if n == 0:
                    continue
                a = int(lo_i[c])
                free = np.flatnonzero(cap[a : a + n] > 0)
                if free.size and (best < 0 or start[a + free[0]] < start[best]):
                    best = a + int(free[0])
            if best >= 0:
                cap[best] -= 1
                sig.append(i)
                res.append(best)
                over.append(is_overflow)
                break
    idx = np.argsort(np.asarray(sig, np.int64), kind="stable")
    return make_pairs(
        batch,
        table,
        np.asarray(sig, np.int64)[idx],
        np.asarray(res, np.int64)[idx],
        np.asarray(over, bool)[idx],
        weights,
        now_ms,
    )


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
    batch, table, win, weights, now_ms = prepare(
        signals, resources, weights, neighbours, now, shared
    )
    t1 = time.perf_counter()
    chosen = greedy_take(batch, table, win, weights, now_ms)
    t2 = time.perf_counter()
    return build_result(
        status=AllocationStatus.OPTIMAL,
        method="greedy",
        batch=batch,
        table=table,
        win=win,
        chosen=chosen,
        weights=weights,
        now_ms=now_ms,
        message="greedy baseline: not optimal in general",
        build_seconds=t1 - t0,
        solve_seconds=t2 - t1,
    )
