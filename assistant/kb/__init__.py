"""The clinical and hospital knowledge base: one object, loaded once, passed explicitly.

:class:`KnowledgeBase` reads the top-level ``knowledge_base/`` folder (its location is
the ``knowledge_base_dir`` setting; the default also works in a wheel install, see
:mod:`assistant.paths`). It owns the department catalog (neighbours, age/sex rules,
aliases, the emergency-only policy), the routing policy, the default timezone and the
paths of the red-flag rules, urgency rules, interview questions and answer templates,
which the triage layer compiles.

This package sits just above :mod:`assistant.domain`: it imports nothing from
``hospital``, ``triage`` or higher layers.
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from assistant.errors import DataError
from assistant.kb.catalog import Department, load_catalog
from assistant.paths import KNOWLEDGE_BASE_DIR, PROMPTS_DIR, read_yaml

__all__ = ["KNOWLEDGE_BASE_DIR", "PROMPTS_DIR", "KnowledgeBase", "RoutingPolicy", "SexSpecificRule",
           "default_kb"]


class SexSpecificRule(BaseModel):
    """Complaints that belong to a sex-specific department (``policy.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    department: str = Field(pattern=r"^[A-Z]{2,10}$")
    sex: str = Field(pattern=r"^[FM]$")
    reason_en: str
    reason_zh: str
    patterns: tuple[str, ...] = Field(min_length=1)

    @functools.cached_property
    def regex(self) -> re.Pattern[str]:
        """The patterns as one alternation (plain substrings, escaped)."""
        return re.compile("|".join(re.escape(p) for p in self.patterns))


class RoutingPolicy(BaseModel):
    """Age, sex and pregnancy routing rules (``policy.yaml`` ``routing:``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    paediatrics: str = "PEDS"
    pregnancy: str = "OBGYN"
    sex_specific: tuple[SexSpecificRule, ...] = ()


class _Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    version: int = 1
    timezone: str = "Asia/Shanghai"
    routing: RoutingPolicy = RoutingPolicy()


class KnowledgeBase:
    """Clinical and hospital knowledge as data, validated on load.

    Args:
        root: the ``knowledge_base/`` folder (default :data:`KNOWLEDGE_BASE_DIR`).

    Raises:
        DataError: a file is missing or invalid (the message names the file and entry).
    """

    def __init__(self, root: str | Path | None = None) -> None:
        self.root = Path(root) if root is not None else KNOWLEDGE_BASE_DIR
        if not self.root.is_dir():
            raise DataError(f"{self.root}: knowledge base folder not found")
        self.catalog: dict[str, Department] = load_catalog(self.root)
        policy = self._policy()
        self.routing: RoutingPolicy = policy.routing
        try:
            self.timezone: ZoneInfo = ZoneInfo(policy.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise DataError(f"{self.path('policy.yaml')}: unknown timezone {policy.timezone!r}") from None
        for code in (self.routing.paediatrics, self.routing.pregnancy,
                     *(r.department for r in self.routing.sex_specific)):
            if code not in self.catalog:
                raise DataError(f"{self.path('policy.yaml')}: department {code} is not in the catalog")

    def path(self, name: str) -> Path:
        """Path of a file inside the knowledge base (it need not exist)."""
        return self.root / name

    def yaml(self, name: str) -> Any:
        """Parsed YAML file of the knowledge base (cached per file and mtime).

        Raises:
            DataError: the file is missing or is not valid YAML.
        """
        path = self.path(name)
        try:
            mtime = path.stat().st_mtime_ns
        except OSError as exc:
            raise DataError(f"{path}: not found ({exc.strerror})") from None
        return _read_yaml(str(path), mtime)

    def _policy(self) -> _Policy:
        try:
            return _Policy.model_validate(self.yaml("policy.yaml") or {})
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"])
            raise DataError(f"{self.path('policy.yaml')}: field '{where}': {err['msg']}") from None

    # -- catalog views -----------------------------------------------------------------
    @property
    def neighbours(self) -> dict[str, list[str]]:
        """Overflow table ``department -> [neighbours]`` for allocation (never an emergency-only one)."""
        return {code: [n for n in d.neighbours if not self.catalog[n].emergency_only]
                for code, d in self.catalog.items()}

    @property
    def emergency_only(self) -> frozenset[str]:
        """Departments that accept emergency dispositions only (the ED)."""
        return frozenset(code for code, d in self.catalog.items() if d.emergency_only)

    @property
    def paediatric_age_limit(self) -> float | None:
        """Children below this age (years) are routed to paediatrics (catalog ``age_below_years``)."""
        dept = self.catalog.get(self.routing.paediatrics)
        return None if dept is None else dept.age_below_years

    @property
    def child_direct(self) -> frozenset[str]:
        """Departments a child sees directly rather than paediatrics."""
        return frozenset(code for code, d in self.catalog.items() if d.sees_children)

    @property
    def aliases(self) -> dict[str, tuple[str, ...]]:
        """Staff words for each department (``department -> aliases``)."""
        return {code: d.aliases for code, d in self.catalog.items()}

    def allows(self, department: str, *, emergency: bool) -> bool:
        """Whether a signal of this urgency may be allocated to ``department`` (policy)."""
        dept = self.catalog.get(department)
        return dept is not None and (emergency or not dept.emergency_only)


@functools.lru_cache(maxsize=32)
def _read_yaml(path: str, mtime: int) -> Any:  # mtime: part of the cache key
    try:
        return read_yaml(Path(path))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read: {exc}") from None


@functools.lru_cache(maxsize=4)
def _cached_kb(root: str) -> KnowledgeBase:
    return KnowledgeBase(root)


def default_kb(root: str | Path | None = None) -> KnowledgeBase:
    """The knowledge base of ``root`` (default folder when None), loaded once per process."""
    return _cached_kb(str(Path(root) if root is not None else KNOWLEDGE_BASE_DIR))
