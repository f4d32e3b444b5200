"""One exception family for every failure a user should see as a one-line message.

The CLI and the UI catch :class:`AssistantError` and print ``str(error)``; anything
else is a bug and keeps its traceback.
"""

from __future__ import annotations


class AssistantError(Exception):
    """Base class of every expected failure (bad setting, missing model, bad input)."""


class ConfigError(AssistantError):
    """A setting is unknown, malformed or points at something that does not exist."""


class ModelNotFoundError(AssistantError):
    """The configured model (LLM or embedder) is not installed or the path is wrong."""


class GenerationError(AssistantError):
    """The model could not produce output that satisfies the requested schema."""


class DataError(AssistantError):
    """An input file or table is unreadable or malformed (the message names file and row)."""


class InputError(AssistantError):
    """Patient or staff input that cannot be processed (empty, binary, too long)."""


class StorageError(DataError):
    """A state file (hospital database, index, audit log) is corrupt, or the disk is full."""


class AuthError(AssistantError):
    """A staff account file or account entry is malformed (never says which password)."""
