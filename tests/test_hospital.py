"""Hospital resource tables: catalog, demo generator, queries, CSV import, bookings."""

from __future__ import annotations

import itertools
import re
import shutil
import sqlite3
import threading
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import DataError
from assistant.hospital import (
    DEPARTMENT_CODES,
    BookingConflictError,
    bed_census,
    build_demo_hospital,
    clinic_availability,
    create_booking,
    department_load,
    find_doctors,
    hospital_documents,
    import_csv_dir,
    load_catalog,
    next_free_imaging_slots,
    next_free_slots,
    open_db,
    resolve_sub_specialty,
    set_booking_status,
    write_session,
)
from assistant.hospital.models import Booking, ClinicSession, ClinicSlot, ImagingSlot, Ward

FIXTURES = Path(__file__).parent / "fixtures" / "hospital" / "csv"
SHANGHAI = ZoneInfo("Asia/Shanghai")
START = date(2026, 3, 2)  # a Monday
_CJK = re.compile(r"[\u4e00-\u9fff]")


def local(day: date, hour: int, minute: int = 0) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=SHANGHAI)


def dump(path: Path) -> list[str]:
    with sqlite3.connect(path) as conn:
        return list(conn.iterdump())


# --- fixtures ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("demo") / "hospital.sqlite"
    build_demo_hospital(path, seed=7, start_date=START, days=14)
    return path


@pytest.fixture()
def demo(demo_db: Path) -> Iterator[sessionmaker[Session]]:
    factory = open_db(demo_db)
    yield factory
    factory.kw["bind"].dispose()


@pytest.fixture()
def csv_db(tmp_path: Path) -> Path:
    path = tmp_path / "csv.sqlite"
    import_csv_dir(path, FIXTURES)
    return path


_PG_NAMES = itertools.count()


@pytest.fixture(scope="module")
def small_pg_template(postgres_server) -> str:  # noqa: ANN001
    """Name of a PostgreSQL database holding the small CSV hospital (copied per test)."""
    import_csv_dir(postgres_server.create_database("small_template"), FIXTURES)
    return "small_template"


@pytest.fixture(params=["sqlite", "postgresql"])
def small_target(request: pytest.FixtureRequest, tmp_path: Path) -> Path | str:
    """The small CSV hospital in an SQLite file, or in a new database on the test
    PostgreSQL server: the table, booking and concurrency tests run on both."""
    if request.param == "sqlite":
        target = tmp_path / "csv.sqlite"
        import_csv_dir(target, FIXTURES)
        return target
    template = request.getfixturevalue("small_pg_template")
    return request.getfixturevalue("postgres_server").create_database(f"small{next(_PG_NAMES)}",
                                                                      template=template)


@pytest.fixture()
def small(small_target: Path | str) -> Iterator[sessionmaker[Session]]:
    factory = open_db(small_target)
    yield factory
    factory.kw["bind"].dispose()


# --- catalog ----------------------------------------------------------------------------


def test_catalog_has_exactly_the_26_codes_with_bilingual_text() -> None:
    catalog = load_catalog()
    assert list(catalog) == list(DEPARTMENT_CODES)
    assert len(catalog) == 26
    for code, dept in catalog.items():
        assert dept.code == code
        assert dept.name_en and _CJK.search(dept.name_zh), code
        assert len(dept.treats_en.split()) >= 20, code
        assert len(_CJK.findall(dept.treats_zh)) >= 30, code
        assert not re.search(r"[\u4e00-\u9fff] [\u4e00-\u9fff]", dept.treats_zh), code
        assert dept.sub_specialties, code
        # every overflow neighbour exists and is never emergency-only (routine care must not
        # consume ED capacity); PEDS and OPHTH have no clinically equivalent department
        assert all(n in catalog and not catalog[n].emergency_only for n in dept.neighbours), code
        assert bool(dept.neighbours) == (code not in ("PEDS", "OPHTH", "EMERG") or code == "EMERG"), code
    assert catalog["PEDS"].age_below_years == 14
    assert catalog["OBGYN"].sex == "female" and catalog["ANDRO"].sex == "male"
    assert "hearing loss" in catalog["ENT"].treats_en and "听力下降" in catalog["ENT"].treats_zh
    assert {s.code for s in catalog["CARDIO"].sub_specialties} >= {
        "arrhythmia",
        "heart_failure",
        "hypertension",
        "coronary_disease",
    }
    assert "GENMED" in catalog["RESP"].neighbours


