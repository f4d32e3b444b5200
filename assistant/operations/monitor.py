"""Quality monitoring: EWMA control charts over the daily operations metrics, and the
staff's final-disposition record.

Metrics per local day (public holidays are not charted: a known, assignable cause):

* ``emergency_share`` - emergencies (triage level 1-2) / all triaged demand;
* ``wait_hours`` - mean hours from triage to the booked slot;
* ``cancel_rate`` / ``no_show_rate`` - cancellations / bookings, no-shows / kept bookings;
* ``occupancy`` - beds occupied / beds at the 07:00 census;
* ``agreement`` - share of visits whose staff-recorded final disposition equals the
  assistant's disposition.

Chart: the EWMA chart of Montgomery, *Introduction to Statistical Quality Control*, 8th
ed. (2019), section 9.2: z_i = lambda x_i + (1 - lambda) z_(i-1), z_0 = mu_0, limits
mu_0 +/- L sigma sqrt(lambda / (2 - lambda) (1 - (1 - lambda)^(2i))), with mu_0 and sigma
the mean and standard deviation of the metric over a reference window just before the
monitored days. Each metric alerts only in its bad direction (``ops_policy.yaml``).
lambda and L were chosen on simulated histories (seeds 100-139, see
``eval/operations/README.md``), not on the evaluation seeds.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from assistant.hospital.db import write_session
from assistant.hospital.models import DemandSignalRow
from assistant.operations.history import History, china_holidays, ensure_ops_tables, kb_yaml
from assistant.operations.models import DISPOSITIONS, FinalDisposition

METRICS = ("emergency_share", "wait_hours", "cancel_rate", "no_show_rate", "occupancy", "agreement")


def daily_metrics(hist: History) -> pd.DataFrame:
    """One row per local day: the six metrics, ``triages`` and ``holiday``.

    Days without data for a metric hold NaN (not charted).
    """
    d = hist.daily.groupby("day").sum(numeric_only=True)
    out = pd.DataFrame(index=sorted(d.index))
    out["triages"] = d["arrivals"]
    out["emergency_share"] = d["emergencies"] / d["arrivals"].where(d["arrivals"] > 0)
    out["wait_hours"] = d["wait_hours_sum"] / d["booked"].where(d["booked"] > 0)
    out["cancel_rate"] = d["cancelled"] / d["booked"].where(d["booked"] > 0)
    kept = (d["booked"] - d["cancelled"]).where(lambda s: s > 0)
    out["no_show_rate"] = d["no_shows"] / kept
    if len(hist.census):
        c = hist.census.set_index("day")
        out["occupancy"] = (c["beds_occupied"] / c["beds_total"]).reindex(out.index)
    else:
        out["occupancy"] = np.nan
    if len(hist.finals):
        f = hist.finals.assign(ok=hist.finals.assistant_disposition == hist.finals.final_disposition)
        out["agreement"] = f.groupby("day").ok.mean().reindex(out.index)
    else:
        out["agreement"] = np.nan
    hol = china_holidays(min(out.index), max(out.index)) if len(out) else set()
    out["holiday"] = [day in hol for day in out.index]
    return out


@dataclass
class Chart:
    """One metric's EWMA chart over the monitored days."""

    metric: str
    days: list[date]
    values: list[float]
    ewma: list[float]
    lower: list[float]
    upper: list[float]
    mean: float
    sigma: float
    direction: str
    alerts: list[date] = field(default_factory=list)


@dataclass
class Alert:
    """An out-of-control signal with its reason in words."""

    metric: str
    day: date
    first_day: date
    value: float
    ewma: float
    limit: float
    reference: float
    en: str
    zh: str

    def as_dict(self) -> dict[str, Any]:
        d = dict(vars(self))
        d["day"], d["first_day"] = self.day.isoformat(), self.first_day.isoformat()
        return {k: (round(v, 4) if isinstance(v, float) else v) for k, v in d.items()}


