"""Tests of the LP allocator core (assistant.allocation): optimality, feasibility, explanations."""

from __future__ import annotations

import functools
import itertools
import random
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from pydantic import ValidationError
from scipy.optimize import linprog
from scipy.sparse import csc_matrix

from assistant.allocation import (
    AllocationStatus,
    AllocationWeights,
    Resource,
    ResourceTable,
    UnmetReason,
    allocate,
    book_one,
    capacity_violations,
    greedy_allocate,
    urgency_order_violations,
)
from assistant.allocation.checks import (
    compatibility_violations,
    is_compatible,
    overflow_violations,
)
from assistant.allocation.compat import expand, prepare
from assistant.allocation.lp import AggregatedModel
from assistant.domain import DemandSignal, Disposition
from assistant.errors import InputError

# The overflow table and shared services of these tests (the library defaults are empty:
# a hospital passes its catalog's table, see assistant.kb.KnowledgeBase.neighbours).
NB = {"CARDIO": ["GENMED"], "RESP": ["GENMED"], "NEURO": ["GENMED"], "ORTHO": ["GENSURG"]}
SHARED = ("RADIOL",)
allocate = functools.partial(allocate, neighbours=NB, shared=SHARED)
greedy_allocate = functools.partial(greedy_allocate, neighbours=NB, shared=SHARED)
book_one = functools.partial(book_one, neighbours=NB, shared=SHARED)
is_compatible = functools.partial(is_compatible, neighbours=NB, shared=SHARED)
overflow_violations = functools.partial(overflow_violations, shared=SHARED)
compatibility_violations = functools.partial(compatibility_violations, neighbours=NB, shared=SHARED)
urgency_order_violations = functools.partial(urgency_order_violations, neighbours=NB)

NOW = datetime(2025, 11, 24, 8, 0, tzinfo=timezone(timedelta(hours=8)))
D = list(Disposition)


def res(rid: str, dept: str = "CARDIO", hours: float = 1.0, cap: int = 1, **kw: object) -> Resource:
    start = NOW + timedelta(hours=hours)
    return Resource(
        id=rid,
        kind=kw.pop("kind", "clinic_slot"),
        department=dept,
        start=start,
        end=start + timedelta(hours=1),
        capacity=cap,
        **kw,
    )  # type: ignore[arg-type]


def sig(
    sid: str,
    disp: Disposition = Disposition.CONSULTATION,
    dept: str = "CARDIO",
    age_h: float = 0.0,
    **kw: object,
) -> DemandSignal:
    created = NOW - timedelta(hours=age_h)
    lo, hi = disp.window()
    return DemandSignal(
        id=sid,
        patient_ref=sid,
        department=dept,
        disposition=disp,
        created_at=created,
        earliest=created + lo,
        latest=created + hi,
        **kw,
    )  # type: ignore[arg-type]


def coefficient(s: DemandSignal, r: Resource, w: AllocationWeights, overflow: bool) -> float:
    """The objective coefficient, written out independently of the vectorised code."""
    span = (s.latest - s.earliest).total_seconds()
    frac = (r.start - max(s.earliest, NOW)).total_seconds() / span if span else 0.0
    age = min(1.0, max(0.0, (NOW - s.earliest).total_seconds() / span)) if span else 0.0
    sub = bool(s.sub_specialty) and s.sub_specialty in r.sub_specialties
    lang = s.language in r.languages
    return s.disposition.urgency_weight * (
        1
        - w.wait_penalty * frac
        - w.overflow_penalty * overflow
        + w.sub_specialty_bonus * sub
        + w.language_bonus * lang
        + w.age_bonus * age
    )


def brute_force(signals: list[DemandSignal], resources: list[Resource]) -> float:
    """Best objective over every feasible assignment (each signal: none or one resource)."""
    w = AllocationWeights()
    options = []
    for s in signals:
        opts: list[tuple[int | None, float]] = [(None, 0.0)]
        for j, r in enumerate(resources):
            ok, over = is_compatible(s, r, now=NOW)
            if ok:
                opts.append((j, coefficient(s, r, w, over)))
        options.append(opts)
    best = 0.0
    for combo in itertools.product(*options):
        used = [0] * len(resources)
        for j, _ in combo:
            if j is not None:
                used[j] += 1
        if all(u <= r.capacity for u, r in zip(used, resources, strict=True)):
            best = max(best, sum(v for _, v in combo))
    return best


