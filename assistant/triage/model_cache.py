"""Per-process and on-disk (joblib) cache for the small trained text classifiers."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
_LOCK = threading.Lock()
_MODELS: dict[str, Any] = {}


def load_or_train(path: Path, train: Callable[[], Any]) -> Any:
    """Return the model cached at ``path`` (the file name is its cache key), else train and save it.

    An unreadable cache file is retrained; the file is written atomically.
    """
    import joblib

    key = str(path)
    with _LOCK:
        if key in _MODELS:
            return _MODELS[key]
        model = None
        if path.is_file():
            try:
                model = joblib.load(path)
            except Exception as exc:  # noqa: BLE001 - a bad cache is retrained
                log.warning("model cache %s unreadable (%s); retraining", path.name, exc)
        if model is None:
            model = train()
            if model is not None:
                path.parent.mkdir(parents=True, exist_ok=True)
                tmp = path.with_suffix(".tmp")
                joblib.dump(model, tmp)
                tmp.replace(path)
        _MODELS[key] = model
        return model
