"""The knowledge base against a real Chroma server (``chroma_url``), started by a fixture.

The fixture runs ``chroma run --path <tmp> --host 127.0.0.1 --port <free port>`` (the CLI
installed with ``chromadb``), waits for ``/api/v2/heartbeat`` and stops the server after
the module. The test ingests the small fixture slice of MedQuAD-format records and the
hospital records through ``chroma_url``, then searches and checks the citations. It is
skipped (with the reason) only when the ``chroma`` CLI is missing or the server does not
come up; nothing is mocked.
"""

from __future__ import annotations

import shutil
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from servers import free_port, serving

from assistant.knowledge import Retriever, ingest_hospital_records, ingest_literature
from assistant.knowledge.store import forget_client, get_client
from assistant.settings import Settings

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"
START_TIMEOUT_S = 60.0

RECORDS = [
    {
        "id": "dept:ENT",
        "kind": "department",
        "text": "Ear, Nose and Throat (ENT) 耳鼻喉科\nEar pain, hearing loss, nosebleeds, sore "
        "throat, tonsillitis. 耳朵疼痛、听力下降、流鼻血、咽喉痛、扁桃体炎。",
        "metadata": {"name": "ENT 耳鼻喉科", "floor": 3},
    },
    {
        "id": "dept:CARDIO",
        "kind": "department",
        "text": "Cardiology 心内科\nChest pain, palpitations, high blood pressure. 胸痛、心悸、高血压。",
        "metadata": {"name": "Cardiology 心内科", "floor": 4},
    },
]


def _chroma_cli() -> str | None:
    beside = Path(sys.executable).with_name("chroma")
    if beside.is_file():
        return str(beside)
    return shutil.which("chroma")


def _heartbeat(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/api/v2/heartbeat", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """URL of a fresh ``chroma run`` server on 127.0.0.1 (stopped after the module)."""
    cli = _chroma_cli()
    if cli is None:
        pytest.skip("the `chroma` CLI (installed with chromadb) is not on PATH")
    path = tmp_path_factory.mktemp("chroma-server")
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    argv = [cli, "run", "--path", str(path / "db"), "--host", "127.0.0.1", "--port", str(port)]
    with serving("`chroma run`", argv, path / "server.log", lambda: _heartbeat(url),
                 timeout_s=START_TIMEOUT_S, give_up=pytest.skip, stop_timeout_s=10):
        yield url


@pytest.fixture(scope="module")
def server_settings(
    chroma_server: str, settings: Settings, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Settings]:
    """Settings pointing at the server; the session data dir keeps the one ONNX export."""
    server = settings.model_copy(
        update={
            "chroma_url": chroma_server,
            "shared_data_dir": FIXTURES,
            "documents_dir": None,
            "index_dir": tmp_path_factory.mktemp("bm25-cache"),
        }
    )
    yield server
    forget_client(server)


def test_ingest_query_and_cite_through_chroma_url(server_settings: Settings) -> None:
    literature = ingest_literature(server_settings, progress=False)
    hospital = ingest_hospital_records(server_settings, RECORDS)
    assert literature.added == literature.chunks > 0
    assert hospital.added == hospital.chunks == len(RECORDS)

    # the data lives on the server, not in a local PersistentClient
    client = get_client(server_settings)
    assert type(client).__name__ != "PersistentClient"
    assert client.get_collection("literature").count() == literature.chunks
    assert not (server_settings.resolved_index_dir / "chroma.sqlite3").exists()

    retriever = Retriever(server_settings)
    hits = retriever.search("my ear hurts and I can't hear well", k=3)
    assert hits, "no passages from the Chroma server"
    top = hits[0]
    assert top.collection == "literature" and top.url.startswith("http")
    cite = top.citation()
    assert top.title in cite and top.url in cite and "CC BY" in cite

    dept = retriever.search("胸痛 心悸", collection="hospital", k=1, mode="bm25")
    assert [p.doc_id for p in dept] == ["dept:CARDIO"]
    filtered = retriever.search("pain", collection="hospital", k=5, where={"floor": 3})
    assert {p.doc_id for p in filtered} == {"dept:ENT"}

    # a second ingest over the server is idempotent
    again = ingest_literature(server_settings, progress=False)
    assert again.added == 0 and again.unchanged == literature.chunks
