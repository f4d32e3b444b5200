"""Matplotlib figures of the operations reports (staff tab and evaluation report).

Every function returns a ``matplotlib.figure.Figure`` built with the Agg backend (no
display needed); the caller shows or saves it.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from matplotlib.figure import Figure


def forecast_figure(hist: Any, fc: Any, weeks: int = 6) -> Figure:
    """History of the last ``weeks`` weeks and the forecast with its interval band."""
    from assistant.operations.forecast import daily_series

    y = daily_series(hist, fc.department)
    y = y[y.index > y.index[-1] - timedelta(weeks=weeks)]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    ax.plot(list(y.index), y.to_numpy(), color="0.3", lw=1.2, label="history")
    ax.plot(fc.days, fc.mean, color="tab:blue", lw=1.8, label=f"forecast ({fc.model})")
    ax.fill_between(fc.days, fc.lower, fc.upper, color="tab:blue", alpha=0.2,
                    label=f"{int(fc.interval * 100)} % interval")
    for d in fc.holidays:
        ax.axvline(d, color="tab:red", alpha=0.3)
    ax.set_title(f"{fc.department}: daily demand")
    ax.set_ylabel("patients / day")
    ax.legend(loc="upper left", fontsize=8)
    for label in ax.get_xticklabels():
        label.set_rotation(30)
    return fig


def plan_figure(plan: Any) -> Figure:
    """Total clinic sessions per day: plan vs fixed timetable, and unmet demand."""
    days = [plan.week_start + timedelta(days=i) for i in range(7)]
    p = [sum(v[i] for v in plan.sessions.values()) for i in range(7)]
    f = [sum(v[i] for v in plan.fixed_sessions.values()) for i in range(7)]
    fig = Figure(figsize=(8, 3.2), layout="constrained")
    ax = fig.add_subplot()
    x = range(7)
    ax.bar([i - 0.2 for i in x], f, width=0.4, label="fixed timetable", color="0.6")
    ax.bar([i + 0.2 for i in x], p, width=0.4, label="plan", color="tab:green")
    ax.set_xticks(list(x), [d.strftime("%a %d") for d in days])
    ax.set_ylabel("clinic sessions")
    ax.set_title(f"sessions per day; unmet demand {plan.fixed.unmet:.0f} -> {plan.plan.unmet:.0f} patients")
    ax.legend(fontsize=8)
    return fig


def monitor_figure(charts: list[Any]) -> Figure:
    """Small multiples: each metric's daily values, EWMA and control limits; alerts in red."""
    n = max(len(charts), 1)
    cols = 2
    rows = (n + 1) // cols
    fig = Figure(figsize=(9, 2.4 * rows), layout="constrained")
    for i, c in enumerate(charts):
        ax = fig.add_subplot(rows, cols, i + 1)
        ax.plot(c.days, c.values, "o", ms=3, color="0.5", label="daily")
        ax.plot(c.days, c.ewma, color="tab:blue", label="EWMA")
        ax.plot(c.days, c.upper, "--", color="tab:red", lw=0.8)
        ax.plot(c.days, c.lower, "--", color="tab:red", lw=0.8)
        bad = [(d, z) for d, z in zip(c.days, c.ewma, strict=True) if d in set(c.alerts)]
        if bad:
            ax.plot([d for d, _ in bad], [z for _, z in bad], "s", color="tab:red", ms=5)
        ax.set_title(c.metric, fontsize=9)
        ax.tick_params(labelsize=7)
        for label in ax.get_xticklabels():
            label.set_rotation(45)
    return fig


def region_figure(baseline: Any, lp: Any) -> Figure:
    """Occupancy per site: nearest-site vs balanced; P90 travel per district."""
    fig = Figure(figsize=(9, 3.2), layout="constrained")
    ax1, ax2 = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    keys = list(baseline.occupancy)
    x = range(len(keys))
    ax1.bar([i - 0.2 for i in x], [baseline.occupancy[k] for k in keys], 0.4, label="nearest-site", color="0.6")
    ax1.bar([i + 0.2 for i in x], [lp.occupancy[k] for k in keys], 0.4, label="balanced", color="tab:green")
    ax1.axhline(1.0, color="tab:red", lw=0.8)
    ax1.set_xticks(list(x), keys, rotation=60, fontsize=7)
    ax1.set_title("occupancy (load / capacity)", fontsize=9)
    ax1.legend(fontsize=7)
    ds = list(baseline.travel_p90)
    x2 = range(len(ds))
    ax2.bar([i - 0.2 for i in x2], [baseline.travel_p90[d] for d in ds], 0.4, color="0.6")
    ax2.bar([i + 0.2 for i in x2], [lp.travel_p90.get(d, 0) for d in ds], 0.4, color="tab:green")
    ax2.set_xticks(list(x2), ds, fontsize=8)
    ax2.set_title("P90 travel minutes per district", fontsize=9)
    return fig
