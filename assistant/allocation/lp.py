"""The batch allocator: a bipartite b-matching LP solved with HiGHS.

Model (maximise)::

    max  sum_{(s,r) in P} c_sr x_sr
    s.t. sum_r x_sr <= 1          for every signal s      (assignment constraint)
         sum_s x_sr <= cap_r      for every resource r    (capacity constraint)
         x_sr >= 0                for (s,r) in P          (compatible pairs only)

``c_sr`` is defined in :class:`~assistant.allocation.models.AllocationWeights`. The
constraint matrix is the incidence matrix of a bipartite graph, hence totally
unimodular, and the right-hand sides are integers: every vertex is integral, so the
simplex optimum is a 0/1 assignment. This is verified after every solve.

Columns have no explicit upper bound 1 (the signal row implies it); explicit bounds
would only add degeneracy and move dual values from rows to column bounds.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from datetime import datetime

import highspy
import numpy as np
from numpy.typing import NDArray

from assistant.allocation.compat import Pairs, ResourceTable, SignalBatch, prepare
from assistant.allocation.explain import Marginal, binding_groups, build_result
from assistant.allocation.greedy import greedy_take
from assistant.allocation.models import (
    INTEGRALITY_TOL,
    AllocationResult,
    AllocationStatus,
    AllocationWeights,
    Resource,
)
from assistant.triage.schemas import DemandSignal, Disposition

_INF = highspy.kHighsInf


def allocate(
    signals: Sequence[DemandSignal],
    resources: Sequence[Resource] | ResourceTable,
    *,
    weights: AllocationWeights | None = None,
    time_limit_s: float = 10.0,
    now: datetime | None = None,
    neighbours: Mapping[str, Sequence[str]] | None = None,
    shared: Sequence[str] | None = None,
    explain_top: int = 10,
) -> AllocationResult:
    """Optimal assignment of demand signals to remaining capacity.

    Args:
        signals: demand signals (``S``); ids must be unique.
        resources: resources (``R``) with remaining capacity, or a prebuilt
            :class:`ResourceTable`.
        weights: objective weights; defaults to ``AllocationWeights()``.
        time_limit_s: HiGHS wall-clock limit in seconds. On expiry the result has
            status ``time_limit`` and the greedy plan.
        now: current time (aware); resources starting earlier are ignored.
            Defaults to the wall clock.
        neighbours: overflow table ``department -> [neighbour departments]``;
            defaults to :data:`~assistant.allocation.models.DEFAULT_NEIGHBOURS`.
        shared: shared-service departments; defaults to ``DEFAULT_SHARED`` (RADIOL).
        explain_top: number of binding groups (largest dual first) whose shadow price
            is verified by a warm-started re-solve with one more unit of capacity.

    Returns:
        :class:`AllocationResult` with status ``optimal`` (possibly with unmet
        signals), ``infeasible`` (demand exists but nothing can be served),
        ``time_limit`` or ``error``. Shadow prices of binding capacity constraints
        are grouped in ``binding``.

    Raises:
        InputError: duplicate ids or naive datetimes (bad input, not an outcome).
    """
    t0 = time.perf_counter()
    batch, table, pairs, weights, now_s = prepare(signals, resources, weights, neighbours, now, shared)
    if len(pairs) == 0:
        return build_result(
            status=AllocationStatus.OPTIMAL,
            method="lp",
            batch=batch,
            table=table,
            pairs=pairs,
            take=np.zeros(0, np.int64),
            weights=weights,
            now_s=now_s,
            build_seconds=time.perf_counter() - t0,
        )
    highs, sig_rows, res_rows = _build_model(batch, table, pairs, time_limit_s)
    t1 = time.perf_counter()
    run_status = highs.run()
    model_status = highs.getModelStatus()
    t2 = time.perf_counter()
    common = dict(
        method="lp",
        batch=batch,
        table=table,
        pairs=pairs,
        weights=weights,
        now_s=now_s,
        num_constraints=len(sig_rows) + len(res_rows),
        build_seconds=t1 - t0,
        solve_seconds=t2 - t1,
    )
    if model_status != highspy.HighsModelStatus.kOptimal:
        timed_out = model_status == highspy.HighsModelStatus.kTimeLimit
        status = AllocationStatus.TIME_LIMIT if timed_out else AllocationStatus.ERROR
        what = highs.modelStatusToString(model_status)
        return build_result(
            status=status,
            take=greedy_take(batch, table, pairs),
            message=f"HiGHS stopped ({what}, run status {run_status}); greedy plan returned",
            **common,  # type: ignore[arg-type]
        )
    sol = highs.getSolution()
    x = np.asarray(sol.col_value, np.float64)
    row_dual = np.asarray(sol.row_dual, np.float64)
    integral = bool(np.all(np.minimum(np.abs(x), np.abs(1.0 - x)) <= INTEGRALITY_TOL))
    message = ""
    if integral:
        take = np.flatnonzero(x > 0.5)
    else:
        take = _round(x, pairs, table.capacity)
        n_frac = int(np.sum(np.minimum(np.abs(x), np.abs(1.0 - x)) > INTEGRALITY_TOL))
        message = f"LP optimum had {n_frac} fractional values; rounded to a feasible plan"
    shadow = np.zeros(len(table))
    shadow[res_rows] = np.maximum(row_dual[len(sig_rows):], 0.0)
    t3 = time.perf_counter()
    marginals = _verify_marginals(highs, batch, table, pairs, x, shadow, res_rows, explain_top)
    common["explain_seconds"] = time.perf_counter() - t3
    return build_result(
        status=AllocationStatus.OPTIMAL,
        take=take,
        shadow=shadow,
        marginals=marginals,
        integral=integral,
        rounded=not integral,
        message=message,
        **common,  # type: ignore[arg-type]
    )


def _build_model(
    batch: SignalBatch, table: ResourceTable, pairs: Pairs, time_limit_s: float
) -> tuple[highspy.Highs, NDArray[np.int64], NDArray[np.int64]]:
    """Pass the LP to HiGHS in column-wise (CSC) form, two nonzeros per column.

    Returns:
        ``(highs, sig_rows, res_rows)``: the loaded solver, the signal indices of rows
        ``0..len(sig_rows)-1`` and the resource indices of the following rows.
    """
    sig_rows, sig_row_of = np.unique(pairs.sig, return_inverse=True)
    res_rows, res_row_of = np.unique(pairs.res, return_inverse=True)
    n_col = len(pairs)
    n_sig_rows = len(sig_rows)
    n_row = n_sig_rows + len(res_rows)

    index = np.empty(2 * n_col, np.int32)
    index[0::2] = sig_row_of
    index[1::2] = n_sig_rows + res_row_of

    lp = highspy.HighsLp()
    lp.num_col_ = n_col
    lp.num_row_ = n_row
    lp.sense_ = highspy.ObjSense.kMaximize
    lp.col_cost_ = pairs.coef
    lp.col_lower_ = np.zeros(n_col)
    lp.col_upper_ = np.full(n_col, _INF)
    lp.row_lower_ = np.full(n_row, -_INF)
    lp.row_upper_ = np.concatenate(
        [np.ones(n_sig_rows), table.capacity[res_rows].astype(np.float64)]
    )
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.num_col_ = n_col
    lp.a_matrix_.num_row_ = n_row
    lp.a_matrix_.start_ = np.arange(0, 2 * n_col + 1, 2, dtype=np.int32)
    lp.a_matrix_.index_ = index
    lp.a_matrix_.value_ = np.ones(2 * n_col)

    highs = highspy.Highs()
    highs.setOptionValue("output_flag", False)
    highs.setOptionValue("solver", "simplex")  # a vertex (hence integral) optimum
    highs.setOptionValue("time_limit", float(time_limit_s))
    highs.passModel(lp)
    return highs, sig_rows, res_rows


def _round(x: NDArray[np.float64], pairs: Pairs, capacity: NDArray[np.int64]) -> NDArray[np.int64]:
    """Feasible 0/1 plan from a fractional LP point (fallback; TU makes it unreachable).

    Pairs are taken by decreasing LP value, then coefficient, while the signal is
    unserved and the resource has capacity left.
    """
    order = np.lexsort((-pairs.coef, -x))
    order = order[x[order] > INTEGRALITY_TOL]
    cap = capacity.copy()
    done: set[int] = set()
    take: list[int] = []
    for p in order.tolist():
        s, r = int(pairs.sig[p]), int(pairs.res[p])
        if s not in done and cap[r] > 0:
            done.add(s)
            cap[r] -= 1
            take.append(p)
    return np.asarray(sorted(take), np.int64)


def _verify_marginals(
    highs: highspy.Highs,
    batch: SignalBatch,
    table: ResourceTable,
    pairs: Pairs,
    x: NDArray[np.float64],
    shadow: NDArray[np.float64],
    res_rows: NDArray[np.int64],
    top: int,
) -> dict[int, Marginal]:
    """Re-solve with +1 capacity on the top binding groups' representative resources.

    Each re-solve changes one row bound and warm-starts from the optimal basis, so it
    usually takes a handful of simplex iterations. The bound is restored afterwards.

    Returns:
        ``{resource index: Marginal}`` for up to ``top`` groups.
    """
    if top <= 0:
        return {}
    base_obj = highs.getInfo().objective_function_value
    n_sig_rows = highs.getNumRow() - len(res_rows)
    row_of = {int(r): n_sig_rows + i for i, r in enumerate(res_rows.tolist())}
    base_served = np.zeros(len(batch), bool)
    base_served[pairs.sig[x > 0.5]] = True
    out: dict[int, Marginal] = {}
    for _, rows in binding_groups(table, shadow)[:top]:
        rep = rows[0]
        row = row_of[rep]
        cap = float(table.capacity[rep])
        highs.changeRowBounds(row, -_INF, cap + 1.0)
        highs.run()
        if highs.getModelStatus() == highspy.HighsModelStatus.kOptimal:
            gain = highs.getInfo().objective_function_value - base_obj
            x1 = np.asarray(highs.getSolution().col_value)
            served = np.zeros(len(batch), bool)
            served[pairs.sig[x1 > 0.5]] = True
            new = np.flatnonzero(served & ~base_served)
            newly = None
            if served.sum() > base_served.sum() and new.size:
                newly = list(Disposition)[int(batch.rank[new].min())]
            out[rep] = Marginal(gain=max(gain, 0.0), newly_served=newly)
        highs.changeRowBounds(row, -_INF, cap)
    return out
