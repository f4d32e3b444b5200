"""Fuzz the red-flag safety floor: crashes, hangs and unsafe results (expected: 0 of each).

    .venv/bin/python benchmarks/fuzz_triage.py [--n 12000] [--seed 7] [--triage 300]

Runs at least ``--n`` inputs through :func:`assistant.triage.red_flags.match_red_flags`:

* ``noisy``: every emergency paraphrase of ``eval/cases/red_flag_paraphrases.jsonl``
  embedded in ordinary noise (filler sentences before / after, random separators and
  punctuation, full-width forms, random upper case). Not escalating one is UNSAFE.
* ``random``: random Unicode text (CJK, Latin, punctuation, control and zero-width
  characters, emoji) up to 4,000 characters.
* ``soup``: shuffled context cues, pattern fragments and regex metacharacters up to
  20,000 characters (negation / history cues, gaps, "%ZGAP%", "(").

A crash is any exception; a hang is one call using over 1 s of CPU time (process time,
so that a busy machine does not count as a hang; wall time is printed too). When
``assistant.triage.engine.Triager(Settings())`` builds, ``--triage`` noisy inputs also
run through the full triage, which must give an emergency disposition; when it does not
build (models or data missing), that part is skipped and said so. Exit status 1 when any
crash, hang or unsafe result was found.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path

from assistant.triage.red_flags import match_red_flags

CASES = Path(__file__).resolve().parents[1] / "eval" / "cases" / "red_flag_paraphrases.jsonl"
HANG_S = 1.0

NOISE = [
    "hello", "good morning", "please help", "I am at home", "I live in Shanghai",
    "my phone battery is low", "sorry for my English", "it is raining outside",
    "I am writing from the bus stop", "thank you doctor", "this is urgent", "what should I do",
    "我在家里", "你好", "请帮帮我", "麻烦您了", "我是第一次用这个", "外面在下雨", "谢谢医生", "怎么办",
]
SEPARATORS = [". ", ", ", "! ", "\n", "; ", "。", "，", "！", " ... ", " - ", "?? ", "\n\n", " :) ",
              "……", "～", " ", "  "]
SOUP = ["chest", "pain", "no", "not", "never", "without", "history of", "my father had", "previous",
        "last year", "如何预防", "家族史", "以前", "过", "胸口", "痛", "不", "没有", "(", ")", "*", "+",
        "?", "[", "\\", "%ZGAP%", ".", ",", "，", "。", "\n", "\u200b", "🙂", "crushng", "chset",
        "worst headache of my life", "抽搐", "发烧39度", "6 weeks old", "38.5", "中风", "stroke",
        "sweating", "出冷汗", "a" * 50, "胸" * 50]


def _fullwidth(ch: str) -> str:
    if ch == " ":
        return "\u3000"
    return chr(ord(ch) + 0xFEE0) if "!" <= ch <= "~" else ch


def noisy(rng: random.Random, text: str) -> str:
    chars = []
    for ch in text:
        r = rng.random()
        chars.append(ch.upper() if r < 0.15 else _fullwidth(ch) if r < 0.25 else ch)
    parts = [*rng.sample(NOISE, rng.randint(0, 3)), "".join(chars),
             *rng.sample(NOISE, rng.randint(0, 3))]
    out = parts[0]
    for part in parts[1:]:
        out += rng.choice(SEPARATORS) + part
    return out


def random_text(rng: random.Random) -> str:
    pools = [(0x20, 0x7E), (0x4E00, 0x9FFF), (0x3000, 0x303F), (0xFF01, 0xFF5E), (0x0, 0x1F),
             (0x200B, 0x200F), (0x1F600, 0x1F64F), (0x0400, 0x04FF)]
    n = rng.choice([0, 1, 5, 40, 300, 4000])
    return "".join(chr(rng.randint(*rng.choice(pools))) for _ in range(n))


def soup(rng: random.Random) -> str:
    words = [rng.choice(SOUP) for _ in range(rng.choice([10, 50, 200, 800, 3000]))]
    return " ".join(words)[:20_000]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=12_000)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--triage", type=int, default=300, help="noisy inputs for the full Triager")
    args = ap.parse_args()
    rng = random.Random(args.seed)
    rows = [json.loads(line) for line in CASES.read_text(encoding="utf-8").splitlines() if line.strip()]
    positives = [r for r in rows if r["rule"]]

    crashes: list[str] = []
    hangs: list[tuple[float, str]] = []
    unsafe: list[str] = []
    counts = {"noisy": 0, "random": 0, "soup": 0}
    slowest = slowest_cpu = 0.0
    start_all = time.perf_counter()
    i = 0
    while sum(counts.values()) < args.n:
        kind = ("noisy", "noisy", "random", "soup")[i % 4]
        i += 1
        row = rng.choice(positives) if kind == "noisy" else None
        text = noisy(rng, row["text"]) if row else random_text(rng) if kind == "random" else soup(rng)
        t0, c0 = time.perf_counter(), time.process_time()
        try:
            hits = match_red_flags(text, age_years=row.get("age") if row else None,
                                   sex=row.get("sex") if row else None)
        except Exception:  # noqa: BLE001 - a fuzzer reports every crash
            crashes.append(f"{text[:120]!r}\n{traceback.format_exc(limit=3)}")
            continue
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - c0
        slowest = max(slowest, elapsed)
        slowest_cpu = max(slowest_cpu, cpu)
        counts[kind] += 1
        if cpu > HANG_S:
            hangs.append((cpu, text[:120]))
        if row and not (hits and all(h.disposition.is_emergency for h in hits)):
            unsafe.append(f"{row['rule']}: {text!r}")
    total_s = time.perf_counter() - start_all

    print(f"match_red_flags: {sum(counts.values())} inputs ({counts}) in {total_s:.1f} s, "
          f"slowest {slowest * 1000:.0f} ms wall, {slowest_cpu * 1000:.0f} ms CPU")
    print(f"  crashes: {len(crashes)}  hangs (> {HANG_S:.0f} s): {len(hangs)}  unsafe: {len(unsafe)}")
    for item in crashes[:10] + [f"{s:.2f} s {t!r}" for s, t in hangs[:10]] + unsafe[:20]:
        print("   ", item)

    bad = len(crashes) + len(hangs) + len(unsafe)
    bad += _fuzz_triager(rng, positives, args.triage)
    return 1 if bad else 0


def _fuzz_triager(rng: random.Random, positives: list[dict], n: int) -> int:
    if n <= 0:
        return 0
    try:
        from assistant.settings import Settings
        from assistant.triage.engine import Triager

        triager = Triager(Settings())
        triager.triage("warm up: mild cough")
    except Exception as exc:  # noqa: BLE001 - optional part: say why and skip
        print(f"Triager: skipped ({type(exc).__name__}: {str(exc)[:160]})")
        return 0
    crashes = hangs = unsafe = 0
    start = time.perf_counter()
    for _ in range(n):
        row = rng.choice(positives)
        text = noisy(rng, row["text"])
        c0 = time.process_time()
        try:
            result = triager.triage(text, age=row.get("age"), sex=row.get("sex"), lead_in=False)
        except Exception:  # noqa: BLE001
            crashes += 1
            print("    crash:", repr(text[:120]), traceback.format_exc(limit=2))
            continue
        if time.process_time() - c0 > HANG_S:
            hangs += 1
        if not result.disposition.is_emergency:
            unsafe += 1
            print("    unsafe:", row["rule"], repr(text[:120]), result.disposition.value)
    print(f"Triager.triage: {n} noisy emergencies in {time.perf_counter() - start:.1f} s; "
          f"crashes: {crashes}  hangs: {hangs}  unsafe: {unsafe}")
    return crashes + hangs + unsafe


if __name__ == "__main__":
    sys.exit(main())
