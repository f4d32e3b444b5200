"""Import a hospital's own resource tables from a folder of CSV files.

Files (all optional, at least one required; the columns are documented in
``docs/hospital_csv.md``): ``departments.csv``, ``doctors.csv``, ``wards.csv``,
``services.csv``, ``clinic_sessions.csv``, ``imaging_slots.csv``. They are read in
that order, so a doctor may refer to a department of the same import.

Every row is validated with pydantic. The first bad row raises :class:`DataError`
naming the file, the row (spreadsheet numbering: the header is row 1) and the column.
Everything is written in ONE transaction: after any error the database is exactly as
it was before the import.

Merge rules: departments, doctors, wards and services are inserted or updated by
their id column; clinic sessions and imaging slots are added: one that already exists
unchanged (same doctor, start, end and capacity / same room, start, end, capacity and
modality) is skipped so its bookings survive a re-import, and one that differs is an
error. With
``replace=True`` every hospital table (bookings included) is emptied first.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from assistant.errors import DataError
from assistant.hospital.db import (
    get_meta,
    hospital_timezone,
    open_db,
    reset_sequences,
    set_meta,
    write_session,
    zone,
)
from assistant.hospital.models import (
    DOCTOR_TITLES,
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
    utcnow,
)
from assistant.kb.catalog import Department, load_catalog

FILE_ORDER = (
    "departments.csv",
    "doctors.csv",
    "wards.csv",
    "services.csv",
    "clinic_sessions.csv",
    "imaging_slots.csv",
)

_TITLE_ALIASES = {
    **{code: code for code in DOCTOR_TITLES},
    **{en.lower(): code for code, (en, _) in DOCTOR_TITLES.items()},
    **{zh: code for code, (_, zh) in DOCTOR_TITLES.items()},
    **{en.lower().removesuffix(" physician"): code for code, (en, _) in DOCTOR_TITLES.items()},
}
_LANGUAGE_ALIASES = {"chinese": "zh", "中文": "zh", "汉语": "zh", "english": "en", "英语": "en"}
_MODALITY_ALIASES = {"ct": "CT", "mri": "MRI", "ultrasound": "ultrasound", "us": "ultrasound"}


class _Row(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class DepartmentCsv(_Row):
    """``departments.csv``: code (catalog code) and optional local names/descriptions."""

    code: str = Field(pattern=r"^[A-Z]{2,10}$")
    name_en: str | None = Field(default=None, max_length=120)
    name_zh: str | None = Field(default=None, max_length=60)
    treats_en: str | None = None
    treats_zh: str | None = None


class DoctorCsv(_Row):
    """``doctors.csv``."""

    doctor_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    name_en: str = Field(min_length=1, max_length=120)
    name_zh: str = Field(min_length=1, max_length=60)
    title: str
    department: str = Field(pattern=r"^[A-Z]{2,10}$")
    sub_specialties: list[str] = []
    languages: list[str] = ["zh"]

    @field_validator("title", mode="before")
    @classmethod
    def _title(cls, value: str) -> str:
        code = _TITLE_ALIASES.get(str(value).strip().lower()) or _TITLE_ALIASES.get(
            str(value).strip()
        )
        if code is None:
            raise ValueError(
                f"unknown title '{value}' (expected one of {', '.join(DOCTOR_TITLES)})"
            )
        return code

    @field_validator("sub_specialties", mode="before")
    @classmethod
    def _subs(cls, value: str | list[str]) -> list[str]:
        return _split(value)

    @field_validator("languages", mode="before")
    @classmethod
    def _langs(cls, value: str | list[str]) -> list[str]:
        langs = [_LANGUAGE_ALIASES.get(v.lower(), v.lower()) for v in _split(value)]
        for lang in langs:
            if not re.fullmatch(r"[a-z]{2,3}", lang):
                raise ValueError(f"'{lang}' is not a language code like zh or en")
        if not langs:
            raise ValueError("at least one language")
        return sorted(set(langs))


class WardCsv(_Row):
    """``wards.csv``: one ward of one bed type with its current census."""

    ward_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,32}$")
    name_en: str = Field(min_length=1, max_length=120)
    name_zh: str = Field(min_length=1, max_length=60)
    department: str = Field(pattern=r"^[A-Z]{2,10}$")
    bed_type: Literal["general", "icu", "paediatric", "maternity", "isolation"]
    beds_total: int = Field(ge=0, le=10_000)
    beds_occupied: int = Field(ge=0, le=10_000)


class ServiceCsv(_Row):
    """``services.csv``."""

    service_id: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,40}$")
    department: str = Field(pattern=r"^[A-Z]{2,10}$")
    name_en: str = Field(min_length=1, max_length=120)
    name_zh: str = Field(min_length=1, max_length=60)
    description_en: str = ""
    description_zh: str = ""
    modality: str | None = None

    @field_validator("modality", mode="before")
    @classmethod
    def _modality(cls, value: str | None) -> str | None:
        return None if value is None else _modality(value)


class ClinicSessionCsv(_Row):
    """``clinic_sessions.csv``: one doctor's session, local date and times."""

    doctor_id: str = Field(min_length=1, max_length=32)
    date: date
    start: time
    end: time
    capacity: int = Field(ge=1, le=500)
    booked: int = Field(default=0, ge=0, le=500)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return _hhmm(value)


