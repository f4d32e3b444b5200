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

# Names resolve lazily (PEP 562): importing one submodule (e.g. ``hospital.db`` for a
# triage) must not import CSV import, the demo builder and the document renderer.
_EXPORTS: dict[str, str] = {
    "BedCensus": "assistant.hospital.db",
    "BookingConflictError": "assistant.hospital.bookings",
    "ClinicAvailability": "assistant.hospital.db",
    "DEPARTMENT_CODES": "assistant.kb.catalog",
    "DemoSummary": "assistant.hospital.demo",
    "Department": "assistant.kb.catalog",
    "DepartmentLoad": "assistant.hospital.db",
    "DoctorInfo": "assistant.hospital.db",
    "FreeImagingSlot": "assistant.hospital.db",
    "FreeSlot": "assistant.hospital.db",
    "ImportReport": "assistant.hospital.csv_import",
    "SubSpecialty": "assistant.kb.catalog",
    "WardCensus": "assistant.hospital.db",
    "active_bookings": "assistant.hospital.bookings",
    "bed_census": "assistant.hospital.db",
    "build_demo_hospital": "assistant.hospital.demo",
    "clinic_availability": "assistant.hospital.db",
    "create_booking": "assistant.hospital.bookings",
    "create_schema": "assistant.hospital.db",
    "department_load": "assistant.hospital.db",
    "find_doctors": "assistant.hospital.db",
    "hospital_documents": "assistant.hospital.documents",
    "hospital_timezone": "assistant.hospital.db",
    "import_csv_dir": "assistant.hospital.csv_import",
    "load_catalog": "assistant.kb.catalog",
    "next_free_imaging_slots": "assistant.hospital.db",
    "next_free_slots": "assistant.hospital.db",
    "open_db": "assistant.hospital.db",
    "open_engine": "assistant.hospital.db",
    "resolve_sub_specialty": "assistant.kb.catalog",
    "set_booking_status": "assistant.hospital.bookings",
    "write_session": "assistant.hospital.db",
}


def __getattr__(name: str) -> object:
    """Import the submodule that defines ``name`` on first use."""
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


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
