"""Red-flag rules: the written case set, context handling, rule hygiene and robustness."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from assistant.domain import Disposition
from assistant.errors import DataError
from assistant.triage.red_flags import (
    DEFAULT_RULES_PATH,
    RedFlagHit,
    RedFlagRule,
    load_red_flag_rules,
    match_red_flags,
    normalize_text,
)

CASES_DIR = Path(__file__).resolve().parents[1] / "eval" / "cases"


def _read(name: str) -> list[dict]:
    with (CASES_DIR / name).open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


RF_CASES = _read("red_flags.jsonl")
TRIAGE_CASES = _read("triage_cases.jsonl")
SMOKE_CASES = _read("triage_smoke.jsonl")
RULES = load_red_flag_rules()
RULE_IDS = {r.id for r in RULES}


def _fired(text: str, case: dict | None = None) -> set[str]:
    case = case or {}
    hits = match_red_flags(text, age_years=case.get("age"), sex=case.get("sex"),
                           pregnant=case.get("pregnant"))
    return {h.rule_id for h in hits}


# --------------------------------------------------------------------------- case set
@pytest.mark.parametrize("case", RF_CASES, ids=[c["id"] for c in RF_CASES])
def test_red_flag_case(case: dict) -> None:
    """Positives fire exactly their rules; negatives fire nothing."""
    assert _fired(case["text"], case) == set(case["expect_rule_ids"]), case.get("note", "")


def test_case_set_shape() -> None:
    ids = [c["id"] for c in RF_CASES]
    assert len(ids) == len(set(ids))
    assert len(RF_CASES) >= 120
    negatives = [c for c in RF_CASES if not c["expect_rule_ids"]]
    assert len(negatives) >= 40
    langs = {lang: sum(c["lang"] == lang for c in RF_CASES) for lang in ("en", "zh")}
    assert min(langs.values()) >= 0.35 * len(RF_CASES), langs
    for case in RF_CASES:
        assert set(case["expect_rule_ids"]) <= RULE_IDS, case["id"]
        assert case["lang"] in ("en", "zh")


def test_every_rule_has_positive_cases_in_both_languages() -> None:
    for rule_id in RULE_IDS:
        langs = {c["lang"] for c in RF_CASES if rule_id in c["expect_rule_ids"]}
        assert langs == {"en", "zh"}, f"{rule_id} has positives only in {langs}"


# --------------------------------------------------------------------------- rule hygiene
@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_rule_has_source_and_bilingual_advice(rule: RedFlagRule) -> None:
    assert rule.disposition.is_emergency
    assert rule.department == "EMERG"
    assert re.search(r"NICE|NHS|AHA|Sepsis|共识|Resuscitation|RCOG|BTS|JBDS|ATLS|GIRFT", rule.source)
    assert rule.advice_en and not re.search(r"[\u4e00-\u9fff]", rule.advice_en)
    assert re.search(r"[\u4e00-\u9fff]", rule.advice_zh) and re.search(r"[\u4e00-\u9fff]", rule.name_zh)


def test_required_rule_coverage() -> None:
    required = {
        "RF_CHEST_PAIN_CARDIAC", "RF_STROKE", "RF_SEVERE_BREATHING", "RF_ANAPHYLAXIS",
        "RF_SEVERE_BLEEDING", "RF_GI_BLEEDING", "RF_UNCONSCIOUS", "RF_SEIZURE",
        "RF_SUICIDE_SELF_HARM", "RF_MENINGITIS", "RF_PREGNANCY_BLEEDING_PAIN", "RF_INFANT_FEVER",
        "RF_SEPSIS", "RF_THUNDERCLAP_HEADACHE", "RF_HEAD_INJURY", "RF_POISONING_OVERDOSE",
        "RF_SEVERE_BURN", "RF_TESTICULAR_TORSION", "RF_ACUTE_ABDOMEN", "RF_FEBRILE_SEIZURE_CHILD",
        "RF_DIABETIC_EMERGENCY", "RF_CHEST_TRAUMA", "RF_ECTOPIC",
    }
    assert required <= RULE_IDS


def test_rules_are_cached() -> None:
    assert load_red_flag_rules()[0] is load_red_flag_rules()[0]
    assert load_red_flag_rules(DEFAULT_RULES_PATH)[0] is RULES[0]


def _write_rules(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(body, encoding="utf-8")
    return path


_RULE = """
rules:
  - id: RF_TEST
    name_en: Test rule
    name_zh: 测试规则
    disposition: {disposition}
    department: EMERG
    source: 'NHS.uk test page (for the test only)'
    advice_en: 'Go to the emergency department now.'
    advice_zh: '请立即去急诊。'
    match:
      - ['{pattern}']
