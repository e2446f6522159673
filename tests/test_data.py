"""Readers, format detection, normalisation and the train/valid split."""

from __future__ import annotations

import json

import pytest

from tailored.data import load_dataset, split_train_valid
from tailored.data.readers import read_rows
from tailored.errors import DataError, TailoredError
from tests.conftest import write_jsonl

CHAT = {"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}


def problems_of(path) -> list[str]:
    with pytest.raises(DataError) as info:
        load_dataset(path)
    return [str(p) for p in info.value.problems]


def test_four_formats_normalise_to_chat(tmp_path):
    cases = {
        "messages": CHAT,
        "prompt_completion": {"prompt": "p", "completion": "c"},
        "input_output": {"input": "i", "output": "o"},
        "text_label": {"text": "t", "label": "spam"},
    }
    for fmt, row in cases.items():
        ds = load_dataset(write_jsonl(tmp_path / f"{fmt}.jsonl", [row, row]))
        assert ds.format == fmt
        assert ds.examples[0].messages[-1]["role"] == "assistant"
    labelled = load_dataset(tmp_path / "text_label.jsonl")
    assert labelled.labels == ["spam"]
    assert labelled.examples[0].messages[0]["content"].startswith("Classify the text.")


def test_bom_and_crlf_are_not_errors(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"prompt": "a", "completion": "b"}\r\n{"prompt": "c", "completion": "d"}\r\n')
    assert len(load_dataset(path).examples) == 2


def test_invalid_json_names_the_line(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"prompt": "a", "completion": "b"}, "", '{"prompt": "x",'])
    assert problems_of(path) == [
        f"{path}:3: (line): not valid JSON (Expecting property name enclosed in double quotes at column 16)"
        " — each line must be one complete JSON object"]


def test_every_problem_reported_at_once(tmp_path):
    rows = [
        {"promt": "a", "completion": "b"},
        {"prompt": "a", "completion": ""},
        {"messages": [{"role": "usr", "content": "x"}, {"role": "assistant", "content": 3}]},
        ["not", "an", "object"],
        {"messages": [{"role": "user", "content": "only a question"}]},
    ]
    path = write_jsonl(tmp_path / "d.jsonl", rows)
    found = problems_of(path)
    assert found[0].startswith(f"{path}:1: (row): unknown format: keys found 'completion', 'promt'")
    assert found[0].endswith("did you mean 'promt' → 'prompt'?")
    assert f"{path}:2: completion: expected non-empty text, got empty text" in found[1]
    assert found[2] == f"{path}:3: (row): row is messages but the file is prompt+completion — use one format per file"
    assert found[3].startswith(f"{path}:4: (row): expected a JSON object, got list")
    assert len(found) == 5


def test_message_level_problems(tmp_path):
    rows = [{"messages": [{"role": "usr", "content": "x"}, {"role": "assistant", "content": 3}]},
            {"messages": [{"role": "user"}, {"role": "assistant", "content": "a"}]},
            {"messages": [{"role": "user", "content": "q"}]},
            {"messages": "hello"}]
    found = problems_of(write_jsonl(tmp_path / "m.jsonl", rows))
    text = "\n".join(found)
    assert ":1: messages[0].role: unknown role 'usr' — did you mean 'user'?" in text
    assert ":1: messages[1].content: expected a string, got a number" in text
    assert ":2: messages[0]: missing 'content'" in text
    assert ":3: messages: no assistant turn" in text
    assert ":4: messages: expected a list of turns, got text" in text


