"""FHIR export: real triage + booking on the demo hospital, every resource re-validated."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fhir.resources.R4B import get_fhir_model_class
from fhir.resources.R4B.bundle import Bundle

from assistant.agent.booking import book_signal
from assistant.domain import Disposition
from assistant.errors import InputError
from assistant.hospital.db import open_db
from assistant.interop import ACT_PRIORITY, REQUEST_PRIORITY, TriageRecord, export_bundle
from assistant.interop.fhir import parse_since, resources_of

TOOTH = "My tooth has been aching for three days, worse with cold drinks"
CHEST = "Crushing chest pain and sweating for 20 minutes"


@pytest.fixture(scope="module")
def world(triager, hospital_db, tmp_path_factory):
    """A private copy of the demo hospital with two triaged and booked patients."""
    path = tmp_path_factory.mktemp("fhir") / "hospital.sqlite"
    shutil.copy(hospital_db, path)
    factory = open_db(path, create=False)
    t0 = datetime.now(UTC) - timedelta(seconds=1)
    tooth = triager.triage(TOOTH, age=40)
    first = book_signal(factory, tooth.demand_signal)
    time.sleep(0.01)
    t_mid = datetime.now(UTC)
    chest = triager.triage(CHEST, age=58, sex="M")
    second = book_signal(factory, chest.demand_signal)
    outcomes = {
        tooth.demand_signal.id: TriageRecord(tooth, complaint=TOOTH),
        chest.demand_signal.id: TriageRecord(chest, complaint=CHEST),
    }
    yield {
        "path": path, "factory": factory, "t0": t0, "t_mid": t_mid, "tooth": tooth,
        "chest": chest, "bookings": (first, second), "outcomes": outcomes,
    }
    factory.kw["bind"].dispose()


def _validate(bundle: dict) -> list:
    """Re-parse the Bundle and every resource with the fhir.resources models."""
    Bundle.model_validate(bundle)
    parsed = []
    for r in resources_of(bundle):
        cls = get_fhir_model_class(r["resourceType"])
        parsed.append(cls.model_validate(r))
    return parsed


def test_export_holds_valid_resources_for_signals_and_bookings(world) -> None:
    assert world["bookings"][0].booked  # the dental consultation got a clinic slot
    bundle = export_bundle(world["factory"], world["t0"], outcomes=world["outcomes"])
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "collection"
    parsed = _validate(bundle)
    kinds = [p.get_resource_type() for p in parsed]
    booked = sum(b.booked for b in world["bookings"])
    assert kinds.count("ServiceRequest") == 2 and kinds.count("Encounter") == 2
    assert kinds.count("Observation") == 2
    assert kinds.count("Appointment") == booked and kinds.count("Slot") == booked
    assert "Patient" not in kinds
    # every in-bundle reference resolves to an entry
    urls = {e["fullUrl"] for e in bundle["entry"]}
    refs = [m for m in json.dumps(bundle).split('"reference": "')[1:]]
    assert refs and all(r.split('"')[0] in urls for r in refs)


def test_triage_priority_and_pseudonymous_subject(world) -> None:
    bundle = export_bundle(world["factory"], world["t0"], outcomes=world["outcomes"])
    res = resources_of(bundle)
    by_signal = {}
    for r in res:
        if r["resourceType"] == "Encounter":
            by_signal[r["identifier"][0]["value"]] = r
    chest, tooth = world["chest"], world["tooth"]
    assert chest.disposition.is_emergency
    enc = by_signal[chest.demand_signal.id]
    assert enc["priority"]["coding"][0] == {
        "system": "http://terminology.hl7.org/CodeSystem/v3-ActPriority",
        "code": "EM", "display": "emergency",
    }
    assert {c["coding"][0]["code"] for c in enc["reasonCode"]} == {f.rule_id for f in chest.red_flags}
    tooth_code = ACT_PRIORITY[tooth.disposition][0]
    assert by_signal[tooth.demand_signal.id]["priority"]["coding"][0]["code"] == tooth_code
    srs = {r["identifier"][0]["value"]: r for r in res if r["resourceType"] == "ServiceRequest"}
    assert srs[chest.demand_signal.id]["priority"] == REQUEST_PRIORITY[chest.disposition]
    refs = {chest.demand_signal.patient_ref, tooth.demand_signal.patient_ref}
    subjects = {r["subject"]["identifier"]["value"] for r in res if "subject" in r}
    assert subjects == refs
    appt_patients = {
        p["actor"]["identifier"]["value"] for r in res if r["resourceType"] == "Appointment"
        for p in r["participant"] if p["actor"]["identifier"]["system"].endswith("patient-ref")
    }
    assert appt_patients <= refs and appt_patients


def test_no_patient_free_text_unless_asked(world) -> None:
    plain = json.dumps(export_bundle(world["factory"], world["t0"], outcomes=world["outcomes"]))
    # the patient's phrases (single words may also be code labels, e.g. "Excessive sweating")
    words = ["tooth has been aching", "cold drinks", "Crushing chest", "sweating for 20 minutes"]
    evidence = [f.evidence for f in world["chest"].red_flags if f.evidence]
    assert evidence  # the red flag quotes the patient: it must not leak either
    assert not [w for w in words + evidence if w.lower() in plain.lower()]
    assert '"note"' not in plain
    full = export_bundle(world["factory"], world["t0"], outcomes=world["outcomes"], include_text=True)
    _validate(full)
    text = json.dumps(full, ensure_ascii=False)
    assert TOOTH in text and CHEST in text and evidence[0] in text


def test_since_filters_and_empty_export_is_a_valid_bundle(world) -> None:
    later = export_bundle(world["factory"], world["t_mid"])
    ids = {r["identifier"][0]["value"] for r in resources_of(later)
           if r["resourceType"] == "ServiceRequest"}
    assert ids == {world["chest"].demand_signal.id}
    empty = export_bundle(world["factory"], datetime.now(UTC) + timedelta(minutes=5))
    _validate(empty)
    assert empty["type"] == "collection" and "entry" not in empty
    with pytest.raises(InputError):
        export_bundle(world["factory"], datetime(2026, 1, 1))  # naive
    with pytest.raises(InputError):
        parse_since("last tuesday")
    assert parse_since("2026-03-02T08:00:00").tzinfo is UTC


def test_cli_export_fhir_writes_a_bundle(world, monkeypatch, tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_HOSPITAL_DB", str(world["path"]))
    out = tmp_path / "export.json"
    since = world["t0"].isoformat()
    run = CliRunner().invoke(app, ["export", "fhir", "--since", since, "--out", str(out)])
    assert run.exit_code == 0, run.output
    bundle = json.loads(out.read_text(encoding="utf-8"))
    kinds = [p.get_resource_type() for p in _validate(bundle)]
    assert kinds.count("ServiceRequest") == 2
    dispositions = {
        r["valueCodeableConcept"]["coding"][0]["code"] for r in resources_of(bundle)
        if r["resourceType"] == "Observation"
    }
    assert dispositions == {world["tooth"].disposition.value, world["chest"].disposition.value}
    assert Disposition.EMERGENCY.value in dispositions or Disposition.EMERGENCY_AMBULANCE.value in dispositions
    bad = CliRunner().invoke(app, ["export", "fhir", "--since", "yesterday"])
    assert bad.exit_code != 0
