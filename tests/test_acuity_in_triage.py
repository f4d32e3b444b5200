"""The learned acuity model inside a triage turn: floor, raise-only combination, reasons,
vignette age/sex, and the one discriminating question near the threshold."""

from __future__ import annotations

import pytest

from assistant.domain import Disposition
from assistant.triage.acuity import AcuityDecision, AcuityRisk


class FakeAcuity:
    """A stand-in acuity model: emergency risk 0.10 per complaint code, 0.9 with 14150."""

    thresholds = {"vitals": {"t_emergency": 0.3}, "no_vitals": {"t_emergency": 0.3}}
    metadata = {"version": "fake"}

    def emergency_threshold(self, with_vitals: bool) -> float:
        return 0.3

    def predict(self, coding, *, age_years=None, sex=None, vitals=None):  # noqa: ANN001, ANN201
        codes = {c.code for c in coding.codes}
        p = 0.9 if "14150" in codes else min(0.29, 0.1 * len(codes) + 0.1)
        return AcuityRisk(p_emergency=p, p_critical=0.01, p_admit=0.1, factors=["fake"], with_vitals=False)

    def decide(self, risk):  # noqa: ANN001, ANN201
        if risk.p_emergency >= 0.3:
            return AcuityDecision(disposition=Disposition.EMERGENCY, reasons=["fake high risk"])
        return AcuityDecision(disposition=Disposition.SELF_CARE, reasons=["fake low risk"])


@pytest.fixture()
def fake_triager(settings, hospital_db):  # noqa: ANN001, ANN201
    from assistant.triage.engine import Triager

    t = Triager(settings)
    t.__dict__["acuity"] = FakeAcuity()
    return t


def test_vignette_gives_age_and_sex(triager) -> None:  # noqa: ANN001
    r = triager.triage("A 67-year-old woman presents with cough and fever for three days")
    assert "age_from_text" in r.notes and "sex_from_text" in r.notes
    assert {"10100"} <= {c.code for c in r.complaint_codes}  # fever
    assert r.risk is not None and 0.0 <= r.risk.p_emergency <= 1.0
    assert r.reasons_en and r.reasons_en[0].startswith("complaint:") and r.reasons_zh[0].startswith("主诉")


def test_red_flags_stay_the_floor(fake_triager) -> None:  # noqa: ANN001
    r = fake_triager.triage("crushing chest pain and sweating", age=60)
    assert r.disposition.is_emergency and r.red_flags  # the fake model says self-care
    assert r.reasons_en[1].startswith("warning sign:")


def test_model_raises_but_never_lowers(fake_triager) -> None:  # noqa: ANN001
    low = fake_triager.triage("my throat is a bit sore", age=30)
    assert low.disposition is not Disposition.SELF_CARE or "ACUITY_MODEL" not in low.urgency_rules
    high = fake_triager.triage("I am short of breath", age=30)
    assert high.disposition.is_emergency and "ACUITY_MODEL" in high.urgency_rules
    assert "fake high risk" in high.reasons_en


def test_infant_and_pregnancy_never_self_care(fake_triager) -> None:  # noqa: ANN001
    for kwargs in ({"age": 0.1}, {"age": 30, "pregnant": True}, {"age": 80}):
        r = fake_triager.triage("runny nose", **kwargs)
        assert r.disposition is not Disposition.SELF_CARE, kwargs


def test_near_threshold_asks_the_discriminating_question(fake_triager) -> None:  # noqa: ANN001
    r = fake_triager.triage("cough and fever", age=40)  # two codes: risk 0.29, just below 0.3
    assert "QD_BREATH" in r.follow_up_ids  # only "yes" to breathlessness crosses it
    assert r.follow_up_ids.index("QD_BREATH") <= 2  # after the complaint's own red-flag questions
    again = fake_triager.triage("cough and fever", age=40, asked=frozenset({"QD_BREATH"}))
    assert "QD_BREATH" not in again.follow_up_ids
    said = fake_triager.triage("cough and fever, no trouble breathing", age=40)
    assert "QD_BREATH" not in said.follow_up_ids  # already answered in the text


@pytest.mark.parametrize("text, age, expected", [
    ("I have had blood in my stool on and off for a month", 57, Disposition.CONSULTATION_24),
    ("想做宫颈癌筛查", 35, Disposition.CONSULTATION),
    ("I would like to book a check up", 40, Disposition.CONSULTATION),
    ("高血压十年了", 60, Disposition.CONSULTATION),  # a named condition, no current symptom
])
def test_model_caps_for_long_standing_and_routine_requests(triager, text: str, age: float,  # noqa: ANN001
                                                            expected: Disposition) -> None:
    r = triager.triage(text, age=age)
    assert r.disposition is expected, (r.disposition, r.reasons_en)
    assert any("at most" in x for x in r.reasons_en)


def test_caps_never_touch_red_flags(triager) -> None:  # noqa: ANN001
    r = triager.triage("crushing chest pain and sweating for three weeks, I want to book a check up", age=60)
    assert r.disposition.is_emergency and r.red_flags


def test_learned_model_escalates_what_no_rule_names(triager) -> None:  # noqa: ANN001
    """ED shorthand and presentations without a red-flag pattern (the classes of misses)."""
    for text, age in (("hypoglycemic symptom", 70), ("drowsy mentality", 80), ("LOC", 45)):
        r = triager.triage(text, age=age)
        assert r.disposition.is_emergency, (text, r.reasons_en)
    quiet = triager.triage("runny nose and sneezing since yesterday", age=22)
    assert not quiet.disposition.is_emergency


def test_advice_seeking_question_is_capped_but_danger_is_not(triager) -> None:  # noqa: ANN001
    asking = triager.triage("医生您好，我头晕，是怎么回事，吃什么药好？", age=45)
    assert not asking.disposition.is_emergency
    danger = triager.triage("医生您好，突然一侧手脚无力，说话不清楚，怎么办？", age=45)
    assert danger.disposition.is_emergency and danger.red_flags
