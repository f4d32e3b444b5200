"""Urgency classifier: P(emergency-level acuity) from text, trained on KTAS dev (train split).

TF-IDF (words + character n-grams) into a class-balanced logistic regression, trained on
the 70 % train split (by text hash, as for routing) of ``ktas/ktas_dev.csv`` (Moon et
al., PLOS ONE 2019, CC BY 4.0): label 1 = expert KTAS 1-2. The other 30 % is the
validation split (``assistant eval`` reports it as ``ktas_dev_val``).

It only ever *raises* urgency: a non-emergency rule outcome with P >= :data:`RAISE_AT`
becomes ``consultation_24``. It never creates an emergency (red flags and rules own
those) and never lowers anything.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from assistant.settings import Settings

log = logging.getLogger(__name__)
RAISE_AT = 0.6
MODEL_VERSION = "1"


def _key(settings: Settings) -> str:
    path = settings.shared_data_dir / "ktas" / "ktas_dev.csv"
    stamp = f"{path.stat().st_size}:{path.stat().st_mtime_ns}" if path.is_file() else "-"
    return hashlib.sha256(f"{MODEL_VERSION}|{stamp}".encode()).hexdigest()[:12]


def load_urgency_model(settings: Settings) -> Any | None:
    """The fitted classifier, or None when the KTAS dev file is absent."""
    from assistant.triage.dev_data import ktas_cases
    from assistant.triage.model_cache import load_or_train
    from assistant.triage.routing import build_text_classifier, is_validation

    def train() -> Any | None:
        if not (settings.shared_data_dir / "ktas" / "ktas_dev.csv").is_file():
            return None
        rows = [c for c in ktas_cases(settings.shared_data_dir) if not is_validation(c["text"])]
        model = build_text_classifier()
        model.fit([c["text"] for c in rows], [int(c["gold_urgency3"] == "em") for c in rows])
        return model

    return load_or_train(settings.model_cache_dir / f"urgency-{_key(settings)}.npz", train)


def emergency_probability(settings: Settings, text: str) -> float | None:
    """P(KTAS 1-2) for ``text`` in [0, 1], or None without a model."""
    return probability(load_urgency_model(settings), text)


def probability(model: Any | None, text: str) -> float | None:
    """P(KTAS 1-2) of a fitted classifier (None without a model or text)."""
    if model is None or not text.strip():
        return None
    classes = list(model.classes_)
    return float(model.predict_proba([text[:2000]])[0][classes.index(1)]) if 1 in classes else 0.0
