"""Train, calibrate, threshold and validate the acuity model (assistant/triage/acuity.py).

Data (read in place from ../shared/data):
  * NHAMCS ED 2018-2020 (NCHS, public domain): complaint TEXT "<RFV1_TEXT>; <RFV2_TEXT>; <RFV3_TEXT>."
    (Blank skipped) coded by assistant.triage.complaints.code_complaint, age, sex, vitals.
    Train = 2018-2019; report = 2020 (temporal validation). Thresholds are chosen on
    5-fold out-of-fold predictions of 2018-2019 only (grouped by visit).
  * KTAS dev (Moon et al., PLOS ONE 2019, CC BY 4.0): the project's 70 % train split (by text hash,
    assistant.triage.routing._is_validation over assistant.evaluation.datasets.ktas_cases text)
    is added to the emergency model (KTAS_expert 1-2); the 30 % validation split is reported.

Every training visit appears twice: once with its recorded vitals and once with none, so the
model works with and without vitals (weights 0.5 each).

Run:  .venv/bin/python eval/urgency/train_acuity.py [--no-write] [--compare-hgb]
Writes knowledge_base/models/acuity/{model.npz,metadata.json} and prints the validation tables.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import math
import sys
import time
from pathlib import Path

import numpy as np
from scipy import sparse
from sklearn.isotonic import IsotonicRegression
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.evaluation.datasets import ktas_cases
from assistant.triage.acuity import TARGETS, AcuityModel, feature_dict
from assistant.triage.complaints import code_complaint, load_vocabulary

try:  # renamed public during a refactor; accept both
    from assistant.triage.routing import is_validation as _is_validation
except ImportError:  # pragma: no cover
    from assistant.triage.routing import _is_validation

SHARED = ROOT.parent / "shared" / "data"
OUT_DIR = ROOT / "knowledge_base" / "models" / "acuity"
MODEL_VERSION = "1.0.0"
MIN_CODE_COUNT = 10      # a code becomes a feature when seen >= this often in training
MIN_GROUP_COUNT = 30
C_GRID = (0.05, 0.2, 1.0)
KTAS_WEIGHT = 3.0
RNG = np.random.default_rng(20240601)


# --------------------------------------------------------------------------- data
def _num(value: str) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v


def nhamcs_text(row: dict) -> str:
    parts = [row[k].strip() for k in ("RFV1_TEXT", "RFV2_TEXT", "RFV3_TEXT")
             if row[k].strip() and row[k].strip() != "Blank"]
    return "; ".join(parts) + "."


def nhamcs_vitals(row: dict) -> dict[str, float]:
    v: dict[str, float] = {}
    t = _num(row["TEMPF"])
    if t is not None and t > 0:
        v["temp_c"] = round((t / 10 - 32) * 5 / 9, 1)
    for key, col in (("hr", "PULSE"), ("rr", "RESPR"), ("sbp", "BPSYS"), ("spo2", "POPCT")):
        x = _num(row[col])
        if x is not None and x > 0 and not (key == "hr" and x >= 998):
            v[key] = x
    ranges = {"sbp": (40, 300), "hr": (20, 250), "rr": (4, 70), "temp_c": (30, 43.5), "spo2": (50, 100)}
    return {k: x for k, x in v.items() if ranges[k][0] <= x <= ranges[k][1]}


def vitals_text(v: dict[str, float]) -> str:
    """The runtime text form: " SBP 120 HR 88 RR 18 BT 36.8 SpO2 97" (present vitals only)."""
    names = (("sbp", "SBP"), ("hr", "HR"), ("rr", "RR"), ("temp_c", "BT"), ("spo2", "SpO2"))
    return "".join(f" {label} {v[k]:g}" for k, label in names if k in v)


def load_nhamcs() -> list[dict]:
    rows = []
    with (SHARED / "nhamcs" / "nhamcs_ed_2018_2020.csv").open(encoding="utf-8") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            level = int(r["IMMEDR"])
            rows.append({
                "id": f"n{i}", "year": int(r["YEAR"]), "text": nhamcs_text(r),
                "age": float(r["AGE"]), "sex": "F" if r["SEX"] == "1" else "M" if r["SEX"] == "2" else None,
                "vitals": nhamcs_vitals(r),
                "emergency": (1 if level in (1, 2) else 0) if 1 <= level <= 5 else -1,
                "critical": int(r["ADMIT"] == "1" or r["DIEDED"] == "1" or r["DOA"] == "1"),
                "admit": int(r["ADMITHOS"] == "1"),
            })
    return rows


def load_ktas() -> list[dict]:
    """KTAS dev rows with the project's split flag (joined to ktas_cases by row index)."""
    split = {c["id"]: _is_validation(c["text"]) for c in ktas_cases(SHARED)}
    rows = []
    with (SHARED / "ktas" / "ktas_dev.csv").open(encoding="utf-8", errors="replace") as fh:
        for i, r in enumerate(csv.DictReader(fh)):
            cid = f"ktas-{i:04d}"
            if cid not in split:
                continue
            v: dict[str, float] = {}
            for key, col in (("sbp", "SBP"), ("hr", "HR"), ("rr", "RR"), ("temp_c", "BT"), ("spo2", "Saturation")):
                x = _num(r[col].strip().replace(",", "."))
                if x is not None and x > 0:
                    v[key] = x
            age = _num(r["Age"])
            rows.append({"id": cid, "validation": split[cid], "text": r["Chief_complain"].strip(),
                         "age": age, "sex": {"1": "F", "2": "M"}.get(r["Sex"].strip()), "vitals": v,
                         "emergency": int(r["KTAS_expert"].strip() in ("1", "2"))})
    return rows


