"""Seeded, length-grouped batches, micro-batches within a batch, and the learning-rate schedule."""

from __future__ import annotations

import math
import random

from typing import Callable

import torch


def seed_everything(seed: int) -> None:
    import numpy as np

    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def length_grouped_batches(lengths: list[int], batch_size: int, seed: int, epoch: int,
                           grouped: bool = True) -> list[list[int]]:
    """Batches of similar-length examples in a seeded random order.

    Sorting inside shuffled windows of 50 batches cuts padding (the main CPU cost after the GEMMs)
    while keeping the data order random from epoch to epoch. `grouped=False` is plain shuffling.
    """
    rng = random.Random(seed * 100_003 + epoch)
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if not grouped:
        return [order[k : k + batch_size] for k in range(0, len(order), batch_size)]
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


def micro_batches(rows: list, budget: int | None, length: Callable = lambda r: len(r.input_ids)) -> list[list]:
    """Split a batch into runs of rows whose padded size (rows x longest) stays within `budget` tokens."""
    if not budget:
        return [rows]
    chunks: list[list] = [[]]
    for e in sorted(rows, key=length):
        longest = max([length(e)] + [length(x) for x in chunks[-1]])
        if chunks[-1] and longest * (len(chunks[-1]) + 1) > budget:
            chunks.append([])
        chunks[-1].append(e)
    return chunks
