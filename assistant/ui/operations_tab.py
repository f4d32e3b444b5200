"""Staff-tab pages for hospital operations: forecast, plan, monitor, region (with plots).

:func:`operations_panel` adds the pages inside the staff console of
:mod:`assistant.ui.app`; every handler first calls the console's ``require`` (login
check + audit), so the pages are staff-only like the rest of the console. Handlers have
no API name (private).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from assistant.operations.models import DISPOSITIONS
from assistant.settings import Settings


def _reports(settings: Settings) -> Any:
    from assistant.operations import service

    return service, service.open_ops(settings.resolved_hospital_db)


def forecast_view(settings: Settings, department: str | None) -> tuple[Any, pd.DataFrame, str]:
    """(figure, table, note) for one department's 7-day forecast."""
    from assistant.operations.plots import forecast_figure

    service, factory = _reports(settings)
    dept = (department or "EMERG").strip().upper()
    rep = service.forecast_report(factory, departments=[dept], hourly=False)
    fc = rep["_objects"]["forecasts"][dept]
    table = pd.DataFrame({"day": [d.isoformat() for d in fc.days], "mean": fc.mean, "lower (80 %)": fc.lower,
                          "upper (80 %)": fc.upper}).round(1)
    note = f"{dept}: ETS forecast after {rep['history_end']}" + (
        f"; public holidays: {', '.join(d.isoformat() for d in fc.holidays)}" if fc.holidays else "")
    return forecast_figure(rep["_objects"]["history"], fc), table, note


def plan_view(settings: Settings) -> tuple[Any, pd.DataFrame, str]:
    """(figure, sessions table, summary Markdown) of next week's plan vs the timetable."""
    from assistant.operations.plots import plan_figure

    service, factory = _reports(settings)
    rep = service.plan_report(factory)
    plan = rep["_objects"]["plan"]
    days = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"]
    table = pd.DataFrame([[d] + [f"{p}/{f}" for p, f in zip(rep["sessions"][d], rep["fixed_sessions"][d], strict=True)]
                          for d in rep["sessions"]], columns=["dept (plan/fixed)"] + days)
    p, f = rep["plan"], rep["fixed"]
    md = (f"**Week from {rep['week_start']}** (forecast {rep['bound']} bound, {p['sessions']} sessions as now): "
          f"unmet demand {f['unmet']:.0f} → {p['unmet']:.0f} patients "
          f"({100 * rep['unmet_reduction']:.0f} % less); urgency-weighted wait "
          f"{f['weighted_wait_days']:.3f} → {p['weighted_wait_days']:.3f} days.\n\n"
          + "\n".join(f"- {s['en']} / {s['zh']}" for s in rep["shadow_prices"]))
    return plan_figure(plan), table, md


def monitor_view(settings: Settings) -> tuple[Any, str]:
    """(figure, alerts Markdown) of the quality control charts."""
    from assistant.operations.plots import monitor_figure

    service, factory = _reports(settings)
    rep = service.monitor_report(factory)
    alerts = rep["alerts"]
    md = "\n".join(f"- **{a['day']}** {a['en']} / {a['zh']}" for a in alerts) if alerts else "No alerts. 无告警。"
    return monitor_figure(rep["_objects"]["charts"]), md


def region_view(settings: Settings) -> tuple[Any, pd.DataFrame, str]:
    """(figure, per-district table, summary Markdown) of the regional balance."""
    from assistant.operations.plots import region_figure

    service, factory = _reports(settings)
    rep = service.region_report(factory)
    b, lp = rep["nearest_site"], rep["lp"]
    table = pd.DataFrame([[d, v["name_en"], b["travel_p50"].get(d), b["travel_p90"].get(d), lp["travel_p50"].get(d),
                           lp["travel_p90"].get(d)] for d, v in rep["districts"].items()],
                         columns=["district", "name", "nearest P50", "nearest P90", "balanced P50", "balanced P90"])
    md = (f"Occupancy SD {b['occupancy_sd']} → {lp['occupancy_sd']}; max {b['occupancy_max']} → "
          f"{lp['occupancy_max']}; patients over capacity {b['over_capacity']:.0f} → {lp['over_capacity']:.0f}; "
          f"P90 travel {b['travel_p90_all']} → {lp['travel_p90_all']} min.")
    return region_figure(rep["_objects"]["baseline"], rep["_objects"]["lp"]), table, md


