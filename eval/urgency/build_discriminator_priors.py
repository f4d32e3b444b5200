"""Build P(discriminating finding | presenting complaint) from NHAMCS 2018-2019 visits.

For each discriminating question in ``knowledge_base/interview.yaml`` (its reason-for-visit
codes), and each complaint code seen in at least ``MIN_VISITS`` visits, the share of
visits with that complaint that also listed one of the question's codes (RFV1-3), with
add-one smoothing. 2020 is the acuity model's validation year and is not used.

Output: ``knowledge_base/models/acuity/discriminator_priors.json``
``{"source", "min_visits", "overall": {qid: p}, "given": {qid: {code: p}}}``.

Run: ``.venv/bin/python eval/urgency/build_discriminator_priors.py``
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
OUT = ROOT / "knowledge_base" / "models" / "acuity" / "discriminator_priors.json"
MIN_VISITS = 30


def main() -> None:
    questions = yaml.safe_load((ROOT / "knowledge_base" / "interview.yaml").read_text(encoding="utf-8"))
    questions = questions["discriminators"]["questions"]
    visits: list[set[str]] = []
    with (SHARED / "nhamcs" / "nhamcs_ed_2018_2020.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            if row["YEAR"] in ("2018", "2019"):
                visits.append({row[f"RFV{k}"] for k in (1, 2, 3)} - {"-9", ""})
    seen = Counter(c for v in visits for c in v)
    overall, given = {}, {}
    for q in questions:
        qcodes = set(q["codes"])
        with_q = [v for v in visits if v & qcodes]
        overall[q["id"]] = round((len(with_q) + 1) / (len(visits) + 2), 5)
        together = Counter(c for v in with_q for c in v if c not in qcodes)
        given[q["id"]] = {c: round((together[c] + 1) / (n + 2), 5)
                          for c, n in seen.items() if n >= MIN_VISITS and c not in qcodes}
    OUT.write_text(json.dumps({"source": "NHAMCS ED 2018-2019 (CDC/NCHS, public domain), RFV1-3 co-occurrence",
                               "min_visits": MIN_VISITS, "visits": len(visits),
                               "overall": overall, "given": given}, indent=0), encoding="utf-8")
    print(f"wrote {OUT} from {len(visits)} visits: " + ", ".join(f"{k} {v:.3f}" for k, v in overall.items()))


if __name__ == "__main__":
    main()
