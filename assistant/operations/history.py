"""Seeded demand history of the demo hospital (default 180 days), and reading it back.

How it is made (deterministic for a seed):

* **Patterns** come from real US ED arrivals: ``knowledge_base/ops_arrival_profile.yaml``
  (NHAMCS 2018-2019, PATWT-weighted weekday, hour and month shares; emergency share by
  weekday), derived by ``eval/operations/derive_arrival_profile.py``.
* **Scale**: a clinic department's mean daily demand is its weekly clinic slots in the
  hospital's own timetable / 7 x ``clinic_utilisation`` (``knowledge_base/ops_policy.yaml``);
  EMERG sees ``emerg_daily_arrivals`` a day. So the department mix follows the hospital's
  capacity mix, and the total follows its size.
* Day ``t`` of department ``d``: mean = base_d x 7 x weekday_share x month_factor x
  holiday factor (China public holidays from the ``holidays`` package) x a common day
  factor (Gamma, shape ``nb_shape``: busy and quiet days hit every department alike);
  count ~ Poisson(mean), i.e. negative-binomial over days.
* EMERG hours: the day's arrivals split multinomially by the NHAMCS hour shares.
* Emergencies (triage level 1-2) ~ Binomial(EMERG arrivals, NHAMCS emergency share of
  that weekday); bookings, cancellations, no-shows, waits, the bed census and staff
  final dispositions follow the demo assumptions of ``ops_policy.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from sqlalchemy import delete, func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import DataError
from assistant.hospital.db import get_meta, hospital_timezone, write_session
from assistant.hospital.models import Base, ClinicSession, ClinicSlot, DemandSignalRow, Ward
from assistant.operations.models import (
    DISPOSITIONS,
    FinalDisposition,
    OpsDailyCensus,
    OpsDailyDemand,
    OpsHourlyArrivals,
)
from assistant.paths import KNOWLEDGE_BASE_DIR

EMERG = "EMERG"


#: Keys each operations knowledge-base file must have (checked on load).
REQUIRED_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "ops_policy.yaml": {
        "history": ("days", "seed", "clinic_utilisation", "emerg_daily_arrivals", "holiday_factor", "nb_shape",
                    "p_cancel", "p_no_show", "mean_wait_hours", "occupancy", "final_dispositions_per_day",
                    "agreement"),
        "plan": ("bound", "class_mix", "max_wait_days", "unmet_penalty_days", "weekend_titles"),
        "monitor": ("lambda", "L", "reference_days", "monitor_days", "metrics"),
    },
    "region_policy.yaml": {"classes": (), "daily_rate_per_1000": ()},
    "ops_arrival_profile.yaml": {"weekday_share": (), "hour_share": (), "month_factor": (),
                                 "emergency_share_by_weekday": ()},
}


def kb_yaml(name: str, kb_dir: Path | None = None) -> dict[str, Any]:
    """Load ``knowledge_base/<name>`` (YAML mapping) and check its required keys.

    Raises:
        DataError: missing or malformed file, or a required key missing.
    """
    data = _kb_yaml(str(Path(kb_dir or KNOWLEDGE_BASE_DIR) / name))
    for section, keys in REQUIRED_KEYS.get(name, {}).items():
        if section not in data:
            raise DataError(f"knowledge_base/{name}: missing '{section}'")
        missing = [k for k in keys if k not in (data[section] or {})]
        if missing:
            raise DataError(f"knowledge_base/{name}: '{section}' lacks {', '.join(missing)}")
    return data


@lru_cache(maxsize=16)
def _kb_yaml(path: str) -> dict[str, Any]:
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read ({type(exc).__name__})") from None
    if not isinstance(data, dict):
        raise DataError(f"{path}: expected a mapping")
    return data


def ensure_ops_tables(factory: sessionmaker[Session]) -> None:
    """Create the operations and region tables if missing (idempotent)."""
    from assistant.operations import models

    tables = [Base.metadata.tables[name] for name in models.OPS_TABLES]
    Base.metadata.create_all(factory.kw["bind"], tables=tables)


def china_holidays(start: date, end: date, country: str = "CN") -> set[date]:
    """Public holidays (days off) between ``start`` and ``end`` inclusive.

    Source: the ``holidays`` package (official 国务院办公厅 holiday notices for CN).
    """
    import holidays

    years = range(start.year, end.year + 1)
    return {d for d in holidays.country_holidays(country, years=years) if start <= d <= end}


@dataclass
class History:
    """Seeded history frames (plain pandas, one row per day or per day-hour)."""

    daily: pd.DataFrame   # day, department_code, arrivals, emergencies, booked, cancelled, no_shows, wait_hours_sum
    hourly: pd.DataFrame  # day, hour, department_code, arrivals
    census: pd.DataFrame  # day, beds_total, beds_occupied
    finals: pd.DataFrame  # signal_id, department_code, assistant_disposition, final_disposition, day


def department_bases(factory: sessionmaker[Session], policy: dict[str, Any]) -> dict[str, float]:
    """Mean daily demand per department, scaled from the hospital's weekly clinic slots.

    Returns:
        {department code: mean arrivals per day}; EMERG from ``emerg_daily_arrivals``.

    Raises:
        DataError: the hospital has no clinic sessions.
    """
    hist = policy["history"]
    with factory() as s:
        first = s.scalar(select(func.min(ClinicSession.starts_at)))
        if first is None:
            raise DataError("no clinic sessions: build the demo hospital or import the timetable first")
        rows = s.execute(
            select(ClinicSession.department_code, func.count(ClinicSlot.id))
            .join(ClinicSlot, ClinicSlot.session_id == ClinicSession.id)
            .where(ClinicSession.starts_at < first + timedelta(days=7))
            .group_by(ClinicSession.department_code)
        ).all()
    bases = {code: n / 7 * float(hist["clinic_utilisation"]) for code, n in rows if code != EMERG}
    bases[EMERG] = float(hist["emerg_daily_arrivals"])
    return dict(sorted(bases.items()))


def history_end(factory: sessionmaker[Session]) -> date:
    """Last history day: the day before the demo's ``start_date`` (else yesterday, local)."""
    with factory() as s:
        start = get_meta(s, "start_date")
        tz = hospital_timezone(s)
    if start:
        return date.fromisoformat(start) - timedelta(days=1)
    return datetime.now(tz).date() - timedelta(days=1)