def ewma_chart(values: np.ndarray, mean: float, sigma: float, lam: float, L: float
               ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """EWMA statistic and exact limits (Montgomery 2019, eq. 9.22-9.24).

    NaN values (holidays, no data) leave the statistic unchanged and do not advance i.

    Returns:
        (z, lower, upper), arrays like ``values``.

    Raises:
        ValueError: lambda not in (0, 1] or L <= 0.
    """
    if not 0 < lam <= 1 or L <= 0:
        raise ValueError("lambda must be in (0, 1] and L > 0")
    z, lo, hi = np.empty(len(values)), np.empty(len(values)), np.empty(len(values))
    prev, i = mean, 0
    for t, x in enumerate(values):
        if np.isfinite(x):
            i += 1
            prev = lam * x + (1 - lam) * prev
        width = L * sigma * np.sqrt(lam / (2 - lam) * (1 - (1 - lam) ** (2 * max(i, 1))))
        z[t], lo[t], hi[t] = prev, mean - width, mean + width
    return z, lo, hi


def monitor(metrics: pd.DataFrame, *, policy: dict[str, Any] | None = None, monitor_days: int | None = None,
            reference_days: int | None = None) -> tuple[list[Chart], list[Alert]]:
    """Chart every metric over the last ``monitor_days`` days against the reference window.

    Args:
        metrics: from :func:`daily_metrics` (index: local dates, ascending).
        policy: ``ops_policy.yaml`` contents (``monitor``: lambda, L, windows, metrics).

    Returns:
        (charts, alerts); one alert per metric and run of out-of-control days (the
        latest day of the run), newest first.

    Raises:
        ValueError: fewer days than reference + monitored windows need (at least 14 + 1).
    """
    p = (policy or kb_yaml("ops_policy.yaml"))["monitor"]
    lam, L = float(p["lambda"]), float(p["L"])
    mdays = monitor_days or int(p["monitor_days"])
    rdays = reference_days or int(p["reference_days"])
    if len(metrics) < mdays + 14:
        raise ValueError(f"need at least {mdays + 14} days of metrics, have {len(metrics)}")
    ref = metrics.iloc[max(0, len(metrics) - mdays - rdays): len(metrics) - mdays]
    ref = ref[~ref.holiday]
    mon = metrics.iloc[len(metrics) - mdays:]
    charts, alerts = [], []
    for name in METRICS:
        spec = p["metrics"][name]
        r = ref[name].dropna()
        if len(r) < 7:
            continue
        mu, sd = float(r.mean()), float(r.std(ddof=1)) or 1e-9
        vals = mon[name].where(~mon.holiday).to_numpy(dtype=float)
        charted = vals
        if spec.get("ar1"):
            # autocorrelated metric (bed census): chart the one-step AR(1) forecast
            # residuals around mu (Montgomery 2019, section 10.4), expressed back on the
            # metric's scale as mu + residual
            rv = r.to_numpy()
            phi = float(np.clip(np.corrcoef(rv[:-1], rv[1:])[0, 1], 0.0, 0.99)) if len(rv) > 3 else 0.0
            prev = metrics[name].iloc[len(metrics) - mdays - 1: len(metrics) - 1].to_numpy(dtype=float)
            prev = np.where(np.isfinite(prev), prev, mu)
            charted = mu + (vals - mu) - phi * (prev - mu)
            resid = rv[1:] - mu - phi * (rv[:-1] - mu)
            sd = float(np.std(resid, ddof=1)) or 1e-9
        z, lo, hi = ewma_chart(charted, mu, sd, lam, L)
        bad = (z > hi) if spec["direction"] == "up" else (z < lo)
        bad &= np.isfinite(vals)
        days = list(mon.index)
        chart = Chart(name, days, vals.tolist(), z.tolist(), lo.tolist(), hi.tolist(), mu, sd,
                      spec["direction"], [d for d, b in zip(days, bad, strict=True) if b])
        charts.append(chart)
        run_start = None
        for i, b in enumerate(bad):
            if b and run_start is None:
                run_start = i
            if run_start is not None and (not b or i == len(bad) - 1):
                last = i if b else i - 1
                alerts.append(_alert(name, spec, days[last], days[run_start], vals[last], z[last],
                                     hi[last] if spec["direction"] == "up" else lo[last], mu))
                run_start = None
    alerts.sort(key=lambda a: a.day, reverse=True)
    return charts, alerts


def _alert(name: str, spec: dict[str, Any], day: date, first: date, value: float, z: float, limit: float,
           mu: float) -> Alert:
    word_en, word_zh = ("above the upper", "高于上") if spec["direction"] == "up" else ("below the lower", "低于下")
    change = (value - mu) / mu * 100 if mu else 0.0
    en = (f"{spec['en']}: EWMA {z:.3f} {word_en} control limit {limit:.3f} since {first:%d %b} "
          f"(reference mean {mu:.3f}; {day:%d %b} value {value:.3f}, {change:+.0f} %)")
    zh = (f"{spec['zh']}：EWMA {z:.3f} 自{first:%m-%d}起{word_zh}控制限 {limit:.3f}"
          f"（基线均值 {mu:.3f}；{day:%m-%d} 当日 {value:.3f}，{change:+.0f}%）")
    return Alert(name, day, first, float(value), float(z), float(limit), mu, en, zh)


def inject_emergency_shift(hist: History, start: date, days: int = 2, factor: float = 1.5) -> History:
    """A copy of ``hist`` whose emergency share is ``factor`` times higher on ``days`` days.

    Emergencies of EMERG are scaled on those days (total triages unchanged), so the
    emergency share of all triages rises by ``factor`` (evaluation of the charts).
    """
    daily = hist.daily.copy()
    from datetime import timedelta

    span = {start + timedelta(days=i) for i in range(days)}
    rows = daily.day.isin(span) & (daily.department_code == "EMERG")
    daily.loc[rows, "emergencies"] = np.minimum(
        np.round(daily.loc[rows, "emergencies"] * factor).astype(int), daily.loc[rows, "arrivals"])
    return History(daily=daily, hourly=hist.hourly, census=hist.census, finals=hist.finals)


def record_final_disposition(factory: sessionmaker[Session], signal_id: str, final: str, *, staff_user: str,
                             assistant_disposition: str | None = None) -> dict[str, str]:
    """Staff record the disposition decided after the visit (staff-only; no patient text).

    The assistant's disposition and the department are read from the stored demand
    signal (``demand_signals``) unless ``assistant_disposition`` is given. Recording
    again for the same signal replaces the earlier record.

    Args:
        factory: hospital database sessions.
        signal_id: the demand signal id (as shown on the booking).
        final: one of :data:`~assistant.operations.models.DISPOSITIONS`.
        staff_user: the staff member's user name (audit).
        assistant_disposition: override when the signal is not stored.

    Returns:
        ``{"signal_id", "assistant_disposition", "final_disposition", "agrees"}``.

    Raises:
        ValueError: unknown disposition, empty ids, or an unknown signal without
            ``assistant_disposition``.
    """
    signal_id, staff_user = (signal_id or "").strip()[:64], (staff_user or "").strip()[:64]
    if not signal_id or not staff_user:
        raise ValueError("signal id and staff user are required")
    if final not in DISPOSITIONS:
        raise ValueError(f"unknown disposition {final!r}; choose one of {', '.join(DISPOSITIONS)}")
    ensure_ops_tables(factory)
    with write_session(factory) as s:
        dept = ""
        row = s.get(DemandSignalRow, signal_id)
        if row is not None:
            try:
                payload = json.loads(row.payload)
            except ValueError:
                payload = {}
            dept = str(payload.get("department", ""))[:10]
            assistant_disposition = assistant_disposition or payload.get("disposition")
        if assistant_disposition not in DISPOSITIONS:
            raise ValueError(f"no stored demand signal {signal_id!r}: give the assistant's disposition")
        rec = s.get(FinalDisposition, signal_id)
        if rec is None:
            rec = FinalDisposition(signal_id=signal_id)
            s.add(rec)
        rec.department_code = dept
        rec.assistant_disposition = str(assistant_disposition)
        rec.final_disposition = final
        rec.recorded_by = staff_user
        from assistant.hospital.models import utcnow

        rec.recorded_at = utcnow()
    return {"signal_id": signal_id, "assistant_disposition": str(assistant_disposition),
            "final_disposition": final, "agrees": str(assistant_disposition == final).lower()}


def recent_final_dispositions(factory: sessionmaker[Session], limit: int = 20) -> list[dict[str, Any]]:
    """The latest staff-recorded final dispositions (seeded history excluded)."""
    ensure_ops_tables(factory)
    with factory() as s:
        rows = s.scalars(select(FinalDisposition).where(~FinalDisposition.signal_id.like("hist-%"))
                         .order_by(FinalDisposition.recorded_at.desc()).limit(limit)).all()
    return [{"signal_id": r.signal_id, "department": r.department_code, "assistant": r.assistant_disposition,
             "final": r.final_disposition, "by": r.recorded_by, "at": r.recorded_at.isoformat()} for r in rows]
