"""FHIR export of demand signals, bookings and triage outcomes (HL7 FHIR R4 JSON).

Resources (one set per demand signal / booking):

* **ServiceRequest** - a demand signal: ``intent=proposal`` (a triage recommendation),
  ``priority`` from the disposition (:data:`REQUEST_PRIORITY`), ``code`` = resource
  type (clinic slot / bed / imaging + modality), ``performerType`` = department,
  ``occurrencePeriod`` = the acceptable window [earliest, latest], ``authoredOn``.
* **Encounter** - the triage contact: ``status=triaged``, ``class`` = v3-ActCode ``VR``
  (virtual: online triage), ``priority`` from the disposition in HL7 v3 ActPriority
  (:data:`ACT_PRIORITY`), ``serviceType`` = department, ``reasonCode`` = red-flag rules.
* **Observation** - the triage disposition (``valueCodeableConcept``) with one
  component per red-flag rule that fired.
* **Appointment** + **Slot** - a booking: Appointment ``status`` from the booking
  (tentative hold -> ``pending``, confirmed -> ``booked``, cancelled -> ``cancelled``),
  ``basedOn`` the ServiceRequest, ``slot`` the Slot (clinic slot or imaging block, with
  its times and ``busy``/``free`` status); bed bookings get no Slot (a bed is not a time
  slot) and carry the signal's window.

Privacy: the patient is referenced only by the pseudonymous ``patient_ref`` of the
tables (a hash of the session id) as a logical identifier reference
(``urn:triage-assistant:patient-ref``); no Patient resource is made. Free text the
patient typed (the chief complaint, the words that fired a red flag, reasons that may
quote them) is included only with ``include_text=True`` (``assistant export fhir
--include-text``), as ``note`` of the Observation / ServiceRequest. Without it the
export holds codes, times and staff-side labels only.

Validation: every resource is built as a ``fhir.resources`` model (pydantic; required
elements, cardinalities, primitive formats) and the Bundle again from them. FHIR
version: the ``fhir.resources`` releases that model R4 itself (4.0.1, up to 6.4) need
pydantic 1, which this project cannot use (pydantic 2); releases from 7.0 model R5 and
R4B (4.3.0) in ``fhir.resources.R4B``. R4B changed only the medication-definition,
evidence and subscription resources and added types (HL7, "R4B history",
https://hl7.org/fhir/R4B/history.html); the six resources exported here are the same
in R4 and R4B, and only R4 elements are used, so the JSON is valid R4.

Code systems: ``http://terminology.hl7.org/CodeSystem/v3-ActPriority`` (Encounter
priority, https://hl7.org/fhir/R4/v3/ActPriority/cs.html), ``v3-ActCode`` (Encounter
class), FHIR ``request-priority`` (ServiceRequest priority,
https://hl7.org/fhir/R4/valueset-request-priority.html); the project's own codes
(departments, dispositions, red-flag rule ids, NCHS reason-for-visit complaint codes)
use ``urn:triage-assistant:*`` systems.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from fhir.resources.R4B.appointment import Appointment
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.encounter import Encounter
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.slot import Slot
from sqlalchemy import or_, select

from assistant.domain import DemandSignal, Disposition, TriageResult
from assistant.errors import InputError
from assistant.hospital.bookings import load_signals
from assistant.hospital.models import Booking, ClinicSlot, DemandSignalRow, ImagingSlot, Ward

FHIR_VERSION = "4.0.1"
"""FHIR release the JSON conforms to (see the module doc on R4 / R4B)."""

URN = "urn:triage-assistant"
ACT_PRIORITY_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActPriority"
ACT_CODE_SYSTEM = "http://terminology.hl7.org/CodeSystem/v3-ActCode"

ACT_PRIORITY: dict[Disposition, tuple[str, str]] = {
    Disposition.EMERGENCY_AMBULANCE: ("EM", "emergency"),
    Disposition.EMERGENCY: ("EM", "emergency"),
    Disposition.CONSULTATION_24: ("UR", "urgent"),
    Disposition.CONSULTATION: ("R", "routine"),
    Disposition.SELF_CARE: ("EL", "elective"),
}
"""Encounter.priority: disposition -> HL7 v3 ActPriority (code, display).

