"""Vectorised encoding of resources and signals, and enumeration of compatible pairs.

A signal ``s`` and a resource ``r`` are *compatible* when

* ``r.kind == s.resource_type`` and, for beds / imaging, the bed type / modality match;
* ``r.department`` is the signal's department or a shared-service department (e.g.
  RADIOL), or one of the signal department's neighbours (overflow);
* ``max(s.earliest, now) <= r.start <= s.latest``.

Resources are sorted by (compatibility group, start) where a group is one
(kind, bed type / modality, department); the in-window resources of a group are then a
contiguous range found with two ``searchsorted`` calls, so enumerating all pairs costs
O(S * G + P) numpy work (``S`` signals, ``G`` target groups per signal, ``P`` pairs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import get_args

import numpy as np
from numpy.typing import NDArray

from assistant.allocation.models import (
    DEFAULT_NEIGHBOURS,
    DEFAULT_SHARED,
    AllocationWeights,
    Resource,
)
from assistant.errors import InputError
from assistant.triage.schemas import BedType, DemandSignal, Disposition, Modality

KINDS: tuple[str, ...] = ("clinic_slot", "bed", "imaging")
SUBTYPES: tuple[str | None, ...] = (None, *get_args(BedType), *get_args(Modality))
LANGUAGES: tuple[str, ...] = ("en", "zh")
_KIND = {k: i for i, k in enumerate(KINDS)}
_SUBTYPE = {k: i for i, k in enumerate(SUBTYPES)}
_LANG = {k: i for i, k in enumerate(LANGUAGES)}
_DISPOSITIONS = list(Disposition)

_EPOCH = 946_684_800  # 2000-01-01T00:00Z; times are stored as seconds since then
_TIME_BITS = 34  # 2**34 s = 544 years of room in the composite (group, time) key
_TIME_MAX = (1 << _TIME_BITS) - 1


def to_seconds(value: datetime) -> int:
    """Seconds since 2000-01-01 UTC of an aware datetime (naive is rejected).

    Raises:
        InputError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"naive datetime {value!r}: allocation times must be timezone-aware")
    return int(value.timestamp()) - _EPOCH


def _subtype(kind: str, bed_type: str | None, modality: str | None) -> int:
    if kind == "bed":
        return _SUBTYPE[bed_type]
    if kind == "imaging":
        return _SUBTYPE[modality]
    return 0


