"""Canonical department catalog: ``knowledge_base/departments.yaml``.

Every department code used anywhere (triage output, :class:`DemandSignal`, doctors,
wards, clinic sessions) is one of the catalog's codes. The catalog is static,
versioned data; the per-hospital resource tables live in SQLite (see
:mod:`assistant.hospital.models`).
"""

from __future__ import annotations

import functools
import re
from pathlib import Path
from typing import Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from assistant.domain import BedType
from assistant.errors import DataError
from assistant.paths import (
    KNOWLEDGE_BASE_DIR,  # noqa: E402  (the default folder)
    read_yaml,
)

CATALOG_FILE = "departments.yaml"

#: The 26 canonical department codes, in catalog order.
DEPARTMENT_CODES: tuple[str, ...] = (
    "EMERG", "GENMED", "CARDIO", "RESP", "GASTRO", "HEPATO", "NEURO", "ENDO", "NEPHRO",
    "INFECT", "HEMAT", "RHEUM", "GENSURG", "ORTHO", "UROL", "NEUROSURG", "THORSURG",
    "OBGYN", "PEDS", "DERM", "OPHTH", "ENT", "DENT", "PSYCH", "ONCO", "ANDRO",
)  # fmt: skip

_CODE = r"^[A-Z]{2,10}$"
_SUB_CODE = r"^[a-z][a-z0-9_]{1,48}$"