class ImagingSlotCsv(_Row):
    """``imaging_slots.csv``: a block of scanner time, local date and times."""

    room: str = Field(min_length=1, max_length=40)
    modality: str
    date: date
    start: time
    end: time
    capacity: int = Field(ge=1, le=100)
    booked: int = Field(default=0, ge=0, le=100)

    @field_validator("modality", mode="before")
    @classmethod
    def _modality(cls, value: str) -> str:
        return _modality(value)

    @field_validator("start", "end", mode="before")
    @classmethod
    def _hhmm(cls, value: str) -> str:
        return _hhmm(value)


_MODELS: dict[str, type[_Row]] = {
    "departments.csv": DepartmentCsv,
    "doctors.csv": DoctorCsv,
    "wards.csv": WardCsv,
    "services.csv": ServiceCsv,
    "clinic_sessions.csv": ClinicSessionCsv,
    "imaging_slots.csv": ImagingSlotCsv,
}


def _split(value: str | list[str] | None) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [part.strip() for part in re.split(r"[;|,；，、]", value) if part.strip()]


def _modality(value: str) -> str:
    code = _MODALITY_ALIASES.get(str(value).strip().lower())
    if code is None:
        raise ValueError(f"unknown modality '{value}' (expected CT, MRI or ultrasound)")
    return code


def _hhmm(value: str) -> str:
    text = str(value).strip()
    if not re.fullmatch(r"\d{1,2}:\d{2}", text):
        raise ValueError(f"'{text}' is not a time HH:MM")
    return "00:00" if text == "24:00" else text.zfill(5)


@dataclass
class ImportReport:
    """Rows inserted and updated per file."""

    folder: Path
    inserted: dict[str, int] = field(default_factory=dict)
    updated: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """All rows written."""
        return sum(self.inserted.values()) + sum(self.updated.values())