class ResourceTable:
    """Resources encoded as numpy arrays, sorted by (compatibility group, start).

    Build once per capacity snapshot and reuse it for many :func:`book_one` calls.
    All arrays have length ``R`` (number of resources) in sorted order.

    Attributes:
        resources: the resources in sorted order.
        ids: resource ids in sorted order.
        start_s: start times, seconds since 2000-01-01 UTC (int64).
        capacity: remaining capacity (int64, >= 0).
        dept: department codes into ``departments``.
        departments: department vocabulary of the table.
        group: compatibility group of each resource.
        keys: sorted composite keys ``group << 34 | start``.
        sub_match: bool matrix ``R x len(sub_specialties)``.
        lang_match: bool matrix ``R x 2`` (en, zh).

    Raises:
        InputError: duplicate resource ids.
    """

    def __init__(self, resources: Sequence[Resource]) -> None:
        n = len(resources)
        kind = np.fromiter((_KIND[r.kind] for r in resources), np.int64, n)
        sub = np.fromiter(
            (_subtype(r.kind, r.bed_type, r.modality) for r in resources), np.int64, n
        )
        self.departments: list[str] = sorted({r.department for r in resources})
        self.dept_index: dict[str, int] = {d: i for i, d in enumerate(self.departments)}
        dept = np.fromiter((self.dept_index[r.department] for r in resources), np.int64, n)
        start = np.fromiter((to_seconds(r.start) for r in resources), np.int64, n)
        cap = np.fromiter((r.capacity for r in resources), np.int64, n)
        n_dept = max(len(self.departments), 1)
        group_code = (kind * len(SUBTYPES) + sub) * n_dept + dept
        uniq, group = np.unique(group_code, return_inverse=True)
        group = group.astype(np.int64)
        # dense lookup (kind, subtype, dept) -> group id, -1 when absent
        self.group_lookup = np.full((len(KINDS), len(SUBTYPES), n_dept), -1, np.int64)
        self.group_lookup.reshape(-1)[uniq] = np.arange(len(uniq))
        keys = (group << _TIME_BITS) | np.clip(start, 0, _TIME_MAX)
        order = np.argsort(keys, kind="stable")

        self.resources: list[Resource] = [resources[i] for i in order]
        self.ids: list[str] = [r.id for r in self.resources]
        if len(set(self.ids)) != n:
            raise InputError("duplicate resource ids in allocation input")
        self.id_index: dict[str, int] = {rid: i for i, rid in enumerate(self.ids)}
        self.kind = kind[order]
        self.subtype = sub[order]
        self.dept = dept[order]
        self.start_s = start[order]
        self.capacity = cap[order]
        self.group = group[order]
        self.keys = keys[order]
        self.sub_specialties: list[str] = sorted(
            {s for r in resources for s in r.sub_specialties}
        )
        self.sub_index: dict[str, int] = {s: i for i, s in enumerate(self.sub_specialties)}
        self.sub_match = np.zeros((n, max(len(self.sub_specialties), 1)), bool)
        self.lang_match = np.zeros((n, len(LANGUAGES)), bool)
        for i, r in enumerate(self.resources):
            for s in r.sub_specialties:
                self.sub_match[i, self.sub_index[s]] = True
            for lang in r.languages:
                self.lang_match[i, _LANG[lang]] = True

    def __len__(self) -> int:
        return len(self.ids)

    def with_capacity(self, capacity: NDArray[np.int64]) -> ResourceTable:
        """A shallow copy sharing every array except ``capacity`` (sorted order)."""
        other = object.__new__(ResourceTable)
        other.__dict__.update(self.__dict__)
        other.capacity = np.asarray(capacity, np.int64).copy()
        return other

    def after(self, assignments: Sequence[object]) -> ResourceTable:
        """Copy with capacity reduced by ``assignments`` (objects with ``resource_id``).

        Raises:
            InputError: an assignment names an unknown resource.
        """
        cap = self.capacity.copy()
        for a in assignments:
            rid = getattr(a, "resource_id")
            if rid not in self.id_index:
                raise InputError(f"unknown resource id {rid!r}")
            cap[self.id_index[rid]] -= 1
        return self.with_capacity(np.maximum(cap, 0))


