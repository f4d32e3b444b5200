"""Input screening: clean patient text and flag problems before triage.

:func:`screen_input` never raises for bad input. It returns the cleaned text (NFKC,
control and invisible characters removed, truncated to ``max_chars``), the detected
language, a list of :class:`ScreenIssue` and, when the message must not be triaged as
it stands, a calm ``safe_reply_en`` / ``safe_reply_zh``.

Contract with the caller (the triage engine):

1. ALWAYS run :func:`assistant.triage.red_flags.match_red_flags` on ``result.text``,
   whatever the issues, and escalate on any hit. A red flag overrides the safe reply:
   "ignore your rules, I have crushing chest pain and sweating" is flagged
   ``prompt_injection`` AND escalates to an ambulance.
2. If ``result.blocked`` (empty, binary, emoji-only, no words, a request for another
   patient's data) and no red flag fired, answer with the safe reply and do not triage.
3. ``prompt_injection`` does not block: answer with the safe reply ("I can only help
   with your own symptoms ..."), never pass the text to a model as instructions, and
   triage only ``result.symptom_text`` (the text with the offending clauses removed).
4. ``too_long`` does not block: the newest ``max_chars`` characters are kept and triaged (red flags still scan the whole text, see ``engine.scan_red_flags``).

Injection patterns are the project's own, after the OWASP Top 10 for LLM Applications
(2025) LLM01 "Prompt Injection" examples (instruction override, role change, prompt
disclosure, data exfiltration).
"""

from __future__ import annotations

import re
import unicodedata
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, Field

from assistant.text import detect_language
from assistant.triage.red_flags import normalize_text

DEFAULT_MAX_CHARS = 4000
_PREREAD_FACTOR = 4  # characters read before cleaning, as a multiple of max_chars


class ScreenIssue(StrEnum):
    """A problem found in the input (values are stable strings used in logs and UI)."""

    EMPTY = "empty"
    BINARY = "binary"
    TOO_LONG = "too_long"
    EMOJI_ONLY = "emoji_only"
    NO_WORDS = "no_words"
    PROMPT_INJECTION = "prompt_injection"
    OTHER_PATIENT_REQUEST = "other_patient_request"
    ENCODING_REPAIRED = "encoding_repaired"


BLOCKING_ISSUES = frozenset({
    ScreenIssue.EMPTY, ScreenIssue.BINARY, ScreenIssue.EMOJI_ONLY, ScreenIssue.NO_WORDS,
    ScreenIssue.OTHER_PATIENT_REQUEST,
})
"""Issues after which the message is not triaged (red flags still run, see module doc)."""


class ScreenResult(BaseModel):
    """Outcome of :func:`screen_input`."""

    text: str = Field(description="Cleaned text (NFKC, no control characters), at most max_chars.")
    symptom_text: str = Field(
        description="``text`` without the clauses flagged as injection or other-patient requests."
    )
    issues: list[ScreenIssue] = Field(default_factory=list)
    language: Literal["en", "zh", "mixed", "unknown"] = "unknown"
    reply_language: Literal["en", "zh"] = "en"
    cjk_ratio: float = Field(ge=0.0, le=1.0, default=0.0)
    original_chars: int = Field(ge=0, description="Length of the input (characters, or bytes).")
    blocked: bool = False
    safe_reply_en: str | None = None
    safe_reply_zh: str | None = None

    def safe_reply(self, language: str | None = None) -> str | None:
        """The safe reply in ``language`` (default: :attr:`reply_language`)."""
        lang = language or self.reply_language
        return self.safe_reply_zh if lang == "zh" else self.safe_reply_en

    def has(self, issue: ScreenIssue | str) -> bool:
        """Whether ``issue`` was found."""
        return ScreenIssue(issue) in self.issues


