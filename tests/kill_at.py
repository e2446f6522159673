"""Run the `tailor` command and SIGKILL it at a chosen point: the resume tests' way to interrupt a run.

    python tests/kill_at.py step:13 train DATA ...          # killed right after optimizer step 13
    python tests/kill_at.py checkpoint-write:8 train ...    # killed while checkpoint step 8 is half-written
    torchrun ... tests/kill_at.py step:7@0 train ...        # only rank 0 is killed
    torchrun ... tests/kill_at.py raise:3@1 train ...       # rank 1 fails with an exception at step 3

The kill points live here, in the tests, through public torch hooks; production code knows nothing of them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import torch
from torch.optim.optimizer import register_optimizer_step_post_hook


def _kill() -> None:
    os.kill(os.getpid(), 9)


def _fail(rank: str, step: int) -> None:
    raise RuntimeError(f"rank {rank} failed on purpose at step {step}")


def arm(point: str, at: int) -> None:
    if point in ("step", "raise"):  # a fresh run counts its optimizer steps from 1
        steps = iter(range(1, 1 << 30))
        act = _kill if point == "step" else lambda: _fail(os.environ.get("RANK", "0"), at)
        register_optimizer_step_post_hook(lambda optimizer, args, kwargs: act() if next(steps) == at else None)
    elif point == "checkpoint-write":  # the weights are written, the optimizer state is not, no marker
        save = torch.save

        def save_then_maybe_die(obj, f, *args, **kwargs):
            if Path(str(f)).name == "state.pt" and f".step-{at:07d}." in str(f):
                _kill()
            return save(obj, f, *args, **kwargs)

        torch.save = save_then_maybe_die
    else:
        raise SystemExit(f"unknown kill point {point!r}")


if __name__ == "__main__":
    point, _, where = sys.argv[1].partition(":")
    at, _, rank = where.partition("@")
    if not rank or rank == os.environ.get("RANK", "0"):
        arm(point, int(at))
    sys.argv = ["tailor", *sys.argv[2:]]
    from tailored.cli import main

    main()
