"""Full fine-tuning, the encoder classifier, --mix and YAML settings, on tiny models built in code."""

from __future__ import annotations

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig, from_yaml, template_yaml
from tailored.data.prepare import load_splits
from tailored.errors import TailoredError
from tailored.training import checkpoint
from tests.conftest import write_jsonl, yes_rows


def keyword_csv(path, n: int, start: int = 0):
    """Label 'positive' when the text says yes, 'negative' when it says no: learnable by a tiny encoder."""
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for i in range(start, start + n):
            w.writerow([f"hello {i} the answer is yes please" if i % 2 else f"hello {i} the answer is no please",
                        "positive" if i % 2 else "negative"])
    return path


def classify_cmd(encoder, data, runs, kill: str | None = None) -> int:
    args = ["train", str(data), "--task", "classify", "--base", str(encoder), "--epochs", "3", "--learning-rate",
            "3e-3", "--batch-size", "4", "--runs-dir", str(runs), "--no-evaluate", "-q"]
    killer = Path(__file__).with_name("kill_at.py")
    cmd = [sys.executable, str(killer), kill, *args] if kill else [sys.executable, "-m", "tailored.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True).returncode


def test_classifier_learns_and_serves_predict_and_evaluate(tiny_encoder, tmp_path):
    data = keyword_csv(tmp_path / "kw.csv", 60)
    keyword_csv(tmp_path / "kw.heldout.csv", 20, start=1000)
    cfg = TrainConfig(task="classify", base=str(tiny_encoder), epochs=8, learning_rate=3e-3, batch_size=8)
    run = tailored.train(data, cfg, DataConfig(), EvalConfig(), RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)
    assert (run.path / "classifier" / "model.safetensors").exists()
    ev = run.metrics["eval"]
    assert ev["primary"] == "accuracy"
    # both simple baselines are measured, and the stronger is the bar the table, verdict and gate use
    assert set(ev["baselines"]) == {"TF-IDF + logistic regression", "frozen embeddings + logistic regression"}
    strongest = max(ev["baselines"], key=lambda name: ev["baselines"][name]["accuracy"])
    assert ev["base_name"] == strongest and ev["base"]["accuracy"] == ev["baselines"][strongest]["accuracy"]
    assert ev["tuned"]["accuracy"] >= 90.0, ev["tuned"]
    tuned = tailored.load(run.path)
    assert tuned.generate(["hello 77 the answer is yes please", "hello 78 the answer is no please"]) == \
        ["positive", "negative"]
    again = tailored.evaluate(run.path, quiet=True)  # the same numbers from a separate evaluation
    assert again.tuned["accuracy"] == ev["tuned"]["accuracy"] and again.base["accuracy"] == ev["base"]["accuracy"]


def test_classifier_resumes_bit_identically_after_kill(tiny_encoder, tmp_path):
    data = keyword_csv(tmp_path / "d.csv", 40)
    assert classify_cmd(tiny_encoder, data, tmp_path / "ref") == 0
    assert classify_cmd(tiny_encoder, data, tmp_path / "cut", kill="step:13") == -9
    saved = checkpoint.complete(tmp_path / "cut" / "d" / "v1" / "checkpoints")[-1]
    assert classify_cmd(tiny_encoder, data, tmp_path / "cut") == 0
    metrics = json.loads((tmp_path / "cut" / "d" / "v1" / "metrics.json").read_text())
    assert metrics["train"]["resumed_from"] == int(saved.name.split("-")[1]) == 12  # not a restart from step 0
    for name in ("model.safetensors", "head.safetensors"):  # the encoder and the head
        ref = load_file(str(tmp_path / "ref" / "d" / "v1" / "classifier" / name))
        cut = load_file(str(tmp_path / "cut" / "d" / "v1" / "classifier" / name))
        assert ref.keys() == cut.keys()
        assert all(torch.equal(ref[k], cut[k]) for k in ref)
    losses = [[h["train_loss"] for h in json.loads((p / "d" / "v1" / "history.json").read_text()) if "train_loss" in h]
              for p in (tmp_path / "ref", tmp_path / "cut")]
    assert losses[0] == losses[1] and len(losses[0]) == 27


def test_classify_refuses_chat_data(tiny_encoder, tmp_path):
    data = write_jsonl(tmp_path / "chat.jsonl", yes_rows(20))
    with pytest.raises(TailoredError, match="needs text/label rows"):
        tailored.train(data, TrainConfig(task="classify", base=str(tiny_encoder)), quiet=True)


def test_full_fine_tuning_changes_every_weight_and_saves_a_plain_model(tiny_base, tmp_path):
    from transformers import AutoModelForCausalLM

    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(32))
    write_jsonl(tmp_path / "yes.heldout.jsonl", yes_rows(6, start=500))
    cfg = TrainConfig(base=str(tiny_base), method="full", epochs=4, learning_rate=3e-3, batch_size=8)
    run = tailored.train(data, cfg, DataConfig(), EvalConfig(max_new_tokens=4),
                         RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)
    assert not (run.path / "adapter").exists()
    tuned = AutoModelForCausalLM.from_pretrained(run.path / "model")
    base = AutoModelForCausalLM.from_pretrained(tiny_base)
    base_params = dict(base.named_parameters())
    changed = [n for n, p in tuned.named_parameters() if not torch.equal(p, base_params[n])]
    assert len(changed) == len(base_params)
    ev = run.metrics["eval"]
    assert ev["tuned"]["exact_match"] == 100.0 and ev["base"]["exact_match"] < 100.0
    assert tailored.load(run.path).generate("question number 9 please", max_new_tokens=4) == "yes"