def simulate_history(bases: dict[str, float], end: date, *, days: int = 180, seed: int = 11,
                     beds_total: int = 600, policy: dict[str, Any] | None = None,
                     profile: dict[str, Any] | None = None) -> History:
    """Generate ``days`` days of history ending on ``end`` (inclusive), deterministically.

    Args:
        bases: mean daily arrivals per department (see :func:`department_bases`).
        end: last local day.
        days: number of days (>= 14).
        seed: random seed.
        beds_total: beds of the census.
        policy, profile: ``ops_policy.yaml`` / ``ops_arrival_profile.yaml`` contents.

    Raises:
        ValueError: ``days`` < 14 or no departments.
    """
    if days < 14 or not bases:
        raise ValueError("need at least 14 days and one department")
    policy = policy or kb_yaml("ops_policy.yaml")
    profile = profile or kb_yaml("ops_arrival_profile.yaml")
    h = policy["history"]
    rng = np.random.default_rng(seed)
    dates = [end - timedelta(days=days - 1 - i) for i in range(days)]
    hol = china_holidays(dates[0], dates[-1], h.get("holiday_country", "CN"))
    wd = np.array(profile["weekday_share"]) * 7
    mf = np.array(profile["month_factor"])
    em_wd = np.array(profile["emergency_share_by_weekday"])
    hour_p = np.array(profile["hour_share"]) / sum(profile["hour_share"])
    common = rng.gamma(float(h["nb_shape"]), 1 / float(h["nb_shape"]), size=days)
    daily, hourly = [], []
    for i, day in enumerate(dates):
        is_hol = day in hol
        for code, base in bases.items():
            factor = h["holiday_factor"]["emerg" if code == EMERG else "clinic"] if is_hol else 1.0
            mean = base * wd[day.weekday()] * mf[day.month - 1] * factor * common[i]
            n = int(rng.poisson(mean))
            em = int(rng.binomial(n, em_wd[day.weekday()])) if code == EMERG else 0
            booked = n - em if code != EMERG else 0
            cancelled = int(rng.binomial(booked, h["p_cancel"]))
            no_shows = int(rng.binomial(booked - cancelled, h["p_no_show"]))
            wait = float(rng.gamma(4.0, h["mean_wait_hours"] / 4.0, size=booked).sum()) if booked else 0.0
            daily.append((day, code, n, em, booked, cancelled, no_shows, round(wait, 2)))
            if code == EMERG:
                for hour, k in enumerate(rng.multinomial(n, hour_p)):
                    hourly.append((day, hour, code, int(k)))
    occ = np.clip(h["occupancy"] + 0.02 * _ar1(rng, days, 0.8), 0.5, 1.0)
    census = pd.DataFrame({"day": dates, "beds_total": beds_total,
                           "beds_occupied": np.round(occ * beds_total).astype(int)})
    finals = []
    disp = list(DISPOSITIONS)
    for day in dates:
        for j in range(int(h["final_dispositions_per_day"])):
            a = int(rng.choice(5, p=[0.03, 0.12, 0.2, 0.45, 0.2]))
            f = a if rng.random() < h["agreement"] else int(np.clip(a + rng.choice((-1, 1)), 0, 4))
            finals.append((f"hist-{day:%Y%m%d}-{j:03d}", "", disp[a], disp[f], day))
    return History(
        daily=pd.DataFrame(daily, columns=["day", "department_code", "arrivals", "emergencies", "booked",
                                           "cancelled", "no_shows", "wait_hours_sum"]),
        hourly=pd.DataFrame(hourly, columns=["day", "hour", "department_code", "arrivals"]),
        census=census,
        finals=pd.DataFrame(finals, columns=["signal_id", "department_code", "assistant_disposition",
                                             "final_disposition", "day"]),
    )


