"""Choose the routing fusion weights on the router's TRAIN split (never its validation split).

The text classifier has seen every train-split example, so its probabilities there are
over-confident; this script uses out-of-fold probabilities instead (5 folds of the train
split, the catalog and seed phrases always in training). For each example it computes
the classifier's, the retrieved conditions' and the NHAMCS prior's department scores
(the same code as the engine: ``Triager._evidence``), then grid-searches
``W_CONDITIONS``, ``W_PRIOR`` (``W_CLASSIFIER`` = 1 - the others), ``W_RETRIEVAL`` (the
hospital index's department passages, 1 / (1 + rank); only when an index is built), the
number of conditions ``k`` and the softmax temperature, maximising top-1 accepted (ties:
top-3).
The emergency department is left out, as in the engine's specialty ranking.

The classifier's probabilities are the engine's: the TF-IDF router's, mixed with the
embedding router's (``W_EMBEDDING``) where the TF-IDF router's largest probability is below
``ML_CONFIDENCE_GATE``, both out-of-fold.

Usage: ``.venv/bin/python eval/routing/tune_fusion.py [--multilingual | --embedding]``  (a few
minutes on 2 cores). ``--multilingual`` keeps the engine's weights and chooses
``W_MULTILINGUAL`` and the multilingual condition retrieval's k and temperature (Chinese
complaints). ``--embedding`` chooses the embedding router's C (``routing.EMBEDDING_C``), its
share ``W_EMBEDDING`` and the confidence gate, scoring the classifier alone.
"""

from __future__ import annotations

import hashlib
import itertools
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))


def main() -> None:
    from assistant.settings import Settings
    from assistant.triage import engine, routing
    from assistant.triage.complaints import code_complaint
    from assistant.triage.engine import Triager
    from assistant.triage.routing import (
        catalog_examples,
        dev_set_examples,
        is_validation,
        train_router,
    )

    settings = Settings()
    triager = Triager(settings, retriever=None, hospital=None)
    train = [e for e in dev_set_examples(settings.shared_data_dir, triager.kb) if not is_validation(e.text)]
    catalog = catalog_examples(triager.kb)
    folds = 5
    fold = [hashlib.sha256(e.text.encode()).digest()[1] % folds for e in train]
    tfidf: list[dict[str, float]] = [{}] * len(train)
    for f in range(folds):
        model = train_router(catalog + [e for e, g in zip(train, fold, strict=True) if g != f])
        for i, (e, g) in enumerate(zip(train, fold, strict=True)):
            if g == f:
                p = model.predict_proba([e.text])[0]
                tfidf[i] = {str(c): float(v) for c, v in zip(model.classes_, p, strict=True)}
        print(f"fold {f + 1}/{folds} done", flush=True)
    codes = list(triager.catalog)
    if "--embedding" in sys.argv:
        _tune_embedding(triager, train, catalog, fold, tfidf, codes)
        return
    dense = _embedding_oof(triager, train, catalog, fold, routing.EMBEDDING_C)
    probs = [_mixed(p, d, engine.W_EMBEDDING, engine.ML_CONFIDENCE_GATE) for p, d in zip(tfidf, dense, strict=True)]
    codings = [code_complaint(e.text) for e in train]
    retrieved = [[d for d in triager._retrieve_departments(e.text) if d != "EMERG"] for e in train]
    if "--multilingual" in sys.argv:
        _tune_multilingual(triager, train, probs, codings, retrieved, codes, tfidf)
        return
    w_retrieval = (0.0, 0.05, 0.1, 0.15) if triager.retriever is not None else (0.0,)
    results = []
    for k, temp in itertools.product((4, 8, 16), (1.0, 2.0, 4.0)):
        evid = [triager.conditions.evidence(e.text, code_labels=[c.label_en for c in cd.codes],
                                            codes=[c.code for c in cd.codes], age=None, sex=None, k=k,
                                            temperature=temp) for e, cd in zip(train, codings, strict=True)]
        for wc, wp, wr in itertools.product((0.0, 0.1, 0.2, 0.3, 0.4), (0.0, 0.05, 0.1, 0.2), w_retrieval):
            wl = 1.0 - wc - wp
            top1 = top3 = 0
            for e, p, ev, ret in zip(train, probs, evid, retrieved, strict=True):
                ranked = _ranked(codes, p, ev, ret, (wl, wc, wp, wr))
                top1 += ranked[0] in e.departments
                top3 += bool(set(ranked[:3]) & set(e.departments))
            results.append((top1 / len(train), top3 / len(train), k, temp, round(wl, 2), wc, wp, wr))
    results.sort(reverse=True)
    base = max(r for r in results if r[5] == 0 and r[6] == 0 and r[7] == 0)
    print(f"train split n={len(train)}; classifier alone (out-of-fold): top1={base[0]:.3f} top3={base[1]:.3f}")
    print("best (top1, top3, k, temperature, W_CLASSIFIER, W_CONDITIONS, W_PRIOR, W_RETRIEVAL):")
    for r in results[:10]:
        print("  ", tuple(round(x, 3) if isinstance(x, float) else x for x in r))


