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
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import get_args

import numpy as np
from numpy.typing import NDArray

from assistant.allocation.models import (
    DEFAULT_NEIGHBOURS,
    DEFAULT_SHARED,
    AllocationWeights,
    Assignment,
    Resource,
)
from assistant.domain import BedType, DemandSignal, Disposition, Modality
from assistant.errors import InputError

KINDS: tuple[str, ...] = ("clinic_slot", "bed", "imaging")
SUBTYPES: tuple[str | None, ...] = (None, *get_args(BedType), *get_args(Modality))
LANGUAGES: tuple[str, ...] = ("en", "zh")
_KIND = {k: i for i, k in enumerate(KINDS)}
_SUBTYPE = {k: i for i, k in enumerate(SUBTYPES)}
_LANG = {k: i for i, k in enumerate(LANGUAGES)}
_DISPOSITIONS = list(Disposition)
_RANK = {d: i for i, d in enumerate(_DISPOSITIONS)}  # == Disposition.rank, without the list scan

_EPOCH = datetime(2000, 1, 1, tzinfo=UTC)  # times are stored as ms since then
_MS = timedelta(milliseconds=1)
_TIME_BITS = 44  # 2**44 ms = 557 years of room in the composite (group, time) key
_TIME_MAX = (1 << _TIME_BITS) - 1


def to_ms(value: datetime) -> int:
    """Milliseconds since 2000-01-01 UTC of an aware datetime (naive is rejected).

    Raises:
        InputError: ``value`` is naive.
    """
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"naive datetime {value!r}: allocation times must be timezone-aware")
    return (value - _EPOCH) // _MS


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
        start_ms: start times, milliseconds since 2000-01-01 UTC (int64).
        capacity: remaining capacity (int64, >= 0).
        dept: department codes into ``departments``.
        departments: department vocabulary of the table.
        group: compatibility group of each resource.
        keys: sorted composite keys ``group << 44 | start``.
        clone: clone class of each resource (same group, start, sub-specialties and
            languages: interchangeable for every signal), numbered in table order.
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
        start = np.fromiter((to_ms(r.start) for r in resources), np.int64, n)
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
        self.start_ms = start[order]
        self.capacity = cap[order]
        self.group = group[order]
        self.keys = keys[order]
        self.sub_specialties: list[str] = sorted({s for r in resources for s in r.sub_specialties})
        self.sub_index: dict[str, int] = {s: i for i, s in enumerate(self.sub_specialties)}
        self.sub_match = np.zeros((n, max(len(self.sub_specialties), 1)), bool)
        self.lang_match = np.zeros((n, len(LANGUAGES)), bool)
        for i, r in enumerate(self.resources):
            for s in r.sub_specialties:
                self.sub_match[i, self.sub_index[s]] = True
            for lang in r.languages:
                self.lang_match[i, _LANG[lang]] = True
        # clone classes: same group, start, sub-specialties and languages (identical
        # objective coefficients for every signal), numbered by first member
        profile = np.column_stack([self.keys, self.sub_match, self.lang_match]).astype(np.int64)
        if n:
            _, first, inv = np.unique(profile, axis=0, return_index=True, return_inverse=True)
            relabel = np.empty(len(first), np.int64)
            relabel[np.argsort(first, kind="stable")] = np.arange(len(first))
            self.clone: NDArray[np.int64] = relabel[inv.reshape(-1)]
        else:
            self.clone = np.zeros(0, np.int64)

    def __len__(self) -> int:
        return len(self.ids)

    def with_capacity(self, capacity: NDArray[np.int64]) -> ResourceTable:
        """A shallow copy sharing every array except ``capacity`` (sorted order)."""
        other = object.__new__(ResourceTable)
        other.__dict__.update(self.__dict__)
        other.capacity = np.asarray(capacity, np.int64).copy()
        return other

    def after(self, assignments: Sequence[Assignment]) -> ResourceTable:
        """Copy with capacity reduced by one per assignment (e.g. after :func:`book_one`).

        Raises:
            InputError: an assignment names an unknown resource.
        """
        cap = self.capacity.copy()
        for a in assignments:
            rid = a.resource_id
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
    earliest_ms: NDArray[np.int64]
    latest_ms: NDArray[np.int64]
    created_ms: NDArray[np.int64]
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
        # one pass over the signals (10k signals: ~30 ms), then columns
        sub_index = table.sub_index
        epoch, ms = _EPOCH, _MS
        try:
            rows = [
                (
                    index[s.department],
                    _KIND[s.resource_type],
                    _subtype(s.resource_type, s.bed_type, s.modality),
                    (s.earliest - epoch) // ms,
                    (s.latest - epoch) // ms,
                    (s.created_at - epoch) // ms,
                    _RANK[s.disposition],
                    sub_index.get(s.sub_specialty, -1) if s.sub_specialty else -1,
                    _LANG[s.language],
                )
                for s in signals
            ]
        except TypeError:  # a naive datetime cannot be subtracted from the aware epoch
            for s in signals:
                for value in (s.earliest, s.latest, s.created_at):
                    to_ms(value)  # raises InputError naming the value
            raise
        cols = np.array(rows, np.int64).reshape(n, 9).T
        dept, rank = cols[0], cols[6]
        return cls(
            signals=signals,
            ids=ids,
            kind=cols[1],
            subtype=cols[2],
            dept=dept,
            departments=departments,
            earliest_ms=cols[3],
            latest_ms=cols[4],
            created_ms=cols[5],
            rank=rank,
            weight=w_of[rank] if n else np.zeros(0),
            sub=cols[7],
            lang=cols[8],
            targets=nb_table[dept] if n else np.zeros((0, nb_table.shape[1]), np.int64),
            target_overflow=target_overflow,
        )

    def __len__(self) -> int:
        return len(self.ids)