def record_final(settings: Settings, signal_id: str, final: str, actor: str, assistant: str | None) -> str:
    """Record a final disposition; returns a one-line result (errors as text, no crash)."""
    from assistant.operations.monitor import record_final_disposition

    _, factory = _reports(settings)
    try:
        out = record_final_disposition(factory, signal_id or "", final or "", staff_user=actor,
                                       assistant_disposition=assistant or None)
    except ValueError as exc:
        return f"Not recorded: {exc}"
    return (f"Recorded: assistant {out['assistant_disposition']} / final {out['final_disposition']} "
            f"({'agree' if out['agrees'] == 'true' else 'differ'}).")


def operations_panel(gr: Any, settings: Settings, auth: Any, require: Any) -> None:
    """Add the operations pages to the staff console.

    Args:
        gr: the gradio module.
        settings: runtime settings (hospital database).
        auth: the console's per-session login state.
        require: ``require(auth, action, request) -> user``; raises ``gr.Error`` when not
            logged in, and audits the action.
    """
    with gr.Accordion("Operations 运营: forecast, plan, monitor, region", open=False):
        with gr.Tab("Forecast 预测"):
            dept = gr.Textbox(label="Department code", value="EMERG")
            f_btn = gr.Button("Forecast", elem_id="ops-forecast")
            f_note, f_plot, f_table = gr.Markdown(), gr.Plot(), gr.Dataframe(interactive=False)
        with gr.Tab("Plan 排班"):
            p_btn = gr.Button("Plan next week (about a minute)", elem_id="ops-plan")
            p_md, p_plot, p_table = gr.Markdown(), gr.Plot(), gr.Dataframe(interactive=False)
        with gr.Tab("Monitor 质控"):
            m_btn = gr.Button("Check control charts", elem_id="ops-monitor")
            m_md, m_plot = gr.Markdown(), gr.Plot()
            with gr.Row():
                sig = gr.Textbox(label="Demand signal id")
                final = gr.Dropdown(list(DISPOSITIONS), label="Final disposition")
                asst = gr.Dropdown([""] + list(DISPOSITIONS), label="Assistant's (if not stored)", value="")
            r_btn = gr.Button("Record final disposition", elem_id="ops-final")
            r_md = gr.Markdown()
        with gr.Tab("Region 区域"):
            g_btn = gr.Button("Balance the region", elem_id="ops-region")
            g_md, g_plot, g_table = gr.Markdown(), gr.Plot(), gr.Dataframe(interactive=False)

    def safe(fn: Any, n: int) -> Any:
        try:
            return fn()
        except Exception as exc:  # noqa: BLE001 - shown to staff, never a crash
            from assistant.errors import AssistantError

            msg = str(exc) if isinstance(exc, AssistantError) else type(exc).__name__
            raise gr.Error(f"Operations report failed: {msg}") from None

    def do_forecast(d: Any, authed: Any, request: gr.Request) -> Any:
        require(authed, "ops_forecast", request)
        fig, table, note = safe(lambda: forecast_view(settings, d if isinstance(d, str) else None), 3)
        return note, fig, table

    def do_plan(authed: Any, request: gr.Request) -> Any:
        require(authed, "ops_plan", request)
        fig, table, md = safe(lambda: plan_view(settings), 3)
        return md, fig, table

    def do_monitor(authed: Any, request: gr.Request) -> Any:
        require(authed, "ops_monitor", request)
        fig, md = safe(lambda: monitor_view(settings), 2)
        return md, fig

    def do_final(s: Any, f: Any, a: Any, authed: Any, request: gr.Request) -> Any:
        actor = require(authed, "ops_final_disposition", request)
        return record_final(settings, s if isinstance(s, str) else "", f if isinstance(f, str) else "", actor,
                            a if isinstance(a, str) else None)

    def do_region(authed: Any, request: gr.Request) -> Any:
        require(authed, "ops_region", request)
        fig, table, md = safe(lambda: region_view(settings), 3)
        return md, fig, table

    for fn in (do_forecast, do_plan, do_monitor, do_final, do_region):
        fn.__annotations__["request"] = gr.Request
    f_btn.click(do_forecast, [dept, auth], [f_note, f_plot, f_table], api_name=False)
    p_btn.click(do_plan, [auth], [p_md, p_plot, p_table], api_name=False)
    m_btn.click(do_monitor, [auth], [m_md, m_plot], api_name=False)
    r_btn.click(do_final, [sig, final, asst, auth], [r_md], api_name=False)
    g_btn.click(do_region, [auth], [g_md, g_plot, g_table], api_name=False)
