"""Security controls: staff accounts, login throttling and audit, closed endpoints,
security headers, health endpoint, one-line errors on corrupt state.

The served app runs on 127.0.0.1 with a scripted chat model (no real model load); staff
events are private, so they are driven the way a browser drives them: the Gradio queue
protocol over plain HTTP, by fn_index found from the button's elem_id in /config.
"""

from __future__ import annotations

import errno
import json
import sqlite3
import sys
import threading
import uuid
from pathlib import Path

import httpx
import pytest
from pydantic import SecretStr
from servers import free_port

from assistant.errors import AuthError, StorageError
from assistant.ui.auth import (
    LoginThrottle,
    StaffAccounts,
    add_account,
    audit,
    client_ref,
    hash_password,
    load_accounts_file,
)

STAFF_PW = "s3cret-sec-test"


class FakeClock:
    """Monotonic clock the tests move by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


# --- throttle --------------------------------------------------------------------------


def test_throttle_locks_after_five_failures_with_doubling_backoff_capped() -> None:
    clock = FakeClock()
    t = LoginThrottle(failures=5, base_s=30, cap_s=900, clock=clock)
    for _ in range(5):
        assert t.begin_attempt("alice", "10.0.0.1") == 0.0  # counted as a failure
    assert t.retry_after("alice", "10.0.0.1") == 30
    assert t.begin_attempt("alice", "10.0.0.1") == 30  # refused, nothing counted
    assert t.retry_after("alice", "10.0.0.9") == 30  # the user is locked from any client
    assert t.retry_after("bob", "10.0.0.1") == 30  # and the client for any user
    expected = [60, 120, 240, 480, 900, 900]
    for lock in expected:
        clock.now += t.retry_after("alice", "10.0.0.1")
        assert t.begin_attempt("alice", "10.0.0.1") == 0.0
        assert t.retry_after("alice", "10.0.0.1") == lock


def test_throttle_per_client_stops_password_spraying_over_many_users() -> None:
    t = LoginThrottle(failures=5, base_s=30, cap_s=900, clock=FakeClock())
    for i in range(5):
        assert t.begin_attempt(f"user{i}", "203.0.113.7") == 0.0
    assert t.begin_attempt("user99", "203.0.113.7") == 30
    assert t.begin_attempt("user99", "198.51.100.1") == 0.0  # another client is not locked


def test_throttle_success_clears_user_but_not_client_failures() -> None:
    t = LoginThrottle(failures=5, base_s=30, cap_s=900, clock=FakeClock())
    for _ in range(4):
        t.begin_attempt("alice", "c1")
    t.begin_attempt("alice", "c1")
    t.record_success("alice", "c1")  # the fifth attempt was right
    assert t.retry_after("alice", "c2") == 0.0
    assert t.begin_attempt("eve", "c1") == 0.0  # c1 has 4 failures left + this one = 5
    assert t.retry_after("mallory", "c1") == 30


def test_throttle_parallel_attempts_cannot_pass_the_limit() -> None:
    t = LoginThrottle(failures=5, base_s=30, cap_s=900, clock=FakeClock())
    results: list[float] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def attempt() -> None:
        barrier.wait()
        r = t.begin_attempt("alice", "c1")
        with lock:
            results.append(r)

    threads = [threading.Thread(target=attempt) for _ in range(50)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert sorted(results).count(0.0) == 5 and len(results) == 50


def test_throttle_forgets_idle_keys() -> None:
    clock = FakeClock()
    t = LoginThrottle(failures=5, base_s=30, cap_s=900, forget_s=3600, clock=clock)
    for _ in range(4):
        t.begin_attempt("alice", "c1")
    clock.now += 3601
    for _ in range(4):
        assert t.begin_attempt("alice", "c1") == 0.0
    assert t.retry_after("alice", "c1") == 0.0


# --- accounts ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["staff_accounts.toml", "accounts.json"])
def test_accounts_file_round_trip_stores_only_bcrypt_hashes(tmp_path: Path, name: str) -> None:
    path = tmp_path / name
    assert add_account(path, "dr.li", "correct horse battery", rounds=4) is True
    assert add_account(path, "nurse_wu", "another long pw", rounds=4) is True
    assert add_account(path, "dr.li", "changed password!", rounds=4) is False
    text = path.read_text()
    assert "correct horse" not in text and "changed password" not in text
    assert path.stat().st_mode & 0o077 == 0
    hashes = load_accounts_file(path)
    assert sorted(hashes) == ["dr.li", "nurse_wu"] and all(h.startswith("$2b$04$") for h in hashes.values())
    accounts = StaffAccounts(hashes)
    assert accounts.verify("dr.li", "changed password!")
    assert not accounts.verify("dr.li", "correct horse battery")
    assert not accounts.verify("nobody", "changed password!")
    assert not accounts.verify("dr.li", "x" * 100)  # over bcrypt's 72 bytes: refused, not truncated


def test_accounts_file_errors_never_show_hashes(tmp_path: Path) -> None:
    bad = tmp_path / "a.toml"
    bad.write_text('"dr li" = "$2b$04$abc"\n')
    with pytest.raises(AuthError, match="bad user name"):
        load_accounts_file(bad)
    bad.write_text('"dr.li" = "plaintext-password"\n')
    with pytest.raises(AuthError, match="not a bcrypt hash") as info:
        load_accounts_file(bad)
    assert "plaintext-password" not in str(info.value)
    with pytest.raises(AuthError, match="at least 8"):
        add_account(tmp_path / "b.toml", "dr.li", "short", rounds=4)
    with pytest.raises(AuthError, match="72 bytes"):
        hash_password("x" * 73, rounds=4)


def test_legacy_staff_password_setting_still_logs_in(settings, tmp_path: Path) -> None:  # noqa: ANN001
    s = settings.model_copy(update={"staff_password": SecretStr("legacy-pass"), "data_dir": tmp_path})
    accounts = StaffAccounts.from_settings(s)
    assert accounts.users == ["staff"]
    assert accounts.verify("staff", "legacy-pass") and not accounts.verify("staff", "legacy-pas")
    add_account(s.resolved_staff_accounts_file, "dr.li", "named account pw", rounds=4)
    both = StaffAccounts.from_settings(s)
    assert both.users == ["dr.li", "staff"] and both.verify("dr.li", "named account pw")
    assert not StaffAccounts.from_settings(settings.model_copy(update={"data_dir": tmp_path / "x"}))


def test_cli_staff_add_user_prompts_hidden_and_writes_hash(tmp_path: Path, monkeypatch) -> None:  # noqa: ANN001
    from typer.testing import CliRunner

    from assistant.cli import app

    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    result = CliRunner().invoke(app, ["staff", "add-user", "dr.li"],
                                input="a long password\na long password\n")
    assert result.exit_code == 0, result.output
    assert "a long password" not in result.output  # hidden prompt: nothing echoed
    hashes = load_accounts_file(tmp_path / "staff_accounts.toml")
    assert StaffAccounts(hashes).verify("dr.li", "a long password")
    mismatch = CliRunner().invoke(app, ["staff", "add-user", "nurse"],
                                  input="first password\nsecond password\nfirst password\nfirst password\n")
    assert mismatch.exit_code == 0 and "nurse" in load_accounts_file(tmp_path / "staff_accounts.toml")


def test_audit_lines_and_client_ref(tmp_path: Path) -> None:
    ref = client_ref(tmp_path, "192.0.2.4")
    assert ref == client_ref(tmp_path, "192.0.2.4") != client_ref(tmp_path, "192.0.2.5")
    assert "192.0.2.4" not in ref and len(ref) == 16
    assert (tmp_path / "audit.key").stat().st_mode & 0o077 == 0
    audit(tmp_path, {"action": "x", "actor": "dr.li"})
    row = json.loads((tmp_path / "audit.jsonl").read_text().splitlines()[-1])
    assert row["actor"] == "dr.li" and "at" in row


# --- served app over HTTP ----------------------------------------------------------------


@pytest.fixture(scope="module")
def secure_app(settings, tmp_path_factory):  # noqa: ANN001, ANN201
    """(base url, blocks, data_dir): the hardened app with its own data dir and demo hospital."""
    sys.path.insert(0, str(Path(__file__).parent))
    from conftest import ScriptedChatModel

    from assistant.hospital.demo import build_demo_hospital
    from assistant.ui.app import BackgroundServer, build_app

    data = tmp_path_factory.mktemp("secure")
    s = settings.model_copy(update={"data_dir": data, "staff_password": SecretStr(STAFF_PW),
                                    "llm_lead_in": False})
    build_demo_hospital(s.resolved_hospital_db, seed=7)
    add_account(s.resolved_staff_accounts_file, "dr.li", "dr-li-password", rounds=4)
    blocks = build_app(s, backend=ScriptedChatModel())
    server = BackgroundServer(blocks, host="127.0.0.1", port=free_port())
    yield server.url, blocks, data
    server.close()


class Browser:
    """One browser session speaking Gradio's queue protocol over plain HTTP."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.session = uuid.uuid4().hex[:11]
        config = httpx.get(base + "config", timeout=30).json()
        ids = {c["props"].get("elem_id"): c["id"] for c in config["components"] if c.get("props")}
        self.fn = {}
        for dep in config["dependencies"]:
            for target, _event in dep["targets"]:
                for elem, cid in ids.items():
                    if cid == target and elem:
                        self.fn[elem] = dep["id"]

    def call(self, elem_id: str, *data: object) -> dict:
        """Run the click handler of ``elem_id``; returns the ``process_completed`` message."""
        body = {"data": list(data), "fn_index": self.fn[elem_id], "session_hash": self.session,
                "event_data": None, "trigger_id": None}
        r = httpx.post(self.base + "gradio_api/queue/join", json=body, timeout=30)
        r.raise_for_status()
        with httpx.stream("GET", self.base + "gradio_api/queue/data",
                          params={"session_hash": self.session}, timeout=120) as resp:
            for line in resp.iter_lines():
                if line.startswith("data:"):
                    msg = json.loads(line[5:])
                    if msg.get("msg") == "process_completed":
                        return msg
        raise AssertionError("no process_completed message")

    def login(self, user: str, password: str) -> str:
        msg = self.call("staff-login", user, password)
        return msg["output"]["data"][-1]


