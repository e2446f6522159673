"""kill -9 at any step, rerun the command: the result is bit-identical to a run never interrupted."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys

import pytest
from safetensors.torch import load_file

from tailored.training import checkpoint
from tests.conftest import write_jsonl, yes_rows


def train(tiny_base, data, runs, kill: str | None = None) -> int:
    env = {k: v for k, v in os.environ.items() if k != "TAILORED_TEST_KILL"}
    if kill:
        env["TAILORED_TEST_KILL"] = kill
    cmd = [sys.executable, "-m", "tailored.cli", "train", str(data), "--base", str(tiny_base), "--epochs", "3",
           "--learning-rate", "1e-2", "--batch-size", "4", "--runs-dir", str(runs), "--no-evaluate", "-q"]
    return subprocess.run(cmd, env=env, capture_output=True, text=True).returncode


def outcome(runs):
    run = runs / "d" / "v1"
    assert (run / "COMPLETE").exists() and not (run / "v2").exists()
    losses = [h["train_loss"] for h in json.loads((run / "history.json").read_text()) if "train_loss" in h]
    return load_file(str(run / "adapter" / "adapter_model.safetensors")), losses


@pytest.fixture(scope="module")
def reference(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    data = write_jsonl(folder / "d.jsonl", yes_rows(40))
    assert train(tiny_base, data, folder / "runs") == 0
    return data, outcome(folder / "runs")


# 36 training rows, batch 4: 9 steps an epoch, 27 in all; checkpoints at each validation and epoch end.
KILLS = [f"step:{s}" for s in sorted(random.Random(2026).sample(range(2, 27), 5))] + ["checkpoint-write:8"]


@pytest.mark.parametrize("kill", KILLS)
def test_sigkill_then_rerun_is_bit_identical(tiny_base, reference, tmp_path, kill):
    data, (ref_weights, ref_losses) = reference
    runs = tmp_path / "runs"
    assert train(tiny_base, data, runs, kill=kill) == -9  # really killed, mid-run
    assert not (runs / "d" / "v1" / "COMPLETE").exists()
    assert train(tiny_base, data, runs) == 0  # the same command again resumes v1
    weights, losses = outcome(runs)
    assert losses == ref_losses
    assert weights.keys() == ref_weights.keys()
    assert max((weights[k] - ref_weights[k]).abs().max().item() for k in weights) == 0.0


def test_half_written_checkpoint_is_never_chosen(tmp_path):
    good, bad = tmp_path / "step-0000004", tmp_path / "step-0000008"
    good.mkdir()
    (good / "trainable.safetensors").write_bytes(b"x")
    (good / checkpoint.MARKER).write_text("4\n")
    bad.mkdir()  # newer, but its write was cut off: no marker, truncated file
    (bad / "trainable.safetensors").write_bytes(b"\x00" * 3)
    (tmp_path / ".step-0000012.abc.tmp").mkdir()  # a temp folder left by a kill during atomic_dir
    assert checkpoint.complete(tmp_path) == [good]
