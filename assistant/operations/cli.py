"""``assistant ops forecast|plan|monitor|region|final``: operations reports for staff.

Rich tables by default, ``--json`` for machines. Wired into ``assistant.cli`` with
``app.add_typer(ops_app, name="ops")``.
"""

from __future__ import annotations

import json
from datetime import date
from typing import Annotated, Any

import typer

ops_app = typer.Typer(help="Hospital operations: forecast, plan, monitor, region (staff).",
                      no_args_is_help=True)


def _factory() -> Any:
    from assistant.operations.service import open_ops
    from assistant.settings import load_settings

    return open_ops(load_settings().resolved_hospital_db)


def _emit(report: dict[str, Any], as_json: bool) -> bool:
    from assistant.operations.service import public

    if as_json:
        typer.echo(json.dumps(public(report), ensure_ascii=False, indent=1, default=str))
    return as_json


def _table(title: str, columns: list[str], rows: list[list[Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=title)
    for col in columns:
        table.add_column(col)
    for row in rows:
        table.add_row(*[str(x) for x in row])
    Console().print(table)


JSON = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


@ops_app.command("forecast")
def forecast_cmd(
    department: Annotated[list[str] | None, typer.Option("--department", "-d", help="Department code(s).")] = None,
    days: Annotated[int, typer.Option(help="Days ahead (1-28).")] = 7,
    model: Annotated[str, typer.Option(help="ets | snaive")] = "ets",
    as_json: JSON = False,
) -> None:
    """Demand forecast per department and day (80 % prediction interval), EMERG per hour."""
    from assistant.operations.service import forecast_report

    rep = forecast_report(_factory(), departments=department, horizon=days, model=model)
    if _emit(rep, as_json):
        return
    fc = rep["forecasts"]
    first = next(iter(fc.values()))
    _table(f"forecast ({model}) after {rep['history_end']}: mean [80 % interval]",
           ["dept"] + [d[5:] for d in first["days"]],
           [[c] + [f"{m:.0f} [{lo:.0f}-{hi:.0f}]" for m, lo, hi in zip(f["mean"], f["lower"], f["upper"], strict=True)]
            for c, f in fc.items()])
    if rep["emerg_hourly"]:
        day0 = [r for r in rep["emerg_hourly"] if r["day"] == first["days"][0]]
        _table(f"EMERG arrivals per hour on {first['days'][0]}", ["hour", "mean", "80 % interval"],
               [[r["hour"], f"{r['mean']:.1f}", f"{r['lower']:.1f}-{r['upper']:.1f}"] for r in day0])


@ops_app.command("plan")
def plan_cmd(
    week_start: Annotated[str | None, typer.Option(help="First day YYYY-MM-DD (default: after the history).")] = None,
    bound: Annotated[str | None, typer.Option(help="upper | mean | lower forecast bound (policy: upper).")] = None,
    as_json: JSON = False,
) -> None:
    """Clinic sessions per department and day for next week vs the fixed timetable."""
    from assistant.errors import InputError
    from assistant.operations.service import plan_report

    try:
        start = date.fromisoformat(week_start) if week_start else None
    except ValueError:
        raise InputError(f"week start {week_start!r} is not a date (YYYY-MM-DD)") from None
    rep = plan_report(_factory(), week_start=start, bound=bound)
    if _emit(rep, as_json):
        return
    _table(f"sessions per day from {rep['week_start']} (plan / fixed)", ["dept", "Mon", "Tue", "Wed", "Thu", "Fri",
                                                                         "Sat", "Sun"],
           [[d] + [f"{p}/{f}" for p, f in zip(rep["sessions"][d], rep["fixed_sessions"][d], strict=True)]
            for d in rep["sessions"]])
    p, f = rep["plan"], rep["fixed"]
    _table(f"on the forecast ({rep['bound']} bound)", ["", "plan", "fixed timetable"], [
        ["sessions", p["sessions"], f["sessions"]],
        ["unmet demand (patients)", p["unmet"], f["unmet"]],
        ["carried to next week", p["carried"], f["carried"]],
        ["urgency-weighted mean wait (days)", p["weighted_wait_days"], f["weighted_wait_days"]],
        ["objective", p["objective"], f["objective"]],
    ])
    typer.echo(f"unmet demand {100 * rep['unmet_reduction']:.0f} % lower than the fixed timetable")
    for s in rep["shadow_prices"]:
        typer.echo(f"- {s['en']}")


@ops_app.command("monitor")
def monitor_cmd(
    days: Annotated[int | None, typer.Option(help="Days to chart (default 14).")] = None,
    as_json: JSON = False,
) -> None:
    """EWMA control charts of the quality metrics, with alerts and their reasons."""
    from assistant.operations.service import monitor_report

    rep = monitor_report(_factory(), days=days)
    if _emit(rep, as_json):
        return
    _table("quality metrics (EWMA charts)", ["metric", "reference mean", "sigma", "last value", "last EWMA",
                                              "alert days"],
           [[m, c["mean"], c["sigma"], c["last_value"], c["last_ewma"], len(c["alert_days"])]
            for m, c in rep["charts"].items()])
    if not rep["alerts"]:
        typer.echo("no alerts")
    for a in rep["alerts"]:
        typer.echo(f"ALERT {a['day']}: {a['en']}")


@ops_app.command("region")
def region_cmd(as_json: JSON = False) -> None:
    """Regional balancing (community health centres first) vs nearest-site."""
    from assistant.operations.service import region_report

    rep = region_report(_factory())
    if _emit(rep, as_json):
        return
    b, lp = rep["nearest_site"], rep["lp"]
    _table("travel minutes per district (P50 / P90)", ["district", "nearest-site", "balanced (LP)"],
           [[f"{d} {rep['districts'][d]['name_en']}", f"{b['travel_p50'][d]} / {b['travel_p90'][d]}",
             f"{lp['travel_p50'][d]} / {lp['travel_p90'][d]}"] for d in rep["districts"]])
    _table("occupancy (load / capacity)", ["site/service", "nearest-site", "balanced (LP)"],
           [[k, b["occupancy"][k], lp["occupancy"][k]] for k in b["occupancy"]])
    _table("summary", ["", "nearest-site", "balanced (LP)"], [
        ["P90 travel, all (min)", b["travel_p90_all"], lp["travel_p90_all"]],
        ["occupancy SD", b["occupancy_sd"], lp["occupancy_sd"]],
        ["max occupancy", b["occupancy_max"], lp["occupancy_max"]],
        ["patients over capacity", b["over_capacity"], lp["over_capacity"]],
        ["left for tomorrow", b["unserved"], lp["unserved"]],
    ])


@ops_app.command("final")
def final_cmd(
    signal_id: Annotated[str, typer.Argument(help="Demand signal id of the visit.")],
    disposition: Annotated[str, typer.Argument(help="Final disposition recorded by staff.")],
    staff_user: Annotated[str, typer.Option("--by", help="Staff user name.")],
    assistant_disposition: Annotated[str | None, typer.Option(help="The assistant's disposition, if the "
                                                                      "signal is not stored.")] = None,
) -> None:
    """Record the final disposition of a visit (for the agreement chart)."""
    from assistant.errors import InputError
    from assistant.operations.monitor import record_final_disposition

    try:
        out = record_final_disposition(_factory(), signal_id, disposition, staff_user=staff_user,
                                       assistant_disposition=assistant_disposition)
    except ValueError as exc:
        raise InputError(str(exc)) from None
    typer.echo(json.dumps(out))


@ops_app.command("history")
def history_cmd(
    days: Annotated[int | None, typer.Option(help="Days of history (default 180).")] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed.")] = None,
) -> None:
    """(Re)generate the seeded demand history of the demo hospital."""
    from assistant.errors import InputError
    from assistant.operations.history import ensure_history

    if days is not None and not 28 <= days <= 1000:
        raise InputError("days must be between 28 and 1000")
    ensure_history(_factory(), days=days, seed=seed, force=True)
    typer.echo("history written")
