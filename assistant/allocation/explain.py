"""Turn a chosen set of pairs (and duals) into an :class:`AllocationResult`.

Shared by the LP, the greedy baseline and the single-booking helper so that all three
report assignments, unmet reasons and objective terms identically.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
from numpy.typing import NDArray

from assistant.allocation.compat import Pairs, ResourceTable, SignalBatch
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
from assistant.triage.schemas import Disposition

_DISPOSITIONS = list(Disposition)
DUAL_TOL = 1e-7
"""Dual values at or below this are treated as zero (not binding)."""
_LABEL = {
    Disposition.EMERGENCY_AMBULANCE: "one ambulance emergency",
    Disposition.EMERGENCY: "one emergency",
    Disposition.CONSULTATION_24: "one within-24-h consultation",
    Disposition.CONSULTATION: "one routine consultation",
    Disposition.SELF_CARE: "one self-care follow-up",
}


def unmet_reasons(
    batch: SignalBatch,
    table: ResourceTable,
    pairs: Pairs,
    take: NDArray[np.int64],
    now_s: int,
) -> list[UnmetSignal]:
    """Explain every signal of ``batch`` not covered by the chosen pairs ``take``.

    Codes, most specific first: no resource of the type in own/neighbour departments;
    window passed; no compatible resource in window; all compatible resources had zero
    capacity before the run; otherwise their capacity went to more / equally / less
    urgent signals (compared by disposition rank of the patients placed on them).
    """
    n_sig, n_res = len(batch), len(table)
    served = np.zeros(n_sig, bool)
    served[pairs.sig[take]] = True
    if served.all():
        return []
    n_pairs = np.bincount(pairs.sig, minlength=n_sig)
    n_open = np.bincount(pairs.sig, weights=(table.capacity[pairs.res] > 0), minlength=n_sig)
    # best (lowest) rank placed on each resource, then over each unmet signal's pairs
    big = len(_DISPOSITIONS)
    res_rank = np.full(n_res, big, np.int64)
    np.minimum.at(res_rank, pairs.res[take], batch.rank[pairs.sig[take]])
    sig_best = np.full(n_sig, big, np.int64)
    np.minimum.at(sig_best, pairs.sig, res_rank[pairs.res])

    out: list[UnmetSignal] = []
    for i in np.flatnonzero(~served):
        s = batch.signals[i]
        if not pairs.has_type[i]:
            code = UnmetReason.NO_RESOURCE_TYPE
        elif batch.latest_s[i] < now_s:
            code = UnmetReason.WINDOW_PASSED
        elif n_pairs[i] == 0:
            code = UnmetReason.NO_SLOT_IN_WINDOW
        elif n_open[i] == 0:
            code = UnmetReason.FULLY_BOOKED
        elif sig_best[i] < batch.rank[i]:
            code = UnmetReason.CAPACITY_MORE_URGENT
        elif sig_best[i] == batch.rank[i]:
            code = UnmetReason.CAPACITY_EQUAL_URGENCY
        else:
            code = UnmetReason.CAPACITY_LESS_URGENT
        text = REASON_TEXT[code]
        if code is UnmetReason.NO_RESOURCE_TYPE:
            kind = kind_noun(s.resource_type, s.bed_type, s.modality)
            text = f"no {kind} in {s.department} or its overflow departments"
        out.append(
            UnmetSignal(
                signal_id=s.id,
                disposition=s.disposition,
                department=s.department,
                reason_code=code,
                reason=text,
                compatible_resources=int(n_pairs[i]),
            )
        )
    return out


def assignments(
    batch: SignalBatch, table: ResourceTable, pairs: Pairs, take: NDArray[np.int64]
) -> list[Assignment]:
    """One :class:`Assignment` per chosen pair, in signal input order."""
    take = take[np.argsort(pairs.sig[take], kind="stable")]
    out: list[Assignment] = []
    for p in take.tolist():
        i, r = int(pairs.sig[p]), int(pairs.res[p])
        res = table.resources[r]
        out.append(
            Assignment(
                signal_id=batch.ids[i],
                resource_id=res.id,
                department=res.department,
                start=res.start,
                disposition=_DISPOSITIONS[int(batch.rank[i])],
                overflow=bool(pairs.overflow[p]),
                wait_hours=float(pairs.wait_h[p]),
                sub_specialty_match=bool(pairs.sub_match[p]),
                language_match=bool(pairs.lang_match[p]),
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


def binding_groups(table: ResourceTable, shadow: NDArray[np.float64]) -> list[tuple[GroupKey, list[int]]]:
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
    pairs: Pairs,
    take: NDArray[np.int64],
    shadow: NDArray[np.float64],
    n_sig: int,
    marginals: Mapping[int, Marginal] | None = None,
) -> list[BindingConstraint]:
    """Explain capacity constraints with positive dual values, grouped by department and day.

    Args:
        table: resources (``R``).
        pairs: compatible pairs.
        take: chosen pairs.
        shadow: dual value (shadow price) per resource (``R``; 0 for rows not in the
            model), in objective units per extra unit of capacity.
        n_sig: number of signals.
        marginals: verified +1 effects, keyed by resource index (the group's resource
            with the largest dual). Groups without one are explained by the dual
            alone, which by concavity of the optimal value is an upper bound.

    Returns:
        One :class:`BindingConstraint` per group, most valuable first, with a plain
        explanation such as "One more CARDIO clinic slot on Tue 24 Nov would serve 1
        more patient (value 48.5 \u2248 one emergency); 3 compatible patients are unmet."
    """
    groups = binding_groups(table, shadow)
    if not groups:
        return []
    marginals = marginals or {}
    served = np.zeros(n_sig, bool)
    served[pairs.sig[take]] = True
    unmet_pair = ~served[pairs.sig]
    group_of = np.full(len(table), -1, np.int64)
    for g, (_, rows) in enumerate(groups):
        group_of[rows] = g
    pg = group_of[pairs.res]
    hit = (pg >= 0) & unmet_pair
    codes = np.unique(pg[hit] * n_sig + pairs.sig[hit])  # distinct (group, unmet signal)
    unmet_per_group = np.bincount(codes // max(n_sig, 1), minlength=len(groups))
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
            gain = f"would serve 1 more patient (value {m.gain:.1f} \u2248 {_LABEL[cls]})"
        elif m.gain > DUAL_TOL:
            value, cls = m.gain, None
            gain = f"would serve nobody new but shorten waits or overflow (value {m.gain:.2f})"
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
    out.sort(
        key=lambda b: (b.marginal_value is None, -(b.marginal_value or 0.0), -b.shadow_price)
    )
    return out


def build_result(
    *,
    status: AllocationStatus,
    method: str,
    batch: SignalBatch,
    table: ResourceTable,
    pairs: Pairs,
    take: NDArray[np.int64],
    weights: AllocationWeights,
    now_s: int,
    shadow: NDArray[np.float64] | None = None,
    marginals: Mapping[int, Marginal] | None = None,
    message: str = "",
    integral: bool = True,
    rounded: bool = False,
    num_constraints: int = 0,
    build_seconds: float = 0.0,
    solve_seconds: float = 0.0,
    explain_seconds: float = 0.0,
) -> AllocationResult:
    """Assemble the full result for the chosen pairs ``take`` (indices into ``pairs``)."""
    take = np.asarray(take, np.int64)
    served, wait, over, match = pairs.terms(batch.weight, weights, take)
    if status is AllocationStatus.OPTIMAL and len(batch) and take.size == 0:
        status = AllocationStatus.INFEASIBLE
        message = message or "no signal can be served: see the unmet reasons"
    return AllocationResult(
        status=status,
        method=method,  # type: ignore[arg-type]
        message=message,
        assignments=assignments(batch, table, pairs, take),
        unmet=unmet_reasons(batch, table, pairs, take, now_s),
        objective=ObjectiveTerms(
            served_weight=served,
            wait_penalty=wait,
            overflow_penalty=over,
            match_bonus=match,
            total=served - wait - over + match,
        ),
        binding=(
            binding_constraints(table, pairs, take, shadow, len(batch), marginals)
            if shadow is not None
            else []
        ),
        integral=integral,
        rounded=rounded,
        num_signals=len(batch),
        num_resources=len(table),
        num_variables=len(pairs),
        num_constraints=num_constraints,
        build_seconds=build_seconds,
        solve_seconds=solve_seconds,
        explain_seconds=explain_seconds,
    )

