"""Run triage cases, write per-case JSONL rows, resume, score and report.

Every row records the model id, prompt ``name@version``, git commit, settings hash and
latency; an exception is recorded in ``error`` (never as an answer). A rerun with the
same configuration skips ids already scored.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path
from typing import Any

from assistant.evaluation.datasets import REPO
from assistant.prompts import load_prompt
from assistant.settings import Settings


def git_commit() -> str:
    """Short commit hash of the working tree (``"unknown"`` outside git)."""
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True,
                              text=True, timeout=10).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _done(path: Path, config: str) -> dict[str, dict[str, Any]]:
    rows: dict[str, dict[str, Any]] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue  # a half-written last line of a killed run
            if row.get("config") == config:
                rows[row["id"]] = row
    return rows


def run_triage_cases(settings: Settings, cases: list[dict[str, Any]], out_file: Path, *,
                     lead_in: bool = False, progress: bool = True, service: Any = None) -> list[dict[str, Any]]:
    """Triage every case (resuming), append rows to ``out_file``, return all rows.

    Args:
        settings: runtime settings.
        cases: case dicts (see :mod:`assistant.evaluation.datasets`).
        out_file: JSONL results file (appended).
        lead_in: include the LLM lead-in (slower; measures its latency).
        progress: show a tqdm bar.
        service: reuse a :class:`~assistant.service.TriageService` (built from settings
            if None, with the chat model when ``lead_in``).

    Every case is one turn of a fresh session through the same service the CLI and the
    web UI use (no booking: eval must not consume capacity).
    """
    from tqdm import tqdm

    from assistant.service import PatientProfile, PatientSession, TriageService

    if service is None:
        service = TriageService.from_settings(settings, with_model=lead_in)
    model_id = getattr(service.backend, "model_id", None) or "none (rules + classifier)"
    commit = git_commit()
    prompt_ref = load_prompt("lead_in").ref if lead_in else None
    config = f"{settings.fingerprint()}:{commit}:{'lead' if lead_in else 'nolead'}"
    done = _done(out_file, config)
    out_file.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    with out_file.open("a", encoding="utf-8") as fh:
        for case in tqdm(cases, disable=not progress, desc=out_file.stem, unit="case"):
            if case["id"] in done:
                rows.append(done[case["id"]])
                continue
            row: dict[str, Any] = {
                "id": case["id"], "config": config, "model_id": model_id, "prompt": prompt_ref,
                "git_commit": commit, "settings_hash": settings.fingerprint(),
                "gold_disposition": case.get("gold_disposition"), "gold_urgency3": case.get("gold_urgency3"),
                "gold_departments": case.get("gold_departments") or [], "lang": case.get("lang"),
                "source": case.get("source"), "error": None,
            }
            t0 = time.perf_counter()
            try:
                profile = PatientProfile(age=case.get("age"), sex=case.get("sex"),
                                         pregnant=case.get("pregnant"), language=case.get("lang"))
                turn = service.turn(PatientSession(session_id=f"eval-{case['id']}"), case["text"], profile,
                                    book=False, lead_in=lead_in)
                r = turn.result
                row.update(pred_disposition=r.disposition.value, pred_urgency3=r.disposition.urgency3,
                           pred_departments=[d.code for d in r.departments],
                           red_flags=[f.rule_id for f in r.red_flags], confidence=r.confidence,
                           p_emergency=r.risk.p_emergency if r.risk else None,
                           complaint_codes=[c.code for c in r.complaint_codes],
                           lead_in_kept=(r.lead_in is not None) if lead_in else None)
            except Exception as exc:  # noqa: BLE001 - recorded, never an answer
                row["error"] = f"{type(exc).__name__}: {exc}"[:300]
            row["latency_s"] = round(time.perf_counter() - t0, 4)
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
            fh.flush()
            rows.append(row)
    return rows
