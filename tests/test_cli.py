"""The `tailor` command: bad input gives one clear line and exit 1; train → predict works."""

from __future__ import annotations

import subprocess
import sys

from typer.testing import CliRunner

from tailored.cli import app
from tests.conftest import write_jsonl, yes_rows

runner = CliRunner()


def run(*args):
    result = runner.invoke(app, [str(a) for a in args])
    return result.exit_code, result.output


def test_missing_file(tmp_path):
    code, out = run("train", tmp_path / "nope.jsonl")
    assert code == 1
    assert out.strip().splitlines() == [f"error {tmp_path / 'nope.jsonl'}: file not found — check the path"]


def test_empty_file(tmp_path):
    path = tmp_path / "empty.jsonl"
    path.write_text("")
    code, out = run("train", path)
    assert code == 1 and out.strip().splitlines() == [f"error {path}: the file has no rows — add examples, one per line"]


def test_unknown_format_names_the_line_and_keys(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", [{"question": "a", "answer": "b"}])
    expected = f"error {path}:1: (row): unknown format: keys found 'answer', 'question'"
    code, out = run("train", path)
    lines = out.strip().splitlines()
    assert code == 1 and len(lines) == 1 and lines[0].startswith(expected)
    code, out = run("check", path)
    lines = out.strip().splitlines()
    assert code == 1 and lines[0].startswith(expected)
    assert lines[-1].startswith("fail: 1 errors, 0 warnings")


def test_invalid_json_from_the_real_entry_point_has_no_traceback(tmp_path):
    path = write_jsonl(tmp_path / "d.jsonl", yes_rows(12) + ['{"prompt": "broken'])
    proc = subprocess.run([sys.executable, "-m", "tailored.cli", "train", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr + proc.stdout
    assert proc.stderr.strip().splitlines() == [
        f"error {path}:13: (line): not valid JSON (Unterminated string starting at column 12) — each line must be one "
        "complete JSON object"]


def test_bad_setting_is_one_line(tmp_path):
    code, out = run("train", write_jsonl(tmp_path / "d.jsonl", yes_rows(3)), "--valid-fraction", "0.9")
    assert code == 1 and "valid_fraction=0.9 must be between 0 and 0.5" in out and "Traceback" not in out


def test_train_then_predict_and_check(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(40))
    runs = tmp_path / "runs"
    code, out = run("train", data, "--base", tiny_base, "--epochs", 5, "--learning-rate", 1e-2,
                    "--runs-dir", runs, "--max-new-tokens", 4)
    assert code == 0, out
    assert "Base vs tuned" in out and "rouge_l (primary)" in out
    assert "verdict Better than the base model: rouge_l" in " ".join(out.split())  # the last word, in words
    code, out = run("predict", "yes", "question number 77 please", "--runs-dir", runs, "--max-new-tokens", 4)
    # a bare name says which version it picked (on stderr), then the answer
    assert code == 0 and out.strip().splitlines()[-1] == "yes"
    assert " ".join(out.split()).startswith(f"yes → {runs / 'yes' / 'v1'} (its latest finished version")
    code, out = run("check", data, "--base", tiny_base)
    assert code == 0 and "prompt_completion" in out
    code, out = run("predict", "no-such-run", "hi", "--runs-dir", runs)
    assert code == 1 and "run 'no-such-run' not found" in out
