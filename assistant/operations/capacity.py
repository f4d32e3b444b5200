"""Capacity planning: next week's clinic sessions per department and day (HiGHS).

The model (``knowledge_base/ops_policy.yaml`` ``plan``):

* demand ``D[d, k, t]`` = forecast bound (upper 80 % prediction bound by policy) of
  department ``d`` on day ``t`` x the share of urgency class ``k`` (consultation_24,
  consultation, self_care);
* ``x[doc, t, half]`` in {0, 1}: the doctor runs a session (capacity = the slots of a
  morning / afternoon session in the timetable), only where the doctor is available
  (weekday half-days; weekend mornings for the titles in ``weekend_titles``), at most the
  doctor's current number of sessions per week, and in total exactly the current
  timetable's number of sessions (so every doctor keeps his count, and the model
  separates into one small MIP per department);
* patients of class ``k`` arriving on day ``t`` are seen on a day ``t' in [t, t + W_k]``
  inside the week; a class whose window reaches past Sunday may be carried to next week
  (cost: the days until Monday); the rest is **unmet**;
* minimise sum of urgency weight (``Disposition.urgency_weight``: 10 / 3 / 1) x (days
  waited + ``unmet_penalty_days`` per unmet patient).

The fixed timetable is scored with the same model (its ``x`` fixed), so the comparison is
only about where the sessions are. Shadow prices come from the LP with ``x`` fixed at the
plan: the dual of a department-day capacity row is what one more slot there would save.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from assistant.domain import Disposition
from assistant.hospital.db import hospital_timezone
from assistant.hospital.models import ClinicSession, Doctor
from assistant.operations.history import EMERG, kb_yaml
from assistant.operations.lp import LinearModel

HALVES = ("am", "pm")
CLASSES = ("consultation_24", "consultation", "self_care")


@dataclass(frozen=True)
class DoctorWeek:
    """A clinic doctor in the planning week: current sessions as (day offset, half)."""

    id: int
    name_en: str
    department: str
    title: str
    fixed: tuple[tuple[int, str], ...]


@dataclass
class Timetable:
    """The planning week: first local day, doctors and per-half session capacity."""

    week_start: date
    doctors: list[DoctorWeek]
    capacity: dict[str, int]  # "am" / "pm" -> slots per session

    @property
    def departments(self) -> list[str]:
        return sorted({d.department for d in self.doctors})


@dataclass
class PlanScore:
    """A timetable scored against demand."""

    unmet: float
    unmet_by_class: dict[str, float]
    carried: float
    served: float
    weighted_wait_days: float  # urgency-weighted mean wait of patients seen in the week
    objective: float
    sessions: int


@dataclass
class CapacityPlan:
    """The optimised plan, the fixed timetable's score, and shadow prices in words."""

    week_start: date
    sessions: dict[str, list[int]]            # department -> sessions per day (7)
    fixed_sessions: dict[str, list[int]]
    doctor_sessions: dict[int, list[tuple[int, str]]]
    plan: PlanScore
    fixed: PlanScore
    shadow_prices: list[dict[str, Any]] = field(default_factory=list)

    @property
    def unmet_reduction(self) -> float:
        """1 - plan unmet / fixed unmet (0 when the fixed timetable meets all demand)."""
        return 1 - self.plan.unmet / self.fixed.unmet if self.fixed.unmet > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "week_start": self.week_start.isoformat(), "sessions": self.sessions,
            "fixed_sessions": self.fixed_sessions, "plan": vars(self.plan), "fixed": vars(self.fixed),
            "unmet_reduction": round(self.unmet_reduction, 4), "shadow_prices": self.shadow_prices,
        }


def load_timetable(factory: sessionmaker[Session], week_start: date) -> Timetable:
    """Clinic sessions (not EMERG) of the 7 local days from ``week_start``.

    Raises:
        ValueError: no clinic sessions in that week.
    """
    with factory() as s:
        tz = hospital_timezone(s)
        t0 = datetime.combine(week_start, datetime.min.time(), tzinfo=tz)
        rows = s.execute(
            select(ClinicSession, Doctor).join(Doctor, Doctor.id == ClinicSession.doctor_id)
            .where(ClinicSession.starts_at >= t0, ClinicSession.starts_at < t0 + timedelta(days=7),
                   ClinicSession.department_code != EMERG)
        ).all()
    if not rows:
        raise ValueError(f"no clinic sessions in the week from {week_start}")
    fixed: dict[int, list[tuple[int, str]]] = defaultdict(list)
    info: dict[int, Doctor] = {}
    caps: dict[str, Counter[int]] = {h: Counter() for h in HALVES}
    for sess, doc in rows:
        local = sess.starts_at.astimezone(tz)
        half = "am" if local.hour < 12 else "pm"
        fixed[doc.id].append(((local.date() - week_start).days, half))
        info[doc.id] = doc
        caps[half][sess.capacity] += 1
    capacity = {h: (caps[h].most_common(1)[0][0] if caps[h] else 14) for h in HALVES}
    doctors = [DoctorWeek(i, info[i].name_en, info[i].department_code, info[i].title,
                          tuple(sorted(set(fixed[i])))) for i in sorted(fixed)]
    return Timetable(week_start, doctors, capacity)


