"""Preference data and DPO: formats and their errors, the loss, a tiny run that learns, exact resume."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.data import load_dataset
from tailored.errors import DataError, TailoredError
from tests.conftest import build_tokenizer, write_jsonl, yes_rows

ROOT = Path(__file__).parent.parent
KILLER = Path(__file__).with_name("kill_at.py")


def test_both_preference_formats_read_to_the_same_pairs(tmp_path):
    common = [{"prompt": "hi", "chosen": "hello!", "rejected": "go away"},
              {"prompt": [{"role": "system", "content": "be kind"}, {"role": "user", "content": "hi"}],
               "chosen": [{"role": "assistant", "content": "hello!"}], "rejected": "go away"}]
    openai = [{"input": {"messages": [{"role": "user", "content": "hi"}]},
               "preferred_output": [{"role": "assistant", "content": "hello!"}],
               "non_preferred_output": [{"role": "assistant", "content": "go away"}]}]
    a, b = load_dataset(write_jsonl(tmp_path / "a.jsonl", common)), load_dataset(write_jsonl(tmp_path / "b.jsonl", openai))
    assert (a.format, b.format) == ("preference", "preference_openai")
    assert a.examples[0].messages == b.examples[0].messages == [{"role": "user", "content": "hi"},
                                                                 {"role": "assistant", "content": "hello!"}]
    assert a.examples[0].rejected == b.examples[0].rejected == "go away"
    assert a.examples[1].prompt[0] == {"role": "system", "content": "be kind"} and a.examples[1].target == "hello!"


def test_preference_rows_report_every_problem_at_its_line(tmp_path):
    rows = [{"prompt": "q", "chosen": "same", "rejected": " same "},
            {"prompt": "q", "chosen": "", "rejected": "b"},
            {"prompt": "", "chosen": "a", "rejected": "b"},
            {"input": "q", "preferred_output": "a", "non_preferred_output": "b"},
            {"prompt": "q", "chosen": [{"role": "assistant", "content": "a"}, {"role": "user", "content": "x"}],
             "rejected": "b"}]
    path = write_jsonl(tmp_path / "p.jsonl", rows)
    with pytest.raises(DataError) as e:
        load_dataset(path)
    assert [str(p) for p in e.value.problems] == [
        f"{path}:1: rejected: the rejected reply is identical to the chosen one, so there is no preference to learn "
        "— write a worse reply here, or drop the row",
        f"{path}:2: chosen: expected a non-empty reply, got empty text — write the reply for this side of the pair",
        f"{path}:3: prompt: expected non-empty text, got empty text — put the request in 'prompt'",
        f"{path}:4: (row): row is input+preferred_output+non_preferred_output but the file is prompt+chosen+rejected "
        "— use one format per file",
        f"{path}:5: chosen: expected one assistant message, got a list of 2 — use [{{\"role\": \"assistant\", "
        "\"content\": \"…\"}] or plain text"]


def test_the_audit_finds_reversed_and_duplicate_pairs(tmp_path):
    from tailored.data.audit import repeats

    rows = [{"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "b", "rejected": "a"},
            {"prompt": "q", "chosen": "a", "rejected": "b"}, {"prompt": "q", "chosen": "a", "rejected": "c"}]
    found = {f.kind: f for f in repeats(load_dataset(write_jsonl(tmp_path / "p.jsonl", rows)).examples)}
    assert found["duplicate"].lines == [3]
    assert found["contradiction"].lines == [1, 2, 3] and "prefer A over B" in found["contradiction"].message


def test_the_dpo_loss_is_log_sigmoid_of_the_reward_gap(tiny_base):
    import torch
    from transformers import AutoModelForCausalLM

    from tailored.data.encode import Pair, collate_pairs, encode
    from tailored.models.scoring import sequence_logps
    from tailored.training import dpo, lora

    tok = build_tokenizer()
    model = lora.setup(AutoModelForCausalLM.from_pretrained(tiny_base), TrainConfig(lora_rank=4))
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.5)  # move the policy away from the reference
    ask = [{"role": "user", "content": "question 1"}]
    pairs = [Pair(encode(tok, ask + [{"role": "assistant", "content": c}]),
                  encode(tok, ask + [{"role": "assistant", "content": r}])) for c, r in (("yes", "no"), ("ok", "no"))]
    batch = collate_pairs(pairs, tok.pad_token_id)
    value, n, right = dpo.loss(model, batch, beta=0.5)
    policy = sequence_logps(model, batch)
    with model.disable_adapter():
        ref = sequence_logps(model, batch)
    gap = 0.5 * ((policy[:2] - ref[:2]) - (policy[2:] - ref[2:]))
    assert n == 2 and torch.allclose(value, -torch.nn.functional.logsigmoid(gap).sum())
    assert right == int((gap > 0).sum())
    assert not torch.allclose(policy, ref)


def base_prefers(tiny_base, prompts: list[str]) -> list[bool]:
    """Whether the untrained tiny base finds 'yes' more likely than 'no' after each prompt."""
    from transformers import AutoModelForCausalLM

    from tailored.data.formats import Example
    from tailored.evaluation.preference import encode_pairs, pair_logps

    tok, model = build_tokenizer(), AutoModelForCausalLM.from_pretrained(tiny_base)
    examples = [Example([{"role": "user", "content": p}, {"role": "assistant", "content": "yes"}], "f", 1,
                        rejected="no") for p in prompts]
    logps = pair_logps(model, encode_pairs(tok, examples), tok.pad_token_id, False)
    return list(logps[:, 0] > logps[:, 1])


def pairs_against_the_base(tiny_base) -> tuple[list[dict], list[dict]]:
    """Training and held-out pairs that prefer the reply the base mostly finds less likely on held-out prompts."""
    train, heldout = [r["prompt"] for r in yes_rows(40)], [r["prompt"] for r in yes_rows(12, start=500)]
    prefers_yes = base_prefers(tiny_base, heldout)  # the figure to move is the held-out one
    chosen, rejected = ("no", "yes") if sum(prefers_yes) > len(prefers_yes) / 2 else ("yes", "no")
    return ([{"prompt": p, "chosen": chosen, "rejected": rejected} for p in train],
            [{"prompt": p, "chosen": chosen, "rejected": rejected} for p in heldout])


def test_dpo_makes_the_tuned_model_prefer_the_chosen_replies(tiny_base, tmp_path):
    train, heldout = pairs_against_the_base(tiny_base)
    data = write_jsonl(tmp_path / "p.jsonl", train)
    write_jsonl(tmp_path / "p.heldout.jsonl", heldout)
    run = tailored.train(data, TrainConfig(base=str(tiny_base), method="dpo", epochs=4, learning_rate=1e-2,
                                           batch_size=4, beta=0.5),
                         DataConfig(), EvalConfig(max_new_tokens=3, samples=0, forgetting=False),
                         RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)
    pref = run.comparison.review["preference"]
    assert pref["pairs"] == 12 and pref["base_prefers_chosen"] <= 50.0  # the starting figure
    assert pref["preference_accuracy"] == 100.0 and pref["tuned_prefers_chosen"] == 100.0
    assert pref["reward_margin_ci"][0] > 0
    history = [h for h in run.fit.history if "valid_loss" in h]
    assert history[0]["valid_loss"] == pytest.approx(0.6931, abs=1e-3)  # log 2 at step 0: policy = reference
    assert history[-1]["valid_loss"] < 0.3
    saved = json.loads((run.path / "config.json").read_text())["train"]
    assert saved["method"] == "dpo" and (run.path / "adapter" / "adapter_model.safetensors").exists()
    assert "library_name: peft" in (run.path / "README.md").read_text()


def test_methods_and_data_must_match(tiny_base, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}", "chosen": "a", "rejected": "b"} for i in range(20)])
    sft = write_jsonl(tmp_path / "s.jsonl", yes_rows(20))
    cfg = dict(base=str(tiny_base), epochs=1)
    with pytest.raises(TailoredError, match="train it with --method dpo"):
        tailored.train(pairs, TrainConfig(**cfg), quiet=True, run_cfg=RunConfig(runs_dir=str(tmp_path / "r")))
    with pytest.raises(TailoredError, match="--method dpo trains on preference pairs"):
        tailored.train(sft, TrainConfig(method="dpo", **cfg), quiet=True, run_cfg=RunConfig(runs_dir=str(tmp_path)))


def dpo_cli(tiny_base, data, runs, kill=None) -> int:
    args = ["train", str(data), "--base", str(tiny_base), "--method", "dpo", "--epochs", "3", "--learning-rate",
            "1e-2", "--batch-size", "4", "--runs-dir", str(runs), "--no-evaluate", "-q"]
    cmd = [sys.executable, str(KILLER), kill, *args] if kill else [sys.executable, "-m", "tailored.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT).returncode


def test_dpo_resumes_bit_exactly_after_sigkill(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": r["prompt"], "chosen": "yes", "rejected": "no"}
                                              for r in yes_rows(40)])
    assert dpo_cli(tiny_base, data, tmp_path / "ref") == 0
    assert dpo_cli(tiny_base, data, tmp_path / "runs", kill="step:13") == -9
    assert dpo_cli(tiny_base, data, tmp_path / "runs") == 0
    got, want = (load_file(str(p / "d" / "v1" / "adapter" / "adapter_model.safetensors"))
                 for p in (tmp_path / "runs", tmp_path / "ref"))
    assert json.loads((tmp_path / "runs" / "d" / "v1" / "metrics.json").read_text())["train"]["resumed_from"] > 0
    assert got.keys() == want.keys() and max((got[k] - want[k]).abs().max().item() for k in got) == 0.0
