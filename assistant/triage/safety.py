"""Checks on model-written text: it may add warmth, never remove urgency or diagnose.

A lead-in is dropped (``None``) when it

* contains reassurance that could lower urgency, a diagnosis claim or medication advice;
* contradicts the disposition: urgency words ("emergency", "call 120", "immediately")
  when the rules did not find an emergency, or delay words ("wait", "tomorrow", "make an
  appointment", "rest at home") when they did;
* says nothing about the patient's complaint: it must share a content word (English,
  stop words and generic sympathy words removed, 4-letter stems) or a Chinese character
  bigram (generic bigrams removed) with the complaint or its coded complaint labels.
  This rejects fluent noise such as the 135M model's Chinese emergency lead-in
  "你可以提到这样的说法！" ("You can mention such a statement!");
* does not acknowledge how the patient feels (no "sorry", "must be hard", "抱歉",
  "难受" ...: the one thing a lead-in is for), or speaks about "the patient" instead of
  to them (the 135M model's "说明：胸口压榨是一个可能性过的争议。" names the complaint
  and is still noise);
* is in the wrong language, holds a link, or is too long.

Patterns are the project's own, informed by the WHO guidance on large multi-modal models
in health (2024: no autonomous diagnosis, no discouraging care-seeking).

The lead-in can be streamed (:func:`stream_lead_in`): text is revealed clause by clause,
each time only after the whole text so far has passed the checks, so a patient never sees
a clause that would fail them; a lead-in that fails later is withdrawn.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from typing import Any

from assistant.domain import TriageResult
from assistant.text import answer_language

log = logging.getLogger(__name__)

MAX_LEAD_IN_CHARS = 200
LEAD_IN_TOKENS = 40
"""Token budget of one lead-in sentence."""
_DOWNGRADE = re.compile(
    r"(not serious|nothing serious|nothing to worry|no need to (worry|see|go)|it'?s (fine|okay|ok|nothing)"
    r"|don'?t worry|no big deal|will pass|just (rest|wait)|stay home|harmless|minor"
    r"|non.?life.?threatening|not life.?threatening|not (an? )?(emergency|urgent)"
    r"|不严重|没什么|没事|不用(担心|看|去)|别担心|不要紧|自己会好|在家休息|不危险|没有危险)",
    re.IGNORECASE,
)
_DIAGNOSIS = re.compile(
    r"(you (have|probably have|might have|are suffering from)|diagnos|it (is|sounds like|looks like) (a |an )?\w+itis"
    r"|sounds like (a|an)\b|this is (a|an)\b|你(得了|患了|是)|诊断|可能是.{0,6}(病|炎|症))",
    re.IGNORECASE,
)
_MEDICATION = re.compile(r"(take|use) (some )?\w*(ibuprofen|paracetamol|aspirin|antibiotic|medicine|pills)|吃.{0,4}药", re.IGNORECASE)
_URGENCY_WORDS = re.compile(
    r"(emergenc|urgent|call 120|call 911|ambulance|immediately|right away|急诊|急救|救护车|立即|立刻|马上)",
    re.IGNORECASE)
_DELAY_WORDS = re.compile(
    r"(\bwait\b|tomorrow|next week|in a few days|appointment|\blater\b|\brest\b|at home|sleep it off|monitor|"
    r"keep an eye|等等|等一等|明天|过几天|改天|预约|挂号|观察|休息|回家)",
    re.IGNORECASE)
_LINK = re.compile(r"(https?:|www\.|\]\(|<\s*\w)", re.IGNORECASE)
_THIRD_PERSON = re.compile(r"(\bthe patient|\bthis patient|该患者|这位患者|病人|患者的)", re.IGNORECASE)
_EMPATHY = re.compile(
    r"(sorry|sorr?y to hear|must (be|hurt|feel)|sounds? (hard|painful|uncomfortable|difficult|worrying|frightening|"
    r"scary|awful|tough|distressing)|that'?s (hard|difficult|tough|worrying)|understand|unpleasant|"
    r"抱歉|难受|辛苦|理解|心疼|痛苦|遗憾|不好受|不舒服)",
    re.IGNORECASE)

# words that say nothing about this patient's complaint (stop words, generic sympathy)
_EN_GENERIC = frozenset("""
a about above after again all also am an and any are as at be because been before being below but by can
could did do does doing done down during each few for from further had has have having he her here hers
him his how i if in into is it its itself just let me more most my no nor not now of off on once only or
other our out over own same she should so some such than that the their them then there these they this
those through to too under until up very was we were what when where which while who whom why will with
would you your yours yourself im i'm you're youre it's that's dont don't can't cannot
sorry hear heard feel feeling feels felt unwell well sick ill understand understandable concern concerned
concerning worry worried help helping glad thank thanks please know sounds sound must really difficult
hard tough uncomfortable discomfort symptom symptoms problem problems issue issues condition health
mention mentioned statement said say saying tell told describe described experience experiencing going
get getting got take taking care doctor doctors hospital nurse advice below above follow following
information let's lets make sure right thing things way day today time bit little lot much many kind
hope hoping wish better best good bad poor dear friend patient person someone something anything
""".split())
_ZH_GENERIC = frozenset("""
可以 这样 那样 我们 你们 您的 你的 我的 感到 感觉 觉得 有点 一下 没有 现在 已经 非常 什么 可能 如果 因为
所以 需要 希望 不舒 舒服 难受 身体 医生 医院 理解 抱歉 遗憾 担心 关心 听到 知道 一些 这个 那个 这些 那些 说法
提到 你可 您可 以下 下面 建议 情况 问题 症状 告诉 描述 请您 请你 您好 你好 谢谢 不过 但是
而且 还是 或者 就是 真的 一定 应该 可能 出现 发生 时候 的话 一点 有些 很多 很快 好的 好好 尽快 帮助 帮您 为您
""".split())
_EN_WORD = re.compile(r"[a-z][a-z']+")
_CJK_RUN = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff]+")


def _en_stems(text: str) -> set[str]:
    words = (w.strip("'") for w in _EN_WORD.findall(text.lower()))
    return {w[:4] for w in words if len(w) >= 3 and w not in _EN_GENERIC}


def _zh_bigrams(text: str) -> set[str]:
    grams = {run[i:i + 2] for run in _CJK_RUN.findall(text) for i in range(len(run) - 1)}
    return grams - _ZH_GENERIC


def complaint_terms(complaint: str, result: TriageResult) -> tuple[set[str], set[str]]:
    """Content terms of the complaint: ``(English 4-letter stems, Chinese bigrams)`` of the
    complaint text (first 2,000 characters) and of its coded complaint labels and evidence
    (:attr:`TriageResult.complaint_codes`, NCHS reason-for-visit codes)."""
    parts = [complaint[:2000]]
    for c in result.complaint_codes:
        parts += [c.label_en, c.label_zh, c.evidence]
    text = "\n".join(p for p in parts if p)
    return _en_stems(text), _zh_bigrams(text)


def mentions_complaint(text: str, complaint: str, result: TriageResult) -> bool:
    """Whether ``text`` shares a content word (English stem) or a Chinese bigram with the
    complaint or its coded labels; generic sympathy words do not count."""
    stems, grams = complaint_terms(complaint, result)
    return bool(_en_stems(text) & stems) or bool(_zh_bigrams(text) & grams)


def _check_partial(text: str, result: TriageResult) -> tuple[bool, str]:
    """The checks that any prefix of an acceptable lead-in also passes."""
    if len(text) > MAX_LEAD_IN_CHARS:
        return False, "too long"
    if _LINK.search(text):
        return False, "link or markup"
    if _THIRD_PERSON.search(text):
        return False, "speaks about the patient, not to them"
    if _DOWNGRADE.search(text):
        return False, "reassurance that may lower urgency"
    if _DIAGNOSIS.search(text):
        return False, "diagnosis claim"
    if _MEDICATION.search(text):
        return False, "medication advice"
    if not result.disposition.is_emergency and _URGENCY_WORDS.search(text):
        return False, "urgency statement not from the rules"
    if result.disposition.is_emergency and _DELAY_WORDS.search(text):
        return False, "delay advice contradicts an emergency"
    return True, "ok"


def check_lead_in(text: str, result: TriageResult, complaint: str = "") -> tuple[bool, str]:
    """Return ``(ok, reason)`` for a candidate lead-in sentence.

    Args:
        text: the candidate (one sentence).
        result: the deterministic triage result it would open (disposition, language,
            coded complaint).
        complaint: the patient's text (the coded complaint labels and evidence are used
            too, so it may be empty).

    Returns:
        ``(True, "ok")`` or ``(False, reason)``; reasons are fixed phrases (safe to log).
    """
    stripped = text.strip()
    if not stripped:
        return False, "empty"
    ok, reason = _check_partial(stripped, result)
    if not ok:
        return ok, reason
    if answer_language(stripped, result.language) != result.language:
        return False, "wrong language"
    if not mentions_complaint(stripped, complaint, result):
        return False, "says nothing about the complaint"
    if not _EMPATHY.search(stripped):
        return False, "no acknowledgement of how the patient feels"
    return True, "ok"


def lead_in_messages(complaint: str, result: TriageResult) -> tuple[list[dict[str, str]], str]:
    """The chat messages asking for a lead-in (about the newest 500 characters of the
    complaint), and the prompt's ``name@version``."""
    from assistant.prompts import load_prompt

    prompt = load_prompt("lead_in")
    return [
        {"role": "system", "content": prompt.render("system", language=result.language)},
        {"role": "user", "content": prompt.render("user", complaint=complaint[-500:])},
    ], prompt.ref


