"""Triage Assistant: a locally hosted, LLM-assisted hospital triage and guidance assistant."""

__version__ = "0.1.0"
