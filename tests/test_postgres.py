"""The hospital tables on a real PostgreSQL server (started by the ``postgres_server`` fixture).

* the same demo hospital answers every query exactly as on SQLite;
* no double booking with many writers: threads and processes through the booking tool,
  and raw writers that bypass ``write_session`` (row lock + unique index + triggers);
* the settings path: ``hospital_db = "postgresql+psycopg://..."`` reaches the triage
  engine, the staff console and the audit log; an unreachable server is a clear error
  that never shows the password.

The table/booking tests of ``test_hospital.py`` and the migration tests also run on
PostgreSQL (parametrised); this file holds what needs the demo-sized hospital.
"""

from __future__ import annotations

import itertools
import json
import multiprocessing as mp
import threading
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select, text

from assistant.domain import DemandSignal, Disposition
from assistant.errors import StorageError
from assistant.hospital import (
    BookingConflictError,
    bed_census,
    build_demo_hospital,
    clinic_availability,
    create_booking,
    department_load,
    find_doctors,
    next_free_imaging_slots,
    next_free_slots,
    open_db,
)
from assistant.hospital.db import database_exists, open_existing
from assistant.hospital.models import Booking, ClinicSlot

SHANGHAI = ZoneInfo("Asia/Shanghai")
START = datetime.now(SHANGHAI).date()  # bookings look ahead from now
_names = itertools.count()


@pytest.fixture(scope="module")
def pg_demo(postgres_server) -> str:
    """Name of a database holding the demo hospital (seed 7, 7 days from START); tests
    work on copies (``CREATE DATABASE ... TEMPLATE``)."""
    build_demo_hospital(postgres_server.create_database("demo_template"), seed=7, start_date=START, days=7)
    return "demo_template"


@pytest.fixture()
def pg_db(postgres_server, pg_demo: str) -> str:
    """URL of a fresh copy of the demo hospital."""
    return postgres_server.create_database(f"demo{next(_names)}", template=pg_demo)


def _signal(dept: str, n: int, disposition: Disposition = Disposition.CONSULTATION_24) -> DemandSignal:
    return DemandSignal.from_disposition(patient_ref=f"p-pg{n}", department=dept, disposition=disposition)


def _consistency(url: str) -> dict[str, int]:
    """Double bookings of any kind, and counters that disagree with the bookings."""
    factory = open_db(url, create=False)
    with factory() as s:
        out = {
            "double_slots": s.scalar(text(
                "SELECT count(*) FROM (SELECT clinic_slot_id FROM bookings WHERE status != 'cancelled' "
                "AND clinic_slot_id IS NOT NULL GROUP BY clinic_slot_id HAVING count(*) > 1) d")),
            "unflagged": s.scalar(text(
                "SELECT count(*) FROM clinic_slots c WHERE NOT c.booked AND EXISTS (SELECT 1 FROM bookings b "
                "WHERE b.clinic_slot_id = c.id AND b.status != 'cancelled')")),
            "ref_mismatch": s.scalar(text(
                "SELECT count(*) FROM bookings b JOIN clinic_slots c ON c.id = b.clinic_slot_id "
                "WHERE b.status != 'cancelled' AND c.booking_ref != b.id")),
            "over_wards": s.scalar(text(
                "SELECT count(*) FROM wards WHERE beds_occupied + beds_reserved > beds_total")),
            "over_imaging": s.scalar(text("SELECT count(*) FROM imaging_slots WHERE booked > capacity")),
        }
    factory.kw["bind"].dispose()
    return out