# --------------------------------------------------------------------------- features
class Coder:
    """code_complaint with a cache keyed by text (NHAMCS texts repeat a lot)."""

    def __init__(self) -> None:
        self.vocab = load_vocabulary()
        self.cache: dict[str, object] = {}

    def __call__(self, text: str):
        c = self.cache.get(text)
        if c is None:
            c = self.cache[text] = code_complaint(text, vocabulary=self.vocab)
        return c


def featurize(rows: list[dict], coder: Coder, *, with_vitals: bool, from_text: bool = False) -> list[dict]:
    out = []
    for r in rows:
        if from_text:  # runtime path: vitals appended to the text and parsed back
            text = r["text"] + (vitals_text(r["vitals"]) if with_vitals else "")
            coding = code_complaint(text, vocabulary=coder.vocab) if with_vitals else coder(text)
            vitals = coding.vitals if with_vitals else None
        else:
            coding = coder(r["text"])
            vitals = r["vitals"] if with_vitals else None
        out.append(feature_dict(coding, age_years=r["age"], sex=r["sex"], vitals=vitals))
    return out


def matrix(feats: list[dict], index: dict[str, int]) -> sparse.csr_matrix:
    rows, cols, vals = [], [], []
    for i, f in enumerate(feats):
        for name, value in f.items():
            j = index.get(name)
            if j is not None:
                rows.append(i)
                cols.append(j)
                vals.append(value)
    return sparse.csr_matrix((vals, (rows, cols)), shape=(len(feats), len(index)))


# --------------------------------------------------------------------------- metrics
def wilson(k: int, n: int, z: float = 1.96) -> tuple[float, float]:
    if n == 0:
        return (float("nan"), float("nan"))
    p = k / n
    d = 1 + z * z / n
    c = (p + z * z / (2 * n)) / d
    h = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / d
    return (c - h, c + h)


def auc_ci(y: np.ndarray, p: np.ndarray, n_boot: int = 200) -> tuple[float, float, float]:
    auc = roc_auc_score(y, p)
    rng = np.random.default_rng(7)
    boots = []
    for _ in range(n_boot):
        idx = rng.integers(0, len(y), len(y))
        if y[idx].min() != y[idx].max():
            boots.append(roc_auc_score(y[idx], p[idx]))
    return auc, float(np.percentile(boots, 2.5)), float(np.percentile(boots, 97.5))


def reliability(y: np.ndarray, p: np.ndarray, bins: int = 10) -> list[dict]:
    edges = np.quantile(p, np.linspace(0, 1, bins + 1))
    out = []
    which = np.clip(np.searchsorted(edges[1:-1], p, side="right"), 0, bins - 1)
    for b in range(bins):
        m = which == b
        if m.sum():
            out.append({"mean_p": round(float(p[m].mean()), 4), "observed": round(float(y[m].mean()), 4),
                        "n": int(m.sum())})
    return out