def random_instance(rng: random.Random, n_sig: int, n_res: int) -> tuple[list, list]:
    resources = [
        res(
            f"r{j}",
            rng.choice(["CARDIO", "GENMED"]),
            hours=rng.uniform(0, 30),
            cap=rng.randint(0, 2),
            sub_specialties=(rng.choice(["arrhythmia", "coronary"]),),
            languages=tuple(rng.sample(["en", "zh"], rng.randint(0, 2))),
        )
        for j in range(n_res)
    ]
    signals = [
        sig(
            f"s{i}",
            rng.choice(D),
            rng.choice(["CARDIO", "GENMED", "RESP"]),
            age_h=rng.uniform(0, 20),
            sub_specialty=rng.choice([None, "arrhythmia"]),
            language=rng.choice(["en", "zh"]),
        )
        for i in range(n_sig)
    ]
    return signals, resources


def all_checks(result, signals, resources) -> list[str]:
    return capacity_violations(result, resources) + compatibility_violations(
        result, signals, resources, now=NOW
    )


# --- optimality and structure ---------------------------------------------------------


@pytest.mark.parametrize("seed", range(25))
def test_optimal_against_brute_force(seed: int) -> None:
    rng = random.Random(seed)
    signals, resources = random_instance(rng, 4, 3)
    result = allocate(signals, resources, now=NOW)
    assert result.status in (AllocationStatus.OPTIMAL, AllocationStatus.INFEASIBLE)
    assert result.integral
    assert result.objective.total == pytest.approx(brute_force(signals, resources), abs=1e-6)
    assert all_checks(result, signals, resources) == []
    greedy = greedy_allocate(signals, resources, now=NOW)
    assert greedy.objective.total <= result.objective.total + 1e-9


def test_aggregated_model_equals_full_pair_lp() -> None:
    rng = random.Random(7)
    signals, resources = random_instance(rng, 300, 40)
    result = allocate(signals, resources, now=NOW)
    batch, table, win, w, now_ms = prepare(signals, resources, None, NB, NOW, SHARED)
    pairs = expand(batch, table, win, w, now_ms)
    n, s_n = len(pairs), len(batch)
    rows = np.r_[pairs.sig, s_n + pairs.res]
    cols = np.r_[np.arange(n), np.arange(n)]
    a = csc_matrix((np.ones(2 * n), (rows, cols)), shape=(s_n + len(table), n))
    full = linprog(
        -pairs.coef,
        A_ub=a,
        b_ub=np.r_[np.ones(s_n), table.capacity],
        bounds=(0, None),
        method="highs",
    )
    assert result.num_variables < result.num_pairs  # aggregation shrank the model
    assert result.objective.total == pytest.approx(-full.fun, rel=1e-9)
    assert result.integral and all_checks(result, signals, resources) == []


def test_integral_feasible_and_urgency_ordered_under_overload() -> None:
    rng = random.Random(3)
    resources = [
        res(
            f"r{j}",
            rng.choice(["CARDIO", "GENMED", "RESP"]),
            hours=rng.uniform(0, 72),
            cap=rng.randint(0, 3),
        )
        for j in range(60)
    ]
    signals = [
        sig(
            f"s{i}",
            rng.choice(D),
            rng.choice(["CARDIO", "GENMED", "RESP"]),
            age_h=rng.uniform(0, 0.9),
        )
        for i in range(400)
    ]
    result = allocate(signals, resources, now=NOW)
    assert result.status is AllocationStatus.OPTIMAL and result.integral and not result.rounded
    assert result.unmet  # overloaded
    assert all_checks(result, signals, resources) == []
    assert urgency_order_violations(result, signals, resources, now=NOW) == []
    assert overflow_violations(result, signals, resources, now=NOW) == []
    reasons = {u.reason_code for u in result.unmet}
    assert UnmetReason.CAPACITY_MORE_URGENT in reasons


def test_fractional_point_is_rounded_to_a_feasible_plan() -> None:
    rng = random.Random(5)
    signals, resources = random_instance(rng, 30, 8)
    batch, table, win, w, now_ms = prepare(signals, resources, None, NB, NOW, SHARED)
    model = AggregatedModel.build(batch, table, win, w, now_ms, 10.0)
    col = np.full(model.highs.getNumCol(), 0.5)
    chosen = model.disaggregate(col, batch, table, w, now_ms)
    used = np.bincount(chosen.res, minlength=len(table))
    assert np.all(used <= table.capacity)
    assert len(set(chosen.sig.tolist())) == len(chosen)


