"""The one protocol every chat backend implements, and the backend registry.

A backend turns chat messages (``[{"role": "system"|"user"|"assistant", "content": str}]``)
into text, or into a validated pydantic object when a ``schema`` is given. Callers never
import a backend class directly: they call :func:`get_backend` with the settings.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any, Protocol, TypeVar, runtime_checkable

from pydantic import BaseModel

from assistant.errors import ConfigError
from assistant.settings import Settings

Message = dict[str, str]
"""A chat message: ``{"role": "system" | "user" | "assistant", "content": str}``."""

M = TypeVar("M", bound=BaseModel)


@runtime_checkable
class ChatBackend(Protocol):
    """A local chat model.

    Attributes:
        model_id: human-readable id of the loaded weights, recorded in eval rows.
        device: where the model runs (``"cpu"``, ``"cuda"``).
    """

    model_id: str
    device: str
    # Optional: ``supports_native_tools = True`` and ``tool_call(messages, tools, *,
    # tool_choice, max_new_tokens) -> {"tool", "arguments"}`` (see the openai backend)
    # make LocalChatModel.bind_tools use the backend's own tools API.

    def generate(
        self,
        messages: Sequence[Message],
        *,
        schema: type[M] | dict[str, Any] | None = None,
        max_new_tokens: int | None = None,
    ) -> Any:
        """Greedy completion of ``messages``.

        Args:
            messages: the chat so far.
            schema: a pydantic model class (returns a validated instance) or a JSON
                schema dict (returns the parsed ``dict``); ``None`` returns ``str``.
            max_new_tokens: cap on generated tokens (default from settings).

        Raises:
            GenerationError: constrained output failed validation.
        """
        ...

    def stream(
        self, messages: Sequence[Message], *, max_new_tokens: int | None = None
    ) -> Iterator[str]:
        """Yield the greedy completion of ``messages`` piece by piece."""
        ...


_BUILTIN: dict[str, str] = {
    "transformers": "assistant.llm.transformers_backend:load_backend",
    "openai": "assistant.llm.openai_backend:load_backend",
}
"""Backend name -> ``"module:factory"``; the module is imported only when the backend is used."""
_REGISTRY: dict[str, Callable[[Settings], ChatBackend]] = {}
_LOADED: dict[tuple[str, str], ChatBackend] = {}


def register_backend(name: str, factory: Callable[[Settings], ChatBackend]) -> None:
    """Register a backend factory under ``name`` (for plug-ins and tests)."""
    _REGISTRY[name] = factory


def available_backends() -> list[str]:
    """Names accepted by ``Settings.llm_backend``."""
    return sorted({*_BUILTIN, *_REGISTRY})


def _factory(name: str) -> Callable[[Settings], ChatBackend]:
    if name in _REGISTRY:
        return _REGISTRY[name]
    if name not in _BUILTIN:
        raise ConfigError(f"unknown llm_backend '{name}'; choose one of {available_backends()}")
    import importlib

    module, attr = _BUILTIN[name].split(":")
    factory = getattr(importlib.import_module(module), attr)
    _REGISTRY[name] = factory
    return factory


def _secret_digest(settings: Settings) -> str | None:
    """Hash of the API key, so the registry key never holds the secret itself."""
    if settings.llm_api_key is None:
        return None
    import hashlib

    return hashlib.sha256(settings.llm_api_key.get_secret_value().encode()).hexdigest()[:16]


def get_backend(settings: Settings, *, reuse: bool = True) -> ChatBackend:
    """Return the configured backend, loading it once per process.

    Args:
        settings: the runtime settings (``llm_backend``, ``llm_model``, ``device`` ...).
        reuse: return the already-loaded model for identical model settings.

    Raises:
        ConfigError: unknown backend name.
        ModelNotFoundError: the model files are missing (the message says what to install).
    """
    factory = _factory(settings.llm_backend)
    key = (
        settings.llm_backend,
        repr((settings.llm_model, settings.llm_gguf_file, settings.device, settings.num_threads,
              str(settings.model_cache_dir), settings.max_new_tokens,
              settings.repetition_penalty, settings.llm_base_url, settings.llm_timeout_s,
              settings.llm_structured_output, settings.llm_tools, settings.llm_dtype,
              settings.llm_compile,
              _secret_digest(settings))),
    )
    if reuse and key in _LOADED:
        return _LOADED[key]
    backend = factory(settings)
    if reuse:
        _LOADED[key] = backend
    return backend
