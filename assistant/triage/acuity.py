"""Acuity model learned from real ED triage (NHAMCS 2018-2019): calibrated risks from coded complaints.

Three calibrated probabilities for one patient, from the coded complaint (see
:mod:`assistant.triage.complaints`), age, sex and, when given, vital signs:

* ``p_emergency``: nurse triage level 1-2 (immediate / emergent) in NHAMCS (IMMEDR), plus
  expert KTAS 1-2 for the 70 % KTAS dev train split (Moon et al., PLOS ONE 2019);
* ``p_critical``: admitted to critical care, or died in the ED, or dead on arrival
  (NHAMCS ADMIT == 1 or DIEDED == 1 or DOA == 1; the outcome of Raita et al., Crit Care
  2019;23:64);
* ``p_admit``: admitted to hospital (NHAMCS ADMITHOS == 1).

Model (trained by ``eval/urgency/train_acuity.py``), per outcome, a stack of:

1. complaint encodings learned on NHAMCS 2018-2019: smoothed target rates of every RFV code
   and 3-digit code group (max, summed log-odds deviation, first code) for the three outcomes,
   and one L2 logistic regression per outcome over :func:`feature_dict` without vitals
   (codes, code groups, age bands, sex) whose logit is one more input;
2. a gradient-boosted tree ensemble (sklearn ``HistGradientBoostingClassifier``) over those
   encodings plus age, sex, number of complaints and the raw vital signs (missing values
   handled natively by the trees);
3. a monotone piecewise-linear calibration (isotonic regression on out-of-fold scores, knots
   at the block means).

Everything is stored as plain arrays (``model.npz``, ``allow_pickle=False``: code tables,
logistic coefficients, the flattened tree nodes, calibration knots) plus ``metadata.json``
(features, thresholds, validation); prediction is a few numpy look-ups, so loading unpickles
nothing, imports neither sklearn nor torch, and takes milliseconds.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from assistant.domain import Disposition
from assistant.errors import DataError
from assistant.paths import KNOWLEDGE_BASE_DIR
from assistant.triage.complaints import ComplaintCoding

DEFAULT_MODEL_DIR = KNOWLEDGE_BASE_DIR / "models" / "acuity"
TARGETS = ("emergency", "critical", "admit")

# Age bands (years, lower bounds) of the logistic part; NEWS2 vital bands (upper bounds,
# inclusive) are used only to name abnormal vitals in the explanation.
AGE_BANDS = (0, 1, 5, 15, 25, 45, 65, 75, 85)
VITAL_BANDS: dict[str, tuple[float, ...]] = {
    "sbp": (90, 100, 110, 179, 219),      # NEWS2: <=90 / 91-100 / 101-110 / 111-219 / >=220
    "hr": (40, 50, 90, 110, 130),         # NEWS2: <=40 / 41-50 / 51-90 / 91-110 / 111-130 / >=131
    "rr": (8, 11, 20, 24),                # NEWS2: <=8 / 9-11 / 12-20 / 21-24 / >=25
    "temp_c": (35.0, 36.0, 38.0, 39.0),   # NEWS2: <=35 / 35.1-36 / 36.1-38 / 38.1-39 / >=39.1
    "spo2": (91, 93, 95),                 # NEWS2 scale 1: <=91 / 92-93 / 94-95 / >=96
}
VITAL_NORMAL_BAND = {"sbp": 3, "hr": 2, "rr": 2, "temp_c": 2, "spo2": 3}
VITAL_ORDER = ("sbp", "hr", "rr", "temp_c", "spo2")
VITAL_NAMES = {"sbp": "systolic BP", "hr": "heart rate", "rr": "respiratory rate",
               "temp_c": "temperature", "spo2": "SpO2"}
VITAL_UNITS = {"sbp": "mmHg", "hr": "/min", "rr": "/min", "temp_c": "°C", "spo2": "%"}
CLINICAL_RULES = (
    "fever (complaint or temperature >= 38 °C) under 3 months of age -> emergency "
    "(NICE NG143 'red' feature; NHAMCS records age in whole years, so the data cannot show it)",
    "a NEWS2 single-parameter score of 3 (SpO2 <= 91 %, SBP <= 90, HR <= 40 or >= 131, RR <= 8 or >= 25, "
    "temperature <= 35 °C) -> emergency (RCP 2017: urgent response)",
    "a request for a repeat prescription only (every affirmed complaint is RFV 41150 matched by a refill / "
    "prescription phrase), no abnormal vital -> at most a clinic consultation (NHAMCS 41150 is mostly "
    "not a refill: 17 % triage 1-2)",
)
"""The explicit rules layered on the learned risks (see :meth:`AcuityModel.decide`)."""
REFILL_WORDS = ("refill", "prescription", "ran out", "need my medication", "续药", "开药", "配药", "拿药", "吃完")
FEVER_CODE = "10100"
MEDICATION_CODE = "41150"
TE_STATS = ("max", "sumdev", "first", "gmax", "gsumdev")
TREE_FEATURES = (["age", "sex_m", "ncodes", *VITAL_ORDER, "vitals_given"]
                 + [f"te_{s}_{t}" for t in TARGETS for s in TE_STATS] + [f"lr_{t}" for t in TARGETS])
"""Input columns of the tree ensembles, in order (NaN = missing)."""


def _band(value: float, cuts: tuple[float, ...]) -> int:
    for i, cut in enumerate(cuts):
        if value <= cut:
            return i
    return len(cuts)


def clean_vitals(vitals: dict[str, float] | None) -> dict[str, float]:
    """The known, finite vitals of ``vitals`` (``{}`` when none)."""
    return {k: float(v) for k, v in (vitals or {}).items()
            if k in VITAL_BANDS and v is not None and math.isfinite(v)}


def feature_dict(coding: ComplaintCoding, *, age_years: float | None, sex: str | None,
                 vitals: dict[str, float] | None) -> dict[str, float]:
    """Sparse named features of one patient (the input map of the logistic part).

    Args:
        coding: the coded complaint (affirmed codes are used; negated ones are not).
        age_years: age in years (None = unknown), sex: ``"F" | "M" | None``.
        vitals: subset of ``{"sbp", "hr", "rr", "temp_c", "spo2"}`` (units as in
            :func:`assistant.triage.complaints.parse_vitals`); None or {} = not given.

    Returns:
        ``{feature name: value}`` with names ``code:<RFV>``, ``group:<RFV[:3]>``,
        ``module:<RFV[0]>``, ``ncodes``, ``nocode``, ``age:<band>``, ``age_missing``,
        ``sex:M``, ``sex_missing``, ``vitals_given``, ``<vital>:<band>``, ``<vital>:missing``.
        Names unknown to a stored model are ignored by it (the stored logistic part is
        trained without the vital-sign names; vitals reach the model through the trees).
    """
    f: dict[str, float] = {}
    codes = [c.code for c in coding.codes]
    for code in codes:
        f[f"code:{code}"] = 1.0
        f[f"group:{code[:3]}"] = 1.0
        f[f"module:{code[0]}"] = 1.0
    f["ncodes"] = float(min(len(codes), 3))
    if not codes:
        f["nocode"] = 1.0
    if age_years is None or not math.isfinite(age_years):
        f["age_missing"] = 1.0
    else:
        band = max(i for i, lo in enumerate(AGE_BANDS) if age_years >= lo)
        f[f"age:{AGE_BANDS[band]}"] = 1.0
        f["age_years_10"] = min(age_years, 100.0) / 10.0
    if sex == "M":
        f["sex:M"] = 1.0
    elif sex != "F":
        f["sex_missing"] = 1.0
    vitals = clean_vitals(vitals)
    if vitals:
        f["vitals_given"] = 1.0
        for name, cuts in VITAL_BANDS.items():
            if name in vitals:
                f[f"{name}:{_band(vitals[name], cuts)}"] = 1.0
            else:
                f[f"{name}:missing"] = 1.0
    return f


class AcuityRisk(BaseModel):
    """Calibrated risks of one patient.

    Attributes:
        p_emergency: P(triage level 1-2), in [0, 1].
        p_critical: P(critical-care admission or death in ED), in [0, 1].
        p_admit: P(hospital admission), in [0, 1].
        factors: up to 5 human-readable contributors to ``p_emergency`` (inputs whose removal
            lowers it most: "complaint: Chest pain", "age 78", "SpO2 89 %").
        with_vitals: whether vital signs were used (selects the thresholds).
        floor / cap: most / least urgent disposition allowed by the explicit clinical rules
            (:data:`CLINICAL_RULES`) for what the NHAMCS data cannot represent; None = no rule.
        rules: the rules that fired, in English.
    """

    model_config = ConfigDict(frozen=True)

    p_emergency: float = Field(ge=0.0, le=1.0)
    p_critical: float = Field(ge=0.0, le=1.0)
    p_admit: float = Field(ge=0.0, le=1.0)
    factors: list[str] = Field(default_factory=list)
    with_vitals: bool = False
    floor: Disposition | None = None
    cap: Disposition | None = None
    rules: list[str] = Field(default_factory=list)


class AcuityDecision(BaseModel):
    """A disposition derived from :class:`AcuityRisk` with the stored thresholds."""

    model_config = ConfigDict(frozen=True)

    disposition: Disposition
    reasons: list[str]


class _Trees:
    """A flattened gradient-boosted tree ensemble (binary log-loss) evaluated with numpy."""

    def __init__(self, arrays: dict[str, np.ndarray], prefix: str) -> None:
        self.feature = np.asarray(arrays[f"{prefix}_feature"], dtype=np.int64)
        self.threshold = np.asarray(arrays[f"{prefix}_threshold"], dtype=np.float64)
        self.left = np.asarray(arrays[f"{prefix}_left"], dtype=np.int64)
        self.right = np.asarray(arrays[f"{prefix}_right"], dtype=np.int64)
        self.value = np.asarray(arrays[f"{prefix}_value"], dtype=np.float64)
        self.missing_left = np.asarray(arrays[f"{prefix}_missing_left"], dtype=bool)
        self.is_leaf = np.asarray(arrays[f"{prefix}_is_leaf"], dtype=bool)
        self.roots = np.asarray(arrays[f"{prefix}_roots"], dtype=np.int64)
        self.baseline = float(np.asarray(arrays[f"{prefix}_baseline"]).ravel()[0])
        self.max_depth = int(np.asarray(arrays[f"{prefix}_max_depth"]).ravel()[0])

    def raw(self, x: np.ndarray) -> np.ndarray:
        """Raw scores (log-odds), shape ``(n,)``, of ``x`` ``(n, len(TREE_FEATURES))``."""
        n = x.shape[0]
        node = np.broadcast_to(self.roots, (n, len(self.roots))).copy()
        rows = np.arange(n)[:, None]
        for _ in range(self.max_depth + 1):
            leaf = self.is_leaf[node]
            if leaf.all():
                break
            xv = x[rows, self.feature[node]]
            go_left = np.where(np.isnan(xv), self.missing_left[node], xv <= self.threshold[node])
            nxt = np.where(go_left, self.left[node], self.right[node])
            node = np.where(leaf, node, nxt)
        return self.baseline + self.value[node].sum(axis=1)


class AcuityModel:
    """The stored acuity model (see module docstring). Build with :func:`load_acuity_model`."""

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
        self.metadata = metadata
        self.features: list[str] = list(metadata["features"])
        self.index = {name: i for i, name in enumerate(self.features)}
        self.coef = np.asarray(arrays["coef"], dtype=np.float64)          # (3, F) logistic part
        self.intercept = np.asarray(arrays["intercept"], dtype=np.float64)  # (3,)
        self.te_codes: list[str] = list(metadata["te_codes"])
        self.te_groups: list[str] = list(metadata["te_groups"])
        self.code_index = {c: i for i, c in enumerate(self.te_codes)}
        self.group_index = {g: i for i, g in enumerate(self.te_groups)}
        self.te_rate = np.asarray(arrays["te_rate"], dtype=np.float64)     # (3, n_codes)
        self.te_grate = np.asarray(arrays["te_grate"], dtype=np.float64)   # (3, n_groups)
        self.te_prior = np.asarray(arrays["te_prior"], dtype=np.float64)   # (3,)
        self.trees = [_Trees(arrays, f"tree_{t}") for t in TARGETS]
        self.cal_x = [np.asarray(arrays[f"cal_x_{t}"], dtype=np.float64) for t in TARGETS]
        self.cal_y = [np.asarray(arrays[f"cal_y_{t}"], dtype=np.float64) for t in TARGETS]
        self.thresholds: dict[str, dict[str, float]] = metadata["thresholds"]
        self.labels: dict[str, str] = metadata.get("code_labels", {})
        if self.coef.shape != (len(TARGETS), len(self.features)):
            raise DataError(f"acuity model: coef shape {self.coef.shape} != (3, {len(self.features)})")
        if list(metadata.get("tree_features", TREE_FEATURES)) != list(TREE_FEATURES):
            raise DataError("acuity model: stored tree features differ from this code's TREE_FEATURES")

    # ------------------------------------------------------------------ features
    def vector(self, features: dict[str, float]) -> np.ndarray:
        """Dense vector (shape ``(F,)``) of a :func:`feature_dict` for the logistic part."""
        x = np.zeros(len(self.features))
        for name, value in features.items():
            j = self.index.get(name)
            if j is not None:
                x[j] = value
        return x

    def encode_codes(self, codes: Sequence[str]) -> np.ndarray:
        """Complaint encodings (``TE_STATS`` per target, shape ``(3 * 5,)``; NaN when no known code)."""
        out = np.full((len(TARGETS), len(TE_STATS)), np.nan)
        ci = [self.code_index[c] for c in dict.fromkeys(codes) if c in self.code_index]
        gi = [self.group_index[g] for g in dict.fromkeys(c[:3] for c in codes) if g in self.group_index]
        prior = self.te_prior
        lo = np.log(prior / (1 - prior))
        if ci:
            r = self.te_rate[:, ci]
            out[:, 0] = r.max(axis=1)
            out[:, 1] = (np.log(r / (1 - r)) - lo[:, None]).sum(axis=1)
            first = self.code_index.get(codes[0]) if codes else None
            out[:, 2] = self.te_rate[:, first] if first is not None else np.nan
        if gi:
            gr = self.te_grate[:, gi]
            out[:, 3] = gr.max(axis=1)
            out[:, 4] = (np.log(gr / (1 - gr)) - lo[:, None]).sum(axis=1)
        return out.ravel()

    def tree_row(self, codes: Sequence[str], *, age_years: float | None, sex: str | None,
                 vitals: dict[str, float] | None) -> np.ndarray:
        """One row of tree inputs (``TREE_FEATURES`` order)."""
        vit = clean_vitals(vitals)
        fd = feature_dict(_Codes(codes), age_years=age_years, sex=sex, vitals=None)
        lr = self.vector(fd) @ self.coef.T + self.intercept
        age = float(age_years) if age_years is not None and math.isfinite(age_years) else np.nan
        sx = 1.0 if sex == "M" else 0.0 if sex == "F" else np.nan
        head = [age, sx, float(min(len(codes), 3))] + [vit.get(k, np.nan) for k in VITAL_ORDER]
        head.append(1.0 if vit else 0.0)
        return np.concatenate([np.array(head), self.encode_codes(codes), lr])

    # ------------------------------------------------------------------ prediction
    def calibrate(self, target: int, scores: np.ndarray) -> np.ndarray:
        """Monotone calibration of raw tree scores ``scores`` (any shape) for target index 0-2."""
        return np.clip(np.interp(scores, self.cal_x[target], self.cal_y[target]), 0.0, 1.0)

    def predict_rows(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape ``(n, 3)``, of tree-input rows ``x`` ``(n, len(TREE_FEATURES))``."""
        return np.stack([self.calibrate(t, self.trees[t].raw(x)) for t in range(len(TARGETS))], axis=1)

    def predict_many(self, codings: Sequence[ComplaintCoding], *, ages: Sequence[float | None],
                     sexes: Sequence[str | None], vitals: Sequence[dict[str, float] | None]) -> np.ndarray:
        """Calibrated probabilities ``(n, 3)`` for many patients (vitals None/{} = not given)."""
        x = np.stack([self.tree_row([c.code for c in cd.codes], age_years=a, sex=s, vitals=v)
                      for cd, a, s, v in zip(codings, ages, sexes, vitals, strict=True)])
        return self.predict_rows(x)

    def predict(self, coding: ComplaintCoding, *, age_years: float | None = None,
                sex: str | None = None, vitals: dict[str, float] | None = None) -> AcuityRisk:
        """Calibrated risks for one patient.

        Args:
            coding: output of :func:`assistant.triage.complaints.code_complaint`.
            age_years: years (None: use ``coding.age_years``), sex: ``"F"|"M"`` (None: ``coding.sex``).
            vitals: ``{"sbp", "hr", "rr", "temp_c", "spo2"}`` subset (None: ``coding.vitals``).

        Returns:
            :class:`AcuityRisk` with probabilities in [0, 1] and contributing factors.
        """
        age = coding.age_years if age_years is None else age_years
        sx = coding.sex if sex is None else sex
        vit = clean_vitals(coding.vitals if vitals is None else vitals)
        codes = [c.code for c in coding.codes]
        # the patient, then one variant per input left out (for the explanation)
        variants: list[tuple[str, list[str], float | None, dict[str, float]]] = [("", codes, age, vit)]
        for code in dict.fromkeys(codes):
            label = next((c.label_en for c in coding.codes if c.code == code), code)
            variants.append((f"complaint: {self.labels.get(code, label)}", [c for c in codes if c != code], age, vit))
        if age is not None and math.isfinite(age) and not 15 <= age < 65:
            variants.append((f"age {age:g}", codes, 40.0, vit))
        for name, value in vit.items():
            if _band(value, VITAL_BANDS[name]) != VITAL_NORMAL_BAND[name]:
                variants.append((f"{VITAL_NAMES[name]} {value:g} {VITAL_UNITS[name]}", codes, age,
                                 {k: v for k, v in vit.items() if k != name}))
        x = np.stack([self.tree_row(c, age_years=a, sex=sx, vitals=v) for _, c, a, v in variants])
        x[1:, TREE_FEATURES.index("vitals_given")] = x[0, TREE_FEATURES.index("vitals_given")]
        p = self.predict_rows(x)
        drop = p[0, 0] - p[1:, 0]
        factors = [variants[i + 1][0] for i in np.argsort(-drop) if drop[i] > 0.005][:5]
        floor, cap, rules = self._rules(coding, age, vit)
        return AcuityRisk(p_emergency=float(p[0, 0]), p_critical=float(p[0, 1]), p_admit=float(p[0, 2]),
                          factors=factors, with_vitals=bool(vit), floor=floor, cap=cap, rules=rules)

    @staticmethod
    def _rules(coding: ComplaintCoding, age: float | None,
               vit: dict[str, float]) -> tuple[Disposition | None, Disposition | None, list[str]]:
        """The :data:`CLINICAL_RULES` that apply: (floor, cap, reasons)."""
        codes = [c.code for c in coding.codes]
        rules: list[str] = []
        febrile = FEVER_CODE in codes or vit.get("temp_c", 0.0) >= 38.0
        if age is not None and math.isfinite(age) and age < 0.25 and febrile:
            rules.append("fever under 3 months of age")
        red = {"spo2": vit.get("spo2", 100.0) <= 91, "sbp": vit.get("sbp", 120.0) <= 90,
               "hr": not 40 < vit.get("hr", 80.0) < 131, "rr": not 8 < vit.get("rr", 16.0) < 25,
               "temp_c": vit.get("temp_c", 37.0) <= 35.0}
        for name, is_red in red.items():
            if is_red:
                rules.append(f"{VITAL_NAMES[name]} {vit[name]:g} {VITAL_UNITS[name]} (NEWS2 red)")
        if rules:
            return Disposition.EMERGENCY, None, rules
        abnormal = any(_band(v, VITAL_BANDS[k]) != VITAL_NORMAL_BAND[k] for k, v in vit.items())
        if (codes and not abnormal and all(c.code == MEDICATION_CODE for c in coding.codes)
                and all(any(w in c.evidence.lower() for w in REFILL_WORDS) for c in coding.codes)):
            return None, Disposition.CONSULTATION, ["repeat prescription request"]
        return None, None, []

    # ------------------------------------------------------------------ policy
    def decide(self, risk: AcuityRisk) -> AcuityDecision:
        """Disposition from risks (:meth:`decide_learned`), then the clinical rules: ``risk.floor``
        makes it at least that urgent, ``risk.cap`` at most that urgent (the floor wins)."""
        learned = self.decide_learned(risk)
        d = learned.disposition
        if risk.cap is not None and d.rank < risk.cap.rank:
            return AcuityDecision(disposition=risk.cap, reasons=[
                f"{'; '.join(risk.rules)}: {risk.cap.value} (learned risk alone: {learned.reasons[0]})"])
        if risk.floor is not None and d.rank > risk.floor.rank:
            return AcuityDecision(disposition=risk.floor, reasons=[
                f"clinical rule: {'; '.join(risk.rules)} -> {risk.floor.value}"] + learned.reasons)
        return learned

    def emergency_threshold(self, with_vitals: bool) -> float:
        """P(emergency) at or above which the model alone says ``emergency``.

        Inside the triage pipeline (red flags, NEWS2 and rules add emergencies of their own)
        this is ``pipeline_t_emergency``, the highest threshold whose pipeline recall on a
        NHAMCS 2019 sample plus the KTAS train split is >= 90 %
        (``eval/urgency/choose_pipeline_threshold.py``); else the model's own recall-90 %
        point ``t_emergency``. Risks between the two map to ``consultation_24``.
        """
        t = self.thresholds["vitals" if with_vitals else "no_vitals"]
        return float(t.get("pipeline_t_emergency", t["t_emergency"]))

    def decide_learned(self, risk: AcuityRisk) -> AcuityDecision:
        """Disposition from risks with the thresholds stored in the model metadata.

        Thresholds were chosen on out-of-fold 2018-2019 NHAMCS predictions, separately for
        with/without vitals (never on 2020 or KTAS); see ``metadata.json``. Rules, first match:

        * ``emergency_ambulance``: ``p_critical >= t_ambulance`` (critical-care precision >= 25 %);
        * ``emergency``: ``p_emergency >=`` :meth:`emergency_threshold` (the recall >= 90 %
          operating point of the pipeline, or of the model alone);
        * ``consultation_24`` (same day): ``p_emergency >= t_consult24`` (the band just below
          the emergency threshold, down to the recall >= 98 % point) or ``p_admit >= t_admit24``;
        * ``self_care``: ``p_emergency < t_self_care`` and ``p_admit < t_admit_self_care``;
        * else ``consultation``.

        Returns:
            :class:`AcuityDecision` (disposition + reasons in English).
        """
        t = self.thresholds["vitals" if risk.with_vitals else "no_vitals"]
        pe, pc, pa = risk.p_emergency, risk.p_critical, risk.p_admit
        top = f" ({', '.join(risk.factors[:3])})" if risk.factors else ""
        t_em = self.emergency_threshold(risk.with_vitals)
        if pc >= t["t_ambulance"]:
            return AcuityDecision(disposition=Disposition.EMERGENCY_AMBULANCE, reasons=[
                f"critical-care risk {pc:.0%} >= {t['t_ambulance']:.0%}{top}"])
        if pe >= t_em:
            return AcuityDecision(disposition=Disposition.EMERGENCY, reasons=[
                f"emergency-level triage risk {pe:.0%} >= {t_em:.0%}{top}"])
        if pe >= t["t_consult24"] or pa >= t["t_admit24"]:
            return AcuityDecision(disposition=Disposition.CONSULTATION_24, reasons=[
                f"emergency-level risk {pe:.0%}, admission risk {pa:.0%}: see a doctor today{top}"])
        if pe < t["t_self_care"] and pa < t["t_admit_self_care"]:
            return AcuityDecision(disposition=Disposition.SELF_CARE, reasons=[
                f"low emergency-level risk {pe:.0%} and admission risk {pa:.0%}"])
        return AcuityDecision(disposition=Disposition.CONSULTATION, reasons=[
            f"emergency-level risk {pe:.0%}, admission risk {pa:.0%}: book a clinic visit"])