SOURCE: HL7 v3 code system ActPriority (OID 2.16.840.1.113883.5.7), bound to
Encounter.priority in FHIR R4 (https://hl7.org/fhir/R4/encounter-definitions.html#Encounter.priority,
codes https://hl7.org/fhir/R4/v3/ActPriority/cs.html): ``EM`` "emergency",
``UR`` "urgent" ("calls for prompt action"), ``R`` "routine", ``EL`` "elective"
("beneficial to the patient but not essential for survival"). Both emergency
dispositions are ``EM``; the Observation keeps the exact disposition (ambulance or not).
The mapping itself is this project's (no published crosswalk from NHS 111 style
dispositions to ActPriority exists)."""

REQUEST_PRIORITY: dict[Disposition, str] = {
    Disposition.EMERGENCY_AMBULANCE: "stat",
    Disposition.EMERGENCY: "asap",
    Disposition.CONSULTATION_24: "urgent",
    Disposition.CONSULTATION: "routine",
    Disposition.SELF_CARE: "routine",
}
"""ServiceRequest.priority: disposition -> FHIR ``request-priority`` (required binding;
routine < urgent < asap < stat, https://hl7.org/fhir/R4/valueset-request-priority.html)."""

_DISPOSITION_DISPLAY = {
    Disposition.EMERGENCY_AMBULANCE: "Emergency: call an ambulance",
    Disposition.EMERGENCY: "Emergency department now",
    Disposition.CONSULTATION_24: "See a doctor within 24 hours",
    Disposition.CONSULTATION: "Book a clinic visit",
    Disposition.SELF_CARE: "Self-care with safety-netting advice",
}
_APPOINTMENT_STATUS = {"tentative": "pending", "confirmed": "booked", "cancelled": "cancelled"}
_PARTICIPANT_STATUS = {"tentative": "tentative", "confirmed": "accepted", "cancelled": "declined"}
_KIND_DISPLAY = {"clinic_slot": "Clinic appointment", "bed": "Bed", "imaging": "Imaging examination"}


@dataclass(frozen=True)
class TriageRecord:
    """A triage outcome to enrich the export of its demand signal (matched by signal id).

    Attributes:
        result: the triage result (red flags, complaint codes and reasons are used).
        complaint: the patient's own words (chief complaint); exported only with
            ``include_text=True``.
    """

    result: TriageResult
    complaint: str | None = None


@dataclass(frozen=True)
class BookedResource:
    """What a booking holds, read from the resource tables.

    Attributes:
        kind: ``clinic_slot`` | ``bed`` | ``imaging``.
        key: stable key of the resource (e.g. ``clinic_slot:42``).
        starts_at, ends_at: UTC times (None for a bed).
        department: department code (None when the table has none, e.g. imaging).
        schedule: key of the schedule it belongs to (clinic session, scanner room, ward).
        actor_system, actor_code, actor_display: who or where serves it (doctor code /
            imaging room / ward code), staff-side data.
        busy: whether the resource is fully taken now.
    """

    kind: str
    key: str
    starts_at: datetime | None
    ends_at: datetime | None
    department: str | None
    schedule: str
    actor_system: str
    actor_code: str
    actor_display: str
    busy: bool


@dataclass(frozen=True)
class BookingRecord:
    """A booking row (copied out of the session) and the resource it holds."""

    id: str
    signal_id: str
    patient_ref: str
    status: str
    created_at: datetime
    updated_at: datetime
    resource: BookedResource | None


@dataclass
class ExportData:
    """Rows to export: signals created since ``since`` and bookings changed since then.

    ``booking_signals`` holds the signals of exported bookings (for the bed window and the
    ServiceRequest reference) even when they are older than ``since``.
    """

    since: datetime
    signals: list[DemandSignal] = field(default_factory=list)
    bookings: list[BookingRecord] = field(default_factory=list)
    booking_signals: dict[str, DemandSignal] = field(default_factory=dict)


def _aware(value: datetime) -> datetime:
    if value.tzinfo is None or value.utcoffset() is None:
        raise InputError(f"naive datetime {value.isoformat()}: give a timezone (e.g. +00:00)")
    return value.astimezone(UTC)


def _resource(session: Any, booking: Booking) -> BookedResource | None:
    kind, rid = booking.resource_kind, booking.resource_id
    if kind == "clinic_slot":
        slot = session.get(ClinicSlot, rid)
        if slot is None:
            return None
        sess = slot.session
        doctor = sess.doctor
        return BookedResource(
            kind=kind, key=f"clinic_slot:{slot.id}", starts_at=slot.starts_at,
            ends_at=slot.ends_at, department=sess.department_code,
            schedule=f"clinic_session:{sess.id}", actor_system=f"{URN}:doctor",
            actor_code=doctor.code, actor_display=f"{doctor.name_en} ({sess.department_code})",
            busy=bool(slot.booked),
        )
    if kind == "imaging":
        block = session.get(ImagingSlot, rid)
        if block is None:
            return None
        return BookedResource(
            kind=kind, key=f"imaging:{block.id}", starts_at=block.starts_at,
            ends_at=block.ends_at, department=None, schedule=f"imaging_room:{block.room}",
            actor_system=f"{URN}:imaging-room", actor_code=block.room,
            actor_display=f"{block.modality} {block.room}", busy=block.booked >= block.capacity,
        )
    if kind == "bed":
        ward = session.get(Ward, rid)
        if ward is None:
            return None
        return BookedResource(
            kind=kind, key=f"bed:{ward.id}", starts_at=None, ends_at=None,
            department=ward.department_code, schedule=f"ward:{ward.code}",
            actor_system=f"{URN}:ward", actor_code=ward.code, actor_display=ward.name_en,
            busy=ward.beds_occupied + ward.beds_reserved >= ward.beds_total,
        )
    return None


def read_export_data(factory: Any, since: datetime) -> ExportData:
    """Read what changed since ``since`` from the hospital tables (read-only).

    Args:
        factory: SQLAlchemy sessionmaker of the resource tables
            (:func:`assistant.hospital.open_db`; SQLite or PostgreSQL).
        since: aware datetime; signals created at or after it and bookings created or
            updated at or after it are read.

    Returns:
        :class:`ExportData` (signals oldest first, bookings oldest first).

    Raises:
        InputError: ``since`` is naive.
    """
    since = _aware(since)
    data = ExportData(since=since)
    with factory() as session:
        ids = list(
            session.scalars(
                select(DemandSignalRow.id)
                .where(DemandSignalRow.created_at >= since)
                .order_by(DemandSignalRow.created_at, DemandSignalRow.id)
            )
        )
        by_id = load_signals(session, ids) if ids else {}
        data.signals = [by_id[i] for i in ids if i in by_id]
        rows = session.scalars(
            select(Booking)
            .where(or_(Booking.created_at >= since, Booking.updated_at >= since))
            .order_by(Booking.created_at, Booking.id)
        ).all()
        for b in rows:
            data.bookings.append(
                BookingRecord(
                    id=b.id, signal_id=b.signal_id, patient_ref=b.patient_ref, status=b.status,
                    created_at=b.created_at, updated_at=b.updated_at,
                    resource=_resource(session, b),
                )
            )
        wanted = sorted({b.signal_id for b in data.bookings})
        data.booking_signals = load_signals(session, wanted) if wanted else {}
    return data


# --- building ----------------------------------------------------------------------------


def _uuid(kind: str, key: str) -> str:
    """Deterministic uuid of one exported resource (same input -> same id)."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"{URN}:{kind}:{key}"))


def _ref(kind: str, key: str) -> dict[str, str]:
    return {"reference": f"urn:uuid:{_uuid(kind, key)}"}


def _patient(patient_ref: str) -> dict[str, Any]:
    return {"identifier": {"system": f"{URN}:patient-ref", "value": patient_ref}}


def _concept(system: str, code: str, display: str | None = None) -> dict[str, Any]:
    coding: dict[str, str] = {"system": system, "code": code}
    if display:
        coding["display"] = display
    return {"coding": [coding]}


def _dept(code: str) -> dict[str, Any]:
    return _concept(f"{URN}:department", code)


def _time(value: datetime) -> str:
    return _aware(value).isoformat()


def _service_request(
    s: DemandSignal, rec: TriageRecord | None, include_text: bool
) -> ServiceRequest:
    code = _concept(f"{URN}:resource-type", s.resource_type, _KIND_DISPLAY[s.resource_type])
    if s.modality:
        code["coding"].append({"system": f"{URN}:modality", "code": s.modality})
    if s.bed_type:
        code["coding"].append({"system": f"{URN}:bed-type", "code": s.bed_type})
    body: dict[str, Any] = {
        "id": _uuid("ServiceRequest", s.id),
        "identifier": [{"system": f"{URN}:demand-signal", "value": s.id}],
        "status": "active",
        "intent": "proposal",
        "priority": REQUEST_PRIORITY[s.disposition],
        "code": code,
        "subject": _patient(s.patient_ref),
        "encounter": _ref("Encounter", s.id),
        "occurrencePeriod": {"start": _time(s.earliest), "end": _time(s.latest)},
        "authoredOn": _time(s.created_at),
        "performerType": _dept(s.department),
    }
    if rec is not None and rec.result.complaint_codes:
        body["reasonCode"] = [
            _concept(f"{URN}:nchs-rvc", c.code, c.label_en) for c in rec.result.complaint_codes
        ]
    if include_text and rec is not None and rec.complaint:
        body["note"] = [{"text": rec.complaint}]
    return ServiceRequest(**body)


def _encounter(s: DemandSignal, rec: TriageRecord | None) -> Encounter:
    code, display = ACT_PRIORITY[s.disposition]
    body: dict[str, Any] = {
        "id": _uuid("Encounter", s.id),
        "identifier": [{"system": f"{URN}:triage", "value": s.id}],
        "status": "triaged",
        "class": {"system": ACT_CODE_SYSTEM, "code": "VR", "display": "virtual"},
        "priority": _concept(ACT_PRIORITY_SYSTEM, code, display),
        "subject": _patient(s.patient_ref),
        "period": {"start": _time(s.created_at)},
        "serviceType": _dept(s.department),
    }
    if rec is not None and rec.result.red_flags:
        body["reasonCode"] = [
            _concept(f"{URN}:red-flag", f.rule_id, f.name_en) for f in rec.result.red_flags
        ]
    return Encounter(**body)


def _observation(s: DemandSignal, rec: TriageRecord | None, include_text: bool) -> Observation:
    body: dict[str, Any] = {
        "id": _uuid("Observation", s.id),
        "status": "final",
        "code": _concept(f"{URN}:observation", "triage-disposition", "Triage disposition"),
        "subject": _patient(s.patient_ref),
        "encounter": _ref("Encounter", s.id),
        "effectiveDateTime": _time(s.created_at),
        "valueCodeableConcept": _concept(
            f"{URN}:disposition", s.disposition.value, _DISPOSITION_DISPLAY[s.disposition]
        ),
    }
    if rec is not None and rec.result.red_flags:
        body["component"] = [
            {"code": _concept(f"{URN}:red-flag", f.rule_id, f.name_en), "valueBoolean": True}
            for f in rec.result.red_flags
        ]
    if include_text and rec is not None:
        notes = [rec.complaint] if rec.complaint else []
        notes += [f"{f.rule_id}: {f.evidence}" for f in rec.result.red_flags if f.evidence]
        notes += [c.evidence for c in rec.result.complaint_codes if c.evidence]
        notes += list(rec.result.reasons_en)
        if notes:
            body["note"] = [{"text": n} for n in notes]
    return Observation(**body)


def _slot(res: BookedResource) -> Slot:
    body: dict[str, Any] = {
        "id": _uuid("Slot", res.key),
        "identifier": [{"system": f"{URN}:resource", "value": res.key}],
        "schedule": {
            "identifier": {"system": f"{URN}:schedule", "value": res.schedule},
            "display": res.actor_display,
        },
        "status": "busy" if res.busy else "free",
        "start": _time(res.starts_at),  # type: ignore[arg-type]
        "end": _time(res.ends_at),  # type: ignore[arg-type]
    }
    if res.department:
        body["specialty"] = [_dept(res.department)]
    return Slot(**body)


def _appointment(b: BookingRecord, signal: DemandSignal | None) -> Appointment:
    res = b.resource
    participants: list[dict[str, Any]] = [
        {"actor": _patient(b.patient_ref), "status": _PARTICIPANT_STATUS[b.status]}
    ]
    body: dict[str, Any] = {
        "id": _uuid("Appointment", b.id),
        "identifier": [{"system": f"{URN}:booking", "value": b.id}],
        "status": _APPOINTMENT_STATUS[b.status],
        "created": _time(b.created_at),
        "basedOn": [_ref("ServiceRequest", b.signal_id)],
        "participant": participants,
    }
    if res is not None:
        participants.append(
            {
                "actor": {
                    "identifier": {"system": res.actor_system, "value": res.actor_code},
                    "display": res.actor_display,
                },
                "status": "accepted",
            }
        )
        body["serviceType"] = [
            _concept(f"{URN}:resource-type", res.kind, _KIND_DISPLAY.get(res.kind, res.kind))
        ]
        if res.department:
            body["specialty"] = [_dept(res.department)]
        if res.starts_at is not None and res.ends_at is not None:
            body["start"] = _time(res.starts_at)
            body["end"] = _time(res.ends_at)
            body["slot"] = [_ref("Slot", res.key)]
    if "start" not in body and b.status != "cancelled":
        if signal is not None:  # a bed: held for the signal's window
            body["start"], body["end"] = _time(signal.earliest), _time(signal.latest)
        else:  # resource or signal gone: FHIR allows no times only for these statuses
            body["status"] = "proposed"
    return Appointment(**body)


def build_bundle(
    data: ExportData,
    *,
    outcomes: Mapping[str, TriageRecord] | None = None,
    include_text: bool = False,
    now: datetime | None = None,
) -> Bundle:
    """Build and validate the FHIR ``Bundle`` (type ``collection``) of ``data``.

    Args:
        data: rows from :func:`read_export_data`.
        outcomes: triage outcomes by demand-signal id (red flags, complaint codes, the
            patient's words); signals without one are exported from the signal alone.
        include_text: include patient free text (chief complaint, red-flag evidence,
            reasons) as ``note`` elements; off by default.
        now: Bundle timestamp (default: now, UTC).

    Returns:
        The validated ``fhir.resources`` Bundle: per signal a ServiceRequest, Encounter and
        Observation; per booking an Appointment and (clinic / imaging) a Slot, each Slot
        once. Entries have deterministic ``urn:uuid`` full URLs; references between
        them use those URLs.

    Raises:
        pydantic.ValidationError: a resource violates the FHIR model (a bug).
    """
    outcomes = outcomes or {}
    resources: list[Any] = []
    for s in data.signals:
        rec = outcomes.get(s.id)
        resources += [
            _service_request(s, rec, include_text),
            _encounter(s, rec),
            _observation(s, rec, include_text),
        ]
    seen_slots: set[str] = set()
    for b in data.bookings:
        res = b.resource
        if res is not None and res.starts_at is not None and res.key not in seen_slots:
            seen_slots.add(res.key)
            resources.append(_slot(res))
        resources.append(_appointment(b, data.booking_signals.get(b.signal_id)))
    stamp = _time(now or datetime.now(UTC))
    entries = [{"fullUrl": f"urn:uuid:{r.id}", "resource": r} for r in resources]
    return Bundle(
        id=_uuid("Bundle", f"{data.since.isoformat()}@{stamp}"),
        type="collection",
        timestamp=stamp,
        meta={"tag": [{"system": f"{URN}:fhir-version", "code": FHIR_VERSION}]},
        entry=entries or None,
    )


def export_bundle(
    factory: Any,
    since: datetime,
    *,
    outcomes: Mapping[str, TriageRecord] | None = None,
    include_text: bool = False,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Read, build and validate the export; return the Bundle as a JSON object.

    See :func:`read_export_data` and :func:`build_bundle` for the arguments.

    Raises:
        InputError: ``since`` is naive.
    """
    bundle = build_bundle(
        read_export_data(factory, since), outcomes=outcomes, include_text=include_text, now=now
    )
    return json.loads(bundle.model_dump_json(exclude_none=True))


def resources_of(bundle_json: Mapping[str, Any]) -> Sequence[dict[str, Any]]:
    """The resources of a Bundle JSON object (empty list when it has no entries)."""
    return [e["resource"] for e in bundle_json.get("entry", [])]


def parse_since(text: str) -> datetime:
    """Parse ``--since``: an ISO 8601 date or datetime; without a timezone it is UTC.

    Raises:
        InputError: not an ISO 8601 date/datetime.
    """
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(
            f"--since {text!r} is not an ISO 8601 datetime (e.g. 2026-03-02T08:00:00+08:00)"
        ) from None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def export_fhir_file(
    hospital_db: Any, since: str, out: Any = None, *, include_text: bool = False
) -> tuple[str, dict[str, int]]:
    """The ``assistant export fhir`` command: export, validate, write JSON.

    Args:
        hospital_db: SQLite path or database URL (``Settings.resolved_hospital_db``).
        since: ISO 8601 datetime (naive = UTC).
        out: output file (``None``: return the JSON only; the CLI prints it).
        include_text: include patient free text (the tables hold none: they store
            codes and pseudonymous ids; the flag matters for triage outcomes passed in
            by an embedding application through :func:`build_bundle`).

    Returns:
        ``(json_text, counts by resourceType)``.

    Raises:
        InputError: bad ``since``. DataError: no hospital tables at ``hospital_db``.
    """
    from pathlib import Path

    from assistant.hospital.db import open_db

    when = parse_since(since)
    factory = open_db(hospital_db, create=False)
    try:
        bundle = export_bundle(factory, when, include_text=include_text)
    finally:
        factory.kw["bind"].dispose()
    counts: dict[str, int] = {}
    for r in resources_of(bundle):
        counts[r["resourceType"]] = counts.get(r["resourceType"], 0) + 1
    text = json.dumps(bundle, ensure_ascii=False, indent=1)
    if out is not None:
        Path(out).write_text(text + "\n", encoding="utf-8")
    return text, counts
