"""Property-based fuzzing of red-flag matching (hypothesis).

* an emergency phrase embedded in ordinary noise (prefix / suffix sentences, random
  separators and punctuation, full-width forms, case changes) still escalates;
* any text, however odd, never crashes and finishes quickly (bounded patterns, at most
  ``MAX_SCAN_CHARS`` examined).

``benchmarks/fuzz_triage.py`` runs the same generators at a larger scale.
"""

from __future__ import annotations

import pytest

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from assistant.triage.red_flags import match_red_flags

# (text, age, sex): one emergency phrase per rule family, both languages
EMERGENCIES: list[tuple[str, float | None, str | None]] = [
    ("crushing chest pain and I am sweating", 60, None),
    ("胸口压榨样疼痛，出冷汗", 60, None),
    ("my face is drooping and my speech is slurred", 70, None),
    ("我爸突然嘴歪了，说话不清楚", 70, None),
    ("I can't breathe and my lips are turning blue", None, None),
    ("喘不上气，嘴唇发紫", None, None),
    ("my throat is swelling up after eating peanuts", None, None),
    ("吃了花生后喉咙肿了，喘不上气", None, None),
    ("the bleeding won't stop", None, None),
    ("伤口出血不止", None, None),
    ("I have been vomiting blood", None, None),
    ("吐了一大口鲜血", None, None),
    ("he collapsed and is not responding", None, None),
    ("老人突然倒地，叫不醒", None, None),
    ("she is having a seizure", None, None),
    ("孩子抽搐了", None, None),
    ("I want to kill myself", None, None),
    ("我想自杀", None, None),
    ("fever and a stiff neck", None, None),
    ("发烧，脖子发硬", None, None),
    ("I am 30 weeks pregnant and bleeding", None, "F"),
    ("怀孕28周，感觉不到胎动", None, "F"),
    ("my 6 week old has a fever of 38.5", None, None),
    ("worst headache of my life, came on suddenly", None, None),
    ("突然剧烈头痛", None, None),
    ("hit my head and was knocked out", None, None),
    ("took too many paracetamol tablets", None, None),
    ("喝了农药", None, None),
    ("boiling water spilled all over his chest", None, None),
    ("sudden severe pain in my testicle", None, "M"),
    ("severe stomach pain and I fainted", None, None),
    ("stabbed in the chest", None, None),
    ("被车撞了", None, None),
    ("back pain and numbness between my legs", None, None),
    ("腰痛，大小便失禁", None, None),
    ("diabetic and very confused", None, None),
]

# ordinary, context-free filler (no negation, history, family or hypothetical cues)
NOISE = [
    "hello", "good morning", "please help", "I am at home", "I live in Shanghai",
    "my phone battery is low", "sorry for my English", "it is raining outside",
    "I am writing from the bus stop", "thank you doctor", "this is urgent",
    "我在家里", "你好", "请帮帮我", "麻烦您了", "我是第一次用这个", "外面在下雨", "谢谢医生",
]
SEPARATORS = [". ", ", ", "! ", "\n", "; ", "。", "，", "！", " ... ", " - ", "?? ", "\n\n", " :) "]


def _fullwidth(ch: str) -> str:
    if ch == " ":
        return "\u3000"
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


@st.composite
def _noisy_emergency(draw: st.DrawFn) -> tuple[str, float | None, str | None]:
    text, age, sex = draw(st.sampled_from(EMERGENCIES))
    chars = []
    for ch in text:
        op = draw(st.sampled_from(["keep", "keep", "keep", "upper", "fullwidth"]))
        chars.append(ch.upper() if op == "upper" else _fullwidth(ch) if op == "fullwidth" else ch)
    core = "".join(chars)
    prefix = draw(st.lists(st.sampled_from(NOISE), max_size=3))
    suffix = draw(st.lists(st.sampled_from(NOISE), max_size=3))
    parts = [*prefix, core, *suffix]
    out = parts[0]
    for part in parts[1:]:
        out += draw(st.sampled_from(SEPARATORS)) + part
    return out, age, sex


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_noisy_emergency())
def test_emergency_in_noise_still_escalates(case: tuple[str, float | None, str | None]) -> None:
    text, age, sex = case
    hits = match_red_flags(text, age_years=age, sex=sex)
    assert hits and all(h.disposition.is_emergency for h in hits), text


@pytest.mark.timeout(300)
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text(max_size=3000))
def test_random_text_never_crashes(text: str) -> None:
    hits = match_red_flags(text)
    assert isinstance(hits, list)


@pytest.mark.timeout(300)
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.sampled_from(["chest", "pain", "no", "not", "胸口", "痛", "不", "没有", "(", "*",
                                 "过", "history of", "my father had", "crushng", "сhest", ".", ",",
                                 "\u200b", "🙂", "%ZGAP%", "\\", "worst headache", "以前"]),
                max_size=400).map(" ".join))
def test_cue_soup_never_crashes(text: str) -> None:
    assert isinstance(match_red_flags(text), list)