def test_sub_specialty_resolution() -> None:
    assert resolve_sub_specialty("CARDIO", "Heart failure") == "heart_failure"
    assert resolve_sub_specialty("CARDIO", "心力衰竭") == "heart_failure"
    assert resolve_sub_specialty("CARDIO", "heart-failure") == "heart_failure"
    assert resolve_sub_specialty("CARDIO", "cataract") is None
    assert resolve_sub_specialty("NOPE", "x") is None


def test_catalog_errors_name_file_and_department(tmp_path: Path) -> None:
    bad = tmp_path / "departments.yaml"
    bad.write_text(
        "ENT:\n  name_en: ENT\n  name_zh: 耳鼻喉\n  treats_en: too short\n  treats_zh: 耳朵疼耳朵疼耳朵疼耳朵疼\n",
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=r"departments.yaml: department ENT: field 'treats_en'"):
        load_catalog(tmp_path)
    bad.write_text("ENT: [unclosed\n", encoding="utf-8")
    with pytest.raises(DataError, match="invalid YAML"):
        load_catalog(bad)


# --- demo generator ---------------------------------------------------------------------


def test_demo_hospital_size_and_shape(demo: sessionmaker[Session]) -> None:
    with demo() as s:
        doctors = find_doctors(s)
        assert 110 <= len(doctors) <= 130
        assert {d.department for d in doctors} == set(DEPARTMENT_CODES)
        assert all("zh" in d.languages for d in doctors)
        assert 10 <= sum("en" in d.languages for d in doctors) < len(doctors)
        assert any(
            not _CJK.search(d.name_en) and "·" in d.name_zh for d in doctors
        )  # English-named
        assert {d.title for d in doctors} == {"chief", "associate_chief", "attending", "resident"}
        assert all(d.name_en.startswith("Dr ") for d in doctors)

        census = bed_census(s)
        assert 570 <= census.total <= 630
        busy = [w for w in census.wards if w.occupancy > 0.9]
        assert {w.department for w in busy} >= {"RESP", "CARDIO"}
        assert any(w.bed_type == "icu" for w in busy)
        assert any(w.occupancy < 0.7 for w in census.wards)
        assert {w.bed_type for w in census.wards} == {
            "general",
            "icu",
            "paediatric",
            "maternity",
            "isolation",
        }

        starts = s.scalars(select(ClinicSession.starts_at)).all()
        days = {t.astimezone(SHANGHAI).date() for t in starts}
        assert days == {START + timedelta(days=i) for i in range(14)}
        mornings = {t.astimezone(SHANGHAI).strftime("%H:%M") for t in starts}
        assert {"08:00", "13:30"} <= mornings
        booked = s.scalar(select(func.count()).where(ClinicSlot.booked.is_(True)))
        total = s.scalar(select(func.count()).select_from(ClinicSlot))
        assert 0.2 < booked / total < 0.8
        assert s.scalar(select(func.count()).select_from(ImagingSlot)) > 0
        assert set(s.scalars(select(ImagingSlot.modality).distinct())) == {
            "CT",
            "MRI",
            "ultrasound",
        }
        meta = dict(s.execute(text("SELECT key, value FROM hospital_meta")).all())
        assert meta["timezone"] == "Asia/Shanghai" and meta["seed"] == "7"


def test_demo_is_deterministic_for_a_seed(tmp_path: Path, demo_db: Path) -> None:
    again = tmp_path / "again.sqlite"
    build_demo_hospital(again, seed=7, start_date=START, days=14)
    assert dump(again) == dump(demo_db)
    build_demo_hospital(again, seed=8, start_date=START, days=14)  # rebuild in place
    assert dump(again) != dump(demo_db)


