"""A throwaway PostgreSQL server for tests: ``initdb`` + ``pg_ctl`` from the Debian packages.

:func:`start_postgres` creates a cluster in a fresh temp folder, starts it on a free
port of 127.0.0.1 (no Unix socket outside that folder, trust auth, fsync off: a test
server, never a production setting) and returns a :class:`PostgresServer` whose
``url(dbname)`` is a SQLAlchemy ``postgresql+psycopg://`` URL. PostgreSQL refuses to run
as root, so as root the cluster is owned by and run as the ``postgres`` system user
(created by the Debian package) through ``runuser``.

Install the server with ``make services`` (Debian ``postgresql``); when no
``/usr/lib/postgresql/*/bin/initdb`` exists, :func:`find_bin_dir` returns None and the
fixture skips with that reason.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from servers import free_port


def find_bin_dir() -> Path | None:
    """Newest ``/usr/lib/postgresql/<major>/bin`` holding ``initdb`` and ``pg_ctl``, or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"),
                   key=lambda p: int(Path(p).parent.parent.name) if Path(p).parent.parent.name.isdigit() else 0)
    return Path(found[-1]).parent if found else None


@dataclass
class PostgresServer:
    """A running test cluster: ``port``, ``user`` (superuser), ``data`` folder."""

    bin_dir: Path
    root: Path
    port: int
    user: str
    run_as: str | None

    def url(self, dbname: str = "postgres") -> str:
        """SQLAlchemy URL of database ``dbname`` on this server."""
        return f"postgresql+psycopg://{self.user}@127.0.0.1:{self.port}/{dbname}"

    def create_database(self, name: str, *, template: str | None = None) -> str:
        """Create database ``name`` (fails if it exists), empty or as a copy of database
        ``template`` (a file-level copy: fast; nobody may be connected to the template),
        and return its URL."""
        import psycopg

        with psycopg.connect(f"host=127.0.0.1 port={self.port} user={self.user} dbname=postgres",
                             autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
        return self.url(name)

    def stop(self) -> None:
        """Stop the server (immediate shutdown: a throwaway cluster) and delete its folder."""
        _run(self.run_as, [str(self.bin_dir / "pg_ctl"), "-D", str(self.root / "data"), "-m", "immediate",
                           "-w", "stop"], check=False)
        shutil.rmtree(self.root, ignore_errors=True)


def _run(run_as: str | None, cmd: list[str], *, check: bool = True) -> subprocess.CompletedProcess[str]:
    if run_as is not None:
        cmd = ["runuser", "-u", run_as, "--", *cmd]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    if check and proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... failed ({proc.returncode}): "
                           f"{(proc.stderr or proc.stdout).strip()[-400:]}")
    return proc


def start_postgres() -> PostgresServer:
    """Init and start a cluster (about 1-2 s). Raises RuntimeError when it cannot start,
    LookupError when the server binaries are not installed."""
    bin_dir = find_bin_dir()
    if bin_dir is None:
        raise LookupError("PostgreSQL server binaries not installed (/usr/lib/postgresql/*/bin/initdb); "
                          "run `make services` (Debian package postgresql)")
    run_as: str | None = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            raise LookupError("running as root and no 'postgres' system user to run the server as") from None
        run_as = "postgres"
    root = Path(tempfile.mkdtemp(prefix="pgtest-"))
    if run_as is not None:
        entry = pwd.getpwnam(run_as)
        os.chown(root, entry.pw_uid, entry.pw_gid)
    user = "assistant"
    _run(run_as, [str(bin_dir / "initdb"), "-D", str(root / "data"), "-U", user, "-A", "trust",
                  "-E", "UTF8", "--locale=C", "--no-sync"])
    for attempt in range(3):
        port = free_port()
        opts = (f"-h 127.0.0.1 -p {port} -k {root} -c fsync=off -c synchronous_commit=off "
                "-c full_page_writes=off -c max_connections=200 -c shared_buffers=32MB")
        proc = _run(run_as, [str(bin_dir / "pg_ctl"), "-D", str(root / "data"), "-o", opts,
                             "-l", str(root / "log"), "-w", "-t", "30", "start"], check=False)
        if proc.returncode == 0:
            break
        if attempt == 2:
            log = (root / "log").read_text(errors="replace")[-400:] if (root / "log").exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr.strip()[-200:]} {log}")
        time.sleep(0.2)
    return PostgresServer(bin_dir=bin_dir, root=root, port=port, user=user, run_as=run_as)
