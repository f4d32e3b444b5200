"""The batch allocator: a bipartite b-matching LP, aggregated exactly, solved with HiGHS.

Full model (maximise), one column per compatible pair ``(s, r)``::

    max  sum c_sr x_sr
    s.t. sum_r x_sr <= 1       every signal s        (assignment constraint)
         sum_s x_sr <= cap_r   every resource r      (capacity constraint)
         x_sr >= 0

Exact aggregation. The coefficient (see :class:`AllocationWeights`) splits as
``c_sr = A_s + B_kr``: ``A_s`` depends on the signal only, ``B_kr`` on the resource and
the signal's *class* ``k`` (resource type, department, disposition, window length,
sub-specialty, language). Signals of one class with the same in-window resource set
form a *bucket*; they are interchangeable except for ``A_s``. The solved model is the
network flow::

    max  sum_b sum_r B_br y_br + sum_s A_s u_s
    s.t. sum_r y_br - sum_{s in b} u_s = 0   every bucket b
         sum_b y_br <= cap_r                every resource r   (capacity constraint)
         y_br >= 0, 0 <= u_s <= 1

``u_s`` = signal served, ``y_br`` = patients of bucket ``b`` on resource ``r``. Any
``x`` maps to ``(y, u)`` with the same value and back (fill each bucket's ``y`` with its
served signals in any order), so both models have the same optimum and the same
capacity rows, hence the same shadow prices. The matrix is a network matrix (bucket
rows negated: arcs signal -> bucket -> resource), hence totally unimodular, and the
simplex optimum is integral; this is verified after every solve. Typical batches
have far fewer buckets than signals (windows start at ``now`` and end between a few
resource start times), so the LP is much smaller than the pair count.

Two more exact reductions / tie rules (see :class:`AggregatedModel`): resources that
are interchangeable for every signal (a *clone class*: same group, start,
sub-specialties, languages) share one capacity row; and since every matching of a
class's served signals to the class's slots has the same objective, the final matching
is made earliest-deadline-first (first come, first served), not left to the simplex
path. HiGHS runs dual simplex with Devex pricing (2-3x faster than the default dual
steepest edge here). Explanations (shadow prices verified by re-solving) are computed
on the first read of ``AllocationResult.binding``.
"""

from __future__ import annotations

import heapq
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

import highspy
import numpy as np
from numpy.typing import NDArray

from assistant.allocation.compat import (
    Pairs,
    ResourceTable,
    SignalBatch,
    Windows,
    expand,
    make_pairs,
    prepare,
)
from assistant.allocation.explain import Marginal, binding_groups, build_result
from assistant.allocation.greedy import greedy_take
from assistant.allocation.models import (
    INTEGRALITY_TOL,
    AllocationResult,
    AllocationStatus,
    AllocationWeights,
    Resource,
)
from assistant.domain import DemandSignal, Disposition

