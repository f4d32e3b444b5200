"""Train, calibrate, threshold and validate the acuity model (assistant/triage/acuity.py).

Model: per outcome, complaint encodings (smoothed code / code-group target rates and an L2
logistic regression over codes, groups, age bands, sex) stacked under a
HistGradientBoostingClassifier with age, sex, number of complaints and raw vitals (NaN =
missing), then isotonic calibration on out-of-fold scores. The encodings of training rows are
cross-fitted (inner 5-fold) so the trees never see a row's own label through them.

Data (read in place from ../shared/data):
  * NHAMCS ED 2018-2020 (NCHS, public domain): complaint TEXT "<RFV1_TEXT>; <RFV2_TEXT>."
    (Blank skipped) coded by assistant.triage.complaints.code_complaint, age, sex, vitals.
    Train = 2018-2019; report = 2020 (temporal validation). Thresholds are chosen on
    4-fold out-of-fold predictions of 2018-2019 only (grouped by visit).
  * KTAS dev (Moon et al., PLOS ONE 2019, CC BY 4.0): the project's 70 % train split (by text hash,
    assistant.triage.routing._is_validation over assistant.evaluation.datasets.ktas_cases text)
    is added to the emergency model (KTAS_expert 1-2); the 30 % validation split is reported.

Every training visit appears twice: once with its recorded vitals and once with none, so the
model works with and without vitals (weights 0.5 each).

Run:  .venv/bin/python eval/urgency/train_acuity.py [--no-write]   (about 4 min on 2 cores)
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
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.model_selection import KFold

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from assistant.evaluation.datasets import ktas_cases
from assistant.triage.acuity import CLINICAL_RULES, TARGETS, TREE_FEATURES, VITAL_ORDER, AcuityModel, feature_dict
from assistant.triage.complaints import code_complaint, load_vocabulary

try:  # renamed public during a refactor; accept both
    from assistant.triage.routing import is_validation as _is_validation
except ImportError:  # pragma: no cover
    from assistant.triage.routing import _is_validation

SHARED = ROOT.parent / "shared" / "data"
OUT_DIR = ROOT / "knowledge_base" / "models" / "acuity"
MODEL_VERSION = "2.0.0"
RFV_COLUMNS = ("RFV1_TEXT", "RFV2_TEXT")   # the reported text format "<RFV1>; <RFV2>."
MIN_CODE_COUNT = 10      # a code becomes a logistic feature when seen >= this often in training
MIN_GROUP_COUNT = 30
LR_C = 0.2               # the previous model's choice on one CV fold (0.05 / 0.2 / 1)
TE_SMOOTHING = 20.0      # pseudo-count of the prior in the code target rates
KTAS_WEIGHT = 3.0
N_FOLDS = 4
HGB_PARAMS = dict(learning_rate=0.06, max_iter=250, max_leaf_nodes=15, min_samples_leaf=50,
                  l2_regularization=1.0, early_stopping=False, random_state=0)
RNG = np.random.default_rng(20240601)


# --------------------------------------------------------------------------- data
def _num(value: str) -> float | None:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return None
    return v


def nhamcs_text(row: dict) -> str:
    parts = [row[k].strip() for k in RFV_COLUMNS
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


# --------------------------------------------------------------------------- stacked model
class Block:
    """The training view of a set of patients: code matrices, logistic inputs, age/sex/vitals, labels."""

    def __init__(self, rows: list[dict], codings: list, code_idx: dict, group_idx: dict, lr_idx: dict) -> None:
        n = len(rows)
        ri, cj, gj = [], [], []
        self.first = np.full(n, -1)
        for i, cd in enumerate(codings):
            codes = [c.code for c in cd.codes]
            for c in dict.fromkeys(codes):
                if c in code_idx:
                    ri.append(i)
                    cj.append(code_idx[c])
            if codes and codes[0] in code_idx:
                self.first[i] = code_idx[codes[0]]
            for g in dict.fromkeys(c[:3] for c in codes):
                if g in group_idx:
                    gj.append((i, group_idx[g]))
        self.C = sparse.csr_matrix((np.ones(len(ri)), (ri, cj)), shape=(n, len(code_idx)))
        gi = np.array(gj, dtype=np.int64).reshape(-1, 2)
        self.G = sparse.csr_matrix((np.ones(len(gi)), (gi[:, 0], gi[:, 1])), shape=(n, len(group_idx)))
        self.XL = matrix([feature_dict(cd, age_years=r["age"], sex=r["sex"], vitals=None)
                          for r, cd in zip(rows, codings)], lr_idx)
        self.head_v = np.array([[r["age"] if r["age"] is not None else np.nan,
                                 1.0 if r["sex"] == "M" else 0.0 if r["sex"] == "F" else np.nan,
                                 float(min(len(cd.codes), 3))]
                                + [r["vitals"].get(k, np.nan) for k in VITAL_ORDER] + [1.0 if r["vitals"] else 0.0]
                                for r, cd in zip(rows, codings)])
        self.head_nv = self.head_v.copy()
        self.head_nv[:, 3:9] = np.nan
        self.head_nv[:, 8] = 0.0
        self.y = {t: np.array([r.get(t, -1) for r in rows]) for t in TARGETS}

    def __len__(self) -> int:
        return self.C.shape[0]


class Encoder:
    """Complaint encodings fitted on rows ``idx`` of a :class:`Block` (see acuity.AcuityModel.encode_codes)."""

    def __init__(self, b: Block, idx: np.ndarray) -> None:
        self.rate, self.grate, self.prior, self.coef, self.intercept = [], [], [], [], []
        for t in TARGETS:
            y = b.y[t][idx]
            ok = idx[y >= 0]
            yy = b.y[t][ok].astype(float)
            p = float(yy.mean())
            for mat, out in ((b.C, self.rate), (b.G, self.grate)):
                cnt = np.asarray(mat[ok].sum(0)).ravel()
                s = np.asarray(mat[ok].T @ yy).ravel()
                out.append((s + TE_SMOOTHING * p) / (cnt + TE_SMOOTHING))
            self.prior.append(p)
            lr = LogisticRegression(C=LR_C, max_iter=3000).fit(b.XL[ok], b.y[t][ok])
            self.coef.append(lr.coef_[0])
            self.intercept.append(lr.intercept_[0])
        self.rate, self.grate = np.array(self.rate), np.array(self.grate)
        self.prior, self.coef, self.intercept = np.array(self.prior), np.array(self.coef), np.array(self.intercept)

    def transform(self, b: Block, idx: np.ndarray) -> np.ndarray:
        C, G, first = b.C[idx], b.G[idx], b.first[idx]
        nc, ng = np.asarray(C.sum(1)).ravel(), np.asarray(G.sum(1)).ravel()
        cols = []
        for t in range(len(TARGETS)):
            lo = math.log(self.prior[t] / (1 - self.prior[t]))
            dev = np.log(self.rate[t] / (1 - self.rate[t])) - lo
            gdev = np.log(self.grate[t] / (1 - self.grate[t])) - lo
            mx = np.asarray(C.multiply(self.rate[t][None, :]).max(1).todense()).ravel()
            gmx = np.asarray(G.multiply(self.grate[t][None, :]).max(1).todense()).ravel()
            sd, gsd = C @ dev, G @ gdev
            fr = np.where(first >= 0, self.rate[t][np.maximum(first, 0)], np.nan)
            for v, n in ((mx, nc), (sd, nc), (fr, None), (gmx, ng), (gsd, ng)):
                v = v.astype(float)
                if n is not None:
                    v[n == 0] = np.nan
                cols.append(v)
        lr = b.XL[idx] @ self.coef.T + self.intercept
        return np.column_stack(cols + [lr])


def crossfit(b: Block, idx: np.ndarray, seed: int = 1) -> np.ndarray:
    """Encodings of rows ``idx`` each from an encoder fitted without it (inner 5-fold)."""
    out = np.zeros((len(idx), 3 * 5 + 3))
    for a, c in KFold(5, shuffle=True, random_state=seed).split(idx):
        out[c] = Encoder(b, idx[a]).transform(b, idx[c])
    return out


def two_views(b: Block, idx: np.ndarray, enc: np.ndarray) -> np.ndarray:
    """Rows with recorded vitals, then the same rows without vitals (TREE_FEATURES order)."""
    return np.vstack([np.hstack([b.head_v[idx], enc]), np.hstack([b.head_nv[idx], enc])])


def fit_trees(nh: Block, tr: np.ndarray, enc_tr: np.ndarray, kt: Block, kt_tr: np.ndarray,
              enc_kt: np.ndarray) -> list[HistGradientBoostingClassifier]:
    models = []
    for t in TARGETS:
        y = np.concatenate([nh.y[t][tr]] * 2)
        X = two_views(nh, tr, enc_tr)
        w = np.full(len(y), 0.5)
        if t == "emergency" and len(kt_tr):
            X = np.vstack([X, two_views(kt, kt_tr, enc_kt)])
            y = np.concatenate([y, np.concatenate([kt.y[t][kt_tr]] * 2)])
            w = np.concatenate([w, np.full(2 * len(kt_tr), 0.5 * KTAS_WEIGHT)])
        ok = y >= 0
        models.append(HistGradientBoostingClassifier(**HGB_PARAMS).fit(X[ok], y[ok], sample_weight=w[ok]))
    return models


def tree_arrays(m: HistGradientBoostingClassifier, prefix: str) -> dict[str, np.ndarray]:
    """Flatten a fitted binary HGB (numeric splits only) for acuity._Trees."""
    nodes, roots, off = [], [], 0
    for (pred,) in m._predictors:
        nd = pred.nodes
        if nd["is_categorical"].any():
            raise ValueError("categorical splits are not supported by the exporter")
        roots.append(off)
        nodes.append((nd, off))
        off += len(nd)
    cat = lambda f: np.concatenate([nd[f] for nd, _ in nodes])
    left = np.concatenate([nd["left"].astype(np.int64) + o for nd, o in nodes])
    right = np.concatenate([nd["right"].astype(np.int64) + o for nd, o in nodes])
    return {f"{prefix}_feature": cat("feature_idx").astype(np.int32),
            f"{prefix}_threshold": cat("num_threshold").astype(np.float64),
            f"{prefix}_left": left.astype(np.int32), f"{prefix}_right": right.astype(np.int32),
            f"{prefix}_value": cat("value").astype(np.float64),
            f"{prefix}_missing_left": cat("missing_go_to_left").astype(np.uint8),
            f"{prefix}_is_leaf": cat("is_leaf").astype(np.uint8),
            f"{prefix}_roots": np.array(roots, dtype=np.int32),
            f"{prefix}_baseline": np.asarray(m._baseline_prediction, dtype=np.float64).ravel(),
            f"{prefix}_max_depth": np.array([int(cat("depth").max())], dtype=np.int32)}


def calibration_knots(score: np.ndarray, y: np.ndarray, w: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Isotonic regression of y on score; knots at the mean score of each constant block, so the
    calibrated curve is continuous and strictly increasing between blocks (no wide ties)."""
    ir = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(score, y, sample_weight=w)
    order = np.argsort(score)
    s, fit, ww = score[order], ir.predict(score[order]), w[order]
    xs, ys, start = [], [], 0
    for i in range(1, len(s) + 1):
        if i == len(s) or fit[i] != fit[start]:
            xs.append(float(np.average(s[start:i], weights=ww[start:i])))
            ys.append(float(fit[start]))
            start = i
    xs = [float(s[0])] + xs + [float(s[-1])]
    ys = [ys[0]] + ys + [ys[-1]]
    return np.array(xs), np.array(ys)


