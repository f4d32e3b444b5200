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
3. **lead-in**: an optional model sentence, checked and dropped when unsafe. The web UI
   shows the answer first and streams the lead-in afterwards
   (:meth:`TriageService.stream_lead_in`) through a bounded generation queue
   (:class:`GenerationQueue`): model generation never delays the answer, never blocks
   other sessions' triage, and is skipped when the queue is full.

Sessions are per patient and never shared; only the pseudonymous ``patient_ref`` and
codes are logged, never patient text.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
import uuid
import weakref
from collections import defaultdict, deque
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from assistant.domain import TriageResult
from assistant.kb import KnowledgeBase, default_kb
from assistant.llm.base import ChatBackend
from assistant.settings import Settings

log = logging.getLogger(__name__)

MAX_STORED_CHARS = 4_000_000
"""Characters of one session's chat kept at most (older text is dropped first)."""
LEAD_IN_TIMEOUT_S = 30.0
"""Longest wait for a streamed lead-in, queueing included (then it is dropped)."""


@dataclass
class PatientSession:
    """State of one patient's triage interview (one per browser tab or CLI call).

    Attributes:
        session_id: random id; only its hash is logged or stored (``patient_ref``).
        turns: the patient's messages so far (newest last).
        asked: follow-up question ids already asked.
        language: ``"en"``/``"zh"`` once detected or chosen.
        turn_no: turns completed (a streamed lead-in stops when a newer turn exists).
        last_result: the newest turn's triage result (for the streamed lead-in).
        lead_in_turn: the turn whose lead-in was last asked for (one per turn).
        booking: the confirmed booking (a :class:`~assistant.domain.BookingOutcome`
            dump), once made.
    """

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex)
    turns: list[str] = field(default_factory=list)
    asked: set[str] = field(default_factory=set)
    language: str | None = None
    booking: dict[str, Any] | None = None
    last_disposition: str | None = None
    turn_no: int = 0
    last_result: TriageResult | None = None
    lead_in_turn: int = 0

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
    district: str | None = Field(
        default=None, max_length=16, pattern=r"^[A-Za-z0-9_-]+$",
        description="Home district code (region tables), for the nearest community health centre.")

    @field_validator("district", mode="before")
    @classmethod
    def _district(cls, value: Any) -> Any:
        return None if value in (None, "") else str(value).strip().upper()

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
        booking: the booking hold (a :class:`~assistant.domain.BookingOutcome` dump) when
            one is active in this session.
        booking_failed: booking was attempted and failed with a fault.
        hold_limited: this client has made too many holds recently; none was made.
        pre_arrival: an emergency: the demand signal was recorded for the emergency
            department, and no ED capacity was consumed (patients go now, unbooked).
        answer: the patient-facing Markdown answer.
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    result: TriageResult
    booking: dict[str, Any] | None = None
    booking_failed: bool = False
    hold_limited: bool = False
    pre_arrival: bool = False
    primary_care: dict[str, Any] | None = None
    answer: str


class HoldLimiter:
    """At most ``limit`` booking holds per client in any ``window`` (thread-safe, per process).

    Args:
        limit: holds allowed per window.
        window: the sliding window.
    """

    def __init__(self, limit: int, window: timedelta = timedelta(hours=1)) -> None:
        self.limit, self.window = limit, window
        self._lock = threading.Lock()
        self._events: dict[str, deque[datetime]] = defaultdict(deque)

    def allow(self, client: str, now: datetime) -> bool:
        """Record a hold for ``client`` and return True, or return False when over the limit."""
        with self._lock:
            events = self._events[client]
            while events and events[0] <= now - self.window:
                events.popleft()
            if len(events) >= self.limit:
                return False
            events.append(now)
            return True


_DONE = object()


class GenerationTicket:
    """One queued generation: its values arrive through :meth:`results`; :meth:`cancel`
    stops it (before it starts, or between two values)."""

    def __init__(self, produce: Callable[[], Iterable[Any]]) -> None:
        self.produce = produce
        self.cancelled = threading.Event()
        self._values: queue.Queue[Any] = queue.Queue()

    def cancel(self) -> None:
        """Stop the generation: a queued ticket is skipped, a running one stops at its next value."""
        self.cancelled.set()

    def run(self) -> None:
        """Run ``produce`` (on a worker thread), forwarding its values until done or cancelled."""
        try:
            if self.cancelled.is_set():
                return
            for value in self.produce():
                if self.cancelled.is_set():
                    return
                self._values.put(value)
        except Exception as exc:  # noqa: BLE001 - reported as the end of the stream
            log.warning("queued generation failed: %s", type(exc).__name__)
        finally:
            self._values.put(_DONE)

    def results(self, timeout_s: float) -> Iterator[Any]:
        """Yield the values as they arrive, for at most ``timeout_s`` seconds in all
        (waiting in the queue included); the ticket is cancelled when the time is up or
        the consumer stops early."""
        deadline = time.monotonic() + timeout_s
        try:
            while True:
                left = deadline - time.monotonic()
                if left <= 0:
                    log.info("queued generation timed out after %.0f s", timeout_s)
                    return
                try:
                    value = self._values.get(timeout=left)
                except queue.Empty:
                    continue
                if value is _DONE:
                    return
                yield value
        finally:
            self.cancel()


