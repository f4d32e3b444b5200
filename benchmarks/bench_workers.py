"""Throughput of the patient chat with 1 and 2 app workers sharing one database.

For each worker count (default ``1,2``) the app is started as ``assistant serve
--workers N`` does it (:func:`assistant.ui.workers.run_workers`: N worker processes
behind HAProxy with sticky sessions) on a free port of 127.0.0.1, sharing one hospital
database (a throwaway PostgreSQL server from the Debian packages by default, ``--sqlite``
for one SQLite file, or ``--db URL``). Then ``--sessions`` simulated patients, each an
httpx client with its own cookie jar (a browser), send ``--messages`` messages one after
another (the chat protocol of ``benchmarks/load_test.py``). Printed per worker count:
replies per second, p50/p95 of the full reply, errors, how many workers the sessions
were spread over, and whether every session got back only its own conversation
(sessions isolated).

Bounded and local only: 127.0.0.1, per-request timeouts, at most 64 sessions and 4
workers. No retrieval index (``--allow-no-index``) and no model lead-in: the measured
path is triage + booking, the part that the workers share the database for. Point
``ASSISTANT_CHROMA_URL`` / ``ASSISTANT_LLM_*`` at servers to include them.

Usage::

    .venv/bin/python benchmarks/bench_workers.py                 # 1 and 2 workers, 16 sessions
    .venv/bin/python benchmarks/bench_workers.py --workers 1,2,3 --sessions 24 --sqlite
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))
MAX_SESSIONS = 64
MAX_WORKERS = 4


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_ready(url: str, proc: subprocess.Popen, deadline_s: float) -> None:
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited with {proc.returncode} before it was ready")
        with contextlib.suppress(Exception), urllib.request.urlopen(url + "healthz", timeout=5) as resp:
            if resp.status == 200:  # else not up yet (refused, 503, timeout)
                return
        time.sleep(0.5)
    raise RuntimeError(f"the app was not ready after {deadline_s:.0f} s")


async def _session(base: str, i: int, messages: int, timeout: float, rows: list, workers_seen: list) -> None:
    import httpx
    from load_test import SCRIPTS, _one_message

    lang, age, sex, script = SCRIPTS[i % len(SCRIPTS)]
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), trust_env=False) as client:  # own cookie jar
        (await client.get(base)).raise_for_status()  # the page load: HAProxy sets the sticky cookie
        workers_seen.append(client.cookies.get("TRIAGE_WORKER"))
        session_hash = uuid.uuid4().hex[:11]
        history: list = []
        sent: list[str] = []
        for m in range(messages):
            text = script[m % len(script)]
            sent.append(text)
            _first, full, history, error = await _one_message(client, base, session_hash, text, history,
                                                             lang, age, sex, timeout)
            rows.append({"session": i, "full": full, "error": error,
                         "isolated": error is not None or _only_own(history, sent)})


def _text(content: object) -> str:
    """Plain text of a Gradio chat message's content (a string, or a list of parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, dict):
        return str(content.get("text", content.get("value", "")))
    if isinstance(content, list | tuple):
        return "".join(_text(part) for part in content)
    return str(content)


def _only_own(history: list, sent: list[str]) -> bool:
    """The returned chat history holds exactly this session's messages, in order."""
    users = [_text(turn.get("content")) for turn in history or []
             if isinstance(turn, dict) and turn.get("role") == "user"]
    if users != sent and not _only_own.reported:  # type: ignore[attr-defined]
        _only_own.reported = True  # type: ignore[attr-defined]
        print(f"history mismatch: sent {sent!r}, got {users!r} / {str(history)[:300]}", file=sys.stderr)
    return users == sent


_only_own.reported = False  # type: ignore[attr-defined]


