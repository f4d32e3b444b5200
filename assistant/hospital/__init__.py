"""Hospital resources: the department catalog and the resource tables (SQLite or PostgreSQL).

* :mod:`.catalog` - canonical department catalog (``knowledge_base/departments.yaml``).
* :mod:`.models` - SQLAlchemy tables (doctors, clinic sessions/slots, wards, imaging,
  services, bookings, demand signals, audit log) with DB-level protection against
  double booking (:mod:`.triggers`).
* :mod:`.db` - ``open_db`` (SQLite file or ``postgresql+psycopg://`` URL),
  ``write_session`` and the read queries; :mod:`.migrate` - Alembic schema migrations;
  :mod:`.audit` - the staff audit log.
* :mod:`.bookings` - low-level booking writes.
* :mod:`.demo` - seeded demo hospital; :mod:`.csv_import` - the hospital's own CSVs.
* :mod:`.documents` - bilingual records for the retrieval index.
"""

from assistant.hospital.bookings import (
    BookingConflictError,
    active_bookings,
    create_booking,
    set_booking_status,
)
from assistant.hospital.csv_import import ImportReport, import_csv_dir
from assistant.hospital.db import (
    BedCensus,
    ClinicAvailability,
    DepartmentLoad,
    DoctorInfo,
    FreeImagingSlot,
    FreeSlot,
    WardCensus,
    bed_census,
    clinic_availability,
    create_schema,
    department_load,
    find_doctors,
    hospital_timezone,
    next_free_imaging_slots,
    next_free_slots,
    open_db,
    open_engine,
    write_session,
)
from assistant.hospital.demo import DemoSummary, build_demo_hospital
from assistant.hospital.documents import hospital_documents
from assistant.kb.catalog import (
    DEPARTMENT_CODES,
    Department,
    SubSpecialty,
    load_catalog,
    resolve_sub_specialty,
)

__all__ = [
    "DEPARTMENT_CODES",
    "BedCensus",
    "BookingConflictError",
    "ClinicAvailability",
    "DemoSummary",
    "Department",
    "DepartmentLoad",
    "DoctorInfo",
    "FreeImagingSlot",
    "FreeSlot",
    "ImportReport",
    "SubSpecialty",
    "WardCensus",
    "active_bookings",
    "bed_census",
    "build_demo_hospital",
    "clinic_availability",
    "create_booking",
    "create_schema",
    "department_load",
    "find_doctors",
    "hospital_documents",
    "hospital_timezone",
    "import_csv_dir",
    "load_catalog",
    "next_free_imaging_slots",
    "next_free_slots",
    "open_db",
    "open_engine",
    "resolve_sub_specialty",
    "set_booking_status",
    "write_session",
]