# --- semantics ------------------------------------------------------------------------


def test_more_urgent_patient_gets_the_last_slot() -> None:
    resources = [res("c0", hours=0.5)]
    signals = [sig("routine", Disposition.CONSULTATION), sig("emerg", Disposition.EMERGENCY)]
    result = allocate(signals, resources, now=NOW)
    assert [a.signal_id for a in result.assignments] == ["emerg"]
    (unmet,) = result.unmet
    assert unmet.reason_code is UnmetReason.CAPACITY_MORE_URGENT
    assert unmet.reason == "capacity exhausted by more urgent demand"


def test_first_come_first_served_within_urgency() -> None:
    resources = [res("c0", hours=2)]
    signals = [sig("new", age_h=1), sig("old", age_h=48)]
    result = allocate(signals, resources, now=NOW)
    assert [a.signal_id for a in result.assignments] == ["old"]
    assert result.unmet[0].reason_code is UnmetReason.CAPACITY_EQUAL_URGENCY


def test_overflow_only_when_own_department_full() -> None:
    resources = [res("cardio", "CARDIO", hours=48, cap=1), res("genmed", "GENMED", hours=1, cap=5)]
    one = allocate([sig("a")], resources, now=NOW)
    assert one.assignments[0].resource_id == "cardio" and not one.assignments[0].overflow
    three = [sig("a"), sig("b"), sig("c")]
    result = allocate(three, resources, now=NOW)
    by_res = sorted((a.resource_id, a.overflow) for a in result.assignments)
    assert by_res == [("cardio", False), ("genmed", True), ("genmed", True)]
    assert overflow_violations(result, three, resources, now=NOW) == []
    # overflow is directed: GENMED patients may not use CARDIO capacity
    reverse = allocate([sig("g", dept="GENMED")], [res("cardio", "CARDIO")], now=NOW)
    assert reverse.status is AllocationStatus.INFEASIBLE
    assert reverse.unmet[0].reason_code is UnmetReason.NO_RESOURCE_TYPE


def test_time_windows_respected() -> None:
    resources = [
        res("past", hours=-1, cap=5),  # before now
        res("late", hours=30, cap=5),  # after a 24-h window
        res("ok", hours=20, cap=1),
    ]
    signals = [sig("a", Disposition.CONSULTATION_24), sig("b", Disposition.CONSULTATION_24)]
    result = allocate(signals, resources, now=NOW)
    assert [a.resource_id for a in result.assignments] == ["ok"]
    assert result.assignments[0].wait_hours == pytest.approx(20.0)
    assert all_checks(result, signals, resources) == []
    only_late = allocate([sig("c", Disposition.EMERGENCY)], [resources[1]], now=NOW)
    assert only_late.unmet[0].reason_code is UnmetReason.NO_SLOT_IN_WINDOW
    assert only_late.unmet[0].reason == "no compatible resource in window"
    passed = allocate([sig("d", Disposition.EMERGENCY, age_h=3)], resources, now=NOW)
    assert passed.unmet[0].reason_code is UnmetReason.WINDOW_PASSED


def test_bed_type_modality_and_shared_radiology() -> None:
    resources = [
        res("icu", "GENMED", kind="bed", bed_type="icu"),
        res("gen", "GENMED", kind="bed", bed_type="general"),
        res("mri", "RADIOL", kind="imaging", modality="MRI"),
    ]
    signals = [
        sig("b", dept="GENMED", resource_type="bed", bed_type="general"),
        sig("m", dept="NEURO", resource_type="imaging", modality="MRI"),
        sig("ct", dept="NEURO", resource_type="imaging", modality="CT"),
    ]
    result = allocate(signals, resources, now=NOW)
    assert {a.signal_id: a.resource_id for a in result.assignments} == {"b": "gen", "m": "mri"}
    assert not any(a.overflow for a in result.assignments)
    assert result.unmet[0].signal_id == "ct"
    assert result.unmet[0].reason_code is UnmetReason.NO_RESOURCE_TYPE


