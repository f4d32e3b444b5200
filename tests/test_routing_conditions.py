"""Condition-grounded department routing on the packaged artefacts and real data:
ICD-10 block table, condition retrieval, NHAMCS prior, warning-sign conditions, plain-word
reasons with citations, and the policy rules applied after fusion."""

from __future__ import annotations

import gzip
import json
import shutil
from pathlib import Path

import pytest

from assistant.domain import Disposition
from assistant.triage.conditions import ConditionIndex, group_of, load_groups

REPO = Path(__file__).resolve().parents[1]
KB = REPO / "knowledge_base"
SHARED = REPO.parent / "shared" / "data"


@pytest.fixture(scope="module")
def index() -> ConditionIndex:
    return ConditionIndex(KB)


def test_icd10_table_uses_catalog_codes_and_covers_the_clinical_chapters() -> None:
    from assistant.kb import default_kb

    groups = load_groups(KB / "icd10_departments.yaml")
    catalog = set(default_kb(KB).catalog)
    for g in groups:
        lo, hi = g.range.split("-")
        assert lo <= hi and g.en and g.zh and set(g.departments) <= catalog, g
    with gzip.open(SHARED / "icd10cm" / "icd10.json.gz", "rt", encoding="utf-8") as fh:
        categories = [c for c in json.load(fh) if len(c) == 3 and c[0] in "ABCDEFGHIJKLMNOPQRST"]
    missing = [c for c in categories if group_of(groups, c) is None]
    assert len(missing) / len(categories) < 0.02, missing[:20]
    assert group_of(groups, "I21.4").departments[0] == "CARDIO"  # heart attack
    assert group_of(groups, "S22").departments[0] == "THORSURG"  # broken rib
    assert group_of(groups, "K35").departments[0] == "GENSURG"  # appendicitis
    assert group_of(groups, "V01") is None and group_of(groups, "x") is None


def test_medquad_focus_table_is_derived_and_mostly_right() -> None:
    rows = [line.split("\t") for line in (REPO / "eval/routing/medquad_focus_icd10.tsv")
            .read_text(encoding="utf-8").splitlines()[1:]]
    table = {r[0]: r[1] for r in rows}
    assert len(table) >= 500
    groups = load_groups(KB / "icd10_departments.yaml")
    for focus, prefix in {"Heart Attack": "I21", "Asthma": "J45", "Psoriasis": "L40", "Migraine": "G43",
                          "Appendicitis": "K35", "Kidney Stones in Adults": "N20"}.items():
        assert table[focus].startswith(prefix), (focus, table[focus])
    for focus, department in {"Varicose Veins": "GENSURG", "Gout": "RHEUM", "Glaucoma": "OPHTH",
                              "Urinary Tract Infections": "UROL", "Diabetes": "ENDO"}.items():
        assert group_of(groups, table[focus]).departments[0] == department, (focus, table[focus])


def test_retrieval_finds_conditions_of_the_right_organ(index: ConditionIndex) -> None:
    heart = index.retrieve("chest pain on exertion tightness radiating to the left arm", k=8)
    assert heart and any(c.group.departments[0] == "CARDIO" for c in heart[:3]), heart[:3]
    skin = index.department_shares(index.retrieve("itchy red scaly patches on my elbows and knees", k=8))
    assert max(skin, key=skin.get) == "DERM"
    assert index.retrieve("") == [] and index.retrieve("胸痛") == []  # Chinese needs code labels


def test_nhamcs_prior_learned_chest_pain_and_beats_the_complaint_free_baseline(index: ConditionIndex) -> None:
    prior = index.prior(["10501"], age=60, sex="M")  # NCHS RFV 10501 chest pain
    assert prior["CARDIO"] > prior.get("THORSURG", 0.0) and prior["CARDIO"] == max(prior.values())
    assert index.prior(["99999"], age=60, sex="M") == {} and index.prior([], age=None, sex=None) == {}
    meta = json.loads((KB / "models/conditions/nhamcs_prior.json").read_text(encoding="utf-8"))
    assert meta["validation_2020"]["log_loss"] < meta["baseline_2020"]["log_loss"]
    assert meta["validation_2020"]["top3"] > meta["baseline_2020"]["top3"] + 0.2


