"""LangChain ``BaseChatModel`` over our :class:`~assistant.llm.base.ChatBackend`.

``bind_tools()`` really works with small local models: the tool names, descriptions
and argument schemas are written into the system prompt (``prompts/tool_calling.yaml``)
and decoding is constrained by a JSON schema that admits exactly one
``{"tool": <name>, "arguments": <that tool's arguments>}`` object (or a
``final_answer`` when ``tool_choice`` allows it). The result is parsed into
``AIMessage.tool_calls``. A backend with ``supports_native_tools`` (the ``openai``
backend on a server with a tool parser) gets the tools through its own API instead
(``backend.tool_call(openai_messages, tools, tool_choice=...)``). LangChain types live
only in this module.
"""

from __future__ import annotations

import copy
import json
import uuid
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage, ToolMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from assistant.errors import ConfigError
from assistant.llm.base import Message
from assistant.prompts import load_prompt

FINAL_ANSWER = "final_answer"
DEFAULT_STRING_MAX = 200  # chars; bounds every free-text argument so decoding terminates
ANSWER_MAX = 600


def _bound_strings(schema: Any) -> Any:
    """Copy of ``schema`` where every string without ``maxLength`` gets one."""
    if isinstance(schema, dict):
        out = {k: _bound_strings(v) for k, v in schema.items()}
        if out.get("type") == "string" and "enum" not in out and "maxLength" not in out:
            out["maxLength"] = DEFAULT_STRING_MAX
        if out.get("type") == "object" and "properties" in out:
            out.setdefault("additionalProperties", False)
        return out
    if isinstance(schema, list):
        return [_bound_strings(v) for v in schema]
    return schema


