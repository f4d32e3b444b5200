"""Department routing: a trained text classifier fused with catalog retrieval and rules.

The classifier is TF-IDF (jieba words + character n-grams, so Chinese and English both
work without an English-only embedder) into a class-balanced logistic regression. It is
trained on:

* the department catalog (``knowledge_base/departments.yaml``): every clause of each
  department's bilingual "treats" text is one example, so all 26 departments are known;
* the train split (70 %, by a hash of the text) of Symptom2Disease dev (English) and
  Toyhom internal-medicine dev (Chinese), relabelled with ``knowledge_base/routing_labels.yaml``.

A second, smaller router (:func:`train_embedding_router`) is a logistic regression on the
same examples' multilingual sentence embeddings; the engine mixes it in when the TF-IDF
router is unsure (``W_EMBEDDING``, ``ML_CONFIDENCE_GATE`` in :mod:`assistant.triage.engine`).

The other 30 % is the validation split; it is never trained on
(:func:`validation_examples` returns it for the eval script). The fitted model is cached
under ``<data_dir>/models/router-<key>.npz`` and retrained when the data changes.
"""

from __future__ import annotations

import csv
import hashlib
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from assistant.settings import Settings
from assistant.text import tokenize

log = logging.getLogger(__name__)

from assistant.kb import KnowledgeBase, default_kb

ROUTER_VERSION = "1"
VALIDATION_SHARE = 0.3


@dataclass(frozen=True)
class Example:
    """A labelled routing example: text, acceptable department codes (best first), origin."""

    text: str
    departments: tuple[str, ...]
    origin: str

    @property
    def label(self) -> str:
        return self.departments[0]


def is_validation(text: str) -> bool:
    digest = hashlib.sha256(text.encode("utf-8")).digest()
    return digest[0] / 256 < VALIDATION_SHARE


def _labels(kb: KnowledgeBase | None = None) -> dict[str, dict[str, list[str]]]:
    return (kb or default_kb()).yaml("routing_labels.yaml")


def dev_set_examples(shared_data_dir: Path, kb: KnowledgeBase | None = None) -> list[Example]:
    """All labelled routing examples from the dev sets (both splits).

    Missing files are skipped with a warning (the catalog alone still trains a router).
    """
    labels = _labels(kb)
    out: list[Example] = []
    s2d = shared_data_dir / "symptom2disease" / "symptom2disease_dev.csv"
    if s2d.is_file():
        with s2d.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                depts = labels["symptom2disease"].get(row["label"])
                if depts and row.get("text"):
                    out.append(Example(row["text"], tuple(depts), "symptom2disease"))
    else:
        log.warning("routing: %s not found; training without it", s2d)
    toy = shared_data_dir / "toyhom_zh" / "toyhom_im_dev.csv"
    if toy.is_file():
        with toy.open(encoding="utf-8") as fh:
            for row in csv.DictReader(fh):
                depts = labels["toyhom"].get(row["department"])
                text = f"{row.get('title', '')} {row.get('ask', '')}".strip()[:400]
                if depts and text:
                    out.append(Example(text, tuple(depts), "toyhom"))
    else:
        log.warning("routing: %s not found; training without it", toy)
    return out


def catalog_examples(kb: KnowledgeBase | None = None) -> list[Example]:
    """One example per clause of every department's bilingual 'treats' description."""
    kb = kb or default_kb()
    out = []
    for code, dept in kb.catalog.items():
        for text in (dept.treats_en, dept.treats_zh, dept.name_en, dept.name_zh):
            out.append(Example(text, (code,), "catalog"))
            for clause in re.split(r"[,;.:，；。：、]| and | or ", text):
                if len(clause.strip()) >= 2:
                    out.append(Example(clause.strip(), (code,), "catalog"))
        for sub in dept.sub_specialties:
            out.append(Example(f"{sub.name_en} {sub.name_zh}", (code,), "catalog"))
    seed = kb.yaml("routing_seed.yaml") or {}
    for code, phrases in seed.items():
        out.extend(Example(str(p), (code,), "seed") for p in phrases)
    return out


def training_examples(shared_data_dir: Path, kb: KnowledgeBase | None = None) -> list[Example]:
    """Catalog examples plus the train split of the dev sets."""
    return catalog_examples(kb) + [e for e in dev_set_examples(shared_data_dir, kb) if not is_validation(e.text)]


def validation_examples(shared_data_dir: Path, kb: KnowledgeBase | None = None) -> list[Example]:
    """The held-out 30 % of the dev sets that the router never trains on."""
    return [e for e in dev_set_examples(shared_data_dir, kb) if is_validation(e.text)]


def build_text_classifier() -> Any:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, Pipeline

    features = FeatureUnion(
        [
            ("words", TfidfVectorizer(tokenizer=tokenize, token_pattern=None, lowercase=False,
                                      ngram_range=(1, 2), sublinear_tf=True, min_df=1)),
            ("chars", TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 4), sublinear_tf=True,
                                      min_df=2, max_features=60_000)),
        ]
    )
    clf = LogisticRegression(C=8.0, class_weight="balanced", max_iter=3000)
    return Pipeline([("features", features), ("clf", clf)])


