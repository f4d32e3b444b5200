"""Read queries over the resource tables, returning typed pydantic results.

All ``after`` / ``before`` arguments are timezone-aware datetimes (any zone; compared
in UTC) and define the half-open window ``after <= starts_at < before``: a slot is in
the window when it *starts* in it. Returned datetimes are timezone-aware UTC.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Select, and_, case, exists, func, or_, select, type_coerce
from sqlalchemy.orm import Session

from assistant.domain import BedType, Modality
from assistant.hospital.models import (
    DOCTOR_TITLES,
    Booking,
    ClinicSession,
    ClinicSlot,
    DepartmentRow,
    Doctor,
    DoctorLanguage,
    DoctorSubSpecialty,
    ImagingSlot,
    UTCDateTime,
    Ward,
)
from assistant.hospital.results import (
    BedCensus,
    ClinicAvailability,
    DepartmentLoad,
    DoctorInfo,
    FreeImagingSlot,
    FreeSlot,
    WardCensus,
)
from assistant.kb.catalog import load_catalog


def _ratio(part: int, whole: int) -> float:
    return round(part / whole, 4) if whole else 0.0


def _utc(value: datetime, name: str) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {value!r}")
    return value.astimezone(UTC)


def _window(
    after: datetime | None, before: datetime | None, default: timedelta
) -> tuple[datetime, datetime]:
    lo = _utc(after, "after") if after is not None else datetime.now(UTC)
    hi = _utc(before, "before") if before is not None else lo + default
    return lo, hi


def _resolve_sub(department: str | None, sub_specialty: str) -> str:
    """Catalog code for ``sub_specialty`` (code, en or zh name); the text itself if unknown."""
    catalog = load_catalog()
    depts = [catalog[department]] if department in catalog else list(catalog.values())
    for dept in depts:
        sub = dept.sub_specialty(sub_specialty)
        if sub is not None:
            return sub.code
    return sub_specialty.strip()


def _doctor_infos(session: Session, doctor_ids: set[int]) -> dict[int, DoctorInfo]:
    if not doctor_ids:
        return {}
    subs: dict[int, list[str]] = defaultdict(list)
    langs: dict[int, list[str]] = defaultdict(list)
    for doc_id, sub in session.execute(
        select(DoctorSubSpecialty.doctor_id, DoctorSubSpecialty.sub_specialty)
        .where(DoctorSubSpecialty.doctor_id.in_(doctor_ids))
        .order_by(DoctorSubSpecialty.doctor_id, DoctorSubSpecialty.sub_specialty)
    ):
        subs[doc_id].append(sub)
    for doc_id, lang in session.execute(
        select(DoctorLanguage.doctor_id, DoctorLanguage.language)
        .where(DoctorLanguage.doctor_id.in_(doctor_ids))
        .order_by(DoctorLanguage.doctor_id, DoctorLanguage.language)
    ):
        langs[doc_id].append(lang)
    infos = {}
    for doc in session.scalars(select(Doctor).where(Doctor.id.in_(doctor_ids))):
        title_en, title_zh = DOCTOR_TITLES[doc.title]
        infos[doc.id] = DoctorInfo(
            id=doc.id,
            code=doc.code,
            name_en=doc.name_en,
            name_zh=doc.name_zh,
            title=doc.title,
            title_en=title_en,
            title_zh=title_zh,
            department=doc.department_code,
            sub_specialties=subs[doc.id],
            languages=langs[doc.id],
        )
    return infos


def _doctor_filters(
    department: str | None, sub_specialty: str | None, language: str | None
) -> list[ColumnElement[bool]]:
    clauses: list[ColumnElement[bool]] = []
    if department is not None:
        clauses.append(Doctor.department_code == department)
    if sub_specialty is not None:
        clauses.append(_sub_filter(department, sub_specialty))
    if language is not None:
        clauses.append(
            exists().where(
                DoctorLanguage.doctor_id == Doctor.id, DoctorLanguage.language == language
            )
        )
    return clauses


def find_doctors(
    session: Session,
    department: str | None = None,
    *,
    sub_specialty: str | None = None,
    language: str | None = None,
    name: str | None = None,
    title: str | None = None,
) -> list[DoctorInfo]:
    """Doctors matching every given filter, ordered by department, seniority, name.

    Args:
        session: an open session.
        department: catalog code, e.g. ``"CARDIO"``.
        sub_specialty: catalog code or en/zh name (``"heart failure"``, ``"心力衰竭"``).
        language: consultation language, ``"en"`` or ``"zh"``.
        name: substring of the English or Chinese name (case-insensitive).
        title: ``chief`` | ``associate_chief`` | ``attending`` | ``resident``.

    Returns:
        Matching doctors (empty list when none).
    """
    stmt = select(Doctor.id).where(*_doctor_filters(department, sub_specialty, language))
    if name:
        pattern = f"%{name.strip()}%"
        stmt = stmt.where(or_(Doctor.name_en.ilike(pattern), Doctor.name_zh.like(pattern)))
    if title is not None:
        stmt = stmt.where(Doctor.title == title)
    ids = set(session.scalars(stmt))
    rank = {code: i for i, code in enumerate(DOCTOR_TITLES)}
    infos = _doctor_infos(session, ids).values()
    return sorted(infos, key=lambda d: (d.department, rank[d.title], d.name_en, d.id))


def next_free_slots(
    session: Session,
    department: str,
    after: datetime,
    before: datetime,
    sub_specialty: str | None = None,
    language: str | None = None,
    limit: int = 3,
    *,
    max_per_session: int | None = 1,
) -> list[FreeSlot]:
    """Earliest free clinic slots of a department that start in ``[after, before)``.

    Args:
        session: an open session.
        department: catalog code.
        after: earliest slot start (timezone-aware).
        before: slots must start before this (timezone-aware).
        sub_specialty: only doctors with this sub-specialty (catalog code or en/zh
            name); text matching no catalog entry matches no doctor.
        language: only doctors who consult in this language (``"en"``/``"zh"``).
        limit: maximum number of slots returned.
        max_per_session: at most this many slots of one clinic session, so the
            patient is offered different doctors/half-days (default 1: the earliest
            free slot of each session). None = strictly the earliest slots.

    Returns:
        Free slots ordered by start time (then slot id); empty when none.

    Raises:
        ValueError: naive ``after``/``before``.
    """
    lo, hi = _utc(after, "after"), _utc(before, "before")
    if limit <= 0 or hi <= lo:
        return []
    base = (
        select(
            ClinicSlot.id.label("slot_id"),
            ClinicSlot.starts_at.label("starts_at"),
            ClinicSession.id.label("session_id"),
        )
        .join(ClinicSession, ClinicSlot.session_id == ClinicSession.id)
        .join(Doctor, ClinicSession.doctor_id == Doctor.id)
        .where(
            ClinicSession.department_code == department,
            ClinicSlot.booked.is_(False),
            ClinicSlot.starts_at >= lo,
            ClinicSlot.starts_at < hi,
            *_doctor_filters(None, None, language),
        )
    )
    if sub_specialty is not None:
        base = base.where(_sub_filter(department, sub_specialty))
    if max_per_session is not None:
        ranked = base.add_columns(
            func.row_number()
            .over(partition_by=ClinicSession.id, order_by=(ClinicSlot.starts_at, ClinicSlot.id))
            .label("rn")
        ).subquery()
        stmt: Select = (  # type: ignore[type-arg]
            select(ranked.c.slot_id)
            .where(ranked.c.rn <= max_per_session)
            .order_by(ranked.c.starts_at, ranked.c.slot_id)
            .limit(limit)
        )
    else:
        stmt = base.with_only_columns(ClinicSlot.id).order_by(ClinicSlot.starts_at, ClinicSlot.id)
        stmt = stmt.limit(limit)
    slot_ids = list(session.scalars(stmt))
    if not slot_ids:
        return []
    rows = session.execute(
        select(ClinicSlot, ClinicSession)
        .join(ClinicSession, ClinicSlot.session_id == ClinicSession.id)
        .where(ClinicSlot.id.in_(slot_ids))
    ).all()
    doctors = _doctor_infos(session, {sess.doctor_id for _, sess in rows})
    result = [
        FreeSlot(
            slot_id=slot.id,
            session_id=sess.id,
            department=sess.department_code,
            starts_at=slot.starts_at,
            ends_at=slot.ends_at,
            doctor=doctors[sess.doctor_id],
        )
        for slot, sess in rows
    ]
    return sorted(result, key=lambda s: (s.starts_at, s.slot_id))


def _sub_filter(department: str | None, sub_specialty: str) -> ColumnElement[bool]:
    """EXISTS clause: the doctor has the (resolved) sub-specialty."""
    code = _resolve_sub(department, sub_specialty)
    return exists().where(
        DoctorSubSpecialty.doctor_id == Doctor.id, DoctorSubSpecialty.sub_specialty == code
    )


def next_free_imaging_slots(
    session: Session, modality: Modality, after: datetime, before: datetime, limit: int = 3
) -> list[FreeImagingSlot]:
    """Earliest imaging blocks of ``modality`` with a free place, starting in ``[after, before)``.

    Args:
        session: an open session.
        modality: ``"CT"``, ``"MRI"`` or ``"ultrasound"``.
        after: earliest block start (timezone-aware).
        before: blocks must start before this (timezone-aware).
        limit: maximum number of blocks.

    Returns:
        Blocks ordered by start time, then room.
    """
    lo, hi = _utc(after, "after"), _utc(before, "before")
    stmt = (
        select(ImagingSlot)
        .where(
            ImagingSlot.modality == modality,
            ImagingSlot.booked < ImagingSlot.capacity,
            ImagingSlot.starts_at >= lo,
            ImagingSlot.starts_at < hi,
        )
        .order_by(ImagingSlot.starts_at, ImagingSlot.room)
        .limit(max(limit, 0))
    )
    return [
        FreeImagingSlot(
            imaging_slot_id=s.id,
            modality=s.modality,
            room=s.room,
            starts_at=s.starts_at,
            ends_at=s.ends_at,
            capacity=s.capacity,
            booked=s.booked,
            free=s.capacity - s.booked,
        )
        for s in session.scalars(stmt)
    ]


def bed_census(
    session: Session, department: str | None = None, bed_type: BedType | None = None
) -> BedCensus:
    """Bed census of the wards of ``department`` and/or ``bed_type`` (all wards when None).

    Args:
        session: an open session.
        department: catalog code, or None for the whole hospital.
        bed_type: ``general`` | ``icu`` | ``paediatric`` | ``maternity`` | ``isolation``.

    Returns:
        Totals plus one :class:`WardCensus` per ward (ordered by department, ward code).
    """
    stmt = select(Ward).order_by(Ward.department_code, Ward.code)
    if department is not None:
        stmt = stmt.where(Ward.department_code == department)
    if bed_type is not None:
        stmt = stmt.where(Ward.bed_type == bed_type)
    wards = [
        WardCensus(
            ward_id=w.id,
            code=w.code,
            name_en=w.name_en,
            name_zh=w.name_zh,
            department=w.department_code,
            bed_type=w.bed_type,
            total=w.beds_total,
            occupied=w.beds_occupied,
            reserved=w.beds_reserved,
            free=w.beds_total - w.beds_occupied - w.beds_reserved,
            occupancy=_ratio(w.beds_occupied, w.beds_total),
            census_at=w.census_at,
        )
        for w in session.scalars(stmt)
    ]
    total = sum(w.total for w in wards)
    occupied = sum(w.occupied for w in wards)
    reserved = sum(w.reserved for w in wards)
    return BedCensus(
        department=department,
        bed_type=bed_type,
        total=total,
        occupied=occupied,
        reserved=reserved,
        free=total - occupied - reserved,
        occupancy=_ratio(occupied, total),
        wards=wards,
    )


def clinic_availability(
    session: Session,
    department: str | None = None,
    *,
    after: datetime | None = None,
    before: datetime | None = None,
    by_day: bool = False,
) -> list[ClinicAvailability]:
    """Clinic slots total/booked/free per department (optionally per local day).

    Args:
        session: an open session.
        department: one catalog code, or None for every department with sessions.
        after: window start (default now, UTC).
        before: window end (default ``after`` + 14 days, the booking horizon).
        by_day: one row per department and hospital-local calendar day.

    Returns:
        Rows ordered by department (then day). Departments without slots in the
        window are left out.
    """
    lo, hi = _window(after, before, timedelta(days=14))
    stmt = (
        select(
            ClinicSession.department_code,
            ClinicSession.id,
            ClinicSession.doctor_id,
            ClinicSlot.starts_at,
            ClinicSlot.booked,
        )
        .join(ClinicSession, ClinicSlot.session_id == ClinicSession.id)
        .where(ClinicSlot.starts_at >= lo, ClinicSlot.starts_at < hi)
    )
    if department is not None:
        stmt = stmt.where(ClinicSession.department_code == department)
    tz = _local_zone(session) if by_day else None
    groups: dict[tuple[str, date | None], list[tuple[int, int, datetime, bool]]] = defaultdict(list)
    for dept, sess_id, doc_id, start, booked in session.execute(stmt):
        day = start.astimezone(tz).date() if tz is not None else None
        groups[(dept, day)].append((sess_id, doc_id, start, booked))
    result = []
    for (dept, day), rows in sorted(
        groups.items(), key=lambda kv: (kv[0][0], kv[0][1] or date.min)
    ):
        booked = sum(1 for r in rows if r[3])
        free_starts = [r[2] for r in rows if not r[3]]
        result.append(
            ClinicAvailability(
                department=dept,
                day=day,
                sessions=len({r[0] for r in rows}),
                doctors=len({r[1] for r in rows}),
                slots_total=len(rows),
                slots_booked=booked,
                slots_free=len(rows) - booked,
                utilisation=_ratio(booked, len(rows)),
                next_free_at=min(free_starts) if free_starts else None,
            )
        )
    return result


def _local_zone(session: Session) -> ZoneInfo:
    from assistant.hospital.meta import hospital_timezone

    return hospital_timezone(session)


def department_load(
    session: Session,
    department: str | None = None,
    *,
    after: datetime | None = None,
    before: datetime | None = None,
) -> list[DepartmentLoad]:
    """Clinic utilisation in a window plus bed census, per department.

    Args:
        session: an open session.
        department: one catalog code, or None for every department in the database.
        after: window start (default now, UTC).
        before: window end (default ``after`` + 24 h).

    Returns:
        One row per department (ordered by code), including departments with no
        slots or beds (zeros).
    """
    lo, hi = _window(after, before, timedelta(hours=24))
    depts_stmt = select(DepartmentRow).order_by(DepartmentRow.code)
    if department is not None:
        depts_stmt = depts_stmt.where(DepartmentRow.code == department)
    depts = list(session.scalars(depts_stmt))

    first_free = type_coerce(
        func.min(case((ClinicSlot.booked.is_(False), ClinicSlot.starts_at))), UTCDateTime
    )
    slots = {
        row[0]: row[1:]
        for row in session.execute(
            select(
                ClinicSession.department_code,
                func.count(ClinicSlot.id),
                func.coalesce(func.sum(case((ClinicSlot.booked.is_(True), 1), else_=0)), 0),
                first_free,
            )
            .join(ClinicSession, ClinicSlot.session_id == ClinicSession.id)
            .where(ClinicSlot.starts_at >= lo, ClinicSlot.starts_at < hi)
            .group_by(ClinicSession.department_code)
        )
    }
    beds = {
        row[0]: row[1:]
        for row in session.execute(
            select(
                Ward.department_code,
                func.sum(Ward.beds_total),
                func.sum(Ward.beds_occupied),
                func.sum(Ward.beds_reserved),
            ).group_by(Ward.department_code)
        )
    }
    active = and_(Booking.status != "cancelled")
    bookings: dict[str, int] = defaultdict(int)
    for dept, count in session.execute(
        select(ClinicSession.department_code, func.count(Booking.id))
        .join(ClinicSlot, Booking.clinic_slot_id == ClinicSlot.id)
        .join(ClinicSession, ClinicSlot.session_id == ClinicSession.id)
        .where(active)
        .group_by(ClinicSession.department_code)
    ):
        bookings[dept] += count
    for dept, count in session.execute(
        select(Ward.department_code, func.count(Booking.id))
        .join(Ward, Booking.ward_id == Ward.id)
        .where(active)
        .group_by(Ward.department_code)
    ):
        bookings[dept] += count

    result = []
    for dept in depts:
        total, booked, next_free = slots.get(dept.code, (0, 0, None))
        b_total, b_occ, b_res = beds.get(dept.code, (0, 0, 0))
        result.append(
            DepartmentLoad(
                department=dept.code,
                name_en=dept.name_en,
                name_zh=dept.name_zh,
                slots_total=total,
                slots_booked=booked,
                slots_free=total - booked,
                clinic_utilisation=_ratio(booked, total),
                next_free_slot_at=next_free,
                beds_total=b_total,
                beds_occupied=b_occ,
                beds_reserved=b_res,
                beds_free=b_total - b_occ - b_res,
                bed_occupancy=_ratio(b_occ, b_total),
                active_bookings=bookings[dept.code],
            )
        )
    return result


__all__ = [
    "BedCensus",
    "ClinicAvailability",
    "DepartmentLoad",
    "DoctorInfo",
    "FreeImagingSlot",
    "FreeSlot",
    "WardCensus",
    "bed_census",
    "clinic_availability",
    "department_load",
    "find_doctors",
    "next_free_imaging_slots",
    "next_free_slots",
]
