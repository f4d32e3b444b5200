"""Starting the real servers the tests talk to (on 127.0.0.1 only).

``free_port`` picks a free TCP port; ``serving`` runs one server process until its
readiness check passes, yields the process, and stops it afterwards. Used by the
OpenAI-compatible LLM servers (``transformers serve``, ``llama-server``), the Chroma
server, the served app and PostgreSQL fixtures.
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import NoReturn


def free_port() -> int:
    """A TCP port of 127.0.0.1 that is free now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serving(name: str, argv: list[str], log_path: Path, ready: Callable[[], bool], *,
            timeout_s: float, give_up: Callable[[str], NoReturn],
            env: dict[str, str] | None = None, poll_s: float = 0.2,
            stop_timeout_s: float = 20.0) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``argv`` (output to ``log_path``) until ``ready()``; yield the process.

    A server that exits, or is not ready within ``timeout_s`` seconds, is handed to
    ``give_up`` (``pytest.fail`` or ``pytest.skip``) with the end of its log. The server
    is terminated (killed after ``stop_timeout_s``) when the block ends.
    """
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, env=env)
    try:
        deadline = time.monotonic() + timeout_s
        while not ready():
            if proc.poll() is not None or time.monotonic() > deadline:
                state = f"exited {proc.returncode}" if proc.poll() is not None else \
                    f"not ready after {timeout_s:.0f} s"
                give_up(f"{name} {state}:\n{log_path.read_text(errors='replace')[-2000:]}")
            time.sleep(poll_s)
        yield proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=stop_timeout_s)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=stop_timeout_s)
