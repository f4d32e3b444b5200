"""Render a :class:`TriageResult` as patient-facing Markdown in the patient's language.

Order (safety first): urgency statement, red flags, department, doctor/slot, follow-up
questions, why (with citations), safety-netting advice, the not-a-diagnosis notice.
Templates live in ``knowledge_base/answer_templates.yaml``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo

import yaml
from jinja2 import Environment, StrictUndefined

from assistant.hospital.catalog import KNOWLEDGE_BASE_DIR as KB_DIR
from assistant.triage.result import TriageResult

_ENV = Environment(undefined=StrictUndefined, autoescape=False)
DISPLAY_TZ = ZoneInfo("Asia/Shanghai")


@lru_cache(maxsize=1)
def templates() -> dict[str, Any]:
    """The answer templates (cached)."""
    return yaml.safe_load((KB_DIR / "answer_templates.yaml").read_text(encoding="utf-8"))


def _t(lang: str, key: str, **kw: Any) -> str:
    return _ENV.from_string(templates()[lang][key]).render(**kw)


def urgency_line(result: TriageResult) -> str:
    """The one-line urgency statement, in the result's language."""
    return templates()[result.language]["urgency"][result.disposition.value]


def format_when(when: Any, lang: str, tz: ZoneInfo = DISPLAY_TZ) -> str:
    """Local time of a slot, e.g. ``Tue 24 Nov 09:15`` / ``11月24日 周二 09:15``."""
    local = when.astimezone(tz)
    if lang == "zh":
        week = "一二三四五六日"[local.weekday()]
        return f"{local.month}月{local.day}日 周{week} {local:%H:%M}"
    return local.strftime("%a %d %b %H:%M")


def render_answer(result: TriageResult, *, booking: dict[str, Any] | None = None) -> str:
    """Markdown answer for the patient.

    Args:
        result: the triage result.
        booking: optional confirmed booking ``{"ref", "doctor": DoctorSuggestion-like
            dict, "starts_at"}`` from the allocation tool; shown instead of the
            suggested slot.
    """
    lang = result.language
    if result.safe_reply and not result.red_flags and not result.departments:
        return f"{result.safe_reply}\n\n_{_t(lang, 'disclaimer')}_"
    lines = [f"**{urgency_line(result)}**"]
    if result.safe_reply:
        lines.append(result.safe_reply)
    if result.lead_in:
        lines.append(result.lead_in)
    if result.red_flags:
        names = ("、" if lang == "zh" else ", ").join(
            (r.name_zh if lang == "zh" else r.name_en) for r in result.red_flags
        )
        lines.append(_t(lang, "red_flags", names=names))
        advice = result.red_flags[0].advice_zh if lang == "zh" else result.red_flags[0].advice_en
        if advice:
            lines.append(advice)
    if result.departments:
        d = result.departments[0]
        lines.append(_t(lang, "department", name=d.name_zh if lang == "zh" else d.name_en,
                        reason=d.reason_zh if lang == "zh" else d.reason_en))
    if booking:
        doc = booking["doctor"]
        lines.append(_t(lang, "booked", name=doc["name_zh"] if lang == "zh" else doc["name_en"],
                        title=doc["title_zh"] if lang == "zh" else doc["title_en"],
                        when=format_when(booking["starts_at"], lang), ref=booking["ref"]))
    elif result.doctors:
        doc = result.doctors[0]
        lines.append(_t(lang, "doctor", name=doc.name_zh if lang == "zh" else doc.name_en,
                        title=doc.title_zh if lang == "zh" else doc.title_en,
                        when=format_when(doc.starts_at, lang)))
    elif not result.disposition.is_emergency and result.disposition.value != "self_care":
        lines.append(_t(lang, "no_doctor"))
    if result.follow_up_questions:
        lines.append(_t(lang, "questions"))
        lines.extend(f"- {q}" for q in result.follow_up_questions)
    reasons = [r.evidence for r in result.red_flags] + [
        (d.reason_zh if lang == "zh" else d.reason_en) for d in result.departments[:1]
    ]
    if reasons:
        lines.append(_t(lang, "why", reasons=("；" if lang == "zh" else "; ").join(reasons)))
    if result.citations:
        lines.append(_t(lang, "sources"))
        lines.extend(f"- [{c.title}]({c.url}) ({c.source})" if c.url else f"- {c.title} ({c.source})"
                     for c in result.citations)
    if result.disposition.value in ("self_care", "consultation", "consultation_24"):
        lines.append(_t(lang, "safety_net"))
    lines.append(f"_{_t(lang, 'disclaimer')}_")
    return "\n\n".join(lines)
