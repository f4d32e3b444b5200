"""Follow-up questions for the multi-turn triage interview (``knowledge_base/interview.yaml``)."""

from __future__ import annotations

import re

from assistant.kb import KnowledgeBase, default_kb
from assistant.text import normalise
from assistant.triage.urgency import has_duration, has_severity

MAX_QUESTIONS = 3


def _any(words: list[str], text: str) -> bool:
    return any(re.search(re.escape(w), text) for w in words)


def follow_up_questions(
    text: str,
    *,
    language: str,
    age_years: float | None,
    sex: str | None,
    pregnant: bool | None,
    asked: set[str] | frozenset[str] = frozenset(),
    red_flag: bool = False,
    kb: KnowledgeBase | None = None,
) -> list[tuple[str, str]]:
    """Up to 3 ``(question_id, question)`` pairs, most dangerous first.

    Args:
        text: everything the patient has said so far (all turns).
        language: ``"en"`` or ``"zh"`` (question language).
        age_years, sex, pregnant: what is known about the patient.
        asked: ids already asked in this session (never asked twice).
        red_flag: when True no question is asked: the patient must act now.

    Returns:
        List of (id, text); empty when nothing important is missing.
    """
    if red_flag:
        return []
    data = (kb or default_kb()).yaml("interview.yaml")
    low = normalise(text)
    out: list[tuple[str, str]] = []
    female_childbearing = (sex == "F") and (age_years is None or 12 <= age_years <= 50) and pregnant is None
    for topic in data["topics"]:
        if topic["id"] in asked or not _any(topic["trigger"], low) or _any(topic["answered"], low):
            continue
        if topic.get("needs") == "female_childbearing" and not female_childbearing:
            continue
        out.append((topic["id"], topic[language]))
    needs = {
        "age_missing": age_years is None,
        "duration_missing": not has_duration(text),
        "severity_missing": not has_severity(text),
    }
    for q in data["general"]:
        if q["id"] not in asked and needs.get(q["needs"], False):
            out.append((q["id"], q[language]))
    return out[:MAX_QUESTIONS]