def _audit_rows(data: Path) -> list[dict]:
    return [json.loads(x) for x in (data / "audit.jsonl").read_text().splitlines()]


def test_unused_endpoints_are_404_and_headers_are_set(secure_app) -> None:  # noqa: ANN001
    base, _, _ = secure_app
    for path in ("gradio_api/upload", "gradio_api/upload/", "monitoring", "monitoring/summary",
                 "gradio_api/monitoring/summary", "openapi.json", "gradio_api/openapi.json", "docs",
                 "redoc", "gradio_api/mcp/schema", "gradio_api/run-history/records", "login"):
        r = httpx.get(base + path, timeout=30)
        assert r.status_code == 404, path
    upload = httpx.post(base + "gradio_api/upload", files={"files": ("a.txt", b"hello")}, timeout=30)
    assert upload.status_code == 404
    for path in ("", "config", "healthz", "gradio_api/upload"):
        r = httpx.get(base + path, timeout=30)
        assert r.headers["x-frame-options"] == "DENY", path
        assert r.headers["x-content-type-options"] == "nosniff"
        assert "frame-ancestors 'none'" in r.headers["content-security-policy"]
        assert "default-src 'self'" in r.headers["content-security-policy"]


def test_staff_endpoints_are_not_listed(secure_app) -> None:  # noqa: ANN001
    base, _, _ = secure_app
    info = httpx.get(base + "gradio_api/info", timeout=30).json()
    assert "/chat" in info["named_endpoints"]
    assert not any("staff" in name or "false" in name for name in info["named_endpoints"])
    for path in ("gradio_api/info", "config", ""):
        text = httpx.get(base + path, timeout=30).text
        assert "staff_login" not in text and "staff_query" not in text and "staff_reoptimise" not in text, path


