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

    def respond(messages, schema):  # noqa: ANN001, ANN202 - tool call for booking, no re-ranking
        if "signal_id:" in messages[-1]["content"]:
            return booking_tool_call(messages, schema)
        raise RuntimeError("not asked in this test")

    model = scripted_model(respond=respond)
    app = build_app(settings.model_copy(update={"llm_capable": True}), backend=model)
    service = app.triage_service
    assert service.backend is model and service.triager.backend is model
    turn = service.turn(PatientSession(), "sore throat for three days, it hurts to swallow",
                        PatientProfile(age=30), book=True, lead_in=False)
    assert turn.booking is not None and turn.booking["path"] == "tool_call"
    assert any(c["schema"] is not None for c in model.calls)


def test_small_model_never_delays_the_booking(settings, hospital_db, scripted_model) -> None:  # noqa: ANN001
    """A model not marked capable is not asked for the booking tool call: the deterministic
    fallback books at once (the 135M model's call took 1-3 s the answer waited for)."""
    model = scripted_model()
    service = TriageService(settings, backend=model)
    turn = service.turn(PatientSession(), "sore throat for three days, it hurts to swallow",
                        PatientProfile(age=30), book=True, client="c-small")
    assert turn.booking is not None and turn.booking["path"] == "fallback"
    assert model.calls == []


def test_served_app_loads_the_configured_model(settings, hospital_db, backend) -> None:  # noqa: ANN001
    from assistant.ui.app import build_app

    app = build_app(settings.model_copy(update={"llm_capable": True}))
    assert app.triage_service.backend is backend  # the configured (cached) embedded model
    # a model not marked capable is used for nothing when serving: not loaded (memory)
    assert build_app(settings).triage_service.backend is None


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
    small = scripted_model(respond=lambda messages, schema: "I'm sorry about your sore throat; here is what to do.")
    TriageService(settings, backend=small).turn(PatientSession(), "sore throat for two days", book=False)
    assert small.calls == []  # the embedded 135M model writes noise: no lead-in unless capable
    capable_settings = settings.model_copy(update={"llm_capable": True})
    big = scripted_model(respond=lambda messages, schema: (
        {"department": "ENT", "more_urgent": False, "reason": "ok"} if schema is not None
        else "I'm sorry about your sore throat; here is what to do."))
    turn = TriageService(capable_settings, backend=big).turn(PatientSession(), "sore throat for two days",
                                                             book=False)
    assert turn.result.lead_in == "I'm sorry about your sore throat; here is what to do."


# --- answer first, model after: checked, streamed, bounded lead-ins ---------------------------------
def test_lead_in_must_speak_of_the_complaint(triager) -> None:  # noqa: ANN001
    from assistant.triage.safety import check_lead_in

    zh = triager.triage("胸口压榨样疼痛，出冷汗", age=60)
    assert zh.disposition.is_emergency and zh.language == "zh"
    # the embedded 135M model's real Chinese emergency lead-in: fluent, safe-sounding, empty
    assert check_lead_in("你可以提到这样的说法！", zh, "胸口压榨样疼痛，出冷汗") == (False, "says nothing about the complaint")
    assert check_lead_in("很抱歉您胸口这么疼。", zh, "胸口压榨样疼痛，出冷汗") == (True, "ok")
    assert check_lead_in("胸口疼请先观察一下。", zh, "胸口压榨样疼痛，出冷汗")[1] == "delay advice contradicts an emergency"
    assert check_lead_in("I'm sorry about your chest pain.", zh, "胸口压榨样疼痛，出冷汗")[1] == "wrong language"

    en = triager.triage("sore throat for two days, it hurts to swallow", age=30)
    assert not en.disposition.is_emergency
    assert check_lead_in("I'm sorry you feel unwell; here is what to do.", en, "sore throat for two days")[0] is False
    assert check_lead_in("I'm sorry your throat hurts when you swallow.", en, "sore throat for two days, "
                         "it hurts to swallow") == (True, "ok")
    # the coded complaint counts too: its label and evidence, without the raw text
    assert check_lead_in("I'm sorry about your sore throat.", en) == (True, "ok")
    assert check_lead_in("Your sore throat needs the emergency department.", en)[0] is False
    assert check_lead_in("Sorry about your throat, see [us](http://x.example).", en)[1] == "link or markup"


def test_streamed_lead_in_shows_only_checked_clauses(triager) -> None:  # noqa: ANN001
    from assistant.triage.safety import stream_lead_in

    r = triager.triage("sore throat for two days", age=30)
    good = list(stream_lead_in(iter(["Your sore", " throat must", " hurt,", " and I", " am sorry.", " Extra text."]),
                               "sore throat for two days", r))
    assert good == ["Your sore throat must hurt,", "Your sore throat must hurt, and I am sorry."]
    bad = list(stream_lead_in(iter(["Your sore throat", " must hurt,", " but it is nothing", " serious."]),
                              "sore throat for two days", r))
    assert bad == ["Your sore throat must hurt,", ""]  # withdrawn; "nothing serious" never shown
    noise = list(stream_lead_in(iter(["You can", " mention such", " a statement!"]), "sore throat for two days", r))
    assert noise == [""]


