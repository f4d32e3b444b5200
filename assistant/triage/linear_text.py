"""Fast-loading inference for the TF-IDF + logistic-regression text classifiers.

The router and the KTAS urgency classifier are fitted with scikit-learn
(:func:`assistant.triage.routing.build_text_classifier`); importing scikit-learn and
unpickling a fitted pipeline takes seconds on 2 cores. :func:`export` turns the fitted
pipeline into plain arrays (vocabularies, idf weights, coefficients) saved with numpy;
:class:`LinearTextModel` loads them in milliseconds and computes the same probabilities
as the pipeline's ``predict_proba`` (tested against scikit-learn on the dev texts).

Feature extraction mirrors scikit-learn 1.x ``TfidfVectorizer``: word n-grams over our
tokenizer, ``char_wb`` n-grams over lower-cased text, sublinear tf, smoothed idf, L2
normalisation per vectorizer; then a multinomial logistic regression (softmax), or a
binary one (sigmoid) for two classes.
"""

from __future__ import annotations

import json
import math
import re
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np

from assistant.text import tokenize

FORMAT_VERSION = 1
_WHITE = re.compile(r"\s\s+")


def _word_ngrams(text: str, n_range: tuple[int, int]) -> list[str]:
    tokens = tokenize(text)
    lo, hi = n_range
    grams = list(tokens) if lo == 1 else []
    for n in range(max(2, lo), hi + 1):
        grams.extend(" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
    return grams


def _char_wb_ngrams(text: str, n_range: tuple[int, int]) -> list[str]:
    text = _WHITE.sub(" ", text.lower())
    lo, hi = n_range
    grams: list[str] = []
    for word in text.split():
        w = f" {word} "
        for n in range(lo, hi + 1):
            offset = 0
            grams.append(w[offset:offset + n])
            while offset + n < len(w):
                offset += 1
                grams.append(w[offset:offset + n])
            if offset == 0:
                break
    return grams


_ANALYZERS = {"words": _word_ngrams, "chars": _char_wb_ngrams}


class LinearTextModel:
    """A TF-IDF + logistic-regression text classifier as plain arrays.

    Attributes:
        classes_: class labels, shape ``(C,)`` (as in scikit-learn).
    """

    def __init__(self, blocks: list[dict[str, Any]], coef: np.ndarray, intercept: np.ndarray,
                 classes: list[Any]) -> None:
        self.blocks = blocks  # [{"name", "ngram_range", "vocabulary": {gram: col}, "idf": array}]
        self.coef = coef.astype(np.float64)  # (C or 1, n_features)
        self.intercept = intercept.astype(np.float64)
        self.classes_ = np.asarray(classes)
        self._offsets = np.cumsum([0] + [len(b["idf"]) for b in blocks])

    def _features(self, text: str) -> tuple[np.ndarray, np.ndarray]:
        cols: list[int] = []
        vals: list[float] = []
        for block, offset in zip(self.blocks, self._offsets, strict=False):
            counts = Counter(_ANALYZERS[block["name"]](text, block["ngram_range"]))
            vocab, idf = block["vocabulary"], block["idf"]
            idx = [(vocab[g], c) for g, c in counts.items() if g in vocab]
            if not idx:
                continue
            b_cols = np.array([i for i, _ in idx])
            b_vals = np.array([(1.0 + math.log(c)) for _, c in idx]) * idf[b_cols]
            b_vals /= np.linalg.norm(b_vals) or 1.0
            cols.extend((b_cols + offset).tolist())
            vals.extend(b_vals.tolist())
        return np.asarray(cols, dtype=np.int64), np.asarray(vals)

    def predict_proba(self, texts: list[str]) -> np.ndarray:
        """Class probabilities, shape ``(len(texts), C)``, rows summing to 1."""
        out = []
        for text in texts:
            cols, vals = self._features(text)
            out.append(self._link(self.coef[:, cols] @ vals + self.intercept))
        return np.asarray(out)

    def predict_proba_dense(self, vectors: np.ndarray) -> np.ndarray:
        """Class probabilities of a model fitted on dense feature vectors (no text blocks,
        e.g. sentence embeddings): ``vectors`` ``(n, n_features)`` -> ``(n, C)``.

        Raises:
            ValueError: the width of ``vectors`` is not the model's number of features.
        """
        vectors = np.atleast_2d(np.asarray(vectors, dtype=np.float64))
        if vectors.shape[1] != self.coef.shape[1]:
            raise ValueError(f"expected {self.coef.shape[1]} features, got {vectors.shape[1]}")
        return np.asarray([self._link(z) for z in vectors @ self.coef.T + self.intercept])

    def _link(self, z: np.ndarray) -> np.ndarray:
        """Logistic regression's link: softmax over C classes, sigmoid for a binary model."""
        if len(self.classes_) == 2 and self.coef.shape[0] == 1:
            p1 = 1.0 / (1.0 + math.exp(-float(z[0])))
            return np.array([1.0 - p1, p1])
        e = np.exp(z - z.max())
        return e / e.sum()

    def save(self, path: Path) -> None:
        """Write ``path`` (.npz arrays) and ``path.with_suffix('.json')`` (vocabularies), atomically."""
        meta = {"format": FORMAT_VERSION, "classes": [str(c) if not isinstance(c, (int, np.integer)) else int(c)
                                                      for c in self.classes_],
                "blocks": [{"name": b["name"], "ngram_range": list(b["ngram_range"]),
                            "vocabulary": b["vocabulary"]} for b in self.blocks]}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp_json, tmp_npz = path.with_suffix(".json.tmp"), path.with_suffix(".tmp.npz")
        tmp_json.write_text(json.dumps(meta, ensure_ascii=False), encoding="utf-8")
        np.savez(tmp_npz, coef=self.coef.astype(np.float32), intercept=self.intercept,
                 **{f"idf_{i}": b["idf"] for i, b in enumerate(self.blocks)})
        tmp_json.replace(path.with_suffix(".json"))
        tmp_npz.replace(path)

    @classmethod
    def load(cls, path: Path) -> LinearTextModel:
        """Load a model written by :meth:`save`.

        Raises:
            OSError, ValueError, KeyError: missing, truncated or foreign files (callers
                retrain).
        """
        meta = json.loads(path.with_suffix(".json").read_text(encoding="utf-8"))
        if meta.get("format") != FORMAT_VERSION:
            raise ValueError(f"unsupported model format {meta.get('format')}")
        with np.load(path) as arrays:
            blocks = [{"name": b["name"], "ngram_range": tuple(b["ngram_range"]),
                       "vocabulary": b["vocabulary"], "idf": arrays[f"idf_{i}"]}
                      for i, b in enumerate(meta["blocks"])]
            return cls(blocks, arrays["coef"], arrays["intercept"], meta["classes"])


def export(pipeline: Any) -> LinearTextModel:
    """Arrays of a fitted ``Pipeline([("features", FeatureUnion([...])), ("clf", LogisticRegression)])``,
    or of a bare fitted ``LogisticRegression`` on dense vectors (no text blocks: use
    :meth:`LinearTextModel.predict_proba_dense`).

    Raises:
        ValueError: the pipeline uses settings this module does not reproduce.
    """
    if not hasattr(pipeline, "named_steps"):
        return LinearTextModel([], np.asarray(pipeline.coef_), np.asarray(pipeline.intercept_),
                               list(pipeline.classes_))
    blocks = []
    for name, vec in pipeline.named_steps["features"].transformer_list:
        analyzer = "words" if name == "words" else "chars"
        if (analyzer == "chars" and vec.analyzer != "char_wb") or not vec.sublinear_tf or vec.norm != "l2":
            raise ValueError(f"cannot export vectorizer {name!r}")
        vocab = {str(k): int(v) for k, v in vec.vocabulary_.items()}
        blocks.append({"name": analyzer, "ngram_range": tuple(vec.ngram_range), "vocabulary": vocab,
                       "idf": np.asarray(vec.idf_, dtype=np.float64)})
    clf = pipeline.named_steps["clf"]
    return LinearTextModel(blocks, np.asarray(clf.coef_), np.asarray(clf.intercept_), list(clf.classes_))
