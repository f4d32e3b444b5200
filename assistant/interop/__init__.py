"""Interoperability: export of demand signals, bookings and triage outcomes as HL7 FHIR.

* :mod:`.fhir` - FHIR R4 ``Bundle`` (type ``collection``) built and validated with the
  ``fhir.resources`` models: ServiceRequest (demand signal), Appointment + Slot
  (booking), Encounter (triage priority) + Observation (triage disposition).
  Pseudonymous patient references only; no patient free text unless asked for.
"""

from assistant.interop.fhir import (
    ACT_PRIORITY,
    REQUEST_PRIORITY,
    TriageRecord,
    build_bundle,
    export_bundle,
    read_export_data,
)

__all__ = [
    "ACT_PRIORITY",
    "REQUEST_PRIORITY",
    "TriageRecord",
    "build_bundle",
    "export_bundle",
    "read_export_data",
]
