"""Gradio web UI: patient chat and staff console (:func:`build_app`)."""

from assistant.ui.app import build_app

__all__ = ["build_app"]