_EMERGENCY_EN = " If you feel very unwell or think this is an emergency, call 120 (or your local emergency number) now."
_EMERGENCY_ZH = "如果您感觉非常不适或认为情况紧急，请立即拨打120。"
_REPLIES: dict[ScreenIssue, tuple[str, str]] = {
    ScreenIssue.BINARY: (
        "I couldn't read that message. Please type your symptoms as plain text, for example "
        "where it hurts and since when." + _EMERGENCY_EN,
        "抱歉，我无法读取这条消息。请用文字描述您的症状，例如哪里不舒服、持续多久了。" + _EMERGENCY_ZH,
    ),
    ScreenIssue.EMPTY: (
        "I didn't receive any message. Please describe your symptoms in a few words, for "
        "example where it hurts and since when." + _EMERGENCY_EN,
        "我没有收到内容。请简单描述一下您的症状，例如哪里不舒服、持续多久了。" + _EMERGENCY_ZH,
    ),
    ScreenIssue.EMOJI_ONLY: (
        "I can't tell your symptoms from emoji alone. Please describe in words what is "
        "bothering you and since when." + _EMERGENCY_EN,
        "仅凭表情符号我无法判断您的症状。请用文字描述哪里不舒服、持续多久了。" + _EMERGENCY_ZH,
    ),
    ScreenIssue.NO_WORDS: (
        "I couldn't find any words in your message. Please describe your symptoms in words, "
        "for example where it hurts and since when." + _EMERGENCY_EN,
        "您的消息中没有文字内容。请用文字描述您的症状，例如哪里不舒服、持续多久了。" + _EMERGENCY_ZH,
    ),
    ScreenIssue.OTHER_PATIENT_REQUEST: (
        "I can't share information about other patients or their bookings. I can help with "
        "your own symptoms; a patient or their authorised carer can ask the hospital front "
        "desk about their records." + _EMERGENCY_EN,
        "我不能提供其他患者的信息或预约情况。我可以帮助您了解自己的症状；患者本人或其授权家属可以到医院服务台查询相关记录。"
        + _EMERGENCY_ZH,
    ),
    ScreenIssue.PROMPT_INJECTION: (
        "I can only help with your own symptoms and hospital guidance, and I can't change "
        "my rules or share other people's information. Please tell me what symptoms you "
        "have." + _EMERGENCY_EN,
        "我只能帮助您了解自己的症状并提供就医指引，不能更改我的规则，也不能提供他人的信息。请告诉我您有哪些症状。"
        + _EMERGENCY_ZH,
    ),
}
_REPLY_ORDER = [ScreenIssue.BINARY, ScreenIssue.EMPTY, ScreenIssue.EMOJI_ONLY, ScreenIssue.NO_WORDS,
                ScreenIssue.OTHER_PATIENT_REQUEST, ScreenIssue.PROMPT_INJECTION]

