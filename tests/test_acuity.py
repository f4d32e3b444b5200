"""Acuity model: the stored model loads, ranks sensibly, and its recorded 2020 figures reproduce."""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from assistant.domain import Disposition
from assistant.triage.acuity import DEFAULT_MODEL_DIR, TARGETS, TREE_FEATURES, load_acuity_model
from assistant.triage.complaints import code_complaint

ROOT = Path(__file__).resolve().parents[1]
NHAMCS = ROOT.parent / "shared" / "data" / "nhamcs" / "nhamcs_ed_2018_2020.csv"


@pytest.fixture(scope="module")
def model():
    return load_acuity_model()


def test_stored_model_files_and_metadata(model):
    assert (DEFAULT_MODEL_DIR / "model.npz").stat().st_size < 5_000_000
    meta = json.loads((DEFAULT_MODEL_DIR / "metadata.json").read_text(encoding="utf-8"))
    for key in ("version", "training_data", "date_split", "thresholds", "validation", "features"):
        assert key in meta
    for view in ("vitals", "no_vitals"):
        t = meta["thresholds"][view]
        for name in ("t_emergency", "t_emergency_r95", "t_consult24", "t_self_care", "t_ambulance",
                     "t_admit24", "t_admit_self_care"):
            assert 0.0 <= t[name] <= 1.0
        assert t["t_emergency_r95"] <= t["t_emergency"]
        assert t["t_self_care"] <= t["t_consult24"] <= t["t_emergency"]


def test_chest_pain_hypoxic_elder_outranks_sore_throat(model):
    sick = model.predict(code_complaint("chest pain, shortness of breath"), age_years=70, sex="M",
                         vitals={"spo2": 88})
    well = model.predict(code_complaint("sore throat"), age_years=25, sex="F", vitals=None)
    assert sick.p_emergency > well.p_emergency
    assert sick.p_critical > well.p_critical and sick.p_admit > well.p_admit
    for risk in (sick, well):
        for p in (risk.p_emergency, risk.p_critical, risk.p_admit):
            assert 0.0 <= p <= 1.0
    assert sick.with_vitals and not well.with_vitals
    assert any("SpO2" in f for f in sick.factors) or any("complaint" in f for f in sick.factors)
    assert model.decide(sick).disposition.is_emergency
    assert not model.decide(well).disposition.is_emergency


def test_vitals_read_from_text_change_the_risk(model):
    plain = code_complaint("shortness of breath")
    with_v = code_complaint("shortness of breath. SBP 85 HR 130 RR 30 BT 38.9 SpO2 86")
    assert with_v.code_set == plain.code_set
    low = model.predict(plain, age_years=60, sex="F")
    high = model.predict(with_v, age_years=60, sex="F")
    assert high.with_vitals and high.p_emergency > low.p_emergency


def test_decide_returns_disposition_with_reasons(model):
    risk = model.predict(code_complaint("cardiac arrest"), age_years=70, sex="M")
    decision = model.decide(risk)
    assert decision.disposition in (Disposition.EMERGENCY_AMBULANCE, Disposition.EMERGENCY)
    assert decision.reasons and isinstance(decision.reasons[0], str)
    mild = model.decide(model.predict(code_complaint("medication refill"), age_years=30, sex="F"))
    assert not mild.disposition.is_emergency
    assert mild.disposition.rank > decision.disposition.rank
    assert model.decide(model.predict(code_complaint("sore throat"), age_years=25, sex="F")).disposition \
        in (Disposition.CONSULTATION, Disposition.SELF_CARE, Disposition.CONSULTATION_24)


@pytest.mark.parametrize("text,age,sex", [
    ("medication refill", 30, "F"), ("sore throat", 25, "F"), ("mild rash", 28, "M"),
    ("runny nose", 22, "F"), ("ankle sprain, walking fine", 24, "M"), ("I need a refill of my pills", 35, "M"),
])
def test_low_risk_lay_complaints_of_young_adults_are_not_emergency(model, text, age, sex):
    risk = model.predict(code_complaint(text), age_years=age, sex=sex, vitals={})
    assert not risk.with_vitals
    assert not model.decide(risk).disposition.is_emergency, (text, risk)


