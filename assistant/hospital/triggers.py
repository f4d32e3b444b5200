"""Booking counter triggers, one set per SQL dialect (SQLite, PostgreSQL).

The triggers keep ``clinic_slots.booked``, ``wards.beds_reserved`` and
``imaging_slots.booked`` in step with the active (non-cancelled) rows of ``bookings``:
inserting an active booking takes one unit, cancelling or deleting it gives it back,
re-activating a cancelled one takes it again. The CHECK constraints of
:mod:`assistant.hospital.models` (``booked <= capacity``, ``occupied + reserved <=
total``) then refuse an over-booking; a clinic slot that is already taken is refused
by the ``booked IN (0, 1)`` check on SQLite and by the trigger itself on PostgreSQL
(``booked`` is a boolean there). A fourth trigger refuses a change of a booking's
resource. Every refusal is an integrity error (``sqlalchemy.exc.IntegrityError``).

The DDL is versioned: migrations import :func:`booking_trigger_ddl` with the version
they were written for (``version=1`` in the initial revision), so a later change adds
a ``version=2`` and a revision that drops and recreates the triggers; an old revision
keeps producing the schema it always did.
"""

from __future__ import annotations

__all__ = ["TRIGGER_NAMES", "booking_trigger_ddl", "drop_trigger_ddl"]

_COUNTERS = (
    # (resource column on bookings, UPDATE applied on acquire, UPDATE applied on release)
    (
        "clinic_slot_id",
        "UPDATE clinic_slots SET booked = booked + 1, booking_ref = {row}.id WHERE id = {row}.clinic_slot_id;",
        "UPDATE clinic_slots SET booked = booked - 1, booking_ref = NULL WHERE id = {row}.clinic_slot_id;",
    ),
    (
        "ward_id",
        "UPDATE wards SET beds_reserved = beds_reserved + 1 WHERE id = {row}.ward_id;",
        "UPDATE wards SET beds_reserved = beds_reserved - 1 WHERE id = {row}.ward_id;",
    ),
    (
        "imaging_slot_id",
        "UPDATE imaging_slots SET booked = booked + 1 WHERE id = {row}.imaging_slot_id;",
        "UPDATE imaging_slots SET booked = booked - 1 WHERE id = {row}.imaging_slot_id;",
    ),
)
_ACTIVE = "{row}.status != 'cancelled'"

#: Trigger names per dialect (for tests and for drop/recreate migrations).
TRIGGER_NAMES: dict[str, tuple[str, ...]] = {
    "sqlite": (
        *(f"trg_booking_{c.removesuffix('_id')}_{op}" for c, _, _ in _COUNTERS
          for op in ("insert", "cancel", "reactivate", "delete")),
        "trg_booking_resource_immutable",
    ),
    "postgresql": ("trg_booking_counters", "trg_booking_resource_immutable"),
}


def _sqlite_v1() -> list[str]:
    statements = []
    for column, acquire, release in _COUNTERS:
        name = column.removesuffix("_id")
        statements += [
            (
                f"CREATE TRIGGER trg_booking_{name}_insert AFTER INSERT ON bookings "
                f"WHEN NEW.{column} IS NOT NULL AND {_ACTIVE.format(row='NEW')} "
                f"BEGIN {acquire.format(row='NEW')} END"
            ),
            (
                f"CREATE TRIGGER trg_booking_{name}_cancel AFTER UPDATE OF status ON bookings "
                f"WHEN NEW.{column} IS NOT NULL AND OLD.status != 'cancelled' AND NEW.status = 'cancelled' "
                f"BEGIN {release.format(row='NEW')} END"
            ),
            (
                f"CREATE TRIGGER trg_booking_{name}_reactivate AFTER UPDATE OF status ON bookings "
                f"WHEN NEW.{column} IS NOT NULL AND OLD.status = 'cancelled' AND NEW.status != 'cancelled' "
                f"BEGIN {acquire.format(row='NEW')} END"
            ),
            (
                f"CREATE TRIGGER trg_booking_{name}_delete AFTER DELETE ON bookings "
                f"WHEN OLD.{column} IS NOT NULL AND {_ACTIVE.format(row='OLD')} "
                f"BEGIN {release.format(row='OLD')} END"
            ),
        ]
    statements.append(
        "CREATE TRIGGER trg_booking_resource_immutable BEFORE UPDATE OF "
        "resource_kind, clinic_slot_id, ward_id, imaging_slot_id ON bookings "
        "WHEN NEW.resource_kind IS NOT OLD.resource_kind "
        "OR NEW.clinic_slot_id IS NOT OLD.clinic_slot_id "
        "OR NEW.ward_id IS NOT OLD.ward_id "
        "OR NEW.imaging_slot_id IS NOT OLD.imaging_slot_id "
        "BEGIN SELECT RAISE(ABORT, 'the resource of a booking cannot change'); END"
    )
    return statements


