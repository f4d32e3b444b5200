"""Inputs, weights and results of the capacity allocator.

The allocator matches :class:`~assistant.domain.DemandSignal` (one patient's
need) to :class:`Resource` (a bookable block of capacity: a clinic session, free beds
of one type, an imaging block). Everything here is plain in-memory data; the hospital
database layer converts its rows into :class:`Resource` objects.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Mapping
from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    computed_field,
    field_validator,
    model_validator,
)

from assistant.domain import BedType, Disposition, Modality, ResourceType

INTEGRALITY_TOL = 1e-6
"""An LP value within this distance of 0 or 1 counts as integral."""

DEFAULT_NEIGHBOURS: dict[str, list[str]] = {}
"""Default overflow table: none. Callers pass the catalog's table
(:attr:`assistant.kb.KnowledgeBase.neighbours`), which never names an emergency-only
department. The relation is directed: CARDIO patients may use GENMED capacity, not the
reverse."""


DEFAULT_SHARED: tuple[str, ...] = ()
"""Default shared-service departments: none. A hospital-wide service (e.g. radiology)
whose resources serve signals of every department as if they were the signal's own
(no overflow penalty) is passed as ``shared``."""


class Resource(BaseModel):
    """A bookable block of capacity, after fixed and already committed bookings.

    One resource is one row of the capacity constraint: a doctor's clinic session
    (``capacity`` = free appointments in the session), the free beds of one type in one
    ward from ``start`` on, or a block of imaging slots on one scanner. All patients
    assigned to a resource are taken to start at ``start`` (the allocator works at
    session granularity; the exact appointment time inside a session is left to the
    booking desk).

    Attributes:
        id: unique resource id (stable across runs, e.g. the database key).
        kind: ``clinic_slot`` | ``bed`` | ``imaging`` (matches ``DemandSignal.resource_type``).
        department: canonical department code (``^[A-Z]{2,10}$``).
        sub_specialties: sub-specialties of the doctor(s); a match earns a bonus.
        languages: languages spoken (``en``/``zh``); a match earns a bonus. Empty = unknown.
        bed_type: required when ``kind == "bed"``.
        modality: required when ``kind == "imaging"``.
        start: timezone-aware start of availability.
        end: timezone-aware end of the block (display only; must not precede ``start``).
        capacity: patients that can still be assigned (>= 0): total capacity minus
            fixed (e.g. surgery lists) and already committed bookings.
        label: human-readable name used in explanations, e.g. "CARDIO clinic, Dr Wang, Tue 09:00".
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1)
    kind: ResourceType
    department: str = Field(pattern=r"^[A-Z]{2,10}$")
    sub_specialties: tuple[str, ...] = ()
    languages: tuple[Literal["en", "zh"], ...] = ()
    bed_type: BedType | None = None
    modality: Modality | None = None
    start: datetime
    end: datetime
    capacity: int = Field(ge=0)
    label: str | None = None

    @field_validator("start", "end")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("resource times must be timezone-aware")
        return value

    @model_validator(mode="after")
    def _check(self) -> Resource:
        if self.end < self.start:
            raise ValueError("end must not be before start")
        if self.kind == "bed" and self.bed_type is None:
            raise ValueError("a bed resource needs bed_type")
        if self.kind == "imaging" and self.modality is None:
            raise ValueError("an imaging resource needs modality")
        return self

    @property
    def display(self) -> str:
        """``label`` if given, else a generated "CARDIO clinic slot, Tue 24 Nov 09:00"."""
        if self.label:
            return self.label
        return f"{self.department} {kind_noun(self.kind, self.bed_type, self.modality)}, " + (
            f"{self.start:%a %d %b %H:%M}"
        )


def kind_noun(kind: str, bed_type: str | None, modality: str | None) -> str:
    """Plain name of a resource kind: "clinic slot", "icu bed", "CT slot"."""
    if kind == "bed":
        return f"{bed_type} bed"
    if kind == "imaging":
        return f"{modality} slot"
    return "clinic slot"