def test_healthz_reports_readiness(secure_app) -> None:  # noqa: ANN001
    base, _, _ = secure_app
    r = httpx.get(base + "healthz", timeout=30)
    assert r.status_code == 200
    body = r.json()
    assert body["status"] == "ready" and body["hospital_db"] == "ok" and body["knowledge_base"] == "ok"
    assert body["index"] in ("ok", "missing", "empty") or body["index"].startswith(("corrupt", "no embedder"))
    assert isinstance(body["retrieval"], bool) and isinstance(body["chat_model"], bool)


def test_staff_calls_without_login_or_with_forged_state_are_refused(secure_app) -> None:  # noqa: ANN001
    base, blocks, _ = secure_app
    blocks.login_throttle.reset()
    browser = Browser(base)
    for elem, args in (("staff-ask", ("free ICU beds?", "staff")), ("staff-dashboard", ("staff",)),
                       ("staff-reoptimise", (True,))):
        msg = browser.call(elem, *args)  # the auth slot is server-side state: the sent value is ignored
        assert msg["success"] is False and "login required" in json.dumps(msg).lower()
    assert "Wrong user or password" in browser.login("staff", "wrong")
    msg = browser.call("staff-ask", "free ICU beds?", None)
    assert msg["success"] is False


def test_login_success_is_audited_and_actions_carry_the_user(secure_app) -> None:  # noqa: ANN001
    base, blocks, data = secure_app
    blocks.login_throttle.reset()
    browser = Browser(base)
    assert "Logged in as dr.li" in browser.login("dr.li", "dr-li-password")
    msg = browser.call("staff-ask", "How many ICU beds are free?", None)
    assert msg["success"] is True and "free of" in json.dumps(msg)
    msg = browser.call("staff-reoptimise", None)
    assert msg["success"] is True
    rows = _audit_rows(data)
    login = [r for r in rows if r["action"] == "staff_login" and r["outcome"] == "success"][-1]
    assert login["actor"] == "dr.li" and len(login["client"]) == 16 and "127.0.0.1" not in json.dumps(login)
    reopt = [r for r in rows if r["action"] == "reoptimise"][-1]
    assert reopt["actor"] == "dr.li"
    assert [r for r in rows if r["action"] == "staff_query"][-1]["actor"] == "dr.li"
    other = Browser(base)  # the legacy staff_user/staff_password account works too
    assert "Logged in as staff" in other.login("staff", STAFF_PW)


