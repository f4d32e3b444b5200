"""Shared fixtures: isolated settings, one real model per test session, opt-in GPU tests."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = REPO.parent / "shared" / "data"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--run-gpu", action="store_true", help="run tests marked gpu")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--run-gpu"):
        return
    skip = pytest.mark.skip(reason="GPU test: pass --run-gpu on a CUDA machine")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def session_cache_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Derived-structure cache of this test session (assistant.cache), not the user's."""
    return tmp_path_factory.mktemp("derived-cache")


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, session_cache_dir: Path) -> None:
    """No ASSISTANT_* variable or ./assistant.toml of the developer leaks into a test, and
    the on-disk caches of derived structures go to a folder of this test session."""
    for key in list(os.environ):
        if key.upper().startswith("ASSISTANT_"):
            monkeypatch.delenv(key)
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(session_cache_dir))
    monkeypatch.chdir(tmp_path)


@pytest.fixture(scope="session")
def session_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One state dir per test session, so the converted model is cached once."""
    return tmp_path_factory.mktemp("assistant-data")


@pytest.fixture(scope="session")
def settings(session_data_dir: Path):  # noqa: ANN201
    from assistant.settings import Settings

    return Settings(
        data_dir=session_data_dir,
        shared_data_dir=SHARED_DATA,
        num_threads=2,
        device="cpu",
    )


@pytest.fixture(scope="session")
def backend(settings):  # noqa: ANN001, ANN201
    """The real embedded SmolLM2-135M model, loaded through the production code path."""
    from assistant.llm import get_backend

    return get_backend(settings)


@pytest.fixture(scope="session")
def hospital_db(settings):  # noqa: ANN001, ANN201
    """The seeded demo hospital (seed 7) at settings.resolved_hospital_db, built once."""
    from assistant.hospital.demo import build_demo_hospital

    build_demo_hospital(settings.resolved_hospital_db, seed=7)
    return settings.resolved_hospital_db


@pytest.fixture(scope="session")
def triager(settings, hospital_db):  # noqa: ANN001, ANN201
    """Triager on the demo hospital, trained router, no retrieval index, no LLM."""
    from assistant.triage.engine import Triager

    return Triager(settings)


class ScriptedChatModel:
    """A scripted chat backend, in the manner of simonw/llm's ``MockModel``.

    Replies are taken from the queue given at construction, else computed by
    ``respond(messages, schema)``; a reply for a pydantic ``schema`` may be a dict (it is
    validated into the model). Every call is recorded in ``calls``. It implements the
    :class:`assistant.llm.ChatBackend` protocol, so production code runs unchanged.
    """

    device = "cpu"

    def __init__(self, *replies, respond=None, model_id: str = "scripted") -> None:  # noqa: ANN001, ANN002
        self.replies = list(replies)
        self.respond = respond
        self.model_id = model_id
        self.calls: list[dict] = []

    def generate(self, messages, *, schema=None, max_new_tokens=None):  # noqa: ANN001, ANN201
        self.calls.append({"messages": list(messages), "schema": schema})
        if self.replies:
            reply = self.replies.pop(0)
        elif self.respond is not None:
            reply = self.respond(messages, schema)
        else:
            reply = "I am sorry you feel unwell."
        if isinstance(reply, BaseException):
            raise reply
        if isinstance(schema, type) and isinstance(reply, dict):
            return schema(**reply)
        return reply

    def stream(self, messages, *, max_new_tokens=None):  # noqa: ANN001, ANN201
        yield str(self.generate(messages, max_new_tokens=max_new_tokens))


def booking_tool_call(messages, schema):  # noqa: ANN001, ANN201
    """``respond`` for :class:`ScriptedChatModel`: the exact ``book_resources`` call that the
    booking prompt asks for (read from the prompt's ``signal_id:`` lines)."""
    import re

    text = messages[-1]["content"]
    args = {k: re.search(rf"{k}: (\S+)", text).group(1) for k in ("signal_id", "department", "disposition")}
    return {"tool": "book_resources", "arguments": args}


@pytest.fixture()
def scripted_model():  # noqa: ANN201
    """Factory of :class:`ScriptedChatModel` instances."""
    return ScriptedChatModel


@pytest.fixture(scope="session")
def postgres_server():  # noqa: ANN201
    """A real PostgreSQL server for the test session (``tests/pg_server.py``: initdb + pg_ctl
    from the Debian ``postgresql`` package, 127.0.0.1, a free port, a temp folder).
    Skipped, with the reason, only when the server binaries are not installed."""
    import pg_server

    try:
        server = pg_server.start_postgres()
    except LookupError as exc:
        pytest.skip(str(exc))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def bed_tools():  # noqa: ANN201
    """Two staff-style LangChain tools for tool-calling tests: ``bed_status`` (an enum
    argument; returns "3") and ``find_doctor`` (a free-text argument; returns "Dr Wang")."""
    from langchain_core.tools import tool

    @tool
    def bed_status(department: Literal["ICU", "CARDIO", "PEDS", "RESP"]) -> str:
        """Count free beds in one department.

        Args:
            department: canonical department code.
        """
        return "3"

    @tool
    def find_doctor(name: str) -> str:
        """Look a doctor up by name."""
        return "Dr Wang"

    return bed_status, find_doctor