async def _level(base: str, sessions: int, messages: int, timeout: float) -> dict:
    from load_test import _pct

    rows: list[dict] = []
    workers_seen: list = []
    t0 = time.perf_counter()
    await asyncio.gather(*(_session(base, i, messages, timeout, rows, workers_seen) for i in range(sessions)))
    wall = time.perf_counter() - t0
    ok = [r["full"] for r in rows if r["error"] is None]
    return {"replies": len(ok), "errors": len(rows) - len(ok), "wall_s": wall,
            "replies_per_s": len(ok) / wall if wall else float("nan"),
            "p50": _pct(ok, 0.5), "p95": _pct(ok, 0.95),
            "workers_used": len({w for w in workers_seen if w}),
            "isolated": all(r["isolated"] for r in rows),
            "errors_kinds": sorted({r["error"] for r in rows if r["error"]})}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", default="1,2", help="comma-separated worker counts")
    p.add_argument("--sessions", type=int, default=16, help="concurrent patient sessions")
    p.add_argument("--messages", type=int, default=3, help="messages per session")
    p.add_argument("--timeout", type=float, default=120.0, help="per-message timeout, s")
    p.add_argument("--rounds", type=int, default=3,
                   help="measurements per worker count; the median and the best are printed (a shared "
                        "machine's other load disturbs single runs)")
    p.add_argument("--data-dir", type=Path, default=REPO / ".assistant-data" / "bench-workers",
                   help="state folder of the workers (the converted model is cached there once)")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--sqlite", action="store_true", help="share one SQLite file instead of PostgreSQL")
    where.add_argument("--db", help="share this scratch database URL (its hospital tables are replaced)")
    args = p.parse_args(argv)
    counts = [int(x) for x in args.workers.split(",") if x.strip()]
    if not counts or max(counts) > MAX_WORKERS or min(counts) < 1:
        p.error(f"--workers must be between 1 and {MAX_WORKERS}")
    if not 1 <= args.sessions <= MAX_SESSIONS:
        p.error(f"--sessions must be between 1 and {MAX_SESSIONS}")

    from assistant.hospital.demo import build_demo_hospital

    server = None
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        try:
            if args.db:
                db: str = args.db
            elif args.sqlite:
                db = str(args.data_dir / "hospital.sqlite")
            else:
                sys.path.insert(0, str(REPO / "tests"))
                from pg_server import start_postgres

                server = start_postgres()
                db = server.create_database("bench")
            env = {**os.environ, "ASSISTANT_DATA_DIR": str(args.data_dir), "ASSISTANT_HOSPITAL_DB": db,
                   "ASSISTANT_MAX_HOLDS_PER_CLIENT_HOUR": "1000",  # every patient is 127.0.0.1 here
                   "GRADIO_ANALYTICS_ENABLED": "False"}
            print(f"database: {'SQLite file' if args.sqlite else 'PostgreSQL'}; {args.sessions} sessions x "
                  f"{args.messages} messages; {os.cpu_count()} CPU cores")
            results = []
            for n in counts:
                build_demo_hospital(db, seed=7)  # same free capacity for every run
                port = _free_port()
                code = ("from assistant.ui.workers import run_workers; import sys; "
                        f"sys.exit(run_workers(host='127.0.0.1', port={port}, workers={n}, allow_no_index=True))")
                log = Path(tmp) / f"workers-{n}.log"
                with log.open("wb") as fh:
                    proc = subprocess.Popen([sys.executable, "-c", code], env=env, cwd=tmp,
                                            stdout=fh, stderr=subprocess.STDOUT)
                base = f"http://127.0.0.1:{port}/"
                try:
                    try:
                        _wait_ready(base, proc, 600)
                    except RuntimeError:
                        print(log.read_text(errors="replace")[-3000:], file=sys.stderr)
                        raise
                    asyncio.run(_level(base, min(4, args.sessions), 1, args.timeout))  # warm-up
                    rounds = [asyncio.run(_level(base, args.sessions, args.messages, args.timeout))
                              for _ in range(max(1, args.rounds))]
                finally:
                    proc.terminate()
                    try:
                        proc.wait(timeout=60)
                    except subprocess.TimeoutExpired:
                        proc.kill()
                rates = sorted(r["replies_per_s"] for r in rounds)
                res = sorted(rounds, key=lambda r: r["replies_per_s"])[len(rounds) // 2]  # the median round
                res = {**res, "workers": n, "best": rates[-1],
                       "errors": sum(r["errors"] for r in rounds),
                       "isolated": all(r["isolated"] for r in rounds),
                       "workers_used": max(r["workers_used"] for r in rounds)}
                results.append(res)
                print(f"workers {n}: median of {len(rounds)} rounds {res['replies_per_s']:.2f} replies/s "
                      f"(best {res['best']:.2f}; {res['replies']} replies in {res['wall_s']:.1f} s); "
                      f"full reply p50 {res['p50']:.2f} s, "
                      f"p95 {res['p95']:.2f} s; errors {res['errors']} {res['errors_kinds'] or ''}; "
                      f"sessions spread over {res['workers_used']} worker(s); "
                      f"sessions isolated: {'yes' if res['isolated'] else 'NO'}", flush=True)
            base_rate = results[0]["replies_per_s"]
            for res in results[1:]:
                print(f"throughput {results[0]['workers']} -> {res['workers']} workers: "
                      f"x{res['replies_per_s'] / base_rate:.2f} (median), "
                      f"x{res['best'] / results[0]['best']:.2f} (best)")
            return 0 if all(r["isolated"] and r["errors"] == 0 for r in results) else 1
        finally:
            if server is not None:
                server.stop()


if __name__ == "__main__":
    raise SystemExit(main())