def test_mix_adds_the_asked_share_of_general_rows_to_training_only(tmp_path):
    data = write_jsonl(tmp_path / "task.jsonl", yes_rows(100))
    general = write_jsonl(tmp_path / "general.jsonl",
                          [{"prompt": f"general question {i}", "completion": "an answer"} for i in range(200)])
    prep = load_splits(data, DataConfig(mix=f"{general}:0.2"), seed=0)
    assert len(prep.mixed) == round(0.2 / 0.8 * len(prep.train_examples))
    assert all("general" not in ex.prompt[-1]["content"] for ex in prep.valid_examples + prep.train_examples)
    assert all("general" in ex.prompt[-1]["content"] for ex in prep.mixed)
    short = load_splits(data, DataConfig(mix=f"{general}:0.9"), seed=0)
    assert len(short.mixed) == 200 and any(f.kind == "mix-short" for f in short.findings)
    with pytest.raises(TailoredError, match="FILE:FRACTION"):
        DataConfig(mix="general.jsonl")


def test_yaml_template_round_trips_and_flags_win(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text(template_yaml(), encoding="utf-8")
    built = from_yaml(str(path))
    assert built["TrainConfig"] == TrainConfig() and built["DataConfig"] == DataConfig()
    assert built["EvalConfig"] == EvalConfig() and built["RunConfig"] == RunConfig()
    path.write_text("train:\n  epochs: 2\n  lora_rank: 4\ndata:\n  valid_fraction: 0.2\n", encoding="utf-8")
    built = from_yaml(str(path), {"epochs": 5})
    assert (built["TrainConfig"].epochs, built["TrainConfig"].lora_rank) == (5, 4)
    assert built["DataConfig"].valid_fraction == 0.2
    path.write_text("train:\n  learning_rte: 0.1\n", encoding="utf-8")
    with pytest.raises(TailoredError, match="did you mean learning_rate"):
        from_yaml(str(path))
    path.write_text("train:\n  epochs: 0\n", encoding="utf-8")
    with pytest.raises(TailoredError, match="epochs=0"):
        from_yaml(str(path))


def test_openai_hyperparameter_names_map_to_ours(tmp_path):
    from tailored.training.defaults import resolve

    path = tmp_path / "s.yaml"
    path.write_text("hyperparameters:\n  n_epochs: 3\n  batch_size: auto\n  learning_rate_multiplier: 2\n",
                    encoding="utf-8")
    train = from_yaml(str(path))["TrainConfig"]
    assert (train.epochs, train.batch_size, train.learning_rate_multiplier) == (3, None, 2)
    resolved, _, reasons = resolve(train, DataConfig(), 400, 100, 135_000_000, 2048)
    assert resolved.learning_rate == pytest.approx(2e-3) and resolved.learning_rate_multiplier is None
    assert reasons["learning_rate"].startswith("2 × 0.001 (your multiplier")
    TrainConfig(**{**vars(resolved)})  # what a resumed run rebuilds from config.json is valid
    path.write_text("train:\n  n_epochs: auto\n  learning_rate_multiplier: 0.5\n", encoding="utf-8")
    assert from_yaml(str(path))["TrainConfig"].epochs is None
    path.write_text("hyperparameters:\n  n_epochs: many\n", encoding="utf-8")
    with pytest.raises(TailoredError, match='n_epochs: expected a number or "auto"'):
        from_yaml(str(path))
    with pytest.raises(TailoredError, match="set one"):
        TrainConfig(learning_rate=1e-3, learning_rate_multiplier=2)


def test_classifier_gets_micro_batches_and_step_0_validation_from_the_one_loop(tiny_encoder):
    from transformers import AutoTokenizer

    from tailored.data.encode import encode_labelled
    from tailored.data.formats import Example
    from tailored.training import classifier
    from tailored.training.batches import micro_batches
    from tailored.training.loop import fit

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    labels = ["negative", "positive"]
    rows = [Example([{"role": "user", "content": "hello " * (1 + i % 5) + ("yes" if i % 2 else "no")},
                     {"role": "assistant", "content": labels[i % 2]}], "x", i + 1, label=labels[i % 2])
            for i in range(28)]
    train, valid = encode_labelled(tok, rows[:24], labels, 128, []), encode_labelled(tok, rows[24:], labels, 128, [])
    runs = []
    for budget in (0, 24):
        cfg = TrainConfig(task="classify", base=str(tiny_encoder), epochs=1, learning_rate=3e-3, batch_size=8,
                          bf16=False, seed=3, micro_batch_tokens=budget)
        if budget:
            assert len(micro_batches(train[:8], budget)) > 1
        # fp64: only a different update shows
        model = classifier.setup(str(tiny_encoder), labels, cfg, train, tok.pad_token_id).double()
        for module in model.modules():  # BERT's dropout would draw other masks for other batch shapes
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        reports = []
        result = fit(model, train, valid, cfg, **classifier.batching(tok.pad_token_id),
                     on_val_report=reports.append)
        runs.append(([h.get("train_loss", h.get("valid_loss")) for h in result.history],
                     checkpoint.trainable_state(model)))
        assert reports[0]["step"] == 0 and result.history[0] == {
            "step": 0, "epoch": 0.0, "valid_loss": reports[0]["valid_loss"],
            "valid_accuracy": reports[0]["valid_accuracy"]}
        assert reports[0]["valid_accuracy"] in (0.0, 0.25, 0.5, 0.75, 1.0)  # labels right among the 4 rows
    (losses_a, weights_a), (losses_b, weights_b) = runs
    assert losses_a == pytest.approx(losses_b, rel=1e-6) and len(losses_a) == 3 + 4  # 3 steps, validations at 0-3
    assert all(torch.allclose(weights_a[k], weights_b[k], atol=1e-9) for k in weights_a)  # the same update
