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
from assistant.errors import AssistantError

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
    from assistant.llm import get_backend
    from assistant.prompts import load_prompt
    from assistant.errors import InputError

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


DEMO_COMPLAINT = (
    "I have had a sore throat and a mild fever for two days, and it hurts to swallow."
)


@app.command()
def demo() -> None:
    """Run the main job on the embedded defaults with a built-in sample complaint."""
    typer.echo(f"patient> {DEMO_COMPLAINT}")
    typer.echo("assistant> ", nl=False)
    ask(DEMO_COMPLAINT, max_new_tokens=None)


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
