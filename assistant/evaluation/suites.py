"""``assistant eval SUITE``: triage, staff, retrieval, allocation, or all."""

from __future__ import annotations

import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

from assistant.errors import ConfigError
from assistant.evaluation.datasets import REPO, read_cases, suite_cases
from assistant.evaluation.metrics import proportion, score_triage
from assistant.evaluation.report import fmt, latency_stats, markdown, plots
from assistant.evaluation.runner import run_triage_cases
from assistant.settings import Settings

SUITES = ("triage", "staff", "retrieval", "allocation", "operations", "all")


def _load_script(rel: str) -> Any:
    path = REPO / rel
    if str(REPO) not in sys.path:
        sys.path.insert(0, str(REPO))
    name = f"eval_script_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[name] = module  # dataclasses in the script look themselves up here
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def triage_suite(settings: Settings, out: Path, *, cases_file: str | None, limit: int | None,
                 lead_in: bool) -> dict[str, dict[str, Any]]:
    """Run and score every triage case set; returns per-set metrics, latency, plots."""
    from rich.console import Console
    from rich.table import Table

    from assistant.service import TriageService

    sets = {Path(cases_file).stem: read_cases(Path(cases_file))} if cases_file else suite_cases(settings.shared_data_dir)
    service = TriageService.from_settings(settings, with_model=lead_in)
    results = {}
    for name, cases in sets.items():
        cases = cases[:limit] if limit else cases
        t0 = time.perf_counter()
        rows = run_triage_cases(settings, cases, out / f"triage_{name}.jsonl", lead_in=lead_in, service=service)
        wall = time.perf_counter() - t0
        results[name] = {"metrics": score_triage(rows), "latency": latency_stats(rows),
                         "plots": plots(name, rows, out), "wall_s": wall}
    table = Table(title="triage (dev)")
    for col in ("set", "n", "urgency3", "em recall", "em precision", "others→em", "under", "over",
                "dept top-1", "cases/s"):
        table.add_column(col)
    for name, res in results.items():
        m = res["metrics"]
        table.add_row(name, str(m["cases"]), fmt(m["urgency3"]), fmt(m["emergency_recall"]),
                      fmt(m["emergency_precision"]), fmt(m["others_sent_to_em"]), fmt(m["under_triage"]),
                      fmt(m["over_triage"]), fmt(m["department_top1"]), f"{res['latency']['cases_per_s']:.1f}")
    Console().print(table)
    return results


def staff_suite(settings: Settings, out: Path, *, limit: int | None) -> str:
    """Tool-choice, argument and answer exactness on ``eval/staff/queries.jsonl``."""
    from assistant.agent.staff import StaffConsole, ToolChoice

    queries = [json.loads(x) for x in (REPO / "eval/staff/queries.jsonl").read_text(encoding="utf-8").splitlines() if x]
    queries = queries[:limit] if limit else queries
    console = StaffConsole(settings)
    tool_ok = args_ok = exact = 0
    rows = []
    for q in queries:
        choice, result, sentence = console.answer(q["question"])
        gold = console.run(ToolChoice(tool=q["gold_tool"], args=q["gold_args"]))
        t = choice.tool == q["gold_tool"]
        a = t and {k: v for k, v in choice.args.items() if v is not None} == {k: v for k, v in q["gold_args"].items() if v is not None}
        e = json.dumps(result["summary"], default=str, sort_keys=True) == json.dumps(gold["summary"], default=str, sort_keys=True)
        tool_ok += t
        args_ok += a
        exact += e
        rows.append({"id": q["id"], "tool": choice.tool, "args": choice.args, "path": choice.path,
                     "tool_ok": t, "args_ok": a, "exact": e, "answer": sentence})
    (out / "staff.jsonl").write_text("".join(json.dumps(r, ensure_ascii=False, default=str) + "\n" for r in rows),
                                     encoding="utf-8")
    n = len(queries)
    return (f"- tool choice: {fmt(proportion(tool_ok, n))}\n- arguments: {fmt(proportion(args_ok, n))}\n"
            f"- answer exactness (numbers equal to the gold tool call): {fmt(proportion(exact, n))}\n"
            f"- path: keyword matcher unless `llm_capable` (see assistant/agent/staff.py)")


def booking_paths(settings: Settings, *, limit: int | None, use_model: bool = True) -> str:
    """Book the smoke cases' demand signals on a scratch copy of the demo hospital and
    count how often the model's tool call was valid versus the deterministic fallback."""
    import tempfile

    from assistant.agent.booking import book_resources
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital
    from assistant.service import PatientProfile, PatientSession, TriageService
    from assistant.triage.engine import Triager

    backend = None
    if use_model:
        from assistant.llm import get_backend

        backend = get_backend(settings)
    cases = read_cases(REPO / "eval/cases/triage_smoke.jsonl")[: limit or None]
    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "h.sqlite"
        build_demo_hospital(db, seed=7)
        factory = open_db(db, create=False)
        service = TriageService(settings, hospital=factory,
                                triager=Triager(settings, hospital=factory, retriever=None))
        paths = {"tool_call": 0, "fallback": 0}
        booked = 0
        for case in cases:
            r = service.turn(PatientSession(), case["text"], PatientProfile(age=case.get("age"), language=case.get("lang")),
                             book=False, lead_in=False).result
            out = book_resources(factory, r.demand_signal, backend=backend, kb=service.kb)
            paths[out.path] += 1
            booked += out.booked
    n = len(cases)
    return (f"- booked: {fmt(proportion(booked, n))}\n- model tool call valid: {fmt(proportion(paths['tool_call'], n))}"
            f"\n- deterministic fallback: {fmt(proportion(paths['fallback'], n))}")


def run_suite(settings: Settings, suite: str, *, cases_file: str | None = None, limit: int | None = None,
              out: str | Path = "eval/out", lead_in: bool = False) -> Path:
    """Run ``suite`` and write ``report.md`` (plus JSONL and PNG) under ``out``.

    Raises:
        ConfigError: unknown suite name.
    """
    if suite not in SUITES:
        raise ConfigError(f"unknown suite '{suite}'; choose one of {', '.join(SUITES)}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    results: dict[str, dict[str, Any]] = {}
    extra: dict[str, str] = {}
    if suite in ("triage", "all"):
        results = triage_suite(settings, out, cases_file=cases_file, limit=limit, lead_in=lead_in)
    if suite in ("staff", "all"):
        extra["Staff queries (demo hospital, dev)"] = staff_suite(settings, out, limit=limit)
    if suite in ("retrieval", "all"):
        mod = _load_script("eval/retrieval/run_retrieval_eval.py")
        res = mod.run_retrieval_eval(settings) if limit is None else mod.run_retrieval_eval(settings, sample=limit)
        extra["Retrieval (MedQuAD, dev)"] = "```\n" + json.dumps(res, indent=1, default=str)[:4000] + "\n```"
    if suite in ("allocation", "all"):
        mod = _load_script("eval/allocation/scenarios.py")
        res = mod.run_scenarios()
        extra["Allocation scenarios"] = "```\n" + json.dumps(res, indent=1, default=str)[:4000] + "\n```"
        extra["Booking tool paths (smoke cases, demo hospital)"] = booking_paths(settings, limit=limit)
    if suite in ("operations", "all"):  # issue 15: forecast, plan, monitor, region
        from assistant.operations.evaluate import markdown as ops_markdown, run_operations_eval

        extra["Operations (forecast, plan, monitor, region)"] = ops_markdown(run_operations_eval(out))
    return markdown(results, extra, out)