def operating_point(y: np.ndarray, p: np.ndarray, t: float) -> dict:
    pred = p >= t
    tp, fp = int((pred & (y == 1)).sum()), int((pred & (y == 0)).sum())
    pos, neg = int((y == 1).sum()), int((y == 0).sum())
    return {"threshold": round(float(t), 5), "recall": tp / pos if pos else float("nan"),
            "recall_ci": wilson(tp, pos), "precision": tp / (tp + fp) if tp + fp else float("nan"),
            "precision_ci": wilson(tp, tp + fp), "fpr": fp / neg if neg else float("nan"),
            "fpr_ci": wilson(fp, neg), "flagged": (tp + fp) / len(y), "n": len(y), "positives": pos}


def threshold_for_recall(y: np.ndarray, p: np.ndarray, recall: float) -> float:
    """Largest threshold whose recall on (y, p) is >= ``recall``."""
    pos = np.sort(p[y == 1])[::-1]
    k = int(math.ceil(recall * len(pos))) - 1
    return float(pos[max(k, 0)])


def threshold_for_precision(y: np.ndarray, p: np.ndarray, precision: float) -> float:
    order = np.argsort(-p)
    tp = np.cumsum(y[order] == 1)
    prec = tp / np.arange(1, len(y) + 1)
    ok = np.where(prec >= precision)[0]
    ok = ok[ok >= 20] if (ok >= 20).any() else ok
    return float(p[order][ok.max()]) if len(ok) else 1.0


def evaluate(name: str, y: np.ndarray, p: np.ndarray, thresholds: dict[str, float]) -> dict:
    auc, lo, hi = auc_ci(y, p)
    res = {"name": name, "n": len(y), "prevalence": float(y.mean()), "auc": auc, "auc_ci": (lo, hi),
           "brier": float(brier_score_loss(y, p)), "reliability": reliability(y, p),
           "points": {k: operating_point(y, p, t) for k, t in thresholds.items()}}
    return res


def fmt_ci(ci: tuple[float, float]) -> str:
    return f"{ci[0]:.3f}-{ci[1]:.3f}"


