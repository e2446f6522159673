"""Training under torchrun on CPU (gloo): the same steps as one process, resume across process counts,
a failing rank ends the job, and the cluster launch line."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from safetensors.torch import load_file

from tailored.training import checkpoint
from tests.conftest import write_jsonl

ROOT = Path(__file__).parent.parent
KILLER = Path(__file__).with_name("kill_at.py")


def rows(n: int) -> list[dict]:
    # lengths and answers vary, so each rank's share of a batch differs from the other's
    return [{"prompt": "question " * (1 + i % 4) + f"number {i} please", "completion": "yes" if i % 3 else "no"}
            for i in range(n)]


def train_args(tiny_base, data, runs, lr: str = "1e-2") -> list[str]:
    return ["train", str(data), "--base", str(tiny_base), "--epochs", "2", "--learning-rate", lr,
            "--batch-size", "6", "--no-bf16", "--runs-dir", str(runs), "--no-evaluate", "-q",
            "--guard", "0"]  # these tests count steps; the guard's rows depend on what a random model happens to finish


# Full fine-tuning at a full fine-tuning rate (the default is 5e-5). Adam's first steps move every weight by
# about the rate whatever its gradient's size, so a weight whose gradient is ~0 moves by +-rate on summation
# noise alone, and the gap between one process and FSDP grows with the rate. How far depends on the machine's
# kernels: 2.6e-6 in the losses at 1e-4 where this was written; on a 2-core EPYC (avx512_bf16) 2.0e-5 in the
# losses and 5.0e-5 in the weights at 1e-4, 4.8e-6 / 1.5e-5 at 3e-5, and 2.6e-6 / 5.0e-6 at 1e-5. The losses
# still fall 7.37 -> 6.61 at 1e-5, and a missing or doubled reduction shows in the gradient norms either way.
FULL = ["--method", "full"]
FULL_RATE = "1e-5"


def tailor(*args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tailored.cli", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


def torchrun(processes: int, kill: str, *args) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                           f"--nproc-per-node={processes}", str(KILLER), kill, *args],
                          capture_output=True, text=True, cwd=ROOT, timeout=300)


def outcome(runs, weights: str = "adapter/adapter_model.safetensors"):
    run = runs / "d" / "v1"
    assert (run / "COMPLETE").exists() and not (runs / "d" / "v2").exists()
    history = json.loads((run / "history.json").read_text())
    train = [h["train_loss"] for h in history if "train_loss" in h]
    valid = [h["valid_loss"] for h in history if "valid_loss" in h]
    metrics = json.loads((run / "metrics.json").read_text())["train"]
    metrics["grad_norms"] = [h["grad_norm"] for h in history if "grad_norm" in h]
    return train, valid, load_file(str(run / weights)), metrics


def assert_same_run(got, want):
    assert len(got[0]) == len(want[0]) == 12  # 36 training rows, batches of 6, 2 epochs
    assert got[0] == pytest.approx(want[0], abs=1e-5) and got[1] == pytest.approx(want[1], abs=1e-5)
    assert got[2].keys() == want[2].keys()
    assert max((got[2][k] - want[2][k]).abs().max().item() for k in got[2]) < 1e-5
    assert got[3]["trained_tokens"] == want[3]["trained_tokens"]
    # Adam ignores a uniform scale of the gradients, so the losses alone would not show gradients averaged
    # where they should be summed; their norms do
    assert got[3]["grad_norms"] == pytest.approx(want[3]["grad_norms"], rel=1e-3)


@pytest.fixture(scope="module")
def one_process(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("dist")
    data = write_jsonl(folder / "d.jsonl", rows(40))
    done = tailor(*train_args(tiny_base, data, folder / "runs"))
    assert done.returncode == 0, done.stderr
    return data, outcome(folder / "runs")


def test_two_processes_take_the_same_steps_as_one(tiny_base, one_process, tmp_path):
    data, want = one_process
    done = tailor(*train_args(tiny_base, data, tmp_path / "runs"), "--processes", "2")
    assert done.returncode == 0, done.stderr
    assert_same_run(outcome(tmp_path / "runs"), want)


def kill_then_resume_two_ways(tmp_path, kill: str, args, many: list[str], read, want) -> None:
    """Kill a 2-process run (`args(runs)`), then rerun it with `many` flags and as one plain process."""
    killed = torchrun(2, kill, *args(tmp_path / "many"), *many)
    assert killed.returncode != 0 and not (tmp_path / "many" / "d" / "v1" / "COMPLETE").exists()
    saved = checkpoint.complete(tmp_path / "many" / "d" / "v1" / "checkpoints")
    assert saved and int(saved[-1].name.split("-")[1]) == 6  # the epoch-end checkpoint; step 8's never came
    shutil.copytree(tmp_path / "many", tmp_path / "one")
    for runs, extra in ((tmp_path / "many", ["--processes", "2", *many]), (tmp_path / "one", [])):
        done = tailor(*args(runs), *extra)  # the same command again resumes v1
        assert done.returncode == 0, done.stderr
        got = read(runs)
        assert got[3]["resumed_from"] == 6
        assert_same_run(got, want)


def test_a_killed_two_process_run_resumes_under_two_and_under_one(tiny_base, one_process, tmp_path):
    data, want = one_process
    kill_then_resume_two_ways(tmp_path, "step:8@0", lambda runs: train_args(tiny_base, data, runs), [], outcome,
                              want)


def test_a_user_error_under_processes_is_one_line_with_no_traceback(tmp_path):
    done = tailor("train", str(tmp_path / "nope.jsonl"), "--processes", "2")
    assert done.returncode == 1
    assert f"error {tmp_path / 'nope.jsonl'}: file not found — check the path" in done.stderr
    assert "Traceback" not in done.stdout + done.stderr
    assert "error training process 0 of 2 failed (exit code 1); its message is above" in done.stderr
    assert "error another training process stopped; its message is above" in done.stderr  # rank 1, waiting


def test_a_failing_rank_ends_the_whole_job_with_its_error(tiny_base, one_process, tmp_path):
    data, _ = one_process
    start = time.monotonic()
    failed = torchrun(2, "raise:3@1", *train_args(tiny_base, data, tmp_path / "runs"))
    assert failed.returncode != 0
    assert time.monotonic() - start < 120  # the other rank did not wait out the collective timeout
    assert "rank 1 failed on purpose at step 3" in failed.stdout + failed.stderr


def test_print_launch_gives_the_torchrun_line_for_every_machine(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", rows(20))
    done = tailor("train", str(data), "--print-launch", "--nnodes", "4", "--processes", "8", "--epochs", "2")
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == (
        "torchrun --nnodes=4 --nproc-per-node=8 --rdzv-backend=c10d --rdzv-endpoint=$MAIN_ADDR:29500 "
        f"--rdzv-id=tailored-d --module tailored.cli train {data} --nnodes 4 --processes 8 --epochs 2")


def test_processes_from_python_point_to_torchrun(tmp_path):
    import tailored
    from tailored.config import RunConfig, TrainConfig
    from tailored.errors import TailoredError

    data = write_jsonl(tmp_path / "d.jsonl", rows(20))
    with pytest.raises(TailoredError, match="start through torchrun"):
        tailored.train(data, TrainConfig(max_steps=1), run_cfg=RunConfig(processes=2), quiet=True)


def full_outcome(runs):
    return outcome(runs, "model/model.safetensors")


@pytest.fixture(scope="module")
def one_process_full(tiny_base, one_process, tmp_path_factory):
    data, _ = one_process
    runs = tmp_path_factory.mktemp("full") / "runs"
    done = tailor(*train_args(tiny_base, data, runs, FULL_RATE), *FULL)
    assert done.returncode == 0, done.stderr
    return full_outcome(runs)


def test_fsdp_full_fine_tuning_takes_the_same_steps_as_one_process(tiny_base, one_process, one_process_full,
                                                                   tmp_path):
    data, _ = one_process
    done = tailor(*train_args(tiny_base, data, tmp_path / "runs", FULL_RATE), *FULL, "--processes", "2", "--fsdp")
    assert done.returncode == 0, done.stderr
    assert_same_run(full_outcome(tmp_path / "runs"), one_process_full)


def test_a_killed_fsdp_run_resumes_sharded_and_in_one_unsharded_process(tiny_base, one_process, one_process_full,
                                                                       tmp_path):
    data, _ = one_process
    # the checkpoint holds whole tensors: cut into shards again, or loaded as they are by one process
    kill_then_resume_two_ways(tmp_path, "step:8@1", lambda runs: [*train_args(tiny_base, data, runs, FULL_RATE), *FULL],
                              ["--fsdp"], full_outcome, one_process_full)


def test_fsdp_needs_full_fine_tuning_and_several_processes(tiny_base, one_process, tmp_path):
    data, _ = one_process
    done = tailor(*train_args(tiny_base, data, tmp_path / "runs"), "--fsdp")
    assert done.returncode == 1 and "--fsdp shards a fully fine-tuned causal LM" in done.stderr
