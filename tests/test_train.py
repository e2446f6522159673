"""The LoRA loop and the whole pipeline on a tiny random Llama (seconds, CPU)."""

from __future__ import annotations

import json

import pytest

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.data.encode import encode
from tailored.models import load_causal_lm, load_tokenizer, resolve_base
from tailored.training import checkpoint, lora
from tailored.training.loop import fit, overfitting, validate
from tests.conftest import write_jsonl, yes_rows


def encoded(tok, rows):
    return [encode(tok, [{"role": "user", "content": r["prompt"]}, {"role": "assistant", "content": r["completion"]}])
            for r in rows]


def fresh(tiny_base, cfg):
    base = resolve_base(str(tiny_base))
    tok = load_tokenizer(base)
    return tok, lora.setup(load_causal_lm(base), cfg)


def lora_fit(model, train, valid, cfg, tok, **kw):
    return fit(model, train, valid, cfg, **lora.batching(tok.pad_token_id), **kw)


@pytest.mark.parametrize("plateau, kept", [(0.01, 4), (0.0, 2)])
def test_on_a_flat_validation_loss_the_latest_validation_near_the_lowest_is_kept(plateau, kept):
    """Scripted validation losses 2.0, 1.0, 1.005, 1.5, 1.6 (steps 0, 2, 4, 6, 8): within 1% of the lowest,
    step 4's weights are kept; with plateau 0, the lowest's (step 2). Patience counts from the lowest."""
    import torch

    class Toy(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))

    scripted = iter([2.0, 1.0, 1.005, 1.5, 1.6, 1.7])

    def loss(model, batch):
        if model.training:  # a constant gradient: the weight moves at every step, so it tells the steps apart
            return -model.w.sum(), 1, 0
        return torch.tensor(next(scripted)), 1, 0

    seen = {}
    model = Toy()
    cfg = TrainConfig(epochs=3, learning_rate=0.1, batch_size=1, patience=3, evals_per_epoch=2, bf16=False,
                      plateau=plateau)
    result = fit(model, [0, 1, 2, 3], [0], cfg, loss=loss, units=lambda row: 1, length=lambda row: 1,
                 collate=lambda rows: {"attention_mask": torch.ones(len(rows), 1)},
                 on_val_report=lambda r: seen.__setitem__(r["step"], model.w.item()))
    assert sorted(seen) == [0, 2, 4, 6, 8] and result.stopped_early  # three validations above the lowest
    assert len(set(seen.values())) == 5  # every validation saw different weights
    assert result.best_valid_loss == 1.0 and result.best_step == kept
    assert model.w.item() == seen[kept]


def test_fit_restores_the_best_checkpoint_not_the_last(tiny_base):
    cfg = TrainConfig(base=str(tiny_base), epochs=6, learning_rate=1e-2, batch_size=4, patience=100,
                      evals_per_epoch=2, bf16=False)
    tok, model = fresh(tiny_base, cfg)
    train = encoded(tok, yes_rows(24))
    # Validation wants "no": it improves while the template is learned, then worsens as "yes" wins.
    valid = encoded(tok, [{"prompt": f"question number {i} please", "completion": "no"} for i in range(8)])
    result = lora_fit(model, train, valid, cfg, tok)
    valid_losses = [h["valid_loss"] for h in result.history if "valid_loss" in h]
    assert result.best_step < result.steps, "scenario should make the last checkpoint worse than the best"
    assert valid_losses[-1] > min(valid_losses)
    batching = lora.batching(tok.pad_token_id)
    again, _ = validate(model, valid, 4, loss=batching["loss"], collate=batching["collate"], bf16=False)
    assert again == pytest.approx(min(valid_losses), abs=1e-5)


def test_same_seed_gives_identical_losses(tiny_base):
    cfg = TrainConfig(base=str(tiny_base), epochs=1, learning_rate=5e-3, batch_size=4, bf16=False, seed=7)
    runs = []
    for _ in range(2):
        tok, model = fresh(tiny_base, cfg)
        result = lora_fit(model, encoded(tok, yes_rows(20)), [], cfg, tok)
        runs.append([h["train_loss"] for h in result.history])
    assert runs[0] == runs[1] and len(runs[0]) == 5


