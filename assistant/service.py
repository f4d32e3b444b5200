"""One patient turn, for every front end: the CLI, the web UI and the evaluation.

:class:`TriageService` runs a turn in a fixed order, each step guarded so that a later
failure can never erase an earlier safety decision:

1. **triage** (:class:`~assistant.triage.engine.Triager`): screening, red flags over the
   whole chat, urgency, department, doctors, demand signal. Its urgency advice always
   reaches the patient.
2. **booking** (:func:`~assistant.agent.booking.book_resources`): the chat model's
   tool call when it is valid, else the deterministic fallback. A fault here (locked or
   corrupt database, full disk) becomes "we could not book; call 120 / go to the ED
   now" or "please call the hospital", never an error page.
3. **lead-in**: an optional model sentence, checked and dropped when unsafe.

Sessions are per patient and never shared; only the pseudonymous ``patient_ref`` and
codes are logged, never patient text.
"""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.domain import TriageResult
from assistant.kb import KnowledgeBase, default_kb
from assistant.llm.base import ChatBackend
from assistant.settings import Settings

log = logging.getLogger(__name__)

MAX_STORED_CHARS = 4_000_000
"""Characters of one session's chat kept at most (older text is dropped first)."""


@dataclass
class PatientSession:
    """State of one patient's triage interview (one per browser tab or CLI call).

    Attributes:
        session_id: random id; only its hash is logged or stored (``patient_ref``).
        turns: the patient's messages so far (newest last).
        asked: follow-up question ids already asked.
        language: ``"en"``/``"zh"`` once detected or chosen.
        booking: the confirmed booking (a :class:`~assistant.domain.BookingOutcome`
            dump), once made.
    """

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: list[str] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)
    language: str | None = None
    booking: dict[str, Any] | None = None
    last_disposition: str | None = None

    def add_turn(self, text: str) -> str:
        """Append a turn and return the whole chat, newest message last and in full.

        Only the oldest text is dropped, past :data:`MAX_STORED_CHARS` characters.
        Screening passes the newest few thousand characters to urgency and routing;
        red flags read everything (:func:`assistant.triage.engine.scan_red_flags`).
        """
        self.turns.append(text[-MAX_STORED_CHARS:])
        while len(self.turns) > 1 and sum(len(t) + 1 for t in self.turns) > MAX_STORED_CHARS:
            self.turns.pop(0)
        return "\n".join(self.turns)


class PatientProfile(BaseModel):
    """What the form says about the patient (each field optional).

    Raises:
        pydantic.ValidationError: an age that is not a finite number in [0, 130] years.
    """

    model_config = ConfigDict(extra="forbid")

    age: float | None = Field(default=None, ge=0, le=130, allow_inf_nan=False)
    sex: Literal["F", "M"] | None = None
    pregnant: bool | None = None
    language: Literal["en", "zh"] | None = None

    @field_validator("age", mode="before")
    @classmethod
    def _blank_age(cls, value: Any) -> Any:
        return None if value in ("", 0, 0.0) else value  # the UI's empty number field is 0

    @field_validator("sex", mode="before")
    @classmethod
    def _sex(cls, value: Any) -> Any:
        if value in (None, ""):
            return None
        head = str(value).strip().upper()[:1]
        return {"F": "F", "W": "F", "M": "M", "女": "F", "男": "M"}.get(head)

    @field_validator("pregnant", mode="before")
    @classmethod
    def _pregnant(cls, value: Any) -> Any:
        return True if value is True else None  # an unticked box means "not said"