def test_unservable_request_is_a_result_not_an_exception() -> None:
    resources = [res("c0")]
    iso = sig(
        "iso", Disposition.CONSULTATION_24, dept="PEDS", resource_type="bed", bed_type="isolation"
    )
    for result in (
        allocate([iso], resources, now=NOW),
        book_one(iso, resources, now=NOW),
        greedy_allocate([iso], resources, now=NOW),
    ):
        assert result.status is AllocationStatus.INFEASIBLE
        assert result.assignments == []
        assert result.unmet[0].reason_code is UnmetReason.NO_RESOURCE_TYPE
        assert "isolation bed" in result.unmet[0].reason
    full = allocate([sig("x")], [res("c0", cap=0)], now=NOW)
    assert full.status is AllocationStatus.INFEASIBLE
    assert full.unmet[0].reason_code is UnmetReason.FULLY_BOOKED
    assert allocate([], resources, now=NOW).status is AllocationStatus.OPTIMAL


def test_binding_constraints_have_verified_shadow_prices() -> None:
    resources = [res("c0", "CARDIO", hours=0.5, cap=1), res("c1", "CARDIO", hours=30, cap=2)]
    signals = [
        sig("e", Disposition.EMERGENCY),
        sig("e2", Disposition.EMERGENCY, age_h=0.2),
        sig("r1"),
        sig("r2"),
        sig("r3"),
    ]
    result = allocate(signals, resources, now=NOW)
    assert result.binding
    top = result.binding[0]
    assert top.department == "CARDIO" and top.marginal_value is not None
    assert top.shadow_price >= top.marginal_value - 1e-9  # dual bounds the +1 gain
    assert top.value_class is Disposition.EMERGENCY
    assert "One more CARDIO clinic slot on Mon 24 Nov" in top.explanation
    assert "would serve 1 more patient" in top.explanation and "emergency" in top.explanation
    # the verified value is the objective change of re-solving with one more unit
    bumped = [
        r.model_copy(update={"capacity": r.capacity + 1}) if r.id == top.marginal_resource_id else r
        for r in resources
    ]
    again = allocate(signals, bumped, now=NOW)
    assert again.objective.total - result.objective.total == pytest.approx(top.marginal_value)


def test_greedy_baseline_returns_valid_result() -> None:
    rng = random.Random(11)
    signals, resources = random_instance(rng, 200, 30)
    greedy = greedy_allocate(signals, resources, now=NOW)
    lp = allocate(signals, resources, now=NOW)
    assert greedy.method == "greedy" and greedy.status is AllocationStatus.OPTIMAL
    assert all_checks(greedy, signals, resources) == []
    assert len(greedy.assignments) + len(greedy.unmet) == len(signals)
    assert greedy.objective.total <= lp.objective.total + 1e-9
    assert greedy.binding == []


def test_book_one_sequential_bookings_with_table() -> None:
    resources = [res("early", hours=1, cap=1), res("later", hours=5, cap=1)]
    table = ResourceTable(resources)
    first = book_one(sig("a"), table, now=NOW)
    assert first.assignments[0].resource_id == "early"
    table = table.after(first.assignments)
    second = book_one(sig("b"), table, now=NOW)
    assert second.assignments[0].resource_id == "later"
    table = table.after(second.assignments)
    third = book_one(sig("c"), table, now=NOW)
    assert third.status is AllocationStatus.INFEASIBLE
    assert third.unmet[0].reason_code is UnmetReason.FULLY_BOOKED


def test_time_limit_returns_greedy_plan() -> None:
    rng = random.Random(2)
    signals, resources = random_instance(rng, 200, 30)
    result = allocate(signals, resources, now=NOW, time_limit_s=0.0)
    assert result.status is AllocationStatus.TIME_LIMIT
    assert "greedy" in result.message
    assert all_checks(result, signals, resources) == []


# --- inputs and weights ---------------------------------------------------------------


def test_weights_validator_guards_the_guarantees() -> None:
    AllocationWeights()
    with pytest.raises(ValidationError, match="overflow_penalty"):
        AllocationWeights(wait_penalty=0.3, overflow_penalty=0.25)
    with pytest.raises(ValidationError, match="urgency dominance"):
        AllocationWeights(urgency_weights={Disposition.EMERGENCY: 95.0})


def test_bad_inputs_raise() -> None:
    with pytest.raises(InputError, match="duplicate signal"):
        allocate([sig("a"), sig("a")], [res("c0")], now=NOW)
    with pytest.raises(InputError, match="duplicate resource"):
        allocate([sig("a")], [res("c0"), res("c0")], now=NOW)
    with pytest.raises(ValidationError):
        Resource(
            id="x",
            kind="clinic_slot",
            department="CARDIO",
            capacity=1,
            start=datetime(2025, 1, 1),
            end=datetime(2025, 1, 1),
        )
    with pytest.raises(ValidationError):
        Resource(
            id="x", kind="bed", department="CARDIO", capacity=1, start=NOW, end=NOW
        )  # bed without bed_type