def test_lockout_over_http_and_every_attempt_audited_without_password(secure_app) -> None:  # noqa: ANN001
    base, blocks, data = secure_app
    blocks.login_throttle.reset()
    browser = Browser(base)
    before = len(_audit_rows(data)) if (data / "audit.jsonl").exists() else 0
    for i in range(5):
        assert "Wrong user or password" in browser.login("dr.li", f"guess-{i}-pw")
    status = browser.login("dr.li", "dr-li-password")  # right password, but locked out
    assert "Too many failed logins" in status and "Logged in" not in status
    other_user = Browser(base).login("staff", STAFF_PW)  # same client address: locked as well
    assert "Too many failed logins" in other_user
    msg = browser.call("staff-ask", "free ICU beds?", None)
    assert msg["success"] is False
    rows = _audit_rows(data)[before:]
    outcomes = [r["outcome"] for r in rows if r["action"] == "staff_login"]
    assert outcomes == ["failure"] * 5 + ["locked", "locked"]
    assert all(r["actor"] in ("dr.li", "staff") for r in rows)
    text = (data / "audit.jsonl").read_text()
    assert "guess-" not in text and "dr-li-password" not in text and STAFF_PW not in text
    blocks.login_throttle.reset()
    assert "Logged in as dr.li" in browser.login("dr.li", "dr-li-password")


def test_failed_login_with_password_in_user_field_is_not_audited_in_clear(secure_app) -> None:  # noqa: ANN001
    base, blocks, data = secure_app
    blocks.login_throttle.reset()
    Browser(base).login("dr-li-password-typed-in-user-box", "")
    row = _audit_rows(data)[-1]
    assert row["outcome"] == "failure" and row["actor"] is None and len(row["user_ref"]) == 16
    assert "typed-in-user-box" not in (data / "audit.jsonl").read_text()
    blocks.login_throttle.reset()


def test_patient_text_in_age_field_never_reaches_logs(secure_app, caplog, capfd) -> None:  # noqa: ANN001
    base, _, _ = secure_app
    from gradio_client import Client

    secret = "Zebra-7731 my husband hits me"
    caplog.set_level("DEBUG")
    client = Client(base, verbose=False)
    history, banner, *_ = client.predict(f"{secret} and I have a sore throat", [], "Auto", secret, "X", False,
                                         api_name="/chat")
    assert "urgency-banner" in banner  # the turn ran; the bad age was dropped, not echoed
    _, banner2, *_ = client.predict("rash on my arm for a week", [], "Auto", 1e9, "", False, api_name="/chat")
    assert "urgency-banner" in banner2
    _, banner3, *_ = client.predict("headache since this morning", [], secret, "12",
                                    secret, secret, api_name="/chat")
    assert "urgency-banner" in banner3  # every field wrong: still a calm triaged answer
    client_side = ("httpx", "httpcore", "gradio_client", "urllib3")  # the test's own client
    logged = "\n".join(r.getMessage() + str(r.exc_info or "") + str(r.args) for r in caplog.records
                       if not r.name.startswith(client_side))
    out, err = capfd.readouterr()
    assert "Zebra-7731" not in logged and "Zebra-7731" not in out and "Zebra-7731" not in err
    assert "Traceback" not in err


# --- corrupt state: one line, exit 2 ------------------------------------------------------


