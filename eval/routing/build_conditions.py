"""Build the condition index and the NHAMCS prior shipped in knowledge_base/models/conditions/.

Inputs (read in place, ../shared/data):

* ``icd10cm/icd10.json.gz``: ICD-10-CM code -> description (public domain);
* ``medquad/medquad_core_nih_answered.jsonl``: MedQuAD (CC BY 4.0), the NIH consumer sites
  (MedlinePlus, NIHSeniorHealth, NIDDK, NINDS, NHLBI, CancerGov, CDC); GARD/GHR rare
  genetic diseases are left out (they would outnumber common conditions);
* ``nhamcs/nhamcs_ed_2018_2020.csv``: NHAMCS ED visits (NCHS, public domain).

Outputs:

* ``knowledge_base/models/conditions/conditions.npz``: BM25 (bm25s, Lucene, k1 1.5, b 0.75)
  document-term scores as CSC arrays ``data, indices, indptr`` (one column per term);
* ``knowledge_base/models/conditions/conditions.json``: version, vocab, conditions
  (name, ICD-10 code, group range, url, source);
* ``knowledge_base/models/conditions/nhamcs_prior.json``: P(group | RFV code, age band, sex);
* ``eval/routing/medquad_focus_icd10.tsv``: the derived MedQuAD focus -> ICD-10 table
  (focus, code, ICD description, method, score).

MedQuAD focus -> ICD-10: the best ICD-10-CM description by name (rapidfuzz
token_set_ratio >= 90, shorter description first); otherwise the best BM25 match of the
focus name and the first sentence of its "information" answer over the ICD-10-CM
categories (score >= 8). Foci matching neither are left out.

NHAMCS prior: each 2018-2019 visit with a DIAG1 in the group table counts 1 for its RFV1
and 0.5 for RFV2/RFV3 (survey weights are not used: the prior describes the mix of visits
per complaint, not national totals). Smoothing: P(g | c, a, s) = (n(c,a,s,g) + alpha P(g | c))
/ (n(c,a,s) + alpha), P(g | c) = (n(c,g) + beta P(g | a, s)) / (n(c) + beta); alpha and beta
are chosen by log-loss on 2019 with counts from 2018, then refitted on 2018-2019; 2020 is
the validation year (figures printed and written to eval/routing/README.md by hand).

Usage: ``.venv/bin/python eval/routing/build_conditions.py``  (about a minute on 2 cores)
"""

from __future__ import annotations

import csv
import gzip
import json
import math
import sys
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
SHARED = REPO.parent / "shared" / "data"
OUT = REPO / "knowledge_base" / "models" / "conditions"
CORE_SOURCES = {"MPlusHealthTopics", "NIHSeniorHealth", "NIDDK", "NINDS", "NHLBI", "CancerGov", "CDC"}
RETRIEVAL_CHAPTERS = tuple("ABCDEFGHIJKLMNOPQRST") + ("U07",)


def icd_documents(icd: dict[str, list]) -> list[dict]:
    """One document per 3-character category of chapters A-T (+U07): its description and
    the descriptions of its subcategories (words de-duplicated, at most 60 words)."""
    children: dict[str, list[str]] = defaultdict(list)
    for code, (_, desc) in icd.items():
        if len(code) > 3:
            children[code[:3]].append(desc)
    docs = []
    for code, (_, desc) in icd.items():
        if len(code) != 3 or not code.startswith(RETRIEVAL_CHAPTERS):
            continue
        seen: list[str] = []
        for word in " ".join(children.get(code, [])).replace(",", " ").split():
            if word.lower() not in seen:
                seen.append(word.lower())
        docs.append({"name": desc, "code": code, "text": f"{desc} {desc} " + " ".join(seen[:60]),
                     "url": "", "source": "ICD-10-CM"})
    return docs


def medquad_foci() -> dict[str, dict]:
    """focus -> {"url", "source", "info", "symptoms"} for the NIH core sources."""
    foci: dict[str, dict] = {}
    with (SHARED / "medquad" / "medquad_core_nih_answered.jsonl").open(encoding="utf-8") as fh:
        for line in fh:
            d = json.loads(line)
            if d["source"] not in CORE_SOURCES or not d.get("focus"):
                continue
            f = foci.setdefault(d["focus"], {"url": d["url"], "source": d["source"], "info": "", "symptoms": ""})
            answer = " ".join(d["answer"].split())
            if d["qtype"] == "information" and not f["info"]:
                f["info"], f["url"] = answer[:600], d["url"]
            elif d["qtype"] == "symptoms" and not f["symptoms"]:
                f["symptoms"] = answer[:600]
    return foci


