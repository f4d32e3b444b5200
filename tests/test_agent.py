"""Booking tool (allocator + tables), concurrency, re-optimisation, and staff tools."""

from __future__ import annotations

import json
import multiprocessing as mp
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from sqlalchemy import func, select

from assistant.agent.booking import book_resources, book_signal, request_booking_call
from assistant.agent.staff import StaffConsole, match_intent, numbers_grounded
from assistant.hospital.db import open_db
from assistant.hospital.models import Booking, ClinicSlot
from assistant.settings import Settings
from assistant.domain import DemandSignal, Disposition

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture()
def fresh_db(tmp_path: Path):  # noqa: ANN201
    from assistant.hospital.demo import build_demo_hospital

    path = tmp_path / "h.sqlite"
    build_demo_hospital(path, seed=7)
    return path


def _signal(dept: str = "ENT", disposition: Disposition = Disposition.CONSULTATION, n: int = 0) -> DemandSignal:
    return DemandSignal.from_disposition(patient_ref=f"p-test{n}", department=dept, disposition=disposition)


def _double_booked(path: Path) -> int:
    with open_db(path, create=False)() as s:
        rows = s.execute(
            select(Booking.clinic_slot_id, func.count()).where(Booking.status != "cancelled",
                                                               Booking.clinic_slot_id.is_not(None))
            .group_by(Booking.clinic_slot_id).having(func.count() > 1)
        ).all()
    return len(rows)


def test_booking_takes_a_free_slot_in_window(fresh_db: Path) -> None:
    factory = open_db(fresh_db, create=False)
    sig = _signal()
    out = book_signal(factory, sig)
    assert out.booked and out.department in ("ENT", "GENMED")
    assert sig.earliest <= out.starts_at <= sig.latest
    with factory() as s:
        slot_id = s.scalar(select(Booking.clinic_slot_id).where(Booking.id == out.ref))
        assert s.get(ClinicSlot, slot_id).booked == 1


def test_unservable_request_is_an_answer_not_an_error(fresh_db: Path) -> None:
    factory = open_db(fresh_db, create=False)
    sig = DemandSignal(patient_ref="p-x", department="ENT", disposition=Disposition.CONSULTATION,
                       earliest=datetime.now(timezone.utc) + timedelta(days=60),
                       latest=datetime.now(timezone.utc) + timedelta(days=61))
    out = book_signal(factory, sig)
    assert not out.booked and out.reason


def test_concurrent_threads_never_double_book(fresh_db: Path) -> None:
    factory = open_db(fresh_db, create=False)
    outcomes = []
    # 24 urgent patients compete for the few ENT/GENMED slots of the next 24 h
    signals = [_signal("ENT", Disposition.CONSULTATION_24, i) for i in range(24)]

    def worker(sig: DemandSignal) -> None:
        outcomes.append(book_signal(factory, sig))

    threads = [threading.Thread(target=worker, args=(s,)) for s in signals]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    booked = [o for o in outcomes if o.booked]
    assert len(outcomes) == 24 and booked
    assert _double_booked(fresh_db) == 0
    assert len({o.ref for o in booked}) == len(booked)


def _proc_book(path: str, n: int, q: mp.Queue) -> None:  # runs in a child process
    factory = open_db(path, create=False)
    res = [book_signal(factory, _signal("DERM", Disposition.CONSULTATION_24, n * 100 + i)).booked for i in range(4)]
    q.put(res)


def test_concurrent_processes_never_double_book(fresh_db: Path) -> None:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_proc_book, args=(str(fresh_db), n, q)) for n in range(4)]
    for p in procs:
        p.start()
    results = [q.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    assert sum(map(sum, results)) > 0
    assert _double_booked(fresh_db) == 0


def test_tool_call_path_with_real_model(fresh_db: Path, backend) -> None:  # noqa: ANN001
    sig = _signal("CARDIO", Disposition.CONSULTATION_24)
    valid, args = request_booking_call(backend, sig)
    assert args is not None and set(args) >= {"signal_id", "department", "disposition"}
    out = book_resources(open_db(fresh_db, create=False), sig, backend=backend)
    assert out.path == ("tool_call" if valid else "fallback")
    assert out.booked


def test_reoptimise_replans_tentative_bookings(fresh_db: Path, tmp_path: Path) -> None:
    factory = open_db(fresh_db, create=False)
    for i in range(6):
        assert book_signal(factory, _signal("GASTRO", Disposition.CONSULTATION, i)).booked
    console = StaffConsole(Settings(data_dir=tmp_path, hospital_db=fresh_db))
    result = console.reoptimise(horizon_days=14)
    assert result["status"] == "optimal" and result["served"] == 6 and result["integral"]
    assert _double_booked(fresh_db) == 0
    audit = [json.loads(x) for x in (tmp_path / "audit.jsonl").read_text().splitlines()]
    assert audit[-1]["action"] == "reoptimise"
    assert console.demand_queue()["summary"]["active"] == 6


@pytest.mark.parametrize(
    ("question", "tool", "args"),
    [
        ("How many ICU beds are free?", "bed_status", {"bed_type": "icu"}),
        ("Which wards are over 90% full?", "department_load", {"threshold": 0.9}),
        ("Next free neurology slot?", "clinic_availability", {"department": "NEURO", "days": 14}),
        ("今天儿科还有几个号？", "clinic_availability", {"department": "PEDS", "days": 1}),
        ("心内科床位使用率多少？", "bed_status", {"department": "CARDIO"}),
    ],
)
def test_keyword_intent_matcher(question: str, tool: str, args: dict) -> None:
    choice = match_intent(question)
    assert (choice.tool, choice.args) == (tool, args)


def test_staff_answers_are_grounded_in_tool_results(fresh_db: Path, tmp_path: Path) -> None:
    console = StaffConsole(Settings(data_dir=tmp_path, hospital_db=fresh_db))
    queries = [json.loads(x) for x in (REPO / "eval/staff/queries.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(queries) >= 80
    right = 0
    for q in queries:
        choice, result, sentence = console.answer(q["question"])
        assert numbers_grounded(sentence, result), (q["question"], sentence)
        right += choice.tool == q["gold_tool"]
    assert right / len(queries) >= 0.9
    _, census, sentence = console.answer("How many ICU beds are free?")
    s = census["summary"]
    assert s["free"] == s["total"] - s["occupied"] - s["reserved"]
    assert str(s["free"]) in sentence
    assert not numbers_grounded("There are 9999 free beds.", census)
