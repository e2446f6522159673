"""`tailor check`: golden messages per error kind, warnings with line numbers, and no tracebacks ever."""

from __future__ import annotations

import json
import re
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tailored.data.prepare import TOKENS_PER_SECOND_135M, prepare
from tailored.cli import app
from tailored.config import DataConfig
from tailored.data.encode import stop_token_ids
from tailored.errors import TailoredError
from tests.conftest import build_tokenizer, write_jsonl, yes_rows

PROBLEM = re.compile(r"^.+:\d+: \S[^:]*: .+")
TOK = build_tokenizer()


def run_check(path, cfg: DataConfig | None = None, tok=TOK):
    return prepare(path, cfg or DataConfig(), 0, tok, stop_token_ids(tok), context=256)


def errors_of(tmp_path, rows, name="d.jsonl"):
    return [str(p) for p in run_check(write_jsonl(tmp_path / name, rows)).errors]


def test_near_miss_keys_get_did_you_mean(tmp_path):
    found = errors_of(tmp_path, [{"input": "a", "ouput": "b"}, {"text": "a", "lable": "x"}] + yes_rows(10))
    assert found[0].endswith("did you mean 'ouput' → 'output'?")
    assert found[1].endswith("did you mean 'lable' → 'label'?")


def test_label_must_be_string_or_integer(tmp_path):
    rows = [{"text": f"t{i}", "label": "a"} for i in range(12)] + [{"text": "x", "label": [1]},
                                                                  {"text": "y", "label": True}]
    found = errors_of(tmp_path, rows)
    assert found == [f"{tmp_path / 'd.jsonl'}:13: label: expected a string or integer label, got a list — use e.g. "
                     '"billing" or 3',
                     f"{tmp_path / 'd.jsonl'}:14: label: expected a string or integer label, got a boolean — use e.g. "
                     '"billing" or 3']