def _available(doc: DoctorWeek, weekend_titles: set[str]) -> list[tuple[int, str]]:
    slots = {(t, h) for t in range(5) for h in HALVES}
    if doc.title in weekend_titles:
        slots |= {(5, "am"), (6, "am")}
    return sorted(slots | set(doc.fixed))


class _Model:
    """Builds the week model; ``x_fixed`` pins the sessions (scoring a timetable)."""

    def __init__(self, tt: Timetable, demand: dict[str, list[float]], policy: dict[str, Any],
                 x_fixed: dict[int, set[tuple[int, str]]] | None) -> None:
        p = policy["plan"]
        self.tt, self.m = tt, LinearModel()
        weights = {k: Disposition(k).urgency_weight for k in CLASSES}
        penalty = float(p["unmet_penalty_days"])
        wk = {k: int(p["max_wait_days"][k]) for k in CLASSES}
        mix = {k: float(p["class_mix"][k]) for k in CLASSES}
        weekend = set(p["weekend_titles"])
        m = self.m
        self.x: dict[tuple[int, int, str], int] = {}
        for doc in tt.doctors:
            for t, h in _available(doc, weekend):
                if x_fixed is None:
                    self.x[doc.id, t, h] = m.var(0.0, 0.0, 1.0, integer=True)
                else:
                    v = 1.0 if (t, h) in x_fixed.get(doc.id, set()) else 0.0
                    self.x[doc.id, t, h] = m.var(0.0, v, v)
        if x_fixed is None:
            # at most the doctor's current sessions, and the same total: so exactly them
            of_doc: dict[int, list[int]] = defaultdict(list)
            for (i, _, _), v in self.x.items():
                of_doc[i].append(v)
            for doc in tt.doctors:
                idx = of_doc[doc.id]
                m.row(idx, [1.0] * len(idx), lb=len(doc.fixed), ub=len(doc.fixed))
        self.serve: dict[tuple[str, str, int, int], int] = {}
        self.unmet: dict[tuple[str, str, int], int] = {}
        self.carry: dict[tuple[str, str, int], int] = {}
        self.weights = weights
        into: dict[tuple[str, int], list[int]] = defaultdict(list)
        for d in tt.departments:
            for k in CLASSES:
                for t in range(7):
                    need = max(0.0, demand.get(d, [0.0] * 7)[t] * mix[k])
                    idx = []
                    for t2 in range(t, min(t + wk[k], 6) + 1):
                        self.serve[d, k, t, t2] = m.var(weights[k] * (t2 - t))
                        idx.append(self.serve[d, k, t, t2])
                        into[d, t2].append(self.serve[d, k, t, t2])
                    self.unmet[d, k, t] = m.var(weights[k] * penalty)
                    idx.append(self.unmet[d, k, t])
                    if t + wk[k] > 6:
                        self.carry[d, k, t] = m.var(weights[k] * (7 - t))
                        idx.append(self.carry[d, k, t])
                    m.row(idx, [1.0] * len(idx), lb=need, ub=need)
        self.cap_rows: dict[tuple[str, int], int] = {}
        by_dept = defaultdict(list)
        for doc in tt.doctors:
            by_dept[doc.department].append(doc)
        for d in tt.departments:
            for t2 in range(7):
                idx = list(into[d, t2])
                coef = [1.0] * len(idx)
                for doc in by_dept[d]:
                    for h in HALVES:
                        if (doc.id, t2, h) in self.x:
                            idx.append(self.x[doc.id, t2, h])
                            coef.append(-float(tt.capacity[h]))
                self.cap_rows[d, t2] = m.row(idx, coef, ub=0.0)

    def score(self, values: Any, objective: float) -> PlanScore:
        unmet_by = {k: float(sum(values[v] for (_, kk, _), v in self.unmet.items() if kk == k)) for k in CLASSES}
        served = sum(values[v] for v in self.serve.values())
        wsum = sum(self.weights[k] * values[v] for (_, k, _, _), v in self.serve.items())
        wwait = sum(self.weights[k] * (t2 - t) * values[v] for (_, k, t, t2), v in self.serve.items())
        return PlanScore(unmet=round(sum(unmet_by.values()), 2),
                         unmet_by_class={k: round(v, 2) for k, v in unmet_by.items()},
                         carried=round(float(sum(values[v] for v in self.carry.values())), 2),
                         served=round(float(served), 2),
                         weighted_wait_days=round(float(wwait / wsum), 4) if wsum else 0.0,
                         objective=round(objective, 2),
                         sessions=round(float(sum(values[v] for v in self.x.values()))))

    def sessions_per_day(self, values: Any) -> dict[str, list[int]]:
        doc_dept = {d.id: d.department for d in self.tt.doctors}
        out = {d: [0] * 7 for d in self.tt.departments}
        for (doc, t, _), v in self.x.items():
            out[doc_dept[doc]][t] += round(float(values[v]))
        return out


