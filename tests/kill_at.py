"""Run the `tailor` command and SIGKILL it at a chosen point: the resume tests' way to interrupt a run.

    python tests/kill_at.py step:13 train DATA ...          # killed right after optimizer step 13
    python tests/kill_at.py checkpoint-write:8 train ...    # killed while checkpoint step 8 is half-written

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


def arm(point: str, at: int) -> None:
    if point == "step":  # a fresh run counts its optimizer steps from 1
        steps = iter(range(1, 1 << 30))
        register_optimizer_step_post_hook(
            lambda optimizer, args, kwargs: _kill() if next(steps) == at else None)
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
    point, _, at = sys.argv[1].partition(":")
    arm(point, int(at))
    sys.argv = ["tailor", *sys.argv[2:]]
    from tailored.cli import main

    main()
