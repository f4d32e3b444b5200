"""Domain types shared by every layer: dispositions, resources, demand signals, results.

This module is the bottom of the package (it imports nothing from ``assistant``):
``hospital/``, ``allocation/``, ``triage/``, ``agent/``, the UI and the evaluation all
import their shared types from here.

Dispositions follow the five outcomes of telephone/online triage services (NHS 111
dispositions grouped as in Semigran et al., BMJ 2015): the 3-level scale used by the
symptom-checker literature is ``em`` (emergency_ambulance, emergency), ``ne``
(consultation_24, consultation) and ``sc`` (self_care).
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta, timezone
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Disposition(StrEnum):
    """Where the patient should go, most urgent first."""

    EMERGENCY_AMBULANCE = "emergency_ambulance"  # call 120 / 911 now
    EMERGENCY = "emergency"  # go to the emergency department now
    CONSULTATION_24 = "consultation_24"  # see a doctor within 24 h
    CONSULTATION = "consultation"  # book a clinic visit
    SELF_CARE = "self_care"  # home care with safety-netting advice

    @property
    def rank(self) -> int:
        """0 = most urgent ... 4 = least urgent."""
        return list(Disposition).index(self)

    @property
    def urgency3(self) -> Literal["em", "ne", "sc"]:
        """The 3-level scale of Semigran et al. (BMJ 2015)."""
        if self in (Disposition.EMERGENCY_AMBULANCE, Disposition.EMERGENCY):
            return "em"
        if self is Disposition.SELF_CARE:
            return "sc"
        return "ne"

    @property
    def is_emergency(self) -> bool:
        return self.urgency3 == "em"

    def window(self) -> tuple[timedelta, timedelta]:
        """Acceptable [earliest, latest] offset from now for the visit.

        Emergency: now to 1 h (ED door-to-doctor targets, CN triage consensus 2018
        level I-II: immediate / <10 min; we allow 1 h for the booking record);
        consultation_24: within 24 h; consultation: within 14 days (the clinic
        booking horizon); self_care: a routine slot within 14 days if the patient
        still wants one.
        """
        return _WINDOWS[self]

    @property
    def urgency_weight(self) -> float:
        """Weight of serving this disposition in the allocator objective (see README)."""
        return _WEIGHTS[self]


_WINDOWS = {
    Disposition.EMERGENCY_AMBULANCE: (timedelta(0), timedelta(hours=1)),
    Disposition.EMERGENCY: (timedelta(0), timedelta(hours=1)),
    Disposition.CONSULTATION_24: (timedelta(0), timedelta(hours=24)),
    Disposition.CONSULTATION: (timedelta(0), timedelta(days=14)),
    Disposition.SELF_CARE: (timedelta(0), timedelta(days=14)),
}
_WEIGHTS = {
    Disposition.EMERGENCY_AMBULANCE: 100.0,
    Disposition.EMERGENCY: 50.0,
    Disposition.CONSULTATION_24: 10.0,
    Disposition.CONSULTATION: 3.0,
    Disposition.SELF_CARE: 1.0,
}

BedType = Literal["general", "icu", "paediatric", "maternity", "isolation"]
Modality = Literal["CT", "MRI", "ultrasound"]
ResourceType = Literal["clinic_slot", "bed", "imaging"]


class DemandSignal(BaseModel):
    """One patient's need for capacity, emitted by every triage and consumed by allocation.

    Times are timezone-aware UTC datetimes. ``patient_ref`` is pseudonymous (a hash of
    the session id): it never contains patient text or identity.
    """

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=lambda: uuid.uuid4().hex)
    created_at: datetime = Field(default_factory=lambda: datetime.now(timezone.utc))
    patient_ref: str = Field(min_length=1, max_length=64)
    department: str = Field(pattern=r"^[A-Z]{2,10}$", description="Canonical department code.")
    sub_specialty: str | None = None
    disposition: Disposition
    resource_type: ResourceType = "clinic_slot"
    bed_type: BedType | None = None
    modality: Modality | None = None
    earliest: datetime
    latest: datetime
    language: Literal["en", "zh"] = "en"

    @model_validator(mode="after")
    def _check(self) -> DemandSignal:
        if self.latest < self.earliest:
            raise ValueError("latest must not be before earliest")
        if self.resource_type == "bed" and self.bed_type is None:
            raise ValueError("a bed signal needs bed_type")
        if self.resource_type == "imaging" and self.modality is None:
            raise ValueError("an imaging signal needs modality")
        return self

    @classmethod
    def from_disposition(
        cls,
        *,
        patient_ref: str,
        department: str,
        disposition: Disposition,
        now: datetime | None = None,
        **fields: object,
    ) -> DemandSignal:
        """Build a signal whose time window comes from :meth:`Disposition.window`."""
        now = now or datetime.now(timezone.utc)
        lo, hi = disposition.window()
        return cls(
            patient_ref=patient_ref,
            department=department,
            disposition=disposition,
            earliest=now + lo,
            latest=now + hi,
            created_at=now,
            **fields,  # type: ignore[arg-type]
        )


# ------------------------------------------------------------------ triage results

class RedFlagRef(BaseModel):
    """A red-flag rule that fired, with its source and the words that fired it."""

    rule_id: str
    name_en: str
    name_zh: str
    disposition: Disposition
    source: str
    evidence: str = Field(max_length=200)
    advice_en: str = ""
    advice_zh: str = ""


class DepartmentScore(BaseModel):
    """A recommended department (canonical code) with a fused score in [0, 1]."""

    code: str
    name_en: str
    name_zh: str
    score: float = Field(ge=0.0, le=1.0)
    reason_en: str
    reason_zh: str


class DoctorSuggestion(BaseModel):
    """An available doctor and their next free clinic slot (UTC times)."""

    doctor_id: int
    name_en: str
    name_zh: str
    title_en: str
    title_zh: str
    department: str
    sub_specialties: list[str]
    languages: list[str]
    slot_id: int
    starts_at: datetime
    ends_at: datetime


class Citation(BaseModel):
    """A retrieved passage the answer cites."""

    title: str
    source: str
    url: str
    snippet: str = Field(max_length=400)
    score: float


class ComplaintCodeRef(BaseModel):
    """A presenting-complaint code (NCHS Reason for Visit classification) found in the text."""

    code: str
    label_en: str
    label_zh: str = ""
    evidence: str = Field(default="", max_length=200)


class RiskEstimate(BaseModel):
    """Calibrated risks from the acuity model (learned from NHAMCS ED visits), each in [0, 1]."""

    p_emergency: float = Field(ge=0.0, le=1.0, description="P(nurse triage level 1-2)")
    p_critical: float = Field(ge=0.0, le=1.0, description="P(ICU admission or death in the ED)")
    p_admit: float = Field(ge=0.0, le=1.0, description="P(hospital admission)")
    with_vitals: bool = False
    model_version: str = ""


class TriageResult(BaseModel):
    """Structured outcome of one triage turn. JSON-serialisable.

    ``disposition`` is never less urgent than the most urgent red flag in ``red_flags``.
    """

    model_config = ConfigDict(extra="forbid")

    language: Literal["en", "zh"]
    disposition: Disposition
    red_flags: list[RedFlagRef] = []
    urgency_rules: list[str] = []
    complaint_codes: list[ComplaintCodeRef] = []
    risk: RiskEstimate | None = None
    reasons_en: list[str] = Field(default=[], description="Why this disposition, in words.")
    reasons_zh: list[str] = Field(default=[], description="同上，中文。")
    departments: list[DepartmentScore] = []
    doctors: list[DoctorSuggestion] = []
    follow_up_questions: list[str] = []
    follow_up_ids: list[str] = []
    citations: list[Citation] = []
    demand_signal: DemandSignal | None = None
    confidence: float = Field(ge=0.0, le=1.0)
    input_issues: list[str] = []
    safe_reply: str | None = None
    lead_in: str | None = None
    notes: list[str] = []


# ------------------------------------------------------------------ booking
class DoctorRef(BaseModel):
    """The booked doctor as shown to the patient (no patient data)."""

    id: int
    name_en: str
    name_zh: str
    title_en: str = ""
    title_zh: str = ""


class BookingOutcome(BaseModel):
    """What the booking tool returns (JSON-serialisable, no patient text).

    ``starts_at`` is a timezone-aware UTC datetime of the booked slot (None for a bed or
    when nothing was booked).
    """

    booked: bool
    ref: str | None = None
    signal_id: str
    department: str | None = None
    overflow: bool = False
    doctor: DoctorRef | None = None
    starts_at: datetime | None = None
    reason: str = ""
    path: Literal["tool_call", "fallback"] = "fallback"
