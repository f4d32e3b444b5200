"""``assistant eval operations``: forecast, plan, monitoring and region figures.

Everything runs on a scratch copy of the seeded demo hospital (seed 7, clinics from
Monday 2026-12-07) with the seeded history (policy seed) of 180 days before it plus
the actual week that follows (held out: never used for fitting or planning):

1. **forecast** - rolling-origin backtest (8 weekly origins, horizon 7 days) of ETS vs
   seasonal naive per department, MASE and MAPE, interval coverage; EMERG per hour.
2. **plan** - next week's sessions from the forecast's upper 80 % bound vs the fixed
   timetable, scored on that forecast week and on the held-out actual week.
3. **monitor** - the seeded history: emergency share x1.5 on the last two days must be
   flagged within two days, the unshifted last week must raise no alert; then the same
   on ``seeds`` fresh histories (seeds 0..n-1; lambda and L were chosen on seeds 100-139).
4. **region** - the demo region balanced by the LP vs nearest-site.
"""

from __future__ import annotations

import json
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from assistant.operations import capacity, forecast, history, monitor, plots, region

WEEK_START = date(2026, 12, 7)  # a Monday; no Chinese public holiday in the 10 weeks before


def _split(hist: history.History, start: date) -> tuple[history.History, history.History]:
    def part(before: bool) -> history.History:
        f = (lambda d: d < start) if before else (lambda d: d >= start)
        return history.History(
            daily=hist.daily[hist.daily.day.map(f)].reset_index(drop=True),
            hourly=hist.hourly[hist.hourly.day.map(f)].reset_index(drop=True),
            census=hist.census[hist.census.day.map(f)].reset_index(drop=True),
            finals=hist.finals[hist.finals.day.map(f)].reset_index(drop=True))
    return part(True), part(False)