def test_csv_rows_report_their_starting_line(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('text,label\n"multi\nline email",billing\nextra,cells,here\nok,sales\n', encoding="utf-8")
    with pytest.raises(DataError) as info:
        load_dataset(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:4: (line): 3 columns, header has 2 — quote fields that contain commas"]
    ds = load_dataset(path, skip_invalid=True)
    assert [e.line for e in ds.examples] == [2, 5]
    assert ds.examples[0].messages[1]["content"] == "multi\nline email"


def test_parquet_is_read(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "d.parquet"
    pq.write_table(pa.table({"input": ["a", "b"], "output": ["c", "d"]}), path)
    assert load_dataset(path).format == "input_output"


def test_invalid_utf8_and_missing_or_empty_files(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"prompt": "a", "completion": "b"}\n{"prompt": "\xff", "completion": "b"}\n')
    assert problems_of(bad) == [f"{bad}:2: (line): invalid UTF-8 at byte 12 — save the file as UTF-8"]
    with pytest.raises(TailoredError, match="file not found"):
        read_rows(tmp_path / "nope.jsonl", [])
    empty = tmp_path / "empty.jsonl"
    empty.write_text("")
    with pytest.raises(TailoredError, match="the file has no rows"):
        load_dataset(empty)
    (tmp_path / "x.txt").write_text("hello")
    with pytest.raises(TailoredError, match="unsupported file type '.txt'"):
        load_dataset(tmp_path / "x.txt")


def test_split_is_seeded_and_keeps_duplicates_together(tmp_path):
    rows = [{"prompt": f"q{i % 30}", "completion": "a"} for i in range(90)]  # every row three times
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    train, valid = split_train_valid(ds.examples, 0.1, seed=3)
    again = split_train_valid(ds.examples, 0.1, seed=3)
    assert [e.line for e in valid] == [e.line for e in again[1]]
    assert {e.target + e.prompt[-1]["content"] for e in train}.isdisjoint(
        {e.target + e.prompt[-1]["content"] for e in valid})
    assert len(valid) % 3 == 0 and 6 <= len(valid) <= 12


def test_split_stratifies_labels(tmp_path):
    rows = [{"text": f"text {i}", "label": "rare" if i % 10 == 0 else "common"} for i in range(100)]
    ds = load_dataset(write_jsonl(tmp_path / "d.jsonl", rows))
    _, valid = split_train_valid(ds.examples, 0.1, seed=0)
    assert sorted(e.label for e in valid) == ["common"] * 9 + ["rare"]


def test_openai_weights_names_and_unknown_keys(tmp_path):
    from tailored.data import load_dataset
    from tailored.data.audit import unknown_keys

    user, reply = {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
    rows = [{"messages": [dict(user, name="ana"), dict(reply, weight=0), user, dict(reply, content="b", weight=1)]},
            {"messages": [user, dict(reply, content="good"), user, dict(reply, content="later", weight=0)]},
            {"messages": [user, dict(reply, tool_hint="x", mood=1)]}]
    data = load_dataset(write_jsonl(tmp_path / "w.jsonl", rows))
    first, second, third = data.examples
    assert first.messages[0]["name"] == "ana" and first.messages[1]["weight"] == 0
    assert "weight" not in first.messages[3]  # weight 1 is the default, not stored
    assert first.target == "b" and len(first.prompt) == 3
    # a trailing weight-0 reply is context: the target is the last trained reply
    assert second.target == "good" and second.prompt == [user]
    assert third.unknown_keys == ["messages[1].tool_hint", "messages[1].mood"]
    found = [str(f) for f in unknown_keys(data.examples)]
    assert found == ["unknown-key: messages carry 'mood', which tailored does not use (known: role, content, name, "
                     "weight); it is left out of training (lines 3)",
                     "unknown-key: messages carry 'tool_hint', which tailored does not use (known: role, content, "
                     "name, weight); it is left out of training (lines 3)"]


def test_bad_weights_are_errors_at_their_line(tmp_path):
    user, reply = {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}
    rows = [{"messages": [user, dict(reply, weight=2)]},
            {"messages": [dict(user, weight=1), reply]},
            {"messages": [user, dict(reply, weight=0)]},
            {"messages": [user, dict(reply, weight=True)]},
            {"messages": [dict(user, name=""), reply]}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    found = problems_of(path)
    assert found == [
        f"{path}:1: messages[1].weight: expected 0 or 1, got 2 — 1 trains on this reply, 0 keeps it as context only",
        f"{path}:2: messages[0].weight: weight is only for assistant turns (this one is 'user') — remove 'weight' "
        "here; every non-assistant turn is context",
        f"{path}:3: messages: every assistant turn has weight 0, so there is nothing to learn — set \"weight\": 1 on "
        "the reply to learn (or leave 'weight' out)",
        f"{path}:4: messages[1].weight: expected 0 or 1, got True — 1 trains on this reply, 0 keeps it as context only",
        f"{path}:5: messages[0].name: expected a non-empty string, got empty text — name the speaker, e.g. "
        "\"agent_7\", or leave 'name' out"]


WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather now",
                                            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}


def test_tool_calling_rows_render_as_documented_text(tmp_path):
    from tailored.data import load_dataset
    from tailored.data.tools import TOOLS_INTRO, calls_in

    row = {"tools": [WEATHER], "messages": [
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Oslo\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "4°C, rain"},
        {"role": "assistant", "content": "4°C and raining in Oslo."}]}
    calling = {"tools": [WEATHER], "messages": row["messages"][1:3]}  # the call itself is the reply to learn
    first, second = load_dataset(write_jsonl(tmp_path / "t.jsonl", [row, calling])).examples
    assert first.messages[0] == {"role": "system", "content": "Be brief.\n\n" + TOOLS_INTRO + "\n" + json.dumps(
        [WEATHER["function"]], ensure_ascii=False)}
    assert first.messages[2] == {"role": "assistant",
                                 "content": '<tool_call>{"name": "get_weather", "arguments": {"city": "Oslo"}}</tool_call>'}
    assert first.messages[3] == {"role": "user", "content": '<tool_response>{"id": "call_1", "content": "4°C, rain"}'
                                                            '</tool_response>'}
    assert first.target == "4°C and raining in Oslo."
    assert second.messages[0]["role"] == "system" and second.messages[0]["content"].startswith(TOOLS_INTRO)
    assert calls_in(second.target) == [{"name": "get_weather", "arguments": {"city": "Oslo"}}]


def test_bad_tool_rows_are_errors_at_their_line(tmp_path):
    user = {"role": "user", "content": "q"}

    def call(arguments):
        return {"role": "assistant", "tool_calls": [{"type": "function", "function": {"name": "f", "arguments": arguments}}]}

    rows = [{"tools": "f", "messages": [user, {"role": "assistant", "content": "a"}]},
            {"messages": [user, call("{city: Oslo}")]},
            {"messages": [user, call("[1, 2]")]},
            {"messages": [dict(user, tool_calls=[]), {"role": "assistant", "content": "a"}]},
            {"messages": [user, {"role": "assistant", "tool_calls": [{"function": {"arguments": "{}"}}]}]}]
    path = write_jsonl(tmp_path / "bad.jsonl", rows)
    found = problems_of(path)
    assert found[0].startswith(f"{path}:1: tools: expected a non-empty list of tools, got str")
    assert found[1].startswith(f"{path}:2: messages[1].tool_calls[0].function.arguments: not valid JSON")
    assert found[2].startswith(f"{path}:3: messages[1].tool_calls[0].function.arguments: arguments must be a JSON "
                               "object")
    assert found[3].startswith(f"{path}:4: messages[0].tool_calls: only assistant turns make tool calls")
    assert found[4].startswith(f"{path}:5: messages[1].tool_calls[0]: the call has no function name")
    assert len(found) == 5