"""


@pytest.mark.parametrize(
    ("disposition", "pattern", "message"),
    [
        ("emergency", "chest.*pain", "unbounded"),
        ("emergency", "@nowhere", "unknown lexicon"),
        ("consultation", "chest pain", "emergency"),
        ("emergency", "(unclosed", "bad regex"),
    ],
)
def test_invalid_rules_raise_data_error(tmp_path: Path, disposition: str, pattern: str,
                                        message: str) -> None:
    path = _write_rules(tmp_path, _RULE.format(disposition=disposition, pattern=pattern))
    with pytest.raises(DataError, match=message):
        load_red_flag_rules(path)


def test_custom_rule_file_uses_default_context(tmp_path: Path) -> None:
    path = _write_rules(tmp_path, _RULE.format(disposition="emergency", pattern=r"\bchest pain\b"))
    rules = load_red_flag_rules(path)
    assert [h.rule_id for h in match_red_flags("I have chest pain", rules=rules)] == ["RF_TEST"]
    assert match_red_flags("no chest pain", rules=rules) == []


def test_missing_rule_file(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="not found"):
        load_red_flag_rules(tmp_path / "nope.yaml")


# --------------------------------------------------------------------------- context
@pytest.mark.parametrize("text", [
    "no chest pain", "denies shortness of breath and chest pain", "I'm not short of breath",
    "without fever, just tired and a stiff neck", "没有胸痛", "不发烧，脖子有点硬", "无呼吸困难",
    "否认胸痛、胸闷", "my father had a stroke", "history of heart attack",
    "last year I had a seizure", "我爸爸中风过", "既往有癫痫发作", "家族史：父亲心梗",
])
def test_negated_or_historical_mentions_do_not_fire(text: str) -> None:
    assert _fired(text) == set()


@pytest.mark.parametrize(("text", "age", "rule"), [
    ("my baby has a fever of 39", 0.1, "RF_INFANT_FEVER"),
    ("宝宝两个月大，发烧39度", None, "RF_INFANT_FEVER"),
    ("no chest pain before, but now crushing chest pain and sweating", None, "RF_CHEST_PAIN_CARDIAC"),
    ("我爸现在胸口剧痛，出冷汗", None, "RF_CHEST_PAIN_CARDIAC"),
    ("I had a stroke years ago and now my face is drooping again", None, "RF_STROKE"),
    ("ＣＨＥＳＴ　ＰＡＩＮ　and　ＳＷＥＡＴＩＮＧ", None, "RF_CHEST_PAIN_CARDIAC"),
    ("chest    pain\n\nand   sweating", None, "RF_CHEST_PAIN_CARDIAC"),
    ("I can't breathe", None, "RF_SEVERE_BREATHING"),
    ("I cant breathe", None, "RF_SEVERE_BREATHING"),
])
def test_current_mentions_fire(text: str, age: float | None, rule: str) -> None:
    assert rule in _fired(text, {"age": age})


def test_temperature_thresholds_for_infants() -> None:
    assert _fired("my 6 week old has a temperature of 38.0") == {"RF_INFANT_FEVER"}
    assert _fired("my 6 week old has a temperature of 37.9") == set()
    assert _fired("my 6 week old is 100.6 F") == {"RF_INFANT_FEVER"}
    # 94.5 is Fahrenheit (34.7 °C, vitals.celsius): a stated temperature below 38 °C, so
    # "fever" alone does not fire; the NEWS2 vital sign escalates it (test_triage.py)
    assert _fired("my 6 week old has a fever, temperature 94.5") == set()
    assert _fired("宝宝50天，体温三十八度五") == {"RF_INFANT_FEVER"}
    assert _fired("my 4 month old has a fever of 39") == set()
    assert _fired("baby has a fever", {"age": 0.2}) == {"RF_INFANT_FEVER"}
    assert _fired("baby has a fever", {"age": 0.3}) == set()


def test_sex_and_pregnancy_context() -> None:
    torsion = "sudden severe pain in my left testicle"
    assert "RF_TESTICULAR_TORSION" in _fired(torsion, {"sex": "M"})
    assert "RF_TESTICULAR_TORSION" not in _fired(torsion, {"sex": "F"})
    bleeding = "some bleeding and cramps since this morning"
    assert "RF_PREGNANCY_BLEEDING_PAIN" in _fired(bleeding, {"pregnant": True, "sex": "F"})
    assert "RF_PREGNANCY_BLEEDING_PAIN" not in _fired(bleeding, {"pregnant": None})
    assert "RF_PREGNANCY_BLEEDING_PAIN" not in _fired("I'm pregnant and bleeding", {"sex": "M"})
    assert "RF_PREGNANCY_BLEEDING_PAIN" in _fired("I'm pregnant and bleeding", {"sex": "female"})


def test_hit_fields_and_order() -> None:
    hits = match_red_flags("my 2 year old has a fever of 39.5 and is having a seizure, and she "
                           "swallowed grandma's pills")
    assert [h.rule_id for h in hits][:2] == ["RF_SEIZURE", "RF_FEBRILE_SEIZURE_CHILD"]
    assert [h.disposition for h in hits] == sorted((h.disposition for h in hits), key=lambda d: d.rank)
    assert hits[-1].rule_id == "RF_POISONING_OVERDOSE"
    assert hits[-1].disposition is Disposition.EMERGENCY
    norm = normalize_text("my 2 year old has a fever of 39.5 and is having a seizure")
    for hit in hits:
        assert isinstance(hit, RedFlagHit)
        assert hit.evidence and hit.source and hit.advice_en and hit.advice_zh
    assert hits[0].evidence in norm


def test_bytes_and_empty_input() -> None:
    assert match_red_flags("") == []
    assert match_red_flags("   \n ") == []
    assert _fired("胸口剧痛，出冷汗".encode()) == {"RF_CHEST_PAIN_CARDIAC"}  # type: ignore[arg-type]


# --------------------------------------------------------------------------- triage cases
EM_CASES = [c for c in TRIAGE_CASES if c["gold_urgency3"] == "em"]
NON_EM_CASES = [c for c in TRIAGE_CASES if c["gold_urgency3"] != "em"]


@pytest.mark.parametrize("case", EM_CASES, ids=[c["id"] for c in EM_CASES])
def test_emergency_triage_case_matches_a_red_flag(case: dict) -> None:
    fired = _fired(case["text"], case)
    if case.get("red_flag_expected", True):
        assert fired, f"{case['id']} is an emergency but no red flag fired"
    assert case["gold_departments"][0] == "EMERG"


@pytest.mark.parametrize("case", NON_EM_CASES, ids=[c["id"] for c in NON_EM_CASES])
def test_non_emergency_triage_case_fires_no_red_flag(case: dict) -> None:
    assert _fired(case["text"], case) == set(), case.get("note", "")


def test_triage_case_set_shape() -> None:
    departments = {
        "EMERG", "GENMED", "CARDIO", "RESP", "GASTRO", "HEPATO", "NEURO", "ENDO", "NEPHRO",
        "INFECT", "HEMAT", "RHEUM", "GENSURG", "ORTHO", "UROL", "NEUROSURG", "THORSURG",
        "OBGYN", "PEDS", "DERM", "OPHTH", "ENT", "DENT", "PSYCH", "ONCO", "ANDRO",
    }
    ids = [c["id"] for c in TRIAGE_CASES]
    assert len(ids) == len(set(ids)) and len(TRIAGE_CASES) >= 160
    assert sum(c["lang"] == "zh" for c in TRIAGE_CASES) >= 60
    assert {c["gold_disposition"] for c in TRIAGE_CASES} == {d.value for d in Disposition}
    assert {d for c in TRIAGE_CASES for d in c["gold_departments"]} == departments
    for case in TRIAGE_CASES:
        assert Disposition(case["gold_disposition"]).urgency3 == case["gold_urgency3"], case["id"]
        assert set(case["gold_departments"]) <= departments and case["gold_departments"]
        assert case["source"] == "written:v1" and case["lang"] in ("en", "zh")
        assert case["sex"] in ("F", "M", None) and case["pregnant"] in (True, False, None)
        if case["age"] is not None and case["age"] < 14 and case["gold_urgency3"] != "em":
            assert case["gold_departments"][0] in {"PEDS", "OPHTH", "ENT", "DENT", "UROL", "GENSURG",
                                                   "ORTHO"}, case["id"]


def test_smoke_set_is_a_subset() -> None:
    by_id = {c["id"]: c for c in TRIAGE_CASES}
    assert len(SMOKE_CASES) == 30
    assert all(by_id.get(c["id"]) == c for c in SMOKE_CASES)
    assert sum(c["gold_urgency3"] == "em" for c in SMOKE_CASES) >= 10
    # the CI gate checks the deterministic safety floor: its emergencies are red-flag emergencies
    assert all(c.get("red_flag_expected", True) for c in SMOKE_CASES if c["gold_urgency3"] == "em")
    assert {c["lang"] for c in SMOKE_CASES} == {"en", "zh"}
    assert {c["gold_disposition"] for c in SMOKE_CASES} == {d.value for d in Disposition}


# --------------------------------------------------------------------------- robustness
@pytest.mark.timeout(60)  # catastrophic backtracking guard; the speed figure: benchmarks/bench_red_flags.py
@pytest.mark.parametrize("text", [
    "a" * 1_000_000,
    "胸" * 1_000_000,
    "not " * 250_000,
    "chest pain " * 90_000 + "sweating",
    ("I have a mild cough and no fever. " * 30_000)[:1_000_000],
    "(" * 500_000 + "没有" * 250_000,
    ("chset crushng breathng swaeting qwxz " * 30_000)[:1_000_000],
    "胸口" + "压" * 1_000_000 + "痛",
])
def test_one_megabyte_input_completes(text: str) -> None:
    assert isinstance(match_red_flags(text), list)


@pytest.mark.timeout(120)
def test_every_written_case_completes() -> None:
    """All written messages run without error (speed: ``benchmarks/bench_red_flags.py``)."""
    for case in RF_CASES + TRIAGE_CASES:
        assert isinstance(match_red_flags(case["text"]), list)


# --------------------------------------------------------------------------- context scope
@pytest.mark.parametrize(("text", "rule"), [
    # current-episode cues are not history (ConText: a cue governs only the phrase it attaches to)
    ("previous night: worst headache of my life, came on suddenly", "RF_THUNDERCLAP_HEADACHE"),
    ("unlike previous headaches - worst headache of my life", "RF_THUNDERCLAP_HEADACHE"),
    ("worst headache of my life and a history of migraines", "RF_THUNDERCLAP_HEADACHE"),
    ("I've had migraines before but this is the worst headache of my life", "RF_THUNDERCLAP_HEADACHE"),
    ("this time it is the worst headache of my life, unlike my usual migraines", "RF_THUNDERCLAP_HEADACHE"),
    ("the night before I had crushing chest pain and sweating", "RF_CHEST_PAIN_CARDIAC"),
    ("和以前的头痛不一样，突然剧烈头痛", "RF_THUNDERCLAP_HEADACHE"),
    ("从来没这么痛过的头疼，一下子就来了", "RF_THUNDERCLAP_HEADACHE"),
    ("以前也头痛，这次是突然炸裂样的剧烈头痛", "RF_THUNDERCLAP_HEADACHE"),
    ("she had a seizure years ago and now she is seizing again", "RF_SEIZURE"),
    ("my son passed out and isnt waking up", "RF_UNCONSCIOUS"),
    ("my dad is having a stroke", "RF_STROKE"),
    ("我爸爸刚才中风了", "RF_STROKE"),
])
def test_history_cues_do_not_reach_the_current_episode(text: str, rule: str) -> None:
    assert rule in _fired(text)


@pytest.mark.parametrize("text", [
    "my father had a stroke", "history of heart attack 5 years ago", "我爸爸中风过", "如何预防中风",
    "no chest pain", "my friend overdosed years ago", "heart attacks run in my family",
    "stroke runs in my family", "I had a stroke in 2015", "previously diagnosed with epilepsy",
    "I had chest pain and sweating the previous week", "what are the symptoms of a heart attack",
    "我妈妈十年前得过脑梗", "家族史：父亲心梗", "chest is not painful, just sweating after the gym",
    "胸口不痛，出冷汗",
])
def test_history_family_hypothetical_and_negation_still_hold(text: str) -> None:
    assert _fired(text) == set()


def test_affirmed_spans_keep_normalize_text_offsets() -> None:
    from assistant.triage.red_flags import affirmed_spans, is_affirmed

    text = "No fever. Crushing CHEST pain now"
    pattern = re.compile(r"chest pain")
    spans = affirmed_spans(text, pattern)
    assert [normalize_text(text)[s:e] for s, e in spans] == ["chest pain"]
    assert not is_affirmed("no chest pain", pattern)
    assert not is_affirmed("my father had chest pain", pattern)


# NHS.uk "What to do if someone has a seizure": in someone with known epilepsy, call 999 only
# for a first seizure, one over 5 minutes or not stopping, several without waking, not waking
# up, an injury, trouble breathing or pregnancy (RF_SEIZURE, clause `unless_known`)
@pytest.mark.parametrize("text", [
    "My son has epilepsy and had one of his usual seizures this morning, it lasted a minute and he is fine now",
    "I am epileptic and had a fit at work today, I feel tired but ok",
    "he is on levetiracetam and had a short seizure last night",
    "我从小就患癫痫病，现在没断时间都会复发，而且复发的时候就会昏倒",
    "我儿子有癫痫，今天又抽了一次，一分钟就好了",
    "我癫痫病有五年的历史，一直吃丙戊酸，昨天突然四肢抽搐了一下",
])
def test_known_epilepsy_without_escalation_criteria_does_not_fire(text: str) -> None:
    assert "RF_SEIZURE" not in _fired(text)


@pytest.mark.parametrize("text", [
    "My son has epilepsy and is having a seizure right now, it won't stop",
    "my husband has epilepsy, he had a seizure and hit his head",
    "my daughter has epilepsy, she had a seizure 20 minutes ago and still hasn't woken up",
    "she has epilepsy and is pregnant and had a seizure just now",
    "我儿子有癫痫，今天抽了十分钟还不停",
    "我妈妈有癫痫，刚才抽搐，摔伤了头",
    "怀孕7个月，有癫痫，刚才抽搐了",
    # not known epilepsy: a seizure now always fires
    "my husband is having a seizure",
    "老人今天早上突然倒在地上，手脚抽搐，口吐白沫",
    "孩子抽了五分钟了",
    "is it epilepsy? my son just had a seizure for the first time",
    "no history of epilepsy, she is seizing now",
])
def test_seizure_with_escalation_criteria_or_without_known_epilepsy_fires(text: str) -> None:
    assert "RF_SEIZURE" in _fired(text)


@pytest.mark.parametrize("text, fires", [
    ("腿老是抽搐是癫痫吗", False),  # one limb twitching is not a seizure
    ("我一直在抽烟，咳嗽", False),
    ("有什么好的方法治疗羊癫疯", False),  # a disease name, not an event
    ("他腿抽搐后全身抽搐，口吐白沫", True),  # generalised signs are never vetoed by a limb
    ("小腿抽筋，现在全身抽搐", True),
    ("犯了羊癫疯，正在抽", True),
    ("my leg cramped and now his whole body is jerking", True),
])
def test_limb_twitching_and_disease_names_are_not_seizures(text: str, fires: bool) -> None:
    assert ("RF_SEIZURE" in _fired(text)) is fires