def score_timetable(tt: Timetable, demand: dict[str, list[float]], sessions: dict[int, set[tuple[int, str]]],
                    policy: dict[str, Any] | None = None) -> tuple[PlanScore, _Model, Any, Any]:
    """Score fixed sessions against ``demand`` (LP); returns (score, model, values, duals)."""
    model = _Model(tt, demand, policy or kb_yaml("ops_policy.yaml"), sessions)
    values, duals, obj = model.m.solve(relax=True)
    return model.score(values, obj), model, values, duals


def plan_week(tt: Timetable, demand: dict[str, list[float]], *, policy: dict[str, Any] | None = None,
              time_limit: float = 20.0) -> CapacityPlan:
    """Optimise the sessions of the week for ``demand`` and compare with the timetable.

    Args:
        tt: from :func:`load_timetable`.
        demand: department -> 7 daily demand figures (e.g. forecast upper bounds).
        policy: ``ops_policy.yaml`` contents.
        time_limit: HiGHS time limit (s) for the session MIP.

    Returns:
        :class:`CapacityPlan` (both timetables scored on ``demand``).

    Raises:
        RuntimeError: the solver found no solution.
    """
    policy = policy or kb_yaml("ops_policy.yaml")
    fixed = {d.id: set(d.fixed) for d in tt.doctors}
    fixed_score, fmodel, fvalues, _ = score_timetable(tt, demand, fixed, policy)
    chosen: dict[int, set[tuple[int, str]]] = defaultdict(set)
    # departments share no doctors and each doctor keeps his number of sessions, so the
    # week model separates into one small MIP per department
    for dept in tt.departments:
        sub = Timetable(tt.week_start, [d for d in tt.doctors if d.department == dept], tt.capacity)
        mip = _Model(sub, {dept: demand.get(dept, [0.0] * 7)}, policy, None)
        values, _, _ = mip.m.solve(time_limit=time_limit / max(len(tt.departments), 1) + 1)
        for (doc, t, h), v in mip.x.items():
            if values[v] > 0.5:
                chosen[doc].add((t, h))
    plan_score, pmodel, pvalues, duals = score_timetable(tt, demand, chosen, policy)
    return CapacityPlan(
        week_start=tt.week_start, sessions=pmodel.sessions_per_day(pvalues),
        fixed_sessions=fmodel.sessions_per_day(fvalues),
        doctor_sessions={k: sorted(v) for k, v in chosen.items()},
        plan=plan_score, fixed=fixed_score, shadow_prices=_shadow_words(tt, pmodel, duals, policy),
    )


def _shadow_words(tt: Timetable, model: _Model, duals: Any, policy: dict[str, Any], top: int = 6
                  ) -> list[dict[str, Any]]:
    """The binding department-day capacity rows, most valuable first, in words."""
    out = []
    for (d, t), row in model.cap_rows.items():
        value = -float(duals[row])  # minimisation, <= row: dual <= 0
        if value > 1e-6:
            day = tt.week_start + timedelta(days=t)
            per_session = value * tt.capacity["am"]
            out.append({
                "department": d, "day": day.isoformat(), "per_slot": round(value, 2),
                "en": (f"{d} on {day:%a %d %b}: one more slot would save {value:.1f} urgency-weighted "
                       f"patient-days; one more morning session ({tt.capacity['am']} slots) about "
                       f"{per_session:.0f}."),
                "zh": (f"{d} {day:%m-%d}：每增加1个号源可减少{value:.1f}个加权患者等待日；"
                       f"加开一个上午门诊（{tt.capacity['am']}个号）约减少{per_session:.0f}。"),
            })
    out.sort(key=lambda r: -r["per_slot"])
    return out[:top]


def demand_from_forecasts(forecasts: dict[str, Any], bound: str = "upper") -> dict[str, list[float]]:
    """Department -> 7 daily figures from :class:`~assistant.operations.forecast.Forecast` s.

    Raises:
        ValueError: ``bound`` not one of mean / lower / upper.
    """
    if bound not in ("mean", "lower", "upper"):
        raise ValueError("bound must be mean, lower or upper")
    return {code: list(getattr(f, bound))[:7] for code, f in forecasts.items() if code != EMERG}
