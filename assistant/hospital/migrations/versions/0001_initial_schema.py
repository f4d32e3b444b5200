"""Initial schema: the hospital resource tables, bookings, demand signals, audit log.

Revision ID: 0001
Revises:
Create Date: 2026-12-01

The schema of ``assistant/hospital/models.py`` when migrations were introduced, for
SQLite and PostgreSQL, including the booking counter triggers (version 1 of
:mod:`assistant.hospital.triggers`). A pre-migration SQLite file is stamped at this
revision (see :mod:`assistant.hospital.migrate`).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from assistant.hospital.models import UTCDateTime
from assistant.hospital.triggers import booking_trigger_ddl, drop_trigger_ddl

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = (
    "hospital_meta",
    "departments",
    "doctors",
    "doctor_sub_specialties",
    "doctor_languages",
    "clinic_sessions",
    "clinic_slots",
    "wards",
    "imaging_slots",
    "services",
    "demand_signals",
    "audit_log",
    "bookings",
)


def _sqlite_only(*constraints: sa.Constraint) -> tuple[sa.Constraint, ...]:
    """Constraints that only SQLite gets (its boolean is an integer)."""
    return constraints if op.get_bind().dialect.name == "sqlite" else ()


def upgrade() -> None:
    """Create the tables, indexes and booking triggers."""
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("entry", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_audit_at", "audit_log", ["at"], unique=False)
    op.create_table(
        "demand_signals",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_table(
        "departments",
        sa.Column("code", sa.String(length=10), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("treats_en", sa.Text(), nullable=False),
        sa.Column("treats_zh", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("code"),
    )
    op.create_table(
        "hospital_meta",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key"),
    )
    op.create_table(
        "imaging_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("modality", sa.String(length=12), nullable=False),
        sa.Column("room", sa.String(length=40), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("booked", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.CheckConstraint("modality IN ('CT', 'MRI', 'ultrasound')", name="ck_imaging_modality"),
        sa.CheckConstraint("booked >= 0 AND booked <= capacity", name="ck_imaging_booked"),
        sa.CheckConstraint("capacity >= 1", name="ck_imaging_capacity"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_imaging_times"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("room", "starts_at", name="uq_imaging_room_start"),
    )
    op.create_index(
        "ix_imaging_modality_start", "imaging_slots", ["modality", "starts_at"], unique=False
    )
    op.create_table(
        "doctors",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("title", sa.String(length=20), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=False),
        sa.CheckConstraint(
            "title IN ('chief', 'associate_chief', 'attending', 'resident')", name="ck_doctor_title"
        ),
        sa.ForeignKeyConstraint(
            ["department_code"],
            ["departments.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_doctors_department_code", "doctors", ["department_code"], unique=False)
    op.create_table(
        "services",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=40), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("description_en", sa.Text(), nullable=False),
        sa.Column("description_zh", sa.Text(), nullable=False),
        sa.Column("modality", sa.String(length=12), nullable=True),
        sa.ForeignKeyConstraint(
            ["department_code"],
            ["departments.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_services_department_code", "services", ["department_code"], unique=False)
    op.create_table(
        "wards",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=32), nullable=False),
        sa.Column("name_en", sa.String(length=120), nullable=False),
        sa.Column("name_zh", sa.String(length=60), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=False),
        sa.Column("bed_type", sa.String(length=12), nullable=False),
        sa.Column("beds_total", sa.Integer(), nullable=False),
        sa.Column("beds_occupied", sa.Integer(), nullable=False),
        sa.Column("beds_reserved", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("census_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "bed_type IN ('general', 'icu', 'paediatric', 'maternity', 'isolation')",
            name="ck_ward_bed_type",
        ),
        sa.CheckConstraint(
            "beds_occupied + beds_reserved <= beds_total", name="ck_ward_census_capacity"
        ),
        sa.CheckConstraint("beds_occupied >= 0", name="ck_ward_occupied"),
        sa.CheckConstraint("beds_reserved >= 0", name="ck_ward_reserved"),
        sa.CheckConstraint("beds_total >= 0", name="ck_ward_total"),
        sa.ForeignKeyConstraint(
            ["department_code"],
            ["departments.code"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("code"),
    )
    op.create_index("ix_wards_department_code", "wards", ["department_code"], unique=False)
    op.create_table(
        "clinic_sessions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("doctor_id", sa.Integer(), nullable=False),
        sa.Column("department_code", sa.String(length=10), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.CheckConstraint("capacity >= 1", name="ck_session_capacity"),
        sa.CheckConstraint("ends_at > starts_at", name="ck_session_times"),
        sa.ForeignKeyConstraint(
            ["department_code"],
            ["departments.code"],
        ),
        sa.ForeignKeyConstraint(["doctor_id"], ["doctors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("doctor_id", "starts_at", name="uq_session_doctor_start"),
    )
    op.create_index(
        "ix_session_dept_start", "clinic_sessions", ["department_code", "starts_at"], unique=False
    )
    op.create_table(
        "doctor_languages",
        sa.Column("doctor_id", sa.Integer(), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.ForeignKeyConstraint(["doctor_id"], ["doctors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("doctor_id", "language"),
    )
    op.create_index("ix_doctor_languages_language", "doctor_languages", ["language"], unique=False)
    op.create_table(
        "doctor_sub_specialties",
        sa.Column("doctor_id", sa.Integer(), nullable=False),
        sa.Column("sub_specialty", sa.String(length=50), nullable=False),
        sa.ForeignKeyConstraint(["doctor_id"], ["doctors.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("doctor_id", "sub_specialty"),
    )
    op.create_index(
        "ix_doctor_sub_specialties_sub_specialty",
        "doctor_sub_specialties",
        ["sub_specialty"],
        unique=False,
    )
    op.create_table(
        "clinic_slots",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("session_id", sa.Integer(), nullable=False),
        sa.Column("seq", sa.Integer(), nullable=False),
        sa.Column("starts_at", UTCDateTime(), nullable=False),
        sa.Column("ends_at", UTCDateTime(), nullable=False),
        sa.Column("booked", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("booking_ref", sa.String(length=64), nullable=True),
        *_sqlite_only(sa.CheckConstraint("booked IN (0, 1)", name="ck_slot_booked")),
        sa.CheckConstraint("ends_at > starts_at", name="ck_slot_times"),
        sa.ForeignKeyConstraint(["session_id"], ["clinic_sessions.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("session_id", "seq", name="uq_slot_session_seq"),
    )
    op.create_index("ix_slot_free_start", "clinic_slots", ["booked", "starts_at"], unique=False)
    op.create_table(
        "bookings",
        sa.Column("id", sa.String(length=32), nullable=False),
        sa.Column("signal_id", sa.String(length=64), nullable=False),
        sa.Column("patient_ref", sa.String(length=64), nullable=False),
        sa.Column("resource_kind", sa.String(length=12), nullable=False),
        sa.Column("clinic_slot_id", sa.Integer(), nullable=True),
        sa.Column("ward_id", sa.Integer(), nullable=True),
        sa.Column("imaging_slot_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "(resource_kind = 'clinic_slot' AND clinic_slot_id IS NOT NULL AND ward_id IS NULL AND imaging_slot_id IS NULL) OR (resource_kind = 'bed' AND ward_id IS NOT NULL AND clinic_slot_id IS NULL AND imaging_slot_id IS NULL) OR (resource_kind = 'imaging' AND imaging_slot_id IS NOT NULL AND clinic_slot_id IS NULL AND ward_id IS NULL)",
            name="ck_booking_one_resource",
        ),
        sa.CheckConstraint(
            "status IN ('tentative', 'confirmed', 'cancelled')", name="ck_booking_status"
        ),
        sa.ForeignKeyConstraint(
            ["clinic_slot_id"],
            ["clinic_slots.id"],
        ),
        sa.ForeignKeyConstraint(
            ["imaging_slot_id"],
            ["imaging_slots.id"],
        ),
        sa.ForeignKeyConstraint(
            ["ward_id"],
            ["wards.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bookings_signal_id", "bookings", ["signal_id"], unique=False)
    op.create_index(
        "uq_booking_active_clinic_slot",
        "bookings",
        ["clinic_slot_id"],
        unique=True,
        sqlite_where=sa.text("status != 'cancelled' AND clinic_slot_id IS NOT NULL"),
        postgresql_where=sa.text("status != 'cancelled' AND clinic_slot_id IS NOT NULL"),
    )
    op.create_index(
        "uq_booking_active_signal",
        "bookings",
        ["signal_id"],
        unique=True,
        sqlite_where=sa.text("status != 'cancelled'"),
        postgresql_where=sa.text("status != 'cancelled'"),
    )

    for statement in booking_trigger_ddl(op.get_bind().dialect.name, version=1):
        op.execute(statement)


def downgrade() -> None:
    """Drop everything :func:`upgrade` created (all data is lost)."""
    for statement in drop_trigger_ddl(op.get_bind().dialect.name):
        op.execute(statement)
    for table in reversed(TABLES):
        op.drop_table(table)