@dataclass(slots=True)
class SignalBatch:
    """Signals encoded as numpy arrays (input order), against one :class:`ResourceTable`.

    Department codes extend the table's vocabulary: codes >= ``len(table.departments)``
    are departments without resources (they can still overflow to neighbours).
    """

    signals: Sequence[DemandSignal]
    ids: list[str]
    kind: NDArray[np.int64]
    subtype: NDArray[np.int64]
    dept: NDArray[np.int64]
    departments: list[str]
    earliest_s: NDArray[np.int64]
    latest_s: NDArray[np.int64]
    created_s: NDArray[np.int64]
    rank: NDArray[np.int64]
    weight: NDArray[np.float64]
    sub: NDArray[np.int64]
    lang: NDArray[np.int64]
    targets: NDArray[np.int64]  # S x T target department codes, -1 padded
    target_overflow: NDArray[np.bool_]  # T: column is a neighbour (overflow) column

    @classmethod
    def encode(
        cls,
        signals: Sequence[DemandSignal],
        table: ResourceTable,
        neighbours: Mapping[str, Sequence[str]],
        weights: AllocationWeights,
        shared: Sequence[str] = DEFAULT_SHARED,
    ) -> SignalBatch:
        """Encode ``signals`` for ``table``.

        Raises:
            InputError: duplicate signal ids or naive datetimes.
        """
        n = len(signals)
        ids = [s.id for s in signals]
        if len(set(ids)) != n:
            raise InputError("duplicate signal ids in allocation input")
        departments = list(table.departments)
        index = dict(table.dept_index)
        for s in signals:
            if s.department not in index:
                index[s.department] = len(departments)
                departments.append(s.department)
        dept = np.fromiter((index[s.department] for s in signals), np.int64, n)
        # target columns: own, shared..., neighbours...; each department at most once
        shared_codes = [table.dept_index[d] for d in shared if d in table.dept_index]
        n_own = 1 + len(shared_codes)
        max_nb = max((len(v) for v in neighbours.values()), default=0)
        nb_table = np.full((len(departments), n_own + max_nb), -1, np.int64)
        for d, code in index.items():
            nbs = [table.dept_index.get(nb, -1) for nb in neighbours.get(d, ())]
            seen: set[int] = set()
            for j, c in enumerate([code, *shared_codes, *nbs]):
                if c >= 0 and c not in seen:
                    nb_table[code, j] = c
                    seen.add(c)
        target_overflow = np.arange(nb_table.shape[1]) >= n_own
        w_of = np.array([weights.weight(d) for d in _DISPOSITIONS])
        rank = np.fromiter((s.disposition.rank for s in signals), np.int64, n)
        return cls(
            signals=signals,
            ids=ids,
            kind=np.fromiter((_KIND[s.resource_type] for s in signals), np.int64, n),
            subtype=np.fromiter(
                (_subtype(s.resource_type, s.bed_type, s.modality) for s in signals), np.int64, n
            ),
            dept=dept,
            departments=departments,
            earliest_s=np.fromiter((to_seconds(s.earliest) for s in signals), np.int64, n),
            latest_s=np.fromiter((to_seconds(s.latest) for s in signals), np.int64, n),
            created_s=np.fromiter((to_seconds(s.created_at) for s in signals), np.int64, n),
            rank=rank,
            weight=w_of[rank] if n else np.zeros(0),
            sub=np.fromiter(
                (table.sub_index.get(s.sub_specialty, -1) if s.sub_specialty else -1 for s in signals),
                np.int64,
                n,
            ),
            lang=np.fromiter((_LANG[s.language] for s in signals), np.int64, n),
            targets=nb_table[dept] if n else np.zeros((0, nb_table.shape[1]), np.int64),
            target_overflow=target_overflow,
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Pairs:
    """Compatible signal-resource pairs (the LP columns), sorted by signal then preference.

    Within a signal, own-department pairs come first (by start), then those of each
    shared-service department, then each neighbour's.

    Attributes:
        sig: signal index (into the batch) of each pair.
        res: resource index (into the sorted table) of each pair.
        overflow: True when the resource is in a neighbour department.
        frac: position of the start in the signal window, in [0, 1].
        wait_h: hours from the signal's earliest time to the resource start.
        sub_match, lang_match: bonus indicators.
        coef: objective coefficient (maximise).
        has_type: per signal, whether any own/neighbour group of its type exists.
    """

    sig: NDArray[np.int64]
    res: NDArray[np.int64]
    overflow: NDArray[np.bool_]
    frac: NDArray[np.float64]
    wait_h: NDArray[np.float64]
    sub_match: NDArray[np.bool_]
    lang_match: NDArray[np.bool_]
    coef: NDArray[np.float64]
    has_type: NDArray[np.bool_]

    def __len__(self) -> int:
        return len(self.sig)

    def terms(self, weight: NDArray[np.float64], weights: AllocationWeights, take: NDArray[np.int64]
              ) -> tuple[float, float, float, float]:
        """(served weight, wait penalty, overflow penalty, match bonus) of pairs ``take``."""
        w = weight[self.sig[take]]
        served = float(w.sum())
        wait = float((w * weights.wait_penalty * self.frac[take]).sum())
        over = float((w * weights.overflow_penalty * self.overflow[take]).sum())
        match = float(
            (
                w
                * (
                    weights.sub_specialty_bonus * self.sub_match[take]
                    + weights.language_bonus * self.lang_match[take]
                )
            ).sum()
        )
        return served, wait, over, match


def enumerate_pairs(
    batch: SignalBatch, table: ResourceTable, weights: AllocationWeights, now_s: int
) -> Pairs:
    """All compatible pairs of ``batch`` x ``table`` with their objective coefficients.

    Args:
        batch: encoded signals (``S``).
        table: encoded resources (``R``).
        weights: objective weights.
        now_s: current time in seconds since 2000-01-01 UTC; resources starting
            earlier are in the past and never compatible.

    Returns:
        :class:`Pairs` with ``P`` entries (``P <= S * R``).
    """
    n_sig = len(batch)
    n_tab_dept = len(table.departments)
    tgt = batch.targets  # S x T
    t_cols = tgt.shape[1]
    valid_dept = (tgt >= 0) & (tgt < n_tab_dept)
    gid = np.full(tgt.shape, -1, np.int64)
    if n_sig and len(table):
        kk = np.broadcast_to(batch.kind[:, None], tgt.shape)
        ss = np.broadcast_to(batch.subtype[:, None], tgt.shape)
        gid[valid_dept] = table.group_lookup[kk[valid_dept], ss[valid_dept], tgt[valid_dept]]
    has_group = gid >= 0
    has_type = has_group.any(axis=1) if t_cols else np.zeros(n_sig, bool)

    lo_t = np.clip(np.maximum(batch.earliest_s, now_s), 0, _TIME_MAX)
    hi_t = np.clip(batch.latest_s, -1, _TIME_MAX)
    g = np.where(has_group, gid, 0)
    lo = np.searchsorted(table.keys, (g << _TIME_BITS) | lo_t[:, None], "left")
    hi = np.searchsorted(table.keys, (g << _TIME_BITS) | np.maximum(hi_t, 0)[:, None], "right")
    ok = has_group & (hi_t[:, None] >= lo_t[:, None])
    cnt = np.where(ok, hi - lo, 0).ravel()
    total = int(cnt.sum())
    # expand ranges [lo, hi) of every (signal, target) cell, row-major = signal-major
    cell = np.repeat(np.arange(cnt.size), cnt)
    offs = np.cumsum(cnt) - cnt
    res = lo.ravel()[cell] + (np.arange(total) - offs[cell])
    sig = cell // t_cols
    overflow = batch.target_overflow[cell % t_cols]

    e = batch.earliest_s[sig]
    span = (batch.latest_s[sig] - e).astype(np.float64)
    delta = (table.start_s[res] - e).astype(np.float64)
    frac = np.where(span > 0, np.clip(delta / np.where(span > 0, span, 1.0), 0.0, 1.0), 0.0)
    s_sub = batch.sub[sig]
    sub_match = np.zeros(total, bool)
    has_sub = s_sub >= 0
    sub_match[has_sub] = table.sub_match[res[has_sub], s_sub[has_sub]]
    lang_match = table.lang_match[res, batch.lang[sig]]
    coef = batch.weight[sig] * (
        1.0
        - weights.wait_penalty * frac
        - weights.overflow_penalty * overflow
        + weights.sub_specialty_bonus * sub_match
        + weights.language_bonus * lang_match
    )
    return Pairs(
        sig=sig,
        res=res,
        overflow=overflow,
        frac=frac,
        wait_h=delta / 3600.0,
        sub_match=sub_match,
        lang_match=lang_match,
        coef=coef,
        has_type=has_type,
    )


def prepare(
    signals: Sequence[DemandSignal],
    resources: Sequence[Resource] | ResourceTable,
    weights: AllocationWeights | None,
    neighbours: Mapping[str, Sequence[str]] | None,
    now: datetime | None,
    shared: Sequence[str] | None = None,
) -> tuple[SignalBatch, ResourceTable, Pairs, AllocationWeights, int]:
    """Encode inputs and enumerate pairs; the shared first step of every allocator."""
    from datetime import timezone

    weights = weights or AllocationWeights()
    table = resources if isinstance(resources, ResourceTable) else ResourceTable(resources)
    batch = SignalBatch.encode(
        signals,
        table,
        DEFAULT_NEIGHBOURS if neighbours is None else neighbours,
        weights,
        DEFAULT_SHARED if shared is None else shared,
    )
    now_s = to_seconds(now or datetime.now(timezone.utc))
    return batch, table, enumerate_pairs(batch, table, weights, now_s), weights, now_s
