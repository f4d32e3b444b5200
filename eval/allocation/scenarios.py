"""Seeded synthetic hospital scenarios for the allocator, and their checks.

Run ``python -m eval.allocation.scenarios`` from the repository root (or call
:func:`run_scenarios`). Every generator is deterministic for a given seed.

The synthetic hospital (about 2,000 resources over 14 days, local time UTC+8):

* clinic sessions (08:00-12:00, 13:30-17:30, weekdays) per doctor in 9 departments,
  2-6 doctors per session, 0-8 free appointments, doctors with sub-specialties and
  languages (all zh, some en);
* EMERG treatment blocks every 30 min for 8 days (1-3 free places each);
* bed releases (08:00, 12:00, 16:00) for 10 wards (general, icu, paediatric,
  maternity, isolation), 0-3 beds each;
* imaging: RADIOL CT/MRI/ultrasound 2-h blocks 08:00-20:00 and an EMERG CT every 2 h.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from assistant.allocation import (
    AllocationResult,
    AllocationStatus,
    Resource,
    allocate,
    book_one,
    capacity_violations,
    greedy_allocate,
    urgency_order_violations,
    urgency_weighted_wait,
)
from assistant.allocation.checks import compatibility_violations, overflow_violations
from assistant.domain import DemandSignal, Disposition

LOCAL = timezone(timedelta(hours=8))
NOW = datetime(2025, 11, 24, 7, 10, tzinfo=LOCAL)  # a Monday morning
# The synthetic hospital's overflow table and shared services (scenario data: medical
# specialties overflow to GENMED, surgical ones to GENSURG; radiology serves everyone).
NEIGHBOURS: dict[str, list[str]] = {
    **{d: ["GENMED"] for d in ("CARDIO", "RESP", "GASTRO", "NEURO", "ENDO", "NEPHRO", "RHEUM",
                               "HAEM", "INFECT", "GERI", "PEDS")},
    **{d: ["GENSURG"] for d in ("ORTHO", "URO", "VASC")},
}
SHARED: tuple[str, ...] = ("RADIOL",)

CLINIC_DEPTS: dict[str, tuple[int, int, tuple[str, ...]]] = {
    # department: (min doctors, max doctors, sub-specialties)
    "GENMED": (4, 6, ()),
    "CARDIO": (2, 4, ("arrhythmia", "heart_failure", "coronary")),
    "RESP": (2, 4, ("asthma", "copd")),
    "GASTRO": (2, 3, ("ibd", "hepatology")),
    "NEURO": (2, 3, ("stroke", "epilepsy", "headache")),
    "PEDS": (2, 4, ()),
    "ORTHO": (2, 4, ("spine", "joints")),
    "GENSURG": (2, 4, ()),
    "OBGYN": (2, 3, ()),
}
WARDS: tuple[tuple[str, str], ...] = (
    ("GENMED", "general"),
    ("GENMED", "icu"),
    ("CARDIO", "general"),
    ("RESP", "general"),
    ("RESP", "isolation"),
    ("GENSURG", "general"),
    ("ORTHO", "general"),
    ("PEDS", "paediatric"),
    ("OBGYN", "maternity"),
    ("NEURO", "general"),
)
MIX_BACKLOG = {
    # pending signals at one moment: emergencies are few (1-h windows, handled live)
    Disposition.EMERGENCY_AMBULANCE: 0.002,
    Disposition.EMERGENCY: 0.006,
    Disposition.CONSULTATION_24: 0.08,
    Disposition.CONSULTATION: 0.67,
    Disposition.SELF_CARE: 0.242,
}
MIX_WEEK = {
    # a week of arrivals
    Disposition.EMERGENCY_AMBULANCE: 0.02,
    Disposition.EMERGENCY: 0.08,
    Disposition.CONSULTATION_24: 0.25,
    Disposition.CONSULTATION: 0.50,
    Disposition.SELF_CARE: 0.15,
}


def synthetic_hospital(seed: int = 0, *, now: datetime = NOW, days: int = 14) -> list[Resource]:
    """About 2,000 resources with remaining capacity over ``days`` days from ``now``."""
    rng = random.Random(seed)
    day0 = now.replace(hour=0, minute=0, second=0, microsecond=0)
    out: list[Resource] = []

    def add(**kw: object) -> None:
        out.append(Resource(id=f"R{len(out):05d}", **kw))  # type: ignore[arg-type]

    for d in range(days):
        day = day0 + timedelta(days=d)
        if day.weekday() < 5:
            for dept, (lo, hi, subs) in CLINIC_DEPTS.items():
                for h, m in ((8, 0), (13, 30)):
                    start = day.replace(hour=h, minute=m)
                    for doc in range(rng.randint(lo, hi)):
                        add(
                            kind="clinic_slot",
                            department=dept,
                            sub_specialties=(rng.choice(subs),) if subs else (),
                            languages=("zh", "en") if rng.random() < 0.3 else ("zh",),
                            start=start,
                            end=start + timedelta(hours=4),
                            capacity=rng.randint(0, 8),
                            label=f"{dept} clinic, Dr {dept[:1]}{doc}, {start:%a %H:%M}",
                        )
        for dept, bed in WARDS:
            for h in (8, 12, 16):
                start = day.replace(hour=h)
                add(
                    kind="bed",
                    department=dept,
                    bed_type=bed,
                    start=start,
                    end=start + timedelta(hours=4),
                    capacity=rng.randint(0, 3),
                    label=f"{dept} {bed} beds released {start:%a %H:%M}",
                )
        for mod in ("CT", "MRI", "ultrasound"):
            for h in range(8, 20, 2):
                start = day.replace(hour=h)
                add(
                    kind="imaging",
                    department="RADIOL",
                    modality=mod,
                    start=start,
                    end=start + timedelta(hours=2),
                    capacity=rng.randint(1, 6),
                    label=f"RADIOL {mod} {start:%a %H:%M}",
                )
        for h in range(0, 24, 2):
            start = day.replace(hour=h)
            add(
                kind="imaging",
                department="EMERG",
                modality="CT",
                start=start,
                end=start + timedelta(hours=2),
                capacity=rng.randint(1, 3),
                label=f"EMERG CT {start:%a %H:%M}",
            )
    for q in range(8 * 48):
        start = day0.replace(hour=now.hour) + timedelta(minutes=30 * q)
        add(
            kind="clinic_slot",
            department="EMERG",
            languages=("zh", "en"),
            start=start,
            end=start + timedelta(minutes=30),
            capacity=rng.randint(1, 3),
            label=f"EMERG treatment {start:%a %H:%M}",
        )
    return out


def synthetic_signals(
    n: int,
    seed: int = 0,
    *,
    now: datetime = NOW,
    mix: dict[Disposition, float] | None = None,
    future_share: float = 0.0,
    future_hours: float = 7 * 24.0,
    prefix: str = "S",
) -> list[DemandSignal]:
    """``n`` demand signals with a realistic disposition / resource mix.

    A share ``1 - future_share`` is the pending backlog: emergencies created in the
    last 45 min (1-h windows), within-24-h consultations in the last 12 h, routine
    ones in the last 3 days. The rest are forecast arrivals spread uniformly over the
    next ``future_hours`` (what-if planning of a coming week).
    """
    rng = random.Random(seed + 7919)
    mix = mix or MIX_BACKLOG
    disps, probs = list(mix), list(mix.values())
    depts = list(CLINIC_DEPTS)
    out: list[DemandSignal] = []
    for i in range(n):
        d = rng.choices(disps, probs)[0]
        if rng.random() < future_share:
            created = now + timedelta(hours=rng.uniform(0, future_hours))
        else:
            lag = {0: 0.75, 1: 0.75, 2: 12.0}.get(d.rank, 72.0)
            created = now - timedelta(hours=rng.uniform(0, lag))
        lo, hi = d.window()
        dept = rng.choice(depts)
        kw: dict[str, object] = {"resource_type": "clinic_slot", "department": dept}
        u = rng.random()
        if d.is_emergency:
            if u < 0.6:
                kw["department"] = "EMERG"
            elif u < 0.85:
                ward, bed = rng.choice(WARDS)
                kw.update(resource_type="bed", department=ward, bed_type=bed)
            else:
                kw.update(resource_type="imaging", department="EMERG", modality="CT")
        elif d is Disposition.CONSULTATION_24 and u < 0.2:
            ward, bed = rng.choice(WARDS)
            kw.update(resource_type="bed", department=ward, bed_type=bed)
        elif d is not Disposition.SELF_CARE and u > 0.85:
            kw.update(resource_type="imaging", modality=rng.choice(["CT", "MRI", "ultrasound"]))
        subs = CLINIC_DEPTS.get(str(kw["department"]), (0, 0, ()))[2]
        if kw["resource_type"] == "clinic_slot" and subs and rng.random() < 0.5:
            kw["sub_specialty"] = rng.choice(subs)
        out.append(
            DemandSignal(
                id=f"{prefix}{i:06d}",
                created_at=created,
                patient_ref=f"p{seed}-{i}",
                disposition=d,
                earliest=created + lo,
                latest=created + hi,
                language="en" if rng.random() < 0.1 else "zh",
                **kw,  # type: ignore[arg-type]
            )
        )
    return out


def total_capacity(resources: list[Resource]) -> int:
    """Sum of remaining capacity."""
    return sum(r.capacity for r in resources)


@dataclass
class Scenario:
    """One allocation scenario."""

    name: str
    description: str
    signals: list[DemandSignal]
    resources: list[Resource]
    now: datetime = NOW
    expect: dict[str, object] = field(default_factory=dict)


def normal_load(seed: int = 0) -> Scenario:
    """Pending backlog at about 45 % of remaining capacity (clinics near full)."""
    res = synthetic_hospital(seed)
    sig = synthetic_signals(int(0.45 * total_capacity(res)), seed)
    return Scenario("normal_load", "backlog ~0.45x capacity", sig, res)


def overloaded_week(seed: int = 0) -> Scenario:
    """A week of demand at 1.5x remaining capacity: backlog plus forecast arrivals."""
    res = synthetic_hospital(seed)
    sig = synthetic_signals(int(1.5 * total_capacity(res)), seed, mix=MIX_WEEK, future_share=0.8)
    return Scenario("overloaded_week", "week of demand ~1.5x capacity", sig, res)


def mass_casualty(seed: int = 0, casualties: int = 120) -> Scenario:
    """Normal load plus ``casualties`` EMERG emergencies created in the last 20 minutes."""
    base = normal_load(seed)
    rng = random.Random(seed + 31)
    extra = []
    for i in range(casualties):
        d = Disposition.EMERGENCY_AMBULANCE if rng.random() < 0.4 else Disposition.EMERGENCY
        created = NOW - timedelta(minutes=rng.uniform(0, 20))
        kind = rng.random()
        kw: dict[str, object] = {"resource_type": "clinic_slot"}
        if kind > 0.7:
            kw = {"resource_type": "imaging", "modality": "CT"}
        extra.append(
            DemandSignal(
                id=f"MC{i:04d}",
                created_at=created,
                patient_ref=f"mc{i}",
                department="EMERG",
                disposition=d,
                earliest=created,
                latest=created + timedelta(hours=1),
                **kw,
            )  # type: ignore[arg-type]
        )
    return Scenario(
        "mass_casualty",
        f"normal load + {casualties} EMERG emergencies",
        base.signals + extra,
        base.resources,
    )


def unservable_request(seed: int = 0) -> Scenario:
    """A paediatric isolation-bed request: no PEDS or GENMED ward has isolation beds."""
    res = synthetic_hospital(seed)
    sig = DemandSignal.from_disposition(
        patient_ref="iso",
        department="PEDS",
        disposition=Disposition.CONSULTATION_24,
        now=NOW,
        resource_type="bed",
        bed_type="isolation",
    )
    return Scenario(
        "unservable_request",
        "PEDS isolation bed (nobody has one)",
        [sig],
        res,
        expect={"status": AllocationStatus.INFEASIBLE, "reason": "no_resource_type"},
    )


SCENARIOS: dict[str, Callable[[int], Scenario]] = {
    "normal_load": normal_load,
    "overloaded_week": overloaded_week,
    "mass_casualty": mass_casualty,
    "unservable_request": unservable_request,
}


def check(sc: Scenario, res: AllocationResult) -> list[str]:
    """All checks for one result: capacity, compatibility, integrality, urgency, overflow."""
    problems = capacity_violations(res, sc.resources)
    problems += compatibility_violations(res, sc.signals, sc.resources, now=sc.now, neighbours=NEIGHBOURS,
                                         shared=SHARED)
    if not res.integral:
        problems.append("LP solution not integral")
    if res.method == "lp":
        problems += urgency_order_violations(res, sc.signals, sc.resources, now=sc.now)
        problems += overflow_violations(res, sc.signals, sc.resources, now=sc.now, shared=SHARED)
    return problems


def run_scenarios(seed: int = 0) -> list[dict[str, object]]:
    """Run every scenario with the LP and the greedy baseline and check the results.

    Returns:
        One dict per scenario: sizes, statuses, served counts, objectives,
        urgency-weighted wait (hours; unmet counted at their full window) for LP and
        greedy and the LP's improvement in %, LP timings, the problems found (empty
        list = all checks passed) and ``ok``.
    """
    rows: list[dict[str, object]] = []
    for name, make in SCENARIOS.items():
        sc = make(seed)
        lp = allocate(sc.signals, sc.resources, now=sc.now, neighbours=NEIGHBOURS, shared=SHARED)
        gr = greedy_allocate(sc.signals, sc.resources, now=sc.now, neighbours=NEIGHBOURS, shared=SHARED)
        problems = [f"lp: {p}" for p in check(sc, lp)] + [f"greedy: {p}" for p in check(sc, gr)]
        if "status" in sc.expect:
            single = book_one(sc.signals[0], sc.resources, now=sc.now, neighbours=NEIGHBOURS, shared=SHARED)
            for r in (lp, single):
                if r.status != sc.expect["status"]:
                    problems.append(
                        f"{r.method}: status {r.status}, expected {sc.expect['status']}"
                    )
                if not r.unmet or r.unmet[0].reason_code != sc.expect["reason"]:
                    problems.append(f"{r.method}: unmet reason missing or wrong")
        if lp.objective.total + 1e-6 < gr.objective.total:
            problems.append("LP objective below greedy")
        w_lp = urgency_weighted_wait(lp, sc.signals)
        w_gr = urgency_weighted_wait(gr, sc.signals)
        rows.append(
            {
                "scenario": name,
                "signals": len(sc.signals),
                "resources": len(sc.resources),
                "capacity": total_capacity(sc.resources),
                "lp_status": lp.status.value,
                "lp_served": lp.served,
                "greedy_served": gr.served,
                "lp_objective": round(lp.objective.total, 2),
                "greedy_objective": round(gr.objective.total, 2),
                "lp_weighted_wait_h": round(w_lp, 3),
                "greedy_weighted_wait_h": round(w_gr, 3),
                "wait_improvement_pct": round(100 * (w_gr - w_lp) / w_gr, 1) if w_gr else 0.0,
                "lp_seconds": round(lp.build_seconds + lp.solve_seconds, 3),
                "binding_groups": len(lp.binding),
                "top_binding": lp.binding[0].explanation if lp.binding else "",
                "problems": problems,
                "ok": not problems,
            }
        )
    return rows


if __name__ == "__main__":
    import json

    for row in run_scenarios():
        print(json.dumps(row, default=str))