def _ranked(codes, p, ev, ret, weights, ml=None, wm=0.0) -> list[str]:
    """Departments (the ED left out) ranked by the engine's fusion: ``weights`` =
    (classifier, conditions, prior, hospital index), plus ``wm`` times the multilingual
    conditions' departments ``ml``."""
    wl, wc, wp, wr = weights
    s = {d: wl * p.get(d, 0) + wc * ev.departments.get(d, 0) + wp * ev.prior.get(d, 0)
         + wm * (ml or {}).get(d, 0) for d in codes if d != "EMERG"}
    for rank, d in enumerate(ret):
        s[d] = s.get(d, 0.0) + wr / (1 + rank)
    return sorted(s, key=lambda d: -s[d])


def _embedding_oof(triager, train, catalog, fold, c) -> list[dict[str, float]]:
    """Out-of-fold probabilities of the embedding router (logistic regression, inverse
    regularisation ``c``) on the train split, the same folds as the TF-IDF router; empty
    dicts without the multilingual encoder."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from assistant.knowledge.crosslingual import get_multilingual_encoder

    encoder = get_multilingual_encoder(triager.settings)
    if encoder is None:
        return [{} for _ in train]
    x_cat = encoder.passage([e.text[:1000] for e in catalog], batch_size=64)
    x = encoder.passage([e.text[:1000] for e in train], batch_size=64)
    out: list[dict[str, float]] = [{} for _ in train]
    for f in sorted(set(fold)):
        keep = np.array([g != f for g in fold])
        clf = LogisticRegression(C=c, class_weight="balanced", max_iter=3000)
        clf.fit(np.vstack([x_cat, x[keep]]), [e.label for e in catalog] + [e.label for e, k in zip(train, keep, strict=True) if k])
        for i in np.flatnonzero(~keep):
            out[i] = {str(k): float(v) for k, v in zip(clf.classes_, clf.predict_proba(x[i : i + 1])[0], strict=True)}
    return out


def _mixed(p: dict[str, float], dense: dict[str, float], w: float, gate: float) -> dict[str, float]:
    """The engine's text probabilities: TF-IDF ``p`` mixed with the embedding router's
    ``dense`` (share ``w``) when ``max(p) < gate`` (``Triager._with_embedding``)."""
    from assistant.triage.routing import mix

    if not dense or max(p.values(), default=0.0) >= gate:
        return p
    return mix(p, dense, w)


def _tune_embedding(triager, train, catalog, fold, tfidf, codes) -> None:
    """``--embedding``: the embedding router's C, share and gate, by out-of-fold top-1 of
    the classifier alone (the ED left out)."""
    from assistant.triage.conditions import ConditionEvidence

    none = ConditionEvidence()  # no conditions, no prior: the classifier alone
    results = []
    for c in (4.0, 16.0, 64.0):
        dense = _embedding_oof(triager, train, catalog, fold, c)
        for w, gate in itertools.product((0.0, 0.2, 0.3, 0.4, 0.5), (1.01, 0.8, 0.7, 0.6)):
            top1 = top3 = used = 0
            for e, p, d in zip(train, tfidf, dense, strict=True):
                ranked = _ranked(codes, _mixed(p, d, w, gate), none, [], (1.0, 0.0, 0.0, 0.0))
                top1 += ranked[0] in e.departments
                top3 += bool(set(ranked[:3]) & set(e.departments))
                used += max(p.values(), default=0.0) < gate
            results.append((top1 / len(train), top3 / len(train), c, w, gate, used / len(train)))
        print(f"C={c} done", flush=True)
    base = next(r for r in results if r[3] == 0.0)
    print(f"train split n={len(train)}, out-of-fold; TF-IDF router alone: top1={base[0]:.4f} top3={base[1]:.4f}")
    print("best (top1, top3, C, W_EMBEDDING, confidence gate, share of complaints that run it):")
    for r in sorted(results, reverse=True)[:12]:
        print("  ", tuple(round(x, 4) if isinstance(x, float) else x for x in r))


def _tune_multilingual(triager, train, probs, codings, retrieved, codes, tfidf) -> None:
    """``--multilingual``: with the other weights as in the engine, choose ``W_MULTILINGUAL``
    and the multilingual condition retrieval's k and temperature (Chinese text only)."""
    from assistant.knowledge.crosslingual import get_multilingual_encoder, load_packaged_vectors
    from assistant.text import has_cjk
    from assistant.triage import conditions, engine

    encoder = get_multilingual_encoder(triager.settings)
    vectors = load_packaged_vectors(triager.kb.root)
    weights = (engine.W_CLASSIFIER, engine.W_CONDITIONS, engine.W_PRIOR, engine.W_RETRIEVAL)
    evid = [triager.conditions.evidence(e.text, code_labels=[c.label_en for c in cd.codes],
                                        codes=[c.code for c in cd.codes], age=None, sex=None,
                                        k=engine.ROUTING_K, temperature=engine.ROUTING_TEMPERATURE)
            for e, cd in zip(train, codings, strict=True)]
    vecs = [encoder.query([e.text[:1000]])[0] if has_cjk(e.text) else None for e in train]
    confidence = [max(p.values(), default=0.0) for p in tfidf]  # the engine gates on the TF-IDF router
    zh = sum(v is not None for v in vecs)
    results = []
    for k, gate in itertools.product((8, 16), (1.01, 0.9, 0.8, 0.7, 0.6)):
        # the classifier's confidence gates the multilingual step, as in the engine
        dense = [[] if v is None or c >= gate else triager.conditions.retrieve_multilingual(v, vectors, k=k)
                 for v, c in zip(vecs, confidence, strict=True)]
        used = sum(v is not None and c < gate for v, c in zip(vecs, confidence, strict=True))
        for temp in (0.02, 0.05):
            shares = [triager.conditions.department_shares(d, temperature=temp) for d in dense]
            for wm in (0.0, 0.05, 0.1, 0.15, 0.2):
                top1 = top3 = top1_zh = 0
                for e, p, ev, ret, ml, v in zip(train, probs, evid, retrieved, shares, vecs, strict=True):
                    ranked = _ranked(codes, p, ev, ret, weights, ml, wm)
                    top1 += ranked[0] in e.departments
                    top3 += bool(set(ranked[:3]) & set(e.departments))
                    top1_zh += ranked[0] in e.departments and v is not None
                results.append((top1 / len(train), top3 / len(train), top1_zh / max(zh, 1), k, temp, wm, gate,
                                used / max(zh, 1)))
    results.sort(reverse=True)
    base = next(r for r in results if r[5] == 0.0)
    print(f"train split n={len(train)} ({zh} Chinese), engine weights, out-of-fold classifier; "
          f"without multilingual conditions: top1={base[0]:.4f} top3={base[1]:.4f} zh top1={base[2]:.4f}; "
          f"engine now: k={conditions.ML_K} temperature={conditions.ML_TEMPERATURE} "
          f"W_MULTILINGUAL={engine.W_MULTILINGUAL} gate={engine.ML_CONFIDENCE_GATE}")
    print("best (top1, top3, zh top1, k, temperature, W_MULTILINGUAL, confidence gate, share of Chinese "
          "complaints that run it):")
    for r in results[:12]:
        print("  ", tuple(round(x, 4) if isinstance(x, float) else x for x in r))
    print("by gate (best per gate):")
    for gate in sorted({r[6] for r in results}, reverse=True):
        r = max(x for x in results if x[6] == gate)
        print("  ", tuple(round(x, 4) if isinstance(x, float) else x for x in r))


if __name__ == "__main__":
    main()
