"""Tool calling in OpenAI's chat format, rendered as text every chat template can carry.

OpenAI rows may hold `tools` (the functions on offer), assistant turns with `tool_calls` (content
null or absent) and `tool` turns with the result (`tool_call_id`). Neither bundled base has a chat
template that knows tools, so tailored writes them into plain turns with one documented format
(the same idea as Qwen2.5's and Hermes' templates), used identically in training, evaluation,
`predict` and the server:

- the functions go at the end of the system message, after TOOLS_INTRO, as a JSON list;
- each call is `<tool_call>{"name": ..., "arguments": {...}}</tool_call>` in the assistant reply,
  after any text it has;
- a tool's result is a user turn `<tool_response>{"id": ..., "content": ...}</tool_response>`.

`calls_in` reads calls back out of generated text, for evaluation and the server.
"""

from __future__ import annotations

import json
import re
from typing import Any

TOOLS_INTRO = ("You can call these functions. To call one, answer with <tool_call>{\"name\": NAME, \"arguments\": "
               "{...}}</tool_call>; the result comes back as <tool_response>. Functions:")
_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.S)


def check_tools(tools: Any, bad) -> list[dict] | None:
    """The row's functions ({name, description, parameters}), or None after reporting what is wrong."""
    if not isinstance(tools, list) or not tools:
        bad("tools", f"expected a non-empty list of tools, got {type(tools).__name__}",
            'use [{"type": "function", "function": {"name": "…", "parameters": {…}}}]')
        return None
    functions = []
    for i, tool in enumerate(tools):
        function = tool.get("function") if isinstance(tool, dict) else None
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) or not function["name"]:
            bad(f"tools[{i}]", "expected {\"type\": \"function\", \"function\": {\"name\": …}}",
                "give every tool a function with a name")
            return None
        functions.append({k: function[k] for k in ("name", "description", "parameters") if k in function})
    return functions


def check_calls(calls: Any, where: str, bad) -> list[dict] | None:
    """An assistant turn's tool calls as [{id, name, arguments (a dict)}], or None after reporting problems."""
    if not isinstance(calls, list) or not calls:
        bad(f"{where}.tool_calls", "expected a non-empty list of calls", 'use [{"id": "call_1", "type": "function", '
            '"function": {"name": "…", "arguments": "{…}"}}]')
        return None
    out = []
    for j, call in enumerate(calls):
        function = call.get("function") if isinstance(call, dict) else None
        name = function.get("name") if isinstance(function, dict) else None
        if not isinstance(name, str) or not name:
            bad(f"{where}.tool_calls[{j}]", "the call has no function name", "set function.name")
            return None
        arguments = function.get("arguments", "{}")
        try:  # OpenAI sends arguments as a JSON string; an object is accepted too
            parsed = json.loads(arguments) if isinstance(arguments, str) else arguments
        except json.JSONDecodeError as e:
            bad(f"{where}.tool_calls[{j}].function.arguments", f"not valid JSON ({e.msg})",
                "arguments must be a JSON object encoded as a string")
            return None
        if not isinstance(parsed, dict):
            bad(f"{where}.tool_calls[{j}].function.arguments", "arguments must be a JSON object", 'e.g. "{\\"city\\": '
                '\\"Oslo\\"}"')
            return None
        out.append({"id": call.get("id"), "name": name, "arguments": parsed})
    return out


def call_text(name: str, arguments: dict) -> str:
    return f"<tool_call>{json.dumps({'name': name, 'arguments': arguments}, ensure_ascii=False)}</tool_call>"


def assistant_text(content: str | None, calls: list[dict]) -> str:
    parts = ([content.strip()] if content and content.strip() else []) + [call_text(c["name"], c["arguments"])
                                                                          for c in calls]
    return "\n".join(parts)


def response_text(call_id: str | None, content: str) -> str:
    return f"<tool_response>{json.dumps({'id': call_id, 'content': content}, ensure_ascii=False)}</tool_response>"


def with_tools(messages: list[dict], functions: list[dict]) -> list[dict]:
    """The conversation with the functions described at the end of its system message (one is added).

    A system message that already lists functions (a run's own, trained with them) gets this list instead."""
    listing = f"{TOOLS_INTRO}\n{json.dumps(functions, ensure_ascii=False)}"
    if messages and messages[0]["role"] == "system":
        own = messages[0]["content"].split(TOOLS_INTRO, 1)[0].rstrip()
        return [{**messages[0], "content": f"{own}\n\n{listing}" if own else listing}, *messages[1:]]
    return [{"role": "system", "content": listing}, *messages]


def plain_messages(messages: list[dict], functions: list[dict] | None = None) -> list[dict]:
    """An already-valid OpenAI conversation (a server request) as the plain turns training saw."""
    out = []
    for m in messages:
        if m.get("tool_calls"):
            calls = [{"name": c["function"]["name"], "arguments": json.loads(c["function"].get("arguments") or "{}")
                      if isinstance(c["function"].get("arguments"), str) else c["function"]["arguments"]}
                     for c in m["tool_calls"]]
            out.append({"role": "assistant", "content": assistant_text(m.get("content"), calls)})
        elif m["role"] == "tool":
            out.append({"role": "user", "content": response_text(m.get("tool_call_id"), m.get("content") or "")})
        else:
            out.append({"role": m["role"], "content": m.get("content") or ""})
    return with_tools(out, functions) if functions else out


def split_reply(text: str) -> tuple[str | None, list[dict] | None]:
    """A generated reply as (its text before any call, or None; its well-formed calls, or None)."""
    calls = [c for c in calls_in(text) or [] if c["name"] and isinstance(c["arguments"], dict)]
    if not calls:
        return text, None
    before = text.split("<tool_call>", 1)[0].strip()
    return before or None, calls


def calls_in(text: str) -> list[dict] | None:
    """The calls a reply makes, as [{name, arguments}]; None when it makes none. A call whose JSON does not
    parse comes back as {"name": None, "arguments": None, "raw": ...}: it was attempted, and it is wrong."""
    found = _CALL.findall(text)
    if not found:
        return None
    calls = []
    for raw in found:
        try:
            value = json.loads(raw)
            calls.append({"name": value.get("name"), "arguments": value.get("arguments")})
        except (json.JSONDecodeError, AttributeError):
            calls.append({"name": None, "arguments": None, "raw": raw})
    return calls
