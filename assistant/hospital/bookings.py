"""Low-level booking writes. The database refuses double bookings (see models.py).

Allocation code decides *what* to book; these helpers only insert/update rows and turn
the database's refusal into :class:`BookingConflictError`. Call them inside
:func:`assistant.hospital.db.write_session` so the check and the write share one
write-locked transaction (SQLite ``BEGIN IMMEDIATE``, PostgreSQL advisory lock). On
PostgreSQL :func:`create_booking` also locks the resource row (``SELECT ... FOR
UPDATE``), so even a writer outside ``write_session`` books against the latest count.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assistant.domain import DemandSignal, ResourceType
from assistant.errors import AssistantError, DataError
from assistant.hospital.models import Booking, ClinicSlot, ImagingSlot, Ward, utcnow

BookingStatus = Literal["tentative", "confirmed", "cancelled"]

_COLUMN = {"clinic_slot": "clinic_slot_id", "bed": "ward_id", "imaging": "imaging_slot_id"}
_TABLE = {"clinic_slot": ClinicSlot, "bed": Ward, "imaging": ImagingSlot}


class BookingConflictError(AssistantError):
    """The resource is already fully booked (or the signal already holds a booking)."""


def create_booking(
    session: Session,
    *,
    signal_id: str,
    patient_ref: str,
    resource_kind: ResourceType,
    resource_id: int,
    status: BookingStatus = "tentative",
    booking_id: str | None = None,
) -> Booking:
    """Insert an active booking of one unit of a resource.

    The counter triggers update ``clinic_slots.booked`` / ``wards.beds_reserved`` /
    ``imaging_slots.booked`` in the same statement. Runs inside a SAVEPOINT, so a
    refused booking leaves the caller's transaction usable.

    Args:
        session: a session, ideally from ``write_session``; the caller commits.
        signal_id: :attr:`DemandSignal.id`.
        patient_ref: :attr:`DemandSignal.patient_ref` (pseudonymous).
        resource_kind: ``clinic_slot`` (id = ClinicSlot.id), ``bed`` (id = Ward.id) or
            ``imaging`` (id = ImagingSlot.id).
        resource_id: id of that row.
        status: ``tentative`` or ``confirmed``.
        booking_id: explicit id (default a new uuid4 hex).

    Returns:
        The new :class:`Booking` (flushed).

    Raises:
        BookingConflictError: no free capacity left on the resource, or the signal
            already has an active booking.
        DataError: unknown resource kind or id, or ``status="cancelled"``.
    """
    if resource_kind not in _COLUMN:
        raise DataError(f"unknown resource kind '{resource_kind}'")
    if status == "cancelled":
        raise DataError("a new booking cannot be cancelled")
    table = _TABLE[resource_kind]
    # Row lock on PostgreSQL (SQLite ignores FOR UPDATE: write_session already holds the lock).
    if session.get(table, resource_id, with_for_update=True, populate_existing=True) is None:
        raise DataError(f"no {resource_kind} with id {resource_id}")
    booking = Booking(
        id=booking_id or uuid.uuid4().hex,
        signal_id=signal_id,
        patient_ref=patient_ref,
        resource_kind=resource_kind,
        status=status,
        **{_COLUMN[resource_kind]: resource_id},
    )
    try:
        with session.begin_nested():
            session.add(booking)
    except IntegrityError as exc:
        raise BookingConflictError(
            f"{resource_kind} {resource_id} cannot be booked for signal {signal_id}: {exc.orig}"
        ) from None
    # The triggers changed the resource row behind the ORM's back.
    session.expire(session.get(table, resource_id))  # type: ignore[arg-type]
    return booking


def set_booking_status(session: Session, booking_id: str, status: BookingStatus) -> Booking:
    """Confirm, cancel or re-activate a booking (triggers release/re-acquire capacity).

    Args:
        session: an open session; the caller commits.
        booking_id: :attr:`Booking.id`.
        status: the new status.

    Returns:
        The updated booking.

    Raises:
        DataError: no such booking.
        BookingConflictError: re-activating a cancelled booking whose resource is full.
    """
    booking = session.get(Booking, booking_id)
    if booking is None:
        raise DataError(f"no booking with id {booking_id}")
    try:
        with session.begin_nested():
            session.execute(
                update(Booking)
                .where(Booking.id == booking_id)
                .values(status=status, updated_at=utcnow())
            )
    except IntegrityError as exc:
        raise BookingConflictError(
            f"booking {booking_id} cannot become {status}: {exc.orig}"
        ) from None
    session.expire(booking)
    resource = session.get(_TABLE[booking.resource_kind], booking.resource_id)
    if resource is not None:
        session.expire(resource)
    return booking


def active_bookings(session: Session, signal_id: str | None = None) -> list[Booking]:
    """Tentative and confirmed bookings (of one signal when given), oldest first."""
    stmt = (
        select(Booking)
        .where(Booking.status != "cancelled")
        .order_by(Booking.created_at, Booking.id)
    )
    if signal_id is not None:
        stmt = stmt.where(Booking.signal_id == signal_id)
    return list(session.scalars(stmt))


def save_signal(session: Session, signal: DemandSignal) -> None:
    """Store a demand signal (idempotent) in the caller's transaction."""
    from assistant.hospital.models import DemandSignalRow

    if session.get(DemandSignalRow, signal.id) is None:
        session.add(DemandSignalRow(id=signal.id, payload=signal.model_dump_json(),
                                    created_at=signal.created_at))
        session.flush()


def load_signals(session: Session, ids: list[str]) -> dict[str, DemandSignal]:
    """Stored demand signals by id (missing ids are left out)."""
    from sqlalchemy import select

    from assistant.hospital.models import DemandSignalRow

    rows = session.execute(select(DemandSignalRow.id, DemandSignalRow.payload)
                           .where(DemandSignalRow.id.in_(ids)))
    return {i: DemandSignal.model_validate_json(p) for i, p in rows}


def expire_holds(session: Session, *, older_than: datetime) -> int:
    """Release (cancel) tentative holds created before ``older_than`` (aware UTC).

    Patient-chat bookings are tentative holds that expire unless confirmed; a released
    slot is free again at once (the unique index counts only non-cancelled bookings).

    Returns:
        The number of holds released.
    """
    result = session.execute(
        update(Booking)
        .where(Booking.status == "tentative", Booking.created_at < older_than)
        .values(status="cancelled", updated_at=utcnow())
    )
    return int(result.rowcount or 0)