def _run_cli(monkeypatch, capsys, *argv: str) -> tuple[int, str]:  # noqa: ANN001
    from assistant.cli import main

    monkeypatch.setattr(sys, "argv", ["assistant", *argv])
    with pytest.raises(SystemExit) as info:
        main()
    return info.value.code, capsys.readouterr().err


def _corrupt_copy(src: Path, dst: Path) -> None:
    """A copy with a valid SQLite header and garbage pages after the first."""
    data = bytearray(src.read_bytes())
    page = int.from_bytes(data[16:18], "big") or 65536
    data[page:page * 6] = b"\xde\xad\xbe\xef" * (page * 5 // 4)
    dst.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["garbage", "bad_pages"])
@pytest.mark.parametrize("argv", [("triage", "--text", "sore throat"), ("serve", "--port", "1"),
                                  ("hospital", "import", "CSV")])
def test_corrupt_hospital_db_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys, hospital_db: Path,  # noqa: ANN001
                                                kind: str, argv: tuple[str, ...]) -> None:
    db = tmp_path / "hospital.sqlite"
    if kind == "garbage":
        db.write_bytes(b"this is not a database" * 1000)
    else:
        _corrupt_copy(hospital_db, db)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    fixtures = Path(__file__).parent / "fixtures" / "hospital" / "csv"
    argv = tuple(str(fixtures) if a == "CSV" else a for a in argv)
    code, err = _run_cli(monkeypatch, capsys, *argv)
    assert code == 2
    lines = [x for x in err.splitlines() if x.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err
    assert "corrupt" in lines[0] or "not a usable SQLite database" in lines[0]


@pytest.mark.parametrize("failure", ["oserror", "sqlite_full"])
def test_disk_full_during_hospital_demo_is_one_line_exit_2(tmp_path: Path, monkeypatch, capsys,  # noqa: ANN001
                                                           failure: str) -> None:
    from sqlalchemy.exc import OperationalError

    import assistant.hospital.demo as demo

    def full(*_a: object, **_k: object) -> None:
        if failure == "oserror":
            raise OSError(errno.ENOSPC, "No space left on device", str(tmp_path / "hospital.sqlite"))
        raise OperationalError("INSERT INTO clinic_slots", {}, sqlite3.OperationalError("database or disk is full"))

    monkeypatch.setattr(demo, "build_demo_hospital", full)
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    code, err = _run_cli(monkeypatch, capsys, "hospital", "demo")
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and lines[0].startswith("error: disk full")


def test_open_db_maps_corrupt_file_to_storage_error(tmp_path: Path) -> None:
    from assistant.hospital.db import open_db

    bad = tmp_path / "h.sqlite"
    bad.write_bytes(b"\x00garbage" * 512)
    for create in (True, False):
        with pytest.raises(StorageError, match="not a usable SQLite database"):
            open_db(bad, create=create)


@pytest.mark.parametrize("state", ["empty", "corrupt", "no_embedder"])
def test_serve_refuses_broken_index_unless_allowed(tmp_path: Path, monkeypatch, capsys, hospital_db: Path,  # noqa: ANN001
                                                   state: str) -> None:
    import shutil

    import assistant.ui.app as ui

    shutil.copy(hospital_db, tmp_path / "hospital.sqlite")
    monkeypatch.setenv("ASSISTANT_DATA_DIR", str(tmp_path))
    index = tmp_path / "index"
    index.mkdir()
    if state == "corrupt":
        (index / "chroma.sqlite3").write_bytes(b"not sqlite at all" * 100)
    if state == "no_embedder":
        monkeypatch.setenv("ASSISTANT_EMBEDDING_MODEL", str(tmp_path / "no-such-model"))
    served: list[str] = []
    monkeypatch.setattr(ui, "launch", lambda app, **kw: served.append("served"))
    monkeypatch.setattr(ui, "build_app", lambda settings, **kw: object())
    monkeypatch.setattr("assistant.llm.get_backend", lambda settings: None)
    code, err = _run_cli(monkeypatch, capsys, "serve", "--port", "1")
    lines = [x for x in err.splitlines() if x.strip()]
    assert code == 2 and len(lines) == 1 and "--allow-no-index" in lines[0] and not served
    from typer.testing import CliRunner

    from assistant.cli import app

    result = CliRunner().invoke(app, ["serve", "--port", "1", "--allow-no-index"])
    assert result.exit_code == 0, result.output
    assert served == ["served"] and "serving without citations" in result.output
