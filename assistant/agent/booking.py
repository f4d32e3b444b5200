"""The patient-side ``book_resources`` tool: a demand signal → a persisted booking.

Flow: the chat model (LangChain adapter, constrained to a tool call) is asked to call
``book_resources`` for the triage's signal. The call is accepted only if its arguments
name the real signal (id, department, disposition); otherwise — or with no model — a
deterministic fallback makes the same call. Which path was taken is logged and
returned (``path``: ``tool_call`` | ``fallback``) so eval can count it.

The tool runs :func:`assistant.allocation.book_one` over the free clinic slots of the
department and its overflow neighbours inside the signal's window, then writes the
booking in one ``BEGIN IMMEDIATE`` transaction. A slot taken concurrently by another
process (``BookingConflictError``) is excluded and the choice repeated, so there is
never a double booking.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta, timezone
from typing import Any, Literal

from pydantic import BaseModel, Field

from assistant.domain import BookingOutcome, DemandSignal, Disposition
from assistant.kb import KnowledgeBase, default_kb
from assistant.llm.base import ChatBackend

log = logging.getLogger(__name__)
MAX_RETRIES = 5
MAX_CANDIDATES = 400


def slot_resource(slot: Any) -> Any:
    """An allocation :class:`~assistant.allocation.Resource` (capacity 1) for a free clinic slot."""
    from assistant.allocation import Resource

    return Resource(id=f"slot:{slot.slot_id}", kind="clinic_slot", department=slot.department,
                    sub_specialties=tuple(slot.doctor.sub_specialties),
                    languages=tuple(x for x in slot.doctor.languages if x in ("en", "zh")),
                    start=slot.starts_at, end=slot.ends_at, capacity=1)


def book_signal(factory: Any, signal: DemandSignal, *, path: str = "fallback",
                kb: KnowledgeBase | None = None, hold: timedelta | None = None) -> BookingOutcome:
    """Book the best free clinic slot for ``signal`` (see module docstring).

    Args:
        factory: SQLAlchemy sessionmaker of the resource tables (``open_db``).
        signal: the demand signal from triage.
        path: which path invoked the tool, recorded in the outcome.
        kb: knowledge base for the overflow table and the emergency-only policy
            (default folder when None): a non-emergency signal is never booked into an
            emergency-only department, its own or a neighbour.
        hold: when set, the booking is a tentative hold and holds older than this are
            released first, in the same transaction (patient-chat bookings).

    Returns:
        A :class:`BookingOutcome`; ``booked=False`` with a reason when no capacity fits.
    """
    from assistant.allocation import book_one
    from assistant.hospital.bookings import BookingConflictError, create_booking, expire_holds, save_signal
    from assistant.hospital.db import write_session
    from assistant.hospital.queries import next_free_slots

    kb = kb or default_kb()
    neighbours = kb.neighbours
    emergency = signal.disposition.is_emergency
    if not kb.allows(signal.department, emergency=emergency):
        log.info("booking refused signal=%s dept=%s: emergency-only", signal.id, signal.department)
        return BookingOutcome(booked=False, signal_id=signal.id, path=path,  # type: ignore[arg-type]
                              reason=f"{signal.department} accepts emergency dispositions only")
    excluded: set[int] = set()
    for _ in range(MAX_RETRIES):
        with write_session(factory) as session:
            if hold is not None:
                expire_holds(session, older_than=datetime.now(timezone.utc) - hold)
            slots = []
            for dept in [signal.department, *neighbours.get(signal.department, [])]:
                if not kb.allows(dept, emergency=emergency):
                    continue
                slots += next_free_slots(session, dept, signal.earliest, signal.latest,
                                         limit=MAX_CANDIDATES, max_per_session=None)
            slots = [s for s in slots if s.slot_id not in excluded]
            by_id = {f"slot:{s.slot_id}": s for s in slots}
            resources = [slot_resource(s) for s in by_id.values()]
            result = book_one(signal, resources, neighbours=neighbours, now=signal.earliest) if resources else None
            if result is None or not result.assignments:
                reason = result.unmet[0].reason if result and result.unmet else "no free clinic slot in the window"
                log.info("booking none signal=%s dept=%s path=%s", signal.id, signal.department, path)
                return BookingOutcome(booked=False, signal_id=signal.id, reason=reason, path=path)  # type: ignore[arg-type]
            chosen = result.assignments[0]
            slot = by_id[chosen.resource_id]
            try:
                save_signal(session, signal)
                booking = create_booking(session, signal_id=signal.id, patient_ref=signal.patient_ref,
                                         resource_kind="clinic_slot", resource_id=slot.slot_id)
            except BookingConflictError:
                excluded.add(slot.slot_id)
                continue
            log.info("booking ok signal=%s ref=%s dept=%s path=%s", signal.id, booking.id, slot.department, path)
            return BookingOutcome(
                booked=True, ref=booking.id, signal_id=signal.id, department=slot.department,
                overflow=chosen.overflow, doctor=slot.doctor.model_dump(), starts_at=slot.starts_at,
                reason="booked", path=path,  # type: ignore[arg-type]
            )
    return BookingOutcome(booked=False, signal_id=signal.id, reason="slots taken concurrently; retry", path=path)  # type: ignore[arg-type]


class BookResourcesArgs(BaseModel):
    """Arguments of the ``book_resources`` tool as the chat model sees it."""

    signal_id: str = Field(max_length=40, description="The id of the demand signal to book.")
    department: str = Field(max_length=10, description="Canonical department code of the signal.")
    disposition: Disposition = Field(description="Disposition of the signal.")


BOOKING_CALL_TOKENS = 128  # token budget of the model's book_resources call


def request_booking_call(backend: Any, signal: DemandSignal) -> tuple[bool, dict[str, Any] | None]:
    """Ask the chat model to call ``book_resources`` for ``signal``.

    Returns:
        ``(valid, args)``: valid when the call names exactly this signal.
    """
    from langchain_core.tools import StructuredTool
    from pydantic import create_model

    from assistant.kb.catalog import DEPARTMENT_CODES
    from assistant.llm.langchain_adapter import LocalChatModel

    # The argument domain is the real one: pending signal ids (here the new one) and the
    # catalog's department codes; the model must still pick department and disposition.
    args_schema = create_model(
        "BookResources",
        __base__=BookResourcesArgs,
        signal_id=(Literal[(signal.id,)], Field(description="Id of the pending demand signal.")),  # type: ignore[valid-type]
        department=(Literal[tuple(DEPARTMENT_CODES)], Field(description="Department code of the signal.")),  # type: ignore[valid-type]
    )
    tool = StructuredTool.from_function(
        func=lambda **kw: "", name="book_resources", args_schema=args_schema,
        description="Book a clinic slot for a triaged patient's demand signal.",
    )
    # 128: the call alone is ~60 tokens (a 32-hex signal id, three fields, a server's JSON
    # indentation); 64 cut real calls short on llama.cpp's server
    chat = LocalChatModel(backend=backend, max_new_tokens=BOOKING_CALL_TOKENS).bind_tools(
        [tool], tool_choice="book_resources")
    prompt = (
        "Book care for this demand signal by calling book_resources with its exact values.\n"
        f"signal_id: {signal.id}\ndepartment: {signal.department}\ndisposition: {signal.disposition.value}"
    )
    try:
        msg = chat.invoke(prompt)
    except Exception as exc:  # noqa: BLE001 - the fallback covers any model failure
        log.info("booking tool call failed: %s", type(exc).__name__)
        return False, None
    if not msg.tool_calls:
        return False, None
    args = msg.tool_calls[0]["args"]
    valid = (args.get("signal_id") == signal.id and args.get("department") == signal.department
             and args.get("disposition") == signal.disposition.value)
    return valid, args


def book_resources(factory: Any, signal: DemandSignal, *, backend: ChatBackend | None = None,
                   kb: KnowledgeBase | None = None, hold: timedelta | None = None) -> BookingOutcome:
    """Patient flow: model tool call when valid, else the deterministic fallback.

    Args:
        factory: SQLAlchemy sessionmaker of the resource tables.
        signal: the demand signal to book.
        backend: chat model asked for the ``book_resources`` tool call (None: fallback).
        kb: knowledge base (overflow table, emergency-only policy).
        hold: make a tentative hold of this lifetime (see :func:`book_signal`).

    Returns:
        The :class:`BookingOutcome`, with ``path`` saying which path booked.
    """
    path = "fallback"
    if backend is not None:
        valid, _ = request_booking_call(backend, signal)
        path = "tool_call" if valid else "fallback"
    return book_signal(factory, signal, path=path, kb=kb, hold=hold)
