"""Seeded demo hospital: ~120 doctors, two weeks of clinics, ~600 beds, scanners, services.

Deterministic: the same ``seed``, ``start_date``, ``days`` and ``timezone`` give a
byte-for-byte identical set of rows (no wall-clock values are stored). Used by
``assistant hospital demo``, the tests and the evaluation.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from itertools import product
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import delete, insert
from sqlalchemy.orm import Session

from assistant.hospital import demo_data as data
from assistant.hospital.db import (
    DEFAULT_TIMEZONE,
    display_target,
    open_db,
    reset_sequences,
    set_meta,
    write_session,
    zone,
)
from assistant.hospital.models import (
    SCHEMA_VERSION,
    Base,
    ClinicSession,
    ClinicSlot,
    DepartmentRow,
    Doctor,
    DoctorLanguage,
    DoctorSubSpecialty,
    ImagingSlot,
    Service,
    Ward,
)
from assistant.kb.catalog import Department, load_catalog

_TITLE_BOOKING_FACTOR = {"chief": 1.1, "associate_chief": 1.05, "attending": 1.0, "resident": 0.85}
_TITLE_EN_PROBABILITY = {"chief": 0.4, "associate_chief": 0.35, "attending": 0.25, "resident": 0.2}


@dataclass(frozen=True)
class DemoSummary:
    """What :func:`build_demo_hospital` wrote (``path``: the file, or the URL without password)."""

    path: Path | str
    seed: int
    start_date: date
    days: int
    timezone: str
    departments: int
    doctors: int
    clinic_sessions: int
    clinic_slots: int
    slots_prebooked: int
    wards: int
    beds: int
    beds_occupied: int
    imaging_slots: int
    services: int


@dataclass
class _DoctorPlan:
    id: int
    department: str
    title: str
    index: int  # position within the department
    half_days: set[tuple[int, str]]  # (weekday 0=Mon, "am"|"pm")


def build_demo_hospital(
    path: str | Path,
    *,
    seed: int = 7,
    start_date: date | None = None,
    days: int = 14,
    timezone_name: str = DEFAULT_TIMEZONE,
    catalog_path: str | Path | None = None,
) -> DemoSummary:
    """Write a demo hospital into the database at ``path``, replacing its contents.

    Existing rows of every hospital table (bookings included; the audit log is kept)
    are deleted and the demo rows inserted in one write transaction
    (:func:`~assistant.hospital.db.write_session`).

    Args:
        path: SQLite file (created with its folder if missing) or database URL
            (``postgresql+psycopg://...``; the schema is created or upgraded).
        seed: random seed; the same arguments give identical rows.
        start_date: first clinic day (hospital-local date); default today in
            ``timezone_name``.
        days: number of days of clinic sessions and imaging slots (>= 1).
        timezone_name: IANA zone of the hospital, recorded in ``hospital_meta``.
        catalog_path: optional department catalog override (see ``load_catalog``).

    Returns:
        Counts of what was written.

    Raises:
        ValueError: ``days`` < 1.
        DataError: unknown timezone or unreadable catalog.
    """
    if days < 1:
        raise ValueError("days must be >= 1")
    tz = zone(timezone_name)
    catalog = load_catalog(catalog_path)
    start = start_date or datetime.now(tz).date()
    rng = random.Random(seed)

    departments = [_department_row(d) for d in catalog.values()]
    doctors, subs, langs, plans = _doctors(rng, catalog)
    sessions, slots = _clinics(rng, plans, start, days, tz)
    wards = _wards(rng, start, tz)
    imaging = _imaging(rng, start, days, tz)
    services = [
        {"id": i, **spec._asdict(), "department_code": spec.department}
        for i, spec in enumerate(data.SERVICES, start=1)
    ]
    for row in services:
        del row["department"]

    factory = open_db(path)
    with write_session(factory) as session:
        _clear(session)
        for model, rows in (
            (DepartmentRow, departments),
            (Doctor, doctors),
            (DoctorSubSpecialty, subs),
            (DoctorLanguage, langs),
            (ClinicSession, sessions),
            (ClinicSlot, slots),
            (Ward, wards),
            (ImagingSlot, imaging),
            (Service, services),
        ):
            _bulk_insert(session, model, rows)
        for key, value in {
            "schema_version": SCHEMA_VERSION,
            "timezone": timezone_name,
            "source": "demo",
            "seed": str(seed),
            "start_date": start.isoformat(),
            "days": str(days),
            "hospital_name_en": data.HOSPITAL_NAME_EN,
            "hospital_name_zh": data.HOSPITAL_NAME_ZH,
        }.items():
            set_meta(session, key, value)
        reset_sequences(session)
    factory.kw["bind"].dispose()
    return DemoSummary(
        path=Path(path) if "://" not in str(path) else display_target(path),
        seed=seed,
        start_date=start,
        days=days,
        timezone=timezone_name,
        departments=len(departments),
        doctors=len(doctors),
        clinic_sessions=len(sessions),
        clinic_slots=len(slots),
        slots_prebooked=sum(1 for s in slots if s["booked"]),
        wards=len(wards),
        beds=sum(w["beds_total"] for w in wards),
        beds_occupied=sum(w["beds_occupied"] for w in wards),
        imaging_slots=len(imaging),
        services=len(services),
    )


def _clear(session: Session) -> None:
    """Delete every row of every hospital table (children first), except the tables
    marked ``keep_on_reset`` (the audit log)."""
    for table in reversed(Base.metadata.sorted_tables):
        if not table.info.get("keep_on_reset"):
            session.execute(delete(table))


def _bulk_insert(session: Session, model: type[Base], rows: list[dict[str, Any]]) -> None:
    for i in range(0, len(rows), 5000):
        # Core insert: one multi-row INSERT per batch on every dialect (the ORM bulk path
        # splits rows by their None columns, thousands of round trips on a server).
        session.execute(insert(model.__table__), rows[i : i + 5000])


def _local(day: date, at: time, tz: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=tz).astimezone(UTC)


def _span(day: date, start: time, end: time, tz: ZoneInfo) -> tuple[datetime, datetime]:
    """UTC start/end of a local interval; an end of 00:00 means the next midnight."""
    end_day = day + timedelta(days=1) if end <= start else day
    return _local(day, start, tz), _local(end_day, end, tz)


def _department_row(dept: Department) -> dict[str, Any]:
    return {
        "code": dept.code,
        "name_en": dept.name_en,
        "name_zh": dept.name_zh,
        "treats_en": dept.treats_en,
        "treats_zh": dept.treats_zh,
    }


def _titles(n: int) -> list[str]:
    """Title ladder of a department with ``n`` doctors, most senior first."""
    chiefs = 1 if n < 6 else 2
    associates = max(1, round(n * 0.25)) if n > 1 else 0
    residents = round(n * 0.25) if n >= 4 else 0
    attendings = max(0, n - chiefs - associates - residents)
    return (
        ["chief"] * chiefs
        + ["associate_chief"] * associates
        + ["attending"] * attendings
        + ["resident"] * residents
    )[:n]


def _chinese_names(rng: random.Random, count: int) -> list[tuple[str, str]]:
    """``count`` distinct (name_en, name_zh) pairs, e.g. ("Dr Wang Fang", "王芳")."""
    pool = list(product(data.SURNAMES, data.GIVEN_NAMES))
    rng.shuffle(pool)
    names: list[tuple[str, str]] = []
    seen: set[str] = set()
    for (sur_zh, sur_en), (giv_zh, giv_en) in pool:
        name_en = f"Dr {sur_en} {giv_en}"
        if name_en in seen:
            continue
        seen.add(name_en)
        names.append((name_en, sur_zh + giv_zh))
        if len(names) == count:
            break
    return names


def _doctors(
    rng: random.Random, catalog: dict[str, Department]
) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[dict[str, Any]], list[_DoctorPlan]]:
    total = sum(data.DOCTORS_PER_DEPARTMENT.get(code, 0) for code in catalog)
    chinese = iter(_chinese_names(rng, total))
    english = {dept: (en, zh) for en, zh, dept in data.ENGLISH_DOCTORS}
    doctors, subs, langs, plans = [], [], [], []
    doctor_id = 0
    for code, dept in catalog.items():
        n = data.DOCTORS_PER_DEPARTMENT.get(code, 2)
        sub_codes = [s.code for s in dept.sub_specialties]
        rng.shuffle(sub_codes)
        for index, title in enumerate(_titles(n)):
            doctor_id += 1
            is_english = code in english and index == min(2, n - 1)
            if is_english:
                name_en, name_zh = f"Dr {english[code][0]}", english[code][1]
            else:
                name_en, name_zh = next(chinese)
            doctors.append(
                {
                    "id": doctor_id,
                    "code": f"D{doctor_id:04d}",
                    "name_en": name_en,
                    "name_zh": name_zh,
                    "title": title,
                    "department_code": code,
                }
            )
            mine: list[str] = []
            if sub_codes:
                mine.append(sub_codes[index % len(sub_codes)])
                if len(sub_codes) > 1 and (n < len(sub_codes) or rng.random() < 0.4):
                    other = (index + 1 + rng.randrange(len(sub_codes) - 1)) % len(sub_codes)
                    if sub_codes[other] not in mine:
                        mine.append(sub_codes[other])
            subs += [{"doctor_id": doctor_id, "sub_specialty": s} for s in sorted(mine)]
            speaks_en = is_english or rng.random() < _TITLE_EN_PROBABILITY[title]
            langs += [
                {"doctor_id": doctor_id, "language": lang}
                for lang in (["en", "zh"] if speaks_en else ["zh"])
            ]
            plans.append(_DoctorPlan(doctor_id, code, title, index, set()))
    _weekly_patterns(rng, plans)
    return doctors, subs, langs, plans


def _weekly_patterns(rng: random.Random, plans: list[_DoctorPlan]) -> None:
    """Choose each clinic doctor's weekday half-days; every weekday morning is covered."""
    weekday_halves = [(d, h) for d in range(5) for h in ("am", "pm")]
    by_dept: dict[str, list[_DoctorPlan]] = {}
    for plan in plans:
        by_dept.setdefault(plan.department, []).append(plan)
    for dept, members in by_dept.items():
        if dept == "EMERG":
            continue
        for plan in members:
            k = data.HALF_DAYS_PER_WEEK[plan.title]
            plan.half_days = set(rng.sample(weekday_halves, k))
        for day in range(5):
            if not any((day, "am") in p.half_days for p in members):
                least = min(members, key=lambda p: (len(p.half_days), p.index))
                least.half_days.add((day, "am"))


def _clinics(
    rng: random.Random, plans: list[_DoctorPlan], start: date, days: int, tz: ZoneInfo
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    sessions: list[dict[str, Any]] = []
    slots: list[dict[str, Any]] = []
    week0 = start - timedelta(days=start.weekday())
    emergency = [p for p in plans if p.department == "EMERG"]
    clinic = [p for p in plans if p.department != "EMERG"]
    by_dept: dict[str, list[_DoctorPlan]] = {}
    for plan in clinic:
        by_dept.setdefault(plan.department, []).append(plan)

    def add(plan: _DoctorPlan, begin: datetime, end: datetime, day_offset: int) -> None:
        session_id = len(sessions) + 1
        capacity = int((end - begin).total_seconds() // 60 // data.SLOT_MINUTES)
        sessions.append(
            {
                "id": session_id,
                "doctor_id": plan.id,
                "department_code": plan.department,
                "starts_at": begin,
                "ends_at": end,
                "capacity": capacity,
            }
        )
        p = (0.88 - 0.05 * day_offset) * data.CLINIC_DEMAND.get(plan.department, 0.8)
        p = min(0.97, max(0.02, p * _TITLE_BOOKING_FACTOR[plan.title]))
        step = timedelta(minutes=data.SLOT_MINUTES)
        for seq in range(capacity):
            booked = rng.random() < p
            slots.append(
                {
                    "id": len(slots) + 1,
                    "session_id": session_id,
                    "seq": seq,
                    "starts_at": begin + seq * step,
                    "ends_at": begin + (seq + 1) * step,
                    "booked": booked,
                    "booking_ref": f"HIS-{len(slots) + 1:06d}" if booked else None,
                }
            )

    halves = {"am": data.MORNING, "pm": data.AFTERNOON}
    for offset in range(days):
        day = start + timedelta(days=offset)
        weekday, week = day.weekday(), (day - week0).days // 7
        for shift, (t0, t1) in enumerate(data.EMERGENCY_SHIFTS):
            n = offset * len(data.EMERGENCY_SHIFTS) + shift
            for plan in _rotation(emergency, n):
                add(plan, *_span(day, t0, t1, tz), offset)
        for dept, members in by_dept.items():
            on_duty: list[tuple[_DoctorPlan, str]]
            if weekday < 5:
                on_duty = [
                    (p, h) for p in members for h in ("am", "pm") if (weekday, h) in p.half_days
                ]
            elif (weekday == 5 and dept in data.WEEKEND_DEPARTMENTS) or (
                weekday == 6 and dept in data.SUNDAY_DEPARTMENTS
            ):
                juniors = [p for p in members if p.title != "chief"] or members
                on_duty = [(juniors[(week + weekday) % len(juniors)], "am")]
            else:
                on_duty = []
            for plan, half in sorted(on_duty, key=lambda ph: (ph[1], ph[0].id)):
                add(plan, *_span(day, *halves[half], tz), offset)
    return sessions, slots


def _rotation(doctors: list[_DoctorPlan], shift_number: int) -> Iterable[_DoctorPlan]:
    """Two emergency doctors per 8-hour shift, rotating so nobody works back to back."""
    if not doctors:
        return []
    first = (2 * shift_number) % len(doctors)
    picked = [doctors[first], doctors[(first + 1) % len(doctors)]]
    return picked if picked[0] is not picked[1] else picked[:1]


def _wards(rng: random.Random, start: date, tz: ZoneInfo) -> list[dict[str, Any]]:
    census_at = _local(start, time(7, 0), tz)
    rows = []
    for i, spec in enumerate(data.WARDS, start=1):
        occupied = round(spec.beds * spec.occupancy) + rng.choice((-1, 0, 0, 1))
        rows.append(
            {
                "id": i,
                "code": spec.code,
                "name_en": spec.name_en,
                "name_zh": spec.name_zh,
                "department_code": spec.department,
                "bed_type": spec.bed_type,
                "beds_total": spec.beds,
                "beds_occupied": min(spec.beds, max(0, occupied)),
                "beds_reserved": 0,
                "census_at": census_at,
            }
        )
    return rows


def _imaging(rng: random.Random, start: date, days: int, tz: ZoneInfo) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    for offset in range(days):
        day = start + timedelta(days=offset)
        p = max(0.05, 0.9 - 0.06 * offset)
        for room in data.IMAGING_ROOMS:
            if day.weekday() >= 5 and not room.weekends:
                continue
            begin, end = _span(day, room.opens, room.closes, tz)
            step = timedelta(minutes=room.block_minutes)
            while begin + step <= end:
                rows.append(
                    {
                        "id": len(rows) + 1,
                        "modality": room.modality,
                        "room": room.room,
                        "starts_at": begin,
                        "ends_at": begin + step,
                        "capacity": room.capacity,
                        "booked": sum(rng.random() < p for _ in range(room.capacity)),
                    }
                )
                begin += step
    return rows
