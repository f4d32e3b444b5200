"""Hospital resource tables (SQLAlchemy 2 ORM), for SQLite and PostgreSQL.

Design
------
* **Clinic capacity** is a :class:`ClinicSession` (one doctor, one half-day, local
  times 08:00-12:00 / 13:30-17:00 in the demo) split into ``capacity`` equal
  :class:`ClinicSlot` rows (16 x 15 min in a morning session). A slot holds one
  patient: ``booked`` is 0 or 1.
* **Beds** are counted per :class:`Ward` (one department, one bed type): the ward
  census is ``beds_total``, ``beds_occupied`` (patients in beds, as reported by the
  ward) and ``beds_reserved`` (beds held by bookings of this system). Free beds =
  total - occupied - reserved.
* **Imaging** capacity is an :class:`ImagingSlot`: one scanner room, one time block,
  ``capacity`` patients per block (e.g. 3 CT scans per 30 min).
* A :class:`Booking` takes exactly one unit of one resource. Triggers (created with
  the tables, one set per dialect in :mod:`assistant.hospital.triggers`) keep the
  counters in step with the bookings table:
  inserting an active booking increments ``clinic_slots.booked``,
  ``imaging_slots.booked`` or ``wards.beds_reserved``; cancelling or deleting it
  decrements. The CHECK constraints ``booked <= 1``, ``booked <= capacity`` and
  ``occupied + reserved <= total`` then make a double booking impossible at DB
  level: the offending INSERT fails with :class:`sqlalchemy.exc.IntegrityError` and
  nothing is written. A partial unique index also allows at most one active booking
  per clinic slot and per demand signal (both dialects). On PostgreSQL a clinic slot
  is a boolean, and the trigger refuses to take a slot that is already taken.

The schema is versioned with Alembic (``assistant/hospital/migrations``): a change to
these tables needs a new revision (see README "Database migrations").

All datetimes are stored as naive UTC text and returned as timezone-aware UTC
(:class:`UTCDateTime`); passing a naive datetime raises ``ValueError``. The hospital's
own timezone (for "08:00 local") is in :class:`HospitalMeta` under ``timezone``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    event,
    false,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

SCHEMA_VERSION = "1"

DOCTOR_TITLES: dict[str, tuple[str, str]] = {
    "chief": ("Chief Physician", "主任医师"),
    "associate_chief": ("Associate Chief Physician", "副主任医师"),
    "attending": ("Attending Physician", "主治医师"),
    "resident": ("Resident Physician", "住院医师"),
}
"""Title code -> (English, Chinese): the four clinical ranks of Chinese hospitals."""

BED_TYPES = ("general", "icu", "paediatric", "maternity", "isolation")
MODALITIES = ("CT", "MRI", "ultrasound")
RESOURCE_KINDS = ("clinic_slot", "bed", "imaging")
BOOKING_STATUSES = ("tentative", "confirmed", "cancelled")
ACTIVE_STATUSES = ("tentative", "confirmed")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware datetime stored as naive UTC; naive input is refused."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware datetime")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


def utcnow() -> datetime:
    """Current time, timezone-aware UTC."""
    return datetime.now(UTC)


class Base(DeclarativeBase):
    """Declarative base of the hospital resource tables."""


class HospitalMeta(Base):
    """Key/value facts about the database: ``timezone``, ``schema_version``, ``source``..."""

    __tablename__ = "hospital_meta"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class DepartmentRow(Base):
    """A department this hospital runs (code from the catalog)."""

    __tablename__ = "departments"

    code: Mapped[str] = mapped_column(String(10), primary_key=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(60))
    treats_en: Mapped[str] = mapped_column(Text, default="")
    treats_zh: Mapped[str] = mapped_column(Text, default="")

    doctors: Mapped[list[Doctor]] = relationship(back_populates="department")


class Doctor(Base):
    """A doctor who runs clinic sessions. ``code`` is the hospital's staff id."""

    __tablename__ = "doctors"
    __table_args__ = (CheckConstraint(_in("title", tuple(DOCTOR_TITLES)), name="ck_doctor_title"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(60))
    title: Mapped[str] = mapped_column(String(20))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)

    department: Mapped[DepartmentRow] = relationship(back_populates="doctors")
    sub_specialty_rows: Mapped[list[DoctorSubSpecialty]] = relationship(
        cascade="all, delete-orphan", order_by="DoctorSubSpecialty.sub_specialty"
    )
    language_rows: Mapped[list[DoctorLanguage]] = relationship(
        cascade="all, delete-orphan", order_by="DoctorLanguage.language"
    )

    @property
    def sub_specialties(self) -> list[str]:
        """Catalog sub-specialty codes of this doctor."""
        return [row.sub_specialty for row in self.sub_specialty_rows]

    @property
    def languages(self) -> list[str]:
        """Consultation languages (ISO 639-1, e.g. ``zh``, ``en``)."""
        return [row.language for row in self.language_rows]


