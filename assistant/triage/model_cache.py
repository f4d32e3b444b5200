"""Per-process and on-disk cache of the small fitted text classifiers.

A classifier is fitted with scikit-learn once (seconds, and the import alone takes
seconds on 2 cores), exported to plain arrays (:mod:`assistant.triage.linear_text`) and
loaded from them afterwards in milliseconds, without importing scikit-learn.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from assistant.triage.linear_text import LinearTextModel, export

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}


def load_or_train(path: Path, train: Callable[[], Any]) -> LinearTextModel | None:
    """The model cached at ``path`` (``.npz``; the file name is its cache key), else train,
    export and save it. ``train`` returns a fitted scikit-learn pipeline or None (no data).

    An unreadable cache file is retrained; files are written atomically.
    """
    key = str(path)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        model = None
        if path.is_file():
            try:
                model = LinearTextModel.load(path)
            except (OSError, ValueError, KeyError) as exc:
                log.warning("model cache %s unreadable (%s); retraining", path.name, type(exc).__name__)
        if model is None:
            fitted = train()
            if fitted is not None:
                model = export(fitted)
                model.save(path)
        _MODELS[key] = model
        return model