def test_hospital_documents(demo: sessionmaker[Session]) -> None:
    with demo() as s:
        docs = hospital_documents(s)
    kinds = {d["kind"] for d in docs}
    assert kinds == {"department", "doctor", "service"}
    assert len({d["id"] for d in docs}) == len(docs)
    ent = next(d for d in docs if d["id"] == "dept:ENT")
    assert "sore throat" in ent["text"] and "咽喉痛" in ent["text"]
    assert sum(d["kind"] == "department" for d in docs) == 26
    gastroscopy = next(d for d in docs if d["id"] == "service:gastroscopy")
    assert gastroscopy["metadata"]["department"] == "GASTRO" and "胃镜" in gastroscopy["text"]
    for doc in docs:
        assert doc["metadata"]["department"] in DEPARTMENT_CODES
        assert all(isinstance(v, (str, int, float, bool)) for v in doc["metadata"].values())
        assert _CJK.search(doc["text"]) and re.search(r"[A-Za-z]{3}", doc["text"])


# --- queries ----------------------------------------------------------------------------


def test_next_free_slots_on_demo_respects_filters(demo: sessionmaker[Session]) -> None:
    after, before = local(START, 0), local(START + timedelta(days=3), 0)
    with demo() as s:
        slots = next_free_slots(s, "CARDIO", after, before, limit=10)
        assert slots and [x.starts_at for x in slots] == sorted(x.starts_at for x in slots)
        assert len({x.session_id for x in slots}) == len(slots)  # one per session by default
        for slot in slots:
            assert slot.department == "CARDIO" and after <= slot.starts_at < before
            assert slot.starts_at.tzinfo is not None
            assert s.get(ClinicSlot, slot.slot_id).booked is False
        english = next_free_slots(s, "CARDIO", after, before, language="en", limit=10)
        assert english and all("en" in x.doctor.languages for x in english)
        hf = next_free_slots(
            s, "CARDIO", after, before + timedelta(days=7), sub_specialty="heart failure"
        )
        assert hf and all("heart_failure" in x.doctor.sub_specialties for x in hf)
        raw = next_free_slots(s, "CARDIO", after, before, limit=5, max_per_session=None)
        assert [x.starts_at for x in raw] == sorted(x.starts_at for x in raw)
        assert raw[0].starts_at <= slots[0].starts_at
        with pytest.raises(ValueError, match="timezone-aware"):
            next_free_slots(s, "CARDIO", datetime(2026, 3, 2), before)


def test_next_free_slots_exact_on_small_hospital(small: sessionmaker[Session]) -> None:
    day2, day3 = date(2026, 3, 3), date(2026, 3, 4)
    with small() as s:
        # T003 (heart failure, en) is fully booked on 3 March; 4 of 4 March: 08:00, 08:15 booked.
        hf = next_free_slots(s, "CARDIO", local(day2, 0), local(day3, 23), sub_specialty="心力衰竭")
        assert [(x.doctor.code, x.starts_at) for x in hf] == [("T003", local(day3, 8, 30))]
        # T004 (hypertension, zh only): 7 slots of 30 min from 13:30, first one booked.
        any_doc = next_free_slots(s, "CARDIO", local(day2, 0), local(day3, 23))
        assert [(x.doctor.code, x.starts_at) for x in any_doc] == [
            ("T004", local(day2, 14, 0)),
            ("T003", local(day3, 8, 30)),
        ]
        assert any_doc[0].ends_at - any_doc[0].starts_at == timedelta(minutes=30)
        english = next_free_slots(s, "CARDIO", local(day2, 0), local(day3, 23), language="en")
        assert [x.doctor.code for x in english] == ["T003"]
        assert next_free_slots(s, "CARDIO", local(day2, 0), local(day3, 8, 30), language="en") == []
        assert (
            next_free_slots(s, "CARDIO", local(day2, 0), local(day3, 23), sub_specialty="otology")
            == []
        )
        # booking the returned slot removes it from the next answer
        with write_session(small) as w:
            create_booking(
                w,
                signal_id="sig-1",
                patient_ref="p1",
                resource_kind="clinic_slot",
                resource_id=hf[0].slot_id,
            )
        s.rollback()  # end the read transaction: WAL readers see a snapshot
        hf2 = next_free_slots(
            s, "CARDIO", local(day2, 0), local(day3, 23), sub_specialty="heart_failure"
        )
        assert hf2[0].starts_at == local(day3, 8, 45)
        imaging = next_free_imaging_slots(s, "CT", local(START, 0), local(START, 23))
        assert [(x.room, x.free) for x in imaging] == [("CT-1", 2)]


