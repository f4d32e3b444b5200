"""Routing figures on the dev data: top-1/top-3 accepted department.

Sets: the router's validation split of Symptom2Disease + Toyhom dev (never trained on),
and the written cases (``eval/cases/triage_cases.jsonl``). Every case is one triage turn
through :class:`assistant.triage.engine.Triager` (no hospital tables), the same path
``assistant eval triage`` scores. The configured retrieval index is used when it exists
(``.assistant-data/index`` after ``make demo``: its hospital collection is the fusion's
``W_RETRIEVAL`` step), so the first line printed says which; ``--no-index`` scores without
it (a folder that does not exist) for figures that do not depend on what was ingested.

Usage::

    .venv/bin/python eval/routing/run_routing_eval.py [--limit N] [--train] [--no-index]

``--train`` scores the router's TRAIN split instead (for tuning fusion weights: tune
there, never on the validation split).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> None:
    from assistant.evaluation.datasets import read_cases, routing_cases
    from assistant.settings import Settings
    from assistant.triage.engine import Triager
    from assistant.triage.routing import dev_set_examples, is_validation

    ap = argparse.ArgumentParser()
    ap.add_argument("--limit", type=int, default=0)
    ap.add_argument("--train", action="store_true")
    ap.add_argument("--errors", action="store_true")
    ap.add_argument("--no-index", action="store_true", help="score without the retrieval index")
    args = ap.parse_args()
    settings = Settings()
    if args.no_index:
        import tempfile

        settings = settings.model_copy(update={"index_dir": Path(tempfile.mkdtemp(prefix="no-index-")) / "absent"})
    triager = Triager(settings, retriever=None, hospital=None)
    print(f"retrieval index: {'yes, ' + str(settings.resolved_index_dir) if triager.retriever is not None else 'none'}")
    shared = settings.shared_data_dir
    if args.train:
        dev = [{"id": f"{e.origin}-{i}", "text": e.text, "age": None, "sex": None,
                "gold_departments": list(e.departments), "source": e.origin}
               for i, e in enumerate(dev_set_examples(shared)) if not is_validation(e.text)]
        sets = {"routing_train": dev}
    else:
        sets = {"routing_dev": list(routing_cases(shared)),
                "written": read_cases(REPO / "eval/cases/triage_cases.jsonl")}
    for name, cases in sets.items():
        cases = cases[: args.limit] if args.limit else cases
        top1 = top3 = em = 0
        by = Counter()
        errs = []
        t0 = time.perf_counter()
        for c in cases:
            r = triager.triage(c["text"], age=c.get("age"), sex=c.get("sex"), pregnant=c.get("pregnant"),
                               lang=c.get("lang"), lead_in=False)
            pred = [d.code for d in r.departments]
            gold = c["gold_departments"]
            ok = bool(pred) and pred[0] in gold
            top1 += ok
            top3 += bool(set(pred[:3]) & set(gold))
            em += r.disposition.is_emergency
            by[(c.get("source", "")[:12], ok)] += 1
            if not ok:
                errs.append((c["id"], gold, pred, r.disposition.value, c["text"][:90]))
        n = len(cases)
        wall = time.perf_counter() - t0
        print(f"{name}: n={n} top1={top1 / n:.3f} top3={top3 / n:.3f} emergencies={em} "
              f"({1000 * wall / n:.0f} ms/case)")
        for src in sorted({k[0] for k in by}):
            k, t = by[(src, True)], by[(src, True)] + by[(src, False)]
            print(f"  {src}: {k}/{t} = {k / t:.3f}")
        if args.errors:
            for e in errs:
                print("   ", json.dumps(e, ensure_ascii=False))


if __name__ == "__main__":
    main()
