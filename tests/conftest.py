"""Shared fixtures: isolated settings, one real model per test session, opt-in GPU tests."""

from __future__ import annotations

import os
from pathlib import Path

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


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No ASSISTANT_* variable or ./assistant.toml of the developer leaks into a test."""
    for key in list(os.environ):
        if key.upper().startswith("ASSISTANT_"):
            monkeypatch.delenv(key)
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
