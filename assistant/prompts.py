"""Versioned prompt templates from ``prompts/*.yaml``.

Each file holds ``name``, ``version`` and one or more Jinja templates (``system``,
``user`` ...). Templates render with ``StrictUndefined``, so a missing variable fails
loudly instead of sending a half-filled prompt. Results and logs record
``name@version`` (:attr:`Prompt.ref`).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, StrictUndefined

from assistant.errors import ConfigError
from assistant.paths import (
    PROMPTS_DIR,  # noqa: E402
    read_yaml,
)

_ENV = Environment(undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False)


@dataclass(frozen=True)
class Prompt:
    """A loaded prompt file.

    Attributes:
        name: file stem, e.g. ``"tool_calling"``.
        version: the file's ``version`` field (bump it whenever the text changes).
        templates: template name → Jinja source.
    """

    name: str
    version: str
    templates: dict[str, str]

    @property
    def ref(self) -> str:
        """``name@version``, recorded in eval rows and logs."""
        return f"{self.name}@{self.version}"

    def render(self, part: str, **variables: Any) -> str:
        """Render template ``part`` with ``variables``.

        Raises:
            ConfigError: unknown part or a variable missing from ``variables``.
        """
        if part not in self.templates:
            raise ConfigError(f"prompt {self.ref} has no template '{part}'")
        try:
            return _ENV.from_string(self.templates[part]).render(**variables).strip()
        except Exception as exc:  # jinja2.UndefinedError and syntax errors
            raise ConfigError(f"prompt {self.ref}/{part}: {exc}") from exc


@lru_cache(maxsize=32)
def load_prompt(name: str, directory: Path | None = None) -> Prompt:
    """Load ``prompts/<name>.yaml``.

    Raises:
        ConfigError: the file is missing or lacks ``version``/templates.
    """
    path = (directory or PROMPTS_DIR) / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"prompt file {path} not found")
    data = read_yaml(path) or {}
    version = data.pop("version", None)
    data.pop("name", None)
    data.pop("description", None)
    if version is None or not data:
        raise ConfigError(f"prompt file {path} needs a version and at least one template")
    return Prompt(name=name, version=str(version), templates={k: str(v) for k, v in data.items()})
