"""Checks on model-written text: it may add warmth, never remove urgency or diagnose.

A lead-in is dropped (``None``) when it contains reassurance that could lower urgency,
a diagnosis claim, medication advice, is in the wrong language, or is too long.
Patterns are the project's own, informed by the WHO guidance on LLMs in health (2024):
no autonomous diagnosis, no discouraging care-seeking.
"""

from __future__ import annotations

import logging
import re
from typing import Any

from assistant.domain import TriageResult
from assistant.text import answer_language

log = logging.getLogger(__name__)

MAX_LEAD_IN_CHARS = 200
_DOWNGRADE = re.compile(
    r"(not serious|nothing serious|nothing to worry|no need to (worry|see|go)|it'?s (fine|okay|ok|nothing)"
    r"|don'?t worry|no big deal|will pass|just (rest|wait)|stay home|harmless|minor"
    r"|不严重|没什么|没事|不用(担心|看|去)|别担心|不要紧|自己会好|在家休息)",
    re.IGNORECASE,
)
_DIAGNOSIS = re.compile(
    r"(you (have|probably have|might have|are suffering from)|diagnos|it (is|sounds like|looks like) (a |an )?\w+itis"
    r"|sounds like (a|an)\b|this is (a|an)\b|你(得了|患了|是)|诊断|可能是.{0,6}(病|炎|症))",
    re.IGNORECASE,
)
_MEDICATION = re.compile(r"(take|use) (some )?\w*(ibuprofen|paracetamol|aspirin|antibiotic|medicine|pills)|吃.{0,4}药", re.IGNORECASE)
_URGENCY_WORDS = re.compile(r"(emergenc|urgent|call 120|call 911|急诊|急救)", re.IGNORECASE)


def check_lead_in(text: str, result: TriageResult) -> tuple[bool, str]:
    """Return ``(ok, reason)`` for a candidate lead-in sentence."""
    stripped = text.strip()
    if not stripped:
        return False, "empty"
    if len(stripped) > MAX_LEAD_IN_CHARS:
        return False, "too long"
    if _DOWNGRADE.search(stripped):
        return False, "reassurance that may lower urgency"
    if _DIAGNOSIS.search(stripped):
        return False, "diagnosis claim"
    if _MEDICATION.search(stripped):
        return False, "medication advice"
    if not result.disposition.is_emergency and _URGENCY_WORDS.search(stripped):
        return False, "urgency statement not from the rules"
    if answer_language(stripped, result.language) != result.language:
        return False, "wrong language"
    return True, "ok"


def write_lead_in(backend: Any, complaint: str, result: TriageResult) -> str | None:
    """Ask the model for a one-sentence lead-in; return it only if it passes the checks."""
    from assistant.prompts import load_prompt

    prompt = load_prompt("lead_in")
    try:
        text = backend.generate(
            [
                {"role": "system", "content": prompt.render("system", language=result.language)},
                {"role": "user", "content": prompt.render("user", complaint=complaint[:500])},
            ],
            max_new_tokens=40,
        )
    except Exception as exc:  # noqa: BLE001 - the lead-in is optional
        log.warning("lead-in generation failed: %s", type(exc).__name__)
        return None
    sentence = re.split(r"(?<=[.!?。！？])\s*", str(text).strip())[0][:MAX_LEAD_IN_CHARS]
    ok, reason = check_lead_in(sentence, result)
    if not ok:
        log.info("lead-in dropped (%s) prompt=%s", reason, prompt.ref)
        return None
    return sentence
