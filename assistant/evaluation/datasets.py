"""Triage case sets: our written cases and converters from ``../shared/data`` dev sets.

Case format (one JSON object per line; see ``eval/README.md``)::

    {"id", "text", "lang": "en"|"zh", "age", "sex": "F"|"M"|null,
     "gold_disposition": one of 5 | null, "gold_urgency3": "em"|"ne"|"sc"|null,
     "gold_departments": [...], "source"}

KTAS mapping (Moon et al., PLOS ONE 2019, expert level ``KTAS_expert``): 1 →
emergency_ambulance (em), 2 → emergency (em), 3 → consultation_24 (ne), 4 →
consultation (ne), 5 → self_care (sc). Text = chief complaint + age,
sex and the recorded vitals. Symptom2Disease and Toyhom use only the router's validation
split (never trained on), with departments from ``knowledge_base/routing_labels.yaml``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from assistant.errors import DataError
from assistant.triage.dev_data import AVPU, KTAS_DISPOSITION, KTAS_URGENCY3, ktas_cases, nhamcs_cases  # noqa: F401

REPO = Path(__file__).resolve().parents[2]
CASES_DIR = REPO / "eval" / "cases"
def read_cases(path: Path) -> list[dict[str, Any]]:
    """Read a JSONL case file; a malformed line raises :class:`DataError` naming file and line."""
    cases = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                case = json.loads(line)
            except json.JSONDecodeError as exc:
                raise DataError(f"{path}:{n}: not JSON ({exc.msg})") from None
            if not isinstance(case, dict) or "id" not in case or "text" not in case:
                raise DataError(f"{path}:{n}: a case needs 'id' and 'text'")
            cases.append(case)
    return cases


def routing_cases(shared: Path) -> Iterator[dict[str, Any]]:
    """Symptom2Disease and Toyhom validation-split examples as department-only cases."""
    from assistant.triage.routing import validation_examples

    for i, ex in enumerate(validation_examples(shared)):
        yield {"id": f"{ex.origin}-{i:04d}", "text": ex.text, "lang": "zh" if ex.origin == "toyhom" else "en",
               "age": None, "sex": None, "gold_disposition": None, "gold_urgency3": None,
               "gold_departments": list(ex.departments), "source": f"{ex.origin} dev (validation split)"}


def suite_cases(shared: Path) -> dict[str, list[dict[str, Any]]]:
    """All built-in triage case sets by name."""
    sets = {
        "written": read_cases(CASES_DIR / "triage_cases.jsonl"),
        "red_flags": [
            {**c, "gold_urgency3": "em" if c.get("expect_rule_ids") else None,
             "gold_disposition": None, "gold_departments": []}
            for c in read_cases(CASES_DIR / "red_flags.jsonl") if c.get("expect_rule_ids")
        ],
    }
    if (shared / "ktas" / "ktas_dev.csv").is_file():
        from assistant.triage.routing import is_validation

        sets["ktas_dev"] = list(ktas_cases(shared))
        sets["ktas_dev_novitals"] = list(ktas_cases(shared, vitals=False))
        # the acuity model may train on the other 70 %: these are its honest figures
        # (the split is by the text with vitals, as the model's training script does)
        val_ids = {c["id"] for c in sets["ktas_dev"] if is_validation(c["text"])}
        sets["ktas_dev_val"] = [c for c in sets["ktas_dev"] if c["id"] in val_ids]
        sets["ktas_dev_val_novitals"] = [c for c in sets["ktas_dev_novitals"] if c["id"][:-3] in val_ids]
    for vitals in (False, True):
        cases = nhamcs_cases(shared, year=2020, vitals=vitals, n=1000)
        if cases:
            sets["nhamcs2020" + ("_vitals" if vitals else "")] = cases
    sets["routing_dev"] = list(routing_cases(shared))
    return sets