class GenerationQueue:
    """A bounded queue of model generations served by a few worker threads.

    Model generation is slow (seconds) and CPU-bound; the deterministic triage of other
    sessions must never wait behind it. Generations wait here, at most ``max_waiting``
    of them; when the queue is full a new one is refused (the caller skips the optional
    text) instead of growing an unbounded backlog.

    Args:
        workers: generations run at once (1: the model runs one generate at a time anyway).
        max_waiting: generations allowed to wait for a worker.
    """

    def __init__(self, workers: int = 1, max_waiting: int = 3) -> None:
        self.workers, self.max_waiting = max(1, workers), max(0, max_waiting)
        self._jobs: queue.Queue[GenerationTicket] = queue.Queue(maxsize=max(1, self.max_waiting))
        self._lock = threading.Lock()
        self._busy = 0
        self._threads: list[threading.Thread] = []

    def submit(self, produce: Callable[[], Iterable[Any]]) -> GenerationTicket | None:
        """Queue ``produce`` (called on a worker; it yields the values to stream back).

        Returns:
            The :class:`GenerationTicket`, or None when ``max_waiting`` generations already wait.
        """
        ticket = GenerationTicket(produce)
        with self._lock:
            if self._busy >= self.workers + self.max_waiting:
                return None
            self._busy += 1
            while len(self._threads) < self.workers:
                thread = threading.Thread(target=self._work, name=f"generation-{len(self._threads)}", daemon=True)
                thread.start()
                self._threads.append(thread)
        self._jobs.put(ticket)
        return ticket

    @property
    def pending(self) -> int:
        """Generations running or waiting."""
        with self._lock:
            return self._busy

    def _work(self) -> None:
        while True:
            ticket = self._jobs.get()
            try:
                ticket.run()
            finally:
                with self._lock:
                    self._busy -= 1


