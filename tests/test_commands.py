"""Paths no other test walked: chat, eval --data and predict on a classifier through the CLI, --config
precedence, early stopping on patience, Parquet data end to end, a Gemma 3 architecture, and data
errors reported before any model loads."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

import tailored
from tailored.cli import app
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tests.conftest import CHATML, build_tokenizer, write_jsonl, yes_rows

runner = CliRunner()


def invoke(*args, **kw):
    result = runner.invoke(app, [str(a) for a in args], **kw)
    return result.exit_code, result.output


@pytest.fixture(scope="module")
def yes_run(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("commands")
    data = write_jsonl(folder / "yes.jsonl", yes_rows(40))
    # without the guard: what a tiny random model learns from its own replayed gibberish changes with the replay
    # set (with 293 requests it answered a second chat turn "he"); these tests walk the CLI, test_general the guard
    tailored.train(data, TrainConfig(base=str(tiny_base), epochs=5, learning_rate=1e-2, batch_size=8),
                   DataConfig(guard=0), run_cfg=RunConfig(runs_dir=str(folder / "runs"), evaluate=False), quiet=True)
    return folder


def test_chat_answers_each_line_until_an_empty_one(yes_run):
    code, out = invoke("chat", "yes", "--runs-dir", yes_run / "runs", "--max-new-tokens", 4,
                       input="question number 5 please\nquestion number 6 please\n\n")
    assert code == 0, out
    assert out.count("model> yes") == 2


def test_eval_data_scores_the_file_given(yes_run):
    no_rows = write_jsonl(yes_run / "no.jsonl", [{"prompt": f"question number {i} please", "completion": "no"}
                                                 for i in range(800, 806)])
    code, out = invoke("eval", "yes", "--data", no_rows, "--runs-dir", yes_run / "runs", "--max-new-tokens", 4,
                       "--no-forgetting", "--min", "exact_match=50")
    assert code == 1 and "on 6 held-out rows" in out  # the run says "yes"; this file wants "no"
    yes = write_jsonl(yes_run / "more-yes.jsonl", yes_rows(6, start=900))
    code, out = invoke("eval", "yes", "--data", yes, "--runs-dir", yes_run / "runs", "--max-new-tokens", 4,
                       "--no-forgetting", "--min", "exact_match=50")
    assert code == 0, out


def test_classifier_answers_through_tailor_predict(tiny_encoder, tmp_path):
    from tests.test_methods import keyword_csv

    data = keyword_csv(tmp_path / "kw.csv", 60)
    tailored.train(data, TrainConfig(task="classify", base=str(tiny_encoder), epochs=8, learning_rate=3e-3,
                                     batch_size=8), run_cfg=RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False),
                   quiet=True)
    # numbers near the training rows': a random 32-dim encoder's mean-pooled embedding drifts on unseen digit tokens
    code, out = invoke("predict", "kw", "hello 78 the answer is no please", "--runs-dir", tmp_path / "runs")
    assert code == 0 and out.strip().splitlines()[-1] == "negative"  # after the line naming the version used
    code, out = invoke("predict", "kw", "hello 77 the answer is yes please", "--runs-dir", tmp_path / "runs")
    assert code == 0 and out.strip().splitlines()[-1] == "positive"


def test_config_file_is_used_and_flags_given_win(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", yes_rows(30))
    settings = tmp_path / "s.yaml"
    settings.write_text("train:\n  epochs: 2\n  lora_rank: 4\n  max_steps: 2\nrun:\n  evaluate: false\n",
                        encoding="utf-8")
    code, out = invoke("train", data, "--base", tiny_base, "--config", settings, "--epochs", 3, "--runs-dir",
                       tmp_path / "runs", "-q")
    assert code == 0, out
    saved = json.loads((tmp_path / "runs" / "d" / "v1" / "config.json").read_text())
    assert saved["train"]["epochs"] == 3  # the flag beat the file
    assert saved["train"]["lora_rank"] == 4 and saved["train"]["max_steps"] == 2  # the file beat the defaults
    assert not (tmp_path / "runs" / "d" / "v1" / "metrics.json").read_text().count('"eval"')


def test_every_bad_setting_is_reported_at_once(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", yes_rows(30))
    code, out = invoke("train", data, "--epochs", 0, "--valid-fraction", 0.9, "--eval-batch-size", 0)
    lines = [line for line in out.splitlines() if line.startswith("error")]
    assert code == 1 and len(lines) == 3, out
    assert "training: epochs=0" in lines[0] and "data: valid_fraction=0.9" in lines[1]
    assert "evaluation: eval_batch_size=0" in lines[2]
    code, out = invoke("train", data, "--task", "summarise")
    assert code == 2 and "summarise" in out and "generate" in out  # a fixed choice, checked by the parser


def test_training_stops_after_patience_validations_without_improvement(tiny_base):
    from tailored.data.encode import encode
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base
    from tailored.training import lora
    from tailored.training.loop import fit

    cfg = TrainConfig(base=str(tiny_base), epochs=20, learning_rate=1e-2, batch_size=4, patience=2,
                      evals_per_epoch=2, bf16=False)
    base = resolve_base(str(tiny_base))
    tok = load_tokenizer(base)
    model = lora.setup(load_causal_lm(base), cfg)
    rows = lambda word, n, start=0: [encode(tok, [{"role": "user", "content": f"question number {i} please"},  # noqa: E731
                                                  {"role": "assistant", "content": word}]) for i in range(start, start + n)]
    # validation wants "no" while training teaches "yes": it soon only gets worse
    result = fit(model, rows("yes", 24), rows("no", 8, 100), cfg, **lora.batching(tok.pad_token_id))
    valid = [h for h in result.history if "valid_loss" in h]
    best = min(range(len(valid)), key=lambda i: valid[i]["valid_loss"])
    assert result.stopped_early and result.steps < 20 * 6
    assert len(valid) - 1 - best == cfg.patience  # exactly `patience` worse validations after the best
    assert result.best_step == valid[best]["step"]


def test_parquet_data_trains_and_reports_rows_by_line(tiny_base, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    rows = yes_rows(30)
    rows[4] = {"prompt": "question number 4 please", "completion": ""}  # an empty answer, row 5
    pq.write_table(pa.Table.from_pylist(rows), tmp_path / "d.parquet")
    code, out = invoke("check", tmp_path / "d.parquet", "--base", tiny_base)
    assert code == 1 and f"{tmp_path / 'd.parquet'}:5: completion:" in out
    assert "system_prompt: tailored's own, as no row has one: Do the task" in out  # the guard's, said by check
    run = tailored.train(tmp_path / "d.parquet", TrainConfig(base=str(tiny_base), max_steps=2),
                         DataConfig(skip_invalid=True), run_cfg=RunConfig(runs_dir=str(tmp_path / "runs"),
                                                                          evaluate=False), quiet=True)
    profile = json.loads((run.path / "check.json").read_text())["profile"]
    assert profile["format"] == "prompt_completion" and profile["rows"] == 30
    assert profile["train_rows"] + profile["validation_rows"] == 29


def test_a_gemma3_architecture_trains_and_answers(tmp_path):
    """Gemma 3's layout (sliding-window attention, its own norms, tied head) on a tiny model built in code."""
    import torch
    from transformers import Gemma3ForCausalLM, Gemma3TextConfig

    torch.manual_seed(0)
    tok = build_tokenizer(CHATML)
    config = Gemma3TextConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                              num_attention_heads=4, num_key_value_heads=2, head_dim=8, max_position_embeddings=256,
                              sliding_window=16, eos_token_id=tok.eos_token_id, bos_token_id=None,
                              pad_token_id=None, initializer_range=0.3)
    folder = tmp_path / "gemma"
    Gemma3ForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(40))
    write_jsonl(tmp_path / "yes.heldout.jsonl", yes_rows(6, start=500))
    run = tailored.train(data, TrainConfig(base=str(folder), epochs=5, learning_rate=1e-2, batch_size=8),
                         eval_cfg=EvalConfig(max_new_tokens=4, forgetting=False),
                         run_cfg=RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)
    assert run.comparison.tuned["exact_match"] == 100.0 > run.comparison.base["exact_match"]
    assert tailored.load(run.path).generate("question number 9000 please", max_new_tokens=4) == "yes"


def test_data_errors_come_before_any_model_or_tokenizer_loads(tmp_path, monkeypatch):
    import tailored.pipeline

    def never(*args, **kwargs):
        raise AssertionError("a model or tokenizer was loaded before the data was read")

    for name in ("load_tokenizer", "load_causal_lm", "context_length", "parameter_count"):
        monkeypatch.setattr(tailored.pipeline, name, never)
    code, out = invoke("train", tmp_path / "nope.jsonl")
    assert code == 1 and "file not found" in out
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"question": "a", "answer": "b"}])
    code, out = invoke("train", bad)
    assert code == 1 and "unknown format" in out
    code, out = invoke("check", bad)
    assert code == 1 and "unknown format" in out