_INF = highspy.kHighsInf
MERGE_CLONES = True


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
            Explanations are computed lazily, on the first read of ``result.binding``.

    Returns:
        :class:`AllocationResult` with status ``optimal`` (possibly with unmet
        signals), ``infeasible`` (demand exists but nothing can be served),
        ``time_limit`` or ``error`` (both with the greedy plan). Shadow prices of
        binding capacity constraints are grouped in ``binding``.

    Raises:
        InputError: duplicate ids or naive datetimes (bad input, not an outcome).
    """
    t0 = time.perf_counter()
    batch, table, win, weights, now_ms = prepare(
        signals, resources, weights, neighbours, now, shared
    )
    common: dict[str, object] = {
        "method": "lp",
        "batch": batch,
        "table": table,
        "win": win,
        "weights": weights,
        "now_ms": now_ms,
    }
    if int(win.n_pairs.sum()) == 0:
        empty = expand(batch, table, win, weights, now_ms, np.zeros(0, np.int64))
        return build_result(
            status=AllocationStatus.OPTIMAL,
            chosen=empty,
            num_variables=0,
            build_seconds=time.perf_counter() - t0,
            **common,  # type: ignore[arg-type]
        )
    model = AggregatedModel.build(batch, table, win, weights, now_ms, time_limit_s)
    t1 = time.perf_counter()
    run_status = model.highs.run()
    model_status = model.highs.getModelStatus()
    t2 = time.perf_counter()
    common.update(
        num_variables=model.highs.getNumCol(),
        num_constraints=model.highs.getNumRow(),
        build_seconds=t1 - t0,
        solve_seconds=t2 - t1,
    )
    if model_status != highspy.HighsModelStatus.kOptimal:
        timed_out = model_status == highspy.HighsModelStatus.kTimeLimit
        what = model.highs.modelStatusToString(model_status)
        return build_result(
            status=AllocationStatus.TIME_LIMIT if timed_out else AllocationStatus.ERROR,
            chosen=greedy_take(batch, table, win, weights, now_ms),
            message=f"HiGHS stopped ({what}, run status {run_status}); greedy plan returned",
            **common,  # type: ignore[arg-type]
        )
    sol = model.highs.getSolution()
    col = np.asarray(sol.col_value, np.float64)
    dist = np.minimum(np.abs(col), np.abs(1.0 - col))
    dist[: model.n_y] = np.abs(col[: model.n_y] - np.round(col[: model.n_y]))  # y may exceed 1
    integral = bool(np.all(dist <= INTEGRALITY_TOL))
    message = ""
    if not integral:
        n_frac = int(np.sum(dist > INTEGRALITY_TOL))
        message = f"LP optimum had {n_frac} fractional values; rounded to a feasible plan"
    chosen = model.disaggregate(col, batch, table, weights, now_ms)
    shadow = model.shadow_prices(np.asarray(sol.row_dual, np.float64), len(table))

    def marginals() -> dict[int, Marginal]:
        return model.verify_marginals(col, batch, table, shadow, explain_top)

    return build_result(
        status=AllocationStatus.OPTIMAL,
        chosen=chosen,
        shadow=shadow,
        marginals=marginals,
        integral=integral,
        rounded=not integral,
        message=message,
        **common,  # type: ignore[arg-type]
    )


@dataclass(slots=True)
class AggregatedModel:
    """The bucket-aggregated LP loaded in HiGHS.

    Columns ``0 .. n_y-1`` are ``y`` (one per bucket x in-window *clone class*,
    described by ``y_pairs`` whose ``sig`` is the bucket's representative signal and
    whose ``res`` is the first member of the class); the next ``len(u_sig)`` columns
    are ``u``. Rows: ``n_buckets`` bucket rows, then one capacity row per clone class
    in ``res_rows`` (upper bound ``clone_cap``).

    Clone classes (exact aggregation of resources): resources of one compatibility
    group with the same start, sub-specialties and languages (e.g. two doctors of a
    department in the same session) have identical objective coefficients for every
    signal, so only their total capacity matters; they share one capacity row and
    :meth:`disaggregate` fills their members in table order. This also makes the
    choice among them independent of the simplex path.
    """

    highs: highspy.Highs
    n_y: int
    y_pairs: Pairs
    y_bucket: NDArray[np.int64]
    u_sig: NDArray[np.int64]
    u_bucket: NDArray[np.int64]
    n_buckets: int
    res_rows: NDArray[np.int64]
    clone: NDArray[np.int64]
    clone_cap: NDArray[np.int64]
    bucket_class: NDArray[np.int64]

    @classmethod
    def build(
        cls,
        batch: SignalBatch,
        table: ResourceTable,
        win: Windows,
        weights: AllocationWeights,
        now_ms: int,
        time_limit_s: float,
    ) -> AggregatedModel:
        """Group signals into buckets and pass the LP to HiGHS in CSC form (vectorised).

        Raises:
            ValueError: HiGHS rejected the model (a bug: reported as status ``error``
                would hide it).
        """
        cand = np.flatnonzero(win.n_pairs > 0)
        span = batch.latest_ms[cand] - batch.earliest_ms[cand]
        key = np.column_stack(
            [
                batch.kind[cand],
                batch.subtype[cand],
                batch.dept[cand],
                batch.rank[cand],
                batch.sub[cand],
                batch.lang[cand],
                span,
                np.where(win.cnt[cand] > 0, win.lo[cand], 0),
                win.cnt[cand],
            ]
        )
        _, first, inverse = np.unique(key, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
        # number buckets by their representative's signal index (expand needs increasing rows)
        reps_unsorted = cand[first]
        order = np.argsort(reps_unsorted)
        relabel = np.empty_like(order)
        relabel[order] = np.arange(len(order))
        u_bucket = relabel[inverse]
        reps = reps_unsorted[order]
        n_buckets = len(reps)
        # class of a bucket: the key without the window (same coefficients B_kr)
        _, bucket_class = np.unique(key[first[order], :7], axis=0, return_inverse=True)
        bucket_class = bucket_class.reshape(-1).astype(np.int64)

        y_pairs = expand(batch, table, win, weights, now_ms, reps)
        rep_bucket = np.full(len(batch), -1, np.int64)
        rep_bucket[reps] = np.arange(n_buckets)
        clone = table.clone if MERGE_CLONES else np.arange(len(table), dtype=np.int64)
        n_clone = int(clone.max()) + 1 if len(clone) else 0
        clone_cap = np.bincount(clone, weights=table.capacity, minlength=n_clone).astype(np.int64)
        # one column per (bucket, clone class): keep the first pair of each, in order
        y_key = rep_bucket[y_pairs.sig] * max(n_clone, 1) + clone[y_pairs.res]
        _, first_of_key = np.unique(y_key, return_index=True)
        y_pairs = y_pairs.subset(np.sort(first_of_key))
        y_bucket = rep_bucket[y_pairs.sig]
        # c_sr = A_s + B_br with A measured relative to the bucket's representative
        w = batch.weight
        span_all = (batch.latest_ms - batch.earliest_ms).astype(np.float64)
        inv = np.where(span_all > 0, 1.0 / np.where(span_all > 0, span_all, 1.0), 0.0)
        m = np.maximum(batch.earliest_ms, now_ms)
        age = np.clip((now_ms - batch.earliest_ms) * inv, 0.0, 1.0)
        rep_of_u = reps[u_bucket]
        a_u = w[cand] * (
            1.0
            + weights.wait_penalty * (m[cand] - m[rep_of_u]) * inv[cand]
            + weights.age_bonus * age[cand]
        )
        a_rep = w[reps] * (1.0 + weights.age_bonus * age[reps])
        b_y = y_pairs.coef - a_rep[y_bucket]

        res_rows, res_row_of = np.unique(clone[y_pairs.res], return_inverse=True)
        n_y, n_u = len(y_pairs), len(cand)
        n_col, n_row = n_y + n_u, n_buckets + len(res_rows)
        index = np.empty(2 * n_y + n_u, np.int32)
        index[0 : 2 * n_y : 2] = y_bucket
        index[1 : 2 * n_y : 2] = n_buckets + res_row_of
        index[2 * n_y :] = u_bucket
        value = np.ones(2 * n_y + n_u)
        value[2 * n_y :] = -1.0
        start = np.concatenate([np.arange(0, 2 * n_y, 2), 2 * n_y + np.arange(n_u + 1)])

        lp = highspy.HighsLp()
        lp.num_col_ = n_col
        lp.num_row_ = n_row
        lp.sense_ = highspy.ObjSense.kMaximize
        lp.col_cost_ = np.concatenate([b_y, a_u])
        lp.col_lower_ = np.zeros(n_col)
        lp.col_upper_ = np.concatenate([np.full(n_y, _INF), np.ones(n_u)])
        lp.row_lower_ = np.concatenate([np.zeros(n_buckets), np.full(len(res_rows), -_INF)])
        lp.row_upper_ = np.concatenate(
            [np.zeros(n_buckets), clone_cap[res_rows].astype(np.float64)]
        )
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.num_col_ = n_col
        lp.a_matrix_.num_row_ = n_row
        lp.a_matrix_.start_ = start.astype(np.int32)
        lp.a_matrix_.index_ = index
        lp.a_matrix_.value_ = value

        highs = highspy.Highs()
        highs.setOptionValue("output_flag", False)
        highs.setOptionValue("solver", "simplex")  # a vertex (hence integral) optimum
        # presolve only costs time on these flow models (measured: 2x at 50k signals)
        highs.setOptionValue("presolve", "off")
        # Devex dual pricing instead of the default dual steepest edge: half the
        # iterations and cheaper ones on these network LPs (measured 2-2.5x faster at
        # 10k signals, benchmarks/bench_allocation.py). Same optimal objective and
        # served set; among tied optima it may pick another equally good slot
        # (python -m eval.allocation.regression compares with the stored reference).
        highs.setOptionValue("simplex_dual_edge_weight_strategy", 1)
        highs.setOptionValue("time_limit", float(time_limit_s))
        if highs.passModel(lp) == highspy.HighsStatus.kError:
            raise ValueError("HiGHS rejected the allocation model")
        return cls(
            highs=highs,
            n_y=n_y,
            y_pairs=y_pairs,
            y_bucket=y_bucket,
            u_sig=cand,
            u_bucket=u_bucket,
            n_buckets=n_buckets,
            res_rows=res_rows,
            clone=clone,
            clone_cap=clone_cap,
            bucket_class=bucket_class,
        )

    def disaggregate(
        self,
        col: NDArray[np.float64],
        batch: SignalBatch,
        table: ResourceTable,
        weights: AllocationWeights,
        now_ms: int,
    ) -> Pairs:
        """Turn ``(y, u)`` into signal-resource assignments.

        Within a bucket, served signals are taken oldest first (``earliest``) and given
        the bucket's resources earliest first; every such matching has the same
        objective value. A fractional point (not expected, see module doc) is rounded
        down: ``floor(y)`` places go to the bucket's signals with the largest ``u``.
        """
        y = np.floor(col[: self.n_y] + INTEGRALITY_TOL).astype(np.int64)
        u = col[self.n_y :]
        slots_per_bucket = np.bincount(self.y_bucket, weights=y, minlength=self.n_buckets)
        # served signals: per bucket, the slots_per_bucket[b] ones with largest u, then oldest
        order = np.lexsort((batch.earliest_ms[self.u_sig], -u, self.u_bucket))
        ub = self.u_bucket[order]
        seg = np.searchsorted(ub, np.arange(self.n_buckets + 1))
        rank_in_bucket = np.arange(len(order)) - seg[ub]
        keep = (rank_in_bucket < slots_per_bucket[ub]) & (u[order] > INTEGRALITY_TOL)
        served = self.u_sig[order[keep]]
        served_bucket = ub[keep]
        # slots: y columns repeated by count, by bucket then start
        ycols = np.flatnonzero(y > 0)
        ycols = ycols[np.lexsort((table.start_ms[self.y_pairs.res[ycols]], self.y_bucket[ycols]))]
        reps = np.repeat(ycols, y[ycols])
        slot_bucket = self.y_bucket[reps]
        # fewer served than slots can only happen when rounding: drop the extra slots
        n_served = np.bincount(served_bucket, minlength=self.n_buckets)
        seg_s = np.searchsorted(slot_bucket, np.arange(self.n_buckets + 1))
        slot_rank = np.arange(len(reps)) - seg_s[slot_bucket]
        reps = reps[slot_rank < n_served[slot_bucket]]
        res = self.fill_clones(reps, table)
        overflow = self.y_pairs.overflow[reps]
        served = self.fcfs_within_class(
            served, self.bucket_class[served_bucket], res, batch, table, now_ms
        )
        return make_pairs(batch, table, served, res, overflow, weights, now_ms)

    @staticmethod
    def fcfs_within_class(
        served: NDArray[np.int64],
        cls: NDArray[np.int64],
        res: NDArray[np.int64],
        batch: SignalBatch,
        table: ResourceTable,
        now_ms: int,
    ) -> NDArray[np.int64]:
        """Re-match served signals to their class's slot units, earliest deadline first.

        Signals of one class (same kind, sub-type, department, urgency, sub-specialty,
        language and window length) have coefficients ``c_sr = A_s + B_kr``, so every
        matching of the class's served signals to the class's slot units inside their
        windows has the same objective: the LP leaves the choice to the simplex path.
        This fixes it: units in start order each go to the eligible waiting signal with
        the earliest deadline (then the oldest), which finds a complete matching when
        one exists (points and intervals) and, when windows open together (a backlog),
        is first come, first served. A class where that fails (not expected) keeps the
        LP's matching.

        Args:
            served: signal of each unit as paired by the LP (``U``).
            cls: class of each unit (``U``).
            res: resource of each unit (``U``).

        Returns:
            The signal of each unit (``U``), a permutation of ``served`` within classes.
        """
        out = served.copy()
        lo_t = np.maximum(batch.earliest_ms, now_ms)
        hi_t = batch.latest_ms
        start = table.start_ms[res]
        order = np.lexsort((res, start, cls))
        bounds = np.flatnonzero(np.diff(cls[order])) + 1
        for units in np.split(order, bounds):
            if len(units) < 2:
                continue
            sigs = served[units]
            sigs = sigs[np.lexsort((sigs, lo_t[sigs]))].tolist()
            heap: list[tuple[int, int, int]] = []
            taken: list[int] = []
            k = 0
            for t in start[units].tolist():
                while k < len(sigs) and lo_t[sigs[k]] <= t:
                    i = sigs[k]
                    heapq.heappush(heap, (int(hi_t[i]), int(batch.earliest_ms[i]), i))
                    k += 1
                if not heap or heap[0][0] < t:
                    break
                taken.append(heapq.heappop(heap)[2])
            if len(taken) == len(units):
                out[units] = taken
        return out

    def fill_clones(self, reps: NDArray[np.int64], table: ResourceTable) -> NDArray[np.int64]:
        """Concrete resource of each slot unit (``reps``: y columns, one entry per unit).

        The units of one clone class, in the given order, fill its members in table
        order, each up to its capacity. Units beyond the class capacity (only possible
        for a rounded fractional point) are not expected; they are clipped to the last
        member, which the capacity checks would report.
        """
        cls_of_unit = self.clone[self.y_pairs.res[reps]]
        members = np.lexsort((np.arange(len(table)), self.clone))  # by class, table order
        cum = np.cumsum(table.capacity[members])
        base = np.concatenate([[0], np.cumsum(self.clone_cap)])[:-1]  # capacity before class
        order = np.argsort(cls_of_unit, kind="stable")
        c_sorted = cls_of_unit[order]
        first = np.searchsorted(c_sorted, c_sorted, "left")
        rank = np.arange(len(order)) - first  # unit's position within its class
        pos = base[c_sorted] + rank
        idx = np.minimum(np.searchsorted(cum, pos, "right"), len(members) - 1)
        out = np.empty(len(reps), np.int64)
        out[order] = members[idx]
        return out

    def shadow_prices(self, row_dual: NDArray[np.float64], n_resources: int) -> NDArray[np.float64]:
        """Dual value of each resource's capacity row (0 when it has no row), clipped >= 0."""
        by_class = np.zeros(len(self.clone_cap))
        by_class[self.res_rows] = np.maximum(row_dual[self.n_buckets :], 0.0)
        return by_class[self.clone] if n_resources else np.zeros(0)

    def verify_marginals(
        self,
        col: NDArray[np.float64],
        batch: SignalBatch,
        table: ResourceTable,
        shadow: NDArray[np.float64],
        top: int,
    ) -> dict[int, Marginal]:
        """Re-solve with +1 capacity on the top binding groups' representative resources.

        Each re-solve changes one row bound and warm-starts from the optimal basis (a
        few simplex iterations); the bound is restored afterwards.

        Returns:
            ``{resource index: Marginal}`` for up to ``top`` groups.
        """
        if top <= 0:
            return {}
        highs = self.highs
        base_obj = highs.getInfo().objective_function_value
        class_row = np.full(len(self.clone_cap), -1, np.int64)
        class_row[self.res_rows] = self.n_buckets + np.arange(len(self.res_rows))
        row_of = class_row[self.clone]
        base_u = col[self.n_y :] > 0.5
        out: dict[int, Marginal] = {}
        for _, rows in binding_groups(table, shadow)[:top]:
            rep = rows[0]
            cap = float(self.clone_cap[self.clone[rep]])
            highs.changeRowBounds(int(row_of[rep]), -_INF, cap + 1.0)
            highs.run()
            if highs.getModelStatus() == highspy.HighsModelStatus.kOptimal:
                gain = highs.getInfo().objective_function_value - base_obj
                u1 = np.asarray(highs.getSolution().col_value)[self.n_y :] > 0.5
                new = self.u_sig[u1 & ~base_u]
                newly = None
                if u1.sum() > base_u.sum() and new.size:
                    newly = list(Disposition)[int(batch.rank[new].min())]
                out[rep] = Marginal(gain=max(gain, 0.0), newly_served=newly)
            highs.changeRowBounds(int(row_of[rep]), -_INF, cap)
        return out
