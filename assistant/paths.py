"""Where the clinical knowledge base and the prompt templates live.

The folders ``knowledge_base/`` and ``prompts/`` sit at the top of the repository. An
editable install reads them there; a wheel ships copies as package data under
``assistant/_data/`` (see ``setup.py``). A hospital can point
``ASSISTANT_KNOWLEDGE_BASE_DIR`` / ``ASSISTANT_PROMPTS_DIR`` (settings) at its own copy.
"""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent  # .../assistant
_REPO = _PACKAGE.parent


def _first_existing(*candidates: Path) -> Path:
    for path in candidates:
        if path.is_dir():
            return path
    return candidates[0]


#: Default ``knowledge_base/`` folder: the repository's, else the packaged copy.
KNOWLEDGE_BASE_DIR: Path = _first_existing(_REPO / "knowledge_base", _PACKAGE / "_data" / "knowledge_base")
#: Default ``prompts/`` folder: the repository's, else the packaged copy.
PROMPTS_DIR: Path = _first_existing(_REPO / "prompts", _PACKAGE / "_data" / "prompts")


def read_yaml(path: Path) -> object:
    """Parse a YAML file with libyaml's safe C loader when available (5-10x faster than the
    pure-Python one on the large rule files), else PyYAML's ``SafeLoader``.

    Raises:
        OSError: the file cannot be read; yaml.YAMLError: it is not valid YAML.
    """
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    return yaml.load(Path(path).read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - safe loader