class _GatedModel:
    """A streaming backend that holds its generation until ``gate`` is set."""

    model_id, device = "gated", "cpu"

    def __init__(self, text: str) -> None:
        import threading

        self.text, self.gate, self.started = text, threading.Event(), threading.Event()

    def generate(self, messages, *, schema=None, max_new_tokens=None):  # noqa: ANN001, ANN201
        raise AssertionError("the lead-in is streamed")

    def stream(self, messages, *, max_new_tokens=None):  # noqa: ANN001, ANN201
        self.started.set()
        assert self.gate.wait(20)
        for word in self.text.split(" "):
            yield word + " "


@pytest.mark.timeout(180)
def test_lead_in_streams_after_the_answer_through_a_bounded_queue(settings, hospital_db) -> None:  # noqa: ANN001
    import threading

    from assistant.service import GenerationQueue

    model = _GatedModel("I am sorry your sore throat hurts so much.")
    service = TriageService(settings, backend=model, generation=GenerationQueue(workers=1, max_waiting=0))
    first, second = PatientSession(), PatientSession()
    # the answer is complete before any generation starts
    turn = service.turn(first, "sore throat for two days", PatientProfile(age=30), book=False, lead_in=False)
    assert turn.answer and not model.started.is_set()
    service.turn(second, "my sore throat hurts", PatientProfile(age=30), book=False, lead_in=False)
    seen: list[str] = []
    worker = threading.Thread(target=lambda: seen.extend(service.stream_lead_in(first, timeout_s=120)))
    worker.start()
    assert model.started.wait(20)
    assert list(service.stream_lead_in(second)) == []  # queue full: skipped, not queued behind
    # the deterministic path of other sessions is not blocked by the running generation
    other = service.turn(PatientSession(), "crushing chest pain and sweating", book=False)
    assert other.result.disposition.is_emergency
    model.gate.set()
    worker.join(60)
    assert seen[-1] == "I am sorry your sore throat hurts so much."
    assert first.last_result.lead_in == seen[-1] and second.last_result.lead_in is None
    for _ in range(200):  # the worker frees its place right after the last value
        if service.generation.pending == 0:
            break
        threading.Event().wait(0.05)
    assert service.generation.pending == 0


@pytest.mark.timeout(180)
def test_lead_in_of_an_old_turn_stops_when_a_new_message_comes(settings, hospital_db) -> None:  # noqa: ANN001
    import threading

    model = _GatedModel("I am sorry your sore throat hurts so much.")
    service = TriageService(settings, backend=model)
    session = PatientSession()
    service.turn(session, "sore throat for two days", PatientProfile(age=30), book=False)
    stream = service.stream_lead_in(session, timeout_s=120)
    seen: list[str] = []
    worker = threading.Thread(target=lambda: seen.extend(stream))
    worker.start()
    assert model.started.wait(20)
    service.turn(session, "now I also have a rash", PatientProfile(age=30), book=False)
    model.gate.set()
    worker.join(20)
    assert seen == [] and session.last_result.lead_in is None  # the new turn owns the lead-in place


def test_one_lead_in_per_turn(settings, hospital_db, scripted_model) -> None:  # noqa: ANN001
    model = scripted_model(respond=lambda messages, schema: "I'm sorry about your sore throat.")
    service = TriageService(settings, backend=model)
    session = PatientSession()
    service.turn(session, "sore throat for two days", PatientProfile(age=30), book=False)
    assert list(service.stream_lead_in(session))[-1] == "I'm sorry about your sore throat."
    assert list(service.stream_lead_in(session)) == []  # e.g. after an empty message: not asked again
    assert len(model.calls) == 1


@pytest.mark.timeout(300)
def test_closing_a_stream_stops_the_real_model(backend) -> None:  # noqa: ANN001
    """An abandoned lead-in (dropped after its first clause) stops the model at the next
    token instead of decoding the rest of its budget (counted in forward passes)."""
    steps: list[int] = []
    hook = backend.model.register_forward_hook(lambda *args: steps.append(1))
    try:
        stream = backend.stream([{"role": "user", "content": "Tell me a long story about a cat."}],
                                max_new_tokens=200)
        assert next(stream)
        stream.close()
        assert backend._lock.acquire(timeout=240)  # the generation has ended
        backend._lock.release()
    finally:
        hook.remove()
    assert len(steps) < 30  # a few tokens for the first word, then one more: not 200
