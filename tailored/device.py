"""Device facts every layer needs: where a model lives, whether to compute in bf16, and the autocast for it.

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


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()