@pytest.mark.parametrize("text", ["Crushing chest pain and sweating for 20 minutes", "胸口压榨样疼痛半小时，出冷汗"])
def test_chest_pain_with_warning_signs_ranks_cardiology_above_surgery(triager, text) -> None:
    r = triager.triage(text, age=58, sex="M")
    codes = [d.code for d in r.departments]
    assert r.disposition.is_emergency and codes[0] == "EMERG" and r.demand_signal.department == "EMERG"
    assert "CARDIO" in codes and codes.index("CARDIO") < (codes.index("THORSURG") if "THORSURG" in codes else 9)
    cardio = r.departments[codes.index("CARDIO")]
    assert "heart" in cardio.reason_en and "心" in cardio.reason_zh
    assert any("medlineplus" in c.url or "nhlbi" in c.url for c in r.citations)  # MedQuAD page cited


def test_reasons_are_plain_words_not_keyword_lists(triager) -> None:
    from assistant.triage.render import render_answer

    r = triager.triage("I have an itchy red rash on both arms for a week", age=30)
    assert r.departments[0].code == "DERM"
    for d in r.departments:
        assert "treats:" not in d.reason_en and "诊治：" not in d.reason_zh
    assert "can come from" in r.departments[0].reason_en and "Dermatology" in r.departments[0].reason_en
    assert "可能与" in r.departments[0].reason_zh and "皮肤科" in r.departments[0].reason_zh
    answer = render_answer(r)
    assert "treats:" not in answer and "Sources:" in answer


def test_learned_risk_emergency_keeps_the_specialty_first(settings, hospital_db) -> None:
    """An emergency from the acuity model alone (no warning sign) says "go to the ED now"
    and notifies the ED, but the department ranking stays the specialty."""
    from assistant.triage.acuity import AcuityDecision, AcuityRisk
    from assistant.triage.engine import Triager

    class AlwaysEmergency:
        thresholds = {"vitals": {"t_emergency": 0.3}, "no_vitals": {"t_emergency": 0.3}}
        metadata = {"version": "fake"}

        def emergency_threshold(self, with_vitals: bool) -> float:
            return 0.3

        def predict(self, coding, **kw):
            return AcuityRisk(p_emergency=0.9, p_critical=0.1, p_admit=0.5, factors=[], with_vitals=False)

        def decide(self, risk):
            return AcuityDecision(disposition=Disposition.EMERGENCY, reasons=["fake high risk"])

    t = Triager(settings, retriever=None)
    t.__dict__["acuity"] = AlwaysEmergency()
    r = t.triage("itchy rash with pus-filled pimples and blackheads on my face", age=20)
    assert r.disposition.is_emergency and not r.red_flags
    assert r.departments[0].code == "DERM" and "EMERG" not in [d.code for d in r.departments]
    assert r.demand_signal.department == "EMERG"
    assert r.departments[0].reason_en.startswith("after the emergency department")
    # the answer still names the ED on its department line, ahead of the specialty
    from assistant.triage.render import render_answer

    line = next(x for x in render_answer(r).splitlines() if x.startswith("Recommended department"))
    assert line.index("the emergency department") < line.index("Dermatology")
    from assistant.ui.app import card_html

    card = card_html(r, None)
    assert card.index("Emergency Department (EMERG)") < card.index("Specialty") < card.index("(DERM)")


def test_warning_sign_and_words_agreeing_on_the_specialty_put_it_ahead_of_the_ed(settings) -> None:
    """A known epileptic's seizure lasting ten minutes: the seizure warning sign names a
    condition Neurology cares for and the words say Neurology (TF-IDF >= ED_HANDOVER_GATE),
    so Neurology leads and the ED follows; everything that sends the patient somewhere
    (disposition, demand signal, answer) still says the ED now."""
    from assistant.triage.engine import ED_HANDOVER_GATE, Triager
    from assistant.triage.render import render_answer
    from assistant.triage.routing import probabilities

    t = Triager(settings, retriever=None, hospital=None)
    text = "癫痫病人今天抽搐不停，口吐白沫，已经十分钟了"
    assert probabilities(t.router, text)["NEURO"] >= ED_HANDOVER_GATE
    r = t.triage(text, lead_in=False)
    assert [f.rule_id for f in r.red_flags] == ["RF_SEIZURE"]
    assert r.disposition is Disposition.EMERGENCY_AMBULANCE
    assert [d.code for d in r.departments[:2]] == ["NEURO", "EMERG"]
    assert r.demand_signal.department == "EMERG"
    answer = render_answer(r)
    assert answer.startswith("**🚨")
    line = next(x for x in answer.splitlines() if x.startswith("建议科室"))
    assert line.index("急诊科") < line.index("神经内科")
    # the patient tab's card names the ED (whose doctors are suggested), then the specialty
    from assistant.ui.app import card_html

    card = card_html(r, None)
    assert card.index("急诊科 (EMERG)") < card.index("专科") < card.index("神经内科 (NEURO)")