def test_demo_on_postgres_answers_exactly_like_sqlite(postgres_server, pg_demo: str, tmp_path: Path) -> None:
    lite = tmp_path / "demo.sqlite"
    build_demo_hospital(lite, seed=7, start_date=START, days=7)
    after = datetime(START.year, START.month, START.day, tzinfo=SHANGHAI)
    before = after + timedelta(days=5)

    def answers(target: Path | str) -> list:
        factory = open_db(target, create=False)
        with factory() as s:
            out = [
                [x.model_dump() for x in next_free_slots(s, "CARDIO", after, before, limit=20)],
                [x.model_dump() for x in next_free_slots(s, "RESP", after, before, language="en",
                                                           sub_specialty="asthma", max_per_session=None)],
                [x.model_dump() for x in next_free_imaging_slots(s, "MRI", after, before, limit=10)],
                bed_census(s).model_dump(),
                [x.model_dump() for x in clinic_availability(s, after=after, before=before, by_day=True)],
                [x.model_dump() for x in department_load(s, after=after, before=before)],
                [x.model_dump() for x in find_doctors(s, name="wang")],
                [x.model_dump() for x in find_doctors(s, "PEDS", title="chief")],
            ]
        factory.kw["bind"].dispose()
        return out

    pg = answers(postgres_server.url(pg_demo))
    assert pg == answers(lite)
    assert pg[0] and pg[3]["total"] > 500 and pg[4]  # not trivially equal


