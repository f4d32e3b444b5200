#!/usr/bin/env bash
# Time a new user's first run: fresh clone -> `make demo` -> first answer -> UI answering.
#
# Usage: bash benchmarks/bench_demo_first_run.sh [CLONE_DIR]
#   CLONE_DIR (default ../demo-first-run) must sit beside ../shared, as the repo does.
# Prints the seconds since the clone started at which each phase ended, from the
# timestamps of `make demo`'s own output, and when http://127.0.0.1:7860/ first answers;
# then stops the demo (web server and background ingest). 127.0.0.1 only; port 7860 must
# be free. The full log is kept in CLONE_DIR/demo-timing.log.
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
clone=$(realpath -m "${1:-$repo/../demo-first-run}")
rm -rf "$clone"
t0=$(date +%s.%N)
git clone -q "$repo" "$clone"
cd "$clone"
log=$clone/demo-timing.log
( make demo 2>&1 | while IFS= read -r line; do
    printf '%.1f %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" "$line"; done > "$log" ) &
until curl -s -o /dev/null -m 2 http://127.0.0.1:7860/; do sleep 1; done
ui=$(echo "$(date +%s.%N) - $t0" | bc)
first() { grep -m1 "$1" "$log" | cut -d' ' -f1; }
echo "install done        : $(first 'assistant demo') s"
echo "hospital built      : $(first 'Ingest: hospital') s (hospital records indexed)"
echo "first slice indexed : $(first 'indexing the rest') s"
echo "first answer        : $(first 'Recommended department') s"
printf 'UI answering        : %.1f s\n' "$ui"
pkill -f "$clone/.venv" || true
