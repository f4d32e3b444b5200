"""Command-line entry point: ``assistant --help``.

Expected failures (:class:`~assistant.errors.AssistantError`) print one line and exit
with status 2; anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated, Optional

import typer

from assistant import __version__
from assistant.errors import AssistantError, ConfigError

app = typer.Typer(
    name="assistant",
    help="Triage Assistant: local, private hospital triage and guidance (智能导诊).",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


def _settings(**overrides: object):  # noqa: ANN202
    from assistant.settings import load_settings

    return load_settings(**{k: v for k, v in overrides.items() if v is not None})


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log at INFO level.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )


@app.command()
def version() -> None:
    """Print the version."""
    typer.echo(f"triage-assistant {__version__}")


@app.command()
def ask(
    question: Annotated[str, typer.Argument(help="A question or symptom description.")],
    max_new_tokens: Annotated[Optional[int], typer.Option(help="Cap on generated tokens.")] = None,
) -> None:
    """One-shot streamed answer from the configured local model (no triage, no booking)."""
    from assistant.errors import InputError
    from assistant.llm import get_backend
    from assistant.prompts import load_prompt

    settings = _settings()
    text = question.strip()
    if not text:
        raise InputError("the question is empty: describe your symptoms in a sentence")
    backend = get_backend(settings)
    prompt = load_prompt("ask")
    messages = [
        {"role": "system", "content": prompt.render("system")},
        {"role": "user", "content": text[:4000]},
    ]
    for piece in backend.stream(messages, max_new_tokens=max_new_tokens):
        sys.stdout.write(piece)
        sys.stdout.flush()
    sys.stdout.write("\n")


hospital_app = typer.Typer(help="Hospital resource tables (SQLite).", no_args_is_help=True)
app.add_typer(hospital_app, name="hospital")


@hospital_app.command("demo")
def hospital_demo(
    seed: Annotated[int, typer.Option(help="Random seed of the generator.")] = 7,
    days: Annotated[int, typer.Option(help="Days of clinic sessions.")] = 14,
) -> None:
    """(Re)build the seeded demo hospital at the configured hospital_db."""
    from assistant.hospital.demo import build_demo_hospital

    settings = _settings()
    summary = build_demo_hospital(settings.resolved_hospital_db, seed=seed, days=days)
    typer.echo(f"demo hospital written to {settings.resolved_hospital_db}: {summary}")


@hospital_app.command("import")
def hospital_import(
    folder: Annotated[str, typer.Argument(help="Folder of CSV files (see README).")],
    replace: Annotated[bool, typer.Option(help="Replace the existing tables.")] = False,
) -> None:
    """Import the hospital's own CSV tables in one transaction."""
    from pathlib import Path

    from assistant.hospital.csv_import import import_csv_dir

    settings = _settings()
    report = import_csv_dir(settings.resolved_hospital_db, Path(folder), replace=replace)
    typer.echo(f"imported into {settings.resolved_hospital_db}: {report}")


def ensure_hospital(settings) -> None:  # noqa: ANN001
    """Build the demo hospital when no resource tables exist yet."""
    if not settings.resolved_hospital_db.is_file():
        from assistant.hospital.demo import build_demo_hospital

        typer.echo(f"no hospital tables at {settings.resolved_hospital_db}: building the demo hospital",
                   err=True)
        build_demo_hospital(settings.resolved_hospital_db)


@app.command()
def triage(
    text: Annotated[str, typer.Option("--text", help="The complaint, English or Chinese.")],
    age: Annotated[Optional[float], typer.Option(help="Age in years.")] = None,
    sex: Annotated[Optional[str], typer.Option(help="F or M.")] = None,
    pregnant: Annotated[Optional[bool], typer.Option("--pregnant/--not-pregnant")] = None,
    lang: Annotated[Optional[str], typer.Option(help="en or zh (default: detected).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print the TriageResult JSON.")] = False,
    lead_in: Annotated[bool, typer.Option("--lead-in/--no-lead-in", help="LLM lead-in.")] = False,
    book: Annotated[bool, typer.Option("--book/--no-book", help="Book a slot for the demand signal.")] = False,
) -> None:
    """Triage one complaint: urgency, red flags, department, doctor, demand signal."""
    import json

    from pydantic import ValidationError

    from assistant.service import PatientProfile, PatientSession, TriageService

    settings = _settings()
    ensure_hospital(settings)
    try:
        profile = PatientProfile(age=age, sex=sex, pregnant=pregnant, language=lang)
    except ValidationError as exc:
        raise ConfigError(f"invalid patient details: {exc.errors()[0]['loc'][0]}: {exc.errors()[0]['msg']}") from None
    service = TriageService.from_settings(settings, with_model=lead_in or (book and settings.llm_capable))
    turn = service.turn(PatientSession(), text, profile, book=book, lead_in=lead_in)
    if as_json:
        data = turn.result.model_dump(mode="json")
        if book:
            data["booking"] = json.loads(json.dumps(turn.booking, default=str)) if turn.booking else None
            data["booking_failed"] = turn.booking_failed
        typer.echo(json.dumps(data, ensure_ascii=False, indent=2))
    else:
        typer.echo(turn.answer)


