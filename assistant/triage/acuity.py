"""Acuity model learned from real ED triage (NHAMCS 2018-2019): calibrated risks from coded complaints.

Three calibrated probabilities for one patient, from the coded complaint (see
:mod:`assistant.triage.complaints`), age, sex and, when given, vital signs:

* ``p_emergency``: nurse triage level 1-2 (immediate / emergent) in NHAMCS (IMMEDR), plus
  expert KTAS 1-2 for the 70 % KTAS dev train split (Moon et al., PLOS ONE 2019);
* ``p_critical``: admitted to critical care, or died in the ED, or dead on arrival
  (NHAMCS ADMIT == 1 or DIEDED == 1 or DOA == 1; the outcome of Raita et al., Crit Care
  2019;23:64);
* ``p_admit``: admitted to hospital (NHAMCS ADMITHOS == 1).

Model: one L2 logistic regression per outcome over a fixed feature map (complaint codes,
code groups, age bands, sex, vital-sign bands with missing indicators), calibrated with
isotonic regression fitted on out-of-fold scores. It is trained by
``eval/urgency/train_acuity.py`` and stored as plain numbers (``model.npz``: coefficient
matrix, intercepts, isotonic knots; ``metadata.json``: features, thresholds, validation
metrics), so loading unpickles nothing and takes milliseconds.

Vital-sign bands follow NEWS2 (Royal College of Physicians 2017) cut-offs; the weights of
every band are learned, not taken from NEWS2. Nothing here imports torch.
"""

from __future__ import annotations

import functools
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from assistant.domain import Disposition
from assistant.errors import DataError
from assistant.triage.complaints import ComplaintCoding

DEFAULT_MODEL_DIR = Path(__file__).resolve().parents[2] / "knowledge_base" / "models" / "acuity"
TARGETS = ("emergency", "critical", "admit")

# Age bands (years, lower bounds) and NEWS2-style vital bands (upper bounds, inclusive).
AGE_BANDS = (0, 1, 5, 15, 25, 45, 65, 75, 85)
VITAL_BANDS: dict[str, tuple[float, ...]] = {
    "sbp": (90, 100, 110, 179, 219),      # NEWS2: <=90 / 91-100 / 101-110 / 111-219 / >=220
    "hr": (40, 50, 90, 110, 130),         # NEWS2: <=40 / 41-50 / 51-90 / 91-110 / 111-130 / >=131
    "rr": (8, 11, 20, 24),                # NEWS2: <=8 / 9-11 / 12-20 / 21-24 / >=25
    "temp_c": (35.0, 36.0, 38.0, 39.0),   # NEWS2: <=35 / 35.1-36 / 36.1-38 / 38.1-39 / >=39.1
    "spo2": (91, 93, 95),                 # NEWS2 scale 1: <=91 / 92-93 / 94-95 / >=96
}
VITAL_NAMES = {"sbp": "systolic BP", "hr": "heart rate", "rr": "respiratory rate",
               "temp_c": "temperature", "spo2": "SpO2"}
VITAL_UNITS = {"sbp": "mmHg", "hr": "/min", "rr": "/min", "temp_c": "°C", "spo2": "%"}


def _band(value: float, cuts: tuple[float, ...]) -> int:
    for i, cut in enumerate(cuts):
        if value <= cut:
            return i
    return len(cuts)


def feature_dict(coding: ComplaintCoding, *, age_years: float | None, sex: str | None,
                 vitals: dict[str, float] | None) -> dict[str, float]:
    """Sparse named features of one patient (the model's input map).

    Args:
        coding: the coded complaint (affirmed codes are used; negated ones are not).
        age_years: age in years (None = unknown), sex: ``"F" | "M" | None``.
        vitals: subset of ``{"sbp", "hr", "rr", "temp_c", "spo2"}`` (units as in
            :func:`assistant.triage.complaints.parse_vitals`); None or {} = not given.

    Returns:
        ``{feature name: value}`` with names ``code:<RFV>``, ``group:<RFV[:3]>``,
        ``module:<RFV[0]>``, ``ncodes``, ``nocode``, ``age:<band>``, ``age_missing``,
        ``sex:M``, ``sex_missing``, ``vitals_given``, ``<vital>:<band>``, ``<vital>:missing``.
        Names unknown to a stored model are ignored by it.
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
    vitals = {k: v for k, v in (vitals or {}).items() if k in VITAL_BANDS and v is not None
              and math.isfinite(v)}
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
        factors: up to 5 human-readable contributors to ``p_emergency``
            ("complaint: Chest pain", "age 78", "SpO2 89 %").
        with_vitals: whether vital signs were used (selects the thresholds).
    """

    model_config = ConfigDict(frozen=True)

    p_emergency: float = Field(ge=0.0, le=1.0)
    p_critical: float = Field(ge=0.0, le=1.0)
    p_admit: float = Field(ge=0.0, le=1.0)
    factors: list[str] = Field(default_factory=list)
    with_vitals: bool = False


class AcuityDecision(BaseModel):
    """A disposition derived from :class:`AcuityRisk` with the stored thresholds."""

    model_config = ConfigDict(frozen=True)

    disposition: Disposition
    reasons: list[str]


