"""Live booking: place one new signal on the remaining capacity.

For a single signal the LP ``max sum_r c_r x_r, sum_r x_r <= 1, x_r <= cap_r`` is solved
exactly by taking the compatible resource with free capacity and the largest
coefficient, so no solver call is needed (sub-millisecond with a prebuilt
:class:`ResourceTable`). Coefficients are those of the batch LP, so a live booking
makes the choice the batch model would make for this patient alone.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime

import numpy as np

from assistant.allocation.compat import ResourceTable, expand, prepare
from assistant.allocation.explain import build_result
from assistant.allocation.models import (
    AllocationResult,
    AllocationStatus,
    AllocationWeights,
    Resource,
)
from assistant.domain import DemandSignal


def book_one(
    signal: DemandSignal,
    resources: Sequence[Resource] | ResourceTable,
    weights: AllocationWeights | None = None,
    *,
    now: datetime | None = None,
    neighbours: Mapping[str, Sequence[str]] | None = None,
    shared: Sequence[str] | None = None,
) -> AllocationResult:
    """Best resource for one new signal against remaining capacity.

    Args:
        signal: the new demand signal.
        resources: resources with remaining capacity; pass a :class:`ResourceTable`
            (and update it with :meth:`ResourceTable.after`) for many bookings.
        weights: objective weights; defaults to ``AllocationWeights()``.
        now: current time (aware); defaults to the wall clock.
        neighbours: overflow table; defaults to ``DEFAULT_NEIGHBOURS``.
        shared: shared-service departments; defaults to ``DEFAULT_SHARED`` (RADIOL).

    Returns:
        :class:`AllocationResult` (``method="single"``) with one assignment, or status
        ``infeasible`` and the reason in ``unmet``. Never raises for an unservable
        request.

    Raises:
        InputError: naive datetimes.
    """
    t0 = time.perf_counter()
    batch, table, win, weights, now_ms = prepare(
        [signal], resources, weights, neighbours, now, shared
    )
    pairs = expand(batch, table, win, weights, now_ms)
    t1 = time.perf_counter()
    free = np.flatnonzero(table.capacity[pairs.res] > 0)
    take = free[[int(np.argmax(pairs.coef[free]))]] if free.size else free
    t2 = time.perf_counter()
    return build_result(
        status=AllocationStatus.OPTIMAL,
        method="single",
        batch=batch,
        table=table,
        win=win,
        chosen=pairs.subset(take),
        weights=weights,
        now_ms=now_ms,
        num_constraints=1 + int(free.size),
        build_seconds=t1 - t0,
        solve_seconds=t2 - t1,
    )