@pytest.mark.parametrize("text", [
    # sepsis is named (Infectious Diseases) but the words say Dermatology: they disagree
    "My mum has a fever, she's confused and her skin looks blotchy",
    # unconsciousness names no single condition
    "He collapsed and is not responding",
    # a stroke is named (Neurology); the words lean to Cardiology (hypertension), unsure
    "高血压患者突然一侧手脚无力，说话不清",
])
def test_the_ed_leads_unless_sign_and_words_agree(settings, text) -> None:
    from assistant.triage.engine import Triager

    r = Triager(settings, retriever=None, hospital=None).triage(text, lead_in=False)
    assert r.red_flags and r.departments[0].code == "EMERG"


@pytest.mark.parametrize(
    ("text", "kwargs", "expected"),
    [
        ("tummy ache and diarrhoea for two days", {"age": 5}, "PEDS"),
        ("a sore throat for three days", {"age": 6}, "ENT"),  # ENT sees children directly
        ("I feel sick in the mornings and my back aches", {"age": 29, "sex": "F", "pregnant": True}, "OBGYN"),
        ("pain in my testicle for a week, no injury", {"age": 35, "sex": "M"}, "ANDRO"),
    ],
)
def test_age_sex_pregnancy_rules_apply_after_fusion(triager, text, kwargs, expected) -> None:
    r = triager.triage(text, **kwargs)
    assert r.departments[0].code == expected, [d.code for d in r.departments]


def test_routing_works_without_the_condition_artefacts(settings, tmp_path) -> None:
    from assistant.kb import KnowledgeBase
    from assistant.triage.engine import Triager

    kb_dir = tmp_path / "kb"
    shutil.copytree(KB, kb_dir, ignore=shutil.ignore_patterns("conditions"))
    assert not ConditionIndex(kb_dir).available
    r = Triager(settings, kb=KnowledgeBase(kb_dir), retriever=None, hospital=None).triage(
        "I have an itchy red rash on both arms for a week", age=30)
    assert r.departments[0].code == "DERM" and r.departments[0].reason_en and r.citations == []


def test_departments_that_do_not_see_the_patient_are_never_ranked(triager) -> None:
    """Catalog ``sex`` / ``age_below_years``: no Andrology for a woman, no Obstetrics and
    Gynaecology for a man, no Paediatrics for an adult (also not via the hospital index)."""
    woman = triager.triage("脚后跟早上下地第一步特别疼，一个多月了", age=48, sex="F")
    man = triager.triage("We've been trying for a baby for 18 months and I want a sperm test", age=34, sex="M")
    adult = triager.triage("Diarrhoea and vomiting since last night after a takeaway", age=31, sex="F")
    assert "ANDRO" not in [d.code for d in woman.departments], [d.code for d in woman.departments]
    assert "OBGYN" not in [d.code for d in man.departments], [d.code for d in man.departments]
    assert "PEDS" not in [d.code for d in adult.departments], [d.code for d in adult.departments]
    # unknown sex and age: every department may be ranked
    assert triager._sees("ANDRO", None, None) and triager._sees("PEDS", None, None)
    assert not triager._sees("PEDS", 14, None) and triager._sees("PEDS", 13.5, "M")


def test_a_child_goes_to_a_direct_specialty_only_when_the_words_point_there(triager) -> None:
    """Conditions and the NHAMCS prior alone do not send a child past paediatrics."""
    bedwetting = triager.triage("My 7 year old wets the bed a few nights a week", age=7, sex="M")
    assert bedwetting.departments[0].code == "PEDS", [d.code for d in bedwetting.departments]
    bead = triager.triage("My 5 year old pushed a bead up his nose", age=5, sex="M")
    assert bead.departments[0].code == "ENT", [d.code for d in bead.departments]


