"""Condition-grounded routing: candidate conditions for a complaint, their departments,
and a prior from real emergency-department visits.

Three pieces, all data in ``knowledge_base/`` (built by ``eval/routing/build_conditions.py``):

* ``icd10_departments.yaml``: ICD-10-CM chapter/block ranges -> catalog departments, with
  the group in plain words (EN/ZH). SOURCE: ICD-10-CM Tabular List structure (CMS/NCHS);
  department assignment by the project team (卫健委《医疗机构诊疗科目名录》 subjects).
* ``models/conditions/conditions.npz`` + ``conditions.json``: a BM25 index (built with
  ``bm25s``, Lucene variant, k1 = 1.5, b = 0.75; exported as a sparse CSC matrix so that
  the query side needs numpy only) over candidate conditions: ICD-10-CM 3-character
  categories (description + their subcategory descriptions) and MedQuAD ``focus``
  conditions of the NIH consumer sites (name + the start of their "information" and
  "symptoms" answers), each mapped to an ICD-10 category (MedQuAD focus by name matching
  to ICD-10-CM descriptions; table ``eval/routing/medquad_focus_icd10.tsv``).
* ``models/conditions/nhamcs_prior.json``: P(condition group | NCHS reason-for-visit code,
  age band, sex) from NHAMCS 2018-2019 ED visits (RFV1-3 -> DIAG1), additively smoothed
  with back-off to P(group | code) and P(group | age band, sex); 2020 is its validation
  year (figures in ``eval/routing/README.md``).

Chinese complaints reach the English index through the complaint coder: the query is the
text plus the English labels of its NCHS reason-for-visit codes.
"""

from __future__ import annotations

import json
import logging
import math
import re
import threading
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from assistant.paths import read_yaml

log = logging.getLogger(__name__)

INDEX_VERSION = 1
DEPARTMENT_RANK_WEIGHTS = (1.0, 0.6, 0.4)
"""Share of a condition group's weight for its 1st, 2nd, 3rd listed department."""
ML_K, ML_TEMPERATURE, ML_MIN_SCORE = 8, 0.02, 0.33
"""Multilingual condition retrieval for Chinese complaints: conditions kept, softmax
temperature over their cosines, least cosine + prior (``CONDITION_MIN_SCORE`` of
:mod:`assistant.knowledge.crosslingual`). k and the temperature were chosen on the router's
train split (``eval/routing/tune_fusion.py --multilingual``)."""
AGE_BANDS = (14.0, 45.0, 65.0)
"""Age band edges in years: <14 (child, the catalog's PEDS limit), 14-44, 45-64, 65+."""

_WORD = re.compile(r"[a-z][a-z0-9]+")
_DIGRAPH = re.compile(r"(?<=[a-z])(ae|oe)(?=[a-z])")
_STOP = frozenset(
    ["a", "an", "and", "are", "as", "at", "be", "been", "being", "but", "by", "can", "could", "did", "do", "does", "for", "from", "had", "has", "have", "he", "her", "his", "how", "i", "if", "in", "into", "is", "it", "its", "me", "my", "no", "not", "of", "on", "or", "our", "she", "so", "some", "such", "than", "that", "the", "their", "them", "then", "there", "these", "they", "this", "to", "too", "up", "very", "was", "we", "were", "what", "when", "where", "which", "while", "who", "will", "with", "would", "you", "your", "about", "after", "again", "also", "am", "any", "because", "before", "both", "each", "few", "more", "most", "other", "own", "same", "should", "only", "over", "out", "just", "now", "ago", "since", "been", "feel", "feeling", "felt", "lot", "lately", "recently", "really", "still", "like", "get", "got", "getting", "time", "times", "day", "days", "week", "weeks", "month", "months", "year", "years", "much", "many", "well"])
_SUFFIXES = ("ings", "ing", "ness", "ies", "ied", "es", "ed", "ly", "s", "y")


def stem(word: str) -> str:
    """A light English stemmer shared by the index and the queries (itching/itchy/itches -> itch)."""
    word = _DIGRAPH.sub("e", word)  # anaemia -> anemia, oesophagus -> esophagus
    for suf in _SUFFIXES:
        if len(word) - len(suf) >= 3 and word.endswith(suf) and not word.endswith(("ss", "us", "is")):
            return word[: -len(suf)] + ("y" if suf in ("ies", "ied") else "")
    return word