@dataclass(slots=True)
class Windows:
    """In-window resource ranges of every (signal, target department) cell.

    Attributes:
        lo, hi: ``S x T`` positions into the sorted table: resources ``lo <= i < hi``
            of the target's group start inside the signal's window (empty if hi <= lo).
        cnt: ``S x T`` range lengths (0 where no group or empty window).
        n_pairs: ``S`` compatible resources per signal.
        has_type: ``S`` whether any own/shared/neighbour group of the right type exists.
        overflow: ``T`` whether each target column is a neighbour (overflow) column.
    """

    lo: NDArray[np.int64]
    hi: NDArray[np.int64]
    cnt: NDArray[np.int64]
    n_pairs: NDArray[np.int64]
    has_type: NDArray[np.bool_]
    overflow: NDArray[np.bool_]


def compute_windows(batch: SignalBatch, table: ResourceTable, now_ms: int) -> Windows:
    """Find the in-window range of every (signal, target group) with ``searchsorted``.

    Args:
        batch: encoded signals (``S``).
        table: encoded resources (``R``).
        now_ms: current time, milliseconds since 2000-01-01 UTC; resources starting earlier
            are in the past and never compatible.
    """
    n_sig = len(batch)
    tgt = batch.targets  # S x T
    valid_dept = (tgt >= 0) & (tgt < len(table.departments))
    gid = np.full(tgt.shape, -1, np.int64)
    if n_sig and len(table):
        kk = np.broadcast_to(batch.kind[:, None], tgt.shape)
        ss = np.broadcast_to(batch.subtype[:, None], tgt.shape)
        gid[valid_dept] = table.group_lookup[kk[valid_dept], ss[valid_dept], tgt[valid_dept]]
    has_group = gid >= 0
    lo_t = np.clip(np.maximum(batch.earliest_ms, now_ms), 0, _TIME_MAX)
    hi_t = np.clip(batch.latest_ms, -1, _TIME_MAX)
    g = np.where(has_group, gid, 0)
    lo = np.searchsorted(table.keys, (g << _TIME_BITS) | lo_t[:, None], "left")
    hi = np.searchsorted(table.keys, (g << _TIME_BITS) | np.maximum(hi_t, 0)[:, None], "right")
    ok = has_group & (hi_t[:, None] >= lo_t[:, None])
    cnt = np.where(ok, hi - lo, 0)
    return Windows(
        lo=lo,
        hi=hi,
        cnt=cnt,
        n_pairs=cnt.sum(axis=1),
        has_type=has_group.any(axis=1),
        overflow=batch.target_overflow,
    )


@dataclass(slots=True)
class Pairs:
    """Signal-resource pairs with their objective terms (LP columns of the full model).

    Produced by :func:`expand` sorted by signal; within a signal own-department pairs
    come first (by start), then shared-service ones, then each neighbour's.

    Attributes:
        sig: signal index (into the batch).
        res: resource index (into the sorted table).
        overflow: True when the resource is in a neighbour department.
        frac: ``(start - max(earliest, now)) / window length``, in [0, 1].
        age: ``(now - earliest) / window length`` clipped to [0, 1] (already waited).
        wait_h: hours from the signal's earliest time to the resource start.
        sub_match, lang_match: bonus indicators.
        coef: objective coefficient (maximise), see :class:`AllocationWeights`.
    """

    sig: NDArray[np.int64]
    res: NDArray[np.int64]
    overflow: NDArray[np.bool_]
    frac: NDArray[np.float64]
    age: NDArray[np.float64]
    wait_h: NDArray[np.float64]
    sub_match: NDArray[np.bool_]
    lang_match: NDArray[np.bool_]
    coef: NDArray[np.float64]

    def __len__(self) -> int:
        return len(self.sig)

    def subset(self, idx: NDArray[np.int64]) -> Pairs:
        """The pairs ``idx`` (same field order)."""
        return Pairs(*(getattr(self, f.name)[idx] for f in fields(self)))

    def terms(self, weight: NDArray[np.float64], weights: AllocationWeights) -> dict[str, float]:
        """Objective terms of these pairs taken as assignments.

        Args:
            weight: urgency weight per signal of the batch (``S``).
            weights: objective weights.

        Returns:
            ``served_weight``, ``wait_penalty``, ``overflow_penalty``, ``match_bonus``,
            ``age_bonus`` and ``total`` (= sum of ``coef``).
        """
        w = weight[self.sig]
        out = {
            "served_weight": float(w.sum()),
            "wait_penalty": float((w * weights.wait_penalty * self.frac).sum()),
            "overflow_penalty": float((w * weights.overflow_penalty * self.overflow).sum()),
            "match_bonus": float(
                (
                    w
                    * (
                        weights.sub_specialty_bonus * self.sub_match
                        + weights.language_bonus * self.lang_match
                    )
                ).sum()
            ),
            "age_bonus": float((w * weights.age_bonus * self.age).sum()),
        }
        out["total"] = float(self.coef.sum())
        return out