@pytest.mark.parametrize("text,age,vitals", [
    ("chest pain", 60, {}), ("shortness of breath", 55, {"spo2": 88}), ("unresponsive", 45, {}),
    ("hypoglycemia with confusion", 60, {}), ("fever", 2 / 12, {}), ("cardiac arrest", 70, {}),
])
def test_red_flag_presentations_are_emergency(model, text, age, vitals):
    risk = model.predict(code_complaint(text), age_years=age, sex="M", vitals=vitals)
    assert model.decide(risk).disposition.is_emergency, (text, risk)


def test_band_below_emergency_threshold_is_same_day(model):
    from assistant.triage.acuity import AcuityRisk

    for view, wv in (("no_vitals", False), ("vitals", True)):
        t = model.thresholds[view]
        assert t["t_consult24"] < t["t_emergency"]
        below = AcuityRisk(p_emergency=(t["t_consult24"] + t["t_emergency"]) / 2, p_critical=0.0,
                           p_admit=0.0, with_vitals=wv)
        assert model.decide(below).disposition is Disposition.CONSULTATION_24
        t_em = model.emergency_threshold(wv)  # the pipeline's operating point (>= the model's own)
        assert t_em >= t["t_emergency"]
        at = AcuityRisk(p_emergency=t_em, p_critical=0.0, p_admit=0.0, with_vitals=wv)
        assert model.decide(at).disposition is Disposition.EMERGENCY
        between = AcuityRisk(p_emergency=(t["t_emergency"] + t_em) / 2, p_critical=0.0, p_admit=0.0,
                             with_vitals=wv)
        if t_em > t["t_emergency"]:
            assert model.decide(between).disposition is Disposition.CONSULTATION_24


def test_stored_model_is_small_arrays_without_pickle():
    import numpy as np

    npz = DEFAULT_MODEL_DIR / "model.npz"
    assert npz.stat().st_size < 5_000_000
    with np.load(npz, allow_pickle=False) as arrays:  # raises if any entry needs pickle
        assert all(arrays[k].dtype != object for k in arrays.files)


def test_loading_does_not_import_torch():
    import subprocess

    code = ("import sys; from assistant.triage.acuity import load_acuity_model; load_acuity_model(); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip().endswith("False")


@pytest.mark.skipif(not NHAMCS.is_file(), reason="shared NHAMCS data not present")
def test_recorded_2020_recall_reproduces_on_a_sample(model):
    """Recall at the stored no-vitals threshold on a fixed 1,500-visit 2020 sample is within
    the sampling error of the recall recorded in metadata.json."""
    meta = model.metadata
    recorded = next(r for r in meta["validation"]
                    if r["name"].startswith("NHAMCS 2020, emergency, no vitals"))
    op = recorded["points"]["recall>=90% (t_emergency)"]
    t = meta["thresholds"]["no_vitals"]["t_emergency"]
    assert op["threshold"] == pytest.approx(t, abs=1e-4)
    rows = []
    with NHAMCS.open(encoding="utf-8") as fh:
        for r in csv.DictReader(fh):
            if r["YEAR"] == "2020" and r["IMMEDR"] in ("1", "2", "3", "4", "5"):
                rows.append(r)
    rng = np.random.default_rng(0)
    sample = [rows[i] for i in rng.choice(len(rows), 1500, replace=False)]
    y, p = [], []
    for r in sample:
        text = "; ".join(x for x in (r["RFV1_TEXT"], r["RFV2_TEXT"]) if x and x != "Blank") + "."
        sex = "F" if r["SEX"] == "1" else "M"
        risk = model.predict(code_complaint(text), age_years=float(r["AGE"]), sex=sex, vitals={})
        y.append(r["IMMEDR"] in ("1", "2"))
        p.append(risk.p_emergency)
    y_arr, p_arr = np.array(y), np.array(p)
    recall = float((p_arr[y_arr] >= t).mean())
    se = (op["recall"] * (1 - op["recall"]) / y_arr.sum()) ** 0.5
    assert abs(recall - op["recall"]) <= 3 * se + 0.01, (recall, op["recall"])


def test_targets_and_feature_map_are_consistent(model):
    assert TARGETS == ("emergency", "critical", "admit")
    assert model.coef.shape == (3, len(model.features))
    assert any(f.startswith("code:") for f in model.features)
    assert model.metadata["tree_features"] == list(TREE_FEATURES)
    x = np.zeros((2, len(TREE_FEATURES)))
    x[1, :] = np.nan
    assert model.predict_rows(x).shape == (2, 3)