def run_operations_eval(out: str | Path, *, origins: int = 8, seeds: int = 30,
                        departments: list[str] | None = None) -> dict[str, Any]:
    """Run the four parts; write ``operations.json`` and PNG plots to ``out``.

    Args:
        out: output folder (created).
        origins: backtest origins (weeks).
        seeds: fresh histories for the monitoring detection / false-alarm rates.
        departments: restrict the forecast backtest (default: all).

    Returns:
        The figures (also written as JSON).
    """
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    policy = history.kb_yaml("ops_policy.yaml")
    res: dict[str, Any] = {}
    timings: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "ops.sqlite"
        build_demo_hospital(db, seed=7, start_date=WEEK_START)
        factory = open_db(db, create=False)
        bases = history.department_bases(factory, policy)
        days = int(policy["history"]["days"])
        full = history.simulate_history(bases, WEEK_START + timedelta(days=6), days=days + 7,
                                        seed=int(policy["history"]["seed"]), policy=policy)
        train, actual = _split(full, WEEK_START)

        t0 = time.perf_counter()
        bt = forecast.backtest(train, departments=departments, origins=origins)
        timings["forecast_backtest_s"] = time.perf_counter() - t0
        res["forecast"] = {
            "departments": len(bt["departments"]), "origins": origins, "horizon_days": 7,
            "mase": {m: round(v["mase"], 4) for m, v in bt["mean"].items()},
            "mape_pct": {m: round(v["mape"], 2) for m, v in bt["mean"].items()},
            "coverage_80": {m: round(v["coverage"], 3) for m, v in bt["mean"].items()},
            "mase_reduction": round(bt["mase_reduction"], 4),
            "departments_better": sum(v["ets"]["mase"] < v["snaive"]["mase"] for v in bt["departments"].values()),
            "hourly_emerg": {k: round(v, 4) for k, v in (bt["hourly_emerg"] or {}).items()},
            "per_department": {c: {m: round(v[m]["mase"], 3) for m in v} for c, v in bt["departments"].items()},
        }

        t0 = time.perf_counter()
        fc = forecast.forecast_departments(train, horizon=7)
        tt = capacity.load_timetable(factory, WEEK_START)
        plan = capacity.plan_week(tt, capacity.demand_from_forecasts(fc, policy["plan"]["bound"]), policy=policy)
        actual_demand = {c: [float(x) for x in forecast.daily_series(actual, c).to_numpy()[:7]]
                         for c in tt.departments}
        on_actual_fixed, *_ = capacity.score_timetable(tt, actual_demand, {d.id: set(d.fixed) for d in tt.doctors},
                                                       policy)
        on_actual_plan, *_ = capacity.score_timetable(
            tt, actual_demand, {k: set(v) for k, v in plan.doctor_sessions.items()}, policy)
        timings["plan_s"] = time.perf_counter() - t0
        red = (lambda a, b: round(1 - a / b, 4) if b else 0.0)
        res["plan"] = {
            "week_start": WEEK_START.isoformat(), "bound": policy["plan"]["bound"],
            "sessions": {"plan": plan.plan.sessions, "fixed": plan.fixed.sessions},
            "forecast_week": {"plan": vars(plan.plan), "fixed": vars(plan.fixed),
                              "unmet_reduction": round(plan.unmet_reduction, 4),
                              "weighted_wait_reduction": red(plan.plan.weighted_wait_days,
                                                             plan.fixed.weighted_wait_days)},
            "actual_week": {"plan": vars(on_actual_plan), "fixed": vars(on_actual_fixed),
                            "unmet_reduction": red(on_actual_plan.unmet, on_actual_fixed.unmet),
                            "weighted_wait_reduction": red(on_actual_plan.weighted_wait_days,
                                                           on_actual_fixed.weighted_wait_days)},
            "shadow_prices": [s["en"] for s in plan.shadow_prices],
        }

        t0 = time.perf_counter()
        res["monitor"] = _monitor_eval(train, bases, policy, seeds)
        timings["monitor_s"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        reg = region.demo_region()
        base, lp = region.nearest_site(reg), region.balance_region(reg)
        timings["region_s"] = time.perf_counter() - t0
        res["region"] = {"nearest_site": base.summary(), "lp": lp.summary(),
                         "p90_travel_lower": lp.travel_p90_all < base.travel_p90_all,
                         "occupancy_sd_lower": lp.occupancy_sd < base.occupancy_sd}
        factory.kw["bind"].dispose()

        plots.forecast_figure(train, fc["EMERG"]).savefig(out / "ops_forecast_emerg.png", dpi=90)
        plots.forecast_figure(train, fc["CARDIO"]).savefig(out / "ops_forecast_cardio.png", dpi=90)
        plots.plan_figure(plan).savefig(out / "ops_plan.png", dpi=90)
        charts, _ = monitor.monitor(monitor.daily_metrics(
            monitor.inject_emergency_shift(train, WEEK_START - timedelta(days=2))), policy=policy)
        plots.monitor_figure(charts).savefig(out / "ops_monitor_shift.png", dpi=90)
        plots.region_figure(base, lp).savefig(out / "ops_region.png", dpi=90)
    res["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    res["goals"] = {
        "forecast_mase_10pct_lower": res["forecast"]["mase_reduction"] >= 0.10,
        "plan_unmet_20pct_lower": res["plan"]["forecast_week"]["unmet_reduction"] >= 0.20,
        "region_p90_or_spread_lower": res["region"]["p90_travel_lower"] or res["region"]["occupancy_sd_lower"],
        "monitor_shift_flagged_2d": res["monitor"]["seeded"]["shift_flagged_within_2_days"],
        "monitor_clean_week_no_alert": res["monitor"]["seeded"]["clean_week_alerts"] == 0,
    }
    (out / "operations.json").write_text(json.dumps(res, indent=1, default=str), encoding="utf-8")
    return res


def _detects(hist: history.History, end: date, policy: dict[str, Any]) -> tuple[bool, int, int]:
    """(shift of the last two days flagged by ``end``, alerts in the clean last week, days to flag)."""
    _, clean = monitor.monitor(monitor.daily_metrics(hist), policy=policy, monitor_days=7)
    shifted = monitor.inject_emergency_shift(hist, end - timedelta(days=1), days=2)
    _, alerts = monitor.monitor(monitor.daily_metrics(shifted), policy=policy, monitor_days=7)
    hits = [a for a in alerts if a.metric == "emergency_share" and a.first_day >= end - timedelta(days=1)]
    first = min((a.first_day for a in hits), default=None)
    delay = (first - (end - timedelta(days=1))).days + 1 if first else -1
    return bool(hits), len(clean), delay


def _monitor_eval(train: history.History, bases: dict[str, float], policy: dict[str, Any], seeds: int
                  ) -> dict[str, Any]:
    end = max(train.daily.day)
    flagged, clean_alerts, delay = _detects(train, end, policy)
    out: dict[str, Any] = {"lambda": policy["monitor"]["lambda"], "L": policy["monitor"]["L"],
                           "seeded": {"shift_flagged_within_2_days": flagged, "days_to_flag": delay,
                                      "clean_week_alerts": clean_alerts}}
    det = fa = 0
    for seed in range(seeds):
        h = history.simulate_history(bases, end, days=90, seed=seed, policy=policy)
        f, a, _ = _detects(h, end, policy)
        det += f
        fa += a > 0
    out["seeds"] = {"n": seeds, "detected_within_2_days": round(det / seeds, 3) if seeds else None,
                    "clean_weeks_with_any_alert": round(fa / seeds, 3) if seeds else None}
    return out


def markdown(res: dict[str, Any]) -> str:
    """The report section (Markdown)."""
    f, p, m, r = res["forecast"], res["plan"], res["monitor"], res["region"]
    fw, aw = p["forecast_week"], p["actual_week"]
    lines = [
        (f"Scratch demo hospital, seeded history, week from {p['week_start']} held out. Goals: "
        + ", ".join(f"{k}: {'yes' if v else 'NO'}" for k, v in res["goals"].items())),
        "",
        (f"**Forecast** ({f['departments']} departments, {f['origins']} rolling origins x 7 days): "
        f"MASE ETS {f['mase']['ets']:.3f} vs seasonal naive {f['mase']['snaive']:.3f} "
        f"(**{100 * f['mase_reduction']:.1f} % lower**; ETS better in {f['departments_better']} departments); "
        f"MAPE {f['mape_pct']['ets']:.1f} % vs {f['mape_pct']['snaive']:.1f} %; 80 % interval coverage "
        f"{f['coverage_80']['ets']:.2f}. EMERG per hour: MASE {f['hourly_emerg'].get('ets_topdown_mase', 0):.3f} "
        f"vs {f['hourly_emerg'].get('snaive_mase', 0):.3f}."),
        "",
        (f"**Plan** ({p['sessions']['plan']} sessions, same as the timetable; demand = forecast {p['bound']} bound): "
        f"unmet {fw['fixed']['unmet']:.0f} -> {fw['plan']['unmet']:.0f} patients "
        f"(**{100 * fw['unmet_reduction']:.0f} % less**), urgency-weighted wait {fw['fixed']['weighted_wait_days']:.3f}"
        f" -> {fw['plan']['weighted_wait_days']:.3f} days, carried to next week {fw['fixed']['carried']:.0f} -> "
        f"{fw['plan']['carried']:.0f}. On the held-out actual week: unmet {aw['fixed']['unmet']:.0f} -> "
        f"{aw['plan']['unmet']:.0f} ({100 * aw['unmet_reduction']:.0f} % less), weighted wait "
        f"{aw['fixed']['weighted_wait_days']:.3f} -> {aw['plan']['weighted_wait_days']:.3f} days."),
        *[f"  - {s}" for s in p["shadow_prices"][:3]],
        "",
        (f"**Monitor** (EWMA lambda {m['lambda']}, L {m['L']}): seeded history: emergency share x1.5 for two days "
        f"flagged: {m['seeded']['shift_flagged_within_2_days']} (day {m['seeded']['days_to_flag']}); alerts in the "
        f"unshifted last week: {m['seeded']['clean_week_alerts']}. Over {m['seeds']['n']} fresh seeds: detected "
        f"within two days {m['seeds']['detected_within_2_days']}, clean weeks with any alert (6 charts x 7 days) "
        f"{m['seeds']['clean_weeks_with_any_alert']}."),
        "",
        (f"**Region**: P90 travel {r['nearest_site']['travel_p90_all']} -> {r['lp']['travel_p90_all']} min; occupancy SD "
        f"{r['nearest_site']['occupancy_sd']} -> {r['lp']['occupancy_sd']}, max {r['nearest_site']['occupancy_max']} -> "
        f"{r['lp']['occupancy_max']}; patients over capacity {r['nearest_site']['over_capacity']} -> "
        f"{r['lp']['over_capacity']}."),
        "",
        "Plots: ops_forecast_emerg.png, ops_forecast_cardio.png, ops_plan.png, ops_monitor_shift.png, ops_region.png",
    ]
    return "\n".join(lines)
