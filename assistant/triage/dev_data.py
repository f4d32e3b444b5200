"""Development data sets from ``../shared/data`` as triage cases, for training and eval.

KTAS mapping (Moon et al., PLOS ONE 2019, CC BY 4.0; expert level ``KTAS_expert``):
1 → emergency_ambulance (em), 2 → emergency (em), 3 → consultation_24 (ne), 4 →
consultation (ne), 5 → self_care (sc). Text = chief complaint + the recorded vitals.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

KTAS_DISPOSITION = {"1": "emergency_ambulance", "2": "emergency", "3": "consultation_24",
                    "4": "consultation", "5": "self_care"}
KTAS_URGENCY3 = {"1": "em", "2": "em", "3": "ne", "4": "ne", "5": "sc"}
AVPU = {"1": "alert", "2": "verbal", "3": "pain", "4": "unresponsive"}


def _vital(value: str) -> str | None:
    value = (value or "").strip()
    return value if value and value not in ("??", "#BOÞ!") and value.replace(".", "").isdigit() else None


def ktas_cases(shared: Path, *, vitals: bool = True) -> Iterator[dict[str, Any]]:
    """KTAS dev records as triage cases (mapping in the module docstring).

    Args:
        shared: the ``../shared/data`` folder.
        vitals: append the recorded vitals and AVPU to the text (False: complaint only;
            age and sex always come as form fields).
    """
    path = shared / "ktas" / "ktas_dev.csv"
    with path.open(encoding="utf-8", errors="replace") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            level = row["KTAS_expert"].strip()
            if level not in KTAS_DISPOSITION:
                continue
            sex = {"1": "F", "2": "M"}.get(row["Sex"].strip())
            parts = [row["Chief_complain"].strip() + "."]
            readings = {"SBP": _vital(row["SBP"]), "HR": _vital(row["HR"]), "RR": _vital(row["RR"]),
                        "BT": _vital(row["BT"]), "SpO2": _vital(row["Saturation"])}
            if vitals:
                parts += [f"{k} {v}" for k, v in readings.items() if v]
                if AVPU.get(row["Mental"].strip(), "alert") != "alert":
                    parts.append(f"mental: {AVPU[row['Mental'].strip()]}")
            age = int(row["Age"]) if row["Age"].strip().isdigit() else None
            yield {"id": f"ktas-{i:04d}{'' if vitals else '-nv'}", "text": " ".join(parts), "lang": "en", "age": age, "sex": sex,
                   "gold_disposition": KTAS_DISPOSITION[level], "gold_urgency3": KTAS_URGENCY3[level],
                   "gold_departments": [], "source": "ktas_dev (Moon et al. 2019, CC BY 4.0)"}




#: NHAMCS nurse triage level (IMMEDR) -> 3-level scale: 1-2 emergency, 3-4 non-urgent
#: care needed, 5 non-urgent (2-24 h) as self-care level (NCHS public-use file codebook).
NHAMCS_URGENCY3 = {"1": "em", "2": "em", "3": "ne", "4": "ne", "5": "sc"}


def nhamcs_cases(shared: Path, *, year: int = 2020, vitals: bool = False, n: int | None = 1000,
                 seed: int = 2020) -> list[dict[str, Any]]:
    """NHAMCS ED visits of one year as triage cases, text built from the coded reasons.

    Text = ``"<RFV1 label>; <RFV2 label>; <RFV3 label>."`` (blank codes skipped) and, with
    ``vitals``, ``" SBP 120 HR 88 RR 18 BT 36.8 SpO2 97"`` for the recorded values (°F
    converted to °C). Age and sex are form fields. Gold = the nurse's triage level
    (``IMMEDR`` 1-5). The acuity model is trained on 2018-2019 only: 2020 is its temporal
    validation year and is never tuned on.

    Args:
        shared: the ``../shared/data`` folder.
        year: survey year.
        vitals: append the recorded vitals.
        n: a seeded random sample of this many visits (None: all triaged visits).
        seed: sampling seed.

    Returns:
        Case dicts; empty when the file is missing.
    """
    import random

    path = shared / "nhamcs" / "nhamcs_ed_2018_2020.csv"
    if not path.is_file():
        return []
    rows = []
    with path.open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["YEAR"] == str(year) and row["IMMEDR"] in NHAMCS_URGENCY3:
                rows.append(row)
    if n is not None and len(rows) > n:
        rows = random.Random(seed).sample(rows, n)
    out = []
    for i, row in enumerate(rows):
        labels = [row[f"RFV{k}_TEXT"].strip() for k in (1, 2, 3)
                  if row[f"RFV{k}"] not in ("-9", "") and row[f"RFV{k}_TEXT"].strip() not in ("", "Blank")]
        text = "; ".join(labels) + "."
        if vitals:
            text += _nhamcs_vitals(row)
        age = float(row["AGE"]) if row["AGE"].lstrip("-").isdigit() and int(row["AGE"]) >= 0 else None
        out.append({"id": f"nhamcs{year}-{i:05d}{'-v' if vitals else ''}", "text": text, "lang": "en",
                    "age": age, "sex": {"1": "F", "2": "M"}.get(row["SEX"]),
                    "gold_disposition": None, "gold_urgency3": NHAMCS_URGENCY3[row["IMMEDR"]],
                    "gold_departments": [],
                    "source": f"NHAMCS ED {year} (CDC/NCHS, public domain), nurse triage level"})
    return out


def _nhamcs_vitals(row: dict[str, str]) -> str:
    def num(key: str, lo: float, hi: float) -> float | None:
        try:
            value = float(row[key])
        except (KeyError, ValueError):
            return None
        return value if lo <= value <= hi else None

    parts = []
    sbp, hr, rr, spo2 = num("BPSYS", 40, 300), num("PULSE", 20, 250), num("RESPR", 4, 80), num("POPCT", 50, 100)
    temp_f10 = num("TEMPF", 850, 1100)
    if sbp is not None:
        parts.append(f"SBP {sbp:g}")
    if hr is not None:
        parts.append(f"HR {hr:g}")
    if rr is not None:
        parts.append(f"RR {rr:g}")
    if temp_f10 is not None:
        parts.append(f"BT {(temp_f10 / 10 - 32) * 5 / 9:.1f}")
    if spo2 is not None:
        parts.append(f"SpO2 {spo2:g}")
    return (" " + " ".join(parts)) if parts else ""