def expand(
    batch: SignalBatch,
    table: ResourceTable,
    win: Windows,
    weights: AllocationWeights,
    now_ms: int,
    rows: NDArray[np.int64] | None = None,
) -> Pairs:
    """Enumerate the compatible pairs of signals ``rows`` (default: all) with coefficients.

    Args:
        batch: encoded signals (``S``).
        table: encoded resources (``R``).
        win: windows from :func:`compute_windows`.
        weights: objective weights.
        now_ms: current time (milliseconds since 2000-01-01 UTC).
        rows: signal indices to expand, increasing.

    Returns:
        :class:`Pairs` sorted by signal (``P`` = sum of ``win.n_pairs[rows]``).
    """
    rows = np.arange(len(batch)) if rows is None else np.asarray(rows, np.int64)
    t_cols = win.cnt.shape[1]
    cnt = win.cnt[rows].ravel()
    total = int(cnt.sum())
    cell = np.repeat(np.arange(cnt.size), cnt)
    offs = np.cumsum(cnt) - cnt
    res = win.lo[rows].ravel()[cell] + (np.arange(total) - offs[cell])
    return make_pairs(
        batch, table, rows[cell // t_cols], res, win.overflow[cell % t_cols], weights, now_ms
    )


def make_pairs(
    batch: SignalBatch,
    table: ResourceTable,
    sig: NDArray[np.int64],
    res: NDArray[np.int64],
    overflow: NDArray[np.bool_],
    weights: AllocationWeights,
    now_ms: int,
) -> Pairs:
    """Objective terms and coefficients of given (compatible) pairs.

    Args:
        batch, table: encoded inputs.
        sig, res: signal and resource index of each pair (``P``).
        overflow: whether each pair is an overflow pair (``P``).
        weights: objective weights.
        now_ms: current time (milliseconds since 2000-01-01 UTC).
    """
    e = batch.earliest_ms[sig]
    span = (batch.latest_ms[sig] - e).astype(np.float64)
    inv = np.where(span > 0, 1.0 / np.where(span > 0, span, 1.0), 0.0)
    start = table.start_ms[res]
    frac = np.clip((start - np.maximum(e, now_ms)) * inv, 0.0, 1.0)
    age = np.clip((now_ms - e) * inv, 0.0, 1.0)
    s_sub = batch.sub[sig]
    sub_match = np.zeros(len(sig), bool)
    has_sub = s_sub >= 0
    sub_match[has_sub] = table.sub_match[res[has_sub], s_sub[has_sub]]
    lang_match = table.lang_match[res, batch.lang[sig]]
    coef = batch.weight[sig] * (
        1.0
        - weights.wait_penalty * frac
        - weights.overflow_penalty * overflow
        + weights.sub_specialty_bonus * sub_match
        + weights.language_bonus * lang_match
        + weights.age_bonus * age
    )
    return Pairs(
        sig=sig,
        res=res,
        overflow=overflow,
        frac=frac,
        age=age,
        wait_h=(start - e) / 3_600_000.0,
        sub_match=sub_match,
        lang_match=lang_match,
        coef=coef,
    )


def prepare(
    signals: Sequence[DemandSignal],
    resources: Sequence[Resource] | ResourceTable,
    weights: AllocationWeights | None,
    neighbours: Mapping[str, Sequence[str]] | None,
    now: datetime | None,
    shared: Sequence[str] | None = None,
) -> tuple[SignalBatch, ResourceTable, Windows, AllocationWeights, int]:
    """Encode inputs and find the in-window ranges; the first step of every allocator."""
    weights = weights or AllocationWeights()
    table = resources if isinstance(resources, ResourceTable) else ResourceTable(resources)
    batch = SignalBatch.encode(
        signals,
        table,
        DEFAULT_NEIGHBOURS if neighbours is None else neighbours,
        weights,
        DEFAULT_SHARED if shared is None else shared,
    )
    now_ms = to_ms(now or datetime.now(UTC))
    return batch, table, compute_windows(batch, table, now_ms), weights, now_ms
