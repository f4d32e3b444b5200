"""On-disk caches of structures derived from knowledge-base files (cold-start speed).

A fresh ``assistant triage`` process rebuilds the same derived structures every time:
the compiled red-flag regular expressions, the complaint-vocabulary phrase index, jieba's
prefix dictionary. This module stores them under the user cache folder,
``$ASSISTANT_CACHE_DIR`` (default ``~/.cache/triage-assistant``, the folder
:func:`assistant.paths.read_yaml` already uses), never inside the package, so a
read-only install works.

Rules every cache here follows:

* the key is a SHA-256 over the *content* of the source files (and the code that derives
  from them, and the Python version), so an edited YAML file or an edited module never
  reads a stale entry; older entries of the same source are deleted when a new one is
  written, and at most :data:`MAX_ENTRIES_PER_KIND` entries of one kind are kept;
* writes are atomic (a temporary file in the same folder, then ``os.replace``): a reader
  sees the old file or the new one, never half of one;
* any failure (unwritable or missing folder, a corrupt or truncated file) falls back to
  building the structure in memory, which is what happens without a cache.

Serialisation is :mod:`marshal` (the format jieba uses for its own cache): it reads
plain dicts, lists, tuples, sets and strings several times faster than JSON or pickle,
and its format is tied to the Python version, which is part of every key.
"""

from __future__ import annotations

import hashlib
import marshal
import os
import re
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, BinaryIO, TypeVar

T = TypeVar("T")

FORMAT_VERSION = 1
"""Bump to invalidate every derived cache written by an older layout of this module."""
MAX_ENTRIES_PER_KIND = 16
"""Entries kept per kind of structure (the newest; a pruned one is rebuilt when needed)."""
_PY_TAG = f"{sys.version}|{sys.implementation.cache_tag}|{marshal.version}|{FORMAT_VERSION}"


CACHE_DIR_ENV = "ASSISTANT_CACHE_DIR"
"""Environment variable naming the cache folder (a process setting, like
``ASSISTANT_CONFIG``: read before any :class:`~assistant.settings.Settings` exists)."""


def cache_root() -> Path:
    """The cache folder: ``$ASSISTANT_CACHE_DIR`` or ``~/.cache/triage-assistant``."""
    return Path(os.environ.get(CACHE_DIR_ENV) or Path.home() / ".cache" / "triage-assistant")


def content_key(*parts: str | bytes | Path) -> str:
    """SHA-256 (hex) over ``parts`` and the Python version.

    A :class:`~pathlib.Path` contributes its resolved name and its bytes (a missing file
    contributes a marker, so the key still changes when it appears); ``str`` and
    ``bytes`` contribute themselves.
    """
    digest = hashlib.sha256(_PY_TAG.encode())
    for part in parts:
        if isinstance(part, Path):
            digest.update(str(part.resolve()).encode("utf-8", "surrogateescape"))
            try:
                digest.update(part.read_bytes())
            except OSError:
                digest.update(b"\0missing")
        else:
            digest.update(part if isinstance(part, bytes) else part.encode("utf-8", "surrogateescape"))
        digest.update(b"\0\1")
    return digest.hexdigest()


def _entry(kind: str, scope: str, key: str, suffix: str = ".marshal") -> Path:
    scope_id = hashlib.sha256(scope.encode("utf-8", "surrogateescape")).hexdigest()[:12]
    return cache_root() / "derived" / f"{kind}-{scope_id}-{key[:32]}{suffix}"


def entry_path(kind: str, scope: str, key: str, suffix: str) -> Path:
    """Where a derived file of ``kind`` for ``scope`` and ``key`` lives (for files that are
    not marshal values, e.g. ``suffix=".npz"``; write it with :func:`store_file`)."""
    return _entry(kind, scope, key, suffix)


