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
    """Parse a YAML file of the knowledge base, through the derived-structure cache.

    Parsing the large rule files takes most of a cold start (PyYAML builds Python objects
    slowly even with libyaml), so the parsed content is cached by
    :func:`assistant.cache.cached_derived` under ``$ASSISTANT_CACHE_DIR`` (default
    ``~/.cache/triage-assistant``), keyed by the file's path, size and modification time
    (no read of the file on a hit); an unwritable cache is skipped.

    Raises:
        OSError: the file cannot be read; yaml.YAMLError: it is not valid YAML.
    """
    import hashlib

    from assistant.cache import cached_derived

    path = Path(path)
    stat = path.stat()
    key = hashlib.sha256(f"{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()

    def parse() -> object:
        import yaml

        loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
        return yaml.load(path.read_text(encoding="utf-8"), Loader=loader)  # noqa: S506 - safe loader

    return cached_derived("yaml", str(path.resolve()), key, parse)