class TurnResult(BaseModel):
    """Outcome of one patient turn.

    Attributes:
        result: the triage result (urgency first; always present).
        booking: the booking (a :class:`~assistant.domain.BookingOutcome` dump) when one
            was made in this session.
        booking_failed: booking was attempted and failed with a fault.
        answer: the patient-facing Markdown answer.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    result: TriageResult
    booking: dict[str, Any] | None = None
    booking_failed: bool = False
    answer: str


class TriageService:
    """Triage, then booking, then the lead-in; one instance per process, stateless per call.

    Args:
        settings: runtime settings.
        kb: the knowledge base (default: ``settings.resolved_knowledge_base_dir``).
        backend: the chat model for the tool-call booking, the capable-model second
            opinion and lead-ins (None: deterministic paths only).
        triager: a prebuilt :class:`~assistant.triage.engine.Triager` (tests, eval).
        hospital: SQLAlchemy sessionmaker of the resource tables (None: open
            ``settings.resolved_hospital_db`` when it exists; no booking without it).
    """

    def __init__(self, settings: Settings, *, kb: KnowledgeBase | None = None,
                 backend: ChatBackend | None = None, triager: Any = None, hospital: Any = None) -> None:
        from assistant.triage.engine import Triager, open_hospital

        self.settings = settings
        self.kb = kb if kb is not None else default_kb(settings.resolved_knowledge_base_dir)
        self.backend = backend
        self.hospital = hospital if hospital is not None else open_hospital(settings)
        self.triager = triager if triager is not None else Triager(
            settings, kb=self.kb, backend=backend, hospital=self.hospital)

    @classmethod
    def from_settings(cls, settings: Settings, *, with_model: bool = True) -> TriageService:
        """Build the service with the configured chat model (``with_model``) or without.

        Raises:
            ModelNotFoundError: ``with_model`` and the configured model files are missing.
        """
        backend = None
        if with_model:
            from assistant.llm import get_backend

            backend = get_backend(settings)
        return cls(settings, backend=backend)

    # ------------------------------------------------------------------------------
    def turn(self, session: PatientSession, message: str | bytes, profile: PatientProfile | None = None,
             *, book: bool | None = None, lead_in: bool | None = None,
             now: datetime | None = None) -> TurnResult:
        """Run one patient turn.

        Args:
            session: this patient's session (mutated: turns, asked questions, booking).
            message: the new message (any size; bytes are decoded safely).
            profile: age, sex, pregnancy and language from the form.
            book: book now (True), never (False), or when the interview is done (None:
                an emergency, no open questions, or from the second turn on).
            lead_in: write a model lead-in (default ``settings.llm_lead_in``).
            now: the clock (UTC), for tests.

        Returns:
            A :class:`TurnResult`; triage never raises for bad input, and a booking or
            lead-in failure degrades to safe text.
        """
        from assistant.triage.render import render_answer

        profile = profile or PatientProfile()
        if isinstance(message, (bytes, bytearray)):
            message = bytes(message).decode("utf-8", errors="replace")
        complaint = session.add_turn(str(message or ""))
        result = self.triager.triage(
            complaint, age=profile.age, sex=profile.sex, pregnant=profile.pregnant,
            lang=profile.language or session.language, session_id=session.session_id,
            asked=frozenset(session.asked), lead_in=False, now=now,
        )
        session.language = session.language or result.language
        session.asked |= set(result.follow_up_ids)
        session.last_disposition = result.disposition.value
        booking_failed = False
        if self.wants_booking(result, session, book):
            try:
                outcome = self.book(result)
            except Exception as exc:  # noqa: BLE001 - urgency advice must still go out
                log.error("booking failed ref=%s error=%s", _ref(result), type(exc).__name__)
                booking_failed = True
            else:
                if outcome is not None:
                    session.booking = outcome
        use_llm = self.settings.llm_lead_in if lead_in is None else lead_in
        if use_llm:
            result.lead_in = self.lead_in(complaint, result)
        answer = render_answer(result, booking=session.booking, booking_failed=booking_failed)
        return TurnResult(result=result, booking=session.booking, booking_failed=booking_failed, answer=answer)

    @staticmethod
    def wants_booking(result: TriageResult, session: PatientSession, book: bool | None) -> bool:
        """Whether this turn should book (see :meth:`turn`); never re-books the same department."""
        signal = result.demand_signal
        if book is False or signal is None or not result.departments or result.safe_reply:
            return False
        if session.booking is not None and session.booking.get("department") == signal.department:
            return False
        if book:
            return True
        return result.disposition.is_emergency or not result.follow_up_questions or len(session.turns) >= 2

    def book(self, result: TriageResult) -> dict[str, Any] | None:
        """Book the result's demand signal: the model's tool call when valid, else the fallback.

        Returns:
            The :class:`~assistant.domain.BookingOutcome` dump when booked, None when there
            are no tables or no capacity in the window.

        Raises:
            Exception: a database fault (the caller turns it into safe advice).
        """
        from assistant.agent.booking import book_resources

        if self.hospital is None or result.demand_signal is None:
            return None
        outcome = book_resources(self.hospital, result.demand_signal, backend=self.backend, kb=self.kb)
        return outcome.model_dump() if outcome.booked else None

    def lead_in(self, complaint: str, result: TriageResult) -> str | None:
        """A checked model lead-in sentence, or None (no model, unsafe text, or a failure)."""
        if self.backend is None or result.safe_reply:
            return None
        from assistant.triage.safety import write_lead_in

        try:
            return write_lead_in(self.backend, complaint, result)
        except Exception as exc:  # noqa: BLE001 - the lead-in is optional
            log.warning("lead-in failed ref=%s error=%s", _ref(result), type(exc).__name__)
            return None


def _ref(result: TriageResult) -> str:
    return result.demand_signal.patient_ref if result.demand_signal is not None else "-"