def test_bed_census_arithmetic(small: sessionmaker[Session]) -> None:
    with small() as s:
        cardio = bed_census(s, "CARDIO")
        assert (cardio.total, cardio.occupied, cardio.reserved, cardio.free) == (36, 35, 0, 1)
        assert cardio.occupancy == round(35 / 36, 4)
        icu = bed_census(s, "CARDIO", "icu")
        assert (icu.total, icu.free, icu.occupancy) == (6, 0, 1.0)
        everything = bed_census(s)
        assert everything.total == sum(w.total for w in everything.wards) == 78
        assert everything.free == everything.total - everything.occupied - everything.reserved
        assert bed_census(s, "DERM").total == 0 and bed_census(s, "DERM").occupancy == 0.0
        ward_id = s.scalar(select(Ward.id).where(Ward.code == "CA-1"))
    with write_session(small) as w:
        create_booking(
            w, signal_id="bed-1", patient_ref="p", resource_kind="bed", resource_id=ward_id
        )
    with small() as s:
        cardio = bed_census(s, "CARDIO", "general")
        assert (cardio.occupied, cardio.reserved, cardio.free) == (29, 1, 0)
    with pytest.raises(BookingConflictError), write_session(small) as w:
        create_booking(
            w, signal_id="bed-2", patient_ref="q", resource_kind="bed", resource_id=ward_id
        )


def test_availability_and_load(small: sessionmaker[Session]) -> None:
    with small() as s:
        rows = clinic_availability(
            s, after=local(START, 0), before=local(START, 0) + timedelta(days=3)
        )
        cardio = next(r for r in rows if r.department == "CARDIO")
        assert (cardio.slots_total, cardio.slots_booked, cardio.sessions, cardio.doctors) == (
            39,
            19,
            3,
            2,
        )
        assert cardio.slots_free == 20 and cardio.next_free_at == local(date(2026, 3, 3), 14)
        by_day = clinic_availability(s, "CARDIO", after=local(START, 0), by_day=True)
        assert [r.day for r in by_day] == [date(2026, 3, 3), date(2026, 3, 4)]
        load = {
            r.department: r
            for r in department_load(s, after=local(START, 0), before=local(START, 23))
        }
        assert set(load) == {"ENT", "CARDIO", "PEDS", "EMERG"}
        assert load["ENT"].slots_total == 30 and load["ENT"].slots_booked == 4
        assert load["EMERG"].slots_total == 28  # 16:00-24:00 shift, slots starting before 23:00
        assert load["CARDIO"].beds_free == 1 and load["CARDIO"].active_bookings == 0


# --- CSV import -------------------------------------------------------------------------


