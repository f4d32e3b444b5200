"""Speed of red-flag matching (prints figures; asserts nothing).

    .venv/bin/python benchmarks/bench_red_flags.py

Reports milliseconds per message over the written case sets and the paraphrase suite,
and the time of a few adversarial 1 MB inputs (only the first MAX_SCAN_CHARS characters
are examined, so these stay bounded). The tests guard only against catastrophic
backtracking with generous ``pytest.mark.timeout`` limits; the speed figure lives here.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

from assistant.triage.red_flags import load_red_flag_rules, match_red_flags

CASES = Path(__file__).resolve().parents[1] / "eval" / "cases"


def _texts() -> list[str]:
    texts: list[str] = []
    for name in ("red_flags.jsonl", "triage_cases.jsonl", "red_flag_paraphrases.jsonl"):
        with (CASES / name).open(encoding="utf-8") as fh:
            texts += [json.loads(line)["text"] for line in fh if line.strip()]
    return texts


def main() -> None:
    t0 = time.perf_counter()
    load_red_flag_rules()
    match_red_flags("warm up: chest pain")
    print(f"load + first match: {(time.perf_counter() - t0) * 1000:.0f} ms")
    texts = _texts()
    runs = []
    for _ in range(3):
        start = time.perf_counter()
        for text in texts:
            match_red_flags(text)
        runs.append((time.perf_counter() - start) * 1000 / len(texts))
    print(f"typical messages: {len(texts)} texts, median {statistics.median(runs):.2f} ms per message "
          f"(runs: {', '.join(f'{r:.2f}' for r in runs)})")
    big = {
        "a x 1M": "a" * 1_000_000,
        "胸 x 1M": "胸" * 1_000_000,
        "'not ' x 250k": "not " * 250_000,
        "'chest pain ' x 90k": "chest pain " * 90_000 + "sweating",
        "random words": ("I have a mild cough and no fever. " * 30_000)[:1_000_000],
        "typo-like tokens": ("chset crushng breathng swaeting " * 40_000)[:1_000_000],
        "'(' + 没有": "(" * 500_000 + "没有" * 250_000,
    }
    for name, text in big.items():
        start = time.perf_counter()
        match_red_flags(text)
        print(f"1 MB input {name:>20}: {(time.perf_counter() - start) * 1000:.0f} ms")


if __name__ == "__main__":
    main()
