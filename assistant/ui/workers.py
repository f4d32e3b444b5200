"""Several app workers behind HAProxy: ``assistant serve --workers N``.

Gradio keeps a browser session's state and its queued events in the process that
served it, so workers cannot share one socket (``uvicorn --workers``): every request of
a session must reach the same worker. :func:`run_workers` therefore starts N worker
processes on free ports of 127.0.0.1 and HAProxy (Debian package ``haproxy``) in front
of them on ``host:port``, with

* cookie stickiness (``TRIAGE_WORKER``, set on a session's first response): a browser
  session stays on one worker; new sessions are spread round-robin;
* ``X-Forwarded-For``, which the workers trust from 127.0.0.1 only (uvicorn
  ``proxy_headers``), so per-client limits see the patient's address, not HAProxy's;
* health checks on ``/healthz``: a worker that is not ready gets no new sessions.

What the workers share lives outside them: the hospital tables (``hospital_db``: use
PostgreSQL for workers on several hosts; an SQLite file works for workers on one host),
the retrieval index (``chroma_url``: a Chroma server) and the chat model
(``llm_backend = "openai"``: an inference server). What stays per worker (per process):
the booking-hold limiter and the staff login throttle - so a client gets at most N times
the per-client limit in the worst case (README "Deployment"); the audit log goes to the
database's ``audit_log`` table when ``hospital_db`` is a server URL.

A worker is ``python -m assistant.ui.workers --port P`` (it reads the same settings
from the environment / ``assistant.toml``); any production load balancer with sticky
sessions can replace HAProxy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError

__all__ = ["STICKY_COOKIE", "haproxy_config", "run_workers", "serve_worker"]

#: The cookie HAProxy uses to keep a browser session on one worker.
STICKY_COOKIE = "TRIAGE_WORKER"
#: How long a worker may take to answer ``/healthz`` after it starts (model loading), s.
WORKER_START_TIMEOUT_S = 600


def haproxy_config(host: str, port: int, worker_ports: list[int]) -> str:
    """HAProxy configuration: ``host:port`` in front of the workers on 127.0.0.1.

    Args:
        host: interface to bind (``127.0.0.1``, or ``0.0.0.0`` behind a firewall/TLS proxy).
        port: public TCP port.
        worker_ports: one port per worker on 127.0.0.1.

    Returns:
        The configuration text (``haproxy -f FILE``).
    """
    servers = "\n".join(
        f"    server w{i} 127.0.0.1:{p} check cookie w{i}" for i, p in enumerate(worker_ports, start=1)
    )
    return f"""global
    maxconn 4096

defaults
    mode http
    timeout connect 5s
    timeout client 600s
    timeout server 600s
    timeout http-keep-alive 60s
    timeout tunnel 1h
    option forwardfor

frontend triage
    bind {host}:{port}
    default_backend workers

backend workers
    balance roundrobin
    cookie {STICKY_COOKIE} insert indirect nocache httponly attr "SameSite=Lax"
    option httpchk GET /healthz
    http-check expect status 200
    default-server inter 5s fall 3 rise 1
{servers}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _healthy(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as resp:
            return resp.status == 200
    except Exception:  # noqa: BLE001 - not up yet (refused, 503, timeout)
        return False


def run_workers(*, host: str, port: int, workers: int, allow_no_index: bool = False,
                haproxy: str | None = None, env: dict[str, str] | None = None) -> int:
    """Start ``workers`` app processes and HAProxy in front; block until one of them exits
    or SIGINT/SIGTERM, then stop them all.

    The caller has already built or checked the hospital tables and the index (the CLI
    does, once, before this), so workers only open them.

    Args:
        host: public interface; port: public TCP port.
        workers: number of worker processes (>= 1).
        allow_no_index: passed to the workers (serve without citations).
        haproxy: the HAProxy binary (default: ``haproxy`` on PATH).
        env: environment of the workers (default: this process's).

    Returns:
        The exit status of the process that stopped first (0 on a signal).

    Raises:
        ConfigError: ``workers`` < 1, or HAProxy is not installed.
    """
    if workers < 1:
        raise ConfigError("--workers must be >= 1")
    binary = haproxy or shutil.which("haproxy")
    if binary is None:
        raise ConfigError("--workers needs HAProxy as the sticky-session front (Debian: apt-get install "
                          "haproxy), or run `python -m assistant.ui.workers --port P` per worker behind "
                          "your own load balancer with sticky sessions (README \"Deployment\")")
    ports = [_free_port() for _ in range(workers)]
    procs: list[subprocess.Popen[bytes]] = []
    stop = False

    def _stop(*_: Any) -> None:
        nonlocal stop
        stop = True

    old = {sig: signal.signal(sig, _stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    tmp = Path(tempfile.mkdtemp(prefix="assistant-haproxy-"))
    try:
        for p in ports:
            cmd = [sys.executable, "-m", "assistant.ui.workers", "--port", str(p)]
            if allow_no_index:
                cmd.append("--allow-no-index")
            procs.append(subprocess.Popen(cmd, env=env))
        deadline = time.monotonic() + WORKER_START_TIMEOUT_S
        pending = set(ports)
        while pending and not stop:
            if any(proc.poll() is not None for proc in procs):
                break
            pending = {p for p in pending if not _healthy(p)}
            if pending:
                if time.monotonic() > deadline:
                    raise ConfigError(f"{len(pending)} worker(s) not ready after {WORKER_START_TIMEOUT_S} s")
                time.sleep(0.5)
        if not stop and all(proc.poll() is None for proc in procs):
            cfg = tmp / "haproxy.cfg"
            cfg.write_text(haproxy_config(host, port, ports), encoding="utf-8")
            procs.append(subprocess.Popen([binary, "-f", str(cfg), "-db"]))
            print(f"* serving the triage assistant on http://{host}:{port}/ with {workers} workers "
                  f"(HAProxy, sticky sessions; workers on 127.0.0.1:{','.join(map(str, ports))})",
                  file=sys.stderr)
        while not stop:
            exited = [proc for proc in procs if proc.poll() is not None]
            if exited:
                return int(exited[0].returncode or 0)
            time.sleep(0.5)
        return 0
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        for sig, handler in old.items():
            signal.signal(sig, handler)
        shutil.rmtree(tmp, ignore_errors=True)


def serve_worker(port: int, *, allow_no_index: bool = False) -> None:
    """One worker: the app of ``assistant serve`` on 127.0.0.1:``port`` (blocking), trusting
    ``X-Forwarded-For`` from the local HAProxy only, with the audit log attached to the
    database when ``hospital_db`` is a server URL."""
    import uvicorn

    from assistant.hospital.audit import attach_for
    from assistant.llm import get_backend
    from assistant.settings import load_settings
    from assistant.ui.app import asgi_app, build_app

    settings = load_settings()  # the parent checked the tables and the index before starting us
    attach_for(settings.resolved_hospital_db)
    app = build_app(settings, backend=get_backend(settings))
    uvicorn.run(asgi_app(app), host="127.0.0.1", port=port, log_level="warning", access_log=False,
                proxy_headers=True, forwarded_allow_ips="127.0.0.1")


def main(argv: list[str] | None = None) -> None:
    """``python -m assistant.ui.workers --port P [--allow-no-index]``."""
    parser = argparse.ArgumentParser(description="One app worker (behind a sticky load balancer).")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--allow-no-index", action="store_true")
    args = parser.parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    serve_worker(args.port, allow_no_index=args.allow_no_index)


if __name__ == "__main__":
    main()
