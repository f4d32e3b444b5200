"""The :class:`TriageResult` returned by every triage turn."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from assistant.triage.schemas import DemandSignal, Disposition


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


class TriageResult(BaseModel):
    """Structured outcome of one triage turn. JSON-serialisable.

    ``disposition`` is never less urgent than the most urgent red flag in ``red_flags``.
    """

    model_config = ConfigDict(extra="forbid")

    language: Literal["en", "zh"]
    disposition: Disposition
    red_flags: list[RedFlagRef] = []
    urgency_rules: list[str] = []
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
