"""Load test of the patient chat: many sessions at once against the served web UI.

Prints, for each number of concurrent sessions (default 1, 8 and 32, each sending 3
messages one after another, as a patient would), the p50/p95 of

* **first visible answer**: from sending a message to the first streamed update that
  carries the urgency banner (what the patient first sees), and
* **full reply**: to the end of the reply, the model's lead-in included when on (run
  as the browser runs it: inside the reply in the old app, or as the separate event
  that follows the answer, found in ``/config`` by its ``lead-in`` output),

with the error count and throughput. The client is asyncio + httpx over Gradio's
``/gradio_api/call/chat`` SSE route (one ``session_hash`` per simulated patient, so
server-side session state works as in a browser).

Bounded and local only: the target must be 127.0.0.1 / localhost, every request has a
timeout, and sessions are capped at 64.

Usage::

    .venv/bin/python benchmarks/load_test.py                    # starts the app itself
    .venv/bin/python benchmarks/load_test.py --lead-in          # also the model lead-in
    .venv/bin/python benchmarks/load_test.py --url http://127.0.0.1:7860/ --sessions 1,8

Without ``--url`` the app is started in a subprocess (``assistant serve``'s code path)
on a free port with its own data folder (``.assistant-data/load-test`` by default: the
demo hospital and, unless ``--no-index``, a small index of ``--index-limit`` MedQuAD
records are built there on the first run and reused). The per-client hold limit is
lifted there, since every simulated patient comes from 127.0.0.1. ``--lead-in`` forces
the lead-in on as if the model were marked capable (without the capable-model
re-ranking), to measure that the model never delays the answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from urllib.parse import urlparse

REPO = Path(__file__).resolve().parents[1]
LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}
MAX_SESSIONS = 64

#: Three-message conversations (language, age, sex, messages); session i takes SCRIPTS[i % len].
SCRIPTS = [
    ("English", 30, "F", ["I have had a sore throat for three days, it hurts to swallow",
                          "I also have a mild fever, about 38 degrees", "No, I can breathe normally"]),
    ("中文", 45, "M", ["我咳嗽一个星期了，有点痰", "晚上咳得更厉害，没有发烧", "没有胸痛"]),
    ("English", 62, "M", ["Crushing chest pain and sweating for 20 minutes",
                          "The pain goes into my left arm", "I take pills for blood pressure"]),
    ("English", 25, "F", ["I have an itchy rash on my arm for a week", "It is dry and flaky",
                          "No fever, no swelling"]),
    ("中文", 5, "F", ["孩子发烧39度两天了，咳嗽", "精神还可以，能喝水", "没有皮疹"]),
    ("English", 40, "M", ["Lower back pain for two weeks after lifting boxes",
                          "It does not go down my legs", "No problems passing urine"]),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _pct(values: list[float], q: float) -> float:
    """The q-quantile (0..1) of ``values`` by linear interpolation; NaN when empty."""
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


# --- client -------------------------------------------------------------------------------
async def _one_message(client, base: str, session_hash: str, text: str, history: list, lang: str, age: int,
                       sex: str, timeout: float) -> tuple[float | None, float, list, str | None]:
    """Send one message; returns (first visible s, full reply s, new history, error)."""
    t0 = time.perf_counter()
    first = None
    try:
        async with asyncio.timeout(timeout):
            r = await client.post(f"{base}gradio_api/call/chat",
                                  json={"data": [text, history, lang, age, sex, False],
                                        "session_hash": session_hash})
            r.raise_for_status()
            event_id = r.json()["event_id"]
            event = None
            async with client.stream("GET", f"{base}gradio_api/call/chat/{event_id}") as resp:
                resp.raise_for_status()
                async for line in resp.aiter_lines():
                    if line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and event in ("generating", "complete", "error"):
                        data = json.loads(line[5:].strip() or "null")
                        if event == "error":
                            return first, time.perf_counter() - t0, history, f"server error: {str(data)[:80]}"
                        if first is None and isinstance(data, list) and len(data) > 1 \
                                and "urgency-banner" in str(data[1] or ""):
                            first = time.perf_counter() - t0
                        if event == "complete":
                            new_history = data[0] if isinstance(data, list) and data else history
                            if first is None:
                                return None, time.perf_counter() - t0, new_history, "no urgency banner"
                            return first, time.perf_counter() - t0, new_history, None
    except TimeoutError:
        return first, time.perf_counter() - t0, history, "timeout"
    except Exception as exc:  # noqa: BLE001 - counted and reported
        return first, time.perf_counter() - t0, history, type(exc).__name__
    return first, time.perf_counter() - t0, history, "stream ended without a reply"


async def _lead_in(client, base: str, session_hash: str, fn_index: int, timeout: float) -> tuple[bool, str | None]:
    """Run the app's lead-in event after an answer, as the browser does (``.then``);
    returns (a lead-in was shown, error)."""
    try:
        async with asyncio.timeout(timeout):
            r = await client.post(f"{base}gradio_api/queue/join",
                                  json={"data": [None], "fn_index": fn_index, "session_hash": session_hash,
                                        "event_data": None, "trigger_id": None})
            r.raise_for_status()
            event_id = r.json()["event_id"]
            async with client.stream("GET", f"{base}gradio_api/queue/data",
                                     params={"session_hash": session_hash}) as resp:
                async for line in resp.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    msg = json.loads(line[5:])
                    if msg.get("event_id") == event_id and msg.get("msg") == "process_completed":
                        if not msg.get("success"):
                            return False, "lead-in event failed"
                        data = (msg.get("output") or {}).get("data") or [""]
                        return bool(str(data[0] or "").strip()), None
    except TimeoutError:
        return False, "lead-in timeout"
    except Exception as exc:  # noqa: BLE001 - counted and reported
        return False, f"lead-in {type(exc).__name__}"
    return False, "lead-in stream ended"


async def _session(client, base: str, i: int, messages: int, timeout: float, rows: list,
                   lead_fn: int | None) -> None:
    lang, age, sex, script = SCRIPTS[i % len(SCRIPTS)]
    session_hash = uuid.uuid4().hex[:11]
    history: list = []
    for m in range(messages):
        t0 = time.perf_counter()
        first, full, history, error = await _one_message(
            client, base, session_hash, script[m % len(script)], history, lang, age, sex, timeout)
        shown = False
        if error is None and lead_fn is not None:
            shown, error = await _lead_in(client, base, session_hash, lead_fn, timeout)
            full = time.perf_counter() - t0
        rows.append({"session": i, "message": m, "first": first, "full": full, "error": error,
                     "lead_in": shown})


def lead_in_event(base: str) -> int | None:
    """The id of the app's separate lead-in event (outputs the ``lead-in`` component), if any."""
    import httpx

    config = httpx.get(f"{base}config", timeout=30, trust_env=False).json()
    lead = [c["id"] for c in config.get("components", []) if (c.get("props") or {}).get("elem_id") == "lead-in"]
    for dep in config.get("dependencies", []):
        if lead and lead[0] in dep.get("outputs", []) and len(dep.get("outputs", [])) == 1:
            return int(dep["id"])
    return None