def tool_call_schema(tools: Sequence[dict[str, Any]], *, allow_answer: bool) -> dict[str, Any]:
    """JSON schema admitting one call of one of ``tools`` (OpenAI tool dicts).

    Args:
        tools: ``convert_to_openai_tool`` outputs.
        allow_answer: also admit ``{"tool": "final_answer", "arguments": {"answer": str}}``.

    Returns:
        A JSON schema dict (``anyOf`` over the tools).
    """
    options = []
    for tool in tools:
        fn = tool["function"]
        params = _bound_strings(copy.deepcopy(fn.get("parameters") or {"type": "object", "properties": {}}))
        params.setdefault("type", "object")
        options.append(
            {
                "type": "object",
                "properties": {"tool": {"type": "string", "enum": [fn["name"]]}, "arguments": params},
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    if allow_answer:
        options.append(
            {
                "type": "object",
                "properties": {
                    "tool": {"type": "string", "enum": [FINAL_ANSWER]},
                    "arguments": {
                        "type": "object",
                        "properties": {"answer": {"type": "string", "maxLength": ANSWER_MAX}},
                        "required": ["answer"],
                        "additionalProperties": False,
                    },
                },
                "required": ["tool", "arguments"],
                "additionalProperties": False,
            }
        )
    return options[0] if len(options) == 1 else {"anyOf": options}


class LocalChatModel(BaseChatModel):
    """A LangChain chat model running on a local :class:`ChatBackend`.

    Example:
        >>> chat = LocalChatModel(backend=get_backend(settings))
        >>> msg = chat.bind_tools([book_resources], tool_choice="any").invoke("...")
        >>> msg.tool_calls[0]["name"]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    backend: Any
    max_new_tokens: int | None = None

    @property
    def _llm_type(self) -> str:
        return f"local-{getattr(self.backend, 'name', 'backend')}"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"model_id": getattr(self.backend, "model_id", "?")}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools; ``tool_choice`` is ``None``/"auto", "any"/"required", or a tool name.

        Raises:
            ConfigError: ``tool_choice`` names a tool that is not bound.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        names = [t["function"]["name"] for t in formatted]
        if tool_choice not in (None, "auto", "any", "required", "none") and tool_choice not in names:
            raise ConfigError(f"tool_choice '{tool_choice}' is not one of the bound tools {names}")
        return super().bind(tools=formatted, tool_choice=tool_choice, **kwargs)

    # -- internals -----------------------------------------------------------------
    def _to_messages(self, messages: list[BaseMessage]) -> list[Message]:
        prompt = load_prompt("tool_calling")
        out: list[Message] = []
        for msg in messages:
            if msg.type == "system":
                out.append({"role": "system", "content": str(msg.content)})
            elif msg.type == "human":
                out.append({"role": "user", "content": str(msg.content)})
            elif msg.type == "ai":
                calls = getattr(msg, "tool_calls", None) or []
                content = (
                    json.dumps({"tool": calls[0]["name"], "arguments": calls[0]["args"]}, ensure_ascii=False)
                    if calls
                    else str(msg.content)
                )
                out.append({"role": "assistant", "content": content})
            elif isinstance(msg, ToolMessage):
                out.append(
                    {
                        "role": "user",
                        "content": prompt.render("tool_result", name=msg.name or "tool", content=msg.content),
                    }
                )
            else:
                out.append({"role": "user", "content": str(msg.content)})
        return out

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: Any = None,
        **kwargs: Any,
    ) -> ChatResult:
        tools: list[dict[str, Any]] = kwargs.get("tools") or []
        tool_choice = kwargs.get("tool_choice")
        chat = self._to_messages(messages)
        if not tools or tool_choice == "none":
            text = self.backend.generate(chat, max_new_tokens=self.max_new_tokens)
            return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])

        if tool_choice in (None, "auto"):
            allowed, allow_answer = tools, True
        elif tool_choice in ("any", "required"):
            allowed, allow_answer = tools, False
        else:
            allowed = [t for t in tools if t["function"]["name"] == tool_choice]
            allow_answer = False
        if getattr(self.backend, "supports_native_tools", False):
            result = self._native_tool_call(messages, allowed, tool_choice)
            return ChatResult(generations=[ChatGeneration(message=self._to_ai_message(result, None))])
        prompt = load_prompt("tool_calling")
        base = chat[0]["content"] if chat and chat[0]["role"] == "system" else "You are a helpful hospital assistant."
        system = prompt.render(
            "system",
            base=base,
            allow_answer=allow_answer,
            tools=[
                {
                    "name": t["function"]["name"],
                    "description": t["function"].get("description", ""),
                    "parameters": json.dumps(t["function"].get("parameters", {}), ensure_ascii=False),
                }
                for t in allowed
            ],
        )
        rest = chat[1:] if chat and chat[0]["role"] == "system" else chat
        schema = tool_call_schema(allowed, allow_answer=allow_answer)
        result = self.backend.generate(
            [{"role": "system", "content": system}, *rest],
            schema=schema,
            max_new_tokens=self.max_new_tokens,
        )
        return ChatResult(generations=[ChatGeneration(message=self._to_ai_message(result, prompt.ref))])

    def _native_tool_call(self, messages: list[BaseMessage], allowed: list[dict[str, Any]],
                          tool_choice: str | None) -> dict[str, Any]:
        """One call through the backend's own tools API (OpenAI-compatible servers)."""
        from langchain_core.messages import convert_to_openai_messages

        chat = convert_to_openai_messages(messages)
        return self.backend.tool_call(
            chat, allowed, tool_choice=tool_choice, max_new_tokens=self.max_new_tokens
        )

    def _to_ai_message(self, result: dict[str, Any], prompt_ref: str | None) -> AIMessage:
        """``{"tool", "arguments"}`` -> AIMessage with ``tool_calls`` (or a text answer)."""
        if result["tool"] == FINAL_ANSWER:
            message = AIMessage(content=result["arguments"]["answer"])
        else:
            message = AIMessage(
                content="",
                tool_calls=[
                    {
                        "name": result["tool"],
                        "args": result["arguments"],
                        "id": f"call_{uuid.uuid4().hex[:12]}",
                        "type": "tool_call",
                    }
                ],
            )
        message.response_metadata["model_id"] = getattr(self.backend, "model_id", "?")
        message.response_metadata["prompt"] = prompt_ref or "native-tools"
        return message
