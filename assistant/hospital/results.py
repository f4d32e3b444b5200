"""Typed results of the hospital read queries (pydantic, frozen).

Datetimes are timezone-aware UTC; ratios are in [0, 1] rounded to 4 decimals.
"""

from __future__ import annotations

from datetime import date, datetime

from pydantic import BaseModel, ConfigDict

_FROZEN = ConfigDict(frozen=True)


class DoctorInfo(BaseModel):
    """A doctor as shown to patients and staff."""

    model_config = _FROZEN

    id: int
    code: str
    name_en: str
    name_zh: str
    title: str
    title_en: str
    title_zh: str
    department: str
    sub_specialties: list[str]
    languages: list[str]


class FreeSlot(BaseModel):
    """A free clinic slot with its doctor."""

    model_config = _FROZEN

    slot_id: int
    session_id: int
    department: str
    starts_at: datetime
    ends_at: datetime
    doctor: DoctorInfo


class FreeImagingSlot(BaseModel):
    """An imaging block with at least one free examination place."""

    model_config = _FROZEN

    imaging_slot_id: int
    modality: str
    room: str
    starts_at: datetime
    ends_at: datetime
    capacity: int
    booked: int
    free: int


class WardCensus(BaseModel):
    """Bed census of one ward."""

    model_config = _FROZEN

    ward_id: int
    code: str
    name_en: str
    name_zh: str
    department: str
    bed_type: str
    total: int
    occupied: int
    reserved: int
    free: int
    occupancy: float
    census_at: datetime | None


class BedCensus(BaseModel):
    """Bed census summed over the selected wards.

    ``free = total - occupied - reserved``; ``occupancy = occupied / total`` (the bed
    occupancy rate, 0.0 when there are no beds); ``reserved`` are beds held by
    bookings of this system for patients not yet admitted.
    """

    model_config = _FROZEN

    department: str | None
    bed_type: str | None
    total: int
    occupied: int
    reserved: int
    free: int
    occupancy: float
    wards: list[WardCensus]


class ClinicAvailability(BaseModel):
    """Clinic capacity of one department in a window (or one local day of it)."""

    model_config = _FROZEN

    department: str
    day: date | None
    sessions: int
    doctors: int
    slots_total: int
    slots_booked: int
    slots_free: int
    utilisation: float
    next_free_at: datetime | None


class DepartmentLoad(BaseModel):
    """Pressure on one department: clinic utilisation in a window plus bed census."""

    model_config = _FROZEN

    department: str
    name_en: str
    name_zh: str
    slots_total: int
    slots_booked: int
    slots_free: int
    clinic_utilisation: float
    next_free_slot_at: datetime | None
    beds_total: int
    beds_occupied: int
    beds_reserved: int
    beds_free: int
    bed_occupancy: float
    active_bookings: int
