"""The knowledge base (assistant.kb), the shared text module and the emergency-only policy."""

from __future__ import annotations

import re
import shutil
from datetime import datetime, timezone
from pathlib import Path

import pytest

from assistant.domain import DemandSignal, Disposition
from assistant.errors import DataError
from assistant.kb import KNOWLEDGE_BASE_DIR, KnowledgeBase, default_kb
from assistant.text import answer_language, detect_language, tokenize


def test_catalog_carries_the_routing_rules() -> None:
    kb = default_kb()
    assert kb.paediatric_age_limit == 14 and kb.routing.paediatrics == "PEDS"
    assert {"OPHTH", "ENT", "DENT", "EMERG"} <= kb.child_direct and "CARDIO" not in kb.child_direct
    assert kb.emergency_only == frozenset({"EMERG"})
    assert "heart" in kb.aliases["CARDIO"] and kb.timezone.key == "Asia/Shanghai"
    assert all("EMERG" not in nb for nb in kb.neighbours.values())
    assert kb.allows("EMERG", emergency=True) and not kb.allows("EMERG", emergency=False)


def test_overflow_into_the_ed_is_rejected_when_loading(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE_BASE_DIR, root)
    text = (root / "departments.yaml").read_text(encoding="utf-8")
    text = text.replace("neighbours: [GENMED, GENSURG]", "neighbours: [GENMED]", 1)  # EMERG's own
    text = re.sub(r"(CARDIO:.*?neighbours: \[)GENMED\]", r"\1GENMED, EMERG]", text, count=1, flags=re.S)
    (root / "departments.yaml").write_text(text, encoding="utf-8")
    with pytest.raises(DataError, match="emergency-only"):
        KnowledgeBase(root)


def test_bad_policy_names_file_and_field(tmp_path: Path) -> None:
    root = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE_BASE_DIR, root)
    (root / "policy.yaml").write_text("timezone: Mars/Olympus\n", encoding="utf-8")
    with pytest.raises(DataError, match="policy.yaml.*timezone"):
        KnowledgeBase(root)
    with pytest.raises(DataError, match="not found"):
        KnowledgeBase(tmp_path / "missing")


def test_routine_signal_is_never_booked_into_the_ed(settings, hospital_db) -> None:  # noqa: ANN001
    from assistant.agent.booking import book_signal
    from assistant.hospital.db import open_db

    now = datetime.now(timezone.utc)
    factory = open_db(hospital_db, create=False)
    routine = DemandSignal.from_disposition(patient_ref="p-test-routine", department="EMERG",
                                            disposition=Disposition.CONSULTATION, now=now)
    out = book_signal(factory, routine)
    assert not out.booked and "emergency" in out.reason


def test_one_language_detector() -> None:
    assert detect_language("胸口痛") == ("zh", 1.0)
    assert detect_language("chest pain")[0] == "en"
    assert detect_language("我chest很痛")[0] in ("mixed", "zh")
    assert detect_language("🙂 123") == ("unknown", 0.0)
    assert answer_language("我chest很痛") == "zh" and answer_language("🙂", "zh") == "zh"
    assert answer_language("I have 头痛 since yesterday") == "en"


def test_one_tokenizer() -> None:
    assert tokenize("Chest PAIN, 胸口疼") [:2] == ["chest", "pain"]
    assert "胸口" in tokenize("胸口疼")


@pytest.mark.parametrize("text, affirmed", [
    ("my father had a stroke last year", False),
    ("history of appendicitis as a child", False),
    ("no chest pain today", False),
    ("what are the signs of a stroke?", False),
    ("I think I am having a stroke", True),
    ("chest pain since this morning", True),
])
def test_urgency_and_red_flags_read_context_alike(text: str, affirmed: bool) -> None:
    """Sentences that the old 30-character urgency window read differently from red flags."""
    from assistant.triage.red_flags import ContextDoc, affirmed_spans

    pattern = re.compile(r"stroke|appendicitis|chest pain")
    assert bool(affirmed_spans(text, pattern)) is affirmed
    assert bool(ContextDoc(text).affirmed_spans(pattern)) is affirmed  # what assess_urgency reads


def test_triage_uses_the_configured_knowledge_base(settings, hospital_db, tmp_path: Path) -> None:  # noqa: ANN001
    """Red flags come from the settings' knowledge base, not a copy in code."""
    import yaml

    from assistant.triage.engine import Triager

    root = tmp_path / "kb"
    shutil.copytree(KNOWLEDGE_BASE_DIR, root)
    data = yaml.safe_load((root / "red_flags.yaml").read_text(encoding="utf-8"))
    data["rules"].append({
        "id": "RF_TEST_LOCAL_RULE", "name_en": "Local test rule", "name_zh": "本地测试规则",
        "disposition": "emergency", "department": "EMERG",
        "source": "test: a hospital's own addition to its knowledge base",
        "advice_en": "Go to the emergency department now.", "advice_zh": "请立即前往急诊。",
        "match": [["zebra stripes on my tongue"]],
    })
    (root / "red_flags.yaml").write_text(yaml.safe_dump(data, allow_unicode=True), encoding="utf-8")
    local = Triager(settings.model_copy(update={"knowledge_base_dir": root}), kb=KnowledgeBase(root))
    hit = local.triage("I have zebra stripes on my tongue", age=30)
    assert [r.rule_id for r in hit.red_flags] == ["RF_TEST_LOCAL_RULE"] and hit.disposition.is_emergency
    plain = Triager(settings).triage("I have zebra stripes on my tongue", age=30)
    assert not plain.red_flags