def bm25_matrix(texts: list[str]) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, int]]:
    """bm25s index of ``texts`` (our tokenizer) as CSC arrays and the vocabulary."""
    import bm25s

    from assistant.triage.conditions import tokens

    corpus = [tokens(t) for t in texts]
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(w, len(vocab)) for w in doc] for doc in corpus]
    model = bm25s.BM25(k1=1.5, b=0.75)
    model.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    s = model.scores
    return (np.asarray(s["data"], np.float32), np.asarray(s["indices"], np.int32),
            np.asarray(s["indptr"], np.int64), vocab)


def bm25_top(arrays, vocab, query: str) -> tuple[int, float]:
    from assistant.triage.conditions import tokens

    data, indices, indptr = arrays
    scores = np.zeros(int(indices.max()) + 1, np.float32)
    for t in {vocab[w] for w in tokens(query) if w in vocab}:
        np.add.at(scores, indices[indptr[t]:indptr[t + 1]], data[indptr[t]:indptr[t + 1]])
    i = int(scores.argmax())
    return i, float(scores[i])


LAY_NAMES = {
    # MedQuAD's lay focus names -> the ICD-10-CM term (only where the words differ)
    "heart attack": "myocardial infarction", "high blood pressure": "hypertension",
    "kidney stones": "calculus of kidney", "gallstones": "calculus of gallbladder",
    "flu": "influenza", "stroke": "cerebral infarction", "heartburn": "heartburn",
    "urinary tract infection": "urinary tract infection, site not specified",
    "pneumonia": "pneumonia, unspecified organism", "hives": "urticaria", "shingles": "zoster",
    "chickenpox": "varicella", "piles": "hemorrhoids", "pink eye": "conjunctivitis",
    "low back pain": "low back pain", "back pain": "dorsalgia", "kidney failure": "chronic kidney disease",
    "high blood cholesterol": "hypercholesterolemia", "cholesterol": "hypercholesterolemia",
    "overweight": "obesity", "sore throat": "acute pharyngitis", "fever": "fever, unspecified",
    "malnutrition": "unspecified protein-calorie malnutrition", "infertility": "female infertility",
    "copd": "chronic obstructive pulmonary disease", "anemia": "anemia, unspecified",
    "gastrointestinal bleeding": "gastrointestinal hemorrhage, unspecified", "burns": "burn of unspecified body region",
    "meningitis": "meningitis, unspecified", "sepsis": "sepsis, unspecified organism", "diabetes": "type 2 diabetes mellitus",
    "poisoning": "toxic effect of unspecified substance", "allergy": "allergy, unspecified", "bleeding": "hemorrhage, not elsewhere classified",
}


def _singular(text: str) -> str:
    return " ".join(w[:-1] if len(w) > 3 and w.endswith("s") and not w.endswith(("ss", "us", "is")) else w
                    for w in text.split())


def match_foci(foci: dict[str, dict], icd: dict[str, list], icd_docs: list[dict]) -> list[dict]:
    from rapidfuzz import fuzz, process

    names = {code: desc.lower() for code, (_, desc) in icd.items()
             if code.startswith(RETRIEVAL_CHAPTERS) and len(code) <= 5}
    codes, descs = list(names), list(names.values())
    data, indices, indptr, vocab = bm25_matrix([d["text"] for d in icd_docs])
    rows = []
    for focus, f in sorted(foci.items()):
        low = focus.lower()
        for lay, term in LAY_NAMES.items():
            if _singular(low) == _singular(lay) or low.startswith((lay + " in ", lay + " and ")):
                low = term
        special = any(w in low for w in ("pregnan", "newborn", "infant", "birth", "baby"))
        best = process.extract(low, descs, scorer=fuzz.token_set_ratio, limit=400, score_cutoff=90)
        if best:
            top = max(s for _, s, _ in best)

            def key(b, low=low, special=special):  # the description that starts with the focus, not pregnancy/newborn, shortest
                return (not _singular(b[0]).startswith(_singular(low)), codes[b[2]][0] in "OP" and not special,
                        len(b[0]), len(codes[b[2]]))

            _, score, i = min((b for b in best if b[1] == top), key=key)
            rows.append({"focus": focus, "code": codes[i], "desc": icd[codes[i]][1], "method": "name",
                         "score": round(score, 1), **f})
            continue
        first = f["info"].split(". ")[0][:300]
        i, score = bm25_top((data, indices, indptr), vocab, f"{focus} {focus} {first}")
        if score >= 8:
            rows.append({"focus": focus, "code": icd_docs[i]["code"], "desc": icd_docs[i]["name"],
                         "method": "bm25", "score": round(score, 1), **f})
    return rows