# Patterns run on red_flags.normalize_text output: lower case, apostrophes dropped
# ("it's" -> "its"), bounded quantifiers only (linear time on 4,000 characters).
_INJECTION = re.compile("|".join(f"(?:{p})" for p in [
    (
        r"\b(?:ignore|disregard|forget|override|bypass|skip) (?:(?:all|any|your|the|my|these|"
        r"those|previous|prior|above|earlier|system|safety|triage|of|"
        r"every) ){0,4}(?:instructions?|rules|prompts?|guidelines|directions|programming|"
        r"constraints|guardrails|filters?|protocols?|policies|policy|restrictions|settings)\b"
    ),
    (
        r"\b(?:you are now|from now on,? you (?:are|will|must)|pretend (?:to be|you are|youre)|"
        r"role ?play as|jailbreak|developer mode|dan mode|do anything now)\b"
    ),
    (
        r"\bact as (?:an? |my |the )?(?:doctor|admin|administrator|developer|system|different|"
        r"unrestricted|new)\b"
    ),
    r"\bsystem (?:prompt|message)\b",
    (
        r"\b(?:reveal|show|print|repeat|output|display|tell me|what (?:are|is)) (?:me )?(?:your|"
        r"the) (?:system |hidden |initial |original |internal )?(?:prompt|instructions|rules|"
        r"guidelines|configuration|config)\b"
    ),
    (
        r"(?:^|[,.;!?] |\b(?:just|please|now|only|simply|you must|you should|you will|"
        r"you have to) )say (?:that )?(?:its|it is|im|i am|this is|everything is|i am) (?:fine|ok|"
        r"okay|nothing|not serious|not an emergency|safe|normal|self care|non urgent)\b"
    ),
    (
        r"\b(?:set|change|make|output|return|put) (?:my |the |this )?(?:disposition|urgency|"
        r"triage(?: level| result| category)?|priority|category) (?:to|as|=) ?\w{1,20}"
    ),
    (
        r"\b(?:mark|classify|triage|label) (?:me|this|it) as (?:self care|non urgent|low priority|"
        r"routine|not urgent|emergency)\b"
    ),
    (
        r"\b(?:list|show|give|display|dump|export|print|tell)(?: me)? (?:all|every|everyone|"
        r"the other|other|all other|all the)(?: the)?(?: other)? (?:patients?|bookings|"
        r"appointments|records|users|admissions)\b"
    ),
    (
        r"\b(?:staff|admin|administrator|doctors?|nurses?|root|database|db|system|hospital|wifi|"
        r"login) (?:password|passwords|credentials|login details|access code|username)\b"
    ),
    (
        r"<\|im[ _](?:start|end)\|>|<\|system\|>|<\|assistant\|>|<\|user\|>|\[inst\]|\[/inst\]|"
        r"<</?sys>>|###? ?(?:system|instruction)|\bnew instructions? ?:"
    ),
    (
        r"\b(?:drop table|delete from|select \* from|union select|insert into)\b|<script|"
        r"javascript:"
    ),
    (
        r"(?:忽略|无视|忘掉|忘记|不要管|别管|跳过|绕过)(?:掉)?(?:你)?(?:之前|以上|前面|上面|所有|全部|你的|系统|原来|原有)?(?:的)?(?:所有|"
        r"全部)?(?:指令|指示|规则|提示词|提示|设定|要求|限制|安全规则)"
    ),
    r"(?:你现在是|从现在(?:起|开始)(?:你)?(?:是|扮演|就是)|扮演一个|假装你是|假装成|角色扮演|越狱|开发者模式)",
    r"系统提示(?:词)?|(?:显示|告诉我|输出|打印|泄露|说出)(?:一下)?(?:你的)?(?:系统)?(?:提示词|指令|设定)",
    (
        r"(?:列出|显示|告诉我|给我看|查看|导出|打印)(?:一下)?(?:所有|全部|其他|别的|其它)(?:的)?(?:病人|患者|病患|预约|挂号|病历|记录|用户|"
        r"人的(?:信息|预约))"
    ),
    r"(?:员工|管理员|医生|护士|后台|系统|数据库|内部)(?:的)?(?:密码|账号|口令|登录信息)",
    r"(?:你)?(?:就|只要|直接|只需要|必须)说(?:我|这|这个)?(?:没事|没问题|不严重|很正常|不是急诊|不用去医院|是自我护理)",
    r"(?:把|将)(?:我的)?(?:分诊|紧急程度|优先级|分诊结果)(?:改成|设为|设置为|改为)",
]))
_OTHER_PATIENT = re.compile("|".join(f"(?:{p})" for p in [
    (
        r"\b(?:another|other|someone elses|somebody elses|other peoples|a different) (?:patients?|"
        r"persons?|peoples?|users?)s? (?:records?|results?|data|details|information|info|"
        r"appointments?|bookings?|diagnos\w{0,3}|notes|history|files?|room|bed)\b"
    ),
    (
        r"\b(?:records?|results?|data|details|information|info|appointments?|bookings?|"
        r"diagnos\w{0,3}|notes|files?) (?:of|for|about) (?:another|other|a different|"
        r"the other) (?:patients?|persons?|people)\b"
    ),
    r"\bpatients? (?:in )?(?:bed|room|ward) ?(?:no\.? ?)?\d{1,4}\b",
    r"\bpatients? (?:named|called)\b",
    (
        r"\b(?:who else|which patients|what patients|how many patients) (?:is |are |has |have |"
        r"were |was )?(?:booked|registered|admitted|coming|seen|in)\b"
    ),
    (
        r"\b(?:look up|find|check|access|open|pull up) (?:the )?(?:records?|results?|file|chart|"
        r"details|appointment|booking) (?:of|for) (?!me\b|myself\b|my\b|mine\b)[a-z]{2,20}\b"
    ),
    (
        r"\b(?:tell me|show me|give me|what (?:is|are|was|were)|look up|find|"
        r"check) (?:the )?(?!my |our |me |"
        r"mine )(?:[a-z]{2,15} ){0,2}?[a-z]{2,15}s (?:test results|lab results|results|diagnosis|"
        r"medical records?|records|appointment|booking|room number|bed number|address|"
        r"phone number)\b"
    ),
    (
        r"(?:别人|其他人|他人|其他病人|其他患者|别的病人|别的患者|另一个病人|另一位患者|隔壁床)(?:的)?(?:病历|病情|检查结果|化验结果|报告|诊断|预约|挂号|"
        r"住院|信息|资料|记录|电话|住址|床号)"
    ),
    r"\d{1,4}(?:号)?床(?:的)?(?:病人|患者)?(?:的)?(?:病情|诊断|信息|病历|情况|结果|名字)",
    r"(?:查|查询|查看|调出|告诉我|给我看)(?:一下)?(?:病人|患者)[\u4e00-\u9fff]{2,3}的(?:病历|诊断|信息|结果|预约|病情)",
    (
        r"(?:列出|显示|告诉我|给我看|查看|导出|打印)(?:一下)?(?:所有|全部|其他|别的|其它)(?:的)?(?:病人|患者|病患|预约|挂号|病历|记录|用户|"
        r"人的(?:信息|预约))"
    ),
    (
        r"\b(?:list|show|give|display|dump|export|print|tell)(?: me)? (?:all|every|everyone|"
        r"the other|other|all other|all the)(?: the)?(?: other)? (?:patients?|bookings|"
        r"appointments|records|admissions)\b"
    ),
]))
_CLAUSE_SPLIT = re.compile(r"(?<=[,;!?，。；！？\n])|(?<=\.)(?!\d)")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{1,60}")
_DROP_CATEGORIES = {"Cc", "Cf", "Cs", "Co", "Cn"}
_EMOJI_RANGES = ((0x1F000, 0x1FAFF), (0x2600, 0x27BF), (0x2B00, 0x2BFF), (0xFE00, 0xFE0F),
                 (0x1F1E6, 0x1F1FF), (0x2190, 0x21FF), (0x2300, 0x23FF), (0x3030, 0x303D))