@app.command()
def ingest(
    limit: Annotated[Optional[int], typer.Option(help="Ingest at most N literature records.")] = None,
    literature: Annotated[bool, typer.Option("--literature/--no-literature")] = True,
    hospital: Annotated[bool, typer.Option("--hospital/--no-hospital")] = True,
) -> None:
    """Build or update the Chroma index (MedQuAD + own documents, hospital records)."""
    settings = _settings()
    _ingest(settings, limit=limit, literature=literature, hospital=hospital)


def _ingest(settings, *, limit: int | None, literature: bool = True, hospital: bool = True) -> None:  # noqa: ANN001
    from assistant.knowledge import ingest_hospital_records, ingest_literature, print_summary

    if hospital:
        from assistant.hospital.db import open_db
        from assistant.hospital.documents import hospital_documents

        ensure_hospital(settings)
        with open_db(settings.resolved_hospital_db, create=False)() as session:
            records = hospital_documents(session)
        print_summary(ingest_hospital_records(settings, records))
    if literature:
        print_summary(ingest_literature(settings, limit=limit, progress=True))


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Interface to bind.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="TCP port.")] = 7860,
    limit: Annotated[Optional[int], typer.Option(help="Literature records to index if no index exists.")] = None,
) -> None:
    """Serve the web UI (builds the demo hospital and the index first if missing)."""
    from assistant.llm import get_backend
    from assistant.ui.app import build_app, launch

    settings = _settings()
    ensure_hospital(settings)
    if not settings.resolved_index_dir.exists() and settings.chroma_url is None:
        typer.echo("no index yet: building it from MedQuAD and the hospital tables", err=True)
        _ingest(settings, limit=limit)
    launch(build_app(settings, backend=get_backend(settings)), host=host, port=port)


@app.command("eval")
def eval_cmd(
    suite: Annotated[str, typer.Argument(help="triage | staff | retrieval | allocation | all")],
    cases: Annotated[Optional[str], typer.Option("--cases", help="External JSONL case file.")] = None,
    limit: Annotated[Optional[int], typer.Option(help="At most N cases per set.")] = None,
    out: Annotated[str, typer.Option(help="Output folder.")] = "eval/out",
    lead_in: Annotated[bool, typer.Option("--lead-in/--no-lead-in", help="Include the LLM lead-in.")] = False,
) -> None:
    """Run an evaluation suite; writes per-case JSONL, report.md and PNG plots to --out."""
    from assistant.evaluation.suites import run_suite

    settings = _settings()
    report = run_suite(settings, suite, cases_file=cases, limit=limit, out=out, lead_in=lead_in)
    typer.echo(f"report: {report}")


DEMO_COMPLAINT = (
    "I have had a sore throat and a mild fever for two days, and it hurts to swallow."
)


@app.command()
def demo(
    serve_ui: Annotated[bool, typer.Option("--serve/--no-serve", help="Serve the web UI afterwards.")] = True,
) -> None:
    """The main job on the embedded defaults: build what is missing, triage a sample, serve."""
    from assistant.service import PatientProfile, PatientSession, TriageService

    settings = _settings()
    ensure_hospital(settings)
    if not settings.resolved_index_dir.exists() and settings.chroma_url is None:
        _ingest(settings, limit=None)
    typer.echo(f"patient> {DEMO_COMPLAINT}")
    turn = TriageService(settings).turn(PatientSession(), DEMO_COMPLAINT, PatientProfile(age=30),
                                       book=False, lead_in=False)
    typer.echo(turn.answer)
    if serve_ui:
        serve(host="127.0.0.1", port=7860, limit=None)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except AssistantError as exc:
        typer.secho(f"error: {exc}", err=True, fg=typer.colors.RED)
        raise SystemExit(2) from None
    except KeyboardInterrupt:
        raise SystemExit(130) from None


if __name__ == "__main__":
    main()