# ------------------------------------------------------------------ NHAMCS prior
def _visits(groups) -> list[tuple[int, str, str, str, list[tuple[str, float]]]]:
    from assistant.triage.conditions import age_band, group_of

    out = []
    with (SHARED / "nhamcs" / "nhamcs_ed_2018_2020.csv").open(encoding="utf-8") as fh:
        for row in csv.DictReader(fh):
            g = group_of(groups, row["DIAG1"]) if row["DIAG1"] and not row["DIAG1"].startswith("-") else None
            if g is None:
                continue
            rfv = [(row[k], w) for k, w in (("RFV1", 1.0), ("RFV2", 0.5), ("RFV3", 0.5))
                   if row[k] and not row[k].startswith("-") and row[k] != "0"]
            if not rfv:
                continue
            sex = {"1": "F", "2": "M"}.get(row["SEX"], "any")
            out.append((int(row["YEAR"]), g.range, age_band(float(row["AGE"])), sex, rfv))
    return out


def fit_prior(visits, alpha: float, beta: float, names: list[str]) -> dict:
    """Counts as numpy vectors over the groups in ``names`` (see the module docstring)."""
    idx = {g: i for i, g in enumerate(names)}
    G = len(names)
    n_cas: dict[tuple[str, str], np.ndarray] = defaultdict(lambda: np.zeros(G))
    n_c: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(G))
    n_as: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(G))
    for _, g, band, sex, rfv in visits:
        j = idx[g]
        for key in (f"{band}|{sex}", f"{band}|any", "any|any"):
            n_as[key][j] += 1
        for code, w in rfv:
            n_c[code][j] += w
            for key in (f"{band}|{sex}", f"{band}|any", f"any|{sex}", "any|any"):
                n_cas[(code, key)][j] += w
    p_as = {k: v / v.sum() for k, v in n_as.items()}
    return {"n_cas": dict(n_cas), "n_c": dict(n_c), "p_as": p_as, "alpha": alpha, "beta": beta, "G": G}


def predict(model, code: str, band: str, sex: str) -> np.ndarray:
    base = model["p_as"].get(f"{band}|{sex}")
    base = model["p_as"]["any|any"] if base is None else base
    nc = model["n_c"].get(code)
    p_c = base if nc is None else (nc + model["beta"] * base) / (nc.sum() + model["beta"])
    n = model["n_cas"].get((code, f"{band}|{sex}"))
    return p_c if n is None else (n + model["alpha"] * p_c) / (n.sum() + model["alpha"])


def evaluate(model, visits, names: list[str]) -> dict[str, float]:
    idx = {g: i for i, g in enumerate(names)}
    ll = top1 = top3 = 0.0
    for _, g, band, sex, rfv in visits:
        p = predict(model, rfv[0][0], band, sex)
        j = idx[g]
        ll -= math.log(max(float(p[j]), 1e-6))
        better = int((p > p[j]).sum())
        top1 += better == 0
        top3 += better < 3
    n = len(visits)
    return {"n": n, "log_loss": round(ll / n, 4), "top1": round(top1 / n, 4), "top3": round(top3 / n, 4)}


def export_prior(model, names: list[str], min_count: float = 30.0, keep: int = 10) -> dict:
    """Per code and ``band|sex`` key with at least ``min_count`` visits (``any|any`` always),
    the ``keep`` most likely groups, renormalised."""
    table: dict[str, dict] = {}
    for (code, key), counts in model["n_cas"].items():
        if counts.sum() < min_count and key != "any|any":
            continue
        band, sex = key.split("|")
        p = predict(model, code, band, sex)
        top = np.argsort(-p)[:keep]
        s = float(p[top].sum())
        table.setdefault(code, {})[key] = {names[j]: round(float(p[j]) / s, 4) for j in top}
    return table