def test_empty_final_reply_and_zero_trainable_tokens(tmp_path):
    msg = errors_of(tmp_path, [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": " "}]}])
    assert msg[0].endswith(":1: messages[1].content: the final assistant reply is empty — write the reply to learn")
    # A template that never renders assistant turns leaves nothing to learn: caught before training.
    drops_replies = ("{% for m in messages %}{% if m['role'] != 'assistant' %}{{ m['content'] }}\n{% endif %}"
                     "{% endfor %}")
    prep = run_check(write_jsonl(tmp_path / "p.jsonl", yes_rows(12)), tok=build_tokenizer(drops_replies))
    assert len(prep.errors) == 12
    assert str(prep.errors[0]).endswith(":1: (row): no trainable tokens after templating — the assistant reply "
                                        "must not be empty")


def test_too_few_examples_is_an_error_and_under_fifty_a_warning(tmp_path):
    prep = run_check(write_jsonl(tmp_path / "d.jsonl", yes_rows(9)))
    assert [str(p) for p in prep.errors] == [
        f"{tmp_path / 'd.jsonl'}:1: (file): only 9 usable examples; at least 10 are needed to train and validate — "
        "add examples (100+ gives reliable gains)"]
    prep = run_check(write_jsonl(tmp_path / "e.jsonl", yes_rows(30)))
    assert [f.kind for f in prep.findings] == ["few-examples"]


def test_repeats_contradictions_and_leakage(tmp_path):
    rows = yes_rows(60)
    rows += [rows[3], {"prompt": "QUESTION number 4, please!", "completion": "Yes"},
             {"prompt": "question number 5 please", "completion": "no"}]
    heldout = write_jsonl(tmp_path / "h.jsonl", [{"prompt": "question number 7 please", "completion": "yes"},
                                                 {"prompt": "brand new", "completion": "yes"}])
    prep = run_check(write_jsonl(tmp_path / "d.jsonl", rows), DataConfig(heldout=str(heldout)))
    by_kind = {f.kind: f for f in prep.findings}
    assert by_kind["duplicate"].lines == [61] and by_kind["duplicate"].count == 1
    assert by_kind["near-duplicate"].lines == [62]
    assert by_kind["contradiction"].lines == [6, 63]
    assert by_kind["leakage"].lines == [1] and "held-out" in by_kind["leakage"].message


def test_class_balance_and_personal_data(tmp_path):
    rows = [{"text": f"mail {i} to bob{i}@example.com", "label": "common"} for i in range(60)]
    rows += [{"text": f"card 4111 1111 1111 1111 number {i}", "label": "rare"} for i in range(3)]
    rows += [{"text": "call me on +44 20 7946 0958", "label": "common"}]
    prep = run_check(write_jsonl(tmp_path / "d.jsonl", rows))
    by_kind = {}
    for f in prep.findings:
        by_kind.setdefault(f.kind, []).append(f)
    assert by_kind["rare-class"][0].message.startswith("rare (3) have fewer than 8 examples")
    assert by_kind["imbalance"][0].message.startswith("the largest class has 20× the examples")
    pii = {f.message.split(" contain ")[1].split(";")[0]: f for f in by_kind["personal-data"]}
    assert pii["email addresses"].count == 60 and pii["email addresses"].lines[:2] == [1, 2]
    assert pii["card-like numbers"].lines == [61, 62, 63]
    assert pii["phone numbers"].lines == [64]


def test_profile_counts_tokens_and_labels(tmp_path):
    rows = [{"text": f"text {i}", "label": "a" if i % 4 else "b"} for i in range(40)]
    profile = run_check(write_jsonl(tmp_path / "d.jsonl", rows)).profile(n_params=135_000_000, epochs=3)
    assert profile["rows"] == 40 and profile["train_rows"] + profile["validation_rows"] == 40
    assert profile["labels"]["a"] + profile["labels"]["b"] == profile["train_rows"]
    t = profile["tokens_per_example"]
    assert t["min"] <= t["median"] <= t["p95"] <= t["max"]
    # the estimate: every token, 3 epochs, at the measured SmolLM2-135M speed; a base twice the size, half the speed
    for bf16 in (True, False):
        profile = run_check(write_jsonl(tmp_path / "d.jsonl", rows)).profile(n_params=135_000_000, epochs=3, bf16=bf16)
        minutes = profile["total_tokens"] * 3 / TOKENS_PER_SECOND_135M[bf16] / 60
        assert profile["estimated_training_minutes"] == round(minutes, 1) > 0
        assert f"~{TOKENS_PER_SECOND_135M[bf16]} tokens/s" in profile["estimate_basis"]
        slower = run_check(write_jsonl(tmp_path / "d.jsonl", rows)).profile(n_params=270_000_000, epochs=3, bf16=bf16)
        assert slower["estimated_training_minutes"] == round(2 * minutes, 1)


def test_million_row_file_reports_fifty_and_counts_the_rest(tmp_path, tiny_base):
    path = tmp_path / "big.jsonl"
    path.write_bytes(b"1\n" * 1_000_000)  # a million rows that are not objects, written cheaply
    result = CliRunner().invoke(app, ["check", str(path), "--base", str(tiny_base)])
    lines = result.output.strip().splitlines()
    assert result.exit_code == 1
    assert sum(line.startswith("error ") for line in lines) == 50
    assert "… 999950 more errors (1000000 in all)" in result.output


def test_json_report_and_strict(tmp_path, tiny_base):
    path = write_jsonl(tmp_path / "d.jsonl", yes_rows(30))
    result = CliRunner().invoke(app, ["check", str(path), "--base", str(tiny_base), "--json"])
    report = json.loads(result.output)
    assert result.exit_code == 0 and report["errors"] == [] and report["warnings"][0]["kind"] == "few-examples"
    result = CliRunner().invoke(app, ["check", str(path), "--base", str(tiny_base), "--strict"])
    assert result.exit_code == 1 and "fail: 0 errors, 1 warnings" in result.output


def test_show_highlights_the_trained_tokens(tmp_path, tiny_base):
    path = write_jsonl(tmp_path / "d.jsonl", yes_rows(30))
    result = CliRunner().invoke(app, ["check", str(path), "--base", str(tiny_base), "--show", "2"])
    assert result.exit_code == 0
    assert result.output.count("<|im_start|>assistant") == 2


# ---- property-based: whatever the bytes, no traceback and well-formed messages ----------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
keys = st.sampled_from(["messages", "prompt", "completion", "input", "output", "text", "label", "role", "content",
                        "promt", "ouput", "lable", "x"])
rowish = st.dictionaries(keys, json_values, max_size=4)
messages_rows = st.builds(lambda turns: {"messages": turns},
                          st.lists(st.dictionaries(st.sampled_from(["role", "content", "name"]),
                                                   st.sampled_from(["user", "assistant", "system", "bot"]) | json_values,
                                                   max_size=3), max_size=4))


def _line(value) -> bytes:
    return json.dumps(value).encode()


file_bodies = st.one_of(
    st.binary(max_size=400),  # random bytes
    st.lists(st.one_of(rowish, messages_rows, json_values).map(_line), max_size=15).map(b"\n".join),
    st.lists(rowish.map(_line), min_size=1, max_size=10).flatmap(  # truncated lines
        lambda lines: st.integers(0, len(b"\n".join(lines))).map(lambda cut: b"\n".join(lines)[:cut])),
    st.integers(1, 3000).map(lambda depth: b"[" * depth + b"]" * depth),  # deep nesting
    st.integers(1, 2000).map(lambda n: b'{"prompt": "' + b"a" * (n * 500) + b'", "completion": "b"}'),  # huge
    st.just(b""),
    st.text(string.printable, max_size=300).map(str.encode),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                    HealthCheck.too_slow])
@given(body=file_bodies, suffix=st.sampled_from([".jsonl", ".csv"]))
def test_malformed_files_never_raise_a_traceback(tmp_path, body, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(body)
    try:
        prep = run_check(path)
    except TailoredError as e:  # file-level: names the file, says what to do
        assert str(e).startswith(str(path)) and " — " in str(e)
        return
    for problem in prep.errors:
        assert PROBLEM.match(str(problem)), str(problem)
        assert "\n" not in str(problem).split(": ", 1)[0]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                   HealthCheck.too_slow])
@given(body=file_bodies, suffix=st.sampled_from([".jsonl", ".csv"]))
def test_malformed_files_through_the_cli_exit_0_or_1(tmp_path, tiny_base, body, suffix):
    path = tmp_path / f"fuzz{suffix}"
    path.write_bytes(body)
    result = CliRunner().invoke(app, ["check", str(path), "--base", str(tiny_base)])
    assert result.exit_code in (0, 1), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    for line in result.output.splitlines():
        if line.startswith("error "):
            assert PROBLEM.match(line[6:]) or line[6:].startswith(str(path)), line
