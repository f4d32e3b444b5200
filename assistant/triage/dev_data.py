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


def ktas_cases(shared: Path) -> Iterator[dict[str, Any]]:
    """KTAS dev records as triage cases (mapping in the module docstring)."""
    path = shared / "ktas" / "ktas_dev.csv"
    with path.open(encoding="utf-8", errors="replace") as fh:
        for i, row in enumerate(csv.DictReader(fh)):
            level = row["KTAS_expert"].strip()
            if level not in KTAS_DISPOSITION:
                continue
            sex = {"1": "F", "2": "M"}.get(row["Sex"].strip())
            parts = [row["Chief_complain"].strip() + "."]
            vitals = {"SBP": _vital(row["SBP"]), "HR": _vital(row["HR"]), "RR": _vital(row["RR"]),
                      "BT": _vital(row["BT"]), "SpO2": _vital(row["Saturation"])}
            parts += [f"{k} {v}" for k, v in vitals.items() if v]
            if AVPU.get(row["Mental"].strip(), "alert") != "alert":
                parts.append(f"mental: {AVPU[row['Mental'].strip()]}")
            age = int(row["Age"]) if row["Age"].strip().isdigit() else None
            yield {"id": f"ktas-{i:04d}", "text": " ".join(parts), "lang": "en", "age": age, "sex": sex,
                   "gold_disposition": KTAS_DISPOSITION[level], "gold_urgency3": KTAS_URGENCY3[level],
                   "gold_departments": [], "source": "ktas_dev (Moon et al. 2019, CC BY 4.0)"}


