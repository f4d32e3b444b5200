"""Choose the acuity model's emergency threshold for the WHOLE triage pipeline.

The model's own threshold (``t_emergency`` in ``metadata.json``) is its recall-90 % point
on 2018-2019 out-of-fold predictions. Inside triage, red flags, NEWS2 and the urgency
rules add emergencies of their own, so the pipeline reaches the same recall with a higher
model threshold and sends fewer non-emergencies to the ED. This script runs the full
pipeline on a seeded sample of NHAMCS **2019** visits (a training year: 2020 stays the
untouched validation year) and the KTAS train split, for a grid of thresholds, and
prints recall and the share of non-emergencies sent to emergency. The chosen value is
the highest threshold whose pooled recall is still >= 90 % (with and without vitals);
it is written to ``metadata.json`` as ``pipeline_t_emergency``.

Run: ``.venv/bin/python eval/urgency/choose_pipeline_threshold.py [--write]``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
GRID = (0.062, 0.08, 0.10, 0.12, 0.15, 0.18, 0.22)


def main() -> None:
    from assistant.settings import Settings
    from assistant.triage.dev_data import ktas_cases, nhamcs_cases
    from assistant.triage.engine import Triager
    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=600)
    parser.add_argument("--write", action="store_true")
    args = parser.parse_args()
    triager = Triager(Settings(shared_data_dir=SHARED), retriever=None, hospital=None)
    model = triager.acuity
    chosen = {}
    for view, vitals in (("no_vitals", False), ("vitals", True)):
        cases = nhamcs_cases(SHARED, year=2019, vitals=vitals, n=args.n, seed=2019)
        cases += [c for c in ktas_cases(SHARED, vitals=vitals) if not _val(c, SHARED)]
        original = dict(model.thresholds[view])
        best = None
        print(f"\n{view}: {len(cases)} cases (NHAMCS 2019 sample + KTAS train split)")
        for t in GRID:
            model.thresholds[view] = {**original, "pipeline_t_emergency": max(t, original["t_emergency"])}
            em = tp = oth = fp = 0
            for c in cases:
                r = triager.triage(c["text"], age=c.get("age"), sex=c.get("sex"), lang="en", lead_in=False)
                gold_em = c["gold_urgency3"] == "em"
                pred_em = r.disposition.is_emergency
                em += gold_em
                tp += gold_em and pred_em
                oth += not gold_em
                fp += (not gold_em) and pred_em
            recall, sent = tp / max(em, 1), fp / max(oth, 1)
            print(f"  t={t:.3f}  recall {recall:.3f} ({tp}/{em})  others sent to emergency {sent:.3f}")
            if recall >= 0.90:
                best = t
        model.thresholds[view] = original
        chosen[view] = best or original["t_emergency"]
    print("\nchosen pipeline thresholds:", chosen)
    if args.write:
        path = ROOT / "knowledge_base" / "models" / "acuity" / "metadata.json"
        meta = json.loads(path.read_text(encoding="utf-8"))
        for view, t in chosen.items():
            meta["thresholds"][view]["pipeline_t_emergency"] = t
        meta["pipeline_threshold_note"] = (
            "highest grid threshold with pooled pipeline recall >= 0.90 on a seeded NHAMCS 2019 "
            "sample plus the KTAS train split (eval/urgency/choose_pipeline_threshold.py)")
        path.write_text(json.dumps(meta, indent=1), encoding="utf-8")
        print(f"written to {path}")


def _val(case: dict, shared: Path) -> bool:
    """Whether a complaint-only KTAS case belongs to the validation split (by its vitals text)."""
    from assistant.triage.dev_data import ktas_cases
    from assistant.triage.routing import is_validation

    global _VAL_IDS
    try:
        ids = _VAL_IDS
    except NameError:
        ids = _VAL_IDS = {c["id"] for c in ktas_cases(shared) if is_validation(c["text"])}
    return case["id"].removesuffix("-nv") in ids


if __name__ == "__main__":
    main()