class TriageService:
    """Triage, then booking, then the lead-in; one instance per process, stateless per call.

    Args:
        settings: runtime settings.
        kb: the knowledge base (default: ``settings.resolved_knowledge_base_dir``).
        backend: the chat model for lead-ins and, when ``llm_capable``, the tool-call
            booking and the second opinion (None: deterministic paths only).
        triager: a prebuilt :class:`~assistant.triage.engine.Triager` (tests, eval).
        hospital: SQLAlchemy sessionmaker of the resource tables (None: open
            ``settings.resolved_hospital_db`` when it exists; no booking without it).
        generation: the bounded queue for streamed lead-ins (default: one worker, 3 waiting).

    Thread-safe: many sessions' turns run at once (the triager, the hospital tables and
    the hold limiter are shared read-mostly or locked); turns of one session run one at a
    time (a per-session lock), so a double-clicked "send" cannot interleave two turns.
    """

    def __init__(self, settings: Settings, *, kb: KnowledgeBase | None = None,
                 backend: ChatBackend | None = None, triager: Any = None, hospital: Any = None,
                 generation: GenerationQueue | None = None) -> None:
        from assistant.triage.engine import Triager, open_hospital

        self.settings = settings
        self.kb = kb if kb is not None else default_kb(settings.resolved_knowledge_base_dir)
        self.backend = backend
        self.hospital = hospital if hospital is not None else open_hospital(settings)
        self.triager = triager if triager is not None else Triager(
            settings, kb=self.kb, backend=backend, hospital=self.hospital)
        self.holds = HoldLimiter(settings.max_holds_per_client_hour)
        self.generation = generation if generation is not None else GenerationQueue()
        self._session_locks: weakref.WeakValueDictionary[str, Any] = weakref.WeakValueDictionary()
        self._locks_guard = threading.Lock()

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
             now: datetime | None = None, client: str = "local") -> TurnResult:
        """Run one patient turn.

        Args:
            session: this patient's session (mutated: turns, asked questions, booking).
            message: the new message (any size; bytes are decoded safely).
            profile: age, sex, pregnancy and language from the form.
            book: book now (True), never (False), or when the interview is done (None:
                an emergency, no open questions, or from the second turn on).
            lead_in: write a model lead-in (default ``settings.lead_in_enabled``: capable models).
            now: the clock (UTC), for tests.
            client: who is asking (e.g. a hash of the browser's address), for the hold limit.

        Returns:
            A :class:`TurnResult`; triage never raises for bad input, and a booking or
            lead-in failure degrades to safe text.
        """
        with self._session_lock(session):
            return self._turn(session, message, profile, book=book, lead_in=lead_in, now=now, client=client)

    def _session_lock(self, session: PatientSession) -> Any:
        with self._locks_guard:
            lock = self._session_locks.get(session.session_id)
            if lock is None:
                lock = _SessionLock()
                self._session_locks[session.session_id] = lock
            return lock

    def _turn(self, session: PatientSession, message: str | bytes, profile: PatientProfile | None,
              *, book: bool | None, lead_in: bool | None, now: datetime | None, client: str) -> TurnResult:
        from assistant.triage.render import md_escape, render_answer

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
        booking_failed = hold_limited = pre_arrival = False
        if self.wants_booking(result, session, book):
            try:
                if result.disposition.is_emergency:
                    pre_arrival = self.notify_arrival(result)
                elif not self.holds.allow(client, now or datetime.now(timezone.utc)):
                    hold_limited = True
                    log.info("booking hold refused ref=%s: client over its hourly limit", _ref(result))
                else:
                    self.release(session)
                    outcome = self.book(result)
                    if outcome is not None:
                        session.booking = outcome
            except Exception as exc:  # noqa: BLE001 - urgency advice must still go out
                log.error("booking failed ref=%s error=%s", _ref(result), type(exc).__name__)
                booking_failed = True
        use_llm = self.settings.lead_in_enabled if lead_in is None else lead_in
        if use_llm:
            result.lead_in = self.lead_in(complaint, result)
        answer = render_answer(result, booking=session.booking, booking_failed=booking_failed,
                               hold_minutes=self.settings.booking_hold_minutes)
        primary_care = self.primary_care(result, profile.district)
        if primary_care is not None:
            answer += "\n\n" + md_escape(primary_care["zh" if result.language == "zh" else "en"])
        session.turn_no += 1
        session.last_result = result
        return TurnResult(result=result, booking=session.booking, booking_failed=booking_failed,
                          hold_limited=hold_limited, pre_arrival=pre_arrival, primary_care=primary_care,
                          answer=answer)

    def primary_care(self, result: TriageResult, district: str | None) -> dict[str, Any] | None:
        """The community health centre in the patient's district that can see a non-urgent
        patient today (分级诊疗: primary care first for mild cases), or None.

        Never for an emergency or a same-day disposition outside the region policy's
        non-urgent list; None without a district, region tables or free capacity. Reads
        public site facts only (:func:`assistant.operations.service.patient_primary_care_option`);
        never raises.
        """
        if not district or self.hospital is None or result.disposition.is_emergency:
            return None
        from assistant.operations.service import patient_primary_care_option

        return patient_primary_care_option(self.hospital, district, result.disposition.value)

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
        """Hold a slot for the result's demand signal: the model's tool call when valid, else
        the fallback. The hold is tentative and lapses after ``booking_hold_minutes``
        unless :meth:`confirm` is called.

        The tool call is asked only of a model marked ``llm_capable`` (as the CLI and the
        staff console do): the embedded 135M model's call is slow (1-3 s on 2 CPU cores, a
        generation the answer would wait for) and the fallback makes the same booking.

        Returns:
            The :class:`~assistant.domain.BookingOutcome` dump when booked, None when there
            are no tables or no capacity in the window.

        Raises:
            Exception: a database fault (the caller turns it into safe advice).
        """
        from assistant.agent.booking import book_resources

        if self.hospital is None or result.demand_signal is None:
            return None
        backend = self.backend if self.settings.llm_capable else None
        outcome = book_resources(self.hospital, result.demand_signal, backend=backend, kb=self.kb,
                                 hold=timedelta(minutes=self.settings.booking_hold_minutes))
        return outcome.model_dump() if outcome.booked else None

    def notify_arrival(self, result: TriageResult) -> bool:
        """Record an emergency's demand signal for the emergency department (pre-arrival
        notice in the demand-signal table) without consuming ED capacity, which the
        allocator keeps for arrivals. Returns True when recorded."""
        if self.hospital is None or result.demand_signal is None:
            return False
        from assistant.hospital.bookings import save_signal
        from assistant.hospital.db import write_session

        with write_session(self.hospital) as db:
            save_signal(db, result.demand_signal)
        log.info("pre-arrival notice ref=%s dept=%s", _ref(result), result.demand_signal.department)
        return True

    def release(self, session: PatientSession) -> None:
        """Cancel this session's tentative hold, if any (one hold per session)."""
        ref = (session.booking or {}).get("ref")
        if self.hospital is None or not ref:
            return
        from assistant.hospital.bookings import set_booking_status
        from assistant.hospital.db import write_session
        from assistant.hospital.models import Booking

        with write_session(self.hospital) as db:
            booking = db.get(Booking, ref)
            if booking is not None and booking.status == "tentative":
                set_booking_status(db, ref, "cancelled")
        session.booking = None

    def confirm(self, session: PatientSession) -> bool:
        """Confirm this session's hold (it then no longer lapses).

        Returns:
            True when a live hold was confirmed; False when there is none or it lapsed.
        """
        ref = (session.booking or {}).get("ref")
        if self.hospital is None or not ref:
            return False
        from assistant.hospital.bookings import set_booking_status
        from assistant.hospital.db import write_session
        from assistant.hospital.models import Booking

        with write_session(self.hospital) as db:
            booking = db.get(Booking, ref)
            if booking is None or booking.status != "tentative":
                if booking is None or booking.status == "cancelled":
                    session.booking = None
                return booking is not None and booking.status == "confirmed"
            set_booking_status(db, ref, "confirmed")
        session.booking = {**(session.booking or {}), "confirmed": True}
        return True

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


    def stream_lead_in(self, session: PatientSession, *, timeout_s: float = LEAD_IN_TIMEOUT_S) -> Iterator[str]:
        """Stream the checked model lead-in of the session's newest turn (after its answer).

        Generation goes through :attr:`generation` (bounded; when full, no lead-in) and is
        checked as it arrives (:func:`assistant.triage.safety.stream_lead_in`).

        Args:
            session: the session whose ``last_result`` gets the lead-in.
            timeout_s: the longest wait in all, queueing included (then the lead-in is dropped).

        Yields:
            The visible lead-in so far; the last value is the final lead-in or ``""``
            (dropped: unsafe, off-topic, failed, too slow, or a newer turn started).
            Nothing is yielded when there is no model, no result, a safe reply, a full
            queue, or this turn's lead-in was already asked for (an empty message's reply
            does not re-open the previous answer).
        """
        result, turn_no = session.last_result, session.turn_no
        if self.backend is None or result is None or result.safe_reply or session.lead_in_turn == turn_no:
            return  # nothing to open, or this turn's lead-in was already asked for
        session.lead_in_turn = turn_no
        from assistant.triage.safety import LEAD_IN_TOKENS, lead_in_messages
        from assistant.triage.safety import stream_lead_in as checked_stream

        complaint = "\n".join(session.turns)
        messages, _ = lead_in_messages(complaint, result)
        backend = self.backend

        def produce() -> Iterator[Any]:
            stream = getattr(backend, "stream", None)
            pieces = stream(messages, max_new_tokens=LEAD_IN_TOKENS) if callable(stream) else \
                iter([str(backend.generate(messages, max_new_tokens=LEAD_IN_TOKENS))])
            try:
                yield from checked_stream(pieces, complaint, result)
            finally:  # one sentence read, or dropped: stop the model (frees the CPU)
                close = getattr(pieces, "close", None)
                if callable(close):
                    close()
            yield _FINAL

        ticket = self.generation.submit(produce)
        if ticket is None:
            log.info("lead-in skipped ref=%s: generation queue full", _ref(result))
            return
        shown, final = "", False
        for value in ticket.results(timeout_s):
            if session.turn_no != turn_no:
                return  # a newer turn owns the lead-in place now
            if value is _FINAL:
                final = True
                break
            shown = value
            yield shown
        if final and shown:
            result.lead_in = shown
        elif shown:
            yield ""  # timed out or failed mid-way: withdraw the partial lead-in


_FINAL = object()


class _SessionLock:
    """A lock that can be weakly referenced (one per live session)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()

    def __enter__(self) -> None:
        self._lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self._lock.release()


def _ref(result: TriageResult) -> str:
    return result.demand_signal.patient_ref if result.demand_signal is not None else "-"


def client_key(address: str | None) -> str:
    """Pseudonymous key of a client address for rate limits (never the address itself)."""
    return "c-" + hashlib.sha256(f"client:{address or '-'}".encode()).hexdigest()[:16]
