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
* a ConText trigger governs only the phrase it attaches to: mentions in its own clause
  (clauses also end at " - " dashes and ellipses) within ``context.window`` tokens, in
  its direction ("history of [X]" looks forward, "[X] runs in the family" backward);
  current-episode phrases ("previous night", "unlike previous headaches", "the night
  before", "和以前不一样", "从来没这么痛过") are pseudo-triggers, and "this time" /
  "这次" are current-time cues;
* a caregiver describing the patient ("my baby has a fever of 39") is the patient's
  own current state and fires.

Rules match the canonical form of the text (:func:`canonical_text`), which tolerates
variants as a class rather than one phrase at a time: English inside Chinese gets spaces
around it ("我chest很痛"), separators inside a phrase are dropped ("chest/pain",
"胸 / 口痛"), and English typos one edit from a key word of the lexicon are corrected
("chset", "crushng", "breathng"; non-word errors only: common English words listed in
``fuzzy.protect`` are never changed). Chinese patterns allow a bounded gap between body
site and complaint (``%ZGAP%``: "胸口[压榨样]疼痛"), which never crosses punctuation or a
negation character. :func:`affirmed_spans` keeps working on :func:`normalize_text`
output, so its offsets stay those of ``normalize_text(text)``.

All patterns use bounded quantifiers only and at most :data:`MAX_SCAN_CHARS` characters
are examined, so matching is linear in the input and a 1 MB message cannot hang it.
"""

from __future__ import annotations

import bisect
import contextvars
import dataclasses
import functools
import re
import unicodedata
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, field_validator

from assistant.cache import RegexStore, content_key
from assistant.domain import Disposition
from assistant.errors import DataError
from assistant.paths import KNOWLEDGE_BASE_DIR, read_yaml
from assistant.triage.vitals import celsius

DEFAULT_RULES_PATH = KNOWLEDGE_BASE_DIR / "red_flags.yaml"
MAX_SCAN_CHARS = 20_000
"""Only the first this-many characters of a message are examined (screening already
truncates patient input to 4,000 characters; this cap bounds the worst case)."""

_UNBOUNDED = re.compile(r"(?<!\\)(?:[*+]|\{\d*,\})")
_TOKEN = re.compile(r"[a-z0-9]+|[\u3400-\u9fff]")
_CLAUSE_BREAK = re.compile(
    r"[,;!?。，；！？\n]|\.(?!\d)|\b(?:but|however|although|though|except|whereas)\b|但是|但|可是|然而|却"
    r"|\band (?=(?:i|im|ive|id|my|he|hes|she|shes|they|theyre|now|then|it|its|his|her|there|theres)\b)"
    r"|(?=然后|结果|接着|而且|并且)"
    r"| [-\u2013\u2014~]{1,3} |\u2014{1,2}|\u2026{1,3}|\.{2,3}"  # dashes and ellipses between phrases
)
_SENTENCE_BREAK = re.compile(r"[;!?。！？；\n]|\.(?!\d)")
_QUOTES = re.compile(r"[\u2018\u2019\u201b\u2032`\u00b4]")
_CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2060-\u2064\ufeff]")
_REGEX_STORE: contextvars.ContextVar[RegexStore | None] = contextvars.ContextVar("_REGEX_STORE", default=None)


def _compile(pattern: str) -> re.Pattern[str]:
    """``re.compile(pattern)``, through the rule file's compiled-pattern cache while a
    rule file is being loaded (see :class:`assistant.cache.RegexStore`)."""
    store = _REGEX_STORE.get()
    return re.compile(pattern) if store is None else store.compile(pattern)


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
        return patterns  # compiled once, as one alternation, in model_post_init

    def model_post_init(self, context: Any, /) -> None:
        if not self.patterns and self.temp_c_at_least is None:
            raise ValueError("a group needs patterns or temp_c_at_least")
        if self.patterns:
            try:
                self._regex = _compile("|".join(f"(?:{p})" for p in self.patterns))
            except re.error:  # name the bad pattern (compiling each one costs time only here)
                for pattern in self.patterns:
                    try:
                        re.compile(pattern)
                    except re.error as exc:
                        raise ValueError(f"bad regex {pattern!r}: {exc}") from exc
                raise

    @property
    def regex(self) -> re.Pattern[str] | None:
        """The compiled alternation of :attr:`patterns` (None for a temperature-only group)."""
        return self._regex


class Clause(BaseModel):
    """Fires when every ``all_of`` group has a valid mention and no ``none_of`` group has.

    ``unless_known`` groups name a known long-term condition under which the rule's
    guideline does not call for emergency care (NHS.uk: a seizure in someone with known
    epilepsy that stops by itself is not a 999 call). Any mention that is not negated
    vetoes the clause, anywhere in the message, current or past ("我从小就患癫痫",
    "he has had epilepsy for years"): a diagnosis is usually told as history. A rule
    that uses it needs a second clause with the guideline's escalation criteria.
    """

    model_config = ConfigDict(extra="forbid")

    all_of: list[TermGroup] = Field(min_length=1)
    none_of: list[TermGroup] = Field(default_factory=list)
    unless_known: list[TermGroup] = Field(default_factory=list)
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


class _ScopedCue(BaseModel):
    """A ConText trigger with its direction and window (Harkema et al. 2009, section 2.2).

    ``direction``: ``forward`` governs mentions after the cue ("history of X"),
    ``backward`` mentions before it ("X ... runs in the family"), ``both`` either side.
    ``max_tokens``: the most tokens between cue and mention (None: the list's default).
    """

    model_config = ConfigDict(extra="forbid")

    pattern: str
    direction: Literal["forward", "backward", "both"] = "both"
    max_tokens: int | None = Field(default=None, ge=0, le=40)


class ContextLexicon(BaseModel):
    """Trigger lists of the NegEx / ConText context analysis (``context:`` in the YAML).

    ``history`` / ``family`` / ``hypothetical`` entries are a pattern (bidirectional) or a
    mapping ``{pattern, direction, max_tokens}``; a trigger governs a mention only inside
    its own clause and within ``window[list]`` tokens of it (ConText scopes a trigger to
    the phrase it attaches to, not to the whole sentence).
    """

    model_config = ConfigDict(extra="forbid")

    negation_pre: list[_Cue]  # cue lists: (pattern, max_tokens between cue and mention)
    negation_post: list[_Cue]
    history_post: list[_Cue]
    pseudo: list[str]  # trigger lists: a match anywhere in the clause counts
    history: list[str | _ScopedCue]
    family: list[str | _ScopedCue]
    hypothetical: list[str | _ScopedCue]
    current: list[str]
    window: dict[Literal["history", "family", "hypothetical"], int] = Field(
        default_factory=lambda: {"history": 8, "family": 10, "hypothetical": 14})
    _compiled: dict[str, Any] = PrivateAttr(default_factory=dict)

    def model_post_init(self, context: Any, /) -> None:
        for name in ("negation_pre", "negation_post", "history_post"):
            cues: list[_Cue] = getattr(self, name)
            self._compiled[name] = [(_compile(c.pattern), c.max_tokens) for c in cues]
        for name in ("pseudo", "current"):
            # compiled one by one: a pattern may use a back-reference (\1)
            self._compiled[name] = [_compile(p) for p in getattr(self, name)]
        for name in ("history", "family", "hypothetical"):
            default = self.window.get(name, 10)  # type: ignore[call-overload]
            scoped = [c if isinstance(c, _ScopedCue) else _ScopedCue(pattern=c)
                      for c in getattr(self, name)]
            self._compiled[name] = [
                (_compile(c.pattern), c.direction, default if c.max_tokens is None else c.max_tokens)
                for c in scoped]

    def compiled(self, name: str) -> list[Any]:
        """Compiled triggers of one list (``(regex, max_tokens)`` pairs for cue lists,
        ``(regex, direction, max_tokens)`` for history / family / hypothetical)."""
        return self._compiled[name]


class FuzzyLexicon(BaseModel):
    """Typo tolerance for English key words (``fuzzy:`` in the YAML).

    Attributes:
        min_length: tokens shorter than this are never corrected.
        protect: real English words that are one edit away from a key word and must never
            be "corrected" into it ("sweet" is not "sweat", "strike" is not "stroke").
        extra_words: key words to correct towards that the patterns spell only as stems.
    """

    model_config = ConfigDict(extra="forbid")

    min_length: int = Field(default=4, ge=3, le=8)
    protect: list[str] = Field(default_factory=list)
    extra_words: list[str] = Field(default_factory=list)

    @field_validator("protect", "extra_words", mode="before")
    @classmethod
    def _split(cls, value: Any) -> Any:
        # a long word list may be written as one folded string of space-separated words
        return value.split() if isinstance(value, str) else value


@dataclasses.dataclass(frozen=True)
class _KnowledgeBase:
    rules: list[RedFlagRule]
    context: ContextLexicon
    speller: _Speller | None = None


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
    # the rules' regexes (and the typo lexicon's key words) go through an on-disk cache
    # keyed on the content of the rule file and of this module (a cold start otherwise
    # spends ~0.15-0.2 s in re's pure-Python compiler and in _key_words)
    try:
        store: RegexStore | None = RegexStore(path, content_key(Path(path), Path(__file__)))
    except Exception:  # noqa: BLE001 - no cache: compile as usual
        store = None
    token = _REGEX_STORE.set(store)
    try:
        kb = _build_kb(path)
    finally:
        _REGEX_STORE.reset(token)
    if store is not None:
        store.save()
    return kb


def _build_kb(path: str) -> _KnowledgeBase:
    try:
        raw = read_yaml(Path(path))
    except (OSError, yaml.YAMLError) as exc:
        raise DataError(f"{path}: cannot read red-flag rules: {exc}") from exc
    if not isinstance(raw, dict) or not isinstance(raw.get("rules"), list):
        raise DataError(f"{path}: expected a mapping with a 'rules' list")
    macros = raw.get("macros") or {}
    try:
        lexicon = _apply_macros(raw.get("lexicon") or {}, macros)
    except KeyError as exc:
        raise DataError(f"{path}: lexicon: {exc}") from exc
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
            rule = RedFlagRule.model_validate(_expand_rule(_apply_macros(item, macros), lexicon))
        except (ValidationError, ValueError, KeyError, TypeError) as exc:
            raise DataError(f"{path}: rule {rule_id}: {exc}") from exc
        if rule.id in seen:
            raise DataError(f"{path}: duplicate rule id {rule.id}")
        seen.add(rule.id)
        rules.append(rule)
    fuzzy_raw = raw.get("fuzzy")
    if fuzzy_raw is None and Path(path) != DEFAULT_RULES_PATH.resolve():
        fuzzy = _load_kb(None).speller.config if _load_kb(None).speller else FuzzyLexicon()
    else:
        try:
            fuzzy = FuzzyLexicon.model_validate(fuzzy_raw or {})
        except ValidationError as exc:
            raise DataError(f"{path}: invalid 'fuzzy' section: {exc}") from exc
    return _KnowledgeBase(rules=rules, context=context,
                          speller=_Speller.build(rules, context, fuzzy))


_MACRO = re.compile(r"%([A-Z][A-Z0-9_]{1,30})%")


def _apply_macros(item: Any, macros: dict[str, str]) -> Any:
    """Replace ``%NAME%`` in every string of ``item`` by ``macros[NAME]`` (a bounded regex
    fragment such as the Chinese gap ``%ZGAP%``); unknown names raise KeyError."""
    if isinstance(item, str):
        def sub(m: re.Match[str]) -> str:
            if m.group(1) not in macros:
                raise KeyError(f"unknown macro %{m.group(1)}%")
            return str(macros[m.group(1)])
        return _MACRO.sub(sub, item)
    if isinstance(item, list):
        return [_apply_macros(x, macros) for x in item]
    if isinstance(item, dict):
        return {k: _apply_macros(v, macros) for k, v in item.items()}
    return item


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
        {**raw, **{k: [_expand_group(g, lexicon) for g in raw.get(k) or []]
                   for k in ("all_of", "none_of", "unless_known")}}
        if isinstance(raw, dict) else {"all_of": [_expand_group(raw, lexicon)]}
        for raw in rule.get("match") or []
    ]
    if rule.get("pregnancy") is not None:
        rule["pregnancy"] = _expand_group(rule["pregnancy"], lexicon)
    if isinstance(rule.get("age"), dict) and rule["age"].get("terms") is not None:
        rule["age"] = {**rule["age"], "terms": _expand_group(rule["age"]["terms"], lexicon)}
    return rule


# --------------------------------------------------------------------------- typos
try:  # C implementation of the optimal-string-alignment distance when installed
    from rapidfuzz.distance import OSA as _RF_OSA
except ImportError:  # pragma: no cover - exercised only without rapidfuzz
    _RF_OSA = None


def _osa(a: str, b: str) -> int:
    """Optimal string alignment distance (Levenshtein plus adjacent transposition)."""
    if _RF_OSA is not None:
        return int(_RF_OSA.distance(a, b))
    prev2: list[int] = []
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i] + [0] * len(b)
        for j, cb in enumerate(b, 1):
            cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb))
            if i > 1 and j > 1 and ca == b[j - 2] and a[i - 2] == cb:
                cur[j] = min(cur[j], prev2[j - 2] + 1)
        prev2, prev = prev, cur
    return prev[-1]


def _deletes(word: str) -> set[str]:
    return {word[:i] + word[i + 1:] for i in range(len(word))}


_ESCAPE = re.compile(r"\\w\{\d{1,2},(\d{1,2})\}|\\[a-zA-Z]")
_RUN = re.compile(r"(?<![a-z\\])([a-z]{3,})(?![a-z])(\x01\d{1,2}|\?)?")


def _key_words_cached(patterns: list[str]) -> tuple[set[str], dict[str, int]]:
    """:func:`_key_words`, through the rule file's on-disk cache while it is loaded."""
    store = _REGEX_STORE.get()
    if store is None:
        return _key_words(patterns)
    return store.memo("key_words", tuple(patterns), lambda: _key_words(patterns))


def _key_words(patterns: list[str]) -> tuple[set[str], dict[str, int]]:
    """Whole English words and word stems that a list of patterns spells out literally.

    ``"\\bchest (?:pain|pains)"`` gives ``chest, pain, pains``; ``"sweat\\w{0,4}"`` gives
    the stem ``sweat`` with up to 4 more letters; ``"hurts?"`` gives ``hurt, hurts``.
    Fragments glued to a character class or group (``recogni[sz]e``) are skipped.
    """
    words: set[str] = set()
    stems: dict[str, int] = {}
    for pattern in patterns:
        src = _ESCAPE.sub(lambda m: "\x01" + m.group(1) if m.group(1) else " ", pattern)
        for m in _RUN.finditer(src):
            run, tail = m.group(1), m.group(2)
            before = src[m.start() - 1] if m.start() else " "
            after = src[m.end():m.end() + 1]
            if before not in " |(:=!\x01>" or after in ("[", "("):
                continue
            if tail and tail.startswith("\x01"):
                stems[run] = max(stems.get(run, 0), int(tail[1:]))
            elif tail == "?":
                words.update((run, run[:-1]))
            else:
                words.add(run)
    return {w for w in words if len(w) >= 3}, stems


class _Speller:
    """Corrects English tokens one edit (OSA: insert, delete, substitute, swap two
    neighbours) away from a key word of the lexicon: "chset" -> "chest", "crushng" ->
    "crushing", "breathng" -> "breathing", "swaeting" -> "sweating".

    Non-word error correction restricted to the rule vocabulary (the symmetric-delete
    candidate lookup of Garbe's SymSpell, verified by the OSA distance): a token is
    left alone when it is a key word, a context cue word, a protected real English
    word (``fuzzy.protect``) or shorter than ``fuzzy.min_length``; four-letter key words
    accept only a swap or a doubled letter ("pian", "painn"). Ties go to the candidate
    closest in length, then alphabetically, so the result is deterministic.
    """

    def __init__(self, words: set[str], stems: dict[str, int], protect: set[str],
                 config: FuzzyLexicon) -> None:
        self.config = config
        self.words = words
        self.stems = stems
        self.protect = protect | words
        self._index: dict[str, set[str]] = {}
        for word in words:
            if len(word) >= 4:
                for key in _deletes(word) | {word}:
                    self._index.setdefault(key, set()).add(word)
        self._stem_index: dict[str, set[str]] = {}
        for stem in stems:
            if len(stem) >= 4:
                for key in _deletes(stem) | {stem}:
                    self._stem_index.setdefault(key, set()).add(stem)
        self._rivals: dict[str, set[str]] | None = None
        self._cache: dict[str, str] = {}

    @classmethod
    def build(cls, rules: list[RedFlagRule], context: ContextLexicon,
              config: FuzzyLexicon) -> _Speller:
        patterns: list[str] = []
        for rule in rules:
            groups = [g for c in rule.match for g in (*c.all_of, *c.none_of)]
            groups += [g for g in (rule.pregnancy, rule.age.terms if rule.age else None) if g]
            patterns += [p for g in groups for p in g.patterns]
        words, stems = _key_words_cached(patterns)
        words |= set(config.extra_words)
        cue_patterns = [c.pattern for name in ("negation_pre", "negation_post", "history_post")
                        for c in getattr(context, name)]
        cue_patterns += list(context.pseudo) + list(context.current)
        cue_patterns += [c if isinstance(c, str) else c.pattern
                         for name in ("history", "family", "hypothetical")
                         for c in getattr(context, name)]
        cue_words, cue_stems = _key_words_cached(cue_patterns)
        return cls(words, stems, set(config.protect) | cue_words | set(cue_stems), config)

    def _known(self, token: str) -> bool:
        if token in self.protect:
            return True
        return any(token[:k] in self.stems and len(token) - k <= self.stems[token[:k]]
                   for k in range(3, len(token) + 1))

    def _allowed(self, token: str, word: str) -> bool:
        if len(word) >= 5:
            return True
        if len(token) == len(word):  # four letters: a swap of two neighbours only
            return sorted(token) == sorted(word)
        return len(token) == len(word) + 1 and any(  # ... or one doubled letter
            token[i] == token[i + 1] and token[:i] + token[i + 1:] == word
            for i in range(len(token) - 1))

    @staticmethod
    def _edit_rank(token: str, word: str) -> int:
        """Likelier typos first: a doubled letter or a swap, then a dropped or an extra
        letter, then a wrong letter ("confussed" -> "confused", not "concussed")."""
        if len(token) == len(word) + 1 and any(
                token[i] == token[i + 1] and token[:i] + token[i + 1:] == word
                for i in range(len(token) - 1)):
            return 0
        if len(token) == len(word):
            return 0 if sorted(token) == sorted(word) else 2
        return 1

    def _real_rival(self, token: str, word: str) -> bool:
        """Whether a protected real word (``fuzzy.protect``, not a key word) is one edit
        from ``token`` by an edit at least as likely as the one to ``word``."""
        if self._rivals is None:  # built on first use (start-up cost stays nil)
            self._rivals = {}
            for real in self.config.protect:
                if len(real) >= 4 and real not in self.words:
                    for key in _deletes(real) | {real}:
                        self._rivals.setdefault(key, set()).add(real)
        rank = self._edit_rank(token, word)
        if rank < 2:  # a dropped, extra, doubled or swapped letter is the likelier typo
            return False
        return any(_osa(token, real) == 1 and self._edit_rank(token, real) <= rank
                   for key in _deletes(token) | {token} for real in self._rivals.get(key, ()))

    def correct(self, token: str) -> str:
        """The corrected token (the token itself when nothing is one edit away, or when
        a real English word is an equally likely reading, see :meth:`_real_rival`)."""
        cached = self._cache.get(token)
        if cached is not None:
            return cached
        result = token
        if len(token) >= self.config.min_length and not self._known(token):
            keys = _deletes(token) | {token}
            found = {w for k in keys for w in self._index.get(k, ())
                     if _osa(token, w) == 1 and self._allowed(token, w)}
            if not found:
                for k in range(4, len(token) + 1):
                    head, rest = token[:k], token[k:]
                    for key in _deletes(head) | {head}:
                        for stem in self._stem_index.get(key, ()):
                            if len(rest) <= self.stems[stem] and _osa(head, stem) == 1:
                                found.add(stem + rest)
            if found:
                best = min(found, key=lambda w: (self._edit_rank(token, w), w))
                # an equally likely edit to a real English word ("scurring": spurring,
                # slurring) makes the typo ambiguous: never guess a red-flag word then
                result = token if self._real_rival(token, best) else best
        if len(self._cache) < 50_000:
            self._cache[token] = result
        return result


def words_needing_protection(words: Any, speller: _Speller | None = None) -> list[str]:
    """The real words among ``words`` that the typo corrector would change: the list to
    keep in ``fuzzy.protect`` (regenerate it from an English word list whenever the
    lexicon gains words; ``tests/test_red_flag_paraphrases.py`` checks it)."""
    speller = speller or _load_kb(None).speller
    if speller is None:
        return []
    return sorted({w for w in words if _WORD.fullmatch(w) and speller.correct(w) != w})


_CJK_LATIN = re.compile(r"(?<=[\u3400-\u9fff])(?=[a-z])|(?<=[a-z])(?=[\u3400-\u9fff])")
_LATIN_SEP = re.compile(r"(?<=[a-z])(?:[/\\|*~·•+=#_]{1,5}|\.{1,3})(?=[a-z])")
_CJK_SEP = re.compile(r"(?<=[\u3400-\u9fff])[ /\\|*~·•_\-]{1,5}(?=[\u3400-\u9fff])")
_WORD = re.compile(r"(?<![a-z])[a-z]{3,30}(?![a-z])")


def canonical_text(text: str, speller: _Speller | None = None) -> str:
    """The form red-flag patterns are matched on: :func:`normalize_text`, then

    * separators inside a Chinese phrase dropped ("胸口 / 痛" -> "胸口痛"),
    * a space between Chinese and Latin letters ("我chest很痛" -> "我 chest 很痛"), so
      English patterns find English words inside Chinese text,
    * "/", "*", "_", "..." between two English letters read as a space ("chest/pain"),
    * English typos one edit from a key word corrected (see :class:`_Speller`).

    Args:
        text: any text.
        speller: the typo corrector (default: the one of the default rule file).

    Returns:
        The canonical text (offsets differ from the input and from ``normalize_text``).
    """
    text = normalize_text(text)
    text = _CJK_SEP.sub("", text)
    text = _CJK_LATIN.sub(" ", text)
    text = _LATIN_SEP.sub(" ", text)
    if speller is None:
        speller = _load_kb(None).speller
    if speller is not None:
        text = _WORD.sub(lambda m: speller.correct(m.group()), text)
    return text


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
    re.compile(r"(?<!\d)(?<!\d\.)(?P<num>\d{1,2}(?:\.\d)?|an?|one|two|three|four|five|six|seven|eight|nine"
               r"|ten|eleven|twelve) ?(?P<unit>day|week|wk|month|mth|mo|year|yr)s? ?old\b"),
    re.compile(r"\baged? (?P<num>\d{1,3})\b"),
    re.compile(r"(?<!\d)(?<!\d\.)(?P<num>\d{1,2}) ?(?P<unit>week|wk|month|mth|mo)s? "
               r"(?:baby|infant|son|daughter|boy|girl)\b"),
    re.compile(rf"(?P<num>{_ZH_NUM})(?:个)?(?P<pre>半)?(?P<unit>天|周|星期|礼拜|月|岁)(?P<half>半)?"
               rf"(?:大|的(?:{_ZH_KID})|(?:{_ZH_KID}))"),
    re.compile(rf"(?:{_ZH_KID})(?:才|刚|刚刚|只有|今年|现在)?(?P<num>{_ZH_NUM})(?:个)?"
               rf"(?P<pre>半)?(?P<unit>天|周|星期|礼拜|月|岁)(?P<half>半)?(?![前来以没都内])"),
    re.compile(rf"出生(?:才|刚)?(?P<num>{_ZH_NUM})(?:个)?(?P<unit>天|周|星期|礼拜|月)"),
    re.compile(rf"(?<!\d)(?<!\d\.)(?P<num>{_ZH_NUM})岁(?P<half>半)?"),
]
_TEMP_UNIT = re.compile(
    r"(?<!\d)(?<!\d\.)(3[4-9]|4[0-3])(?:\.(\d{1,2}))? ?(°c|°|摄氏度|度|c\b|celsius|degrees? c(?:elsius)?\b"
    r"|degrees?(?! ?f))([1-9一二三四五六七八九半])?"
)
_TEMP_F = re.compile(r"(?<!\d)(?<!\d\.)(9[5-9]|10\d|110)(?:\.(\d))? ?(?:°f|°|f\b|fahrenheit|degrees? f)")
_TEMP_CONTEXT = re.compile(
    r"(?:fever|temp|temperature|thermometer|体温|发烧|发热|高烧|烧到|烧|热度)"
    r"[^\d\n]{0,12}?(?<!\d)(?<!\d\.)(\d{2,3})(?:\.(\d{1,2}))?(?![\d])"
    r"(?! ?(?:hours?|hrs?|days?|minutes?|mins?|weeks?|months?|years?|个|小时|天|分钟|周|次|岁|号|点))"
)
_TEMP_BEFORE = re.compile(r"(?<!\d)(?<!\d\.)(3[4-9]|4[0-3]|9[5-9]|10\d)(?:\.(\d{1,2}))? ?(?:temp|temperature|fever|的体温|的高烧|的发烧)")
_TEMP_ZH = re.compile(r"(三十[四五六七八九]|四十[一二三]?)度([一二三四五六七八九半])?")


# --------------------------------------------------------------------------- analysis
class _Doc:
    """One normalised message with lazily computed mentions and clause contexts."""

    def __init__(self, text: str, context: ContextLexicon, speller: _Speller | None = None,
                 *, canonical: bool = True) -> None:
        text = text[:MAX_SCAN_CHARS]
        self.text = canonical_text(text, speller) if canonical else normalize_text(text)
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
            # a cue that overlaps a pseudo-trigger ("not only", "previous night", "never
            # had ... before", "从来没这么痛过") is part of that phrase, not a cue
            return not any(ps < m.end() and m.start() < pe for ps, pe in pseudo)

        info: dict[str, Any] = {"span": (start, end)}
        for name in ("negation_pre", "negation_post", "history_post"):
            info[name] = [(m.start(), m.end(), k) for rx, k in ctx.compiled(name)
                          for m in rx.finditer(text, start, end) if free(m)]
        for name in ("history", "family", "hypothetical"):
            info[name] = [(m.start(), m.end(), direction, k)
                          for rx, direction, k in ctx.compiled(name)
                          for m in rx.finditer(text, start, end) if free(m)]
        info["current"] = any(rx.search(text, start, end) for rx in ctx.compiled("current"))
        self._clause_cache[index] = info
        return info

    def _gap(self, a: int, b: int) -> int:
        return len(_TOKEN.findall(self.text, a, b)) if b > a else 0

    def _context_at(self, start: int) -> dict[str, Any]:
        """The context cues of the clause holding position ``start``."""
        return self._clause_context(bisect.bisect_right(self._clause_starts, start) - 1)

    def is_negated(self, start: int, end: int, info: dict[str, Any] | None = None) -> bool:
        """Whether a NegEx cue governs the mention at ``[start, end)`` (``info``: its
        clause's context when the caller has it)."""
        if info is None:
            info = self._context_at(start)
        for _cs, ce, max_tokens in info["negation_pre"]:
            if ce <= start and self._gap(ce, start) <= max_tokens:
                return True
        return any(cs >= end and self._gap(end, cs) <= max_tokens
                   for cs, _ce, max_tokens in info["negation_post"])

    def is_valid(self, start: int, end: int) -> bool:
        """Whether a mention at ``[start, end)`` describes the patient's current state."""
        info = self._context_at(start)
        if self.is_negated(start, end, info):
            return False
        if info["current"]:
            return True
        for name in ("history", "family", "hypothetical"):
            for cs, ce, direction, k in info[name]:
                if ce <= start and direction != "backward" and self._gap(ce, start) <= k:
                    return False  # "history of [X]", "my father had [X]", "如何预防[X]"
                if cs >= end and direction != "forward" and self._gap(end, cs) <= k:
                    return False  # "[X] 5 years ago", "[X] runs in the family"
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

    def known_mentions(self, group: TermGroup) -> list[tuple[int, int]]:
        """Mentions of a group that are not negated, current or past (a known condition)."""
        if group.regex is None:
            return []
        return [m.span() for m in group.regex.finditer(self.text)
                if m.end() > m.start() and not self.is_negated(m.start(), m.end())]

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
                    value = celsius(value)  # Fahrenheit converted
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
                if found.get("half") or found.get("pre"):  # "三岁半", "一个半月"
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
    if any(doc.known_mentions(g) for g in clause.unless_known):
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
    path: str | Path | None = None,
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
        rules: rules to use (default: those of ``path``).
        path: the rule file whose rules, context lexicon and typo lexicon apply (default
            ``knowledge_base/red_flags.yaml``; the triage engine passes its knowledge base's).

    Returns:
        Hits ordered most urgent first (ambulance before emergency), then in rule-file
        order; empty when nothing fired.

    Raises:
        DataError: the default rule file is missing or invalid.
    """
    if isinstance(text, (bytes, bytearray)):
        text = bytes(text).decode("utf-8", errors="replace")
    kb = _load_kb(path)
    active = kb.rules if rules is None else rules
    doc = _Doc(text or "", kb.context, kb.speller)
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


class ContextDoc:
    """One patient text, normalised once, for repeated affirmed-mention queries.

    The one context matcher of the project (NegEx negation, ConText history / family /
    hypothetical cues, see the module docstring), shared by red flags, urgency and the
    complaint coder so that one sentence is never negated for one and affirmed for
    another.

    Args:
        text: raw patient text; it is normalised with :func:`normalize_text`, so query
            patterns must be written for normalised (lower-case, NFKC) text.

    Raises:
        DataError: the default rule file (which holds the context lexicon) is invalid.
    """

    def __init__(self, text: str) -> None:
        self._doc = _Doc(text or "", _load_kb(None).context, canonical=False)
        self.text: str = self._doc.text

    def affirmed_spans(self, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
        """``(start, end)`` offsets into :attr:`text` of the affirmed mentions of ``pattern``."""
        return [m.span() for m in pattern.finditer(self.text)
                if m.end() > m.start() and self._doc.is_valid(m.start(), m.end())]

    def is_valid(self, start: int, end: int) -> bool:
        """Whether the span ``[start, end)`` of :attr:`text` describes the patient now."""
        return self._doc.is_valid(start, end)


def affirmed_spans(text: str, pattern: re.Pattern[str]) -> list[tuple[int, int]]:
    """Spans of ``pattern`` in ``normalize_text(text)`` that describe the patient now.

    Args:
        text: raw patient text.
        pattern: compiled regular expression with bounded quantifiers, written for
            normalised text.

    Returns:
        ``(start, end)`` offsets into ``normalize_text(text)``; empty when every mention is
        negated, historical, a family member's or hypothetical.

    Raises:
        DataError: the default rule file (which holds the context lexicon) is invalid.
    """
    return ContextDoc(text).affirmed_spans(pattern)


def is_affirmed(text: str, pattern: re.Pattern[str]) -> bool:
    """Whether ``pattern`` has at least one affirmed mention in ``text`` (see :func:`affirmed_spans`)."""
    return bool(affirmed_spans(text, pattern))


__all__ = ["DEFAULT_RULES_PATH", "MAX_SCAN_CHARS", "ContextDoc", "RedFlagHit", "RedFlagRule",
           "affirmed_spans", "canonical_text", "is_affirmed", "load_red_flag_rules",
           "match_red_flags", "normalize_text", "words_needing_protection"]