class SubSpecialty(BaseModel):
    """One sub-specialty of a department (e.g. CARDIO ``arrhythmia`` / 心律失常)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=_SUB_CODE, description="snake_case, unique within the department")
    name_en: str = Field(min_length=1)
    name_zh: str = Field(min_length=1)


class Department(BaseModel):
    """A catalog department. Codes match :attr:`DemandSignal.department`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    code: str = Field(pattern=_CODE)
    name_en: str = Field(min_length=1)
    name_zh: str = Field(min_length=1)
    treats_en: str = Field(min_length=20, description="What it treats, lay symptom words.")
    treats_zh: str = Field(min_length=10, description="同上，中文。")
    sub_specialties: tuple[SubSpecialty, ...] = ()
    neighbours: tuple[str, ...] = Field(
        default=(), description="Overflow departments, most suitable first."
    )
    beds: tuple[BedType, ...] = Field(default=(), description="Bed types of its wards.")
    age_below_years: int | None = Field(
        default=None, ge=1, le=150, description="Only patients younger than this (PEDS: 14)."
    )
    sex: Literal["female", "male"] | None = None
    aliases: tuple[str, ...] = Field(default=(), description="Staff words for it (lower case).")
    sees_children: bool = Field(
        default=False, description="Children go here directly rather than to PEDS."
    )
    emergency_only: bool = Field(
        default=False, description="Only emergency dispositions may be allocated here."
    )

    @field_validator("treats_en", "treats_zh", "name_en", "name_zh")
    @classmethod
    def _squash_spaces(cls, value: str) -> str:
        return re.sub(r"\s+", " ", value).strip()

    @field_validator("neighbours")
    @classmethod
    def _check_neighbour_codes(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for code in value:
            if not re.match(_CODE, code):
                raise ValueError(f"neighbour '{code}' is not a department code")
        return value

    @model_validator(mode="after")
    def _check_unique(self) -> Department:
        codes = [sub.code for sub in self.sub_specialties]
        if len(codes) != len(set(codes)):
            raise ValueError("duplicate sub-specialty code")
        if self.code in self.neighbours:
            raise ValueError("a department cannot be its own neighbour")
        if len(set(self.beds)) != len(self.beds):
            raise ValueError("duplicate bed type")
        return self

    def sees(self, age: float | None, sex: str | None) -> bool:
        """Whether this department sees a patient of ``age`` (years) and ``sex`` ("F"/"M").

        Its ``sex`` field (female / male) against a known sex, its ``age_below_years``
        against a known age; an unknown age or sex excludes nothing. Source: the catalog
        (``departments.yaml``; PEDS 0-14 per 卫健委 儿科诊疗范围).
        """
        if sex and self.sex is not None and self.sex[0].upper() != sex.upper()[:1]:
            return False
        return age is None or self.age_below_years is None or age < self.age_below_years

    def sub_specialty(self, text: str) -> SubSpecialty | None:
        """Find a sub-specialty by code, English name or Chinese name.

        Args:
            text: ``"heart_failure"``, ``"Heart failure"``, ``"heart failure"`` or ``"心力衰竭"``.

        Returns:
            The matching sub-specialty, or None.
        """
        key = _normalise(text)
        for sub in self.sub_specialties:
            if key in (sub.code, _normalise(sub.name_en), _normalise(sub.name_zh)):
                return sub
        return None


def _normalise(text: str) -> str:
    return re.sub(r"[\s\-]+", "_", text.strip().lower())


def _catalog_file(path: str | Path | None) -> Path:
    if path is None:
        return KNOWLEDGE_BASE_DIR / CATALOG_FILE
    path = Path(path)
    return path / CATALOG_FILE if path.is_dir() else path


def load_catalog(path: str | Path | None = None) -> dict[str, Department]:
    """Load and validate the department catalog (cached per resolved file).

    Args:
        path: the ``departments.yaml`` file or the folder holding it; default the
            repository's ``knowledge_base/departments.yaml``.

    Returns:
        ``{code: Department}`` in file order (a fresh dict each call; the
        :class:`Department` objects are frozen and shared).

    Raises:
        DataError: unreadable YAML, a malformed entry (the message names the file and
            the department code), or a neighbour that is not in the catalog.
    """
    resolved = _catalog_file(path).resolve()
    return dict(_load_cached(resolved))


@functools.lru_cache(maxsize=8)
def _load_cached(path: Path) -> dict[str, Department]:
    try:
        raw = read_yaml(path)
    except OSError as exc:
        raise DataError(f"{path}: cannot read department catalog ({exc.strerror})") from None
    except yaml.YAMLError as exc:
        raise DataError(f"{path}: invalid YAML: {exc}") from None
    if not isinstance(raw, dict) or not raw:
        raise DataError(f"{path}: expected a mapping of department code -> entry")
    catalog: dict[str, Department] = {}
    for code, entry in raw.items():
        if not isinstance(entry, dict):
            raise DataError(f"{path}: department {code}: expected a mapping")
        try:
            catalog[str(code)] = Department(code=str(code), **entry)
        except ValidationError as exc:
            err = exc.errors()[0]
            where = ".".join(str(p) for p in err["loc"]) or "<entry>"
            raise DataError(f"{path}: department {code}: field '{where}': {err['msg']}") from None
    for dept in catalog.values():
        for neighbour in dept.neighbours:
            if neighbour not in catalog:
                raise DataError(
                    f"{path}: department {dept.code}: neighbour '{neighbour}' is not in the catalog"
                )
            if catalog[neighbour].emergency_only:
                raise DataError(
                    f"{path}: department {dept.code}: neighbour '{neighbour}' is emergency-only; "
                    "routine care must not overflow into it"
                )
    return catalog


def resolve_sub_specialty(
    department: str, text: str | None, path: str | Path | None = None
) -> str | None:
    """Map free text to a catalog sub-specialty code of ``department``.

    Args:
        department: catalog code, e.g. ``"CARDIO"``.
        text: a code, English or Chinese name (case/space-insensitive), or None.
        path: optional catalog override (see :func:`load_catalog`).

    Returns:
        The sub-specialty code, or None when ``text`` is None or matches nothing (also
        when the department is unknown).
    """
    if text is None:
        return None
    dept = load_catalog(path).get(department)
    if dept is None:
        return None
    sub = dept.sub_specialty(text)
    return sub.code if sub is not None else None
