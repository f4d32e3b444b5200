"""Deterministic red-flag matching: the safety floor of triage.

The rules live in ``knowledge_base/red_flags.yaml`` (the rule language is documented at
the top of that file); this module loads, validates and compiles them, and matches
them against patient text. A hit means the patient must be told to seek emergency care
now, whatever any model says.

Matching is context-aware so that ordinary phrasing does not over- or under-fire:

* negation follows NegEx (Chapman et al., "A simple algorithm for identifying negated
  findings and diseases in discharge summaries", J Biomed Inform 2001;34:301-10):
  a negation cue governs up to a few tokens after it, until punctuation or a
  conjunction such as "but" / "但是" ("no chest pain but sweating" keeps "sweating");
* history, family history and hypothetical questions follow ConText (Harkema et al.,
  J Biomed Inform 2009;42:839-51): "my father had a stroke", "history of heart attack",
  "我爸爸中风过", "如何预防中风" do not describe the patient now, unless the same clause
  has a current-time cue ("now", "again", "is having", "现在", "刚才");
* a caregiver describing the patient ("my baby has a fever of 39") is the patient's
  own current state and fires.

All patterns use bounded quantifiers only and at most :data:`MAX_SCAN_CHARS` characters
are examined, so matching is linear in the input and a 1 MB message cannot hang it.
"""

from __future__ import annotations

import bisect
import functools
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from assistant.errors import DataError
from assistant.triage.schemas import Disposition

DEFAULT_RULES_PATH = Path(__file__).resolve().parents[2] / "knowledge_base" / "red_flags.yaml"
MAX_SCAN_CHARS = 20_000
"""Only the first this-many characters of a message are examined (screening already
truncates patient input to 4,000 characters; this cap bounds the worst case)."""

_UNBOUNDED = re.compile(r"(?<!\\)(?:[*+]|\{\d*,\})")
_TOKEN = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")
_CLAUSE_BREAK = re.compile(
    r"[,;!?。，；！？\n]|\.(?!\d)|\b(?:but|however|although|though|except|whereas)\b|但是|但|可是|然而|却"
    r"|\band (?=(?:i|im|ive|id|my|he|hes|she|shes|they|theyre|now|then|it|its|his|her|there|theres)\b)"
    r"|(?=然后|结果|接着|而且|并且)"
)
_SENTENCE_BREAK = re.compile(r"[;!?。！？；\n]|\.(?!\d)")
_QUOTES = re.compile(r"[\u2018\u2019\u201b\u2032`\u00b4]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")