def test_chinese_complaints_reach_conditions_by_multilingual_retrieval(index: ConditionIndex, triager) -> None:
    """Chinese text finds MedQuAD conditions through the packaged multilingual vectors
    (the BM25 condition index is English): the named condition's department is supported
    and the condition is cited; non-medical text finds nothing."""
    from assistant.knowledge.crosslingual import get_multilingual_encoder, load_packaged_vectors

    encoder = get_multilingual_encoder(triager.settings)
    vectors = load_packaged_vectors(KB)
    assert encoder is not None and vectors is not None
    found = index.retrieve_multilingual(encoder.query(["我贫血好几年了，最近头晕乏力"])[0], vectors)
    assert found and found[0].group.departments[0] == "HEMAT" and "anemia" in found[0].name.lower()
    assert index.retrieve_multilingual(encoder.query(["请问医院停车场在哪里"])[0], vectors) == []
    r = triager.triage("淋巴瘤是重症吗？亲戚颈部淋巴结肿大，检查发现是淋巴瘤", lead_in=False)
    assert r.departments[0].code == "HEMAT"
    assert any("lymphoma" in c.url for c in r.citations)


def test_dense_logistic_regression_exports_exactly(settings, tmp_path) -> None:
    """A logistic regression on sentence embeddings (the embedding router) exports to
    arrays that give scikit-learn's probabilities, also after a save/load round trip;
    vectors of another width are refused."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from assistant.knowledge.crosslingual import get_multilingual_encoder
    from assistant.triage.linear_text import LinearTextModel, export
    from assistant.triage.routing import catalog_examples

    examples = [e for e in catalog_examples() if e.label in {"CARDIO", "DERM", "ENT", "PSYCH"}]
    encoder = get_multilingual_encoder(settings)
    x = encoder.passage([e.text for e in examples])
    clf = LogisticRegression(C=64.0, class_weight="balanced", max_iter=3000).fit(x, [e.label for e in examples])
    export(clf).save(tmp_path / "router.npz")
    model = LinearTextModel.load(tmp_path / "router.npz")
    queries = encoder.query(["my chest feels tight when I climb stairs", "耳朵嗡嗡响，听不清"])
    assert np.allclose(model.predict_proba_dense(queries), clf.predict_proba(queries), atol=1e-5)
    assert list(model.classes_) == list(clf.classes_)
    with pytest.raises(ValueError, match="features"):
        model.predict_proba_dense(np.zeros((1, 384)))


def test_unsure_complaints_mix_in_the_embedding_router(triager) -> None:
    """Where the TF-IDF router is unsure (largest probability below the gate), the
    embedding router knows the lay paraphrase (own cases, not from the dev sets)."""
    from assistant.triage.engine import ML_CONFIDENCE_GATE
    from assistant.triage.routing import probabilities

    for text, expected in [("心里发慌，老是睡不着，高兴不起来", "PSYCH"),
                           ("my toe is red hot and swollen after a night of beer", "RHEUM")]:
        tfidf = probabilities(triager.router, text)
        assert max(tfidf.values()) < ML_CONFIDENCE_GATE and max(tfidf, key=tfidf.get) != expected
        mixed, vector = triager._with_embedding(text, tfidf, warning_signs=None)
        assert vector is not None and vector.shape == (512,)
        assert max(mixed, key=mixed.get) == expected, sorted(mixed.items(), key=lambda kv: -kv[1])[:3]
        assert abs(sum(mixed.values()) - 1.0) < 1e-6


def test_confident_or_emergency_complaints_do_not_wait_for_the_encoder(triager) -> None:
    """A confident TF-IDF router, or a fired warning sign, keeps its own probabilities
    and computes no embedding (an emergency answer never waits for a model load)."""
    from assistant.triage.routing import probabilities

    confident = "I have a red itchy rash with silvery scales on my elbows and knees"
    words = probabilities(triager.router, confident)
    assert triager._with_embedding(confident, words, warning_signs=None) == (words, None)
    unsure = "心里发慌，老是睡不着，高兴不起来"
    words = probabilities(triager.router, unsure)
    assert triager._with_embedding(unsure, words, warning_signs=["RF_CHEST_PAIN_CARDIAC"]) == (words, None)


def test_routing_without_the_embedding_router_uses_the_tfidf_router(settings, monkeypatch) -> None:
    """Without the multilingual encoder package the router still ranks departments."""
    from assistant.triage import engine
    from assistant.triage.routing import probabilities

    monkeypatch.setattr(engine, "load_embedding_router", lambda *a, **k: None)
    monkeypatch.setattr("assistant.knowledge.crosslingual.get_multilingual_encoder", lambda *a, **k: None)
    triager = engine.Triager(settings, retriever=None, hospital=None)
    text = "my toe is red hot and swollen after a night of beer"
    words = probabilities(triager.router, text)
    assert triager._with_embedding(text, words, warning_signs=None) == (words, None)
    assert triager.triage(text, age=40, lead_in=False).departments