class AcuityModel:
    """The stored acuity model (see module docstring). Build with :func:`load_acuity_model`."""

    def __init__(self, arrays: dict[str, np.ndarray], metadata: dict[str, Any]) -> None:
        self.metadata = metadata
        self.features: list[str] = list(metadata["features"])
        self.index = {name: i for i, name in enumerate(self.features)}
        self.coef = np.asarray(arrays["coef"], dtype=np.float64)          # (3, F)
        self.intercept = np.asarray(arrays["intercept"], dtype=np.float64)  # (3,)
        self.iso_x = [np.asarray(arrays[f"iso_x_{t}"], dtype=np.float64) for t in TARGETS]
        self.iso_y = [np.asarray(arrays[f"iso_y_{t}"], dtype=np.float64) for t in TARGETS]
        self.thresholds: dict[str, dict[str, float]] = metadata["thresholds"]
        self.labels: dict[str, str] = metadata.get("code_labels", {})
        if self.coef.shape != (len(TARGETS), len(self.features)):
            raise DataError(f"acuity model: coef shape {self.coef.shape} != (3, {len(self.features)})")

    def vector(self, features: dict[str, float]) -> np.ndarray:
        """Dense feature vector (shape ``(F,)``) of a :func:`feature_dict`."""
        x = np.zeros(len(self.features))
        for name, value in features.items():
            j = self.index.get(name)
            if j is not None:
                x[j] = value
        return x

    def calibrate(self, target: int, scores: np.ndarray) -> np.ndarray:
        """Isotonic calibration of raw logits ``scores`` (any shape) for target index 0-2."""
        return np.clip(np.interp(scores, self.iso_x[target], self.iso_y[target]), 0.0, 1.0)

    def predict_matrix(self, x: np.ndarray) -> np.ndarray:
        """Calibrated probabilities, shape ``(n, 3)`` (emergency, critical, admit), of ``x`` ``(n, F)``."""
        logits = x @ self.coef.T + self.intercept
        return np.stack([self.calibrate(t, logits[:, t]) for t in range(len(TARGETS))], axis=1)

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
        vit = coding.vitals if vitals is None else vitals
        feats = feature_dict(coding, age_years=age, sex=sx, vitals=vit)
        x = self.vector(feats)
        p = self.predict_matrix(x[None, :])[0]
        return AcuityRisk(p_emergency=float(p[0]), p_critical=float(p[1]), p_admit=float(p[2]),
                          factors=self._factors(x, age, vit or {}), with_vitals="vitals_given" in feats)

    def _factors(self, x: np.ndarray, age: float | None, vitals: dict[str, float]) -> list[str]:
        contrib = self.coef[0] * x
        out: list[str] = []
        for j in np.argsort(-contrib):
            if contrib[j] <= 0.05 or len(out) >= 5:
                break
            name = self.features[j]
            kind, _, value = name.partition(":")
            if kind == "code":
                text = f"complaint: {self.labels.get(value, value)}"
            elif kind == "group":
                continue
            elif kind == "age" or name == "age_years_10":
                text = f"age {age:g}" if age is not None else ""
            elif kind in VITAL_BANDS and value != "missing":
                text = f"{VITAL_NAMES[kind]} {vitals.get(kind, float('nan')):g} {VITAL_UNITS[kind]}"
            else:
                continue
            if text and text not in out:
                out.append(text)
        return out

    def decide(self, risk: AcuityRisk) -> AcuityDecision:
        """Disposition from risks with the thresholds stored in the model metadata.

        Rules (thresholds chosen on out-of-fold 2018-2019 NHAMCS predictions, separately for
        with/without vitals; see ``metadata.json``):
        ``emergency_ambulance`` if ``p_critical >= t_ambulance``; ``emergency`` if
        ``p_emergency >= t_emergency`` (recall >= 90 % operating point);
        ``consultation_24`` if ``p_emergency >= t_consult24`` or ``p_admit >= t_admit24``;
        ``self_care`` if ``p_emergency < t_self_care`` and ``p_admit < t_admit_self_care``;
        else ``consultation``.

        Returns:
            :class:`AcuityDecision` (disposition + reasons in English).
        """
        t = self.thresholds["vitals" if risk.with_vitals else "no_vitals"]
        pe, pc, pa = risk.p_emergency, risk.p_critical, risk.p_admit
        top = f" ({', '.join(risk.factors[:3])})" if risk.factors else ""
        if pc >= t["t_ambulance"]:
            return AcuityDecision(disposition=Disposition.EMERGENCY_AMBULANCE, reasons=[
                f"critical-care risk {pc:.0%} >= {t['t_ambulance']:.0%}{top}"])
        if pe >= t["t_emergency"]:
            return AcuityDecision(disposition=Disposition.EMERGENCY, reasons=[
                f"emergency-level triage risk {pe:.0%} >= {t['t_emergency']:.0%}{top}"])
        if pe >= t["t_consult24"] or pa >= t["t_admit24"]:
            return AcuityDecision(disposition=Disposition.CONSULTATION_24, reasons=[
                f"emergency-level risk {pe:.0%}, admission risk {pa:.0%}: see a doctor within 24 h{top}"])
        if pe < t["t_self_care"] and pa < t["t_admit_self_care"]:
            return AcuityDecision(disposition=Disposition.SELF_CARE, reasons=[
                f"low emergency-level risk {pe:.0%} and admission risk {pa:.0%}"])
        return AcuityDecision(disposition=Disposition.CONSULTATION, reasons=[
            f"emergency-level risk {pe:.0%}, admission risk {pa:.0%}: book a clinic visit"])


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
    "DEFAULT_MODEL_DIR",
    "TARGETS",
    "AcuityDecision",
    "AcuityModel",
    "AcuityRisk",
    "decide",
    "feature_dict",
    "load_acuity_model",
]
