"""LoRA (and full) fine-tuning of a causal LM: what is its own is setup, the loss, batching and save.

The loop itself is `training.loop.fit`; pass it `**lora.batching(pad_id)`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch

from tailored.atomic import atomic_dir
from tailored.config import TrainConfig
from tailored.data.encode import IGNORE, Encoded, collate
from tailored.models.load import quiet_transformers
from tailored.models.scoring import forward_token_loss, token_loss, unwrapped
from tailored.training.batches import seed_everything
from tailored.training.fast_path import active_kernels, training_kernels


def setup(model, cfg: TrainConfig):
    """Wrap the base in LoRA adapters on every linear layer (the LM head excluded); `full` trains it all."""
    from peft import LoraConfig, get_peft_model

    if cfg.method == "full":
        for p in model.parameters():
            p.requires_grad_(True)
        return model
    seed_everything(cfg.seed)  # the LoRA A matrices are drawn here
    lora = LoraConfig(
        r=cfg.lora_rank,
        lora_alpha=cfg.lora_alpha or 2 * cfg.lora_rank,
        lora_dropout=cfg.lora_dropout,
        target_modules="all-linear",
        task_type="CAUSAL_LM",
    )
    with quiet_transformers():  # peft asks transformers deprecated questions; nothing a user can act on
        return get_peft_model(model, lora)


def loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy over the assistant tokens, how many there were, and how many are the argmax.

    Inside `training_kernels` the LM head and loss run as `head_loss` (chunked, gradient made in the
    forward pass); otherwise as plain HF modules. Both compute the same value.
    """
    inner = unwrapped(model)
    kernels = active_kernels(inner)
    return token_loss(model, batch, functools.partial(kernels.head_loss, inner) if kernels else None)


def units(row: Encoded) -> int:
    """Tokens that carry loss: every label but the first position's, which nothing predicts."""
    return sum(1 for t in row.labels[1:] if t != IGNORE)


def batching(pad_id: int, sharded: bool = False) -> dict:
    """What `loop.fit` needs from this method, as keyword arguments.

    A model sharded with FSDP runs its plain forward: its hooks gather the weights, which the fast
    path's direct calls into the decoder and the head would bypass.
    """
    collate_rows = functools.partial(collate, pad_id=pad_id)
    if sharded:
        return {"loss": forward_token_loss, "collate": collate_rows, "units": units}
    return {"loss": loss, "collate": collate_rows, "units": units, "kernels": training_kernels}


def save(model, folder: Path) -> None:
    """The adapter (or, for full fine-tuning, the whole model) as safetensors with its config, atomically."""
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
