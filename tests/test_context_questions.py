"""ConText for online-consultation questions (issue 12): both directions.

A question about a named condition, a past or already-diagnosed event, a hypothetical
("会不会", "what if") or a typo that is not clearly a red-flag word must not raise a red
flag; the same condition described as happening now must still raise one, history mention
or not. Triggers: ``context:`` in ``knowledge_base/red_flags.yaml`` (ConText, Harkema et
al., J Biomed Inform 2009;42:839-51); typo rule: ``_Speller`` in ``red_flags.py``.
"""

from __future__ import annotations

import pytest

from assistant.triage.red_flags import canonical_text, match_red_flags
from assistant.triage.urgency import assess_urgency

NOT_NOW = [
    # information-seeking questions about a named condition
    "没有高血压会脑溢血吗？",
    "糖尿病能引起脑梗塞吗？",
    "高血压多高有脑溢血的危险？",
    "癫痫发作的诱发因素有哪些？",
    "酒精肝会不会吐血？",
    "孩子发烧到39度会抽搐吗？",
    "听说高血压容易引起脑出血，要怎么预防？",
    "Can you get a stroke without high blood pressure?",
    "Does diabetes cause strokes?",
    "What if my dad has a heart attack while I am at work?",
    "Is it possible to have a seizure from lack of sleep?",
    # past or already-diagnosed events, events already cared for
    "我爸三年前脑梗，现在吃什么药好？",
    "我父亲前一段时间得了脑梗塞，需要注意什么？",
    "医生说是癫痫发作，脑电图要做多久？",
    "侄子癫痫发作送医院了，检查要做多长时间？",
    "母亲多年前中风过，平时饮食要注意什么？",
    "After my stroke two years ago, which exercises are safe?",
    "I have epilepsy, seizures since childhood, which medication is best?",
    "He recovered from a heart attack last year and asks about diet.",
    "My son has epilepsy. His seizures are controlled with valproate. Can he go swimming?",
    "I was diagnosed with epilepsy and my last seizure was in March. Which medication is better?",
    "How long after a heart attack can you fly?",
    "Is it safe to drive after a seizure?",
    "脑梗病人能吃鸡蛋吗？",
    # a typo equidistant to several real words is not read as a red-flag word
    "pus-filled pimples and my skin has been scurring a lot",
]

STILL_NOW = [
    ("我爸三年前脑梗，现在突然嘴歪了，说话不清", "RF_STROKE"),
    ("有癫痫病史，现在抽搐不停", "RF_SEIZURE"),
    ("以前得过心梗，刚才胸口压榨样疼痛，出冷汗", "RF_CHEST_PAIN_CARDIAC"),
    ("孩子得了肺炎喘不上气", "RF_SEVERE_BREATHING"),
    ("胸口压榨样疼痛出冷汗需要去医院吗", "RF_CHEST_PAIN_CARDIAC"),
    ("胸口剧痛冷汗直冒会不会有危险", "RF_CHEST_PAIN_CARDIAC"),
    ("突然胸痛出冷汗，会是心梗吗？", "RF_CHEST_PAIN_CARDIAC"),
    ("我是不是心梗了", "RF_CHEST_PAIN_CARDIAC"),
    ("多年高血压，今天突然说话不清楚", "RF_STROKE"),
    ("I had a stroke two years ago and now my face is drooping", "RF_STROKE"),
    ("History of epilepsy, he is seizing right now", "RF_SEIZURE"),
    ("My speech is slurred and my face droops, could this be a stroke?", "RF_STROKE"),
    ("crushing chest pain and sweating, can stress cause this?", "RF_CHEST_PAIN_CARDIAC"),
    ("my speech is slured", "RF_STROKE"),
    ("脑出血病人突然叫不醒了", "RF_UNCONSCIOUS"),
    ("I had a stroke 3 years ago and since yesterday my left arm is weak", "RF_STROKE"),
    ("I had a stroke three years ago and last night my face started drooping", "RF_STROKE"),
    ("胸口很痛，一动就会喘不上气", "RF_CHEST_PAIN_CARDIAC"),
    ("孩子以前有过高热惊厥，现在又抽搐了", "RF_SEIZURE"),
    ("My son has epilepsy and he is having a seizure right now", "RF_SEIZURE"),
    ("He had a heart attack last year and now has crushing chest pain and sweating", "RF_CHEST_PAIN_CARDIAC"),
    ("I am swaeting and have crushing chest pain", "RF_CHEST_PAIN_CARDIAC"),
]


@pytest.mark.parametrize("text", NOT_NOW)
def test_question_or_history_raises_no_red_flag(text: str) -> None:
    assert [h.rule_id for h in match_red_flags(text)] == []


@pytest.mark.parametrize(("text", "rule_id"), STILL_NOW)
def test_acute_presentation_still_raises_its_red_flag(text: str, rule_id: str) -> None:
    assert rule_id in {h.rule_id for h in match_red_flags(text)}


@pytest.mark.parametrize("text", ["乙肝会引发胸痛吗？", "What if I get chest pain on the plane?"])
def test_hypothetical_chest_pain_is_not_an_emergency_rule(text: str) -> None:
    assert "UE_ACUTE_CHEST_PAIN" not in assess_urgency(text, age_years=50).rule_ids


@pytest.mark.parametrize("text", ["以前做过心脏支架，现在胸痛两小时", "chest pain for an hour, had a stent before"])
def test_current_chest_pain_with_history_is_still_an_emergency_rule(text: str) -> None:
    assert "UE_ACUTE_CHEST_PAIN" in assess_urgency(text, age_years=50).rule_ids


@pytest.mark.parametrize(("typo", "word"), [("chset", "chest"), ("breathng", "breathing"),
                                            ("swaeting", "sweating"), ("slured", "slurred")])
def test_clear_typos_are_still_corrected(typo: str, word: str) -> None:
    assert canonical_text(typo) == word


def test_ambiguous_typo_is_left_alone() -> None:
    # "scurring" is one wrong letter from slurring, spurring and blurring: not a red-flag word
    assert canonical_text("scurring") == "scurring"
