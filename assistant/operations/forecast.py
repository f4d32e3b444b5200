"""Demand forecasts per department and day (per hour for EMERG), with backtests.

Models
------
* ``snaive`` - seasonal naive, season 7 days (hourly: 168 h): the baseline.
* ``ets`` - exponential smoothing ETS(A,N,A): additive level and weekly season
  (statsmodels Holt-Winters; Hyndman & Athanasopoulos, *Forecasting: Principles and
  Practice*, 3rd ed., ch. 8), prediction intervals from the analytic ETS variance. Public holidays (``holidays`` package, China) are handled
  multiplicatively: holiday days are replaced by their weekday-adjusted level before
  fitting, and forecasts on holidays are scaled by the department's holiday ratio
  (median actual / fitted on past holidays; 1 if none).
* EMERG per hour: the daily ETS forecast split by the hour-of-day shares of the same
  weekday over the last 8 weeks (top-down).

Accuracy: rolling-origin backtest (origins one week apart, horizon 7 days), MASE scaled
by the in-sample seasonal-naive MAE (Hyndman & Koehler, Int J Forecasting 2006) and MAPE
(days with zero actuals left out).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from datetime import date, timedelta
from statistics import NormalDist
from typing import Any

import numpy as np
import pandas as pd

from assistant.operations.history import EMERG, History, china_holidays

MODELS = ("ets", "snaive")


@dataclass
class Forecast:
    """Forecast of one department: ``days`` (local dates) with mean and interval bounds."""

    department: str
    model: str
    days: list[date]
    mean: list[float]
    lower: list[float]
    upper: list[float]
    interval: float
    holidays: list[date] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {"department": self.department, "model": self.model, "interval": self.interval,
                "days": [d.isoformat() for d in self.days], "mean": _r(self.mean),
                "lower": _r(self.lower), "upper": _r(self.upper),
                "holidays": [d.isoformat() for d in self.holidays]}


def _r(xs: list[float]) -> list[float]:
    return [round(float(x), 1) for x in xs]


def daily_series(hist: History, department: str) -> pd.Series:
    """Daily arrivals of ``department`` as a gap-free series indexed by date (0 filled).

    Raises:
        ValueError: no history for the department.
    """
    d = hist.daily[hist.daily.department_code == department]
    if d.empty:
        raise ValueError(f"no demand history for department {department!r}")
    s = d.groupby("day").arrivals.sum()
    idx = pd.date_range(min(s.index), max(s.index), freq="D").date
    return s.reindex(idx, fill_value=0).astype(float)


def _holiday_mask(days: list[date] | np.ndarray) -> np.ndarray:
    days = list(days)
    hol = china_holidays(min(days), max(days))
    return np.array([d in hol for d in days])


def seasonal_naive(y: np.ndarray, horizon: int, season: int = 7) -> np.ndarray:
    """Repeat the last full season: ``y[-season:]`` tiled over ``horizon`` steps.

    Raises:
        ValueError: fewer than ``season`` observations.
    """
    if len(y) < season:
        raise ValueError("need at least one season of history")
    return np.array([y[len(y) - season + (h % season)] for h in range(horizon)], dtype=float)


def _fit_ets(y: np.ndarray, season: int, horizon: int, interval: float) -> tuple[np.ndarray, np.ndarray]:
    """ETS(A,N,A) point forecast and interval half-width.

    Fitted by statsmodels' Holt-Winters ``ExponentialSmoothing`` (additive level and
    season, no trend); the forecast variance is the analytic ETS(A,N,A) one,
    sigma^2 [1 + alpha^2 (h-1) + gamma k (2 alpha + gamma)], k = floor((h-1)/m)
    (Hyndman & Athanasopoulos, FPP3, table 8.8).
    """
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    series = pd.Series(y, index=pd.date_range("2000-01-03", periods=len(y), freq="D"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = ExponentialSmoothing(series, trend=None, seasonal="add", seasonal_periods=season).fit()
    mean = np.asarray(res.forecast(horizon), dtype=float)
    alpha = float(res.params["smoothing_level"])
    gamma = float(res.params.get("smoothing_seasonal") or 0.0)
    sigma2 = float(res.sse) / max(len(y) - season - 2, 1)
    h = np.arange(1, horizon + 1)
    k = np.floor((h - 1) / season)
    var = sigma2 * (1 + alpha**2 * (h - 1) + gamma * k * (2 * alpha + gamma))
    return mean, NormalDist().inv_cdf(0.5 + interval / 2) * np.sqrt(var)


def forecast_series(y: pd.Series, horizon: int = 7, *, model: str = "ets", interval: float = 0.8,
                    season: int = 7, department: str = "") -> Forecast:
    """Forecast the next ``horizon`` days of a daily series.

    Args:
        y: daily counts indexed by consecutive ``date`` (at least 3 seasons for ``ets``).
        horizon: days ahead (>= 1).
        model: ``ets`` or ``snaive``.
        interval: central prediction-interval coverage in (0, 1).
        season: season length in days.

    Returns:
        :class:`Forecast` (non-negative mean and bounds).

    Raises:
        ValueError: unknown model, bad horizon/interval, too short a series.
    """
    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if horizon < 1 or not 0 < interval < 1:
        raise ValueError("horizon must be >= 1 and interval in (0, 1)")
    days = list(y.index)
    values = y.to_numpy(dtype=float)
    future = [days[-1] + timedelta(days=i + 1) for i in range(horizon)]
    hol_all = _holiday_mask(days + future)
    hol_hist, hol_future = hol_all[: len(days)], hol_all[len(days):]
    if model == "snaive":
        mean = seasonal_naive(values, horizon, season)
        resid = values[season:] - values[:-season]
        z = NormalDist().inv_cdf(0.5 + interval / 2)
        sd = np.sqrt(np.mean(resid**2)) * np.sqrt(np.floor(np.arange(horizon) / season) + 1)
        lo, hi = mean - z * sd, mean + z * sd
    else:
        if len(values) < 3 * season:
            raise ValueError(f"ets needs at least {3 * season} days of history")
        # weekday-adjusted level on holidays: the mean of the same weekday in the
        # surrounding non-holiday weeks (so the weekly pattern is not distorted)
        adj = values.copy()
        for i in np.flatnonzero(hol_hist):
            same = [values[j] for j in range(i % season, len(values), season) if not hol_hist[j]
                    and abs(j - i) <= 3 * season]
            adj[i] = np.mean(same) if same else values[i]
        ratio = float(np.median(values[hol_hist] / np.maximum(adj[hol_hist], 1e-9))) if hol_hist.any() else 1.0
        mean, half = _fit_ets(adj, season, horizon, interval)
        lo, hi = mean - half, mean + half
        scale = np.where(hol_future, ratio, 1.0)
        mean, lo, hi = mean * scale, lo * scale, hi * scale
    clip = lambda a: np.maximum(np.asarray(a, dtype=float), 0.0)
    return Forecast(department, model, future, clip(mean).tolist(), clip(lo).tolist(), clip(hi).tolist(),
                    interval, [d for d, h in zip(future, hol_future, strict=True) if h])


def forecast_departments(hist: History, *, departments: list[str] | None = None, horizon: int = 7,
                         model: str = "ets", interval: float = 0.8) -> dict[str, Forecast]:
    """:func:`forecast_series` for every (or the given) department of the history.

    A department with less than 21 days of history falls back to ``snaive``.

    Raises:
        ValueError: unknown department (no history), or less than 7 days.
    """
    codes = departments or sorted(hist.daily.department_code.unique())
    out = {}
    for c in codes:
        y = daily_series(hist, c)
        # a department with less than three weeks of history gets the seasonal naive
        m = model if len(y) >= 21 else "snaive"
        out[c] = forecast_series(y, horizon, model=m, interval=interval, department=c)
    return out


def hourly_emerg_forecast(hist: History, daily: Forecast, weeks: int = 8) -> pd.DataFrame:
    """Split the EMERG daily forecast into hours (shares of the same weekday, last ``weeks``).

    Returns:
        DataFrame ``day, hour, mean, lower, upper`` (24 rows per forecast day).
    """
    h = hist.hourly[hist.hourly.department_code == daily.department]
    if h.empty:
        h = pd.DataFrame({"day": [daily.days[0]], "hour": [0], "arrivals": [0]})
    last = max(h.day)
    h = h[h.day > last - timedelta(weeks=weeks)].assign(wd=lambda f: [d.weekday() for d in f.day])
    rows = []
    for d, m, lo, hi in zip(daily.days, daily.mean, daily.lower, daily.upper, strict=True):
        g = h[h.wd == d.weekday()].groupby("hour").arrivals.sum().reindex(range(24), fill_value=0)
        share = (g + 0.5) / (g.sum() + 12)
        for hour in range(24):
            p = float(share[hour])
            rows.append((d, hour, m * p, lo * p, hi * p))
    return pd.DataFrame(rows, columns=["day", "hour", "mean", "lower", "upper"])


def mase(actual: np.ndarray, pred: np.ndarray, scale: float) -> float:
    """Mean absolute scaled error (Hyndman & Koehler 2006): MAE / in-sample seasonal-naive MAE."""
    return float(np.mean(np.abs(actual - pred)) / max(scale, 1e-9))


def mape(actual: np.ndarray, pred: np.ndarray) -> float:
    """Mean absolute percentage error in % over days with a non-zero actual (nan if none)."""
    ok = actual > 0
    return float(np.mean(np.abs(actual[ok] - pred[ok]) / actual[ok]) * 100) if ok.any() else float("nan")


def backtest(hist: History, *, departments: list[str] | None = None, origins: int = 8, horizon: int = 7,
             season: int = 7, interval: float = 0.8) -> dict[str, Any]:
    """Rolling-origin backtest of ``ets`` against ``snaive`` per department.

    Origins are the last ``origins`` weeks before the history end (the model is refit at
    each origin on the data up to it; horizon ``horizon`` days).

    Returns:
        ``{"departments": {code: {model: {"mase", "mape", "coverage"}}}, "mean": {model:
        {"mase", "mape", "coverage"}}, "mase_reduction": 1 - mean ets MASE / mean snaive
        MASE, "hourly_emerg": {...} | None}``.

    Raises:
        ValueError: a series too short for ``origins`` weeks plus 3 seasons of training.
    """
    codes = departments or sorted(hist.daily.department_code.unique())
    per: dict[str, dict[str, dict[str, float]]] = {}
    for code in codes:
        y = daily_series(hist, code)
        n = len(y)
        if n - origins * horizon < 3 * season + season:
            raise ValueError(f"{code}: {n} days is too short for {origins} backtest origins")
        scores: dict[str, dict[str, list[float]]] = {m: {"mase": [], "mape": [], "coverage": []} for m in MODELS}
        for k in range(origins, 0, -1):
            cut = n - k * horizon
            train, test = y.iloc[:cut], y.to_numpy()[cut:cut + horizon]
            tv = train.to_numpy()
            scale = float(np.mean(np.abs(tv[season:] - tv[:-season])))
            for m in MODELS:
                f = forecast_series(train, len(test), model=m, interval=interval, season=season)
                pred = np.array(f.mean)
                scores[m]["mase"].append(mase(test, pred, scale))
                scores[m]["mape"].append(mape(test, pred))
                scores[m]["coverage"].append(float(np.mean((test >= f.lower) & (test <= f.upper))))
        per[code] = {m: {k: float(np.nanmean(v)) for k, v in s.items()} for m, s in scores.items()}
    mean = {m: {k: float(np.nanmean([per[c][m][k] for c in codes])) for k in ("mase", "mape", "coverage")}
            for m in MODELS}
    out: dict[str, Any] = {"departments": per, "mean": mean, "origins": origins, "horizon_days": horizon,
                           "mase_reduction": 1 - mean["ets"]["mase"] / mean["snaive"]["mase"]}
    out["hourly_emerg"] = backtest_hourly(hist, origins=origins) if EMERG in codes and len(hist.hourly) else None
    return out


def backtest_hourly(hist: History, *, origins: int = 8, horizon: int = 7) -> dict[str, float]:
    """Hourly EMERG backtest: top-down ETS split against seasonal naive (168 h)."""
    h = hist.hourly[hist.hourly.department_code == EMERG].sort_values(["day", "hour"])
    y = daily_series(hist, EMERG)
    hourly = h.arrivals.to_numpy(dtype=float)
    days = sorted(h.day.unique())
    m_ets, m_sn = [], []
    for k in range(origins, 0, -1):
        cut_day = len(days) - k * horizon
        train_h, test_h = hourly[: cut_day * 24], hourly[cut_day * 24:(cut_day + horizon) * 24]
        scale = float(np.mean(np.abs(train_h[168:] - train_h[:-168])))
        sub = History(daily=hist.daily[hist.daily.day < days[cut_day]],
                      hourly=h[h.day < days[cut_day]], census=hist.census, finals=hist.finals)
        f = forecast_series(y[y.index < days[cut_day]], horizon, department=EMERG)
        pred = hourly_emerg_forecast(sub, f)["mean"].to_numpy()
        m_ets.append(mase(test_h, pred, scale))
        m_sn.append(mase(test_h, seasonal_naive(train_h, len(test_h), 168), scale))
    return {"ets_topdown_mase": float(np.mean(m_ets)), "snaive_mase": float(np.mean(m_sn)),
            "mase_reduction": 1 - float(np.mean(m_ets)) / float(np.mean(m_sn))}
