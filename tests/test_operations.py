"""Hospital operations (issue 15): history, forecasts, capacity plan, monitoring, region.

Small seeded histories keep this file fast; the full figures are printed by
``assistant eval operations`` and ``benchmarks/bench_operations.py``.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from assistant.operations import capacity, forecast, history, monitor, region

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"
END = date(2026, 11, 29)  # Sunday; no Chinese public holiday in the 7 weeks before
BASES = {"EMERG": 400.0, "CARDIO": 60.0, "DERM": 25.0, "GENMED": 70.0}


@pytest.fixture(scope="module")
def hist() -> history.History:
    return history.simulate_history(BASES, END, days=84, seed=11)


@pytest.fixture(scope="module")
def small_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A one-week demo hospital with 60 days of seeded history."""
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital

    path = tmp_path_factory.mktemp("ops") / "h.sqlite"
    build_demo_hospital(path, seed=7, days=7, start_date=date(2026, 12, 7))
    factory = open_db(path, create=False)
    assert history.ensure_history(factory, days=60)
    assert not history.ensure_history(factory)  # idempotent: kept
    factory.kw["bind"].dispose()
    return path


# ----------------------------------------------------------------- profile / history
def test_arrival_profile_is_derived_from_nhamcs() -> None:
    prof = history.kb_yaml("ops_arrival_profile.yaml")
    assert "NHAMCS" in prof["source"]
    for key, n in (("weekday_share", 7), ("hour_share", 24), ("month_share", 12)):
        assert len(prof[key]) == n and abs(sum(prof[key]) - 1) < 1e-3
    csv = SHARED / "nhamcs" / "nhamcs_ed_2018_2020.csv"
    if not csv.is_file():
        pytest.fail(f"shared data missing: {csv}")
    df = pd.read_csv(csv, usecols=["YEAR", "VDAYR", "ARRTIME", "PATWT"])
    df = df[df.YEAR.isin([2018, 2019]) & df.ARRTIME.between(0, 2359) & df.VDAYR.between(1, 7)]
    monday = df.PATWT[df.VDAYR == 2].sum() / df.PATWT.sum()
    assert prof["weekday_share"][0] == pytest.approx(monday, abs=1e-4)
    night = df.PATWT[df.ARRTIME // 100 == 4].sum() / df.PATWT.sum()
    assert prof["hour_share"][4] == pytest.approx(night, abs=1e-4)
    assert np.argmin(prof["hour_share"]) in (3, 4, 5) and max(prof["hour_share"]) > 2.5 * min(prof["hour_share"])


def test_history_is_seeded_and_follows_the_profile(hist: history.History) -> None:
    again = history.simulate_history(BASES, END, days=84, seed=11)
    pd.testing.assert_frame_equal(hist.daily, again.daily)
    other = history.simulate_history(BASES, END, days=84, seed=12)
    assert not hist.daily.arrivals.equals(other.daily.arrivals)
    em = hist.daily[hist.daily.department_code == "EMERG"]
    assert em.arrivals.mean() == pytest.approx(400, rel=0.1)
    by_wd = em.groupby([d.weekday() for d in em.day]).arrivals.mean()
    assert by_wd.idxmax() == 0  # Monday busiest, as in NHAMCS
    hours = hist.hourly.groupby("hour").arrivals.sum()
    assert hours[11] > 2 * hours[4]
    assert (hist.daily.emergencies <= hist.daily.arrivals).all()
    assert set(hist.daily.department_code) == set(BASES)


def test_china_holidays_from_the_holidays_package() -> None:
    hol = history.china_holidays(date(2026, 9, 1), date(2026, 10, 31))
    assert date(2026, 10, 1) in hol and date(2026, 10, 15) not in hol


# ----------------------------------------------------------------- forecast
def test_ets_beats_seasonal_naive_in_rolling_origin_backtest(hist: history.History) -> None:
    bt = forecast.backtest(hist, departments=["EMERG", "CARDIO"], origins=2)
    assert bt["mase_reduction"] >= 0.10
    assert bt["mean"]["ets"]["mase"] < bt["mean"]["snaive"]["mase"]
    assert 0.3 <= bt["mean"]["ets"]["coverage"] <= 1.0
    assert bt["hourly_emerg"]["mase_reduction"] > 0


def test_forecast_interval_and_holiday_drop() -> None:
    h = history.simulate_history({"GENMED": 80.0}, date(2026, 9, 30), days=120, seed=3)
    y = forecast.daily_series(h, "GENMED")
    f = forecast.forecast_series(y, 7)
    assert all(lo <= m <= hi for lo, m, hi in zip(f.lower, f.mean, f.upper, strict=True))
    assert min(f.lower) >= 0
    assert f.holidays[0] == date(2026, 10, 1)  # National Day week: clinics quieter
    assert np.mean(f.mean) < 0.8 * y.iloc[-28:].mean()
    naive = forecast.forecast_series(y, 7, model="snaive")
    assert naive.mean == list(y.iloc[-7:].to_numpy())
    with pytest.raises(ValueError, match="unknown model"):
        forecast.forecast_series(y, 7, model="prophet")
    with pytest.raises(ValueError, match="at least"):
        forecast.forecast_series(y.iloc[:10], 7)
    with pytest.raises(ValueError, match="no demand history"):
        forecast.daily_series(h, "XYZ")


# ----------------------------------------------------------------- capacity plan
def _timetable() -> capacity.Timetable:
    doctors = [
        capacity.DoctorWeek(1, "Dr A", "DERM", "chief", ((0, "am"), (1, "am"))),
        capacity.DoctorWeek(2, "Dr B", "DERM", "attending", ((0, "am"), (0, "pm"), (1, "am"), (1, "pm"))),
        capacity.DoctorWeek(3, "Dr C", "DERM", "resident", ((0, "pm"), (1, "pm"), (2, "am"), (2, "pm"))),
        capacity.DoctorWeek(4, "Dr D", "ENT", "attending", ((3, "am"), (4, "am"))),
    ]
    return capacity.Timetable(date(2026, 12, 7), doctors, {"am": 16, "pm": 14})


def test_plan_cuts_unmet_demand_with_the_same_sessions() -> None:
    tt = _timetable()
    demand = {"DERM": [20.0] * 7, "ENT": [4.0] * 7}
    plan = capacity.plan_week(tt, demand)
    assert plan.plan.sessions == plan.fixed.sessions == 12
    assert plan.fixed.unmet > 0 and plan.unmet_reduction >= 0.2
    assert plan.plan.objective <= plan.fixed.objective
    for doc in tt.doctors:  # every doctor keeps his count, inside his availability
        got = plan.doctor_sessions.get(doc.id, [])
        assert len(got) == len(doc.fixed)
        if doc.title == "chief":
            assert all(t < 5 for t, _ in got)
    assert plan.shadow_prices and "one more slot" in plan.shadow_prices[0]["en"]
    json.dumps(plan.as_dict(), default=str)


def test_fixed_timetable_meeting_all_demand_has_nothing_to_gain() -> None:
    # demand only on the days the timetable already covers
    plan = capacity.plan_week(_timetable(), {"DERM": [20.0, 20.0, 10.0, 0, 0, 0, 0], "ENT": [0, 0, 0, 4.0, 4.0, 0, 0]})
    assert plan.fixed.unmet == 0 and plan.unmet_reduction == 0.0
    with pytest.raises(ValueError, match="bound"):
        capacity.demand_from_forecasts({}, "median")


# ----------------------------------------------------------------- monitoring
def test_ewma_chart_matches_montgomery_formulas() -> None:
    z, _, hi = monitor.ewma_chart(np.array([10.0, 12.0, np.nan, 8.0]), 10.0, 1.0, 0.5, 3.0)
    assert z[0] == 10.0 and z[1] == 11.0 and z[2] == 11.0 and z[3] == 9.5
    assert hi[0] - 10 == pytest.approx(3 * np.sqrt(0.5 / 1.5 * (1 - 0.5**2)))
    assert hi[3] - 10 == pytest.approx(3 * np.sqrt(0.5 / 1.5 * (1 - 0.5**6)))
    with pytest.raises(ValueError):
        monitor.ewma_chart(np.ones(3), 0, 1, 0.0, 3)


def test_emergency_shift_flagged_within_two_days_clean_week_quiet(hist: history.History) -> None:
    _, clean = monitor.monitor(monitor.daily_metrics(hist), monitor_days=7)
    assert clean == []
    shifted = monitor.inject_emergency_shift(hist, END - timedelta(days=1), days=2)
    m = monitor.daily_metrics(shifted)
    assert m.emergency_share.iloc[-1] == pytest.approx(1.5 * monitor.daily_metrics(hist).emergency_share.iloc[-1],
                                                       rel=0.02)
    _, alerts = monitor.monitor(m, monitor_days=7)
    hit = [a for a in alerts if a.metric == "emergency_share"]
    assert hit and hit[0].first_day >= END - timedelta(days=1)
    assert "emergency share" in hit[0].en and "急诊" in hit[0].zh
    with pytest.raises(ValueError, match="at least"):
        monitor.monitor(monitor.daily_metrics(hist).iloc[:10])


def test_final_disposition_record(small_db: Path) -> None:
    from assistant.hospital.db import open_db, write_session
    from assistant.hospital.models import DemandSignalRow, utcnow

    factory = open_db(small_db, create=False)
    with write_session(factory) as s:
        s.add(DemandSignalRow(id="sig-1", payload=json.dumps({"department": "ENT", "disposition": "consultation"}),
                              created_at=utcnow()))
    out = monitor.record_final_disposition(factory, "sig-1", "consultation_24", staff_user="nurse1")
    assert out == {"signal_id": "sig-1", "assistant_disposition": "consultation",
                   "final_disposition": "consultation_24", "agrees": "false"}
    monitor.record_final_disposition(factory, "sig-1", "consultation", staff_user="nurse2")
    rows = monitor.recent_final_dispositions(factory)
    assert len(rows) == 1 and rows[0]["final"] == "consultation" and rows[0]["department"] == "ENT"
    with pytest.raises(ValueError, match="unknown disposition"):
        monitor.record_final_disposition(factory, "sig-1", "home", staff_user="nurse1")
    with pytest.raises(ValueError, match="no stored demand signal"):
        monitor.record_final_disposition(factory, "nope", "emergency", staff_user="nurse1")
    with pytest.raises(ValueError, match="required"):
        monitor.record_final_disposition(factory, " ", "emergency", staff_user="nurse1")
    factory.kw["bind"].dispose()


def test_final_dispositions_survive_a_demo_rebuild(tmp_path: Path) -> None:
    """Staff-entered records are data: rebuilding the demo tables must not erase them."""
    from assistant.hospital.db import open_db, write_session
    from assistant.hospital.demo import build_demo_hospital
    from assistant.hospital.models import DemandSignalRow, utcnow

    path = tmp_path / "h.sqlite"
    build_demo_hospital(path, seed=3, days=1, start_date=date(2026, 12, 7))
    factory = open_db(path, create=False)
    with write_session(factory) as s:
        s.add(DemandSignalRow(id="sig-9", payload=json.dumps({"department": "ENT", "disposition": "consultation"}),
                              created_at=utcnow()))
    monitor.record_final_disposition(factory, "sig-9", "emergency", staff_user="nurse1")
    factory.kw["bind"].dispose()
    build_demo_hospital(path, seed=3, days=1, start_date=date(2026, 12, 7))
    factory = open_db(path, create=False)
    rows = monitor.recent_final_dispositions(factory)
    assert [(r["final"], r["department"]) for r in rows] == [("emergency", "ENT")]
    factory.kw["bind"].dispose()


# ----------------------------------------------------------------- region
def test_region_lp_respects_capacity_and_sends_emergencies_to_nearest_ed() -> None:
    reg = region.demo_region()
    base, lp = region.nearest_site(reg), region.balance_region(reg)
    for (site, svc), cap in reg.capacity.items():
        if svc != "ed":
            assert sum(v for (_, _, s, sv), v in lp.flows.items() if (s, sv) == (site, svc)) <= cap + 1e-6
    for d, k, site, svc in lp.flows:
        if k == "emergency":
            assert svc == "ed" and site == min((s for (s, v) in reg.capacity if v == "ed"),
                                               key=lambda s: reg.travel[d, s])
    assert base.over_capacity > 0 and lp.over_capacity == 0
    assert lp.occupancy_sd < base.occupancy_sd
    assert set(lp.travel_p90) == set(reg.districts)


def test_community_option_for_patients() -> None:
    reg = region.demo_region()
    opt = region.community_option(reg, "D2", "consultation")
    assert opt["site"] == "C2" and "can see you today" in opt["en"] and "社区卫生服务中心" in opt["zh"]
    assert region.community_option(reg, "D2", "emergency") is None
    assert region.community_option(reg, "D9", "self_care") is None
    reg.booked["C2", "primary"] = reg.capacity["C2", "primary"]  # full today
    other = region.community_option(reg, "D2", "self_care")
    assert other is None or (other["site"] != "C2" and "nearest" in other["en"])


# ----------------------------------------------------------------- interfaces
def test_cli_json_and_errors(small_db: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_HOSPITAL_DB", str(small_db))
    runner = CliRunner()
    res = runner.invoke(app, ["ops", "monitor", "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.output)
    assert set(data["charts"]) >= {"emergency_share", "occupancy", "agreement"}
    res = runner.invoke(app, ["ops", "region", "--json"])
    assert res.exit_code == 0 and json.loads(res.output)["lp"]["over_capacity"] == 0
    res = runner.invoke(app, ["ops", "forecast", "-d", "DERM", "--days", "3", "--json"])
    assert res.exit_code == 0, res.output
    assert len(json.loads(res.output)["forecasts"]["DERM"]["mean"]) == 3
    res = runner.invoke(app, ["ops", "forecast", "-d", "XYZ"])
    assert res.exit_code != 0


def test_staff_views_build_plots(small_db: Path, tmp_path: Path) -> None:
    from matplotlib.figure import Figure

    from assistant.settings import Settings
    from assistant.ui import operations_tab as tab

    settings = Settings(data_dir=tmp_path, hospital_db=small_db, shared_data_dir=SHARED)
    fig, md = tab.monitor_view(settings)
    assert isinstance(fig, Figure) and md
    fig, table, md = tab.region_view(settings)
    assert isinstance(fig, Figure) and len(table) == 6 and "Occupancy SD" in md
    assert tab.record_final(settings, "x", "maybe", "nurse1", None).startswith("Not recorded")


def test_malformed_policy_is_a_clear_error(tmp_path: Path) -> None:
    from assistant.errors import DataError

    (tmp_path / "ops_policy.yaml").write_text("history: {days: 10}\n", encoding="utf-8")
    with pytest.raises(DataError, match="lacks"):
        history.kb_yaml("ops_policy.yaml", tmp_path)
    (tmp_path / "region_policy.yaml").write_text("- not a mapping\n", encoding="utf-8")
    with pytest.raises(DataError, match="mapping"):
        history.kb_yaml("region_policy.yaml", tmp_path)


def test_patient_primary_care_option_is_safe(small_db: Path) -> None:
    from assistant.hospital.db import open_db
    from assistant.operations.service import patient_primary_care_option

    factory = open_db(small_db, create=False)
    region.write_region(factory, region.demo_region())
    opt = patient_primary_care_option(factory, "d4", "self_care")
    assert opt is not None and opt["site"] == "C4" and "today" in opt["en"]
    assert patient_primary_care_option(factory, "D4", "emergency") is None
    assert patient_primary_care_option(factory, "\x00" * 500, "consultation") is None
    assert patient_primary_care_option(factory, None, "consultation") is None
    factory.kw["bind"].dispose()


def test_patient_turn_names_the_community_centre_only_when_not_urgent(small_db: Path) -> None:
    """分级诊疗 in the patient answer: a mild complaint from district D4 is told the
    community health centre can see them today; chest pain with sweating never is."""
    from assistant.hospital.db import open_db
    from assistant.service import PatientProfile, PatientSession, TriageService
    from assistant.settings import Settings

    factory = open_db(small_db, create=False)
    region.write_region(factory, region.demo_region())
    service = TriageService(Settings(hospital_db=small_db), hospital=factory)
    mild = service.turn(PatientSession(), "I have had a mild runny nose and sneezing for two days",
                        PatientProfile(age=30, district="d4"), book=False)
    assert not mild.result.disposition.is_emergency
    assert mild.primary_care is not None and mild.primary_care["site"] == "C4"
    assert "can see you today" in mild.answer
    zh = service.turn(PatientSession(), "流鼻涕打喷嚏两天了，不发烧", PatientProfile(age=30, district="D4"), book=False)
    assert zh.primary_care is not None and "今天可以为您看诊" in zh.answer
    urgent = service.turn(PatientSession(), "crushing chest pain and sweating for 20 minutes",
                          PatientProfile(age=60, district="D4"), book=False)
    assert urgent.result.disposition.is_emergency and urgent.primary_care is None
    assert "community health centre" not in urgent.answer
    nowhere = service.turn(PatientSession(), "mild runny nose for two days", PatientProfile(age=30), book=False)
    assert nowhere.primary_care is None
    with pytest.raises(ValueError):
        PatientProfile(district="D4; DROP TABLE")
    factory.kw["bind"].dispose()