async def run_level(base: str, sessions: int, messages: int, timeout: float, lead_fn: int | None = None) -> dict:
    """Run ``sessions`` concurrent conversations of ``messages`` messages; returns the figures."""
    import httpx

    rows: list[dict] = []
    limits = httpx.Limits(max_connections=2 * sessions + 4, max_keepalive_connections=2 * sessions + 4)
    async with httpx.AsyncClient(timeout=httpx.Timeout(timeout), limits=limits, trust_env=False) as client:
        t0 = time.perf_counter()
        await asyncio.gather(*(_session(client, base, i, messages, timeout, rows, lead_fn)
                               for i in range(sessions)))
        wall = time.perf_counter() - t0
    ok = [r for r in rows if r["error"] is None]
    firsts = [r["first"] for r in ok]
    fulls = [r["full"] for r in ok]
    errors: dict[str, int] = {}
    for r in rows:
        if r["error"]:
            errors[r["error"]] = errors.get(r["error"], 0) + 1
    return {"sessions": sessions, "requests": len(rows), "errors": sum(errors.values()), "error_kinds": errors,
            "first_p50": _pct(firsts, 0.5), "first_p95": _pct(firsts, 0.95),
            "full_p50": _pct(fulls, 0.5), "full_p95": _pct(fulls, 0.95),
            "lead_ins_shown": sum(1 for r in ok if r["lead_in"]),
            "wall_s": wall, "replies_per_s": len(ok) / wall if wall else float("nan")}