def _ar1(rng: np.random.Generator, n: int, phi: float) -> np.ndarray:
    e = rng.standard_normal(n)
    out = np.empty(n)
    out[0] = e[0]
    for i in range(1, n):
        out[i] = phi * out[i - 1] + np.sqrt(1 - phi**2) * e[i]
    return out


def write_history(factory: sessionmaker[Session], hist: History) -> None:
    """Replace the history tables' rows with ``hist`` (one transaction).

    Final dispositions recorded by staff (ids not starting with ``hist-``) are kept.
    """
    ensure_ops_tables(factory)
    tz = None
    with factory() as s:
        tz = hospital_timezone(s)
    with write_session(factory) as s:
        for model in (OpsDailyDemand, OpsHourlyArrivals, OpsDailyCensus):
            s.execute(delete(model))
        s.execute(delete(FinalDisposition).where(FinalDisposition.signal_id.like("hist-%")))
        for model, frame in ((OpsDailyDemand, hist.daily), (OpsHourlyArrivals, hist.hourly),
                             (OpsDailyCensus, hist.census)):
            rows = frame.to_dict("records")
            for i in range(0, len(rows), 5000):
                s.execute(insert(model), rows[i:i + 5000])
        finals = [
            {**{k: v for k, v in r.items() if k != "day"}, "recorded_by": "history",
             "recorded_at": datetime.combine(r["day"], datetime.min.time().replace(hour=18), tzinfo=tz)}
            for r in hist.finals.to_dict("records")
        ]
        if finals:
            s.execute(insert(FinalDisposition), finals)


def ensure_history(factory: sessionmaker[Session], *, days: int | None = None, seed: int | None = None,
                   force: bool = False) -> bool:
    """Generate and store the seeded history if the tables are empty (or ``force``).

    Returns:
        True when history was (re)written.

    Raises:
        DataError: no clinic sessions to scale from.
    """
    ensure_ops_tables(factory)
    with factory() as s:
        have = s.scalar(select(func.count()).select_from(OpsDailyDemand))
    if have and not force:
        return False
    policy = kb_yaml("ops_policy.yaml")
    with factory() as s:
        beds = s.scalar(select(func.coalesce(func.sum(Ward.beds_total), 0))) or 600
    hist = simulate_history(department_bases(factory, policy), history_end(factory),
                            days=days or int(policy["history"]["days"]),
                            seed=policy["history"]["seed"] if seed is None else seed,
                            beds_total=int(beds), policy=policy)
    write_history(factory, hist)
    return True


def load_history(factory: sessionmaker[Session]) -> History:
    """Read the history tables, adding live triage demand (``demand_signals``) per local day.

    Returns:
        :class:`History` with ``day`` as ``datetime.date``.
    """
    ensure_ops_tables(factory)
    with factory() as s:
        tz = hospital_timezone(s)
        daily = pd.read_sql(select(OpsDailyDemand), s.connection())
        hourly = pd.read_sql(select(OpsHourlyArrivals), s.connection())
        census = pd.read_sql(select(OpsDailyCensus), s.connection())
        finals = pd.read_sql(select(FinalDisposition), s.connection())
        live = s.execute(select(DemandSignalRow.created_at, DemandSignalRow.payload)).all()
    for frame in (daily, hourly, census):
        if len(frame):
            frame["day"] = pd.to_datetime(frame["day"]).dt.date
    if live:
        import json

        extra: dict[tuple[date, str], list[int]] = {}
        for created, payload in live:
            try:
                sig = json.loads(payload)
            except ValueError:
                continue
            when = created if created.tzinfo else created.replace(tzinfo=tz)
            key = (when.astimezone(tz).date(), str(sig.get("department", "")))
            em = str(sig.get("disposition", "")).startswith("emergency")
            extra.setdefault(key, [0, 0])
            extra[key][0] += 1
            extra[key][1] += em
        add = pd.DataFrame([(d, c, n, e) for (d, c), (n, e) in extra.items()],
                           columns=["day", "department_code", "arrivals", "emergencies"])
        daily = (pd.concat([daily, add], ignore_index=True).fillna(0)
                 .groupby(["day", "department_code"], as_index=False).sum(numeric_only=True))
    finals["day"] = [r.astimezone(tz).date() if hasattr(r, "astimezone") else r
                     for r in pd.to_datetime(finals["recorded_at"], utc=True).dt.to_pydatetime()] \
        if len(finals) else []
    return History(daily=daily, hourly=hourly, census=census, finals=finals)
