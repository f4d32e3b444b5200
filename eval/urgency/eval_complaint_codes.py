"""Code recall/precision of the complaint coder on eval/cases/complaint_codes.jsonl.

Each case has ``text``, ``lang`` (en/zh), ``style`` (lay / shorthand / vignette) and
``gold_codes`` (NCHS RFV codes, labelled by hand for this project); vignettes also have
``gold_age``/``gold_sex``. Micro-averaged code recall = matched gold codes / gold codes,
precision = matched predicted codes / predicted codes; a predicted code also counts as
matching when it shares the gold code's first 3 digits ("lenient", reported separately).

Run:  .venv/bin/python eval/urgency/eval_complaint_codes.py [--embedding] [--show-errors]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.triage.complaints import code_complaint

CASES = ROOT / "eval" / "cases" / "complaint_codes.jsonl"


def score(cases: list[dict], *, use_embedding: bool = False, show_errors: bool = False) -> dict:
    """Micro recall/precision per (lang, style) and overall; returns the table as a dict."""
    agg: dict[str, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])  # tp_gold, gold, tp_pred, pred, lenient_tp
    demo = [0, 0, 0]  # age right, sex right, vignettes
    for case in cases:
        coding = code_complaint(case["text"], use_embedding=use_embedding)
        pred = [c.code for c in coding.codes]
        gold = case["gold_codes"]
        tp_gold = sum(1 for g in gold if g in pred)
        tp_pred = sum(1 for p in pred if p in gold)
        lenient = sum(1 for g in gold if any(p[:3] == g[:3] for p in pred))
        for key in ("all", f"{case['lang']}", f"{case['style']}", f"{case['lang']}/{case['style']}"):
            row = agg[key]
            row[0] += tp_gold
            row[1] += len(gold)
            row[2] += tp_pred
            row[3] += len(pred)
            row[4] += lenient
        if "gold_age" in case:
            demo[2] += 1
            demo[0] += int(coding.age_years == case["gold_age"])
            demo[1] += int(coding.sex == case["gold_sex"])
        if show_errors and set(pred) != set(gold):
            print(f"  {case['id']} gold={gold} pred={pred} text={case['text'][:70]!r}")
    table = {k: {"recall": v[0] / v[1] if v[1] else 0.0, "precision": v[2] / v[3] if v[3] else 0.0,
                 "lenient_recall": v[4] / v[1] if v[1] else 0.0, "gold": v[1], "predicted": v[3]}
             for k, v in agg.items()}
    table["demographics"] = {"vignettes": demo[2], "age_correct": demo[0], "sex_correct": demo[1]}
    return table


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--embedding", action="store_true", help="enable the embedding fallback")
    ap.add_argument("--show-errors", action="store_true")
    args = ap.parse_args()
    cases = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    table = score(cases, use_embedding=args.embedding, show_errors=args.show_errors)
    demo = table.pop("demographics")
    print(f"{len(cases)} cases ({CASES.relative_to(ROOT)})")
    print("| subset | gold codes | recall | precision | lenient recall (same 3-digit group) |")
    print("|---|---|---|---|---|")
    for key in sorted(table, key=lambda k: (k != "all", k.count("/"), k)):
        r = table[key]
        print(f"| {key} | {r['gold']} | {r['recall']:.3f} | {r['precision']:.3f} | {r['lenient_recall']:.3f} |")
    print(f"vignette age correct {demo['age_correct']}/{demo['vignettes']}, sex correct {demo['sex_correct']}/{demo['vignettes']}")


if __name__ == "__main__":
    main()
