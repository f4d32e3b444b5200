"""Render a :class:`TriageResult` as patient-facing Markdown in the patient's language.

Order (safety first): urgency statement, red flags, department, doctor/slot, follow-up
questions, why (with citations), safety-netting advice, the not-a-diagnosis notice.
Templates live in ``knowledge_base/answer_templates.yaml``.
"""

from __future__ import annotations

import re
from typing import Any
from zoneinfo import ZoneInfo

from jinja2 import Environment, StrictUndefined

from assistant.domain import TriageResult
from assistant.kb import KnowledgeBase, default_kb

_ENV = Environment(undefined=StrictUndefined, autoescape=False)
_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#+!|~])")


def md_escape(text: object) -> str:
    """Escape text that did not come from our templates (patient words, CSV names, model
    output, retrieved titles) so that it shows as plain text in Markdown/HTML: no links,
    images, HTML tags or emphasis can be injected."""
    value = str(text).replace("&", "&amp;")
    return _MD_SPECIAL.sub(r"\\\1", value).replace("\n", " ")


def templates(kb: KnowledgeBase | None = None) -> dict[str, Any]:
    """The answer templates of ``kb`` (default knowledge base when None)."""
    return (kb or default_kb()).yaml("answer_templates.yaml")


def _t(lang: str, key: str, **kw: Any) -> str:
    return _ENV.from_string(templates()[lang][key]).render(**kw)


def urgency_line(result: TriageResult) -> str:
    """The one-line urgency statement, in the result's language."""
    return templates()[result.language]["urgency"][result.disposition.value]


def format_when(when: Any, lang: str, tz: ZoneInfo | None = None) -> str:
    """Local time of a slot, e.g. ``Tue 24 Nov 09:15`` / ``11月24日 周二 09:15``.

    Args:
        when: an aware datetime (or ISO string).
        lang: ``"en"`` or ``"zh"``.
        tz: display timezone; default the hospital's (``knowledge_base/policy.yaml``).
    """
    if isinstance(when, str):
        from datetime import datetime

        when = datetime.fromisoformat(when)
    local = when.astimezone(tz or default_kb().timezone)
    if lang == "zh":
        week = "一二三四五六日"[local.weekday()]
        return f"{local.month}月{local.day}日 周{week} {local:%H:%M}"
    return local.strftime("%a %d %b %H:%M")


def render_answer(result: TriageResult, *, booking: dict[str, Any] | None = None,
                  booking_failed: bool = False, hold_minutes: int | None = None) -> str:
    """Markdown answer for the patient.

    Args:
        result: the triage result.
        booking: optional confirmed booking ``{"ref", "doctor": DoctorSuggestion-like
            dict, "starts_at"}`` from the allocation tool; shown instead of the
            suggested slot.
        booking_failed: booking was attempted and failed (a fault, not "no capacity"):
            the answer says so and what to do instead; the urgency advice stays.
        hold_minutes: an unconfirmed booking is a hold released after this many minutes;
            the answer asks the patient to confirm it.

    Text that did not come from our templates is escaped (:func:`md_escape`).
    """
    lang = result.language
    if result.safe_reply and not result.red_flags and not result.departments:
        return f"{result.safe_reply}\n\n_{_t(lang, 'disclaimer')}_"
    lines = [f"**{urgency_line(result)}**"]
    if "text_truncated" in result.notes:
        lines.append(_t(lang, "truncated"))
    if result.safe_reply:
        lines.append(result.safe_reply)
    if result.lead_in:
        lines.append(md_escape(result.lead_in))
    if result.red_flags:
        names = ("、" if lang == "zh" else ", ").join(
            md_escape(r.name_zh if lang == "zh" else r.name_en) for r in result.red_flags
        )
        lines.append(_t(lang, "red_flags", names=names))
        advice = result.red_flags[0].advice_zh if lang == "zh" else result.red_flags[0].advice_en
        if advice:
            lines.append(advice)
    why = result.reasons_zh if lang == "zh" else result.reasons_en
    if why:
        lines.append(_t(lang, "urgency_why", reasons=("；" if lang == "zh" else "; ").join(
            md_escape(r) for r in why[:4])))
    if result.departments:
        d = result.departments[0]
        # an emergency always names the ED first, whichever department leads the ranking
        # (a specialty leads it after a learned-risk emergency or a handover, see Triager._route)
        key = "department_emergency" if result.disposition.is_emergency and d.code != "EMERG" else "department"
        lines.append(_t(lang, key, name=md_escape(d.name_zh if lang == "zh" else d.name_en),
                        reason=md_escape(d.reason_zh if lang == "zh" else d.reason_en)))
        if d.code == "EMERG" and len(result.departments) > 1:
            # the specialty that usually takes over after the emergency department
            text = md_escape(result.departments[1].reason_zh if lang == "zh" else result.departments[1].reason_en)
            lines.append(text[:1].upper() + text[1:] + ("。" if lang == "zh" else "."))
    if booking:
        doc = booking["doctor"]
        lines.append(_t(lang, "booked", name=md_escape(doc["name_zh"] if lang == "zh" else doc["name_en"]),
                        title=md_escape(doc["title_zh"] if lang == "zh" else doc["title_en"]),
                        when=format_when(booking["starts_at"], lang), ref=md_escape(booking["ref"])))
        if hold_minutes and not booking.get("confirmed"):
            lines.append(_t(lang, "hold", minutes=hold_minutes))
    elif booking_failed:
        key = "booking_failed_emergency" if result.disposition.is_emergency else "booking_failed"
        lines.append(_t(lang, key))
    elif result.doctors:
        doc = result.doctors[0]
        lines.append(_t(lang, "doctor", name=md_escape(doc.name_zh if lang == "zh" else doc.name_en),
                        title=md_escape(doc.title_zh if lang == "zh" else doc.title_en),
                        when=format_when(doc.starts_at, lang)))
    elif not result.disposition.is_emergency and result.disposition.value != "self_care":
        lines.append(_t(lang, "no_doctor"))
    if result.follow_up_questions:
        lines.append(_t(lang, "questions"))
        lines.extend(f"- {q}" for q in result.follow_up_questions)
    # the department's reason (its supporting conditions in plain words) is on the
    # department line already; "why" quotes the warning signs found in the patient's words
    reasons = [md_escape(r.evidence) for r in result.red_flags]
    if reasons:
        lines.append(_t(lang, "why", reasons=("；" if lang == "zh" else "; ").join(reasons)))
    if result.citations:
        lines.append(_t(lang, "sources"))
        lines.extend(f"- [{md_escape(c.title)}]({safe_url(c.url)}) ({md_escape(c.source)})"
                     if safe_url(c.url) else f"- {md_escape(c.title)} ({md_escape(c.source)})"
                     for c in result.citations)
    if result.disposition.value in ("self_care", "consultation", "consultation_24"):
        lines.append(_t(lang, "safety_net"))
    lines.append(f"_{_t(lang, 'disclaimer')}_")
    return "\n\n".join(lines)


def safe_url(url: str) -> str:
    """``url`` when it is a plain http(s) link without Markdown-breaking characters, else ""."""
    if re.fullmatch(r"https?://[^\s()<>\[\]\"']{1,500}", url or ""):
        return url
    return ""