# --- server -------------------------------------------------------------------------------
def serve(port: int, data_dir: Path, index_limit: int, no_index: bool, lead_in: bool) -> None:
    """Run the app as ``assistant serve`` does (blocking); used in the subprocess."""
    os.environ["ASSISTANT_DATA_DIR"] = str(data_dir)
    os.environ.setdefault("ASSISTANT_MAX_HOLDS_PER_CLIENT_HOUR", "1000")  # every patient is 127.0.0.1
    if lead_in:
        from assistant.settings import Settings

        # as if the model were marked capable, without the capable-model re-ranking
        Settings.lead_in_enabled = property(lambda self: True)  # type: ignore[assignment,method-assign]
    from assistant.cli import serve as cli_serve

    cli_serve(host="127.0.0.1", port=port, limit=index_limit, allow_no_index=no_index)


def _wait_ready(base: str, proc: subprocess.Popen, deadline_s: float) -> None:
    import httpx

    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"the app exited with status {proc.returncode} before it was ready")
        try:
            if httpx.get(f"{base}healthz", timeout=2, trust_env=False).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise SystemExit(f"the app was not ready within {deadline_s:.0f} s")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--url", help="target an already running app (127.0.0.1 only)")
    p.add_argument("--sessions", default="1,8,32", help="comma-separated concurrency levels")
    p.add_argument("--messages", type=int, default=3, help="messages per session")
    p.add_argument("--timeout", type=float, default=180.0, help="per-message timeout, s")
    p.add_argument("--warmup", type=int, default=1, help="warm-up messages per script before measuring")
    p.add_argument("--lead-in", action="store_true", help="force the model lead-in on (started app only)")
    p.add_argument("--no-index", action="store_true", help="serve without retrieval (started app only)")
    p.add_argument("--index-limit", type=int, default=300, help="MedQuAD records indexed on the first run")
    p.add_argument("--data-dir", type=Path, default=REPO / ".assistant-data" / "load-test")
    p.add_argument("--json", type=Path, help="also write the figures here")
    p.add_argument("--_serve", type=int, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args._serve:
        serve(args._serve, args.data_dir, args.index_limit, args.no_index, args.lead_in)
        return 0

    levels = [int(x) for x in args.sessions.split(",") if x.strip()]
    if not levels or min(levels) < 1 or max(levels) > MAX_SESSIONS:
        p.error(f"--sessions must be between 1 and {MAX_SESSIONS}")
    if not 1 <= args.messages <= 10:
        p.error("--messages must be between 1 and 10")
    proc = None
    if args.url:
        if urlparse(args.url).hostname not in LOCAL_HOSTS:
            p.error("--url must point at 127.0.0.1 / localhost")
        base = args.url.rstrip("/") + "/"
    else:
        port = _free_port()
        base = f"http://127.0.0.1:{port}/"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--_serve", str(port), "--data-dir", str(args.data_dir),
               "--index-limit", str(args.index_limit)] + (["--no-index"] if args.no_index else []) + \
              (["--lead-in"] if args.lead_in else [])
        args.data_dir.mkdir(parents=True, exist_ok=True)
        print(f"starting the app on {base} (data: {args.data_dir})", file=sys.stderr)
        proc = subprocess.Popen(cmd, cwd=REPO)
    try:
        if proc is not None:
            _wait_ready(base, proc, deadline_s=1800)
        lead_fn = lead_in_event(base)
        load_before = os.getloadavg()[0]
        if args.warmup:  # every script once (loads the Chinese tokenizer, fitted models, caches)
            asyncio.run(run_level(base, len(SCRIPTS), args.warmup, args.timeout, lead_fn))
        results = [asyncio.run(run_level(base, n, args.messages, args.timeout, lead_fn)) for n in levels]
        load_after = os.getloadavg()[0]
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
    lead = "on" if args.lead_in else "default"
    print(f"\nload test: {args.messages} messages per session, lead-in {lead} "
          f"({'separate event' if lead_fn is not None else 'inside the reply, if any'}), {os.cpu_count()} CPUs, "
          f"load average {load_before:.1f} -> {load_after:.1f}\n")
    print("| sessions | replies | errors | first visible p50 | p95 | full reply p50 | p95 | lead-ins shown "
          "| wall | replies/s |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in results:
        print(f"| {r['sessions']} | {r['requests']} | {r['errors']} | {r['first_p50']:.2f} s | {r['first_p95']:.2f} s "
              f"| {r['full_p50']:.2f} s | {r['full_p95']:.2f} s | {r['lead_ins_shown']} | {r['wall_s']:.1f} s "
              f"| {r['replies_per_s']:.2f} |")
        if r["error_kinds"]:
            print(f"  errors: {r['error_kinds']}")
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0 if all(r["errors"] == 0 for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