def test_csv_import_happy_path(small: sessionmaker[Session], small_target: Path | str) -> None:
    with small() as s:
        assert len(find_doctors(s)) == 6
        sarah = find_doctors(s, name="mitchell")[0]
        assert (sarah.code, sarah.title, sarah.languages) == ("T003", "attending", ["en", "zh"])
        assert sarah.sub_specialties == ["arrhythmia", "heart_failure"]
        assert find_doctors(s, "ENT", title="chief")[0].code == "T001"
        session = s.scalars(
            select(ClinicSession)
            .join(ClinicSession.doctor)
            .where(ClinicSession.starts_at == local(START, 8))
        ).first()
        assert session is not None and session.starts_at == datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
        emerg = s.scalars(
            select(ClinicSession).where(ClinicSession.department_code == "EMERG")
        ).one()
        assert emerg.ends_at == local(date(2026, 3, 3), 0)
        assert len(emerg.slots) == 32
        t001 = s.scalars(select(ClinicSession).order_by(ClinicSession.id)).first()
        assert [slot.booked for slot in t001.slots][:5] == [True] * 4 + [False]
    report = import_csv_dir(small_target, FIXTURES)  # re-import: updates, skips unchanged sessions
    assert report.inserted["clinic_sessions.csv"] == 0 and report.updated["doctors.csv"] == 6


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("doctors.csv", "T004,Dr Chen Jing,陈静,associate_chief", "T004,Dr Chen Jing,陈静,professor",
         r"doctors\.csv row 5 column 'title': unknown title 'professor'"),
        ("doctors.csv", "T002,Dr Li Wei,李伟,主治医师,ENT", "T002,Dr Li Wei,李伟,主治医师,XYZ",
         r"doctors\.csv row 3 column 'department': unknown department 'XYZ'"),
        ("doctors.csv", "heart failure;arrhythmia", "heart failure;cataract",
         r"doctors\.csv row 4 column 'sub_specialties': 'cataract' is not a CARDIO sub-specialty"),
        ("wards.csv", "CCU,Coronary Care Unit,冠心病监护室,CARDIO,icu,6,6",
         "CCU,Coronary Care Unit,冠心病监护室,CARDIO,icu,6,7",
         r"wards\.csv row 4 column 'beds_occupied': 7 exceeds beds_total 6"),
        ("clinic_sessions.csv", "T005,2026-03-02,08:00,12:00", "T005,2026-03-32,08:00,12:00",
         r"clinic_sessions\.csv row 7 column 'date'"),
        ("clinic_sessions.csv", "T002,2026-03-02,13:30,17:00,14,0", "T002,2026-03-02,13:30,12:00,14,0",
         r"clinic_sessions\.csv row 3 column 'end': must be after start"),
        ("imaging_slots.csv", "MRI-1,MRI,2026-03-02,08:00,08:30,1,0", "MRI-1,PET,2026-03-02,08:00,08:30,1,0",
         r"imaging_slots\.csv row 4 column 'modality': unknown modality 'PET'"),
        ("imaging_slots.csv", "US-1,ultrasound,2026-03-02,08:00,08:30,2,2",
         "US-1,ultrasound,2026-03-02,08:00,08:30,2,3",
         r"imaging_slots\.csv row 5 column 'booked': 3 exceeds capacity 2"),
        ("imaging_slots.csv", "room,modality", "room,modalty",
         r"imaging_slots\.csv row 1 column 'modalty': unknown column"),
    ],
)  # fmt: skip
def test_csv_bad_row_names_file_row_column_and_changes_nothing(
    tmp_path: Path, csv_db: Path, file: str, old: str, new: str, expected: str
) -> None:
    folder = tmp_path / "bad"
    shutil.copytree(FIXTURES, folder)
    target = folder / file
    content = target.read_text(encoding="utf-8")
    assert old in content
    target.write_text(content.replace(old, new, 1), encoding="utf-8")
    # make the good files differ from what is in the DB, so a half import would show
    for name in ("departments.csv", "doctors.csv"):
        path = folder / name
        path.write_text(
            path.read_text(encoding="utf-8").replace("Dr ", "Doctor "), encoding="utf-8"
        )
    before = dump(csv_db)
    with pytest.raises(DataError, match=expected):
        import_csv_dir(csv_db, folder)
    assert dump(csv_db) == before
    with pytest.raises(DataError, match=expected):
        import_csv_dir(csv_db, folder, replace=True)
    assert dump(csv_db) == before


def test_csv_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder"):
        import_csv_dir(tmp_path / "db.sqlite", tmp_path / "missing")
    (tmp_path / "docters.csv").write_text("doctor_id\n", encoding="utf-8")
    with pytest.raises(DataError, match="unknown file docters.csv"):
        import_csv_dir(tmp_path / "db.sqlite", tmp_path)
    (tmp_path / "docters.csv").unlink()
    (tmp_path / "wards.csv").write_text("ward_id,name_en\nW1,Ward\n", encoding="utf-8")
    with pytest.raises(
        DataError, match=r"wards\.csv row 1 column 'name_zh': required column is missing"
    ):
        import_csv_dir(tmp_path / "db.sqlite", tmp_path)


# --- bookings ---------------------------------------------------------------------------


def _free_slot_id(factory: sessionmaker[Session]) -> int:
    with factory() as s:
        return s.scalars(select(ClinicSlot.id).where(ClinicSlot.booked.is_(False))).first()