def build_prior(groups) -> None:
    names = [g.range for g in groups]
    visits = _visits(groups)
    y18 = [v for v in visits if v[0] == 2018]
    y19 = [v for v in visits if v[0] == 2019]
    y20 = [v for v in visits if v[0] == 2020]
    best = None
    for alpha in (3.0, 10.0, 30.0, 100.0, 300.0):
        for beta in (1.0, 3.0, 10.0, 30.0):
            res = evaluate(fit_prior(y18, alpha, beta, names), y19, names)
            if best is None or res["log_loss"] < best[0]["log_loss"]:
                best = (res, alpha, beta)
    _, alpha, beta = best
    model = fit_prior(y18 + y19, alpha, beta, names)
    val = evaluate(model, y20, names)
    base = evaluate(fit_prior(y18 + y19, 1e9, 1e9, names), y20, names)  # ignores the complaint code
    print(f"NHAMCS visits with a mapped DIAG1: {len(y18)} (2018) {len(y19)} (2019) {len(y20)} (2020)")
    print(f"NHAMCS prior: alpha={alpha} beta={beta}; 2019 (fit on 2018) {best[0]}")
    print(f"NHAMCS prior on 2020 (validation): {val}")
    print(f"  baseline P(group | age band, sex) on 2020: {base}", flush=True)
    prior = {"version": 1, "built_by": "eval/routing/build_conditions.py",
             "source": "NHAMCS ED 2018-2019 (NCHS, public domain); RFV1-3 -> DIAG1 group (icd10_departments.yaml)",
             "alpha": alpha, "beta": beta, "validation_2020": val, "baseline_2020": base,
             "p_group": export_prior(model, names)}
    (OUT / "nhamcs_prior.json").write_text(json.dumps(prior, separators=(",", ":")), encoding="utf-8")


def main() -> None:
    from assistant.triage.conditions import INDEX_VERSION, group_of, load_groups

    groups = load_groups(REPO / "knowledge_base" / "icd10_departments.yaml")
    OUT.mkdir(parents=True, exist_ok=True)
    if "--prior-only" in sys.argv:
        build_prior(groups)
        return
    with gzip.open(SHARED / "icd10cm" / "icd10.json.gz", "rt", encoding="utf-8") as fh:
        icd = json.load(fh)
    icd_docs = icd_documents(icd)
    foci = medquad_foci()
    matched = match_foci(foci, icd, icd_docs)
    print(f"MedQuAD core foci: {len(foci)}; mapped to ICD-10: {len(matched)} "
          f"({Counter(r['method'] for r in matched)})", flush=True)
    with (REPO / "eval" / "routing" / "medquad_focus_icd10.tsv").open("w", encoding="utf-8") as fh:
        fh.write("focus\ticd10\ticd10_description\tmethod\tscore\n")
        for r in matched:
            fh.write(f"{r['focus']}\t{r['code']}\t{r['desc']}\t{r['method']}\t{r['score']}\n")
    docs = [d for d in icd_docs if group_of(groups, d["code"])]
    for r in matched:
        if group_of(groups, r["code"]) is None:
            continue
        docs.append({"name": r["focus"], "code": r["code"],
                     "text": f"{r['focus']} {r['focus']} {r['desc']} {r['info'][:400]} {r['symptoms'][:500]}",
                     "url": r["url"], "source": r["source"]})
    data, indices, indptr, vocab = bm25_matrix([d["text"] for d in docs])
    np.savez_compressed(OUT / "conditions.npz", data=data, indices=indices, indptr=indptr)
    meta = {"version": INDEX_VERSION, "built_by": "eval/routing/build_conditions.py",
            "sources": ["ICD-10-CM (CMS/NCHS, public domain) via ../shared/data/icd10cm",
                        "MedQuAD (Ben Abacha & Demner-Fushman 2019, CC BY 4.0), NIH core sources"],
            "bm25": {"library": "bm25s", "k1": 1.5, "b": 0.75, "method": "lucene"},
            "vocab": vocab,
            "conditions": [{"name": d["name"], "code": d["code"], "group": group_of(groups, d["code"]).range,
                            "url": d["url"], "source": d["source"]} for d in docs]}
    (OUT / "conditions.json").write_text(json.dumps(meta, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    print(f"condition index: {len(docs)} conditions, {len(vocab)} terms, {data.size} weights", flush=True)
    if "--index-only" not in sys.argv:
        build_prior(groups)
    print("sizes:", {p.name: p.stat().st_size for p in OUT.iterdir()})


if __name__ == "__main__":
    main()
