"""Settings chosen from the data when the user leaves them unset, each with a one-line reason.

The rules (also in the README):
- epochs: enough passes to show the model about 1,000 examples in total, between 1 and 10.
  Small sets need several passes to move a model; large ones need only one. Early stopping on the
  validation loss then picks the best point, so a generous count costs time, not quality.
  A classifier sees about 6,000 rows, 2 to 8 passes: its head starts as the frozen-embedding probe,
  and on real intent and emotion data (BENCHMARKS.md) the encoder kept improving on held-out rows
  for ~6 passes over 1,000 rows, while one pass over 9,000 was not enough.
  Retraining from a parent version (--from) aims at a quarter of that, at least one pass: the
  weights already hold the old rows, and the new or edited ones need a few passes, not a new start.
- learning rate: 1e-3 for LoRA on bases under 1B parameters, 2e-4 above. Small models with rank-16
  adapters learn slowly at the usual 2e-4 within the few hundred steps a small data set gives.
  Full fine-tuning moves every weight, so it takes 5e-5; an encoder classifier takes 6e-5 (every
  weight trains, and its head starts from the probe, not from random).
- LoRA alpha: twice the rank (the common scaling). The rank itself is fixed at 16 (not derived
  from the data): enough for a task of a few thousand examples, a few MB of adapter.
- batch size: 8, or n/10 (at least 1) below 80 examples, so a tiny data set still gets ~10
  optimizer steps per epoch instead of two or three. A classifier's rows are short and carry one
  label each, so it takes 32 (again n/10 on small sets).
- max length: the longest example, capped at 2,048 and the base's context; longer rows are never cut.
"""

from __future__ import annotations

import math
from dataclasses import replace

from tailored.config import DataConfig, TrainConfig

# (examples to show the model, fewest passes, most passes), per task
EXAMPLES_SEEN = {"generate": (1000, 1, 10), "classify": (6000, 2, 8)}
RETRAIN_SHARE = 4  # a retrain from a parent aims at 1/4 of a fresh run's examples seen


def choose_epochs(n_train: int, task: str = "generate", retrain: bool = False) -> tuple[int, str]:
    target, low, high = EXAMPLES_SEEN[task]
    if retrain:
        target, low = target // RETRAIN_SHARE, 1
    epochs = min(high, max(low, math.ceil(target / max(n_train, 1))))
    return epochs, (f"{n_train} training examples: {epochs} epoch(s) shows the model ~{epochs * n_train} examples "
                    f"(aim ~{target}{', a quarter of a fresh run: it continues from its parent' if retrain else ''}, "
                    f"{low}–{high} epochs); early stopping keeps the best point")


def choose_batch_size(n_train: int, task: str = "generate") -> tuple[int, str]:
    most = 32 if task == "classify" else 8
    batch = most if n_train >= 10 * most else max(1, n_train // 10)
    steps = math.ceil(n_train / batch)
    return batch, (f"{n_train} training examples: batches of {batch} give {steps} steps per epoch ({most} at most, "
                   "~10 steps at least), grouped by length to avoid padding")


def choose_learning_rate(n_params: int, method: str = "lora", task: str = "generate") -> tuple[float, str]:
    if task == "classify":
        return 6e-5, (f"classifier on a {n_params / 1e6:.0f}M-parameter encoder: every weight trains, from a head "
                      "that starts as the frozen-embedding probe")
    if method == "dpo":
        return 2e-4, (f"DPO with LoRA on a {n_params / 1e6:.0f}M-parameter base: a preference loss moves the model "
                      "faster than next-token loss, so a lower rate than supervised LoRA")
    if method == "full":
        return 5e-5, f"full fine-tuning of a {n_params / 1e6:.0f}M-parameter base: every weight moves, so a low rate"
    if n_params < 1_000_000_000:
        return 1e-3, f"LoRA on a {n_params / 1e6:.0f}M-parameter base: small models take a higher rate"
    return 2e-4, f"LoRA on a {n_params / 1e9:.1f}B-parameter base: the usual LoRA rate"


def resolve(train: TrainConfig, data: DataConfig, n_train: int, longest: int, n_params: int,
            context: int, retrain: bool = False) -> tuple[TrainConfig, DataConfig, dict[str, str]]:
    """Fill every None in the configs and say why each value was picked (user-set values say so)."""
    reasons: dict[str, str] = {}
    if train.epochs is None:
        epochs, reasons["epochs"] = choose_epochs(n_train, train.task, retrain)
        train = replace(train, epochs=epochs)
    else:
        reasons["epochs"] = "set by you"
    if train.learning_rate is None:
        lr, reasons["learning_rate"] = choose_learning_rate(n_params, train.method, train.task)
        if train.learning_rate_multiplier not in (None, 1):
            reasons["learning_rate"] = f"{train.learning_rate_multiplier:g} × {lr:g} (your multiplier × {reasons['learning_rate']})"
            lr *= train.learning_rate_multiplier
        # the multiplier is spent: the saved settings hold the rate itself (and the reason says how it came)
        train = replace(train, learning_rate=lr, learning_rate_multiplier=None)
    else:
        reasons["learning_rate"] = "set by you"
    if train.task == "generate" and train.method in ("lora", "dpo"):
        reasons["lora_rank"] = (f"rank {train.lora_rank} on every linear layer: enough capacity for a task of a few "
                                "thousand examples, a few MB of adapter")
    if train.lora_alpha is None:
        train = replace(train, lora_alpha=2 * train.lora_rank)
        if train.task == "generate" and train.method in ("lora", "dpo"):
            reasons["lora_alpha"] = f"twice the rank ({train.lora_rank})"
    cap = min(2048, context)
    if data.max_length is None:
        data = replace(data, max_length=min(longest, cap))
        reasons["max_length"] = f"longest example is {longest} tokens; cap is {cap}"
    else:
        reasons["max_length"] = "set by you"
    if train.batch_size is None:
        batch, reasons["batch_size"] = choose_batch_size(n_train, train.task)
        train = replace(train, batch_size=batch)
    else:
        reasons["batch_size"] = "set by you"
    return train, data, reasons