def store_file(path: Path, write: Callable[[BinaryIO], Any]) -> bool:
    """Write the derived file ``path`` (from :func:`entry_path`) atomically: ``write`` fills
    an open temporary file in the same folder, which then replaces ``path``; older entries
    of the same kind and scope are deleted, and at most :data:`MAX_ENTRIES_PER_KIND` of the
    kind are kept. Returns False (and stores nothing) when the folder cannot be written;
    never raises for that."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with tmp.open("wb") as fh:
            write(fh)
        os.replace(tmp, path)
    except OSError:
        try:
            tmp.unlink(missing_ok=True)
        except OSError:
            pass
        return False
    name, suffix = path.name, path.suffix
    prefix = name[: name.rindex("-") + 1]  # "<kind>-<scope id>-"
    kind_prefix = prefix[:-13]  # "<kind>-" (the scope id is 12 hex digits)
    try:
        for stale in path.parent.glob(prefix + "*" + suffix):  # older versions of this source
            if stale.name != name:
                stale.unlink(missing_ok=True)
        # other sources of this kind (rule files in temporary folders, ...): keep the newest
        entries = sorted(path.parent.glob(f"{kind_prefix}*{suffix}"), key=lambda p: p.stat().st_mtime,
                         reverse=True)
        for stale in entries[MAX_ENTRIES_PER_KIND:]:
            stale.unlink(missing_ok=True)
    except OSError:
        pass
    return True


def read_entry(kind: str, scope: str, key: str) -> Any:
    """The cached value of ``kind`` for ``scope`` (e.g. the source's path) and ``key``;
    None when there is none or it cannot be read."""
    try:
        return marshal.loads(_entry(kind, scope, key).read_bytes())
    except (OSError, ValueError, EOFError, TypeError):
        return None


def write_entry(kind: str, scope: str, key: str, value: Any) -> bool:
    """Store ``value`` (marshal-able) atomically and delete older entries of the same
    ``kind`` and ``scope`` (:func:`store_file`). Returns False (and stores nothing) when
    the folder cannot be written; never raises for that."""
    try:
        data = marshal.dumps(value)
    except ValueError:
        return False
    return store_file(_entry(kind, scope, key), lambda fh: fh.write(data))


def cached_derived(kind: str, scope: str, key: str, build: Callable[[], T]) -> T:
    """``build()`` through the cache: the stored value for ``key`` when there is one,
    else build it, store it (best effort) and return it.

    Args:
        kind: short name of the structure (a file-name prefix).
        scope: what the structure is derived from, e.g. the source file's resolved path.
        key: :func:`content_key` of everything the structure depends on.
        build: returns a marshal-able value (dicts, lists, tuples, sets, str, numbers).
    """
    value = read_entry(kind, scope, key)
    if value is not None:
        return value
    value = build()
    write_entry(kind, scope, key, value)
    return value


# --------------------------------------------------------------------------- regexes
def _sre_record(pattern: str, flags: int) -> tuple[Any, ...]:
    """What :func:`re.compile` hands to ``_sre.compile`` for ``pattern``: parsing and
    code generation (pure Python, the slow part) happen here, once per cache entry."""
    from re import _compiler, _parser  # type: ignore[attr-defined]

    parsed = _parser.parse(pattern, flags)
    code = _compiler._code(parsed, flags)
    groupindex = dict(parsed.state.groupdict)
    indexgroup: list[str | None] = [None] * parsed.state.groups
    for name, i in groupindex.items():
        indexgroup[i] = name
    return (int(flags | parsed.state.flags), [int(c) for c in code], int(parsed.state.groups - 1), groupindex,
            tuple(indexgroup))


class RegexStore:
    """Compiled regular expressions of one rule file, re-created from cached SRE code.

    Compiling a few hundred rule patterns costs ~0.1-0.2 s per process in
    :mod:`re`'s pure-Python parser and code generator; the C engine's own constructor
    (``_sre.compile``, which validates the code) is ~100x faster. The store keeps, per
    pattern string, the arguments :func:`re._compiler.compile` passes to that
    constructor, so :meth:`compile` returns a pattern equal to ``re.compile(pattern)``
    (same pattern, flags and code). Entries are looked up by the exact pattern string and
    the file is keyed on the Python version, so a cached entry can never belong to
    another pattern. Any problem falls back to :func:`re.compile`.

    Args:
        scope: the rule file's resolved path (one store per file).
        key: :func:`content_key` of the rule file (a changed file starts a new store).
    """

    KIND = "regex"

    def __init__(self, scope: str, key: str) -> None:
        self.scope, self.key = scope, key
        loaded = read_entry(self.KIND, scope, key)
        self._records: dict[tuple[str, int], tuple[Any, ...]] = loaded if isinstance(loaded, dict) else {}
        self._used: dict[tuple[str, int], tuple[Any, ...]] = {}
        self.misses = 0

    def compile(self, pattern: str, flags: int = 0) -> re.Pattern[str]:
        """``re.compile(pattern, flags)``, from the cache when possible.

        Raises:
            re.error: the pattern is invalid (raised by :func:`re.compile`).
        """
        record = self._records.get((pattern, flags))
        if record is not None:
            try:
                import _sre

                compiled = _sre.compile(pattern, *record)
                self._used[(pattern, flags)] = record
                return compiled
            except Exception:  # noqa: BLE001, S110 - a bad entry only costs a normal compile
                pass
        self.misses += 1
        compiled = re.compile(pattern, flags)  # raises re.error for a bad pattern
        try:
            self._used[(pattern, flags)] = _sre_record(pattern, flags)
        except Exception:  # noqa: BLE001, S110 - another Python's internals: no caching
            pass
        return compiled

    def memo(self, name: str, arg: tuple[str, ...], fn: Callable[[], T]) -> T:
        """``fn()``, cached with the patterns under ``(name, arg)``: for other pure
        functions of the rule file's pattern strings (``arg``); the value must be
        marshal-able."""
        key = (name, arg)
        if key in self._records:
            self._used[key] = self._records[key]
            return self._records[key]  # type: ignore[return-value]
        self.misses += 1
        value = fn()
        self._used[key] = value  # type: ignore[assignment]
        return value

    def save(self) -> None:
        """Write the patterns compiled since loading, when any was missing (best effort)."""
        if self.misses or set(self._used) != set(self._records):
            write_entry(self.KIND, self.scope, self.key, self._used)


def compile_all(store: RegexStore | None, patterns: Iterable[str]) -> list[re.Pattern[str]]:
    """Compile each pattern through ``store`` (plain :func:`re.compile` when None)."""
    if store is None:
        return [re.compile(p) for p in patterns]
    return [store.compile(p) for p in patterns]


__all__ = ["RegexStore", "cache_root", "cached_derived", "compile_all", "content_key", "read_entry",
           "write_entry"]
