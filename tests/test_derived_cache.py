"""On-disk caches of derived structures (assistant.cache): invalidation and fallbacks.

The compiled red-flag patterns, the complaint-vocabulary index and jieba's prefix
dictionary are cached under ``$ASSISTANT_CACHE_DIR`` for cold-start speed. A cache must
never change behaviour: an edited YAML file is read afresh, an unwritable cache folder or
a corrupt entry falls back to building in memory, and nothing is written next to the
knowledge base.
"""

from __future__ import annotations

import os
import re
import types
from pathlib import Path

import pytest

from assistant import cache
from assistant.triage import complaints
from assistant.triage.red_flags import load_red_flag_rules, match_red_flags

_RULE = """
rules:
  - id: RF_CACHE_TEST
    name_en: Test rule
    name_zh: 测试规则
    disposition: emergency
    department: EMERG
    source: 'NHS.uk test page (for the test only)'
    advice_en: 'Go to the emergency department now.'
    advice_zh: '请立即去急诊。'
    match:
      - ['{pattern}']
"""


def _entries(root: Path, kind: str, source: Path | None = None) -> list[Path]:
    """Cache entries of ``kind`` (of one source file when given)."""
    prefix = f"{kind}-" if source is None else cache._entry(kind, str(source.resolve()), "-").name[:-9]
    return sorted((root / "derived").glob(f"{prefix}*.marshal"))


def _reload(path: Path) -> None:
    """Make the next load read ``path`` again (the in-process caches are keyed on the
    modification time; clearing them would also drop other tests' shared rule objects)."""
    stat = path.stat()
    os.utime(path, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))


def _fired(text: str, rules_path: Path) -> list[str]:
    return [h.rule_id for h in match_red_flags(text, rules=load_red_flag_rules(rules_path))]


def test_regex_cache_is_rebuilt_when_the_yaml_changes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(root))
    kb_dir = tmp_path / "kb"
    kb_dir.mkdir()
    rules = kb_dir / "rules.yaml"
    rules.write_text(_RULE.format(pattern=r"\bcrushing chest pain\b"), encoding="utf-8")

    assert _fired("I have crushing chest pain", rules) == ["RF_CACHE_TEST"]
    first = _entries(root, "regex", rules)
    assert len(first) == 1  # written on the first load
    _reload(rules)
    assert _fired("I have crushing chest pain", rules) == ["RF_CACHE_TEST"]  # read back
    assert _entries(root, "regex", rules) == first

    # same size, same second: only the content differs; the old patterns must not be used
    rules.write_text(_RULE.format(pattern=r"\bsqueezing chest ache"), encoding="utf-8")
    _reload(rules)
    assert _fired("I have crushing chest pain", rules) == []
    assert _fired("squeezing chest ache since noon", rules) == ["RF_CACHE_TEST"]
    second = _entries(root, "regex", rules)
    assert len(second) == 1 and second != first  # the stale entry is replaced
    assert sorted(p.name for p in kb_dir.iterdir()) == ["rules.yaml"]  # nothing beside the YAML


def test_cached_patterns_equal_freshly_compiled_ones(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))
    patterns = [r"\bchest (?:pain|tightness)\b", r"(?P<num>\d{1,2}) ?(?P<unit>day|week)s? old",
                r"胸口.{0,4}痛", r"(a)\1", r"(?i)Stroke"]
    writer = cache.RegexStore("scope", "key")
    assert [writer.compile(p) for p in patterns] == [re.compile(p) for p in patterns]
    writer.save()
    reader = cache.RegexStore("scope", "key")
    compiled = [reader.compile(p) for p in patterns]
    assert reader.misses == 0  # every pattern came from the cache
    assert compiled == [re.compile(p) for p in patterns]
    assert compiled[1].match("6 weeks old").groupdict() == {"num": "6", "unit": "week"}
    with pytest.raises(re.error):
        reader.compile("(unclosed")


def test_unwritable_cache_dir_and_corrupt_entries_fall_back(tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(blocker / "cache"))  # mkdir fails (even as root)
    rules = tmp_path / "rules.yaml"
    rules.write_text(_RULE.format(pattern=r"\bcrushing chest pain\b"), encoding="utf-8")
    assert _fired("I have crushing chest pain", rules) == ["RF_CACHE_TEST"]
    assert cache.write_entry("probe", "scope", "key", {"a": 1}) is False
    assert cache.cached_derived("probe", "scope", "key", lambda: {"built": 1}) == {"built": 1}

    root = tmp_path / "cache"
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(root))
    _reload(rules)
    assert _fired("I have crushing chest pain", rules) == ["RF_CACHE_TEST"]
    for entry in _entries(root, "regex", rules):
        entry.write_bytes(b"\x00garbage")  # truncated / corrupt
    _reload(rules)
    assert _fired("I have crushing chest pain", rules) == ["RF_CACHE_TEST"]


