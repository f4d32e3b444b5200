"""Cold start of ``assistant triage --json``: a fresh process per run, as a user types it.

Prints, for an English and a Chinese complaint, the median over ``--runs`` (default 5)
fresh processes of

* the wall time from starting the process to its exit, and
* the CPU time (user + system) of the process: on a machine busy with other work the
  wall time grows, the CPU time much less so; on an idle machine they are close,

and which heavy libraries the triage path imported (torch, transformers, chromadb,
gradio, sentence_transformers, sklearn, scipy: none of them should be there).

Usage::

    .venv/bin/python benchmarks/bench_cold_start.py [--runs 5] [--data-dir DIR]

``--data-dir`` is the state folder (hospital tables, fitted-model caches, index); by
default ``.assistant-data/cold-start``, where the first (warm-up) run builds the demo
hospital and fills the fitted-model caches, without a retrieval index. Give the folder
of a served installation (with its index) to measure that case.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
HEAVY = ("torch", "transformers", "chromadb", "gradio", "sentence_transformers", "sklearn", "scipy",
         "onnxruntime", "langchain_core")
CASES = {
    "en": ["--text", "I have had a sore throat for three days and it hurts to swallow", "--age", "30"],
    "zh": ["--text", "胸口压榨样疼痛，出冷汗", "--age", "60"],
}
PROBE = (
    "import sys, runpy; sys.argv = ['assistant', 'triage', '--json', *sys.argv[1:]]\n"
    "import atexit, json, os\n"
    "heavy = %r\n"
    "atexit.register(lambda: os.write(2, ('HEAVY ' + json.dumps(sorted(m for m in heavy if m in sys.modules))"
    " + '\\n').encode()))\n"
    "from assistant.cli import main\n"
    "main()\n"
)


def run_once(args: list[str], env: dict[str, str]) -> tuple[float, float, list[str], str]:
    """One fresh process; returns (wall s, CPU s, heavy modules imported, stdout)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), *args], env=env, capture_output=True,
                          text=True, timeout=300, cwd=REPO, check=False)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if proc.returncode != 0:
        raise SystemExit(f"triage failed ({proc.returncode}): {proc.stderr[-800:]}")
    heavy = next((json.loads(x[6:]) for x in proc.stderr.splitlines() if x.startswith("HEAVY ")), [])
    return wall, cpu, heavy, proc.stdout


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--data-dir", type=Path, default=REPO / ".assistant-data" / "cold-start",
                   help="state folder (hospital tables, model caches, optional index)")
    args = p.parse_args(argv)
    if not 1 <= args.runs <= 50:
        p.error("--runs must be between 1 and 50")
    data_dir = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ASSISTANT_")}
    env.update({"ASSISTANT_DATA_DIR": str(data_dir), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"})
    for case in CASES.values():  # warm-up: builds the demo hospital / fitted-model caches once
        run_once(case, env)
    index = (data_dir / "index").exists()
    print(f"cold `assistant triage --json`, median of {args.runs} fresh processes, {os.cpu_count()} CPUs, "
          f"load average {os.getloadavg()[0]:.1f}, data: {data_dir} ({'with' if index else 'no'} index)\n")
    print("| complaint | wall median | CPU median | heavy imports | disposition |")
    print("|---|---:|---:|---|---|")
    for name, case in CASES.items():
        walls, cpus, heavy, out = [], [], set(), ""
        for _ in range(args.runs):
            wall, cpu, mods, out = run_once(case, env)
            walls.append(wall)
            cpus.append(cpu)
            heavy.update(mods)
        disposition = json.loads(out[out.index("{"):]).get("disposition")
        print(f"| {name} | {statistics.median(walls):.2f} s | {statistics.median(cpus):.2f} s "
              f"| {', '.join(sorted(heavy)) or 'none'} | {disposition} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