class _Ctx:
    """State of one import: session, catalog, timezone and where errors point."""

    def __init__(self, session: Session, catalog: dict[str, Department], tz: ZoneInfo) -> None:
        self.session = session
        self.catalog = catalog
        self.tz = tz
        self.file = ""
        self.row = 0

    def error(self, column: str | None, message: str) -> DataError:
        where = f"{self.file} row {self.row}" + (f" column '{column}'" if column else "")
        return DataError(f"{where}: {message}")

    def flush(self) -> None:
        try:
            self.session.flush()
        except IntegrityError as exc:
            raise self.error(None, f"rejected by the database: {exc.orig}") from None

    def department(self, code: str, column: str = "department") -> DepartmentRow:
        row = self.session.get(DepartmentRow, code)
        if row is None:
            hint = "add it to departments.csv" if code in self.catalog else "not a catalog code"
            raise self.error(column, f"unknown department '{code}' ({hint})")
        return row

    def span(self, day: date, start: time, end: time) -> tuple[datetime, datetime]:
        begin = datetime.combine(day, start, tzinfo=self.tz)
        if end == time(0, 0):
            finish = datetime.combine(day + timedelta(days=1), end, tzinfo=self.tz)
        else:
            finish = datetime.combine(day, end, tzinfo=self.tz)
        if finish <= begin:
            raise self.error("end", "must be after start (use 24:00 for midnight)")
        return begin.astimezone(UTC), finish.astimezone(UTC)


