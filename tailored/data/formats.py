"""Detect a row's format from its keys and normalise every format to chat turns.

Accepted, by keys: OpenAI-style `messages`, `prompt`+`completion`, `input`+`output`, `text`+`label`.
Extra keys are kept on the example (for per-slice review later) and otherwise ignored.

In `messages`, an assistant turn may carry OpenAI's `weight`: 1 (the default) trains on it, 0 makes
it context only: never trained on, never the evaluation target (the target is the last weight-1
reply). A weight-0 turn keeps `"weight": 0` in its dict, which chat templates ignore and the
encoder reads. `name` is kept on the turn; any other key is kept out of training and reported as a
warning (`unknown_keys`), never dropped in silence.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Any

from tailored.data import tools
from tailored.data.readers import Problem, Row

FORMATS: dict[str, tuple[str, ...]] = {
    "preference_openai": ("input", "preferred_output", "non_preferred_output"),  # OpenAI's DPO format
    "preference": ("prompt", "chosen", "rejected"),
    "messages": ("messages",),
    "prompt_completion": ("prompt", "completion"),
    "input_output": ("input", "output"),
    "text_label": ("text", "label"),
}
ROLES = ("system", "user", "assistant", "tool")
TURN_KEYS = ("role", "content", "name", "weight", "tool_calls", "tool_call_id")
ACCEPTED = ("messages | prompt+completion | input+output | text+label | prompt+chosen+rejected | "
            "input+preferred_output+non_preferred_output")
PREFERENCE = ("preference", "preference_openai")


@dataclass
class Example:
    """One training example as chat turns; the last turn is the assistant reply to learn."""

    messages: list[dict[str, str]]
    source: str
    line: int
    label: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    unknown_keys: list[str] = field(default_factory=list)  # turn keys we do not use, for the audit to report
    rejected: str | None = None  # preference rows: the reply not to prefer (the chosen one is the last turn)

    @property
    def _target_index(self) -> int:
        """The last assistant reply that is trained on (weight 1): what evaluation asks for."""
        return max(i for i, t in enumerate(self.messages) if t["role"] == "assistant" and t.get("weight", 1))

    @property
    def prompt(self) -> list[dict[str, str]]:
        return self.messages[: self._target_index]

    @property
    def target(self) -> str:
        return self.messages[self._target_index]["content"]

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

    unknown: list[str] = []
    rejected = None
    if fmt == "messages" and "tools" in value:  # the functions go into the system message (data/tools.py)
        functions = tools.check_tools(value["tools"], bad)
        messages = _check_messages(value["messages"], bad, unknown)
        messages = tools.with_tools(messages, functions) if messages and functions else None
        extra_keys = set(value) - {"messages", "tools"}
        label = None
    elif fmt in PREFERENCE:
        messages, rejected = _check_preference(value, fmt, bad, unknown)
        extra_keys = set(value) - set(FORMATS[fmt])
        label = None
    elif fmt == "messages":
        messages = _check_messages(value["messages"], bad, unknown)
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
    return Example(messages=messages, source=source, line=line, label=label, extra=extra, unknown_keys=unknown,
                   rejected=rejected)


def _reply(value: Any, where: str, bad) -> str | None:
    """A preference side: text, or a list holding one assistant message (OpenAI's and TRL's shape)."""
    if isinstance(value, list) and len(value) == 1 and isinstance(value[0], dict) \
            and value[0].get("role") == "assistant":
        value = value[0].get("content")
    elif isinstance(value, list):
        bad(where, f"expected one assistant message, got a list of {len(value)}",
            'use [{"role": "assistant", "content": "…"}] or plain text')
        return None
    if not isinstance(value, str) or not value.strip():
        bad(where, f"expected a non-empty reply, got {_describe(value)}", "write the reply for this side of the pair")
        return None
    return value


def _check_preference(value: dict, fmt: str, bad, unknown: list[str]) -> tuple[list | None, str | None]:
    """(prompt turns + the chosen reply, the rejected reply), or (None, None) after reporting problems."""
    if fmt == "preference_openai":
        source, (prompt_key, chosen_key, rejected_key) = value["input"], FORMATS[fmt]
        turns = source.get("messages") if isinstance(source, dict) else None
        if turns is None:
            bad("input", f"expected an object with 'messages', got {_describe(source)}",
                'use {"messages": [{"role": "user", "content": "…"}]}')
    else:
        prompt_key, chosen_key, rejected_key = FORMATS[fmt]
        turns = value["prompt"]
        if isinstance(turns, str):
            if not turns.strip():
                bad("prompt", "expected non-empty text, got empty text", "put the request in 'prompt'")
            turns = [{"role": "user", "content": turns}]
    chosen, rejected = _reply(value[chosen_key], chosen_key, bad), _reply(value[rejected_key], rejected_key, bad)
    prompt = None
    if isinstance(turns, list) and turns:
        # the prompt's turns are checked like a conversation that ends in the chosen reply
        prompt = _check_messages(turns + [{"role": "assistant", "content": chosen or "x"}], bad, unknown)
    elif turns is not None:
        bad(prompt_key, f"expected text or a list of turns, got {_describe(turns)}", "put the request here")
    if chosen is not None and rejected is not None and chosen.strip() == rejected.strip():
        bad(rejected_key, "the rejected reply is identical to the chosen one, so there is no preference to learn",
            "write a worse reply here, or drop the row")
        return None, None
    if prompt is None or chosen is None or rejected is None:
        return None, None
    prompt[-1] = {"role": "assistant", "content": chosen}
    return prompt, rejected


def _check_messages(messages: Any, bad, unknown: list[str]) -> list[dict[str, str]] | None:
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
        calling = turn.get("role") == "assistant" and "tool_calls" in turn  # content may be null or absent
        for key in ("role", "content"):
            if key not in turn and not (key == "content" and calling):
                bad(where, f"missing '{key}'", f"every turn needs 'role' and 'content' (keys found: {sorted(turn)})")
                ok = False
        if "role" not in turn or ("content" not in turn and not calling):
            continue
        role, content = turn["role"], turn.get("content")
        if calling:
            calls = tools.check_calls(turn["tool_calls"], where, bad)
            if calls is None:
                ok = False
                continue
            if content is None or isinstance(content, str):  # other content is reported below
                content = tools.assistant_text(content, calls)
        elif role == "tool" and isinstance(content, str):
            content, role = tools.response_text(turn.get("tool_call_id"), content), "user"
        elif "tool_calls" in turn:
            bad(f"{where}.tool_calls", f"only assistant turns make tool calls (this one is {role!r})",
                "move the calls to an assistant turn")
            ok = False
        unknown.extend(f"{where}.{key}" for key in turn if key not in TURN_KEYS)
        kept = {"role": role, "content": content}
        if "name" in turn:
            if not isinstance(turn["name"], str) or not turn["name"].strip():
                bad(f"{where}.name", f"expected a non-empty string, got {_describe(turn['name'])}",
                    "name the speaker, e.g. \"agent_7\", or leave 'name' out")
                ok = False
            kept["name"] = turn["name"]
        if "weight" in turn:
            weight = turn["weight"]
            if role != "assistant":
                bad(f"{where}.weight", f"weight is only for assistant turns (this one is {role!r})",
                    "remove 'weight' here; every non-assistant turn is context")
                ok = False
            elif isinstance(weight, bool) or weight not in (0, 1):
                bad(f"{where}.weight", f"expected 0 or 1, got {weight!r}",
                    "1 trains on this reply, 0 keeps it as context only")
                ok = False
            elif weight == 0:
                kept["weight"] = 0
        if role not in ROLES:
            hint = difflib.get_close_matches(str(role), ROLES, n=1)
            bad(f"{where}.role", f"unknown role {role!r}", f"did you mean '{hint[0]}'?" if hint else f"use one of {ROLES}")
            ok = False
        if not isinstance(content, str):
            bad(f"{where}.content", f"expected a string, got {_describe(content)}", "put the turn's text in 'content'")
            ok = False
        clean.append(kept)
    if not ok:
        return None
    if not any(t["role"] == "assistant" for t in clean):
        bad("messages", "no assistant turn", "add the reply the model should learn as an assistant turn")
        return None
    if not any(t["role"] == "assistant" and t.get("weight", 1) for t in clean):
        bad("messages", "every assistant turn has weight 0, so there is nothing to learn",
            "set \"weight\": 1 on the reply to learn (or leave 'weight' out)")
        return None
    if clean[-1]["role"] != "assistant":
        bad("messages", f"the last turn is from '{clean[-1]['role']}'",
            "end each conversation with the assistant reply to learn")
        return None
    trained = max(i for i, t in enumerate(clean) if t["role"] == "assistant" and t.get("weight", 1))
    if not clean[trained]["content"].strip():
        which = "final" if trained == len(clean) - 1 else "last trained (weight 1)"
        bad(f"messages[{trained}].content", f"the {which} assistant reply is empty", "write the reply to learn")
        return None
    return clean


# Given to chat rows that have no system prompt at all while the guard is on. The guard's replayed
# general conversations have none, so without it a plain question looks like one more task input: on
# nlupp_slots "What is the capital of Russia?" came back as hotel-booking JSON (BENCHMARKS.md).
TASK_PROMPT = "Do the task you were tuned for, in the form of your training examples."


def attach_task_prompt(examples: list[Example], prompt: str = TASK_PROMPT) -> int:
    """Start every conversation that has no system message with `prompt` (tailored's, or the label
    instruction `attach_label_prompt` writes); how many were given it."""
    added = 0
    for ex in examples:
        if ex.messages[0]["role"] != "system":
            ex.messages.insert(0, {"role": "system", "content": prompt})
            added += 1
    return added


def attach_label_prompt(examples: list[Example], labels: list[str]) -> str:
    """Give every text/label example the same instruction listing the allowed labels.

    The base model sees the same instruction at evaluation, so its score is a fair baseline.
    """
    system = "Classify the text. Answer with exactly one label from: " + ", ".join(labels) + "."
    attach_task_prompt(examples, system)
    return system


def as_trained(messages: list[dict], system: str | None) -> list[dict]:
    """`messages` with the run's system prompt first where they bring none of their own: a run is asked as it
    was trained and evaluated, through `predict`, `chat` and the server alike (the export's Modelfile carries
    the same prompt as its SYSTEM line)."""
    if not system or (messages and messages[0].get("role") == "system"):
        return list(messages)
    return [{"role": "system", "content": system}, *messages]


def without_task_prompt(messages: list[dict]) -> list[dict]:
    """The turns as the user wrote them: tailored's own TASK_PROMPT left out."""
    return messages[1:] if messages and messages[0] == {"role": "system", "content": TASK_PROMPT} else messages


def _describe(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, str):
        return "empty text" if not value.strip() else "text"
    name = {bool: "a boolean", int: "a number", float: "a number", list: "a list", dict: "an object"}
    return name.get(type(value), type(value).__name__)