_PG_ACQUIRE = """
    IF b.clinic_slot_id IS NOT NULL THEN
        UPDATE clinic_slots SET booked = TRUE, booking_ref = b.id
         WHERE id = b.clinic_slot_id AND NOT booked;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'clinic slot % is already booked', b.clinic_slot_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'ck_slot_booked';
        END IF;
    ELSIF b.ward_id IS NOT NULL THEN
        UPDATE wards SET beds_reserved = beds_reserved + 1 WHERE id = b.ward_id;
    ELSIF b.imaging_slot_id IS NOT NULL THEN
        UPDATE imaging_slots SET booked = booked + 1 WHERE id = b.imaging_slot_id;
    END IF;
"""
_PG_RELEASE = """
    IF b.clinic_slot_id IS NOT NULL THEN
        UPDATE clinic_slots SET booked = FALSE, booking_ref = NULL WHERE id = b.clinic_slot_id;
    ELSIF b.ward_id IS NOT NULL THEN
        UPDATE wards SET beds_reserved = beds_reserved - 1 WHERE id = b.ward_id;
    ELSIF b.imaging_slot_id IS NOT NULL THEN
        UPDATE imaging_slots SET booked = booked - 1 WHERE id = b.imaging_slot_id;
    END IF;
"""


def _postgresql_v1() -> list[str]:
    return [
        ("CREATE OR REPLACE FUNCTION booking_counters() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "DECLARE b bookings%ROWTYPE;\n"
        "BEGIN\n"
        "  IF TG_OP IN ('UPDATE', 'DELETE') AND OLD.status <> 'cancelled'\n"
        "     AND (TG_OP = 'DELETE' OR NEW.status = 'cancelled') THEN\n"
        f"    b := OLD;{_PG_RELEASE}"
        "  END IF;\n"
        "  IF TG_OP IN ('INSERT', 'UPDATE') AND NEW.status <> 'cancelled'\n"
        "     AND (TG_OP = 'INSERT' OR OLD.status = 'cancelled') THEN\n"
        f"    b := NEW;{_PG_ACQUIRE}"
        "  END IF;\n"
        "  RETURN NULL;\n"
        "END $$"),
        ("CREATE TRIGGER trg_booking_counters AFTER INSERT OR DELETE OR UPDATE OF status ON bookings "
        "FOR EACH ROW EXECUTE FUNCTION booking_counters()"),
        ("CREATE OR REPLACE FUNCTION booking_resource_immutable() RETURNS trigger LANGUAGE plpgsql AS $$\n"
        "BEGIN\n"
        "  IF NEW.resource_kind IS DISTINCT FROM OLD.resource_kind\n"
        "     OR NEW.clinic_slot_id IS DISTINCT FROM OLD.clinic_slot_id\n"
        "     OR NEW.ward_id IS DISTINCT FROM OLD.ward_id\n"
        "     OR NEW.imaging_slot_id IS DISTINCT FROM OLD.imaging_slot_id THEN\n"
        "    RAISE EXCEPTION 'the resource of a booking cannot change' USING ERRCODE = 'restrict_violation';\n"
        "  END IF;\n"
        "  RETURN NEW;\n"
        "END $$"),
        ("CREATE TRIGGER trg_booking_resource_immutable BEFORE UPDATE OF "
        "resource_kind, clinic_slot_id, ward_id, imaging_slot_id ON bookings "
        "FOR EACH ROW EXECUTE FUNCTION booking_resource_immutable()"),
    ]


def booking_trigger_ddl(dialect: str, version: int = 1) -> list[str]:
    """CREATE statements of the booking triggers for ``dialect``.

    Args:
        dialect: SQLAlchemy dialect name, ``"sqlite"`` or ``"postgresql"``.
        version: trigger set version (1 = the initial schema).

    Returns:
        Statements to run in order, after ``bookings`` and the resource tables exist.

    Raises:
        ValueError: unsupported dialect or version.
    """
    if version != 1:
        raise ValueError(f"unknown booking trigger version {version}")
    if dialect == "sqlite":
        return _sqlite_v1()
    if dialect == "postgresql":
        return _postgresql_v1()
    raise ValueError(f"no booking triggers for SQL dialect '{dialect}' (SQLite and PostgreSQL only)")


def drop_trigger_ddl(dialect: str) -> list[str]:
    """DROP statements undoing :func:`booking_trigger_ddl` (for downgrades)."""
    if dialect == "sqlite":
        return [f"DROP TRIGGER IF EXISTS {name}" for name in TRIGGER_NAMES["sqlite"]]
    if dialect == "postgresql":
        return [
            "DROP TRIGGER IF EXISTS trg_booking_counters ON bookings",
            "DROP TRIGGER IF EXISTS trg_booking_resource_immutable ON bookings",
            "DROP FUNCTION IF EXISTS booking_counters()",
            "DROP FUNCTION IF EXISTS booking_resource_immutable()",
        ]
    raise ValueError(f"no booking triggers for SQL dialect '{dialect}'")