# --------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-write", action="store_true")
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
    cod_tr = [coder(r["text"]) for r in train]
    cod_kt = [coder(r["text"]) for r in kt_train]
    print(f"coded {len(coder.cache)} distinct texts in {time.time() - t0:.0f}s", flush=True)

    # vocabularies: all training codes/groups for the rate tables; frequent ones for the logistic part
    te_codes = sorted({c.code for cd in cod_tr for c in cd.codes})
    te_groups = sorted({c[:3] for c in te_codes})
    counts: dict[str, int] = {}
    for r, cd in zip(train + kt_train, cod_tr + cod_kt):
        for name in feature_dict(cd, age_years=r["age"], sex=r["sex"], vitals=None):
            counts[name] = counts.get(name, 0) + 1
    features = sorted(n for n, c in counts.items()
                      if (n.startswith("code:") and c >= MIN_CODE_COUNT)
                      or (n.startswith("group:") and c >= MIN_GROUP_COUNT)
                      or not n.startswith(("code:", "group:")))
    lr_idx = {n: i for i, n in enumerate(features)}
    code_idx = {c: i for i, c in enumerate(te_codes)}
    group_idx = {g: i for i, g in enumerate(te_groups)}
    B = Block(train, cod_tr, code_idx, group_idx, lr_idx)
    K = Block(kt_train, cod_kt, code_idx, group_idx, lr_idx)
    n, nk = len(B), len(K)
    print(f"{len(te_codes)} codes, {len(te_groups)} groups, {len(features)} logistic features", flush=True)

    # out-of-fold raw scores (2018-2019), both views
    oof = np.zeros((2 * n, len(TARGETS)))
    kt_folds = np.arange(nk) % N_FOLDS
    for k, (tr, va) in enumerate(KFold(N_FOLDS, shuffle=True, random_state=0).split(np.arange(n))):
        enc = Encoder(B, tr)
        kt_tr = np.where(kt_folds != k)[0]
        models = fit_trees(B, tr, crossfit(B, tr), K, kt_tr, enc.transform(K, kt_tr))
        Xva = two_views(B, va, enc.transform(B, va))
        for t_i, m in enumerate(models):
            raw = m.decision_function(Xva)
            oof[va, t_i], oof[n + va, t_i] = raw[:len(va)], raw[len(va):]
        print(f"fold {k + 1}/{N_FOLDS} done ({time.time() - t0:.0f}s)", flush=True)
    view = np.array([1] * n + [0] * n)

    # final model on all 2018-2019 (+ KTAS train)
    enc = Encoder(B, np.arange(n))
    models = fit_trees(B, np.arange(n), crossfit(B, np.arange(n)), K, np.arange(nk), enc.transform(K, np.arange(nk)))
    print(f"final fit done ({time.time() - t0:.0f}s)", flush=True)
    arrays: dict[str, np.ndarray] = {"coef": enc.coef, "intercept": enc.intercept, "te_rate": enc.rate,
                                     "te_grate": enc.grate, "te_prior": enc.prior}
    oof_all, cv_auc = {}, {}
    for t_i, (t, m) in enumerate(zip(TARGETS, models)):
        arrays.update(tree_arrays(m, f"tree_{t}"))
        y = np.concatenate([B.y[t]] * 2)
        ok = y >= 0
        cx, cy = calibration_knots(oof[ok, t_i], y[ok], np.full(ok.sum(), 0.5))
        arrays[f"cal_x_{t}"], arrays[f"cal_y_{t}"] = cx, cy
        p = np.clip(np.interp(oof[:, t_i], cx, cy), 0, 1)
        oof_all[t] = {"y": y[ok], "p": p[ok], "view": view[ok]}
        cv_auc[t] = {v: round(float(roc_auc_score(y[ok & (view == i)], oof[ok & (view == i), t_i])), 4)
                     for v, i in (("vitals", 1), ("no_vitals", 0))}
        print(f"{t}: 2018-2019 OOF AUC {cv_auc[t]}", flush=True)

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
        oof_pts = {k: operating_point(e["y"][me], e["p"][me], thresholds[view_name][k])
                   for k in ("t_emergency", "t_emergency_r95")}
        thresholds[view_name]["oof_points"] = {k: {"recall": round(o["recall"], 4), "fpr": round(o["fpr"], 4),
                                                   "precision": round(o["precision"], 4)} for k, o in oof_pts.items()}
    labels = {e.code: e.label_en for e in coder.vocab.entries.values()}
    metadata = {
        "version": MODEL_VERSION, "created": dt.date.today().isoformat(),
        "model": ("per target: complaint encodings (smoothed code/code-group target rates, cross-fitted; L2 logistic "
                  "regression logit over codes, groups, age bands, sex) + age, sex, number of complaints, raw vitals "
                  "-> HistGradientBoostingClassifier (sklearn, exported to arrays) -> isotonic calibration on "
                  f"{N_FOLDS}-fold out-of-fold scores (knots at block means)"),
        "hgb_params": HGB_PARAMS, "te_smoothing": TE_SMOOTHING, "lr_C": LR_C,
        "targets": {"emergency": "NHAMCS IMMEDR 1-2 (of 1-5) + KTAS_expert 1-2 (KTAS dev 70% train split)",
                    "critical": "NHAMCS ADMIT==1 (critical care) or DIEDED==1 or DOA==1",
                    "admit": "NHAMCS ADMITHOS==1"},
        "training_data": {"nhamcs": "NHAMCS ED 2018-2019 public-use files (CDC/NCHS), every visit twice "
                                    "(with recorded vitals / without vitals, weight 0.5 each)",
                          "ktas": f"KTAS dev 70% train split (weight {KTAS_WEIGHT}, emergency target only)",
                          "n_nhamcs_visits": len(train), "n_ktas": len(kt_train)},
        "date_split": {"train": "2018-2019", "validation": "2020 (NHAMCS), KTAS dev 30% split"},
        "features_from": "assistant.triage.complaints.code_complaint on '" + "; ".join(
            f"<{c}>" for c in RFV_COLUMNS) + ".' (Blank skipped)",
        "cv_auc_2018_2019": cv_auc,
        "min_code_count": MIN_CODE_COUNT,
        "thresholds": thresholds,
        "clinical_rules": list(CLINICAL_RULES),
        "threshold_rule": "chosen on out-of-fold calibrated predictions of NHAMCS 2018-2019 only, per view: "
                          "t_emergency recall>=0.90, t_emergency_r95 recall>=0.95 (reported, not used by decide), "
                          "t_consult24 recall>=0.98, t_self_care recall>=0.995 (emergency); t_ambulance "
                          "precision>=0.25 (critical); t_admit24 precision>=0.35, t_admit_self_care recall>=0.99 (admission)",
        "features": features, "tree_features": list(TREE_FEATURES), "te_codes": te_codes, "te_groups": te_groups,
        "code_labels": {c: labels.get(c, c) for c in te_codes},
    }
    model = AcuityModel(arrays, metadata)
    # the runtime path (AcuityModel.tree_row) must reproduce the training features
    chk = np.arange(0, n, max(1, n // 300))
    x_rt = np.stack([model.tree_row([c.code for c in cod_tr[i].codes], age_years=train[i]["age"],
                                    sex=train[i]["sex"], vitals=train[i]["vitals"]) for i in chk])
    x_tr = np.hstack([B.head_v[chk], enc.transform(B, chk)])
    assert np.allclose(np.nan_to_num(x_rt, nan=-9e9), np.nan_to_num(x_tr, nan=-9e9), atol=1e-8), "feature mismatch"
    for t_i, m in enumerate(models):
        assert np.allclose(model.trees[t_i].raw(x_tr), m.decision_function(x_tr), atol=1e-8), "tree export mismatch"

    # ------------------------------------------------------------------ validation (runtime path, from text)
    results = []
    for view_name, wv in (("no_vitals", False), ("vitals", True)):
        th = thresholds[view_name]
        pts_e = {"recall>=90% (t_emergency)": th["t_emergency"], "recall>=95% (t_emergency_r95)": th["t_emergency_r95"],
                 "band floor (t_consult24)": th["t_consult24"]}
        for name, rows in (("NHAMCS 2020", test), ("KTAS dev val", kt_val)):
            texts = [r["text"] + (vitals_text(r["vitals"]) if wv else "") for r in rows]
            codings = [code_complaint(tx, vocabulary=coder.vocab) if wv else coder(tx) for tx in texts]
            P = model.predict_many(codings, ages=[r["age"] for r in rows], sexes=[r["sex"] for r in rows],
                                   vitals=[cd.vitals if wv else None for cd in codings])
            targets = TARGETS if name == "NHAMCS 2020" else ("emergency",)
            for t_i, target in enumerate(targets):
                y = np.array([r[target] for r in rows])
                keep = y >= 0
                pts = (pts_e if target == "emergency" else {"t_ambulance": th["t_ambulance"]} if target == "critical"
                       else {"t_admit24": th["t_admit24"]})
                label = (f"NHAMCS 2020, {target}, {view_name.replace('_', ' ')}" if name == "NHAMCS 2020" else
                         f"KTAS dev val, emergency (KTAS 1-2), complaint+age/sex{' + vitals' if wv else ' only'}")
                res = evaluate(label, y[keep], P[keep, t_i], pts)
                if target == "emergency":  # what it would take on this set (not used for any choice)
                    res["oracle"] = {f"recall>={r:.2f} on this set": operating_point(
                        y[keep], P[keep, t_i], threshold_for_recall(y[keep], P[keep, t_i], r)) for r in (0.90, 0.95)}
                results.append(res)
    for res in results:
        print_eval(res)
        for k, op in res.get("oracle", {}).items():
            print(f"  oracle {k}: threshold {op['threshold']:.4f}, precision {op['precision']:.3f}, FPR {op['fpr']:.3f}")

    metadata["validation"] = results
    if not args.no_write:
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(OUT_DIR / "model.npz", **arrays)
        (OUT_DIR / "metadata.json").write_text(json.dumps(metadata, indent=1, ensure_ascii=False, default=float),
                                               encoding="utf-8")
        print(f"\nwrote {OUT_DIR}/model.npz + metadata.json")
    print(f"done in {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main()