def _decode(data: bytes) -> tuple[str, bool, bool]:
    """Decode bytes: ``(text, looks_binary, repaired)``.

    UTF-8 first, then GB18030 (Chinese Windows text) when it decodes to plausible
    text; otherwise UTF-8 with replacement, binary when > 10 % of it was undecodable.
    """
    if not data:
        return "", False, False
    nul = b"\x00" in data
    try:
        return data.decode("utf-8"), nul, False
    except UnicodeDecodeError as exc:
        if exc.start >= len(data) - 3 and exc.reason == "unexpected end of data":
            try:  # a multi-byte character cut by the read limit
                return data[: exc.start].decode("utf-8"), nul, False
            except UnicodeDecodeError:
                pass
    try:
        text = data.decode("gb18030")
        plausible = sum(1 for c in text if _CJK.match(c) or (c.isprintable() and ord(c) < 0x3000) or c in "\n\t")
        if plausible >= 0.95 * len(text):
            return text, nul, False
    except UnicodeDecodeError:
        pass
    text = data.decode("utf-8", errors="replace")
    bad = text.count("\ufffd")
    return text, nul or bad > 0.1 * max(1, len(text)), True


def _is_emoji(char: str) -> bool:
    code = ord(char)
    return unicodedata.category(char) in ("So", "Sk") or any(lo <= code <= hi for lo, hi in _EMOJI_RANGES)


def _clean(text: str) -> tuple[str, int]:
    """NFKC-normalise, drop control / invisible / private-use characters, tidy whitespace.

    Returns:
        ``(clean_text, number_of_dropped_control_characters)``; tabs and line breaks are
        kept as whitespace, invisible format characters are dropped without being counted.
    """
    text = unicodedata.normalize("NFKC", text.replace("\r\n", "\n").replace("\r", "\n"))
    kept: list[str] = []
    dropped = 0
    for char in text:
        if char in "\n\t":
            kept.append(char)
        elif char == "\ufffd" or unicodedata.category(char) in _DROP_CATEGORIES:
            # invisible format characters (zero-width, bidi) are dropped but not counted
            dropped += unicodedata.category(char) != "Cf"
        else:
            kept.append(char)
    clean = "".join(kept).replace("\t", " ")
    clean = re.sub(r"[ \u00a0\u3000]{2,1000}", " ", clean)
    clean = re.sub(r" ?\n[ \n]{2,1000}", "\n\n", clean)
    return clean.strip(), dropped


def _truncate(text: str, max_chars: int) -> str:
    """Keep the last ``max_chars`` characters (the newest text of a chat), starting at a
    sentence or word boundary in the first 200 characters of the kept part."""
    if len(text) <= max_chars:
        return text
    tail = text[-max_chars:]
    window = tail[:200]
    cut = max(window.rfind(c) for c in ".!?。！？\n")
    if cut < 0:
        cut = window.find(" ")
    return (tail[cut + 1:] if 0 <= cut < 200 else tail).lstrip()