class _Codes:
    """Minimal stand-in for :class:`ComplaintCoding` (``.codes[i].code``) used by :func:`feature_dict`."""

    class _C:
        __slots__ = ("code",)

        def __init__(self, code: str) -> None:
            self.code = code

    def __init__(self, codes: Sequence[str]) -> None:
        self.codes = [self._C(c) for c in codes]


def decide(risk: AcuityRisk, model: AcuityModel | None = None) -> AcuityDecision:
    """:meth:`AcuityModel.decide` with the default stored model."""
    return (model or load_acuity_model()).decide(risk)


@functools.lru_cache(maxsize=4)
def _load(path: str, mtime: float) -> AcuityModel:  # mtime: part of the cache key
    folder = Path(path)
    try:
        metadata = json.loads((folder / "metadata.json").read_text(encoding="utf-8"))
        with np.load(folder / "model.npz", allow_pickle=False) as data:
            arrays = {k: data[k] for k in data.files}
        return AcuityModel(arrays, metadata)
    except (OSError, ValueError, KeyError) as exc:
        raise DataError(f"invalid acuity model in {folder}: {exc}") from exc


def load_acuity_model(path: str | Path | None = None) -> AcuityModel:
    """Load (cached per file version) the stored acuity model.

    Args:
        path: folder holding ``model.npz`` and ``metadata.json``
            (default ``knowledge_base/models/acuity``).

    Returns:
        The :class:`AcuityModel`.

    Raises:
        DataError: the files are missing or inconsistent.
    """
    folder = Path(path) if path else DEFAULT_MODEL_DIR
    npz = folder / "model.npz"
    if not npz.is_file() or not (folder / "metadata.json").is_file():
        raise DataError(f"acuity model not found in {folder} (run eval/urgency/train_acuity.py)")
    return _load(str(folder.resolve()), npz.stat().st_mtime)


__all__ = [
    "CLINICAL_RULES",
    "DEFAULT_MODEL_DIR",
    "TARGETS",
    "TREE_FEATURES",
    "AcuityDecision",
    "AcuityModel",
    "AcuityRisk",
    "decide",
    "feature_dict",
    "load_acuity_model",
]
