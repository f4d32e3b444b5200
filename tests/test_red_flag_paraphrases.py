"""Paraphrase suite of the red-flag rules: every rule, both languages, must escalate.

``eval/cases/red_flag_paraphrases.jsonl`` holds written variants of emergency messages
(word order, synonyms, 压榨样/压榨性, separators, full-width forms, English typos, dialect
and colloquial Chinese, English mixed into Chinese) and near-miss negatives (negated,
historical, family, hypothetical, mild) that must not fire. The suite tests the classes
of tolerance in ``assistant/triage/red_flags.py``: the bounded Chinese gap ``%ZGAP%``,
the English typo corrector and the canonical text form.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from assistant.triage.red_flags import (
    _load_kb,
    canonical_text,
    load_red_flag_rules,
    match_red_flags,
    words_needing_protection,
)

CASES = Path(__file__).resolve().parents[1] / "eval" / "cases" / "red_flag_paraphrases.jsonl"
ROWS = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
POSITIVES = [r for r in ROWS if r["rule"]]
NEGATIVES = [r for r in ROWS if not r["rule"]]
RULE_IDS = {r.id for r in load_red_flag_rules()}


def _hits(row: dict) -> list:
    return match_red_flags(row["text"], age_years=row.get("age"), sex=row.get("sex"),
                           pregnant=row.get("pregnant"))


def _pid(row: dict) -> str:
    return f"{row['rule'] or 'NEG'}-{row['lang']}-{row['text'][:30]}"


@pytest.mark.parametrize("row", POSITIVES, ids=[_pid(r) for r in POSITIVES])
def test_paraphrase_escalates(row: dict) -> None:
    hits = _hits(row)
    assert hits and all(h.disposition.is_emergency for h in hits), (row["rule"], row["text"])


@pytest.mark.parametrize("row", NEGATIVES, ids=[_pid(r) for r in NEGATIVES])
def test_near_miss_does_not_fire(row: dict) -> None:
    assert [h.rule_id for h in _hits(row)] == [], row["text"]


def test_own_rule_fires_for_almost_every_paraphrase() -> None:
    own = sum(row["rule"] in {h.rule_id for h in _hits(row)} for row in POSITIVES)
    assert own >= 0.97 * len(POSITIVES), f"{own}/{len(POSITIVES)}"


def test_suite_shape() -> None:
    per_rule = Counter(r["rule"] for r in POSITIVES)
    assert set(per_rule) == RULE_IDS
    assert min(per_rule.values()) >= 20, per_rule.most_common()[-3:]
    per_lang = Counter((r["rule"], r["lang"]) for r in POSITIVES)
    assert all(per_lang[(rule, lang)] >= 10 for rule in RULE_IDS for lang in ("en", "zh"))
    assert len(NEGATIVES) >= 60
    assert {r["lang"] for r in NEGATIVES} == {"en", "zh"}
    texts = [r["text"] for r in ROWS]
    assert len(texts) == len(set(texts))


# --------------------------------------------------------------------------- canonical form
@pytest.mark.parametrize(("raw", "expected"), [
    ("我chest很痛", "我 chest 很痛"),
    ("胸口pain", "胸口 pain"),
    ("chest/pain", "chest pain"),
    ("chest...pain", "chest pain"),
    ("胸 / 口 痛", "胸口痛"),
    ("ＣＨＥＳＴ　ＰＡＩＮ", "chest pain"),
    ("chset pain", "chest pain"),
    ("crushng pain", "crushing pain"),
    ("breathng", "breathing"),
    ("swaeting", "sweating"),
    ("confussed", "confused"),
    ("cnat breathe", "cant breathe"),
])
def test_canonical_text(raw: str, expected: str) -> None:
    assert canonical_text(raw) == expected


@pytest.mark.parametrize("word", ["sweet", "strike", "never", "fewer", "chess", "rain", "stoke",
                                  "there", "here", "trying", "heard", "sorry", "night", "form"])
def test_real_words_are_never_corrected(word: str) -> None:
    assert canonical_text(word) == word


@pytest.mark.parametrize("text", [
    "胸口不痛，出冷汗", "胸口没有压榨样疼痛", "胸口并不痛", "chest is not painful, just sweating after the gym",
    "no crushing chest pain, no sweating", "脖子不硬，发烧", "血已经止住了", "肚子不疼，也没晕",
])
def test_gaps_never_cross_a_negation(text: str) -> None:
    assert match_red_flags(text) == []


def test_protect_list_is_complete() -> None:
    """Every common English word the corrector would change is in ``fuzzy.protect``.

    Needs pyspellchecker (a dev tool only); after adding words to the lexicon, rerun and
    add the words this test names to ``fuzzy.protect`` in ``knowledge_base/red_flags.yaml``.
    """
    spellchecker = pytest.importorskip("spellchecker")
    frequencies = spellchecker.SpellChecker().word_frequency
    common = [w for w, f in frequencies.dictionary.items() if f >= 100]
    missing = words_needing_protection(common, _load_kb(None).speller)
    assert missing == [], f"add to fuzzy.protect: {' '.join(missing[:50])}"
