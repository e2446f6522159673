"""kill -9 at any step, rerun the command: it continues from the last complete checkpoint, bit-identically."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tailored.training import checkpoint
from tests.conftest import write_jsonl, yes_rows

KILLER = Path(__file__).with_name("kill_at.py")


def train(tiny_base, data, runs, kill: str | None = None, dropout: float = 0.0) -> int:
    args = ["train", str(data), "--base", str(tiny_base), "--epochs", "3", "--learning-rate", "1e-2",
            "--batch-size", "4", "--lora-dropout", str(dropout), "--runs-dir", str(runs), "--no-evaluate", "-q",
            "--guard", "0"]  # these tests count steps; the guard's rows depend on what a random model happens to finish
    cmd = [sys.executable, str(KILLER), kill, *args] if kill else [sys.executable, "-m", "tailored.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, cwd=KILLER.parent.parent).returncode


def last_checkpoint_step(runs) -> int | None:
    found = checkpoint.complete(runs / "d" / "v1" / "checkpoints")
    return int(found[-1].name.split("-")[1]) if found else None


def outcome(runs):
    run = runs / "d" / "v1"
    assert (run / "COMPLETE").exists() and not (runs / "d" / "v2").exists()  # the rerun continued v1
    losses = [h["train_loss"] for h in json.loads((run / "history.json").read_text()) if "train_loss" in h]
    resumed_from = json.loads((run / "metrics.json").read_text())["train"]["resumed_from"]
    return load_file(str(run / "adapter" / "adapter_model.safetensors")), losses, resumed_from


@pytest.fixture(scope="module")
def reference(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ref")
    data = write_jsonl(folder / "d.jsonl", yes_rows(40))
    references = {}
    for dropout in (0.0, 0.2):
        assert train(tiny_base, data, folder / f"runs-{dropout}", dropout=dropout) == 0
        references[dropout] = outcome(folder / f"runs-{dropout}")
    return data, references


def kill_and_rerun(tiny_base, data, runs, kill: str, dropout: float):
    assert train(tiny_base, data, runs, kill=kill, dropout=dropout) == -9  # really killed, mid-run
    assert not (runs / "d" / "v1" / "COMPLETE").exists()
    saved_step = last_checkpoint_step(runs)
    assert train(tiny_base, data, runs, dropout=dropout) == 0  # the same command again resumes v1
    return saved_step, outcome(runs)


def assert_same(got, want):
    (weights, losses, _), (ref_weights, ref_losses, _) = got, want
    assert losses == ref_losses and len(ref_losses) == 27
    assert weights.keys() == ref_weights.keys()
    assert max((weights[k] - ref_weights[k]).abs().max().item() for k in weights) == 0.0


# 36 training rows, batch 4: 9 steps an epoch, 27 in all; checkpoints at each validation and epoch end.
KILLS = [f"step:{s}" for s in sorted(random.Random(2026).sample(range(2, 27), 5))] + ["checkpoint-write:8"]


@pytest.mark.parametrize("kill", KILLS)
def test_sigkill_then_rerun_is_bit_identical(tiny_base, reference, tmp_path, kill):
    data, references = reference
    saved_step, got = kill_and_rerun(tiny_base, data, tmp_path / "runs", kill, 0.0)
    assert got[2] == saved_step  # it continued from the last complete checkpoint, not from step 0
    if kill == "checkpoint-write:8":
        assert saved_step is not None and saved_step < 8  # the half-written step-8 checkpoint was passed over
    assert_same(got, references[0.0])


@pytest.mark.parametrize("kill", ["step:15", "step:22"])
def test_resume_restores_the_random_state_dropout_draws_from(tiny_base, reference, tmp_path, kill):
    data, references = reference
    assert references[0.2][1] != references[0.0][1]  # dropout really changes the run
    saved_step, got = kill_and_rerun(tiny_base, data, tmp_path / "runs", kill, 0.2)
    assert saved_step is not None and got[2] == saved_step
    assert_same(got, references[0.2])


def test_half_written_checkpoint_is_never_chosen(tmp_path):
    good, bad = tmp_path / "step-0000004", tmp_path / "step-0000008"
    good.mkdir()
    (good / "trainable.safetensors").write_bytes(b"x")
    (good / checkpoint.MARKER).write_text("4\n")
    bad.mkdir()  # newer, but its write was cut off: no marker, truncated file
    (bad / "trainable.safetensors").write_bytes(b"\x00" * 3)
    (tmp_path / ".step-0000012.abc.tmp").mkdir()  # a temp folder left by a kill during atomic_dir
    assert checkpoint.complete(tmp_path) == [good]


@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_atomic_writes_take_the_users_umask(tmp_path, umask):
    """Exports and reports are read by other accounts (Ollama's service user): a crash-safe write must give
    the file the mode a plain write would, not tempfile's 0600."""
    from tailored.atomic import atomic_dir, write_text

    old = os.umask(umask)
    try:
        write_text(tmp_path / "report.html", "<p>hi</p>")
        with atomic_dir(tmp_path / "export") as folder:
            (folder / "model.safetensors").write_bytes(b"x")
    finally:
        os.umask(old)
    assert (tmp_path / "report.html").stat().st_mode & 0o777 == 0o666 & ~umask
    assert (tmp_path / "export").stat().st_mode & 0o777 == 0o777 & ~umask
    assert (tmp_path / "report.html").read_text() == "<p>hi</p>"
    assert not list(tmp_path.glob(".*.tmp"))