def first_sentence(text: str) -> str:
    """The first sentence of ``text`` (up to and including . ! ? 。！？), at most
    :data:`MAX_LEAD_IN_CHARS` + 1 characters (so an over-long one still fails the check)."""
    return re.split(r"(?<=[.!?。！？])\s*", str(text).strip())[0][:MAX_LEAD_IN_CHARS + 1]


def write_lead_in(backend: Any, complaint: str, result: TriageResult) -> str | None:
    """Ask the model for a one-sentence lead-in; return it only if it passes the checks."""
    messages, ref = lead_in_messages(complaint, result)
    try:
        text = backend.generate(messages, max_new_tokens=LEAD_IN_TOKENS)
    except Exception as exc:  # noqa: BLE001 - the lead-in is optional
        log.warning("lead-in generation failed: %s", type(exc).__name__)
        return None
    sentence = first_sentence(text)
    ok, reason = check_lead_in(sentence, result, complaint)
    if not ok:
        log.info("lead-in dropped (%s) prompt=%s", reason, ref)
        return None
    return sentence


_CLAUSE_END = re.compile(r"[,;:.!?，；：。！？、]")
_SENTENCE_END = re.compile(r"[.!?。！？]")


def stream_lead_in(pieces: Iterator[str], complaint: str, result: TriageResult) -> Iterator[str]:
    """Check a streamed lead-in as it arrives; yield what the patient may see.

    Args:
        pieces: the model's text pieces (``ChatBackend.stream``).
        complaint: the patient's text; result: the deterministic triage result.

    Yields:
        The visible lead-in so far (cumulative text), grown one clause at a time, each
        time only after the whole text so far passed the checks (the complaint-overlap
        and language checks as soon as the clause is complete). The last value is the
        final lead-in, or ``""`` when it was dropped (a value already shown is then
        withdrawn). Stops reading ``pieces`` at the end of the first sentence.

    Raises:
        Nothing from the checks; exceptions of ``pieces`` propagate (the caller drops
        the lead-in).
    """
    buffer, shown, dropped = "", "", False
    for piece in pieces:
        buffer += str(piece)
        if len(buffer.lstrip()) > MAX_LEAD_IN_CHARS + 40:
            break
        end = _SENTENCE_END.search(buffer.lstrip())
        if end is not None:
            buffer = buffer.lstrip()[: end.end()]
            break
        cut = max((m.end() for m in _CLAUSE_END.finditer(buffer)), default=0)
        candidate = buffer[:cut].strip()
        if not candidate or candidate == shown:
            continue
        ok, reason = _check_partial(candidate, result)
        if not ok:
            log.info("streamed lead-in dropped (%s)", reason)
            dropped = True
            break
        if check_lead_in(candidate, result, complaint)[0]:
            shown = candidate
            yield shown
    final = first_sentence(buffer) if not dropped else ""
    ok, reason = check_lead_in(final, result, complaint) if final else (False, "dropped")
    if not ok:
        if final:
            log.info("streamed lead-in dropped (%s)", reason)
        yield ""
        return
    yield final
