"""Device facts every layer needs: where a model lives, whether to train and answer in bf16, and the autocast.

This module imports nothing of tailored's, so data, models, training, evaluation and the server can all
use it without reaching into each other.
"""

from __future__ import annotations

from contextlib import nullcontext

import torch


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def choose_bf16(setting: bool | None, device: torch.device) -> bool:
    """`setting` when the user gave one; otherwise bf16 wherever the hardware computes it natively."""
    if setting is not None:
        return setting
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # Only with native bf16 instructions: emulated bf16 is slower than fp32 (and fp16 is ~100x slower on CPU).
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def generation_bf16(setting: bool | None, device: torch.device) -> bool:
    """bf16 for answering (evaluation, prediction, the server, replay answers) on CUDA only; CPUs answer in fp32.

    On a 2-core CPU with native bf16 (2026-12-02), fp32 answered 60 support rows in 32.5 s batched against
    38.6 s under bf16 autocast, and 135.7 s against 204.9 s one at a time; and bf16's batched kernels gave a
    row joining a running batch a different answer than alone, which the server promises it is not. On a
    CPU with AMX (2026-12-03, bench/bf16_answers.py) bf16 was 1.2-1.8x faster, but changed 30 of 60 of the
    base's answers and gave 2-4 of 12 rows another answer alone than in the batch.
    Training keeps `choose_bf16`.
    """
    return device.type == "cuda" and choose_bf16(setting, device)


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()
