"""The one patient turn (assistant.service) that the CLI, the web UI and eval share."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from assistant.service import PatientProfile, PatientSession, TriageService


@pytest.fixture(scope="module")
def service(settings, hospital_db):  # noqa: ANN001, ANN201
    return TriageService(settings)


def test_newest_message_is_read_after_a_long_chat(service) -> None:  # noqa: ANN001
    session = PatientSession()
    for n in range(11):
        turn = service.turn(session, f"I have had an itchy rash on my arm for {n + 2} days and it is dry "
                                     "and flaky, worse after showers, a bit red but not painful at all. " * 4,
                            PatientProfile(age=40), book=False)
        assert not turn.result.disposition.is_emergency
    turn = service.turn(session, "Now I suddenly have crushing chest pain and I am sweating", book=False)
    assert turn.result.disposition.is_emergency


def test_long_first_message_does_not_hide_the_next_one(service) -> None:  # noqa: ANN001
    session = PatientSession()
    service.turn(session, "My skin is itchy. " * 222, PatientProfile(age=50), book=False)  # ~3,990 chars
    turn = service.turn(session, "crushing chest pain and sweating", book=False)
    assert turn.result.disposition.is_emergency
    assert turn.result.departments[0].code == "EMERG"


def test_emergency_after_a_megabyte_is_escalated_and_the_cut_is_said(service) -> None:  # noqa: ANN001
    text = "blah " * 200_000 + " I have crushing chest pain and I am sweating."
    turn = service.turn(PatientSession(), text, book=False)
    assert turn.result.disposition.is_emergency
    assert "text_truncated" in turn.result.notes
    assert "checked all of it for warning signs" in turn.answer
    early = service.turn(PatientSession(), "crushing chest pain and sweating. " + "blah " * 200_000, book=False)
    assert early.result.disposition.is_emergency  # red flags read the whole text


def test_booking_fault_keeps_the_emergency_advice(settings, hospital_db) -> None:  # noqa: ANN001
    class BrokenDB:
        def __call__(self):  # noqa: ANN204
            raise OSError("database or disk is full")

    service = TriageService(settings, hospital=BrokenDB())
    turn = service.turn(PatientSession(), "crushing chest pain and sweating", PatientProfile(age=60), book=True)
    assert turn.booking_failed and turn.booking is None
    assert turn.result.disposition.is_emergency
    assert "Go to the emergency department now" in turn.answer or "call 120" in turn.answer
    assert "go to the emergency department now" in turn.answer.lower()
    routine = service.turn(PatientSession(), "sore throat for three days", PatientProfile(age=30), book=True)
    assert routine.booking_failed and "call the hospital" in routine.answer


def test_lead_in_fault_is_dropped(settings, hospital_db, scripted_model) -> None:  # noqa: ANN001
    model = scripted_model(RuntimeError("CUDA out of memory"))
    service = TriageService(settings, backend=model)
    turn = service.turn(PatientSession(), "crushing chest pain and sweating", book=False, lead_in=True)
    assert turn.result.lead_in is None and turn.result.disposition.is_emergency and model.calls


def test_sessions_do_not_share_bookings_or_questions(service) -> None:  # noqa: ANN001
    a, b = PatientSession(), PatientSession()
    service.turn(a, "I have a headache", PatientProfile(age=30), book=False)
    assert a.asked and not b.asked
    service.turn(b, "sore throat for three days, it hurts to swallow", PatientProfile(age=30), book=True)
    assert b.booking is not None and a.booking is None


def test_served_app_takes_the_models_tool_call_booking_path(settings, hospital_db, scripted_model) -> None:  # noqa: ANN001
    from conftest import booking_tool_call

    from assistant.ui.app import build_app

    model = scripted_model(respond=booking_tool_call)
    app = build_app(settings, backend=model)
    service = app.triage_service
    assert service.backend is model and service.triager.backend is model
    turn = service.turn(PatientSession(), "sore throat for three days, it hurts to swallow",
                        PatientProfile(age=30), book=True, lead_in=False)
    assert turn.booking is not None and turn.booking["path"] == "tool_call"
    assert any(c["schema"] is not None for c in model.calls)


def test_served_app_loads_the_configured_model(settings, hospital_db, backend) -> None:  # noqa: ANN001
    from assistant.ui.app import build_app

    app = build_app(settings)
    assert app.triage_service.backend is backend  # the configured (cached) embedded model


def test_profile_rejects_nonsense_age() -> None:
    for bad in (float("nan"), float("inf"), -1, 500, "forty"):
        with pytest.raises(ValueError):
            PatientProfile(age=bad)
    assert PatientProfile(age=0).age is None and PatientProfile(sex="female").sex == "F"


def test_cli_triage_book_json(settings, hospital_db, monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("ASSISTANT_SHARED_DATA_DIR", str(settings.shared_data_dir))
    out = CliRunner().invoke(app, ["triage", "--text", "sore throat for three days, it hurts to swallow",
                                   "--age", "30", "--json", "--book"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output[out.output.index("{"):])
    assert data["disposition"] in ("consultation", "consultation_24", "self_care")
    assert data["booking"]["booked"] is True and data["booking"]["path"] == "fallback"
    bad = CliRunner().invoke(app, ["triage", "--text", "cough", "--age", "nan"])
    assert bad.exit_code != 0


def test_eval_rows_come_from_the_service(settings, hospital_db, tmp_path) -> None:  # noqa: ANN001
    from assistant.evaluation.runner import run_triage_cases

    rows = run_triage_cases(settings, [{"id": "x", "text": "胸口压榨样疼痛，出冷汗", "lang": "zh", "age": 60}],
                            tmp_path / "rows.jsonl", progress=False)
    assert rows[0]["error"] is None and rows[0]["pred_urgency3"] == "em"
    assert datetime.now(timezone.utc)  # rows carry no patient text
    assert "胸口" not in json.dumps({k: v for k, v in rows[0].items() if k != "id"}, ensure_ascii=False)


def _free_slots(factory, department: str) -> int:  # noqa: ANN001
    from datetime import timedelta

    from assistant.hospital.queries import next_free_slots

    now = datetime.now(timezone.utc)
    with factory() as s:
        return len(next_free_slots(s, department, now, now + timedelta(hours=2), limit=500, max_per_session=None))


def test_emergency_chat_records_arrival_without_using_ed_capacity(settings, hospital_db) -> None:  # noqa: ANN001
    service = TriageService(settings)
    before = _free_slots(service.hospital, "EMERG")
    for _ in range(3):
        turn = service.turn(PatientSession(), "crushing chest pain and sweating", PatientProfile(age=60),
                            book=True, client="c-one")
        assert turn.pre_arrival and turn.booking is None and turn.result.disposition.is_emergency
    assert _free_slots(service.hospital, "EMERG") == before


def test_holds_are_limited_per_client_and_one_per_session(settings, hospital_db) -> None:  # noqa: ANN001
    service = TriageService(settings.model_copy(update={"max_holds_per_client_hour": 2}))
    first = PatientSession()
    a = service.turn(first, "sore throat for three days, it hurts to swallow", PatientProfile(age=30),
                     book=True, client="c-abuser")
    assert a.booking is not None and "Confirm booking" in a.answer
    b = service.turn(first, "also an itchy rash on my arm for a week", PatientProfile(age=30),
                     book=True, client="c-abuser")
    assert b.booking is not None and b.booking["ref"] != a.booking["ref"]
    from assistant.hospital.models import Booking

    with service.hospital() as db:
        assert db.get(Booking, a.booking["ref"]).status == "cancelled"  # one hold per session
    c = service.turn(PatientSession(), "earache for two days", PatientProfile(age=30), book=True, client="c-abuser")
    assert c.hold_limited and c.booking is None
    d = service.turn(PatientSession(), "earache for two days", PatientProfile(age=30), book=True, client="c-other")
    assert d.booking is not None


def test_unconfirmed_holds_lapse_and_confirmed_ones_stay(settings, hospital_db) -> None:  # noqa: ANN001
    from datetime import timedelta

    from assistant.hospital.bookings import expire_holds
    from assistant.hospital.db import write_session
    from assistant.hospital.models import Booking

    service = TriageService(settings)
    kept, lapsed = PatientSession(), PatientSession()
    service.turn(kept, "sore throat for three days, it hurts to swallow", PatientProfile(age=30), book=True, client="k")
    service.turn(lapsed, "itchy rash on my leg for a week", PatientProfile(age=30), book=True, client="l")
    assert service.confirm(kept)
    with write_session(service.hospital) as db:
        assert expire_holds(db, older_than=datetime.now(timezone.utc) + timedelta(minutes=1)) >= 1
    with service.hospital() as db:
        assert db.get(Booking, kept.booking["ref"]).status == "confirmed"
        assert db.get(Booking, lapsed.booking["ref"]).status == "cancelled"
    assert not service.confirm(lapsed) and lapsed.booking is None


def test_text_not_from_our_templates_is_escaped(triager) -> None:  # noqa: ANN001
    """Names imported from CSV, patient words and model text cannot inject links or HTML."""
    from assistant.domain import Citation
    from assistant.triage.render import render_answer

    r = triager.triage("sore throat for three days <img src=x onerror=alert(1)> [click](http://evil.example)", age=30)
    r.lead_in = "Hello [Call now](http://evil.example/phish)"
    r.citations = [Citation(title="[x](javascript:alert(1))", source="<b>src</b>", url="javascript:alert(1)",
                            snippet="", score=1.0)]
    booking = {"ref": "R1", "starts_at": datetime(2026, 12, 2, 1, 0, tzinfo=timezone.utc),
               "doctor": {"name_en": "Attending Physician [Call now](http://evil.example/phish)", "name_zh": "医生",
                          "title_en": "<script>x</script>", "title_zh": "主任"}}
    answer = render_answer(r, booking=booking)
    assert "](http://evil.example" not in answer and "<script>" not in answer and "<img" not in answer
    assert "](javascript:" not in answer
    assert "\\[Call now\\]" in answer  # shown as plain text


def test_lead_in_only_from_a_capable_model_by_default(settings, hospital_db, scripted_model) -> None:  # noqa: ANN001
    small = scripted_model(respond=lambda messages, schema: "I'm sorry you feel unwell; here is what to do.")
    TriageService(settings, backend=small).turn(PatientSession(), "sore throat for two days", book=False)
    assert small.calls == []  # the embedded 135M model writes noise: no lead-in unless capable
    capable_settings = settings.model_copy(update={"llm_capable": True})
    big = scripted_model(respond=lambda messages, schema: (
        {"department": "ENT", "more_urgent": False, "reason": "ok"} if schema is not None
        else "I'm sorry you feel unwell; here is what to do."))
    turn = TriageService(capable_settings, backend=big).turn(PatientSession(), "sore throat for two days",
                                                             book=False)
    assert turn.result.lead_in == "I'm sorry you feel unwell; here is what to do."
