"""Seeded, length-grouped batches and the loss on labelled tokens only."""

from __future__ import annotations

import math
import random

import torch

from tailored.data.encode import IGNORE, Encoded


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int) -> list[list[int]]:
    """Batches of similar-length examples in a seeded random order.

    Sorting inside shuffled windows of 50 batches cuts padding (the main CPU cost after the GEMMs)
    while keeping the data order random from epoch to epoch.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    window = batch_size * 50
    batches = []
    for i in range(0, len(order), window):
        chunk = sorted(order[i : i + window], key=lambda j: lengths[j])
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches


def warmup_cosine(total_steps: int, warmup_ratio: float):
    """Learning-rate multiplier per step: linear warm-up, then cosine decay to 10% of the peak."""
    warmup = max(1, round(warmup_ratio * total_steps))

    def multiplier(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = (step - warmup) / max(1, total_steps - warmup)
        return 0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * progress))

    return multiplier


def micro_batches(examples: list[Encoded], budget: int | None) -> list[list[Encoded]]:
    """Split a batch into runs of examples whose padded size (rows x longest) stays within `budget` tokens."""
    if not budget:
        return [examples]
    chunks: list[list[Encoded]] = [[]]
    for e in sorted(examples, key=lambda e: len(e.input_ids)):
        longest = max([len(e.input_ids)] + [len(x.input_ids) for x in chunks[-1]])
        if chunks[-1] and longest * (len(chunks[-1]) + 1) > budget:
            chunks.append([])
        chunks[-1].append(e)
    return chunks


def collate(examples: list[Encoded], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded tensors; padding is masked out of attention and loss."""
    width = max(len(e.input_ids) for e in examples)
    ids = torch.full((len(examples), width), pad_id, dtype=torch.long)
    labels = torch.full((len(examples), width), IGNORE, dtype=torch.long)
    mask = torch.zeros((len(examples), width), dtype=torch.long)
    for row, e in enumerate(examples):
        n = len(e.input_ids)
        ids[row, :n] = torch.tensor(e.input_ids)
        labels[row, :n] = torch.tensor(e.labels)
        mask[row, :n] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def token_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy over labelled tokens, and how many there were.

    The LM head runs only on positions that carry loss: with a 49k vocabulary it is a large GEMM,
    and most positions (prompts, padding) would be thrown away. `head_loss` runs it in chunks with
    the gradient made on the way, under the autocast dtype when autocast is on.
    """
    from tailored.training.fast_path import LEVERS, head_loss

    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    hidden = inner.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    head, hidden, targets = inner.get_output_embeddings(), hidden[:, :-1][keep], targets[keep]
    cap = getattr(inner.config, "final_logit_softcapping", None)
    if head.bias is not None or cap or "head_loss" not in LEVERS:
        logits = head(hidden).float()
        if cap:
            logits = torch.tanh(logits / cap) * cap
        return torch.nn.functional.cross_entropy(logits, targets, reduction="sum"), int(keep.sum())
    device = hidden.device.type
    bf16 = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16
    return head_loss(hidden, head.weight, targets, bf16), int(keep.sum())