# --------------------------------------------------------------------------- models
class TermGroup(BaseModel):
    """One group of alternatives inside a clause (lexicon references already expanded).

    Attributes:
        patterns: regular expressions; any of them is a mention of the group.
        temp_c_at_least: when set, a stated body temperature >= this (°C) also satisfies
            the group; when ``temp_veto`` is true a term mention does not count if every
            stated temperature is below the threshold ("fever of 37.6").
    """

    model_config = ConfigDict(extra="forbid")

    patterns: list[str] = Field(default_factory=list)
    temp_c_at_least: float | None = Field(default=None, ge=34.0, le=43.0)
    temp_veto: bool = True
    _regex: re.Pattern[str] | None = PrivateAttr(default=None)

    @field_validator("patterns")
    @classmethod
    def _safe_patterns(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            if _UNBOUNDED.search(pattern):
                raise ValueError(f"unbounded quantifier in pattern {pattern!r}; use {{0,n}}")
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
        return patterns

    def model_post_init(self, context: Any, /) -> None:
        if not self.patterns and self.temp_c_at_least is None:
            raise ValueError("a group needs patterns or temp_c_at_least")
        if self.patterns:
            self._regex = re.compile("|".join(f"(?:{p})" for p in self.patterns))

    @property
    def regex(self) -> re.Pattern[str] | None:
        """The compiled alternation of :attr:`patterns` (None for a temperature-only group)."""
        return self._regex


class Clause(BaseModel):
    """Fires when every ``all_of`` group has a valid mention and no ``none_of`` group has."""

    model_config = ConfigDict(extra="forbid")

    all_of: list[TermGroup] = Field(min_length=1)
    none_of: list[TermGroup] = Field(default_factory=list)
    scope: Literal["message", "sentence"] = "message"


class AgeRange(BaseModel):
    """Age condition of a rule: ``min_years <= age < max_years``, or a mention of ``terms``."""

    model_config = ConfigDict(extra="forbid")

    min_years: float | None = Field(default=None, ge=0)
    max_years: float | None = Field(default=None, gt=0)
    terms: TermGroup | None = None

    def contains(self, age: float) -> bool:
        """Whether ``age`` (years) is inside the range."""
        return (self.min_years is None or age >= self.min_years) and (
            self.max_years is None or age < self.max_years)


class RedFlagRule(BaseModel):
    """One validated red-flag rule of ``knowledge_base/red_flags.yaml``."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^RF_[A-Z0-9_]+$")
    name_en: str = Field(min_length=3)
    name_zh: str = Field(min_length=2)
    disposition: Disposition
    department: str = Field(pattern=r"^[A-Z]{2,10}$")
    specialty: str | None = Field(default=None, pattern=r"^[A-Z]{2,10}$")
    source: str = Field(min_length=10)
    advice_en: str = Field(min_length=10)
    advice_zh: str = Field(min_length=5)
    sex: Literal["F", "M"] | None = None
    age: AgeRange | None = None
    pregnancy: TermGroup | None = None
    match: list[Clause] = Field(min_length=1)

    @field_validator("disposition")
    @classmethod
    def _emergency_only(cls, value: Disposition) -> Disposition:
        if not value.is_emergency:
            raise ValueError("a red flag must be emergency_ambulance or emergency")
        return value


class RedFlagHit(BaseModel):
    """A rule that fired, with the text span that made it fire."""

    model_config = ConfigDict(frozen=True)

    rule_id: str
    name_en: str
    name_zh: str
    disposition: Disposition
    department: str
    specialty: str | None = None
    source: str
    evidence: str = Field(description="The matched span(s) of the normalised text.")
    advice_en: str
    advice_zh: str


class _Cue(BaseModel):
    model_config = ConfigDict(extra="forbid")

    pattern: str
    max_tokens: int = Field(ge=0, le=20)


class ContextLexicon(BaseModel):
    """Trigger lists of the NegEx / ConText context analysis (``context:`` in the YAML)."""

    model_config = ConfigDict(extra="forbid")

    negation_pre: list[_Cue]  # cue lists: (pattern, max_tokens between cue and mention)
    negation_post: list[_Cue]
    history_post: list[_Cue]
    pseudo: list[str]  # trigger lists: a match anywhere in the clause counts
    history: list[str]
    family: list[str]
    hypothetical: list[str]
    current: list[str]
    _compiled: dict[str, Any] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for name in ("negation_pre", "negation_post", "history_post"):
            cues: list[_Cue] = getattr(self, name)
            self._compiled[name] = [(re.compile(c.pattern), c.max_tokens) for c in cues]
        for name in ("pseudo", "history", "family", "hypothetical", "current"):
            # compiled one by one: a pattern may use a back-reference (\1)
            self._compiled[name] = [re.compile(p) for p in getattr(self, name)]

    def compiled(self, name: str) -> list[Any]:
        """Compiled triggers of one list (``(regex, max_tokens)`` pairs for cue lists)."""
        return self._compiled[name]


class _KnowledgeBase(BaseModel):
    rules: list[RedFlagRule]
    context: ContextLexicon


# --------------------------------------------------------------------------- loading
def load_red_flag_rules(path: str | Path | None = None) -> list[RedFlagRule]:
    """Load, validate and compile the red-flag rules (cached per file and mtime).

    Args:
        path: YAML rule file; defaults to ``knowledge_base/red_flags.yaml``.

    Returns:
        The rules in file order (a new list each call; the rule objects are shared).

    Raises:
        DataError: the file is missing, is not valid YAML, uses an unknown ``@lexicon``
            name, or a rule fails validation (the message names the file and the rule).
    """
    return list(_load_kb(path).rules)


def _load_kb(path: str | Path | None) -> _KnowledgeBase:
    resolved = Path(path) if path is not None else DEFAULT_RULES_PATH
    try:
        mtime = resolved.stat().st_mtime
    except OSError as exc:
        raise DataError(f"{resolved}: red-flag rule file not found ({exc.strerror})") from exc
    return _load_kb_cached(str(resolved.resolve()), mtime)


@functools.lru_cache(maxsize=8)
def _load_kb_cached(path: str, mtime: float) -> _KnowledgeBase:  # mtime: part of the cache key
    try:
        raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read red-flag rules: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise DataError(f"{path}: expected a mapping with a 'rules' list")
    lexicon = raw.get("lexicon") or {}
    context_raw = raw.get("context")
    if context_raw is None and Path(path) != DEFAULT_RULES_PATH.resolve():
        context = _load_kb(None).context
    else:
        try:
            context = ContextLexicon.model_validate(context_raw)
        except ValidationError as exc:
            raise DataError(f"{path}: invalid 'context' section: {exc}") from exc
    rules: list[RedFlagRule] = []
    seen: set[str] = set()
    for index, item in enumerate(raw["rules"]):
        rule_id = item.get("id", f"#{index}") if isinstance(item, dict) else f"#{index}"
        try:
            rule = RedFlagRule.model_validate(_expand_rule(item, lexicon))
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: rule {rule_id}: {exc}") from exc
        if rule.id in seen:
            raise DataError(f"{path}: duplicate rule id {rule.id}")
        seen.add(rule.id)
        rules.append(rule)
    return _KnowledgeBase(rules=rules, context=context)


def _expand_patterns(items: Any, lexicon: dict[str, Any], stack: tuple[str, ...] = ()) -> list[str]:
    """Expand ``"@name"`` references (recursively) into plain patterns."""
    if isinstance(items, str):
        items = [items]
    if not isinstance(items, list):
        raise TypeError(f"expected a pattern or a list of patterns, got {items!r}")
    out: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise TypeError(f"expected a pattern string, got {item!r}")
        if item.startswith("@"):
            name = item[1:]
            if name not in lexicon:
                raise KeyError(f"unknown lexicon entry {item}")
            if name in stack:
                raise ValueError(f"circular lexicon reference {' -> '.join((*stack, name))}")
            out.extend(_expand_patterns(lexicon[name], lexicon, (*stack, name)))
        else:
            out.append(item)
    return out


def _expand_group(raw: Any, lexicon: dict[str, Any]) -> dict[str, Any]:
    if isinstance(raw, dict):
        group = {k: v for k, v in raw.items() if k != "terms"}
        return {**group, "patterns": _expand_patterns(raw.get("terms", []), lexicon)}
    return {"patterns": _expand_patterns(raw, lexicon)}


def _expand_rule(item: Any, lexicon: dict[str, Any]) -> dict[str, Any]:
    if not isinstance(item, dict):
        raise TypeError("a rule must be a mapping")
    rule = dict(item)
    # a clause is a mapping (all_of / none_of / scope) or, shorthand, one group of alternatives
    rule["match"] = [
        {**raw, **{k: [_expand_group(g, lexicon) for g in raw.get(k) or []] for k in ("all_of", "none_of")}}
        if isinstance(raw, dict) else {"all_of": [_expand_group(raw, lexicon)]}
        for raw in rule.get("match") or []
    ]
    if rule.get("pregnancy") is not None:
        rule["pregnancy"] = _expand_group(rule["pregnancy"], lexicon)
    if isinstance(rule.get("age"), dict) and rule["age"].get("terms") is not None:
        rule["age"] = {**rule["age"], "terms": _expand_group(rule["age"]["terms"], lexicon)}
    return rule


# --------------------------------------------------------------------------- text
def normalize_text(text: str) -> str:
    """Normalise patient text into the form the rule patterns are written for.

    NFKC (full-width to half-width, "℃" to "°c"), lower case, apostrophes inside words
    dropped ("can't" -> "cant"), hyphens between word characters to spaces, control
    characters removed, whitespace runs collapsed (line breaks kept as sentence ends) and
    spaces between two Chinese characters removed.

    Args:
        text: any text.

    Returns:
        The normalised text (may be shorter or longer than the input).
    """
    text = text.replace("\u00ba", "\u00b0").replace("\u02da", "\u00b0")
    text = unicodedata.normalize("NFKC", text).lower()
    text = _QUOTES.sub("'", text)
    text = re.sub(r"(?<=[a-z])'(?=[a-z])", "", text)
    text = re.sub(r"(?<=\w)[-\u2010\u2011\u2013_](?=\w)", " ", text)
    text = _CONTROL.sub(" ", text)
    text = re.sub(r"[ \t\r\f\v]{1,1000}", " ", text)
    text = re.sub(r" ?\n[\n ]{0,1000}", "\n", text)
    text = re.sub(r"(?<=[\u3400-\u9fff]) (?=[\u3400-\u9fff])", "", text)
    return text.strip()


_ZH_DIGITS = {"零": 0, "一": 1, "二": 2, "两": 2, "三": 3, "四": 4, "五": 5, "六": 6, "七": 7,
              "八": 8, "九": 9}
_EN_NUMBERS = {"a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
               "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12}


def _number(token: str | None) -> float | None:
    """Parse ``"12"``, ``"2.5"``, ``"two"``, ``"两"``, ``"十二"``, ``"三十五"``, ``"半"``."""
    if not token:
        return None
    if token[0].isdigit():
        return float(token) if re.fullmatch(r"\d{1,3}(?:\.\d{1,2})?", token) else None
    if token in _EN_NUMBERS or token == "半":
        return float(_EN_NUMBERS[token]) if token != "半" else 0.5
    tens, sep, units = token.partition("十")
    if sep:
        return float((_ZH_DIGITS.get(tens, 0) if tens else 1) * 10 + _ZH_DIGITS.get(units, 0))
    return float(_ZH_DIGITS[token]) if token in _ZH_DIGITS else None


_UNIT_YEARS = {"day": 1 / 365.25, "week": 7 / 365.25, "wk": 7 / 365.25, "month": 1 / 12,
               "mo": 1 / 12, "mth": 1 / 12, "year": 1.0, "yr": 1.0, "天": 1 / 365.25,
               "周": 7 / 365.25, "星期": 7 / 365.25, "礼拜": 7 / 365.25, "月": 1 / 12, "岁": 1.0}
_ZH_NUM = r"\d{1,3}|[一二两三四五六七八九十]{1,3}|半"
_ZH_KID = r"宝宝|婴儿|孩子|小孩|女儿|儿子|男孩|女孩|小朋友|女婴|男婴|新生儿|娃"
_AGE_PATTERNS = [
    re.compile(r"(?<![\d.])(?P<num>\d{1,2}(?:\.\d)?|an?|one|two|three|four|five|six|seven|eight|nine"
               r"|ten|eleven|twelve) ?(?P<unit>day|week|wk|month|mth|mo|year|yr)s? ?old\b"),
    re.compile(r"\baged? (?P<num>\d{1,3})\b"),
    re.compile(r"(?<![\d.])(?P<num>\d{1,2}) ?(?P<unit>week|wk|month|mth|mo)s? "
               r"(?:baby|infant|son|daughter|boy|girl)\b"),
    re.compile(rf"(?P<num>{_ZH_NUM})(?:个)?(?P<unit>天|周|星期|礼拜|月|岁)(?P<half>半)?"
               rf"(?:大|的(?:{_ZH_KID})|(?:{_ZH_KID}))"),
    re.compile(rf"(?:{_ZH_KID})(?:才|刚|刚刚|只有|今年|现在)?(?P<num>{_ZH_NUM})(?:个)?"
               rf"(?P<unit>天|周|星期|礼拜|月|岁)(?P<half>半)?(?![前来以没都内])"),
    re.compile(rf"出生(?:才|刚)?(?P<num>{_ZH_NUM})(?:个)?(?P<unit>天|周|星期|礼拜|月)"),
    re.compile(rf"(?<![\d.])(?P<num>{_ZH_NUM})岁(?P<half>半)?"),
]
_TEMP_UNIT = re.compile(
    r"(?<![\d.])(3[4-9]|4[0-3])(?:\.(\d{1,2}))? ?(°c|°|摄氏度|度|c\b|celsius|degrees? c(?:elsius)?\b"
    r"|degrees?(?! ?f))([1-9一二三四五六七八九半])?"
)
_TEMP_F = re.compile(r"(?<![\d.])(9[5-9]|10\d|110)(?:\.(\d))? ?(?:°f|°|f\b|fahrenheit|degrees? f)")
_TEMP_CONTEXT = re.compile(
    r"(?:fever|temp|temperature|thermometer|体温|发烧|发热|高烧|烧到|烧|热度)"
    r"[^\d\n]{0,12}?(?<![\d.])(\d{2,3})(?:\.(\d{1,2}))?(?![\d])"
    r"(?! ?(?:hours?|hrs?|days?|minutes?|mins?|weeks?|months?|years?|个|小时|天|分钟|周|次|岁|号|点))"
)
_TEMP_BEFORE = re.compile(r"(?<![\d.])(3[4-9]|4[0-3]|9[5-9]|10\d)(?:\.(\d{1,2}))? ?(?:temp|temperature|fever|的体温|的高烧|的发烧)")
_TEMP_ZH = re.compile(r"(三十[四五六七八九]|四十[一二三]?)度([一二三四五六七八九半])?")


# --------------------------------------------------------------------------- analysis
class _Doc:
    """One normalised message with lazily computed mentions and clause contexts."""

    def __init__(self, text: str, context: ContextLexicon) -> None:
        self.text = normalize_text(text[:MAX_SCAN_CHARS])
        self.ctx = context
        self._clauses = self._spans(_CLAUSE_BREAK)
        self._sentences = self._spans(_SENTENCE_BREAK)
        self._clause_starts = [s for s, _ in self._clauses]
        self._sentence_starts = [s for s, _ in self._sentences]
        self._clause_cache: dict[int, dict[str, Any]] = {}
        self._group_cache: dict[int, list[tuple[int, int]]] = {}
        self._temps: list[tuple[int, int, float]] | None = None

    def _spans(self, breaks: re.Pattern[str]) -> list[tuple[int, int]]:
        cuts = [(m.start(), m.end()) for m in breaks.finditer(self.text)]
        starts, ends = [0] + [e for _, e in cuts], [s for s, _ in cuts] + [len(self.text)]
        return list(zip(starts, ends, strict=True))

    def sentence_of(self, pos: int) -> int:
        return bisect.bisect_right(self._sentence_starts, pos) - 1

    def _clause_context(self, index: int) -> dict[str, Any]:
        if index in self._clause_cache:
            return self._clause_cache[index]
        start, end = self._clauses[index]
        text, ctx = self.text, self.ctx
        pseudo = [m.span() for rx in ctx.compiled("pseudo") for m in rx.finditer(text, start, end)]

        def free(m: re.Match[str]) -> bool:
            return not any(ps <= m.start() < pe for ps, pe in pseudo)

        info: dict[str, Any] = {"span": (start, end)}
        for name in ("negation_pre", "negation_post", "history_post"):
            info[name] = [(m.start(), m.end(), k) for rx, k in ctx.compiled(name)
                          for m in rx.finditer(text, start, end) if free(m)]
        for name in ("history", "family", "hypothetical"):
            info[name] = [m.span() for rx in ctx.compiled(name)
                          for m in rx.finditer(text, start, end) if free(m)]
        info["current"] = any(rx.search(text, start, end) for rx in ctx.compiled("current"))
        self._clause_cache[index] = info
        return info

    def _gap(self, a: int, b: int) -> int:
        return len(_TOKEN.findall(self.text, a, b)) if b > a else 0

    def is_valid(self, start: int, end: int) -> bool:
        """Whether a mention at ``[start, end)`` describes the patient's current state."""
        clause = bisect.bisect_right(self._clause_starts, start) - 1
        info = self._clause_context(clause)
        for cs, ce, max_tokens in info["negation_pre"]:
            if ce <= start and self._gap(ce, start) <= max_tokens:
                return False
        for cs, _ce, max_tokens in info["negation_post"]:
            if cs >= end and self._gap(end, cs) <= max_tokens:
                return False
        if info["current"]:
            return True
        for name in ("history", "family", "hypothetical"):
            if any(ce <= start or cs >= end for cs, ce in info[name]):
                return False
        return not any(cs >= end and self._gap(end, cs) <= k for cs, _ce, k in info["history_post"])

    def term_mentions(self, group: TermGroup) -> list[tuple[int, int]]:
        key = id(group)
        if key not in self._group_cache:
            found: list[tuple[int, int]] = []
            if group.regex is not None:
                for m in group.regex.finditer(self.text):
                    if m.end() > m.start() and self.is_valid(m.start(), m.end()):
                        found.append(m.span())
            self._group_cache[key] = found
        return self._group_cache[key]

    def temperatures(self) -> list[tuple[int, int, float]]:
        """Valid stated body temperatures as ``(start, end, celsius)``."""
        if self._temps is None:
            found: dict[int, tuple[int, int, float]] = {}
            for rx in (_TEMP_UNIT, _TEMP_F, _TEMP_CONTEXT, _TEMP_BEFORE, _TEMP_ZH):
                for m in rx.finditer(self.text):
                    g = m.groups()
                    if rx is _TEMP_ZH:  # 三十八度五
                        value = (_number(g[0]) or 0) + _decimal(None, g[1])
                    else:  # "39度5": the digit after 度 is the decimal
                        value = float(g[0]) + _decimal(g[1], g[3] if rx is _TEMP_UNIT and g[2] == "度" else None)
                    value = (value - 32) * 5 / 9 if value >= 95 else value  # Fahrenheit
                    if 34 <= value <= 43.5:
                        found.setdefault(m.start(1), (m.start(1), m.end(), value))
            self._temps = [t for t in sorted(found.values()) if self.is_valid(t[0], t[1])]
        return self._temps

    def group_mentions(self, group: TermGroup) -> list[tuple[int, int]]:
        """Valid mentions of a group, with the temperature semantics of the rule language."""
        terms = self.term_mentions(group)
        if group.temp_c_at_least is None:
            return terms
        temps = self.temperatures()
        high = [(s, e) for s, e, c in temps if c >= group.temp_c_at_least - 1e-9]
        if high:
            return high + terms
        if temps and group.temp_veto:
            return []
        return terms

    def ages(self) -> list[float]:
        """Ages (years) stated in the text: "6 weeks old", "两个月大", "3岁"."""
        ages: list[float] = []
        for rx in _AGE_PATTERNS:
            for m in rx.finditer(self.text):
                found = m.groupdict()
                number = _number(found["num"])
                unit = found.get("unit") or "year"
                if number is None:
                    continue
                if found.get("half"):
                    number += 0.5
                if unit in ("天", "周", "星期", "礼拜") and self.text[m.end():m.end() + 1] == "了":
                    continue  # "孩子3天了" is a duration, not an age
                ages.append(number * _UNIT_YEARS.get(unit, 1.0))
        return ages


def _decimal(digits: str | None, zh_digit: str | None) -> float:
    if digits:
        return float("0." + digits)
    if zh_digit:
        return 0.5 if zh_digit == "半" else (_number(zh_digit) or 0) / 10
    return 0.0


# --------------------------------------------------------------------------- matching
def _match_clause(clause: Clause, doc: _Doc) -> list[tuple[int, int]] | None:
    groups = [doc.group_mentions(g) for g in clause.all_of]
    if any(not mentions for mentions in groups):
        return None
    vetoes = [m for g in clause.none_of for m in doc.group_mentions(g)]
    if clause.scope == "message":
        return None if vetoes else [mentions[0] for mentions in groups]
    veto_sentences = {doc.sentence_of(s) for s, _ in vetoes}
    by_sentence = [{doc.sentence_of(s): (s, e) for s, e in reversed(mentions)} for mentions in groups]
    for sentence in sorted(set.intersection(*(set(d) for d in by_sentence))):
        if sentence not in veto_sentences:
            return [d[sentence] for d in by_sentence]
    return None


def _age_ok(rule: RedFlagRule, doc: _Doc, age_years: float | None) -> bool:
    assert rule.age is not None
    stated = doc.ages()
    if stated:
        return rule.age.contains(min(stated))
    if age_years is not None:
        return rule.age.contains(age_years)
    return rule.age.terms is not None and bool(doc.group_mentions(rule.age.terms))


_SEX = {"f": "F", "female": "F", "woman": "F", "girl": "F", "女": "F", "w": "F",
        "m": "M", "male": "M", "man": "M", "boy": "M", "男": "M"}


def _evidence(text: str, spans: list[tuple[int, int]]) -> str:
    spans = sorted(set(spans))
    lo, hi = spans[0][0], max(e for _, e in spans)
    if hi - lo <= 160:
        return text[lo:hi]
    return " … ".join(text[s:e] for s, e in spans)[:200]


def match_red_flags(
    text: str,
    *,
    age_years: float | None = None,
    sex: str | None = None,
    pregnant: bool | None = None,
    rules: list[RedFlagRule] | None = None,
) -> list[RedFlagHit]:
    """Find the red flags in one patient message.

    Each rule fires at most once. A mention counts only when it describes the patient's
    current state (see the module docstring: NegEx negation, ConText history / family /
    hypothetical cues). Only the first :data:`MAX_SCAN_CHARS` characters are examined.

    Args:
        text: the patient's message (English, Chinese or mixed); bytes are decoded as
            UTF-8 with replacement.
        age_years: the patient's age when known; an age stated in the text wins.
        sex: ``"F"`` / ``"M"`` (``"female"``, ``"女"`` ... accepted) or None; rules
            restricted to the other sex are skipped.
        pregnant: True when the patient is known to be pregnant (pregnancy rules then
            need no pregnancy words in the text).
        rules: rules to use (default: :func:`load_red_flag_rules`).

    Returns:
        Hits ordered most urgent first (ambulance before emergency), then in rule-file
        order; empty when nothing fired.

    Raises:
        DataError: the default rule file is missing or invalid.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    kb = _load_kb(None)
    active = kb.rules if rules is None else rules
    doc = _Doc(text or "", kb.context)
    if not doc.text:
        return []
    sex_n = _SEX.get(str(sex).strip().lower()) if sex else None
    hits: list[RedFlagHit] = []
    for rule in active:
        if rule.sex is not None and sex_n is not None and sex_n != rule.sex:
            continue
        if rule.pregnancy is not None and (
            sex_n == "M" or (pregnant is not True and not doc.group_mentions(rule.pregnancy))
        ):
            continue
        if rule.age is not None and not _age_ok(rule, doc, age_years):
            continue
        for clause in rule.match:
            spans = _match_clause(clause, doc)
            if spans:
                hits.append(RedFlagHit(
                    rule_id=rule.id, name_en=rule.name_en, name_zh=rule.name_zh,
                    disposition=rule.disposition, department=rule.department,
                    specialty=rule.specialty, source=rule.source,
                    evidence=_evidence(doc.text, spans),
                    advice_en=rule.advice_en, advice_zh=rule.advice_zh,
                ))
                break
    hits.sort(key=lambda h: h.disposition.rank)
    return hits


__all__ = ["DEFAULT_RULES_PATH", "MAX_SCAN_CHARS", "RedFlagHit", "RedFlagRule", "load_red_flag_rules",
           "match_red_flags", "normalize_text"]