def test_scenarios_pass() -> None:
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from eval.allocation.scenarios import run_scenarios

    rows = run_scenarios(seed=1)
    assert [r["scenario"] for r in rows] == [
        "normal_load",
        "overloaded_week",
        "mass_casualty",
        "unservable_request",
    ]
    for row in rows:
        assert row["ok"], row["problems"]


# --- speed-related behaviour: lazy explanations, clone classes, FCFS within a class ----


def test_binding_is_computed_lazily_once_and_dumped() -> None:
    resources = [res("c0", "CARDIO", hours=0.5, cap=1)]
    signals = [sig("e", Disposition.EMERGENCY), sig("r1"), sig("r2")]
    result = allocate(signals, resources, now=NOW)
    assert result.explain_seconds == 0.0  # not computed by the call
    first = result.binding
    assert first and first[0].marginal_value is not None and result.explain_seconds > 0.0
    assert result.binding is first  # computed once
    assert result.model_dump()["binding"][0]["explanation"] == first[0].explanation


def test_identical_doctors_are_one_clone_class_filled_in_table_order() -> None:
    # two doctors of one session with the same profile, a third with a sub-specialty
    resources = [
        res("a", hours=2, cap=2, languages=("zh",)),
        res("b", hours=2, cap=2, languages=("zh",)),
        res("c", hours=2, cap=1, languages=("zh",), sub_specialties=("arrhythmia",)),
    ]
    table = ResourceTable(resources)
    cls = dict(zip(table.ids, table.clone.tolist(), strict=True))
    assert cls["a"] == cls["b"] != cls["c"]
    signals = [sig(f"s{i}", age_h=i) for i in range(4)]
    result = allocate(signals, resources, now=NOW)
    used = sorted(a.resource_id for a in result.assignments)
    assert used == ["a", "a", "b", "b"]  # "a" filled before "b"; "c" unused (no bonus)
    assert all_checks(result, signals, resources) == []


def test_equally_urgent_patients_get_slots_first_come_first_served() -> None:
    # one class (same urgency/department/window length), windows ending at different
    # times, so the LP puts them in different buckets; the older request gets the
    # earlier slot although any matching has the same objective
    resources = [res("early", hours=1), res("late", hours=30)]
    signals = [sig("new", age_h=1), sig("old", age_h=40)]
    result = allocate(signals, resources, now=NOW)
    assert result.by_signal()["old"].resource_id == "early"
    assert result.by_signal()["new"].resource_id == "late"
    # the re-matching itself, from the opposite (equally optimal) LP pairing
    batch, table, _, _, now_ms = prepare(signals, resources, None, NB, NOW, SHARED)
    early, late = table.id_index["early"], table.id_index["late"]
    served = np.array([1, 0])  # signal 1 = "old", signal 0 = "new"
    units = np.array([late, early])  # LP pairing: old -> late, new -> early
    out = AggregatedModel.fcfs_within_class(served, np.zeros(2, np.int64), units, batch, table,
                                            now_ms)
    assert dict(zip(out.tolist(), units.tolist(), strict=True)) == {1: early, 0: late}


def test_results_match_the_stored_reference_on_eval_scenarios() -> None:
    """Same status, objective, served patients and unmet reasons as the stored reference
    (``python -m eval.allocation.regression`` checks all scenarios and the 10k instances)."""
    import gzip
    import json

    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from eval.allocation.regression import (
        REFERENCE,
        _same_unmet,
        fcfs_inversions,
        fingerprint,
        run_case,
    )
    from eval.allocation.scenarios import mass_casualty, unservable_request

    with gzip.open(REFERENCE, "rt", encoding="utf-8") as fh:
        ref = json.load(fh)
    for make in (mass_casualty, unservable_request):
        sc = make(0)
        new, old = fingerprint(run_case(sc)), ref[sc.name]
        assert new["status"] == old["status"]
        assert new["objective"]["total"] == pytest.approx(old["objective"]["total"], rel=1e-9)
        assert set(new["assignments"]) == set(old["assignments"])  # same patients served
        assert _same_unmet(new["unmet"], old["unmet"])
        # ties are broken first come, first served (the reference plan was not)
        assert fcfs_inversions(new["assignments"], sc) == 0
