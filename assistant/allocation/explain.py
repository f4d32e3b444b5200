"""Turn a chosen set of pairs (and duals) into an :class:`AllocationResult`.

Shared by the LP, the greedy baseline and the single-booking helper so that all three
report assignments, unmet reasons and objective terms identically.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from assistant.allocation.compat import Pairs, ResourceTable, SignalBatch, Windows
from assistant.allocation.models import (
    REASON_TEXT,
    AllocationResult,
    AllocationStatus,
    AllocationWeights,
    Assignment,
    BindingConstraint,
    ObjectiveTerms,
    UnmetReason,
    UnmetSignal,
    kind_noun,
)
from assistant.domain import Disposition

_DISPOSITIONS = list(Disposition)
_UNMET_CODES = (
    UnmetReason.NO_RESOURCE_TYPE,
    UnmetReason.WINDOW_PASSED,
    UnmetReason.NO_SLOT_IN_WINDOW,
    UnmetReason.FULLY_BOOKED,
    UnmetReason.CAPACITY_MORE_URGENT,
    UnmetReason.CAPACITY_EQUAL_URGENCY,
    UnmetReason.CAPACITY_LESS_URGENT,
)
DUAL_TOL = 1e-7
"""Dual values at or below this are treated as zero (not binding)."""
_LABEL = {
    Disposition.EMERGENCY_AMBULANCE: "an ambulance emergency",
    Disposition.EMERGENCY: "an emergency",
    Disposition.CONSULTATION_24: "a within-24-h consultation",
    Disposition.CONSULTATION: "a routine consultation",
    Disposition.SELF_CARE: "a self-care follow-up",
}


def _range_min(
    values: NDArray[np.int64], lo: NDArray[np.int64], hi: NDArray[np.int64], empty: int
) -> NDArray[np.int64]:
    """``min(values[lo:hi])`` for many ranges at once (sparse table, O(R log R) build)."""
    out = np.full(lo.shape, empty, np.int64)
    ok = hi > lo
    if not ok.any() or len(values) == 0:
        return out
    levels = [values]
    while 2 ** len(levels) <= len(values):
        prev, half = levels[-1], 2 ** (len(levels) - 1)
        levels.append(np.minimum(prev[:-half], prev[half:]))
    lo_ok, hi_ok = lo[ok], hi[ok]
    k = np.floor(np.log2(hi_ok - lo_ok)).astype(np.int64)
    res = np.empty(len(lo_ok), np.int64)
    for lev in np.unique(k).tolist():
        sel = k == lev
        tab = levels[lev]
        res[sel] = np.minimum(tab[lo_ok[sel]], tab[hi_ok[sel] - 2**lev])
    out[ok] = res
    return out


def unmet_reasons(
    batch: SignalBatch,
    table: ResourceTable,
    win: Windows,
    chosen: Pairs,
    unmet_idx: NDArray[np.int64],
    now_ms: int,
) -> list[UnmetSignal]:
    """Explain every unserved signal.

    Codes, most specific first: no resource of the type in own/shared/neighbour
    departments; window passed; no compatible resource in window; all compatible
    resources had zero capacity before the run; otherwise their capacity went to more /
    equally / less urgent signals (compared by disposition rank of the patients placed
    on them). Computed on the in-window ranges (prefix sums and range minima), without
    enumerating pairs.

    Args:
        batch, table, win: encoded inputs and windows.
        chosen: the assignments as pairs.
        unmet_idx: indices of the unserved signals, increasing.
        now_ms: current time.
    """
    n_res = len(table)
    if unmet_idx.size == 0:
        return []
    lo, hi = (
        win.lo[unmet_idx],
        np.where(win.cnt[unmet_idx] > 0, win.hi[unmet_idx], win.lo[unmet_idx]),
    )
    open_cum = np.concatenate([[0], np.cumsum(table.capacity > 0)])
    n_open = (open_cum[hi] - open_cum[lo]).sum(axis=1)
    # best (lowest) rank placed on each resource, then over each unmet signal's ranges
    big = len(_DISPOSITIONS)
    res_rank = np.full(n_res, big, np.int64)
    np.minimum.at(res_rank, chosen.res, batch.rank[chosen.sig])
    best = _range_min(res_rank, lo, hi, big).min(axis=1)
    i = unmet_idx
    code = np.full(len(i), 6, np.int64)  # CAPACITY_LESS_URGENT unless a rule below applies
    rank = batch.rank[i]
    code[best == rank] = 5
    code[best < rank] = 4
    code[n_open == 0] = 3
    code[win.n_pairs[i] == 0] = 2
    code[batch.latest_ms[i] < now_ms] = 1
    code[~win.has_type[i]] = 0  # most specific first: later assignments win
    n_pairs = win.n_pairs[i].tolist()
    signals = batch.signals
    out: list[UnmetSignal] = []
    for k, (idx, c) in enumerate(zip(i.tolist(), code.tolist(), strict=True)):
        s = signals[idx]
        reason = _UNMET_CODES[c]
        text = REASON_TEXT[reason]
        if reason is UnmetReason.NO_RESOURCE_TYPE:
            kind = kind_noun(s.resource_type, s.bed_type, s.modality)
            text = f"no {kind} in {s.department} or its overflow departments"
        out.append(
            UnmetSignal(
                signal_id=s.id,
                disposition=s.disposition,
                department=s.department,
                reason_code=reason,
                reason=text,
                compatible_resources=n_pairs[k],
            )
        )
    return out


def assignments(batch: SignalBatch, table: ResourceTable, chosen: Pairs) -> list[Assignment]:
    """One :class:`Assignment` per chosen pair, in signal input order."""
    order = np.argsort(chosen.sig, kind="stable")
    sig = chosen.sig[order].tolist()
    res_idx = chosen.res[order].tolist()
    overflow = chosen.overflow[order].tolist()
    wait_h = chosen.wait_h[order].tolist()
    sub_match = chosen.sub_match[order].tolist()
    lang_match = chosen.lang_match[order].tolist()
    rank = batch.rank.tolist()
    out: list[Assignment] = []
    for k, (i, r) in enumerate(zip(sig, res_idx, strict=True)):
        res = table.resources[r]
        out.append(
            Assignment(
                signal_id=batch.ids[i],
                resource_id=res.id,
                department=res.department,
                start=res.start,
                disposition=_DISPOSITIONS[rank[i]],
                overflow=overflow[k],
                wait_hours=wait_h[k],
                sub_specialty_match=sub_match[k],
                language_match=lang_match[k],
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class Marginal:
    """Verified effect of one more unit of capacity on one resource (by re-solving).

    Attributes:
        gain: increase of the optimal objective.
        newly_served: most urgent disposition among the patients served only after the
            increase, or ``None`` when nobody new is served (only waits/overflow improve).
    """

    gain: float
    newly_served: Disposition | None


GroupKey = tuple[str, str, str | None, str | None, date]


def binding_groups(
    table: ResourceTable, shadow: NDArray[np.float64]
) -> list[tuple[GroupKey, list[int]]]:
    """Resources with positive shadow price grouped by (department, kind, subtype, day).

    Within a group resources are sorted by decreasing shadow price; groups by their
    largest shadow price (then department, day).
    """
    pos = np.flatnonzero(shadow > DUAL_TOL)
    groups: dict[GroupKey, list[int]] = defaultdict(list)
    for r in pos[np.argsort(-shadow[pos], kind="stable")].tolist():
        res = table.resources[r]
        groups[(res.department, res.kind, res.bed_type, res.modality, res.start.date())].append(r)
    return sorted(groups.items(), key=lambda kv: (-shadow[kv[1][0]], kv[0][0], kv[0][4]))


def binding_constraints(
    table: ResourceTable,
    win: Windows,
    unmet_idx: NDArray[np.int64],
    shadow: NDArray[np.float64],
    marginals: Mapping[int, Marginal] | None = None,
) -> list[BindingConstraint]:
    """Explain capacity constraints with positive dual values, grouped by department and day.

    Args:
        table: resources (``R``).
        win: in-window ranges of the signals.
        unmet_idx: indices of the unserved signals.
        shadow: dual value (shadow price) per resource (``R``; 0 for rows not in the
            model), in objective units per extra unit of capacity.
        marginals: verified +1 effects, keyed by resource index (the group's resource
            with the largest dual). Groups without one are explained by the dual
            alone, which by concavity of the optimal value is an upper bound.

    Returns:
        One :class:`BindingConstraint` per group, most valuable first, with a plain
        explanation such as "One more CARDIO clinic slot on Tue 25 Nov (CARDIO clinic, Dr
        C0, Tue 08:00) would serve 1 more patient (an emergency; objective +48.5); 3
        compatible patients are unmet."
    """
    groups = binding_groups(table, shadow)
    if not groups:
        return []
    marginals = marginals or {}
    # unmet signals whose in-window range meets a group's binding rows; a group lies
    # inside one compatibility block of the sorted table, between its first/last row
    bind_cum = np.concatenate([[0], np.cumsum(shadow > DUAL_TOL)])
    cells_sig = np.repeat(unmet_idx, win.lo.shape[1])
    cells_lo, cells_hi = win.lo[unmet_idx].ravel(), win.hi[unmet_idx].ravel()
    live = win.cnt[unmet_idx].ravel() > 0
    cells_sig, cells_lo, cells_hi = cells_sig[live], cells_lo[live], cells_hi[live]
    cells_gid = table.group[cells_lo]
    by_gid = np.argsort(cells_gid, kind="stable")
    sorted_gid = cells_gid[by_gid]
    unmet_per_group = []
    for _, rows in groups:
        first, last = min(rows), max(rows)
        a, b = (
            np.searchsorted(sorted_gid, table.group[first], "left"),
            np.searchsorted(sorted_gid, table.group[first], "right"),
        )
        c = by_gid[a:b]
        lo_c = np.maximum(cells_lo[c], first)
        hi_c = np.minimum(cells_hi[c], last + 1)
        hit = (hi_c > lo_c) & (bind_cum[np.maximum(hi_c, lo_c)] - bind_cum[lo_c] > 0)
        unmet_per_group.append(np.unique(cells_sig[c[hit]]).size)
    out: list[BindingConstraint] = []
    for g, ((dept, kind, bed, mod, day), rows) in enumerate(groups):
        rep = rows[0]
        price = float(shadow[rep])
        n_unmet = int(unmet_per_group[g])
        noun = kind_noun(kind, bed, mod)
        where = table.resources[rep].display
        m = marginals.get(rep)
        if m is None:
            value, cls = None, None
            gain = f"is worth at most {price:.2f} (shadow price, not re-solved)"
        elif m.newly_served is not None:
            value, cls = m.gain, m.newly_served
            gain = f"would serve 1 more patient ({_LABEL[cls]}; objective +{m.gain:.1f})"
        elif m.gain > DUAL_TOL:
            value, cls = m.gain, None
            gain = f"would serve nobody new but shorten waits or overflow (objective +{m.gain:.2f})"
        else:
            value, cls = 0.0, None
            gain = f"would not improve the plan (degenerate dual {price:.2f})"
        tail = (
            f"; {n_unmet} compatible patient{'s are' if n_unmet > 1 else ' is'} unmet"
            if n_unmet
            else ""
        )
        full = f"{len(rows)} full resources, e.g. {where}" if len(rows) > 1 else where
        out.append(
            BindingConstraint(
                department=dept,
                kind=kind,  # type: ignore[arg-type]
                bed_type=bed,
                modality=mod,
                day=day,
                resource_ids=[table.ids[r] for r in rows],
                shadow_price=price,
                marginal_resource_id=table.ids[rep],
                marginal_value=value,
                value_class=cls,
                unmet_compatible=n_unmet,
                explanation=f"One more {dept} {noun} on {day:%a %d %b} ({full}) {gain}{tail}.",
            )
        )
    out.sort(key=lambda b: (b.marginal_value is None, -(b.marginal_value or 0.0), -b.shadow_price))
    return out


def build_result(
    *,
    status: AllocationStatus,
    method: str,
    batch: SignalBatch,
    table: ResourceTable,
    win: Windows,
    chosen: Pairs,
    weights: AllocationWeights,
    now_ms: int,
    shadow: NDArray[np.float64] | None = None,
    marginals: Callable[[], Mapping[int, Marginal]] | None = None,
    message: str = "",
    integral: bool = True,
    rounded: bool = False,
    num_variables: int | None = None,
    num_constraints: int = 0,
    build_seconds: float = 0.0,
    solve_seconds: float = 0.0,
    explain_seconds: float = 0.0,
) -> AllocationResult:
    """Assemble the full result for the assignments ``chosen``.

    ``num_variables`` defaults to the number of compatible pairs (full-model columns).
    A run with demand but no assignment at all gets status ``infeasible``. With
    ``shadow`` (dual value per resource), ``binding`` is explained lazily: on first
    access ``marginals()`` (verifying re-solves, optional) runs and the binding groups
    are built (:func:`binding_constraints`).
    """
    served = np.zeros(len(batch), bool)
    served[chosen.sig] = True
    unmet_idx = np.flatnonzero(~served)
    terms = chosen.terms(batch.weight, weights)
    if status is AllocationStatus.OPTIMAL and len(batch) and len(chosen) == 0:
        status = AllocationStatus.INFEASIBLE
        message = message or "no signal can be served: see the unmet reasons"
    result = AllocationResult(
        status=status,
        method=method,  # type: ignore[arg-type]
        message=message,
        assignments=assignments(batch, table, chosen),
        unmet=unmet_reasons(batch, table, win, chosen, unmet_idx, now_ms),
        objective=ObjectiveTerms(**terms),
        integral=integral,
        rounded=rounded,
        num_signals=len(batch),
        num_resources=len(table),
        num_pairs=int(win.n_pairs.sum()),
        num_variables=int(win.n_pairs.sum()) if num_variables is None else num_variables,
        num_constraints=num_constraints,
        build_seconds=build_seconds,
        solve_seconds=solve_seconds,
        explain_seconds=explain_seconds,
    )
    if shadow is not None:

        def explainer() -> list[BindingConstraint]:
            verified = marginals() if marginals is not None else None
            return binding_constraints(table, win, unmet_idx, shadow, verified)

        result.set_explainer(explainer)
    else:
        result.set_explainer(None)
    return result
