"""Urgency below the red flags: data-driven rules (``knowledge_base/urgency_rules.yaml``).

Red flags (``red_flags.py``) decide most emergencies; these rules add the time-critical
problems that need the ED but not an ambulance, and place every other complaint on
consultation_24 / consultation / self_care, with age and pregnancy modifiers. Every
rule carries its source; the decision lists the rules that fired.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

from assistant.domain import Disposition
from assistant.kb import KnowledgeBase, default_kb
from assistant.paths import read_yaml
from assistant.text import normalise
from assistant.triage.red_flags import ContextDoc

_DURATION = re.compile(
    r"\d+\s*(min|hour|hr|day|week|month|year)|(a|one|two|three|few|several|couple of)\s+(min|hour|day|week|month|year)"
    r"|since|yesterday|today|this morning|last night|tonight|for (ages|a while)"
    r"|\d+\s*(分钟|小时|天|日|周|个?星期|个?月|年)|[一二两三四五六七八九十半几]+\s*(分钟|小时|天|日|周|个?星期|个?月|年)"
    r"|昨天|今天|今早|早上|晚上|刚才|最近|这几天"
)
_SEVERITY = re.compile(
    r"\b(mild|moderate|severe|slight|bad|terrible|unbearable|worse|better)\b|\d+\s*/\s*10|out of 10"
    r"|轻微|有点|剧烈|厉害|严重|受不了|加重|好转|\d+分"
)


@dataclass(frozen=True)
class UrgencyRule:
    """A compiled urgency rule."""

    id: str
    disposition: Disposition
    source: str
    patterns: tuple[re.Pattern[str], ...]
    unless: tuple[re.Pattern[str], ...] = ()
    min_age: float | None = None


@dataclass
class UrgencyDecision:
    """Disposition from the urgency rules, with the ids of the rules that fired."""

    disposition: Disposition
    rule_ids: list[str] = field(default_factory=list)
    sources: list[str] = field(default_factory=list)


def load_urgency_rules(path: Path | None = None) -> tuple[UrgencyRule, ...]:
    """Load and compile ``knowledge_base/urgency_rules.yaml`` (cached per file)."""
    return _load_rules(path or default_kb().path("urgency_rules.yaml"))


@lru_cache(maxsize=4)
def _load_rules(path: Path) -> tuple[UrgencyRule, ...]:
    data = read_yaml(path)
    rules = []
    for level in ("emergency", "consultation_24", "consultation", "self_care"):
        for raw in data.get(level, []):
            rules.append(
                UrgencyRule(
                    id=raw["id"],
                    disposition=Disposition(level),
                    source=raw["source"],
                    patterns=tuple(re.compile(p) for p in raw["patterns"]),
                    unless=tuple(re.compile(p) for p in raw.get("unless", [])),
                    min_age=raw.get("min_age"),
                )
            )
    return tuple(rules)


def has_duration(text: str) -> bool:
    """Whether the complaint says how long it has lasted."""
    return bool(_DURATION.search(normalise(text)))


def has_severity(text: str) -> bool:
    """Whether the complaint says how bad it is."""
    return bool(_SEVERITY.search(normalise(text)))


def assess_urgency(
    text: str,
    *,
    age_years: float | None = None,
    pregnant: bool | None = None,
    kb: KnowledgeBase | None = None,
) -> UrgencyDecision:
    """Disposition for a complaint without red flags.

    Precedence: any consultation_24 rule; then chronic (consultation); then self-care
    rules; default consultation. Modifiers: infants under 1 year, adults 75+ and
    pregnancy are never self-care (NICE CG160 / NHS 111: vulnerable groups are seen),
    and infants under 3 months are at least consultation_24.

    Args:
        text: the complaint (any language), up to a few thousand characters.
        age_years: patient age, if known.
        pregnant: pregnancy status, if known.
        kb: the knowledge base whose ``urgency_rules.yaml`` applies (default folder when None).

    Returns:
        The decision with the ids and sources of the rules that fired.
    """
    doc = ContextDoc(text)
    low = doc.text
    fired = {d: [] for d in Disposition}  # type: dict[Disposition, list[UrgencyRule]]
    rules = load_urgency_rules(kb.path("urgency_rules.yaml") if kb is not None else None)
    for rule in rules:
        if rule.min_age is not None and age_years is not None and age_years < rule.min_age:
            continue  # unknown age fires: the cautious reading
        if any(p.search(low) for p in rule.unless):
            continue
        if any(doc.affirmed_spans(p) for p in rule.patterns):
            fired[rule.disposition].append(rule)
    if fired[Disposition.EMERGENCY]:
        level = Disposition.EMERGENCY
    elif fired[Disposition.CONSULTATION_24]:
        level = Disposition.CONSULTATION_24
    elif fired[Disposition.CONSULTATION]:
        level = Disposition.CONSULTATION
    elif fired[Disposition.SELF_CARE]:
        level = Disposition.SELF_CARE
    else:
        level = Disposition.CONSULTATION
    used = fired[level]
    decision = UrgencyDecision(level, [r.id for r in used], [r.source for r in used])
    vulnerable = (age_years is not None and (age_years < 1 or age_years >= 75)) or bool(pregnant)
    if decision.disposition is Disposition.SELF_CARE and vulnerable:
        decision.disposition = Disposition.CONSULTATION
        decision.rule_ids.append("UMOD_VULNERABLE")
        decision.sources.append("NICE CG160; NHS 111 (infants, older adults, pregnancy are not self-care)")
    if age_years is not None and age_years < 0.25 and decision.disposition.rank > Disposition.CONSULTATION_24.rank:
        decision.disposition = Disposition.CONSULTATION_24
        decision.rule_ids.append("UMOD_YOUNG_INFANT")
        decision.sources.append("NICE CG160 (infants under 3 months: assess the same day)")
    return decision