def tokens(text: str) -> list[str]:
    """Lower-case English word stems without stop words (Chinese characters are dropped)."""
    return [stem(w) for w in _WORD.findall(text.lower()) if w not in _STOP]


def age_band(age: float | None) -> str:
    """``"child"``, ``"14-44"``, ``"45-64"``, ``"65+"`` or ``"any"`` (unknown age)."""
    if age is None:
        return "any"
    if age < AGE_BANDS[0]:
        return "child"
    if age < AGE_BANDS[1]:
        return "14-44"
    return "45-64" if age < AGE_BANDS[2] else "65+"


@dataclass(frozen=True)
class ConditionGroup:
    """A row of ``icd10_departments.yaml``: an ICD-10-CM category range and its departments."""

    range: str
    en: str
    zh: str
    departments: tuple[str, ...]

    @cached_property
    def bounds(self) -> tuple[str, str]:
        """``(first, last)`` 3-character categories of the range."""
        lo, hi = self.range.split("-")
        return lo, hi

    def contains(self, category: str) -> bool:
        lo, hi = self.bounds
        return lo <= category[:3].upper() <= hi


def load_groups(path: Path) -> list[ConditionGroup]:
    """The condition groups of ``icd10_departments.yaml`` in file order.

    Raises:
        DataError: a row without range, words or departments.
    """
    import yaml

    from assistant.errors import DataError

    try:
        data = read_yaml(path)  # JSON-cached parse (cold start)
        rows = data["groups"]
        for row in rows:  # an unquoted comma in a flow mapping silently makes an extra key
            if set(row) != {"range", "en", "zh", "departments"} or not row["departments"]:
                raise ValueError(f"row {row!r} needs exactly range, en, zh, departments")
        return [ConditionGroup(range=str(g["range"]), en=str(g["en"]), zh=str(g["zh"]),
                               departments=tuple(str(d) for d in g["departments"])) for g in rows]
    except (OSError, KeyError, TypeError, ValueError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: not a valid condition-group table ({type(exc).__name__}: {exc})") from None


def group_of(groups: list[ConditionGroup], code: str) -> ConditionGroup | None:
    """The first group whose range holds ICD-10-CM ``code`` (None: not in the table)."""
    code = (code or "").replace(".", "").upper()
    return next((g for g in groups if g.contains(code)), None) if len(code) >= 3 else None


@dataclass(frozen=True)
class RetrievedCondition:
    """A candidate condition for a complaint."""

    name: str
    code: str
    group: ConditionGroup
    score: float
    url: str = ""
    source: str = ""
    title: str = ""
    """Title of the cited page (the MedQuAD focus); ``name`` when empty."""


@dataclass
class ConditionEvidence:
    """What the conditions say about a complaint.

    ``departments``: department -> share in [0, 1] (sums to 1 when anything was found);
    ``prior``: the NHAMCS prior over departments (empty without complaint codes);
    ``conditions``: the conditions named by warning signs, then the retrieved ones, best first;
    ``named``: departments of the conditions named by warning signs (sums to 1, or empty).
    """

    departments: dict[str, float] = field(default_factory=dict)
    prior: dict[str, float] = field(default_factory=dict)
    conditions: list[RetrievedCondition] = field(default_factory=list)
    named: dict[str, float] = field(default_factory=dict)
    warning_sign_conditions: list[RetrievedCondition] = field(default_factory=list)
    multilingual: dict[str, float] = field(default_factory=dict)
    """Departments of the conditions found by multilingual dense retrieval (Chinese text;
    sums to 1, or empty)."""

    def support(self, department: str) -> RetrievedCondition | None:
        """The condition that best supports ``department``: a condition named by a warning
        sign that ``department`` cares for, else the best retrieved condition of the group
        with the largest summed retrieval score among the groups listing ``department``
        first (its own field), else among the groups listing it at all. None when no group
        does."""
        named = next((c for c in self.warning_sign_conditions if department in c.group.departments), None)
        if named is not None:
            return named
        retrieved = [c for c in self.conditions if c not in self.warning_sign_conditions]
        for first in (True, False):
            cands = [c for c in retrieved
                     if (c.group.departments[0] == department if first else department in c.group.departments)]
            if cands:
                totals: dict[str, float] = {}
                for c in cands:
                    totals[c.group.range] = totals.get(c.group.range, 0.0) + c.score
                best = max(totals, key=lambda r: totals[r])
                return next(c for c in cands if c.group.range == best)
        return None


class ConditionIndex:
    """The packaged condition index, groups and NHAMCS prior of a knowledge base.

    Args:
        kb_dir: the knowledge base folder (holds ``icd10_departments.yaml`` and
            ``models/conditions/``).

    Loading is lazy and once per instance; a missing or unreadable artefact makes the
    index empty (routing then runs on the classifier alone), with one warning.
    """

    def __init__(self, kb_dir: Path) -> None:
        self.kb_dir = Path(kb_dir)
        self._lock = threading.Lock()
        self._groups_by_category: dict[str, ConditionGroup | None] = {}

    @cached_property
    def groups(self) -> list[ConditionGroup]:
        return load_groups(self.kb_dir / "icd10_departments.yaml")

    @cached_property
    def _index(self) -> dict[str, Any] | None:
        folder = self.kb_dir / "models" / "conditions"
        try:
            meta = json.loads((folder / "conditions.json").read_text(encoding="utf-8"))
            with np.load(folder / "conditions.npz") as z:
                arrays = {k: z[k] for k in ("data", "indices", "indptr")}
        except (OSError, ValueError, KeyError) as exc:
            log.warning("condition index unavailable (%s); routing without conditions", type(exc).__name__)
            return None
        if meta.get("version") != INDEX_VERSION:
            log.warning("condition index version %s != %s; routing without conditions",
                        meta.get("version"), INDEX_VERSION)
            return None
        # the group comes from the code and the current table, so a hospital's edited
        # icd10_departments.yaml applies without rebuilding the index
        return {**arrays, "vocab": meta["vocab"], "conditions": meta["conditions"]}

    def _group(self, code: str) -> ConditionGroup | None:
        """The group of a condition code, looked up when first retrieved (one table scan
        per 3-character category; the group comes from the current table, so a hospital's
        edited ``icd10_departments.yaml`` applies without rebuilding the index)."""
        category = str(code).replace(".", "").upper()[:3]
        if category not in self._groups_by_category:
            self._groups_by_category[category] = group_of(self.groups, category)
        return self._groups_by_category[category]

    @cached_property
    def _prior(self) -> dict[str, Any]:
        try:
            return json.loads((self.kb_dir / "models" / "conditions" / "nhamcs_prior.json").read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            log.warning("NHAMCS prior unavailable (%s); routing without it", type(exc).__name__)
            return {}

    @cached_property
    def _warning_signs(self) -> dict[str, dict[str, Any]]:
        """``red_flag_conditions.yaml``: warning-sign rule id -> the condition it names."""
        import yaml

        try:
            data = read_yaml(self.kb_dir / "red_flag_conditions.yaml")
            return dict(data.get("conditions") or {})
        except (OSError, AttributeError, yaml.YAMLError) as exc:
            log.warning("red_flag_conditions.yaml unavailable (%s)", type(exc).__name__)
            return {}

    def names_condition(self, rule_id: str) -> bool:
        """Whether warning sign ``rule_id`` names a condition of a known ICD-10 group (what
        :meth:`named_conditions` returns a condition for)."""
        entry = self._warning_signs.get(rule_id)
        return entry is not None and group_of(self.groups, str(entry.get("icd10", ""))) is not None

    def named_conditions(self, rule_ids: list[str]) -> list[RetrievedCondition]:
        """The conditions that fired warning signs name (``red_flag_conditions.yaml``), with
        the MedQuAD page of the named focus when the index has one; unknown ids are skipped."""
        out: list[RetrievedCondition] = []
        with self._lock:
            index = self._index
        pages = {} if index is None else {m["name"]: m for m in index["conditions"] if m.get("url")}
        for rule in rule_ids:
            entry = self._warning_signs.get(rule)
            group = group_of(self.groups, str((entry or {}).get("icd10", "")))
            if entry is None or group is None or any(c.code == entry["icd10"] for c in out):
                continue
            page = pages.get(str(entry.get("medquad", "")), {})
            out.append(RetrievedCondition(name=str(entry["en"]), code=str(entry["icd10"]), group=group,
                                          score=1.0, url=page.get("url", ""),
                                          source=page.get("source", "warning sign"),
                                          title=page.get("name", "")))
        return out

    @property
    def available(self) -> bool:
        """Whether the condition index loaded."""
        with self._lock:
            return self._index is not None

    # ------------------------------------------------------------------------------
    def retrieve(self, query: str, k: int = 8) -> list[RetrievedCondition]:
        """The ``k`` conditions whose BM25 score for ``query`` is highest (score > 0).

        Args:
            query: English words (Chinese characters are ignored; pass code labels).
            k: at most this many conditions.
        """
        with self._lock:
            index = self._index
        if index is None:
            return []
        vocab = index["vocab"]
        ids = sorted({vocab[t] for t in tokens(query[:4000]) if t in vocab})
        if not ids:
            return []
        indptr, indices, data = index["indptr"], index["indices"], index["data"]
        n_docs = len(index["conditions"])
        scores = np.zeros(n_docs, dtype=np.float32)
        for t in ids:
            lo, hi = indptr[t], indptr[t + 1]
            np.add.at(scores, indices[lo:hi], data[lo:hi])
        top = np.argpartition(-scores, min(k, n_docs - 1))[:k]
        out = []
        for i in sorted(top, key=lambda j: -scores[j]):
            found = self._retrieved(index["conditions"][int(i)], float(scores[i])) if scores[i] > 0 else None
            if found is not None:
                out.append(found)
        return out

    def _retrieved(self, meta: dict[str, Any], score: float) -> RetrievedCondition | None:
        """A condition entry of the index with its retrieval score, or None when its
        ICD-10 code is in no condition group."""
        group = self._group(meta["code"])
        if group is None:
            return None
        return RetrievedCondition(name=meta["name"], code=meta["code"], group=group, score=score,
                                  url=meta.get("url", ""), source=meta.get("source", ""))

    @cached_property
    def _focus_conditions(self) -> dict[str, dict[str, Any]]:
        """MedQuAD focus name -> its condition entry (code, page) of the index."""
        with self._lock:
            index = self._index
        if index is None:
            return {}
        return {m["name"]: m for m in index["conditions"] if m.get("source") != "ICD-10-CM"}

    def retrieve_multilingual(self, vector: np.ndarray, vectors: Any, *, k: int = ML_K,
                              min_score: float = ML_MIN_SCORE) -> list[RetrievedCondition]:
        """The ``k`` MedQuAD conditions nearest to a complaint embedded by the multilingual
        encoder, restricted to the conditions mapped to ICD-10 (``medquad_focus_icd10.tsv``).

        Args:
            vector: the complaint's unit vector, float32 ``(512,)`` (multilingual USE v3,
                :class:`assistant.knowledge.crosslingual.MultilingualEncoder`).
            vectors: the packaged MedQuAD document vectors
                (:func:`assistant.knowledge.crosslingual.load_packaged_vectors`): ``vectors``
                ``(n, 512)``, ``priors`` ``(n,)``, ``foci``.
            k: at most this many conditions (one per focus: its best document).
            min_score: least cosine + prior (the retriever's ``CONDITION_MIN_SCORE``: below
                it non-medical text matches nothing).

        Returns:
            Conditions best first, ``score`` = cosine + prior; empty without the index.
        """
        mapped = self._focus_conditions
        if not mapped or vectors is None:
            return []
        scores = vectors.vectors @ np.asarray(vector, dtype=np.float32) + vectors.priors
        out: list[RetrievedCondition] = []
        seen: set[str] = set()
        for i in np.argsort(-scores)[: 40 * k]:
            if scores[i] < min_score or len(out) >= k:
                break
            focus = vectors.foci[int(i)]
            meta = mapped.get(focus)
            if meta is None or focus in seen:
                continue
            seen.add(focus)
            found = self._retrieved(meta, float(scores[i]))
            if found is not None:
                out.append(found)
        return out

    def department_shares(self, conditions: list[RetrievedCondition], *, temperature: float = 2.0
                          ) -> dict[str, float]:
        """Departments of the retrieved conditions: softmax of BM25 scores / ``temperature``
        over conditions, each condition's weight split over its group's departments by
        :data:`DEPARTMENT_RANK_WEIGHTS`. Sums to 1 (empty when nothing was retrieved)."""
        if not conditions:
            return {}
        top = conditions[0].score
        weights = [math.exp((c.score - top) / temperature) for c in conditions]
        out: dict[str, float] = {}
        for c, w in zip(conditions, weights, strict=True):
            shares = DEPARTMENT_RANK_WEIGHTS[: len(c.group.departments)]
            for d, s in zip(c.group.departments, shares, strict=False):
                out[d] = out.get(d, 0.0) + w * s / sum(shares)
        total = sum(out.values())
        return {d: v / total for d, v in out.items()}

    def prior(self, codes: list[str], *, age: float | None, sex: str | None) -> dict[str, float]:
        """NHAMCS prior over departments for complaint codes (mean over the first 3 codes).

        P(group | code, age band, sex) from the packaged table (already smoothed and backed
        off when it was built), turned into departments by :data:`DEPARTMENT_RANK_WEIGHTS`.
        Codes never seen in NHAMCS contribute nothing; no codes give ``{}``.
        """
        table = self._prior.get("p_group") or {}
        if not table or not codes:
            return {}
        by_range = {g.range: g for g in self.groups}
        band, sx = age_band(age), (sex or "any")
        out: dict[str, float] = {}
        used = 0
        for code in codes[:3]:
            entry = table.get(code)
            if not entry:
                continue
            dist = entry.get(f"{band}|{sx}") or entry.get(f"{band}|any") or entry.get("any|any")
            if not dist:
                continue
            used += 1
            for rng, p in dist.items():
                g = by_range.get(rng)
                if g is None:
                    continue
                shares = DEPARTMENT_RANK_WEIGHTS[: len(g.departments)]
                for d, s in zip(g.departments, shares, strict=False):
                    out[d] = out.get(d, 0.0) + p * s / sum(shares)
        total = sum(out.values())
        return {d: v / total for d, v in out.items()} if total else {}

    def evidence(self, text: str, *, code_labels: list[str], codes: list[str], age: float | None,
                 sex: str | None, k: int = 8, temperature: float = 2.0,
                 warning_signs: list[str] | None = None, query_vector: np.ndarray | None = None,
                 vectors: Any = None) -> ConditionEvidence:
        """Retrieve conditions for a complaint and score departments with them.

        Args:
            text: the complaint (English words are used; Chinese reaches the index through
                ``code_labels``).
            code_labels: English labels of the complaint's NCHS reason-for-visit codes.
            codes: the codes themselves (for the NHAMCS prior).
            age: years; sex: ``"F"``/``"M"``/None.
            warning_signs: rule ids of fired red flags; the conditions they name come first
                and ``named`` holds their departments (see :meth:`named_conditions`).
            query_vector, vectors: the complaint embedded by the multilingual encoder and
                the packaged MedQuAD vectors (Chinese text): the conditions they find
                (:meth:`retrieve_multilingual`) fill ``multilingual`` and are listed
                before the BM25 ones, which Chinese reaches only through code labels.
        """
        query = " ".join([text[:2000], *code_labels])
        conds = self.retrieve(query, k=k)
        dense = [] if query_vector is None else self.retrieve_multilingual(query_vector, vectors)
        named = self.named_conditions(warning_signs or [])
        return ConditionEvidence(departments=self.department_shares(conds, temperature=temperature),
                                 prior=self.prior(codes, age=age, sex=sex), conditions=named + dense + conds,
                                 named=self.department_shares(named, temperature=1.0),
                                 warning_sign_conditions=named,
                                 multilingual=self.department_shares(dense, temperature=ML_TEMPERATURE))


_INDEXES: dict[str, ConditionIndex] = {}
_INDEX_LOCK = threading.Lock()


def condition_index(kb_dir: Path) -> ConditionIndex:
    """The per-process :class:`ConditionIndex` of a knowledge base folder."""
    key = str(Path(kb_dir).resolve())
    with _INDEX_LOCK:
        if key not in _INDEXES:
            _INDEXES[key] = ConditionIndex(Path(kb_dir))
        return _INDEXES[key]
