from __future__ import annotations

from pathlib import Path

import pytest

from assistant.errors import ConfigError
from assistant.settings import load_settings


def test_defaults_and_derived_paths() -> None:
    s = load_settings()
    assert s.llm_backend == "transformers"
    assert s.llm_model is None
    assert s.resolved_index_dir == Path(".assistant-data") / "index"
    assert s.resolved_hospital_db.name == "hospital.sqlite"


def test_unknown_keyword_is_named() -> None:
    with pytest.raises(ConfigError, match="unknown setting 'llm_modle'"):
        load_settings(llm_modle="x")


def test_unknown_env_var_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DEVIC", "cpu")
    with pytest.raises(ConfigError, match="ASSISTANT_DEVIC"):
        load_settings()


def test_env_var_sets_field(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_NUM_THREADS", "3")
    monkeypatch.setenv("ASSISTANT_DEFAULT_LANGUAGE", "zh")
    s = load_settings()
    assert (s.num_threads, s.default_language) == (3, "zh")


def test_cache_dir_variable_is_not_an_unknown_setting(monkeypatch: pytest.MonkeyPatch,
                                                     tmp_path) -> None:  # noqa: ANN001
    """ASSISTANT_CACHE_DIR (the derived-structure cache, read before any Settings) is a
    process variable like ASSISTANT_CONFIG, not a misspelt setting."""
    monkeypatch.setenv("ASSISTANT_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("ASSISTANT_NUM_THREAD", "3")
    with pytest.raises(ConfigError, match=r"unknown setting in environment: ASSISTANT_NUM_THREAD$"):
        load_settings()
    monkeypatch.delenv("ASSISTANT_NUM_THREAD")
    assert load_settings().num_threads >= 1


def test_bad_value_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_DEVICE", "tpu")
    with pytest.raises(ConfigError, match="setting 'device'"):
        load_settings()


def test_toml_file_and_priority(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cfg = tmp_path / "site.toml"
    cfg.write_text('num_threads = 4\ndefault_language = "zh"\n')
    monkeypatch.setenv("ASSISTANT_CONFIG", str(cfg))
    monkeypatch.setenv("ASSISTANT_NUM_THREADS", "6")  # env beats the file
    s = load_settings()
    assert s.default_language == "zh"
    assert s.num_threads == 6


def test_toml_unknown_key_is_named(tmp_path: Path) -> None:
    (tmp_path / "assistant.toml").write_text('num_thread = 4\n')  # ./assistant.toml is read
    with pytest.raises(ConfigError, match="unknown setting 'num_thread'"):
        load_settings()


def test_missing_config_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ASSISTANT_CONFIG", "/no/such/file.toml")
    with pytest.raises(ConfigError, match="no such file"):
        load_settings()


def test_fingerprint_ignores_secret_and_tracks_model() -> None:
    a = load_settings(staff_password="one")
    b = load_settings(staff_password="two")
    c = load_settings(llm_model="/models/qwen")
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()