class AllocationWeights(BaseModel):
    """Objective weights of the allocator, as fractions of a patient's urgency weight.

    The objective coefficient of assigning signal ``s`` to resource ``r`` is::

        c_sr = w_s * (1 - wait_penalty * f_sr - overflow_penalty * o_sr
                      + sub_specialty_bonus * m_sr + language_bonus * l_sr
                      + age_bonus * a_s)

    * ``w_s``: urgency weight of the disposition (100/50/10/3/1,
      :attr:`Disposition.urgency_weight`, or ``urgency_weights``);
    * ``f_sr = (start_r - max(earliest_s, now)) / (latest_s - earliest_s)`` in [0, 1]:
      how far into the remaining window the slot is;
    * ``o_sr`` = 1 when the resource belongs to a neighbour department (overflow);
    * ``m_sr``, ``l_sr`` = 1 on a sub-specialty / language match;
    * ``a_s = min(1, (now - earliest_s) / (latest_s - earliest_s))``: share of the
      window the patient has already waited.

    Why the wait is counted from ``max(earliest, now)`` and not from ``earliest``: the
    part ``now - earliest`` is the same whichever slot the patient gets, so it cannot
    improve slot choice, but it lowers the value of serving a patient who has waited
    longer, and under overload the optimum would then drop the oldest requests first
    (anti-FIFO). ``age_bonus`` instead makes the optimum prefer, among equally urgent
    patients, those who have waited longer. Reported ``wait_hours`` are still
    measured from ``earliest`` (the patient's real wait).

    Penalties are relative to ``w_s`` (not absolute) so that their effect is the same
    for every urgency level; an absolute overflow penalty would either never deter an
    ambulance case or always forbid overflow for self-care.

    Defaults and reasoning (enforced by the validator):

    * ``wait_penalty = 0.15``: a slot at the end of the window still keeps 85 % of the
      value of serving, so serving late always beats not serving, while earlier slots
      are preferred.
    * ``overflow_penalty = 0.25`` > ``wait_penalty + sub_specialty_bonus +
      language_bonus`` (= 0.22): for a given patient, any in-window slot in their own
      department beats every neighbour slot, so overflow happens only when the own
      department has no free in-window capacity for them.
    * ``sub_specialty_bonus = 0.05``, ``language_bonus = 0.02``: tie-breakers.
    * ``age_bonus = 0.05``: first come, first served within an urgency level.
    * Urgency dominance: for every two consecutive dispositions,
      ``w_hi * (1 - wait - overflow) > w_lo * (1 + all bonuses)`` (100 * 0.60 > 50 *
      1.12 is the tightest). Hence the optimum never serves a less urgent patient on a
      resource that a more urgent, unserved and compatible patient could use (swap
      argument).

    Attributes:
        wait_penalty: fraction of ``w_s`` lost when served at the end of the window.
        overflow_penalty: fraction of ``w_s`` lost when served by a neighbour department.
        sub_specialty_bonus: fraction of ``w_s`` gained on a sub-specialty match.
        language_bonus: fraction of ``w_s`` gained on a language match.
        age_bonus: fraction of ``w_s`` gained by a patient who has waited a full window.
        urgency_weights: optional override of :attr:`Disposition.urgency_weight`.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    wait_penalty: float = Field(default=0.15, ge=0.0, le=1.0)
    overflow_penalty: float = Field(default=0.25, ge=0.0, le=1.0)
    sub_specialty_bonus: float = Field(default=0.05, ge=0.0, le=1.0)
    language_bonus: float = Field(default=0.02, ge=0.0, le=1.0)
    age_bonus: float = Field(default=0.05, ge=0.0, le=1.0)
    urgency_weights: Mapping[Disposition, float] | None = None

    @model_validator(mode="after")
    def _check(self) -> AllocationWeights:
        match = self.sub_specialty_bonus + self.language_bonus
        bonus = match + self.age_bonus
        if self.overflow_penalty <= self.wait_penalty + match:
            raise ValueError(
                "overflow_penalty must exceed wait_penalty + sub_specialty_bonus + "
                "language_bonus, or the allocator may overflow while own capacity is free"
            )
        if self.wait_penalty + self.overflow_penalty >= 1.0:
            raise ValueError("wait_penalty + overflow_penalty must be < 1 (serving must pay)")
        order = list(Disposition)
        for hi, lo in itertools.pairwise(order):
            w_hi, w_lo = self.weight(hi), self.weight(lo)
            if w_hi * (1 - self.wait_penalty - self.overflow_penalty) <= w_lo * (1 + bonus):
                raise ValueError(
                    f"urgency dominance violated between {hi.value} and {lo.value}: "
                    "lower the penalties/bonuses or spread the urgency weights"
                )
        return self

    def weight(self, disposition: Disposition) -> float:
        """Urgency weight of ``disposition`` (override or :attr:`Disposition.urgency_weight`)."""
        if self.urgency_weights is not None and disposition in self.urgency_weights:
            return float(self.urgency_weights[disposition])
        return disposition.urgency_weight


class AllocationStatus(StrEnum):
    """Outcome of an allocation run. ``infeasible`` is a result, never an exception."""

    OPTIMAL = "optimal"  # solved to optimality (some signals may still be unmet)
    INFEASIBLE = "infeasible"  # there is demand but not a single signal can be served
    TIME_LIMIT = "time_limit"  # solver stopped; assignments come from the greedy fallback
    ERROR = "error"  # solver failure; see ``message``


class UnmetReason(StrEnum):
    """Why a signal got no assignment (most specific cause first)."""

    NO_RESOURCE_TYPE = "no_resource_type"
    WINDOW_PASSED = "window_passed"
    NO_SLOT_IN_WINDOW = "no_slot_in_window"
    FULLY_BOOKED = "fully_booked"
    CAPACITY_MORE_URGENT = "capacity_more_urgent"
    CAPACITY_EQUAL_URGENCY = "capacity_equal_urgency"
    CAPACITY_LESS_URGENT = "capacity_less_urgent"
    SOLVER_ERROR = "solver_error"


REASON_TEXT: dict[UnmetReason, str] = {
    UnmetReason.NO_RESOURCE_TYPE: "no resource of this type in the department or its overflow departments",
    UnmetReason.WINDOW_PASSED: "the acceptable time window has already passed",
    UnmetReason.NO_SLOT_IN_WINDOW: "no compatible resource in window",
    UnmetReason.FULLY_BOOKED: "every compatible resource in window was fully booked before this run",
    UnmetReason.CAPACITY_MORE_URGENT: "capacity exhausted by more urgent demand",
    UnmetReason.CAPACITY_EQUAL_URGENCY: "capacity exhausted by equally urgent demand",
    UnmetReason.CAPACITY_LESS_URGENT: "capacity taken by less urgent demand (non-optimal plan)",
    UnmetReason.SOLVER_ERROR: "the solver failed; no plan was made",
}


class Assignment(BaseModel):
    """One patient placed on one resource (x[s, r] = 1)."""

    model_config = ConfigDict(frozen=True)

    signal_id: str
    resource_id: str
    department: str = Field(description="Department of the resource.")
    start: datetime
    disposition: Disposition
    overflow: bool = Field(description="True when the resource is in a neighbour department.")
    wait_hours: float = Field(description="Hours from the signal's earliest time to start.")
    sub_specialty_match: bool = False
    language_match: bool = False


class UnmetSignal(BaseModel):
    """A signal left without assignment, with the reason in plain words."""

    model_config = ConfigDict(frozen=True)

    signal_id: str
    disposition: Disposition
    department: str
    reason_code: UnmetReason
    reason: str
    compatible_resources: int = Field(description="Compatible resources within the window.")


class ObjectiveTerms(BaseModel):
    """The objective split into its terms (``total = served - wait - overflow + match + age``).

    All in objective units (urgency-weight points; one emergency served = 50).
    """

    served_weight: float = 0.0
    wait_penalty: float = 0.0
    overflow_penalty: float = 0.0
    match_bonus: float = 0.0
    age_bonus: float = 0.0
    total: float = 0.0


class BindingConstraint(BaseModel):
    """A group of capacity constraints with positive dual values (shadow prices).

    Resources are grouped by department, kind (bed type / modality) and day. The dual
    value of a capacity row is the objective gain of one more unit of that resource
    (valid for a small change). Optima of matching LPs are often degenerate: the dual
    value is then one valid subgradient and, by concavity of the optimal value in the
    capacities, an *upper bound* on the gain of one more unit. The most valuable groups
    are therefore re-solved with +1 capacity (``marginal_value``), and explanations
    use the verified figure.
    """

    department: str
    kind: ResourceType
    bed_type: str | None = None
    modality: str | None = None
    day: date
    resource_ids: list[str]
    shadow_price: float = Field(description="Largest dual value in the group (objective units).")
    marginal_resource_id: str = Field(description="The group's resource with that dual value.")
    marginal_value: float | None = Field(
        default=None,
        description=(
            "Objective gain of one more unit on marginal_resource_id, verified by "
            "re-solving; None when not re-solved (then shadow_price is an upper bound)."
        ),
    )
    value_class: Disposition | None = Field(
        default=None, description="Most urgent patient class newly served by that extra unit."
    )
    unmet_compatible: int = Field(description="Unmet signals that could use these resources.")
    explanation: str


_EXPLAIN_LOCK = threading.Lock()  # one explanation at a time (it re-solves a HiGHS model)


class AllocationResult(BaseModel):
    """Result of :func:`allocate`, :func:`greedy_allocate` or :func:`book_one`.

    ``binding`` (shadow prices of binding capacity constraints, in words) is computed
    lazily on first access (it re-solves the LP with +1 capacity on the top binding
    groups), so an ``allocate`` call whose caller never reads it does not pay for it.
    Reading it (or ``model_dump``) computes it once and sets ``explain_seconds``.
    """

    status: AllocationStatus
    method: Literal["lp", "greedy", "single"]
    message: str = ""
    assignments: list[Assignment] = Field(default_factory=list)
    unmet: list[UnmetSignal] = Field(default_factory=list)
    objective: ObjectiveTerms = Field(default_factory=ObjectiveTerms)
    integral: bool = True
    rounded: bool = Field(default=False, description="True if a fractional LP was rounded.")
    num_signals: int = 0
    num_resources: int = 0
    num_pairs: int = Field(
        default=0, description="Compatible signal-resource pairs (columns of the full model)."
    )
    num_variables: int = Field(default=0, description="Columns of the LP actually solved.")
    num_constraints: int = Field(default=0, description="Rows of the LP actually solved.")
    build_seconds: float = Field(default=0.0, description="Encoding, pair enumeration, model.")
    solve_seconds: float = Field(default=0.0, description="Solver (or greedy loop) time.")
    explain_seconds: float = Field(
        default=0.0,
        description="Shadow-price explanations incl. verifying re-solves (0 until binding is read).",
    )
    _explainer: Callable[[], list[BindingConstraint]] | None = PrivateAttr(default=None)
    _binding: list[BindingConstraint] | None = PrivateAttr(default=None)

    def set_explainer(self, explainer: Callable[[], list[BindingConstraint]] | None) -> None:
        """Install the function that computes ``binding`` on first access (internal)."""
        self._explainer = explainer
        self._binding = None if explainer is not None else []

    @computed_field  # type: ignore[prop-decorator]
    @property
    def binding(self) -> list[BindingConstraint]:
        """Binding capacity constraints grouped by department and day, most valuable first.

        Computed on first access (thread-safe, once); ``[]`` for greedy / single results.
        """
        if self._binding is None:
            with _EXPLAIN_LOCK:
                if self._binding is None:
                    explainer = self._explainer
                    t0 = time.perf_counter()
                    self._binding = explainer() if explainer is not None else []
                    self.explain_seconds = time.perf_counter() - t0
                    self._explainer = None  # release the solver model
        return self._binding

    @property
    def served(self) -> int:
        """Number of signals assigned."""
        return len(self.assignments)

    def by_signal(self) -> dict[str, Assignment]:
        """Assignments keyed by signal id."""
        return {a.signal_id: a for a in self.assignments}