class DoctorSubSpecialty(Base):
    """Doctor <-> catalog sub-specialty code of the doctor's department."""

    __tablename__ = "doctor_sub_specialties"

    doctor_id: Mapped[int] = mapped_column(
        ForeignKey("doctors.id", ondelete="CASCADE"), primary_key=True
    )
    sub_specialty: Mapped[str] = mapped_column(String(50), primary_key=True, index=True)


class DoctorLanguage(Base):
    """Doctor <-> consultation language."""

    __tablename__ = "doctor_languages"

    doctor_id: Mapped[int] = mapped_column(
        ForeignKey("doctors.id", ondelete="CASCADE"), primary_key=True
    )
    language: Mapped[str] = mapped_column(String(8), primary_key=True, index=True)


class ClinicSession(Base):
    """One doctor's clinic session (出诊), split into ``capacity`` equal slots."""

    __tablename__ = "clinic_sessions"
    __table_args__ = (
        UniqueConstraint("doctor_id", "starts_at", name="uq_session_doctor_start"),
        CheckConstraint("ends_at > starts_at", name="ck_session_times"),
        CheckConstraint("capacity >= 1", name="ck_session_capacity"),
        Index("ix_session_dept_start", "department_code", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    doctor_id: Mapped[int] = mapped_column(ForeignKey("doctors.id", ondelete="CASCADE"))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer, doc="Number of patient slots.")

    doctor: Mapped[Doctor] = relationship()
    slots: Mapped[list[ClinicSlot]] = relationship(
        back_populates="session", cascade="all, delete-orphan", order_by="ClinicSlot.seq"
    )


class ClinicSlot(Base):
    """One patient appointment slot (号源) of a clinic session.

    ``booked`` is 1 when taken, either by a :class:`Booking` of this system (then
    ``booking_ref`` is the booking id) or by the hospital's own system (then
    ``booking_ref`` is its reference, e.g. ``HIS-000123``, or empty).
    """

    __tablename__ = "clinic_slots"
    __table_args__ = (
        UniqueConstraint("session_id", "seq", name="uq_slot_session_seq"),
        # SQLite stores the boolean as an integer; PostgreSQL's boolean needs no check.
        CheckConstraint("booked IN (0, 1)", name="ck_slot_booked").ddl_if(dialect="sqlite"),
        CheckConstraint("ends_at > starts_at", name="ck_slot_times"),
        Index("ix_slot_free_start", "booked", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    session_id: Mapped[int] = mapped_column(ForeignKey("clinic_sessions.id", ondelete="CASCADE"))
    seq: Mapped[int] = mapped_column(Integer, doc="0-based position in the session.")
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    booked: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    booking_ref: Mapped[str | None] = mapped_column(String(64), default=None)

    session: Mapped[ClinicSession] = relationship(back_populates="slots")


class Ward(Base):
    """A ward (病区) of one department and one bed type, with its bed census."""

    __tablename__ = "wards"
    __table_args__ = (
        CheckConstraint(_in("bed_type", BED_TYPES), name="ck_ward_bed_type"),
        CheckConstraint("beds_total >= 0", name="ck_ward_total"),
        CheckConstraint("beds_occupied >= 0", name="ck_ward_occupied"),
        CheckConstraint("beds_reserved >= 0", name="ck_ward_reserved"),
        CheckConstraint(
            "beds_occupied + beds_reserved <= beds_total", name="ck_ward_census_capacity"
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(32), unique=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(60))
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    bed_type: Mapped[str] = mapped_column(String(12))
    beds_total: Mapped[int] = mapped_column(Integer)
    beds_occupied: Mapped[int] = mapped_column(Integer, default=0)
    beds_reserved: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    census_at: Mapped[datetime | None] = mapped_column(
        UTCDateTime, default=None, doc="When beds_occupied was last reported."
    )


class ImagingSlot(Base):
    """A block of scanner time: ``capacity`` examinations of one modality in one room."""

    __tablename__ = "imaging_slots"
    __table_args__ = (
        UniqueConstraint("room", "starts_at", name="uq_imaging_room_start"),
        CheckConstraint(_in("modality", MODALITIES), name="ck_imaging_modality"),
        CheckConstraint("capacity >= 1", name="ck_imaging_capacity"),
        CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_imaging_booked"),
        CheckConstraint("ends_at > starts_at", name="ck_imaging_times"),
        Index("ix_imaging_modality_start", "modality", "starts_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    modality: Mapped[str] = mapped_column(String(12))
    room: Mapped[str] = mapped_column(String(40))
    starts_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ends_at: Mapped[datetime] = mapped_column(UTCDateTime)
    capacity: Mapped[int] = mapped_column(Integer)
    booked: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))


class Service(Base):
    """A bookable or informational service (e.g. Gastroscopy / 胃镜检查), for retrieval."""

    __tablename__ = "services"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code: Mapped[str] = mapped_column(String(40), unique=True)
    department_code: Mapped[str] = mapped_column(ForeignKey("departments.code"), index=True)
    name_en: Mapped[str] = mapped_column(String(120))
    name_zh: Mapped[str] = mapped_column(String(60))
    description_en: Mapped[str] = mapped_column(Text, default="")
    description_zh: Mapped[str] = mapped_column(Text, default="")
    modality: Mapped[str | None] = mapped_column(String(12), default=None)


class DemandSignalRow(Base):
    """A booked demand signal, stored as its JSON (no patient text: pseudonymous ref and codes)."""

    __tablename__ = "demand_signals"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    payload: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)


class AuditRecord(Base):
    """One audited staff action or login attempt (see :mod:`assistant.hospital.audit`).

    ``entry`` is the JSON object of the line the staff console appends to
    ``<data_dir>/audit.jsonl`` (pseudonymous ids only, never a password or patient text).
    Kept when the demo hospital is rebuilt or a CSV import replaces the tables.
    """

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_at", "at"), {"info": {"keep_on_reset": True}})

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime)
    action: Mapped[str] = mapped_column(String(64))
    actor: Mapped[str | None] = mapped_column(String(128), default=None)
    outcome: Mapped[str | None] = mapped_column(String(32), default=None)
    entry: Mapped[str] = mapped_column(Text)


class Booking(Base):
    """A hold on one unit of one resource for one demand signal.

    Exactly one of ``clinic_slot_id`` / ``ward_id`` / ``imaging_slot_id`` is set,
    matching ``resource_kind``. The resource of a booking cannot change (a trigger
    refuses); to move a patient, cancel and book again.
    """

    __tablename__ = "bookings"
    __table_args__ = (
        CheckConstraint(_in("status", BOOKING_STATUSES), name="ck_booking_status"),
        CheckConstraint(
            "(resource_kind = 'clinic_slot' AND clinic_slot_id IS NOT NULL"
            " AND ward_id IS NULL AND imaging_slot_id IS NULL)"
            " OR (resource_kind = 'bed' AND ward_id IS NOT NULL"
            " AND clinic_slot_id IS NULL AND imaging_slot_id IS NULL)"
            " OR (resource_kind = 'imaging' AND imaging_slot_id IS NOT NULL"
            " AND clinic_slot_id IS NULL AND ward_id IS NULL)",
            name="ck_booking_one_resource",
        ),
        Index(
            "uq_booking_active_clinic_slot",
            "clinic_slot_id",
            unique=True,
            sqlite_where=text("status != 'cancelled' AND clinic_slot_id IS NOT NULL"),
            postgresql_where=text("status != 'cancelled' AND clinic_slot_id IS NOT NULL"),
        ),
        Index(
            "uq_booking_active_signal",
            "signal_id",
            unique=True,
            sqlite_where=text("status != 'cancelled'"),
            postgresql_where=text("status != 'cancelled'"),
        ),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    signal_id: Mapped[str] = mapped_column(String(64), index=True)
    patient_ref: Mapped[str] = mapped_column(String(64))
    resource_kind: Mapped[str] = mapped_column(String(12))
    clinic_slot_id: Mapped[int | None] = mapped_column(ForeignKey("clinic_slots.id"), default=None)
    ward_id: Mapped[int | None] = mapped_column(ForeignKey("wards.id"), default=None)
    imaging_slot_id: Mapped[int | None] = mapped_column(
        ForeignKey("imaging_slots.id"), default=None
    )
    status: Mapped[str] = mapped_column(String(12), default="tentative")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    @property
    def resource_id(self) -> int:
        """Id of the booked clinic slot, ward or imaging slot."""
        value = {
            "clinic_slot": self.clinic_slot_id,
            "bed": self.ward_id,
            "imaging": self.imaging_slot_id,
        }[self.resource_kind]
        assert value is not None
        return value


# --- counter triggers: bookings <-> clinic_slots.booked / wards.beds_reserved / imaging ---
def _create_triggers(target: Any, connection: Any, **_: Any) -> None:
    from assistant.hospital.triggers import booking_trigger_ddl

    for statement in booking_trigger_ddl(connection.dialect.name):
        connection.exec_driver_sql(statement)


event.listen(Booking.__table__, "after_create", _create_triggers)


def row_dict(obj: Any) -> dict[str, Any]:
    """Column values of an ORM object (for dumps and tests)."""
    return {col.key: getattr(obj, col.key) for col in obj.__table__.columns}
