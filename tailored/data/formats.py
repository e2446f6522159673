"""Detect a row's format from its keys and normalise every format to chat turns.

Accepted, by keys: OpenAI-style `messages`, `prompt`+`completion`, `input`+`output`, `text`+`label`.
Extra keys are kept on the example (for per-slice review later) and otherwise ignored.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from tailored.data.readers import Problem, Row

FORMATS: dict[str, tuple[str, ...]] = {
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "input_output": ("input", "output"),
    "text_label": ("text", "label"),
}
ROLES = ("system", "user", "assistant")
ACCEPTED = "messages | prompt+completion | input+output | text+label"


@dataclass
class Example:
    """One training example as chat turns; the last turn is the assistant reply to learn."""

    messages: list[dict[str, str]]
    source: str
    line: int
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def prompt(self) -> list[dict[str, str]]:
        return self.messages[:-1]

    @property
    def target(self) -> str:
        return self.messages[-1]["content"]

    @property
    def text(self) -> str:
        """What a classifier reads: the user turn (a system prompt listing the labels is for LMs only)."""
        return self.messages[-2]["content"]


def detect_format(keys: set[str]) -> str | None:
    for name, required in FORMATS.items():
        if all(k in keys for k in required):
            return name
    return None


def unknown_format_problem(source: str, line: int, keys: set[str]) -> Problem:
    known = sorted({k for req in FORMATS.values() for k in req})
    hints = []
    for key in sorted(keys):
        match = difflib.get_close_matches(key.lower(), known, n=1, cutoff=0.6)
        if match and match[0] != key:
            hints.append(f"'{key}' → '{match[0]}'")
    found = ", ".join(repr(k) for k in sorted(keys)) or "none"
    fix = f"did you mean {', '.join(hints)}?" if hints else f"use one of: {ACCEPTED}"
    return Problem(source, line, "(row)", f"unknown format: keys found {found}; expected {ACCEPTED}", fix)


def normalise_row(row: Row, source: str, fmt: str, problems: list[Problem]) -> Example | None:
    """The row as an Example, or None after appending what is wrong with it to `problems`."""
    value, line = row.value, row.line
    before = len(problems)

    def bad(field_name: str, reason: str, fix: str = "") -> None:
        problems.append(Problem(source, line, field_name, reason, fix))

    if fmt == "messages":
        messages = _check_messages(value["messages"], bad)
        extra_keys = set(value) - {"messages"}
        label = None
    elif fmt == "text_label":
        text, label = value["text"], value["label"]
        if not isinstance(text, str) or not text.strip():
            bad("text", f"expected non-empty text, got {_describe(text)}", "put the input text here")
        if isinstance(label, bool) or not isinstance(label, (str, int)) or (isinstance(label, str) and not label.strip()):
            bad("label", f"expected a string or integer label, got {_describe(label)}", 'use e.g. "billing" or 3')
        label = str(label).strip() if isinstance(label, (str, int)) and not isinstance(label, bool) else None
        # The instruction naming the label set is added once all labels are known (see attach_label_prompt).
        messages = [{"role": "user", "content": text}, {"role": "assistant", "content": label or ""}]
        extra_keys = set(value) - {"text", "label"}
    else:
        in_key, out_key = FORMATS[fmt]
        prompt, completion = value[in_key], value[out_key]
        if not isinstance(prompt, str) or not prompt.strip():
            bad(in_key, f"expected non-empty text, got {_describe(prompt)}", f"put the model's input in '{in_key}'")
        if not isinstance(completion, str) or not completion.strip():
            bad(out_key, f"expected non-empty text, got {_describe(completion)}",
                f"put the answer to learn in '{out_key}'")
        messages = [{"role": "user", "content": prompt}, {"role": "assistant", "content": completion}]
        extra_keys = set(value) - {in_key, out_key}
        label = None

    if len(problems) > before or messages is None:
        return None
    extra = {k: value[k] for k in sorted(extra_keys)}
    return Example(messages=messages, source=source, line=line, label=label, extra=extra)


def _check_messages(messages: Any, bad) -> list[dict[str, str]] | None:
    if not isinstance(messages, list):
        bad("messages", f"expected a list of turns, got {_describe(messages)}",
            'use [{"role": "user", "content": "…"}, {"role": "assistant", "content": "…"}]')
        return None
    if not messages:
        bad("messages", "the list is empty", "add at least a user turn and an assistant turn")
        return None
    clean, ok = [], True
    for i, turn in enumerate(messages):
        where = f"messages[{i}]"
        if not isinstance(turn, dict):
            bad(where, f"expected an object with role and content, got {_describe(turn)}")
            ok = False
            continue
        for key in ("role", "content"):
            if key not in turn:
                bad(where, f"missing '{key}'", f"every turn needs 'role' and 'content' (keys found: {sorted(turn)})")
                ok = False
        if "role" not in turn or "content" not in turn:
            continue
        role, content = turn["role"], turn["content"]
        if role not in ROLES:
            hint = difflib.get_close_matches(str(role), ROLES, n=1)
            bad(f"{where}.role", f"unknown role {role!r}", f"did you mean '{hint[0]}'?" if hint else f"use one of {ROLES}")
            ok = False
        if not isinstance(content, str):
            bad(f"{where}.content", f"expected a string, got {_describe(content)}", "put the turn's text in 'content'")
            ok = False
        clean.append({"role": role, "content": content})
    if not ok:
        return None
    if not any(t["role"] == "assistant" for t in clean):
        bad("messages", "no assistant turn", "add the reply the model should learn as an assistant turn")
        return None
    if clean[-1]["role"] != "assistant":
        bad("messages", f"the last turn is from '{clean[-1]['role']}'",
            "end each conversation with the assistant reply to learn")
        return None
    if not clean[-1]["content"].strip():
        bad(f"messages[{len(clean) - 1}].content", "the final assistant reply is empty", "write the reply to learn")
        return None
    return clean


def attach_label_prompt(examples: list[Example], labels: list[str]) -> str:
    """Give every text/label example the same instruction listing the allowed labels.

    The base model sees the same instruction at evaluation, so its score is a fair baseline.
    """
    system = "Classify the text. Answer with exactly one label from: " + ", ".join(labels) + "."
    for ex in examples:
        if ex.messages[0]["role"] != "system":
            ex.messages.insert(0, {"role": "system", "content": system})
    return system


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "empty text" if not value.strip() else "text"
    name = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return name.get(type(value), type(value).__name__)