def _data_key(shared_data_dir: Path, kb: KnowledgeBase) -> str:
    parts = [ROUTER_VERSION]
    for path in (
        kb.path("departments.yaml"),
        kb.path("routing_labels.yaml"),
        kb.path("routing_seed.yaml"),
        shared_data_dir / "symptom2disease" / "symptom2disease_dev.csv",
        shared_data_dir / "toyhom_zh" / "toyhom_im_dev.csv",
    ):
        parts.append(f"{path.name}:{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else f"{path.name}:-")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def train_router(examples: Iterable[Example]) -> Any:
    """Fit the routing pipeline on ``examples`` (returns a fitted sklearn Pipeline)."""
    examples = list(examples)
    pipe = build_text_classifier()
    pipe.fit([e.text for e in examples], [e.label for e in examples])
    return pipe


def load_router(settings: Settings, kb: KnowledgeBase | None = None) -> Any:
    """Return the fitted router, from the per-process cache, the disk cache, or by training.

    Training takes a few seconds on 2 cores; the result is exported to arrays (:mod:`assistant.triage.linear_text`) and loads in milliseconds.
    """
    from assistant.triage.model_cache import load_or_train

    kb = kb or default_kb(settings.resolved_knowledge_base_dir)
    path = settings.model_cache_dir / f"router-{_data_key(settings.shared_data_dir, kb)}.npz"
    return load_or_train(path, lambda: train_router(training_examples(settings.shared_data_dir, kb)))


EMBEDDING_C = 64.0
"""Inverse regularisation of the embedding router's logistic regression, chosen with its
mixing weight (``W_EMBEDDING`` in :mod:`assistant.triage.engine`) on out-of-fold
predictions of the train split (``eval/routing/tune_fusion.py --embedding``)."""


def train_embedding_router(examples: Iterable[Example], encoder: Any) -> Any:
    """Fit a class-balanced logistic regression on the multilingual sentence embeddings
    (:class:`assistant.knowledge.crosslingual.MultilingualEncoder`, 512-d unit rows) of
    ``examples`` (the first 1,000 characters of each; embedding the 3,354 training texts
    takes ~8 s on 2 cores, fitting ~2 s). Returns the fitted scikit-learn estimator.

    The TF-IDF router knows words it has seen; the embedding knows paraphrases and
    synonyms it has not ("can't catch my breath" / "short of breath", "胸口发紧" / "胸闷").
    """
    import numpy as np
    from sklearn.linear_model import LogisticRegression

    from assistant.cache import cached_derived, content_key

    examples = list(examples)
    texts = [e.text[:1000] for e in examples]
    # the embeddings are shared by every data folder (derived cache, keyed by the texts and
    # the model), so a new data folder refits in ~2 s instead of re-embedding for ~8 s
    blob = cached_derived("router-embeddings", encoder.model_id, content_key(encoder.model_id, *texts),
                          lambda: np.asarray(encoder.passage(texts, batch_size=64), dtype=np.float32).tobytes())
    vectors = np.frombuffer(blob, dtype=np.float32).reshape(len(texts), -1)
    clf = LogisticRegression(C=EMBEDDING_C, class_weight="balanced", max_iter=3000)
    return clf.fit(vectors, [e.label for e in examples])


def load_embedding_router(settings: Settings, kb: KnowledgeBase | None = None) -> Any:
    """The embedding router (:func:`train_embedding_router`) as a
    :class:`~assistant.triage.linear_text.LinearTextModel` (use ``predict_proba_dense``),
    from the caches or by fitting it; None without the multilingual encoder package.
    """
    from assistant.knowledge.crosslingual import (
        MULTILINGUAL_MODEL_ID,
        MULTILINGUAL_PIP,
        get_multilingual_encoder,
    )
    from assistant.triage.model_cache import load_or_train

    encoder = get_multilingual_encoder(settings)
    if encoder is None:
        return None
    kb = kb or default_kb(settings.resolved_knowledge_base_dir)
    model_key = hashlib.sha256(f"{MULTILINGUAL_MODEL_ID}|{MULTILINGUAL_PIP}|{EMBEDDING_C}".encode()).hexdigest()[:8]
    path = settings.model_cache_dir / f"router-use-{_data_key(settings.shared_data_dir, kb)}-{model_key}.npz"
    return load_or_train(path, lambda: train_embedding_router(training_examples(settings.shared_data_dir, kb),
                                                               encoder))


def mix(words: dict[str, float], dense: dict[str, float], share: float) -> dict[str, float]:
    """The TF-IDF router's probabilities ``words`` mixed with the embedding router's
    ``dense``: ``(1 - share) * words + share * dense`` over the codes of either (sums to 1
    when both do)."""
    return {c: (1 - share) * words.get(c, 0.0) + share * dense.get(c, 0.0) for c in set(words) | set(dense)}


def classify(settings: Settings, text: str) -> dict[str, float]:
    """Department probabilities for ``text`` (all catalog codes, summing to 1)."""
    return probabilities(load_router(settings), text)


def probabilities(model: Any, text: str) -> dict[str, float]:
    """Department probabilities of a fitted router for ``text``."""
    probs = model.predict_proba([text])[0]
    return {str(c): float(p) for c, p in zip(model.classes_, probs, strict=True)}
