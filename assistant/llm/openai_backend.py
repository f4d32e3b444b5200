"""The ``openai`` chat backend: any OpenAI-compatible server (vLLM, SGLang, llama.cpp
server, Ollama, ``transformers serve``) through the official ``openai`` client.

* free text: ``chat.completions.create`` (greedy: ``temperature=0``), streamed or not;
* schema-constrained output through the server's structured-output option, chosen by
  ``settings.llm_structured_output``:

  - ``json_schema``: OpenAI ``response_format={"type": "json_schema", ...}`` (vLLM,
    SGLang, llama.cpp server, Ollama);
  - ``vllm``: vLLM's ``extra_body={"structured_outputs": {"json": schema}}``;
  - ``prompt``: the schema is only written into the prompt (servers without a
    structured-output option, e.g. ``transformers serve``).

  The reply is always validated (pydantic for a model class, ``jsonschema`` for a
  schema dict) and the request is retried once, with the validation error, when it
  fails; a second failure raises :class:`~assistant.errors.GenerationError`.
* tool calls through the server's tools API (``tools``, ``tool_choice``), see
  :meth:`OpenAIBackend.tool_call`, used by
  :class:`~assistant.llm.langchain_adapter.LocalChatModel` when ``settings.llm_tools``
  is ``native``.

Every failure to reach the server (refused connection, timeout, HTTP error) raises
:class:`~assistant.errors.GenerationError` naming the URL and the cause, never the
prompt; callers fall back to their deterministic answer.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Iterator, Sequence
from typing import Any

from pydantic import BaseModel, ValidationError

from assistant.errors import ConfigError, GenerationError
from assistant.llm.base import Message
from assistant.settings import Settings

log = logging.getLogger(__name__)

SCHEMA_INSTRUCTION = (
    "Reply with one JSON object only, no other text, that matches this JSON schema:\n{schema}"
)
RETRY_INSTRUCTION = (
    "Your previous reply was not valid ({error}). Reply again with one JSON object only "
    "that matches the schema."
)
TOOL_RETRY_INSTRUCTION = (
    "Your previous reply was not a valid call of one of the tools ({error}). Call exactly one "
    "tool with arguments that match its parameters."
)
FINAL_ANSWER = "final_answer"


def _schema_dict(schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
    return schema.model_json_schema() if isinstance(schema, type) else schema


def _schema_name(schema: type[BaseModel] | dict[str, Any]) -> str:
    raw = schema.__name__ if isinstance(schema, type) else str(schema.get("title") or "reply")
    name = "".join(ch if ch.isalnum() or ch in "_-" else "_" for ch in raw)[:64]
    return name or "reply"


def _strip_fences(text: str) -> str:
    """Text without a Markdown code fence around it (models often add ```json ...```)."""
    stripped = text.strip()
    if stripped.startswith("```"):
        stripped = stripped.split("\n", 1)[1] if "\n" in stripped else ""
        if stripped.rstrip().endswith("```"):
            stripped = stripped.rstrip()[:-3]
    return stripped.strip()


def validate_reply(text: str, schema: type[BaseModel] | dict[str, Any]) -> Any:
    """Parse and validate a JSON reply.

    Args:
        text: the model's reply (a Markdown code fence around it is tolerated).
        schema: pydantic model class (returns an instance) or JSON schema dict (returns
            the parsed object after ``jsonschema`` validation).

    Raises:
        ValueError: the text is not JSON or does not match the schema (pydantic's
            ``ValidationError`` and ``jsonschema``'s errors are re-raised as ValueError
            with a one-line message).
    """
    body = _strip_fences(text)
    if isinstance(schema, type):
        try:
            return schema.model_validate_json(body)
        except ValidationError as exc:
            first = exc.errors()[0] if exc.errors() else {"msg": str(exc), "loc": ()}
            loc = ".".join(str(p) for p in first.get("loc", ()))
            raise ValueError(f"{loc or 'reply'}: {first['msg']}") from None
    import jsonschema

    data = json.loads(body)  # json.JSONDecodeError is a ValueError
    try:
        jsonschema.validate(data, schema)
    except jsonschema.ValidationError as exc:
        loc = ".".join(str(p) for p in exc.absolute_path)
        raise ValueError(f"{loc or 'reply'}: {exc.message[:200]}") from None
    return data


class OpenAIBackend:
    """A model on an OpenAI-compatible server behind the
    :class:`~assistant.llm.base.ChatBackend` protocol.

    Args:
        settings: ``llm_base_url`` (required), ``llm_api_key``, ``llm_model`` (served
            model name; None: the first model the server lists), ``llm_timeout_s``,
            ``max_new_tokens``, ``llm_structured_output`` and ``llm_tools`` are used.

    Raises:
        ConfigError: ``llm_base_url`` is not set.

    Nothing is sent at construction: a server that is down only fails the calls, so a
    service built with this backend still starts and answers deterministically.
    """

    name = "openai"
    device = "remote"

    def __init__(self, settings: Settings) -> None:
        if not settings.llm_base_url:
            raise ConfigError(
                "llm_backend=openai needs llm_base_url (e.g. ASSISTANT_LLM_BASE_URL="
                "http://127.0.0.1:8000/v1)"
            )
        from openai import OpenAI

        self.settings = settings
        self.base_url = settings.llm_base_url.rstrip("/")
        key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else "no-key"
        # the client's own retries would multiply the timeout on a dead server: one try
        self.client = OpenAI(
            base_url=self.base_url, api_key=key, timeout=settings.llm_timeout_s, max_retries=0
        )
        self._served: str | None = settings.llm_model
        self._lock = threading.Lock()
        self.supports_native_tools = settings.llm_tools == "native"

    # -- identity ----------------------------------------------------------------------
    @property
    def model_id(self) -> str:
        """``<served model name> @ <base url>`` (the name is looked up on first use)."""
        return f"{self._served or '?'} @ {self.base_url}"

    def served_model(self) -> str:
        """The served model name: ``llm_model``, else the first model the server lists.

        Raises:
            GenerationError: the server is unreachable or lists no model.
        """
        if self._served is None:
            with self._lock:
                if self._served is None:
                    models = self._call(lambda: list(self.client.models.list()))
                    if not models:
                        raise GenerationError(f"LLM server {self.base_url} lists no model")
                    self._served = models[0].id
        return self._served

    # -- transport ---------------------------------------------------------------------
    def _call(self, fn: Any) -> Any:
        """Run one client call; every transport or HTTP failure becomes GenerationError."""
        import openai

        try:
            return fn()
        except openai.APITimeoutError as exc:
            raise GenerationError(
                f"LLM server {self.base_url} did not answer within {self.settings.llm_timeout_s:g} s"
            ) from exc
        except openai.APIConnectionError as exc:
            cause = type(exc.__cause__).__name__ if exc.__cause__ else "connection failed"
            raise GenerationError(
                f"LLM server {self.base_url} is unreachable ({cause}); is it running?"
            ) from exc
        except openai.APIStatusError as exc:
            try:
                detail = json.dumps(exc.response.json())[:200]
            except ValueError:  # not JSON: the status code is enough
                detail = ""
            raise GenerationError(
                f"LLM server {self.base_url} answered HTTP {exc.status_code} {detail}".rstrip()
            ) from exc

    def _create(self, messages: Sequence[dict[str, Any]], max_new_tokens: int, **extra: Any) -> Any:
        return self._call(
            lambda: self.client.chat.completions.create(
                model=self.served_model(),
                messages=list(messages),  # type: ignore[arg-type]
                max_tokens=max_new_tokens,
                temperature=0.0,
                **extra,
            )
        )

    def _structured_kwargs(self, schema: type[BaseModel] | dict[str, Any]) -> dict[str, Any]:
        raw = _schema_dict(schema)
        mode = self.settings.llm_structured_output
        if mode == "json_schema":
            return {
                "response_format": {
                    "type": "json_schema",
                    "json_schema": {"name": _schema_name(schema), "schema": raw, "strict": True},
                }
            }
        if mode == "vllm":
            return {"extra_body": {"structured_outputs": {"json": raw}}}
        return {}

    # -- protocol ----------------------------------------------------------------------
    def generate(
        self,
        messages: Sequence[Message],
        *,
        schema: type[BaseModel] | dict[str, Any] | None = None,
        max_new_tokens: int | None = None,
    ) -> Any:
        """Greedy completion on the server; see :meth:`ChatBackend.generate`.

        With a schema: the server's structured-output option (``llm_structured_output``)
        plus the schema in a system instruction; the reply is validated and, when
        invalid, the request is repeated once with the error message appended.

        Raises:
            GenerationError: the server is unreachable, timed out or refused the request,
                or the reply still fails validation after the retry.
        """
        budget = max_new_tokens or self.settings.max_new_tokens
        if schema is None:
            response = self._create(messages, budget)
            return (response.choices[0].message.content or "").strip()

        instruction = SCHEMA_INSTRUCTION.format(
            schema=json.dumps(_schema_dict(schema), ensure_ascii=False)
        )
        chat: list[dict[str, Any]] = [*messages]
        if chat and chat[0]["role"] == "system":
            chat[0] = {"role": "system", "content": f"{chat[0]['content']}\n\n{instruction}"}
        else:
            chat.insert(0, {"role": "system", "content": instruction})
        extra = self._structured_kwargs(schema)
        error = ""
        for attempt in (1, 2):
            response = self._create(chat, budget, **extra)
            text = response.choices[0].message.content or ""
            try:
                return validate_reply(text, schema)
            except ValueError as exc:
                error = str(exc).splitlines()[0][:200]
                log.warning("server reply failed the schema (attempt %d): %s", attempt, error)
                chat = [*chat, {"role": "assistant", "content": text[:2000]},
                        {"role": "user", "content": RETRY_INSTRUCTION.format(error=error)}]
        raise GenerationError(f"model output did not match the schema: {error}")

    def stream(
        self, messages: Sequence[Message], *, max_new_tokens: int | None = None
    ) -> Iterator[str]:
        """Yield text pieces as the server streams them (server-sent events); closing the
        iterator early closes the HTTP stream.

        Raises:
            GenerationError: the server is unreachable or fails mid-stream.
        """
        import openai

        budget = max_new_tokens or self.settings.max_new_tokens
        chunks = self._create(messages, budget, stream=True)
        try:
            for chunk in chunks:
                if not chunk.choices:
                    continue
                piece = chunk.choices[0].delta.content
                if piece:
                    yield piece
        except (openai.OpenAIError, OSError) as exc:
            raise GenerationError(
                f"LLM server {self.base_url} failed mid-stream ({type(exc).__name__})"
            ) from exc
        finally:
            chunks.close()  # a reader that stops early closes the connection

    # -- tools -------------------------------------------------------------------------
    def tool_call(
        self,
        messages: Sequence[dict[str, Any]],
        tools: Sequence[dict[str, Any]],
        *,
        tool_choice: str | None = None,
        max_new_tokens: int | None = None,
    ) -> dict[str, Any]:
        """One tool call through the server's tools API.

        Args:
            messages: OpenAI chat messages (may hold ``tool_calls`` and ``tool`` turns).
            tools: OpenAI tool dicts (``convert_to_openai_tool`` outputs).
            tool_choice: None/"auto" (a text answer is allowed), "any"/"required", or a
                tool name (sent as "required" when it is the only tool offered).
            max_new_tokens: cap on generated tokens.

        Returns:
            ``{"tool": name, "arguments": dict}``, or ``{"tool": "final_answer",
            "arguments": {"answer": str}}`` when ``tool_choice`` allows a text answer
            and the model gave one. Arguments are validated against the tool's JSON
            schema; an invalid call is retried once with the error.

        Raises:
            GenerationError: server failure, or no valid call after the retry.
        """
        budget = max_new_tokens or self.settings.max_new_tokens
        by_name = {t["function"]["name"]: t["function"] for t in tools}
        if tool_choice in (None, "auto"):
            choice: Any = "auto"
        elif tool_choice in ("any", "required") or (len(by_name) == 1 and tool_choice in by_name):
            # one offered tool + "required" is that tool: the portable spelling (llama.cpp's
            # server accepts only the string forms; vLLM and OpenAI accept both)
            choice = "required"
        else:
            choice = {"type": "function", "function": {"name": tool_choice}}
        chat = [*messages]
        error = ""
        for attempt in (1, 2):
            # one call is read: ask for one (else a server may spend the budget on a second)
            response = self._create(chat, budget, tools=list(tools), tool_choice=choice,
                                    parallel_tool_calls=False)
            message = response.choices[0].message
            calls = message.tool_calls or []
            if not calls and choice == "auto" and (message.content or "").strip():
                return {"tool": FINAL_ANSWER, "arguments": {"answer": message.content.strip()}}
            try:
                return self._check_call(calls, by_name, tool_choice)
            except ValueError as exc:
                error = str(exc)[:200]
                log.warning("server tool call invalid (attempt %d): %s", attempt, error)
                chat = [*chat, {"role": "user", "content": TOOL_RETRY_INSTRUCTION.format(error=error)}]
        raise GenerationError(f"model did not make a valid tool call: {error}")

    @staticmethod
    def _check_call(calls: Sequence[Any], by_name: dict[str, dict[str, Any]],
                    tool_choice: str | None) -> dict[str, Any]:
        import jsonschema

        if not calls:
            raise ValueError("no tool call in the reply")
        fn = calls[0].function
        if fn.name not in by_name:
            raise ValueError(f"unknown tool '{fn.name}'")
        if tool_choice not in (None, "auto", "any", "required") and fn.name != tool_choice:
            raise ValueError(f"called '{fn.name}', not '{tool_choice}'")
        args = json.loads(fn.arguments or "{}")
        if not isinstance(args, dict):
            raise ValueError("arguments are not a JSON object")  # noqa: TRY004 - one error type
        params = by_name[fn.name].get("parameters") or {"type": "object"}
        try:
            jsonschema.validate(args, params)
        except jsonschema.ValidationError as exc:
            raise ValueError(f"{fn.name} arguments: {exc.message[:160]}") from None
        return {"tool": fn.name, "arguments": args}


def load_backend(settings: Settings) -> OpenAIBackend:
    """The ``openai`` backend factory (see :data:`assistant.llm.base._BUILTIN`)."""
    return OpenAIBackend(settings)
