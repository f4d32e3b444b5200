"""High-level operations reports used by the CLI, the staff tab and the evaluation.

Every function takes a hospital session factory (``open_db``), makes sure the
operations tables and the seeded history exist, and returns JSON-ready dicts plus the
objects the plots need. Errors: :class:`~assistant.errors.InputError` for bad
arguments (unknown department, bad dates), :class:`~assistant.errors.DataError` when
the tables cannot support the report.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker

from assistant.errors import DataError, InputError
from assistant.operations import capacity, forecast, history, monitor, region


def open_ops(db_path: Any) -> sessionmaker[Session]:
    """Open an existing hospital database for the operations reports.

    Raises:
        DataError: no hospital tables there (build the demo or import CSV first).
    """
    from assistant.hospital.db import open_db

    factory = open_db(db_path, create=False)
    history.ensure_ops_tables(factory)
    return factory


def forecast_report(factory: sessionmaker[Session], *, departments: list[str] | None = None,
                    horizon: int = 7, model: str = "ets", hourly: bool = True) -> dict[str, Any]:
    """Forecast ``horizon`` days per department (and EMERG per hour).

    Returns:
        ``{"history_end", "forecasts": {code: Forecast.as_dict()}, "emerg_hourly": [...]}``
        and, under ``"_objects"``, the History and Forecast objects (for plots).

    Raises:
        InputError: unknown department, horizon outside 1-28, unknown model.
    """
    if not 1 <= horizon <= 28:
        raise InputError("horizon must be between 1 and 28 days")
    if model not in forecast.MODELS:
        raise InputError(f"unknown model {model!r}; choose one of {', '.join(forecast.MODELS)}")
    history.ensure_history(factory)
    hist = history.load_history(factory)
    known = set(hist.daily.department_code)
    codes = [c.strip().upper() for c in departments or [] if c.strip()] or sorted(known)
    unknown = [c for c in codes if c not in known]
    if unknown:
        raise InputError(f"no demand history for {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    try:
        fc = forecast.forecast_departments(hist, departments=codes, horizon=horizon, model=model)
    except ValueError as exc:
        raise DataError(f"cannot forecast: {exc}") from None
    out: dict[str, Any] = {"history_end": max(hist.daily.day).isoformat(), "model": model,
                           "forecasts": {c: f.as_dict() for c, f in fc.items()}, "emerg_hourly": []}
    if hourly and history.EMERG in fc:
        hr = forecast.hourly_emerg_forecast(hist, fc[history.EMERG])
        out["emerg_hourly"] = [{"day": r.day.isoformat(), "hour": int(r.hour), "mean": round(r.mean, 2),
                                "lower": round(r.lower, 2), "upper": round(r.upper, 2)} for r in hr.itertuples()]
    out["_objects"] = {"history": hist, "forecasts": fc}
    return out


def plan_report(factory: sessionmaker[Session], *, week_start: date | None = None, bound: str | None = None,
                time_limit: float = 20.0) -> dict[str, Any]:
    """Plan next week's clinic sessions from the forecast and compare with the timetable.

    Args:
        week_start: first local day (default: the day after the history ends).
        bound: ``upper`` (policy default), ``mean`` or ``lower`` forecast bound.

    Raises:
        InputError: bad bound, or no clinic sessions in that week.
    """
    policy = history.kb_yaml("ops_policy.yaml")
    bound = bound or policy["plan"]["bound"]
    if bound not in ("mean", "lower", "upper"):
        raise InputError("bound must be mean, lower or upper")
    history.ensure_history(factory)
    hist = history.load_history(factory)
    end = max(hist.daily.day)
    start = week_start or end + timedelta(days=1)
    horizon = (start - end).days + 6
    if not 7 <= horizon <= 28:
        raise InputError(f"the week must start within 3 weeks after the history end ({end})")
    try:
        fc = forecast.forecast_departments(hist, horizon=horizon)
    except ValueError as exc:
        raise DataError(f"cannot forecast: {exc}") from None
    week = {c: type(f)(f.department, f.model, f.days[-7:], f.mean[-7:], f.lower[-7:], f.upper[-7:], f.interval)
            for c, f in fc.items()}
    try:
        tt = capacity.load_timetable(factory, start)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    plan = capacity.plan_week(tt, capacity.demand_from_forecasts(week, bound), policy=policy,
                              time_limit=time_limit)
    out = plan.as_dict()
    out["bound"] = bound
    out["_objects"] = {"plan": plan}
    return out


def monitor_report(factory: sessionmaker[Session], *, days: int | None = None) -> dict[str, Any]:
    """EWMA charts and alerts over the last ``days`` (policy default 14) days.

    Raises:
        InputError: ``days`` outside 1-60.
        DataError: too little history.
    """
    if days is not None and not 1 <= days <= 60:
        raise InputError("days must be between 1 and 60")
    history.ensure_history(factory)
    hist = history.load_history(factory)
    metrics = monitor.daily_metrics(hist)
    try:
        charts, alerts = monitor.monitor(metrics, monitor_days=days)
    except ValueError as exc:
        raise DataError(str(exc)) from None
    return {
        "alerts": [a.as_dict() for a in alerts],
        "charts": {c.metric: {"mean": round(c.mean, 4), "sigma": round(c.sigma, 4), "direction": c.direction,
                              "last_value": _round(c.values[-1]), "last_ewma": _round(c.ewma[-1]),
                              "alert_days": [d.isoformat() for d in c.alerts]} for c in charts},
        "final_dispositions": monitor.recent_final_dispositions(factory, limit=10),
        "_objects": {"charts": charts, "metrics": metrics},
    }


def _round(x: float) -> float | None:
    return None if math.isnan(x) else round(float(x), 4)


def region_report(factory: sessionmaker[Session]) -> dict[str, Any]:
    """Balance today's regional demand (LP) against nearest-site; the demo region is
    written first when the region tables are empty."""
    reg = region.load_region(factory)
    base, lp = region.nearest_site(reg), region.balance_region(reg)
    return {"districts": reg.districts, "sites": {c: {k: v for k, v in s.items()} for c, s in reg.sites.items()},
            "nearest_site": base.summary(), "lp": lp.summary(),
            "_objects": {"region": reg, "baseline": base, "lp": lp}}


def public(report: dict[str, Any]) -> dict[str, Any]:
    """The report without its ``_objects`` (JSON-ready)."""
    return {k: v for k, v in report.items() if k != "_objects"}


def patient_primary_care_option(factory: sessionmaker[Session], district: str | None,
                                disposition: str) -> dict[str, Any] | None:
    """For the patient answer: a community health centre that can see a non-urgent
    patient from ``district`` today ("the community health centre in your district can
    see you today"), or None.

    Safe to call from a patient turn: reads only public site facts (name, address,
    travel minutes), never patient or staff data; returns None for emergencies, unknown
    districts, no free primary-care capacity, or any database problem (never raises).
    The region tables must exist (``assistant ops region`` seeds the demo region); this
    function does not write them.

    Returns:
        See :func:`assistant.operations.region.community_option`.
    """
    if not district or disposition not in region.NON_URGENT:
        return None
    try:
        reg = region.load_region(factory, seed_demo=False)
        return region.community_option(reg, district.strip().upper()[:16], disposition)
    except Exception:  # noqa: BLE001 - optional advice must never break a patient turn
        return None
