"""Bookings load test: 50 threads and 4 processes book at once while booking workers
are killed with SIGKILL (``kill -9``) five times mid-run; then count double and lost
bookings. Expected output: ``double bookings: 0`` and ``lost bookings: 0``.

Run: ``.venv/bin/python benchmarks/bench_bookings_load.py [--threads 50] [--procs 4]
[--kills 5] [--per-worker 40] [--seed 7] [--postgres | --db URL]``. Works in a temporary
folder (a fresh demo hospital in SQLite), or with ``--postgres`` on a throwaway
PostgreSQL server started from the Debian packages (``tests/pg_server.py``), or on the
(empty, scratch) database ``--db postgresql+psycopg://...``; exits 1 when any booking is
doubled or lost.

Definitions:

* double booking: a clinic slot with more than one non-cancelled booking, an imaging
  block or a ward with more active bookings than capacity / beds, or a slot whose
  ``booked`` flag disagrees with its bookings;
* lost booking: one whose success was acknowledged to the caller (the thread got
  ``booked=True``; the worker process wrote ``signal ref`` to its fsync'ed journal
  after ``book_signal`` returned) but that is not in the database afterwards.

A worker killed between the commit and its journal line leaves a committed booking
that nobody acknowledged: counted as "unacknowledged", not lost (the patient never
heard of it; the hold expires).
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import random
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

DEPARTMENTS = ("GENMED", "ENT", "DERM", "CARDIO", "RESP", "GASTRO", "PEDS", "ORTHO", "OPHTH", "NEURO")


def _signal(n: int):  # noqa: ANN202
    from assistant.domain import DemandSignal, Disposition

    disposition = Disposition.CONSULTATION_24 if n % 3 == 0 else Disposition.CONSULTATION
    return DemandSignal.from_disposition(patient_ref=f"p-load{n}", department=DEPARTMENTS[n % len(DEPARTMENTS)],
                                         disposition=disposition)


def _worker(db: str, journal: str, first: int, count: int) -> None:  # db: file or URL
    """Child process: book ``count`` signals; journal each acknowledged booking (fsync)."""
    from assistant.agent.booking import book_signal
    from assistant.hospital.db import open_db

    factory = open_db(db, create=False)
    fd = os.open(journal, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    for n in range(first, first + count):
        sig = _signal(n)
        try:
            out = book_signal(factory, sig)
        except Exception as exc:  # noqa: BLE001 - a refusal (e.g. lock timeout), not a loss
            print(f"worker {os.getpid()}: booking refused: {type(exc).__name__}: "
                  f"{str(getattr(exc, 'orig', exc))[:60]}", file=sys.stderr)
            continue
        if out.booked:
            os.write(fd, f"{sig.id} {out.ref}\n".encode())
            os.fsync(fd)
    os.close(fd)


def _check(db: Path | str, acked: set[str]) -> dict[str, int]:
    """Counts of double bookings, lost and unacknowledged bookings in ``db``."""
    from sqlalchemy import text

    from assistant.hospital.db import open_db

    factory = open_db(db, create=False)
    with factory() as s:
        double_slots = s.execute(text(
            "SELECT count(*) FROM (SELECT clinic_slot_id FROM bookings WHERE status != 'cancelled' "
            "AND clinic_slot_id IS NOT NULL GROUP BY clinic_slot_id HAVING count(*) > 1) d")).scalar_one()
        flag_mismatch = s.execute(text(
            "SELECT count(*) FROM clinic_slots c WHERE NOT c.booked AND EXISTS (SELECT 1 FROM bookings b "
            "WHERE b.clinic_slot_id = c.id AND b.status != 'cancelled')")).scalar_one()
        over_imaging = s.execute(text(
            "SELECT count(*) FROM imaging_slots i WHERE i.booked > i.capacity")).scalar_one()
        over_wards = s.execute(text(
            "SELECT count(*) FROM wards w WHERE w.beds_occupied + w.beds_reserved > w.beds_total")).scalar_one()
        rows = s.execute(text("SELECT id FROM bookings WHERE status != 'cancelled'")).scalars().all()
    factory.kw["bind"].dispose()
    present = {str(r) for r in rows}
    return {
        "double": int(double_slots + flag_mismatch + over_imaging + over_wards),
        "lost": len(acked - present),
        "acknowledged": len(acked),
        "in_db": len(present),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=50)
    parser.add_argument("--procs", type=int, default=4)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--per-worker", type=int, default=40, help="signals per thread and per process")
    parser.add_argument("--seed", type=int, default=7)
    where = parser.add_mutually_exclusive_group()
    where.add_argument("--postgres", action="store_true", help="on a throwaway PostgreSQL server")
    where.add_argument("--db", help="on this scratch database URL (its hospital tables are replaced)")
    args = parser.parse_args(argv)
    server = None
    if args.postgres:
        sys.path.insert(0, str(REPO / "tests"))
        from pg_server import start_postgres

        server = start_postgres()
        args.db = server.create_database("bench")
    try:
        return _run(args)
    finally:
        if server is not None:
            server.stop()


def _run(args: argparse.Namespace) -> int:

    from assistant.agent.booking import book_signal
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital

    rng = random.Random(args.seed)
    with tempfile.TemporaryDirectory(prefix="bench-bookings-") as tmp:
        db: Path | str = args.db or Path(tmp) / "hospital.sqlite"
        build_demo_hospital(db, seed=args.seed)
        print(f"database: {'PostgreSQL' if args.db else 'SQLite'}")
        before = _check(db, set())["in_db"]
        started = time.perf_counter()

        # -- 50 threads in this process, sharing one engine -----------------------------
        factory = open_db(db, create=False)
        acked: set[str] = set()
        acked_lock = threading.Lock()
        errors: list[str] = []

        def thread_worker(t: int) -> None:
            for i in range(args.per_worker):
                try:
                    out = book_signal(factory, _signal(1_000_000 + t * 10_000 + i))
                except Exception as exc:  # noqa: BLE001 - counted and shown (a refusal, not a loss)
                    errors.append(f"{type(exc).__name__}: {str(getattr(exc, 'orig', exc))[:60]}")
                    continue
                if out.booked:
                    with acked_lock:
                        acked.add(str(out.ref))

        threads = [threading.Thread(target=thread_worker, args=(t,)) for t in range(args.threads)]
        for t in threads:
            t.start()

        # -- worker processes, five of them killed with SIGKILL mid-run ------------------
        ctx = mp.get_context("spawn")
        journals: list[Path] = []
        procs: list[mp.Process] = []
        next_first = 0

        def spawn() -> None:
            nonlocal next_first
            journal = Path(tmp) / f"journal-{len(journals)}.txt"
            journals.append(journal)
            proc = ctx.Process(target=_worker, args=(str(db), str(journal), next_first, args.per_worker))
            next_first += 10_000
            proc.start()
            procs.append(proc)

        for _ in range(args.procs):
            spawn()
        kills = 0
        while kills < args.kills:
            time.sleep(rng.uniform(0.5, 2.0))
            alive = [p for p in procs if p.is_alive()]
            # only kill a worker that has booked at least once: a kill mid-run
            busy = [p for p, j in zip(procs, journals, strict=True) if p.is_alive() and j.exists()]
            victim = rng.choice(busy or alive) if (busy or alive) else None
            if victim is None:
                spawn()
                continue
            os.kill(victim.pid, signal.SIGKILL)
            victim.join()
            kills += 1
            spawn()  # keep 4 booking processes running
        for p in procs:
            p.join()
        for t in threads:
            t.join()
        factory.kw["bind"].dispose()

        for journal in journals:
            if journal.exists():
                for line in journal.read_text().splitlines():
                    parts = line.split()
                    if len(parts) == 2:  # a line torn by the kill was never acknowledged
                        acked.add(parts[1])
        result = _check(db, acked)
        elapsed = time.perf_counter() - started
        killed = sum(1 for p in procs if p.exitcode == -signal.SIGKILL)
        print(f"threads {args.threads}, processes {args.procs} (+{len(procs) - args.procs} respawned), "
              f"kill -9: {killed}, {elapsed:.1f} s")
        print(f"bookings acknowledged: {result['acknowledged']}; new active bookings in the database: "
              f"{result['in_db'] - before}; unacknowledged (killed after commit): "
              f"{max(0, result['in_db'] - before - result['acknowledged'])}")
        if errors:
            print(f"booking errors in threads: {len(errors)} ({', '.join(sorted(set(errors)))})")
        print(f"double bookings: {result['double']}")
        print(f"lost bookings: {result['lost']}")
        return 0 if result["double"] == 0 and result["lost"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