def test_train_writes_a_complete_run_and_beats_the_base(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(48))
    heldout = write_jsonl(tmp_path / "yes.heldout.jsonl", yes_rows(6, start=500))
    cfg = TrainConfig(base=str(tiny_base), epochs=5, learning_rate=1e-2, batch_size=8)
    run = tailored.train(data, cfg, DataConfig(), EvalConfig(max_new_tokens=4),
                         RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)
    assert run.path == tmp_path / "runs" / "yes" / "v1"
    for name in ["run.json", "config.json", "history.json", "metrics.json", "COMPLETE",
                 "adapter/adapter_model.safetensors", "adapter/adapter_config.json", "tokenizer/tokenizer.json"]:
        assert (run.path / name).exists(), name
    assert not list(run.path.rglob("*.bin")) and not list(run.path.rglob("*.pt"))
    lineage = json.loads((run.path / "run.json").read_text())
    assert lineage["data"]["heldout"]["path"] == str(heldout)  # the sibling NAME.heldout.jsonl was found
    assert len(lineage["data"]["train"]["sha256"]) == 64
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["eval"]["on"] == "held-out" and len(metrics["eval"]["rows"]) == 6
    assert metrics["eval"]["tuned"]["exact_match"] == 100.0
    assert metrics["eval"]["base"]["exact_match"] < 100.0
    config = json.loads((run.path / "config.json").read_text())
    assert config["train"]["epochs"] == 5 and config["reasons"]["epochs"] == "set by you"

    tuned = tailored.load("yes", runs_dir=tmp_path / "runs")
    assert tuned.generate("question number 9000 please", max_new_tokens=4) == "yes"
    assert tuned.generate(["question number 1 please", "question number 2 please"], max_new_tokens=4) == ["yes"] * 2

    comparison = tailored.evaluate(run.path, eval_cfg=EvalConfig(max_new_tokens=4), quiet=True)
    assert comparison.tuned["exact_match"] == 100.0

    second = tailored.train(data, cfg, DataConfig(), EvalConfig(max_new_tokens=4),
                            RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
    assert second.path.name == "v2"


@pytest.mark.parametrize("bf16", [True, False])
def test_the_held_out_loss_is_measured_in_training_s_precision_and_answers_in_fp32_on_cpu(tiny_base, tmp_path,
                                                                                         monkeypatch, bf16):
    from tailored.evaluation import evidence

    losses, answers, loss = [], [], evidence.mean_token_loss
    monkeypatch.setattr(evidence, "mean_token_loss", lambda *a: losses.append(a[-1]) or loss(*a))
    compare = evidence.compare
    monkeypatch.setattr(evidence, "compare", lambda *a, **kw: answers.append(a[5]) or compare(*a, **kw))
    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(20))
    write_jsonl(tmp_path / "yes.heldout.jsonl", yes_rows(3, start=500))
    run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=2, bf16=bf16), DataConfig(guard=0),
                         EvalConfig(max_new_tokens=2, forgetting=False), RunConfig(runs_dir=str(tmp_path / "runs")),
                         quiet=True)
    tailored.evaluate(run.path, eval_cfg=EvalConfig(max_new_tokens=2, forgetting=False), quiet=True)
    assert losses == [bf16] * 4  # base and tuned, in the run and in `evaluate`
    assert answers == [False, False]
    assert json.loads((run.path / "metrics.json").read_text())["eval"]["review"]["loss"]["rows"] == 3


def test_automatic_settings_are_explained(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", yes_rows(30))
    run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=2), DataConfig(), EvalConfig(),
                         RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
    config = json.loads((run.path / "config.json").read_text())
    assert config["train"]["epochs"] == 10  # 27 train rows: ceil(1000 / 27) capped at 10
    assert "27 training examples" in config["reasons"]["epochs"]
    assert config["train"]["learning_rate"] == 1e-3
    assert config["data"]["max_length"] > 0


def test_rows_over_max_length_are_never_cut_silently(tiny_base, tmp_path):
    # with tailored's system prompt (the guard's, as the rows have none) the short rows are 92 tokens, the long one 158
    rows = yes_rows(20) + [{"prompt": "please help " * 40, "completion": "yes"}]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    with pytest.raises(tailored.errors.DataError) as info:
        tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=1), DataConfig(max_length=120),
                       run_cfg=RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)
    assert [p.line for p in info.value.problems] == [21] and "over max_length 120" in str(info.value.problems[0])
    assert "tailored's system prompt" in str(info.value.problems[0])  # its tokens are ours, and said to be
    run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=1),
                         DataConfig(max_length=120, too_long="drop"),
                         run_cfg=RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
    check = json.loads((run.path / "check.json").read_text())
    assert check["warnings"][-1]["kind"] == "too-long" and check["warnings"][-1]["lines"] == [21]
    # the long row really left training and validation: 21 rows read, 20 kept
    assert check["profile"]["rows"] == 21
    assert check["profile"]["train_rows"] + check["profile"]["validation_rows"] == 20
    assert check["profile"]["tokens_per_example"]["max"] <= 120


def test_skip_invalid_skips_bad_rows_but_not_the_too_few_examples_refusal(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", yes_rows(6) + [{"prompt": "no completion"}])
    with pytest.raises(tailored.errors.DataError, match="only 6 usable examples; at least 10"):
        tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=1), DataConfig(skip_invalid=True),
                       run_cfg=RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
    assert not (tmp_path / "runs").exists()
    data = write_jsonl(tmp_path / "e.jsonl", yes_rows(12) + [{"prompt": "no completion"}])
    run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=1), DataConfig(skip_invalid=True),
                         run_cfg=RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
    assert json.loads((run.path / "check.json").read_text())["profile"]["rows"] == 13