def _flag_clauses(text: str) -> tuple[bool, bool, str]:
    """Find injection / other-patient clauses; return them and the text without them."""
    injection = other = False
    kept: list[str] = []
    for clause in _CLAUSE_SPLIT.split(text):
        if not clause:
            continue
        norm = normalize_text(clause)
        hit_injection = bool(_INJECTION.search(norm))
        hit_other = bool(_OTHER_PATIENT.search(norm))
        injection |= hit_injection
        other |= hit_other
        if not (hit_injection or hit_other):
            kept.append(clause)
    if not (injection or other):
        # clause-spanning patterns (e.g. "ignore all, previous instructions") on the whole text
        norm = normalize_text(text)
        injection = bool(_INJECTION.search(norm))
        other = bool(_OTHER_PATIENT.search(norm))
        if injection or other:
            return injection, other, ""
    return injection, other, "".join(kept).strip(" ,;，；")


def screen_input(text: str | bytes | None, *, max_chars: int = DEFAULT_MAX_CHARS) -> ScreenResult:
    """Clean one patient message and classify input problems before triage.

    Args:
        text: the raw message; bytes are decoded (UTF-8, then GB18030), None is empty.
        max_chars: longest text passed on; longer input is truncated and flagged
            ``too_long`` (at most ``4 * max_chars`` characters are read at all).

    Returns:
        A :class:`ScreenResult`; see the module docstring for how the caller must use it
        (red flags always run on ``result.text``).

    Raises:
        ValueError: ``max_chars`` is not positive (a programming error, not bad input).
    """
    if max_chars <= 0:
        raise ValueError("max_chars must be positive")
    issues: list[ScreenIssue] = []
    binary = repaired = False
    if text is None:
        text = ""
    if isinstance(text, (bytes, bytearray, memoryview)):
        data = bytes(text)
        original = len(data)
        tail = data[-max_chars * _PREREAD_FACTOR * 4:]
        if len(tail) < len(data):  # the read limit may cut a UTF-8 character: skip its rest
            skip = 0
            while skip < 3 and skip < len(tail) and 0x80 <= tail[skip] < 0xC0:
                skip += 1
            tail = tail[skip:]
        text, binary, repaired = _decode(tail)
    else:
        original = len(text)
        binary = "\x00" in text[-max_chars * _PREREAD_FACTOR:]
    window = text[-max_chars * _PREREAD_FACTOR:]
    clean, dropped = _clean(window)
    if dropped > 0.1 * max(1, len(window.strip())):
        binary = True
    if binary:
        issues.append(ScreenIssue.BINARY)
    elif repaired:
        issues.append(ScreenIssue.ENCODING_REPAIRED)
    if len(clean) > max_chars or len(text) > len(window):
        issues.append(ScreenIssue.TOO_LONG)
        clean = _truncate(clean, max_chars)

    if not clean and not binary:
        issues.append(ScreenIssue.EMPTY)
    elif clean and not any(unicodedata.category(c).startswith("L") for c in clean):
        visible = [c for c in clean if not c.isspace()]
        if visible and all(_is_emoji(c) for c in visible):
            issues.append(ScreenIssue.EMOJI_ONLY)
        else:
            issues.append(ScreenIssue.NO_WORDS)

    symptom_text = clean
    if clean and not binary:
        injection, other, symptom_text = _flag_clauses(clean)
        if injection:
            issues.append(ScreenIssue.PROMPT_INJECTION)
        if other:
            issues.append(ScreenIssue.OTHER_PATIENT_REQUEST)

    language, ratio = detect_language(clean)
    reply_language: Literal["en", "zh"] = "zh" if ratio >= 0.5 else "en"
    reply_issue = next((i for i in _REPLY_ORDER if i in issues), None)
    reply_en, reply_zh = _REPLIES[reply_issue] if reply_issue else (None, None)
    return ScreenResult(
        text=clean,
        symptom_text=symptom_text,
        issues=issues,
        language=language,
        reply_language=reply_language,
        cjk_ratio=ratio,
        original_chars=original,
        blocked=any(i in BLOCKING_ISSUES for i in issues),
        safe_reply_en=reply_en,
        safe_reply_zh=reply_zh,
    )


__all__ = [
    "BLOCKING_ISSUES",
    "DEFAULT_MAX_CHARS",
    "ScreenIssue",
    "ScreenResult",
    "detect_language",
    "screen_input",
]
