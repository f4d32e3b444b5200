"""Local LLM backends behind one protocol (see :mod:`assistant.llm.base`)."""

from assistant.llm.base import ChatBackend, Message, available_backends, get_backend

__all__ = ["ChatBackend", "Message", "available_backends", "get_backend"]