def print_eval(res: dict) -> None:
    print(f"\n### {res['name']}  (n={res['n']}, prevalence {res['prevalence']:.3f})")
    print(f"AUC {res['auc']:.3f} (95% bootstrap CI {fmt_ci(res['auc_ci'])}), Brier {res['brier']:.4f}")
    print("| operating point | threshold | recall (95% Wilson) | precision (95% Wilson) | non-positives flagged (FPR) | flagged share |")
    print("|---|---|---|---|---|---|")
    for k, op in res["points"].items():
        print(f"| {k} | {op['threshold']:.4f} | {op['recall']:.3f} ({fmt_ci(op['recall_ci'])}) | "
              f"{op['precision']:.3f} ({fmt_ci(op['precision_ci'])}) | {op['fpr']:.3f} ({fmt_ci(op['fpr_ci'])}) | "
              f"{op['flagged']:.3f} |")
    print("reliability (mean predicted -> observed, n): " + "; ".join(
        f"{b['mean_p']:.3f}->{b['observed']:.3f} ({b['n']})" for b in res["reliability"]))


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
    ap.add_argument("--compare-hgb", action="store_true")
    args = ap.parse_args()
    t0 = time.time()
    coder = Coder()
    nh = load_nhamcs()
    kt = load_ktas()
    train = [r for r in nh if r["year"] in (2018, 2019)]
    test = [r for r in nh if r["year"] == 2020]
    kt_train = [r for r in kt if not r["validation"]]
    kt_val = [r for r in kt if r["validation"]]
    print(f"NHAMCS train {len(train)} (2018-2019), test {len(test)} (2020); KTAS train {len(kt_train)}, val {len(kt_val)}")

    # two views of every training row
    f_train = featurize(train, coder, with_vitals=True) + featurize(train, coder, with_vitals=False)
    f_kt = featurize(kt_train, coder, with_vitals=True) + featurize(kt_train, coder, with_vitals=False)
    print(f"coded {len(coder.cache)} distinct texts in {time.time() - t0:.0f}s")
    counts: dict[str, int] = {}
    for f in f_train[:len(train)] + f_kt[:len(kt_train)]:
        for name in f:
            counts[name] = counts.get(name, 0) + 1
    features = sorted(n for n, c in counts.items()
                      if (n.startswith("code:") and c >= MIN_CODE_COUNT)
                      or (n.startswith("group:") and c >= MIN_GROUP_COUNT)
                      or not n.startswith(("code:", "group:")))
    index = {n: i for i, n in enumerate(features)}
    X_nh = matrix(f_train, index)
    X_kt = matrix(f_kt, index)
    groups_nh = np.array([i for i in range(len(train))] * 2)
    view_nh = np.array([1] * len(train) + [0] * len(train))  # 1 = with vitals
    print(f"{len(features)} features")

    coefs, intercepts, iso, oof_all, chosen_c = [], [], [], {}, {}
    for t_i, target in enumerate(TARGETS):
        y_nh = np.array([r[target] for r in train] * 2)
        keep = y_nh >= 0
        X, y, g, view = X_nh[keep], y_nh[keep], groups_nh[keep], view_nh[keep]
        w = np.full(len(y), 0.5)
        if target == "emergency":  # add KTAS train split rows (emergency only)
            y_kt = np.array([r["emergency"] for r in kt_train] * 2)
            X = sparse.vstack([X, X_kt])
            y = np.concatenate([y, y_kt])
            g = np.concatenate([g, 10_000_000 + np.array(list(range(len(kt_train))) * 2)])
            view = np.concatenate([view, np.array([1] * len(kt_train) + [0] * len(kt_train))])
            w = np.concatenate([w, np.full(len(y_kt), 0.5 * KTAS_WEIGHT)])
        is_nh = g < 10_000_000
        folds = list(GroupKFold(n_splits=5).split(X, y, g))
        # choose C on the first fold
        best = None
        for c in C_GRID:
            tr, va = folds[0]
            m = LogisticRegression(C=c, max_iter=3000).fit(X[tr], y[tr], sample_weight=w[tr])
            auc = roc_auc_score(y[va], m.decision_function(X[va]))
            if best is None or auc > best[0] + 1e-4:
                best = (auc, c)
        c = best[1]
        chosen_c[target] = c
        oof = np.zeros(len(y))
        for tr, va in folds:
            m = LogisticRegression(C=c, max_iter=3000).fit(X[tr], y[tr], sample_weight=w[tr])
            oof[va] = m.decision_function(X[va])
        ir = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(oof, y, sample_weight=w)
        final = LogisticRegression(C=c, max_iter=3000).fit(X, y, sample_weight=w)
        coefs.append(final.coef_[0])
        intercepts.append(final.intercept_[0])
        iso.append((ir.X_thresholds_, ir.y_thresholds_))
        p_oof = ir.predict(oof)
        oof_all[target] = {"y": y[is_nh], "p": p_oof[is_nh], "view": view[is_nh]}
        print(f"{target}: C={c} OOF AUC NHAMCS {roc_auc_score(y[is_nh], oof[is_nh]):.3f} "
              f"({time.time() - t0:.0f}s)")

    arrays = {"coef": np.array(coefs), "intercept": np.array(intercepts)}
    for t_i, target in enumerate(TARGETS):
        arrays[f"iso_x_{target}"], arrays[f"iso_y_{target}"] = iso[t_i]

    # thresholds from OOF (2018-2019 NHAMCS only), per view
    thresholds: dict[str, dict[str, float]] = {}
    for view_name, v in (("vitals", 1), ("no_vitals", 0)):
        e, cr, ad = (oof_all[t] for t in TARGETS)
        me, mc, ma = e["view"] == v, cr["view"] == v, ad["view"] == v
        thresholds[view_name] = {
            "t_emergency": threshold_for_recall(e["y"][me], e["p"][me], 0.90),
            "t_emergency_r95": threshold_for_recall(e["y"][me], e["p"][me], 0.95),
            "t_consult24": threshold_for_recall(e["y"][me], e["p"][me], 0.98),
            "t_self_care": threshold_for_recall(e["y"][me], e["p"][me], 0.995),
            "t_ambulance": max(threshold_for_precision(cr["y"][mc], cr["p"][mc], 0.25), 0.05),
            "t_admit24": threshold_for_precision(ad["y"][ma], ad["p"][ma], 0.35),
            "t_admit_self_care": threshold_for_recall(ad["y"][ma], ad["p"][ma], 0.99),
        }
    labels = {e.code: e.label_en for e in coder.vocab.entries.values()}
    metadata = {
        "version": MODEL_VERSION, "created": dt.date.today().isoformat(),
        "model": "L2 logistic regression per target + isotonic calibration on 5-fold out-of-fold logits",
        "targets": {"emergency": "NHAMCS IMMEDR 1-2 (of 1-5) + KTAS_expert 1-2 (KTAS dev 70% train split)",
                    "critical": "NHAMCS ADMIT==1 (critical care) or DIEDED==1 or DOA==1",
                    "admit": "NHAMCS ADMITHOS==1"},
        "training_data": {"nhamcs": "NHAMCS ED 2018-2019 public-use files (CDC/NCHS), every visit twice "
                                    "(with recorded vitals / without vitals, weight 0.5 each)",
                          "ktas": f"KTAS dev 70% train split (weight {KTAS_WEIGHT}, emergency target only)",
                          "n_nhamcs_visits": len(train), "n_ktas": len(kt_train)},
        "date_split": {"train": "2018-2019", "validation": "2020 (NHAMCS), KTAS dev 30% split"},
        "features_from": "assistant.triage.complaints.code_complaint on '<RFV1_TEXT>; <RFV2_TEXT>; <RFV3_TEXT>.'",
        "C": chosen_c, "min_code_count": MIN_CODE_COUNT,
        "thresholds": thresholds,
        "threshold_rule": "chosen on out-of-fold calibrated predictions of NHAMCS 2018-2019 only, per view: "
                          "t_emergency recall>=0.90, t_emergency_r95 recall>=0.95, t_consult24 recall>=0.98, "
                          "t_self_care recall>=0.995 (emergency); t_ambulance precision>=0.25 (critical); "
                          "t_admit24 precision>=0.35, t_admit_self_care recall>=0.99 (admission)",
        "features": features, "code_labels": {f[5:]: labels.get(f[5:], f[5:]) for f in features if f.startswith("code:")},
    }
    model = AcuityModel(arrays, metadata)

    # ------------------------------------------------------------------ validation
    results = []
    for view_name, wv in (("no_vitals", False), ("vitals", True)):
        th = thresholds[view_name]
        f_test = featurize(test, coder, with_vitals=wv, from_text=True)
        P = model.predict_matrix(matrix(f_test, index).toarray())
        for t_i, target in enumerate(TARGETS):
            y = np.array([r[target] for r in test])
            keep = y >= 0
            pts = ({"recall>=90% (t_emergency)": th["t_emergency"], "recall>=95% (t_emergency_r95)": th["t_emergency_r95"]}
                   if target == "emergency" else
                   {"t_ambulance": th["t_ambulance"]} if target == "critical" else {"t_admit24": th["t_admit24"]})
            results.append(evaluate(f"NHAMCS 2020, {target}, {view_name.replace('_', ' ')}", y[keep], P[keep, t_i], pts))
        f_kv = featurize(kt_val, coder, with_vitals=wv, from_text=True)
        Pk = model.predict_matrix(matrix(f_kv, index).toarray())
        yk = np.array([r["emergency"] for r in kt_val])
        results.append(evaluate(f"KTAS dev val, emergency (KTAS 1-2), complaint+age/sex{' + vitals' if wv else ' only'}",
                                yk, Pk[:, 0], {"recall>=90% (t_emergency)": th["t_emergency"],
                                               "recall>=95% (t_emergency_r95)": th["t_emergency_r95"]}))
    for res in results:
        print_eval(res)

    if args.compare_hgb:
        from sklearn.ensemble import HistGradientBoostingClassifier
        for view_name, wv in (("no_vitals", False), ("vitals", True)):
            f_test = featurize(test, coder, with_vitals=wv, from_text=True)
            Xt = matrix(f_test, index).toarray()
            for t_i, target in enumerate(TARGETS):
                y_nh = np.array([r[target] for r in train] * 2)
                keep = y_nh >= 0
                h = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.1, max_leaf_nodes=31,
                                                   random_state=0).fit(X_nh[keep].toarray(), y_nh[keep])
                y = np.array([r[target] for r in test])
                k2 = y >= 0
                print(f"HGB {target} {view_name}: 2020 AUC {roc_auc_score(y[k2], h.predict_proba(Xt[k2])[:, 1]):.3f}")

    metadata["validation"] = [{k: v for k, v in r.items()} for r in results]
    if not args.no_write:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(OUT_DIR / "model.npz", **arrays)
        (OUT_DIR / "metadata.json").write_text(json.dumps(metadata, indent=1, ensure_ascii=False, default=float),
                                               encoding="utf-8")
        print(f"\nwrote {OUT_DIR}/model.npz + metadata.json")
    print(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