def test_run_keeps_exactly_what_check_reported(tiny_base, tmp_path):
    rows = yes_rows(30) + [yes_rows(1)[0], {"prompt": "mail me at a@b.example.org", "completion": "yes"}]
    data = write_jsonl(tmp_path / "d.jsonl", rows)
    checked = tailored.check(data, base=str(tiny_base)).to_dict()
    run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=1), DataConfig(), EvalConfig(),
                         RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
    saved = json.loads((run.path / "check.json").read_text())
    assert {w["kind"] for w in checked["warnings"]} == {"duplicate", "few-examples", "personal-data"}
    assert saved["warnings"] == checked["warnings"] and saved["errors"] == checked["errors"] == []
    for key in ("rows", "train_rows", "validation_rows", "tokens_per_example", "trainable_tokens"):
        assert saved["profile"][key] == checked["profile"][key], key


def test_overfitting_is_detected_from_the_history():
    history = [{"step": 0, "valid_loss": 2.0}]
    history += [{"step": s, "train_loss": 1.0 / s} for s in range(1, 31)]
    history += [{"step": 10, "valid_loss": 0.5}, {"step": 20, "valid_loss": 0.7}, {"step": 30, "valid_loss": 0.9}]
    found = overfitting(history)
    assert found["best_step"] == 10 and found["last_valid_loss"] == 0.9
    assert "the step-10 weights were kept" in found["message"]
    healthy = history[:-2] + [{"step": 30, "valid_loss": 0.45}]
    assert overfitting(healthy) is None


def test_explain_prints_the_choices_and_trains_nothing(tiny_base, tmp_path):
    from typer.testing import CliRunner

    from tailored.cli import app

    data = write_jsonl(tmp_path / "d.jsonl", yes_rows(120))
    result = CliRunner().invoke(app, ["train", str(data), "--base", str(tiny_base), "--explain",
                                      "--runs-dir", str(tmp_path / "runs")])
    assert result.exit_code == 0, result.output
    assert "epochs = 10: 108 training examples" in result.output and "learning_rate = 0.001" in result.output
    assert not (tmp_path / "runs").exists()


def test_micro_batches_give_the_same_update_with_less_at_once(tiny_base):
    import torch

    from tailored.training.batches import micro_batches

    runs = []
    for budget in (0, 60):
        cfg = TrainConfig(base=str(tiny_base), epochs=1, learning_rate=5e-3, batch_size=8, bf16=False, seed=3,
                          micro_batch_tokens=budget)
        tok, model = fresh(tiny_base, cfg)
        model.double()  # in fp64 a different summation order cannot show; only a different update can
        rows = [{"prompt": "question " * (1 + i % 5) + str(i), "completion": "yes"} for i in range(24)]
        data = encoded(tok, rows)
        if budget:
            chunks = micro_batches(data[:8], budget)
            assert len(chunks) > 1 and all(len(c) == 1 or max(len(e.input_ids) for e in c) * len(c) <= budget
                                           for c in chunks)
        result = lora_fit(model, data, [], cfg, tok)
        best = checkpoint.trainable_state(model)
        runs.append(([h["train_loss"] for h in result.history], best, result.trained_tokens))
    (loss_a, best_a, tokens_a), (loss_b, best_b, tokens_b) = runs
    assert tokens_a == tokens_b
    assert loss_a == pytest.approx(loss_b, rel=1e-6)  # the history keeps fp32 losses
    assert all(torch.allclose(best_a[k], best_b[k], atol=1e-9) for k in best_a)


def test_automatic_settings_follow_the_data_and_say_why():
    from tailored.training import defaults

    assert [defaults.choose_batch_size(n)[0] for n in (5, 20, 79, 80, 5000)] == [1, 2, 7, 8, 8]
    assert [defaults.choose_epochs(n)[0] for n in (20, 297, 999, 50_000)] == [10, 4, 2, 1]
    assert defaults.choose_learning_rate(135_000_000)[0] == 1e-3
    assert defaults.choose_learning_rate(3_000_000_000)[0] == 2e-4
    assert defaults.choose_learning_rate(135_000_000, method="full")[0] == 5e-5
    train, data, reasons = defaults.resolve(TrainConfig(epochs=2), DataConfig(), 40, 100, 135_000_000, 8192)
    assert (train.epochs, train.batch_size, train.learning_rate, data.max_length) == (2, 4, 1e-3, 100)
    assert reasons["epochs"] == "set by you" and "10 steps per epoch" in reasons["batch_size"]
    assert set(reasons) >= {"epochs", "learning_rate", "lora_rank", "lora_alpha", "batch_size", "max_length"}