def import_csv_dir(
    db_path: str | Path,
    folder: str | Path,
    *,
    replace: bool = False,
    timezone_name: str | None = None,
) -> ImportReport:
    """Validate and import the CSV files of ``folder`` into the database at ``db_path``.

    Args:
        db_path: SQLite file (created with the schema if missing) or database URL.
        folder: folder holding some of :data:`FILE_ORDER`; other ``.csv`` files are
            an error (a misspelt file name must not be skipped silently).
        replace: empty every hospital table (bookings included) before importing.
        timezone_name: IANA zone of the local dates/times in the files; recorded in
            ``hospital_meta``. Default: the zone already recorded (Asia/Shanghai for
            a new database).

    Returns:
        Rows inserted/updated per file.

    Raises:
        DataError: missing folder, no known file, unknown file or column, or a bad
            row (message names file, row and column). Nothing is written then.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(f"{folder}: no such folder")
    present = {p.name for p in folder.iterdir() if p.suffix.lower() == ".csv"}
    unknown = sorted(present - set(FILE_ORDER))
    if unknown:
        raise DataError(f"{folder}: unknown file {unknown[0]} (expected {', '.join(FILE_ORDER)})")
    if not present:
        raise DataError(f"{folder}: none of {', '.join(FILE_ORDER)} found")
    catalog = load_catalog()
    report = ImportReport(folder=folder)
    factory = open_db(db_path)
    try:
        with write_session(factory) as session:
            if replace:
                for table in reversed(Base.metadata.sorted_tables):
                    if table.name != "hospital_meta" and not table.info.get("keep_on_reset"):
                        session.execute(delete(table))
            if timezone_name is not None:
                set_meta(session, "timezone", zone(timezone_name).key)
            ctx = _Ctx(session, catalog, hospital_timezone(session))
            for name in FILE_ORDER:
                if name in present:
                    ctx.file = name
                    inserted, updated = _IMPORTERS[name](ctx, _read(folder / name, ctx))
                    report.inserted[name], report.updated[name] = inserted, updated
            previous = get_meta(session, "source")
            set_meta(session, "source", "csv" if replace or previous in (None, "csv") else "mixed")
            reset_sequences(session)
    finally:
        factory.kw["bind"].dispose()
    return report


#: Columns that identify a row of each file: a repeat inside one file is an error (it
#: would otherwise silently overwrite the earlier row).
ROW_KEYS: dict[str, tuple[str, ...]] = {
    "departments.csv": ("code",),
    "doctors.csv": ("doctor_id",),
    "wards.csv": ("ward_id",),
    "services.csv": ("service_id",),
    "clinic_sessions.csv": ("doctor_id", "date", "start"),
    "imaging_slots.csv": ("room", "date", "start"),
}
#: Largest cell, in characters (the ``csv`` module's default field limit).
MAX_CELL_CHARS = 131_072
#: Largest file, in bytes.
MAX_FILE_BYTES = 64 * 1024 * 1024
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def _oversized_column(path: Path, start_line: int) -> int | None:
    """1-based position of the first cell longer than :data:`MAX_CELL_CHARS` in the
    record that starts on physical line ``start_line`` (RFC 4180 quoting), or None."""
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            for _ in range(start_line - 1):
                handle.readline()
            column, length, quoted = 1, 0, False
            while True:
                block = handle.read(65_536)
                if not block:
                    return None
                for char in block:
                    if char == '"':
                        quoted = not quoted
                    elif char == "," and not quoted:
                        column, length = column + 1, 0
                        continue
                    elif char in "\r\n" and not quoted:
                        return None
                    length += 1
                    if length > MAX_CELL_CHARS:
                        return column
    except (OSError, UnicodeDecodeError):
        return None


def _read(path: Path, ctx: _Ctx) -> list[tuple[int, _Row]]:
    """Parse and validate every row of one file (header = row 1; a row is a CSV record,
    so a quoted cell spanning lines is one row).

    Raises:
        DataError: naming file, row and column: unknown, missing or repeated column, a
            cell with NUL or other control characters, a cell over
            :data:`MAX_CELL_CHARS` characters, a repeated row key (:data:`ROW_KEYS`), a
            value that fails validation; or a file over :data:`MAX_FILE_BYTES` or not
            UTF-8.
    """
    model = _MODELS[path.name]
    fields = model.model_fields
    required = {name for name, info in fields.items() if info.is_required()}
    key_columns = ROW_KEYS[path.name]
    ctx.row = 1
    if path.stat().st_size > MAX_FILE_BYTES:
        raise DataError(f"{path.name}: larger than {MAX_FILE_BYTES // (1024 * 1024)} MB")
    header: list[str] = []
    start_line = 1
    try:
        with path.open(encoding="utf-8-sig", newline="") as handle:
            reader = csv.reader(handle)
            raw_header = next(reader, [])
            header = [h.strip() for h in raw_header]
            for position, column in enumerate(header, start=1):
                if _CONTROL.search(column):
                    raise ctx.error(None, f"column {position} name contains a control character (NUL?)")
                if column not in fields:
                    raise ctx.error(column, f"unknown column (expected {', '.join(fields)})")
                if header.index(column) != position - 1:
                    raise ctx.error(column, f"column appears twice (columns {header.index(column) + 1} "
                                            f"and {position})")
            for column in fields:
                if column in required and column not in header:
                    raise ctx.error(column, "required column is missing")
            rows: list[tuple[int, _Row]] = []
            seen: dict[tuple[str, ...], int] = {}
            number = 1
            while True:
                number += 1
                ctx.row = number
                start_line = reader.line_num + 1
                try:
                    cells = next(reader)
                except StopIteration:
                    break
                if len(cells) > len(header):
                    raise ctx.error(None, "more cells than header columns")
                raw = dict(zip(header, cells, strict=False))
                for column, value in raw.items():
                    if _CONTROL.search(value):
                        raise ctx.error(column, "contains a NUL or other control character")
                values = {k: v.strip() for k, v in raw.items() if v.strip()}
                if not values:
                    continue  # blank line
                try:
                    row = model(**values)
                except ValidationError as exc:
                    err = exc.errors()[0]
                    column = str(err["loc"][0]) if err["loc"] else None
                    shown = values.get(column or "", "")[:80]
                    detail = err["msg"].removeprefix("Value error, ")
                    raise ctx.error(column, f"{detail} (value: '{shown}')") from None
                key = tuple(str(getattr(row, k)) for k in key_columns)
                if key in seen:
                    shown = ", ".join(f"{k}={v}" for k, v in zip(key_columns, key, strict=True))
                    raise ctx.error(key_columns[0], f"duplicate row ({shown}) already on row {seen[key]}")
                seen[key] = number
                rows.append((number, row))
    except UnicodeDecodeError:
        raise DataError(f"{path.name}: not UTF-8 text (save the sheet as CSV UTF-8)") from None
    except csv.Error as exc:
        if "field larger than field limit" in str(exc):
            position = _oversized_column(path, start_line)
            column = None
            if position is not None:
                column = header[position - 1] if ctx.row > 1 and position <= len(header) else f"#{position}"
            raise ctx.error(column, f"cell longer than {MAX_CELL_CHARS} characters") from None
        raise DataError(f"{path.name} row {ctx.row}: malformed CSV ({exc})") from None
    return rows


def _import_departments(ctx: _Ctx, rows: list[tuple[int, Any]]) -> tuple[int, int]:
    inserted = updated = 0
    for number, row in rows:
        ctx.row = number
        entry = ctx.catalog.get(row.code)
        if entry is None:
            raise ctx.error("code", f"'{row.code}' is not a catalog department code")
        values = {
            "name_en": row.name_en or entry.name_en,
            "name_zh": row.name_zh or entry.name_zh,
            "treats_en": row.treats_en or entry.treats_en,
            "treats_zh": row.treats_zh or entry.treats_zh,
        }
        existing = ctx.session.get(DepartmentRow, row.code)
        if existing is None:
            ctx.session.add(DepartmentRow(code=row.code, **values))
            inserted += 1
        else:
            for key, value in values.items():
                setattr(existing, key, value)
            updated += 1
        ctx.flush()
    return inserted, updated


def _import_doctors(ctx: _Ctx, rows: list[tuple[int, Any]]) -> tuple[int, int]:
    inserted = updated = 0
    seen: set[str] = set()
    for number, row in rows:
        ctx.row = number
        if row.doctor_id in seen:
            raise ctx.error("doctor_id", f"duplicate doctor_id '{row.doctor_id}' in this file")
        seen.add(row.doctor_id)
        ctx.department(row.department)
        entry = ctx.catalog.get(row.department)
        subs = []
        for text in row.sub_specialties:
            sub = entry.sub_specialty(text) if entry else None
            if sub is None:
                known = ", ".join(s.code for s in entry.sub_specialties) if entry else ""
                raise ctx.error(
                    "sub_specialties", f"'{text}' is not a {row.department} sub-specialty ({known})"
                )
            subs.append(sub.code)
        doctor = ctx.session.scalar(select(Doctor).where(Doctor.code == row.doctor_id))
        if doctor is None:
            doctor = Doctor(code=row.doctor_id)
            ctx.session.add(doctor)
            inserted += 1
        else:
            updated += 1
        doctor.name_en, doctor.name_zh = row.name_en, row.name_zh
        doctor.title, doctor.department_code = row.title, row.department
        doctor.sub_specialty_rows = [DoctorSubSpecialty(sub_specialty=s) for s in sorted(set(subs))]
        doctor.language_rows = [DoctorLanguage(language=lang) for lang in row.languages]
        ctx.flush()
    return inserted, updated


def _import_wards(ctx: _Ctx, rows: list[tuple[int, Any]]) -> tuple[int, int]:
    inserted = updated = 0
    now = utcnow()
    for number, row in rows:
        ctx.row = number
        ctx.department(row.department)
        ward = ctx.session.scalar(select(Ward).where(Ward.code == row.ward_id))
        reserved = ward.beds_reserved if ward is not None else 0
        if row.beds_occupied + reserved > row.beds_total:
            extra = f" + {reserved} reserved by bookings" if reserved else ""
            raise ctx.error(
                "beds_occupied", f"{row.beds_occupied}{extra} exceeds beds_total {row.beds_total}"
            )
        if ward is None:
            ward = Ward(code=row.ward_id, beds_reserved=0)
            ctx.session.add(ward)
            inserted += 1
        else:
            updated += 1
        ward.name_en, ward.name_zh = row.name_en, row.name_zh
        ward.department_code, ward.bed_type = row.department, row.bed_type
        ward.beds_total, ward.beds_occupied, ward.census_at = row.beds_total, row.beds_occupied, now
        ctx.flush()
    return inserted, updated


def _import_services(ctx: _Ctx, rows: list[tuple[int, Any]]) -> tuple[int, int]:
    inserted = updated = 0
    for number, row in rows:
        ctx.row = number
        ctx.department(row.department)
        service = ctx.session.scalar(select(Service).where(Service.code == row.service_id))
        if service is None:
            service = Service(code=row.service_id)
            ctx.session.add(service)
            inserted += 1
        else:
            updated += 1
        service.department_code, service.modality = row.department, row.modality
        service.name_en, service.name_zh = row.name_en, row.name_zh
        service.description_en, service.description_zh = row.description_en, row.description_zh
        ctx.flush()
    return inserted, updated


def _import_sessions(ctx: _Ctx, rows: list[tuple[int, Any]]) -> tuple[int, int]:
    doctors = {d.code: d for d in ctx.session.scalars(select(Doctor))}
    skipped = 0
    for number, row in rows:
        ctx.row = number
        doctor = doctors.get(row.doctor_id)
        if doctor is None:
            raise ctx.error(
                "doctor_id",
                f"unknown doctor '{row.doctor_id}' (not in doctors.csv or the database)",
            )
        begin, end = ctx.span(row.date, row.start, row.end)
        if row.booked > row.capacity:
            raise ctx.error("booked", f"{row.booked} exceeds capacity {row.capacity}")
        step = (end - begin) / row.capacity
        if step < timedelta(minutes=1):
            raise ctx.error("capacity", f"{row.capacity} slots do not fit between start and end")
        existing = ctx.session.scalar(
            select(ClinicSession).where(
                ClinicSession.doctor_id == doctor.id, ClinicSession.starts_at == begin
            )
        )
        if existing is not None:
            if existing.ends_at == end and existing.capacity == row.capacity:
                skipped += 1  # re-import of the same session: keep its live bookings
                continue
            raise ctx.error(
                "start", f"doctor {row.doctor_id} already has a different session starting then"
            )
        session = ClinicSession(
            doctor_id=doctor.id,
            department_code=doctor.department_code,
            starts_at=begin,
            ends_at=end,
            capacity=row.capacity,
        )
        session.slots = [
            ClinicSlot(
                seq=i,
                starts_at=begin + i * step,
                ends_at=begin + (i + 1) * step,
                booked=i < row.booked,
                booking_ref=None,
            )
            for i in range(row.capacity)
        ]
        ctx.session.add(session)
        ctx.flush()
    return len(rows) - skipped, 0


def _import_imaging(ctx: _Ctx, rows: list[tuple[int, Any]]) -> tuple[int, int]:
    skipped = 0
    for number, row in rows:
        ctx.row = number
        begin, end = ctx.span(row.date, row.start, row.end)
        if row.booked > row.capacity:
            raise ctx.error("booked", f"{row.booked} exceeds capacity {row.capacity}")
        existing = ctx.session.scalar(
            select(ImagingSlot).where(ImagingSlot.room == row.room, ImagingSlot.starts_at == begin)
        )
        if existing is not None:
            if (existing.ends_at, existing.capacity, existing.modality) == (
                end,
                row.capacity,
                row.modality,
            ):
                skipped += 1  # re-import of the same block: keep its live bookings
                continue
            raise ctx.error(
                "start", f"room '{row.room}' already has a different slot starting then"
            )
        ctx.session.add(
            ImagingSlot(
                modality=row.modality,
                room=row.room,
                starts_at=begin,
                ends_at=end,
                capacity=row.capacity,
                booked=row.booked,
            )
        )
        ctx.flush()
    return len(rows) - skipped, 0


_IMPORTERS = {
    "departments.csv": _import_departments,
    "doctors.csv": _import_doctors,
    "wards.csv": _import_wards,
    "services.csv": _import_services,
    "clinic_sessions.csv": _import_sessions,
    "imaging_slots.csv": _import_imaging,
}
