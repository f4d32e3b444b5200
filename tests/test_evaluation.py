"""Eval harness: Wilson intervals, resumable runs, error rows, report and plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.evaluation.metrics import score_triage, wilson
from assistant.evaluation.runner import run_triage_cases


def test_wilson_interval_known_values() -> None:
    lo, hi = wilson(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-3) and hi == pytest.approx(0.7634, abs=1e-3)
    lo, hi = wilson(0, 10)
    assert lo == 0.0 and hi == pytest.approx(0.2775, abs=1e-3)
    assert wilson(0, 0) == (0.0, 1.0)


def test_runner_records_errors_and_resumes(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from assistant.service import TriageService

    calls: list[str] = []
    real = TriageService(settings)

    class Flaky:
        backend = None

        def turn(self, session, text, profile, **kw):  # noqa: ANN001, ANN003, ANN202
            calls.append(text)
            if "boom" in text:
                raise RuntimeError("boom")
            return real.turn(session, text, profile, **kw)

    cases = [
        {"id": "a", "text": "crushing chest pain and sweating", "lang": "en", "gold_urgency3": "em",
         "gold_disposition": "emergency_ambulance", "gold_departments": ["EMERG"]},
        {"id": "b", "text": "boom", "lang": "en", "gold_urgency3": "ne"},
        {"id": "c", "text": "runny nose and sneezing since yesterday", "lang": "en", "age": 30,
         "gold_urgency3": "sc", "gold_departments": ["GENMED", "ENT"]},
    ]
    out = tmp_path / "rows.jsonl"
    rows = run_triage_cases(settings, cases, out, progress=False, service=Flaky())
    assert [r["error"] is None for r in rows] == [True, False, True]
    assert "pred_disposition" not in rows[1]  # an error is never an answer
    for key in ("model_id", "git_commit", "settings_hash", "latency_s", "config"):
        assert key in rows[0]
    n = len(calls)
    again = run_triage_cases(settings, cases, out, progress=False, service=Flaky())
    assert len(calls) == n  # resumed: nothing re-run
    assert [r["id"] for r in again] == ["a", "b", "c"]
    m = score_triage(again)
    assert m["errors"] == 1 and m["emergency_recall"]["p"] == 1.0
    assert len(out.read_text().splitlines()) == 3


def test_run_suite_writes_report_and_plots(settings, hospital_db, tmp_path: Path) -> None:  # noqa: ANN001
    from assistant.evaluation.suites import run_suite

    smoke = Path(__file__).resolve().parents[1] / "eval" / "cases" / "triage_smoke.jsonl"
    report = run_suite(settings, "triage", cases_file=str(smoke), limit=10, out=tmp_path)
    text = report.read_text()
    assert "triage_smoke (dev)" in text and "Semigran" in text
    assert list(tmp_path.glob("*.png"))
    rows = [json.loads(x) for x in (tmp_path / "triage_triage_smoke.jsonl").read_text().splitlines()]
    assert len(rows) == 10


def test_booking_paths_are_counted(settings, hospital_db) -> None:  # noqa: ANN001
    from assistant.evaluation.suites import booking_paths

    text = booking_paths(settings, limit=4, use_model=False)
    assert "deterministic fallback: 100.0 %" in text and "booked:" in text