def test_raw_writers_racing_for_one_slot_only_one_wins(pg_db: str) -> None:
    """16 writers with their own engines, no ``write_session``: the row lock, the partial
    unique index and the trigger leave exactly one booking; every loser gets
    BookingConflictError (nothing else)."""
    with open_db(pg_db, create=False)() as s:
        slot_id = s.scalars(select(ClinicSlot.id).where(ClinicSlot.booked.is_(False)).order_by(ClinicSlot.id)).first()
    barrier = threading.Barrier(16)
    results: list[str] = []

    def write(i: int) -> None:
        factory = open_db(pg_db, create=False)
        try:
            with factory() as s, s.begin():
                barrier.wait(timeout=60)
                create_booking(s, signal_id=f"race{i}", patient_ref=f"p{i}", resource_kind="clinic_slot",
                               resource_id=slot_id)
            results.append("ok")
        except BookingConflictError:
            results.append("refused")
        except Exception as exc:  # noqa: BLE001 - any other outcome fails the test below
            results.append(type(exc).__name__)
        finally:
            factory.kw["bind"].dispose()

    threads = [threading.Thread(target=write, args=(i,)) for i in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(results) == ["ok"] + ["refused"] * 15
    with open_db(pg_db, create=False)() as s:
        assert s.scalar(select(func.count()).select_from(Booking).where(Booking.clinic_slot_id == slot_id)) == 1
        assert s.get(ClinicSlot, slot_id).booked is True
    assert not any(_consistency(pg_db).values())


def _proc_book(url: str, n: int, q: mp.Queue) -> None:  # runs in a child process (spawn)
    from assistant.agent.booking import book_signal

    factory = open_db(url, create=False)
    q.put([(o.booked, o.ref) for o in (book_signal(factory, _signal("DERM", n * 100 + i)) for i in range(4))])


def test_threads_and_processes_never_double_book_on_postgres(pg_db: str) -> None:
    from assistant.agent.booking import book_signal

    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    procs = [ctx.Process(target=_proc_book, args=(pg_db, n, q)) for n in range(2)]
    for p in procs:
        p.start()
    factory = open_db(pg_db, create=False)
    outcomes = []
    # 8 urgent patients compete for the few ENT/GENMED slots of the next 24 h
    threads = [threading.Thread(target=lambda i=i: outcomes.append(book_signal(factory, _signal("ENT", i))))
               for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=180)
    results = [q.get(timeout=240) for _ in procs]
    for p in procs:
        p.join(timeout=60)
    acked = {o.ref for o in outcomes if o.booked} | {ref for r in results for ok, ref in r if ok}
    assert len(outcomes) == 8 and len(acked) == sum(o.booked for o in outcomes) + sum(ok for r in results for ok, _ in r)
    assert any(o.booked for o in outcomes) and any(ok for r in results for ok, _ in r)
    with factory() as s:
        active = set(s.scalars(select(Booking.id).where(Booking.status != "cancelled")))
    factory.kw["bind"].dispose()
    assert acked == active  # none lost, none unacknowledged
    assert not any(_consistency(pg_db).values())


def test_postgres_url_in_settings_reaches_engine_staff_console_and_audit(pg_db: str, tmp_path: Path) -> None:
    from assistant.agent.booking import book_signal
    from assistant.agent.staff import StaffConsole
    from assistant.cli import ensure_hospital
    from assistant.hospital.audit import attach_for, read_audit, use_database
    from assistant.settings import Settings
    from assistant.triage.engine import open_hospital

    settings = Settings(hospital_db=pg_db, data_dir=tmp_path)
    assert settings.resolved_hospital_db == pg_db
    ensure_hospital(settings)  # upgrades/checks, never rebuilds an existing hospital
    factory = open_hospital(settings)
    assert factory is not None and factory.kw["bind"].dialect.name == "postgresql"
    out = book_signal(factory, _signal("ENT", 1, Disposition.CONSULTATION), hold=timedelta(minutes=15))
    assert out.booked
    console = StaffConsole(settings)
    queue = console.demand_queue()
    assert [r["booking"] for r in queue["rows"]] == [out.ref]
    assert attach_for(settings.resolved_hospital_db)
    try:
        result = console.reoptimise(actor="dr.li")
        assert result["served"] == 1
    finally:
        use_database(None)
    rows = read_audit(factory, action="reoptimise")
    assert rows[-1]["actor"] == "dr.li" and rows[-1]["served"] == 1
    line = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert line == rows[-1]  # the same record in the file and in the table
    # rows inserted with explicit ids left the sequences behind them: reset_sequences moved them on
    from assistant.hospital.db import write_session
    from assistant.hospital.models import Ward

    with write_session(factory) as s:
        top = s.scalar(select(func.max(Ward.id)))
        ward = Ward(code="NEW-1", name_en="New ward", name_zh="新病区", department_code="ENT",
                    bed_type="general", beds_total=4, beds_occupied=0)
        s.add(ward)
        s.flush()
        assert ward.id == top + 1
    # the audit log survives a demo rebuild
    build_demo_hospital(pg_db, seed=7, start_date=START, days=1)
    assert read_audit(factory, action="reoptimise") == rows
    factory.kw["bind"].dispose()


def test_unreachable_server_is_a_clear_error_without_the_password(postgres_server) -> None:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed once the block ends: nothing listens there
    url = f"postgresql+psycopg://assistant:s3cret-pw@127.0.0.1:{port}/hospital"
    with pytest.raises(StorageError, match="cannot reach the database server") as err:
        open_db(url, create=False)
    assert "s3cret-pw" not in str(err.value) and "***" in str(err.value)
    with pytest.raises(StorageError, match="cannot reach"):
        database_exists(url)  # never "no tables": a demo must not be built over an unseen hospital
    assert open_existing(url) is None
    # a server without the tables: no tables, not an error of the connection
    empty = postgres_server.create_database(f"empty{next(_names)}")
    assert not database_exists(empty)


def test_workers_front_config_is_valid_haproxy_with_sticky_sessions(tmp_path: Path) -> None:
    import shutil
    import subprocess

    from assistant.ui.workers import STICKY_COOKIE, haproxy_config

    cfg = haproxy_config("127.0.0.1", 7860, [41001, 41002])
    assert f"cookie {STICKY_COOKIE} insert" in cfg and "option forwardfor" in cfg
    assert cfg.count("server w") == 2 and "127.0.0.1:41002 check cookie w2" in cfg
    binary = shutil.which("haproxy")
    if binary is None:
        pytest.skip("HAProxy not installed (`make services`): config syntax not checked")
    (tmp_path / "h.cfg").write_text(cfg)
    check = subprocess.run([binary, "-c", "-f", str(tmp_path / "h.cfg")], capture_output=True, text=True,
                           timeout=30, check=False)
    assert check.returncode == 0, check.stdout + check.stderr