def test_complaint_index_cache_follows_the_vocabulary(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "cache"
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(root))
    vocab = tmp_path / "complaint_vocabulary.yaml"
    vocab.write_text(complaints.DEFAULT_VOCABULARY_PATH.read_text(encoding="utf-8"), encoding="utf-8")
    built = complaints.load_vocabulary(vocab)
    assert len(_entries(root, "complaint-index")) == 1
    _reload(vocab)
    cached = complaints.load_vocabulary(vocab)
    assert list(cached.index.items()) == list(built.index.items()) and cached.max_len == built.max_len

    phrase = "zorblax twinge"  # not a phrase of the vocabulary
    assert ("zorblax", "twinge") not in cached.index
    text = vocab.read_text(encoding="utf-8").replace("synonyms_en:\n", f"synonyms_en:\n  - {phrase}\n", 1)
    assert text != vocab.read_text(encoding="utf-8")
    vocab.write_text(text, encoding="utf-8")
    _reload(vocab)
    assert ("zorblax", "twinge") in complaints.load_vocabulary(vocab).index
    assert len(_entries(root, "complaint-index")) == 1  # the stale index was replaced


def test_sharded_jieba_dictionary_segments_like_jieba(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import jieba as real

    from assistant import text as text_mod

    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))

    def module() -> types.SimpleNamespace:
        tk = real.Tokenizer()
        return types.SimpleNamespace(dt=tk, initialize=tk.initialize, DEFAULT_DICT=real.DEFAULT_DICT,
                                     DEFAULT_DICT_NAME=real.DEFAULT_DICT_NAME, __file__=real.__file__,
                                     __version__=real.__version__)

    full = module()
    assert text_mod._init_sharded(full)  # builds the shards from the full dictionary
    assert isinstance(full.dt.FREQ, dict) and len(_entries(tmp_path, "jieba-prefix")) == 1
    lazy = module()
    assert text_mod._init_sharded(lazy)
    assert isinstance(lazy.dt.FREQ, text_mod._ShardedFreq) and lazy.dt.total == full.dt.total
    sentences = ["胸口压榨样疼痛，出冷汗", "我爸爸中风过，现在我头很痛", "孩子发烧三天了，39度5",
                 "小便时尿道口烧灼感", "突发剧烈头痛伴呕吐和颈部僵硬", "右下腹疼痛拒按", "我chest很痛"]
    for s in sentences:
        assert lazy.dt.lcut(s) == full.dt.lcut(s)
        assert lazy.dt.lcut(s, HMM=False) == full.dt.lcut(s, HMM=False)
        assert lazy.dt.lcut_for_search(s) == full.dt.lcut_for_search(s)
    lazy.dt.add_word("压榨样疼痛")
    assert "压榨样疼痛" in lazy.dt.lcut("胸口压榨样疼痛")


def test_parsed_yaml_is_cached_and_follows_edits(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """read_yaml: a hit returns what PyYAML returns (int keys and all), an edit is read
    afresh, and one entry per file is kept."""
    from assistant.paths import read_yaml

    root = tmp_path / "cache"
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(root))
    src = tmp_path / "table.yaml"
    src.write_text("codes:\n  12400: confusion\n  23000: intoxication\n", encoding="utf-8")
    first = read_yaml(src)
    assert first == {"codes": {12400: "confusion", 23000: "intoxication"}}
    assert read_yaml(src) == first  # from the cache: same types as the parse
    assert len(list((root / "derived").glob("yaml-*.marshal"))) == 1
    src.write_text("codes:\n  12400: altered mental status\n", encoding="utf-8")
    os.utime(src, ns=(src.stat().st_atime_ns, src.stat().st_mtime_ns + 1_000_000))
    assert read_yaml(src) == {"codes": {12400: "altered mental status"}}
    assert len(list((root / "derived").glob("yaml-*.marshal"))) == 1


def test_store_file_writes_other_formats_atomically_and_prunes_older_versions(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import numpy as np

    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path / "cache"))
    old = cache.entry_path("npz-probe", "source", "k1", ".npz")
    new = cache.entry_path("npz-probe", "source", "k2", ".npz")
    other = cache.entry_path("npz-probe", "another source", "k1", ".npz")
    for path, value in ((old, 1.0), (other, 3.0), (new, 2.0)):
        assert cache.store_file(path, lambda fh, v=value: np.savez(fh, a=np.full(3, v)))
    with np.load(new) as z:
        assert z["a"].tolist() == [2.0, 2.0, 2.0]
    assert not old.exists() and other.exists()  # an older version of the same source goes
    assert not list(new.parent.glob(".*.tmp"))  # no temporary file is left behind
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x", encoding="utf-8")
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(blocker / "cache"))
    assert cache.store_file(cache.entry_path("npz-probe", "s", "k", ".npz"), lambda fh: fh.write(b"x")) is False