def test_double_booking_is_refused_at_db_level(small: sessionmaker[Session]) -> None:
    slot_id = _free_slot_id(small)
    with write_session(small) as w:
        first = create_booking(
            w, signal_id="a", patient_ref="pa", resource_kind="clinic_slot", resource_id=slot_id
        )
    # Through the helper ...
    with pytest.raises(BookingConflictError), write_session(small) as w:
        create_booking(
            w, signal_id="b", patient_ref="pb", resource_kind="clinic_slot", resource_id=slot_id
        )
    # ... and with a raw INSERT that bypasses every Python check.
    engine = small.kw["bind"]
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(
            insert(Booking).values(
                id="raw",
                signal_id="c",
                patient_ref="pc",
                resource_kind="clinic_slot",
                clinic_slot_id=slot_id,
                status="confirmed",
            )
        )
    # A slot booked in the hospital's own system (no booking row) is refused too.
    with small() as s:
        prebooked = s.scalars(select(ClinicSlot.id).where(ClinicSlot.booked.is_(True))).first()
    with pytest.raises(BookingConflictError), write_session(small) as w:
        create_booking(
            w, signal_id="d", patient_ref="pd", resource_kind="clinic_slot", resource_id=prebooked
        )
    # The resource of a booking cannot be switched to sneak past the counters.
    with pytest.raises(IntegrityError), engine.begin() as conn:
        conn.execute(update(Booking).where(Booking.id == first.id).values(clinic_slot_id=prebooked))
    # Cancelling frees the slot; another patient can then book it.
    with write_session(small) as w:
        set_booking_status(w, first.id, "cancelled")
        assert w.get(ClinicSlot, slot_id).booked is False
        create_booking(
            w, signal_id="b", patient_ref="pb", resource_kind="clinic_slot", resource_id=slot_id
        )
    with pytest.raises(BookingConflictError), write_session(small) as w:
        set_booking_status(w, first.id, "confirmed")  # re-activation would double-book
    with small() as s:
        assert s.get(ClinicSlot, slot_id).booked is True
        assert (
            s.scalar(select(func.count()).select_from(Booking).where(Booking.status != "cancelled"))
            == 1
        )


def test_imaging_capacity_and_one_active_booking_per_signal(small: sessionmaker[Session]) -> None:
    with small() as s:
        block = s.scalars(
            select(ImagingSlot).where(ImagingSlot.room == "CT-1", ImagingSlot.booked == 1)
        ).one()
    with write_session(small) as w:
        create_booking(
            w, signal_id="i1", patient_ref="p", resource_kind="imaging", resource_id=block.id
        )
        create_booking(
            w, signal_id="i2", patient_ref="p", resource_kind="imaging", resource_id=block.id
        )
    with pytest.raises(BookingConflictError), write_session(small) as w:
        create_booking(
            w, signal_id="i3", patient_ref="p", resource_kind="imaging", resource_id=block.id
        )
    with pytest.raises(BookingConflictError), write_session(small) as w:
        create_booking(
            w,
            signal_id="i1",
            patient_ref="p",
            resource_kind="clinic_slot",
            resource_id=_free_slot_id(small),
        )


def test_concurrent_bookings_of_one_slot_only_one_wins(small_target: Path | str) -> None:
    slot_id = _free_slot_id(open_db(small_target))
    results: list[str] = []

    def book(signal: str) -> None:
        factory = open_db(small_target)  # own engine, like another process
        try:
            with write_session(factory) as w:
                create_booking(
                    w,
                    signal_id=signal,
                    patient_ref=signal,
                    resource_kind="clinic_slot",
                    resource_id=slot_id,
                )
            results.append("ok")
        except BookingConflictError:
            results.append("refused")
        finally:
            factory.kw["bind"].dispose()

    threads = [threading.Thread(target=book, args=(f"t{i}",)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["ok", "refused", "refused", "refused"]


def test_naive_datetimes_are_refused(small: sessionmaker[Session]) -> None:
    with pytest.raises(Exception, match="naive datetime"), write_session(small) as w:
        w.execute(update(Ward).values(census_at=datetime(2026, 3, 2, 8)))
