"""The one training loop. A method brings its loss and its batching; the loop owns the rest.

In the spirit of mlx-lm's `train(model, loss=, iterate_batches=)`: LoRA, full fine-tuning and the
classifier head all come through `fit`, which owns validation, early stopping, the best checkpoint,
exact resume, micro-batches and the two report hooks. A new method (preference tuning) is a new
`loss`, `collate` and `units`, not a new loop.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ContextManager

import torch

from tailored.config import TrainConfig
from tailored.device import autocast, choose_bf16, device_of
from tailored.training import checkpoint
from tailored.training.batches import length_grouped_batches, micro_batches, seed_everything, warmup_cosine
from tailored.training.distributed import SINGLE, Ranks, barrier, is_sharded, most, sum_gradients, sum_values

Report = Callable[[dict], None]
# (model, batch) -> (the loss summed over the batch, how many units it was summed over, how many of those
# units the model already gets right: tokens that are the argmax, labels predicted, pairs ranked right)
Loss = Callable[[object, dict], tuple[torch.Tensor, int, int]]


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one entry per train step and per validation
    best_valid_loss: float | None = None
    best_step: int = 0  # the step whose weights are kept (the latest within `plateau` of the lowest loss)
    steps: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    trained_tokens: int = 0
    resumed_from: int | None = None  # the step a resumed run continued from


def _row_length(row) -> int:
    return len(row.input_ids)


@torch.no_grad()
def validate(model, data: list, batch_size: int, *, loss: Loss, collate: Callable[[list], dict], bf16: bool,
             length: Callable = _row_length, ranks: Ranks = SINGLE) -> tuple[float, float]:
    """Mean loss per unit (token or row) over `data`, and the share of units right, in length-sorted
    batches (shared out among ranks)."""
    model.eval()
    device = device_of(model)
    total, count, right = 0.0, 0, 0
    order = sorted(data, key=length)
    starts = list(range(ranks.rank * batch_size, len(order), batch_size * ranks.world))
    if is_sharded(model):  # FSDP gathers weights in every forward: every rank runs as many, some counted for nothing
        starts += [None] * (most(len(starts), ranks) - len(starts))
    for k in starts:
        batch = {n: t.to(device) for n, t in collate(order[k : k + batch_size] if k is not None else order[:1]).items()}
        with autocast(device, bf16):
            value, n, correct = loss(model, batch)
        if k is not None:
            total, count, right = total + float(value), count + n, right + correct
    total, count, right = sum_values([total, count, right], ranks)
    return total / max(count, 1), right / max(count, 1)


def fit(
    model,
    train: list,
    valid: list,
    cfg: TrainConfig,
    *,
    loss: Loss,
    collate: Callable[[list], dict],
    units: Callable[[object], int],
    length: Callable[[object], int] = _row_length,
    kernels: Callable[[object, bool], ContextManager] | None = None,
    on_train_report: Report | None = None,
    on_val_report: Report | None = None,
    checkpoint_dir: Path | None = None,
    ranks: Ranks = SINGLE,
) -> FitResult:
    """Train, validating `evals_per_epoch` times per epoch; the model ends with its best weights loaded.

    - `loss(model, batch)` gives a summed loss, its count and how many were right; `units(row)` says how
      many a row adds (its labelled tokens, or 1 for a classifier row), so a step's loss is the mean over
      the batch. The history carries each step's and each validation's accuracy beside the loss.
    - `kernels(model, bf16)` is a context that speeds training up without changing what is computed.
    - The best weights by validation loss are kept (not the last): those of the latest validation within
      `cfg.plateau` of the lowest. Training stops after `patience` validations without a new lowest.
      With no validation data, the last weights are the result.
    - With `checkpoint_dir`, a checkpoint is written at every validation and epoch end, and the newest
      complete one found there is resumed from exactly: weights, optimizer, schedule, RNG and data position.
    - Under torchrun (`ranks`), each rank runs its share of every global batch and the gradients are
      summed, so the steps are those of one process; rank 0 alone writes checkpoints (pass the hooks
      there only). A checkpoint resumes under any number of processes.
    """
    device = device_of(model)
    bf16 = choose_bf16(cfg.bf16, device)
    seed_everything(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = min(steps_per_epoch * cfg.epochs, cfg.max_steps or steps_per_epoch * cfg.epochs)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, cfg.warmup_ratio))
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    lengths = [length(row) for row in train]
    sharded = is_sharded(model)

    def run_validation(step: int, epoch: float) -> tuple[float, bool]:
        value, accuracy = validate(model, valid, cfg.batch_size, loss=loss, collate=collate, bf16=bf16,
                                   length=length, ranks=ranks)
        improved = result.best_valid_loss is None or value < result.best_valid_loss
        result.history.append({"step": step, "epoch": epoch, "valid_loss": value, "valid_accuracy": accuracy})
        if on_val_report:
            on_val_report({"step": step, "valid_loss": value, "valid_accuracy": accuracy, "improved": improved})
        return value, improved

    result = FitResult()
    bad_evals, step, start_epoch, skip = 0, 0, 0, 0
    # Same function, fewer passes over memory (fast_path.py for causal LMs); on exit the model is as it came.
    with (kernels(model, bf16) if kernels else nullcontext()):
        resumed = checkpoint.resume(checkpoint_dir, model, optimizer, scheduler, result) if checkpoint_dir else None
        if resumed:  # every piece of state comes back, so the run continues as if never stopped
            (step, start_epoch, skip, bad_evals), best_state = resumed
        else:
            best_state = checkpoint.trainable_state(model)
            if valid:
                result.best_valid_loss, _ = run_validation(0, 0.0)
        start = time.perf_counter()

        for epoch in range(start_epoch, cfg.epochs):
            batches = length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch,
                                             cfg.batch_order == "grouped")
            for index, batch_ids in enumerate(batches):
                if step >= total_steps:
                    break
                if epoch == start_epoch and index < skip:
                    continue  # already trained before the interruption
                model.train()
                rows = [train[i] for i in batch_ids]
                n_units = max(1, sum(units(r) for r in rows))  # of the global batch, whichever rows are ours
                step_loss, tokens, right = torch.zeros(()), 0, 0
                # A long batch runs as several micro-batches with summed gradients: the same update, with
                # activation memory bounded by `micro_batch_tokens` instead of the batch's size.
                chunks = micro_batches(ranks.share(rows), cfg.micro_batch_tokens, length)
                if sharded:  # FSDP gathers weights in every forward and backward: every rank runs as many
                    chunks += [None] * (most(len(chunks), ranks) - len(chunks))
                for chunk in chunks:
                    batch = {k: v.to(device) for k, v in collate(chunk or rows[:1]).items()}
                    with autocast(device, bf16):
                        loss_sum, _, correct = loss(model, batch)
                    if chunk is None:  # a stand-in pass: gradients of zero
                        (loss_sum * 0.0).backward()
                        continue
                    (loss_sum / n_units).backward()
                    step_loss += loss_sum.detach().float().cpu() / n_units
                    tokens += int(batch["attention_mask"].sum())
                    right += correct
                if not sharded:  # FSDP has already summed them, shard by shard
                    sum_gradients(params, ranks)
                step_loss, tokens, right = sum_values([step_loss.item(), tokens, right], ranks)
                result.trained_tokens += int(tokens)
                norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
                norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm  # FSDP: a DTensor
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                entry = {"step": step, "epoch": round(step / steps_per_epoch, 4), "train_loss": step_loss,
                         "train_accuracy": right / n_units,
                         "grad_norm": float(norm), "lr": scheduler.get_last_lr()[0], "tokens": result.trained_tokens}
                result.history.append(entry)
                if on_train_report:
                    on_train_report({**entry, "total_steps": total_steps})

                last_step, epoch_end = step == total_steps, index == len(batches) - 1
                evaluated = bool(valid) and (step % eval_every == 0 or last_step)
                if evaluated:
                    valid_loss, improved = run_validation(step, entry["epoch"])
                    if improved:
                        result.best_valid_loss, bad_evals = valid_loss, 0
                    else:
                        bad_evals += 1
                    # On a flat stretch the later weights have seen more of the task: keep the latest
                    # validation near the lowest, not the first (patience still counts from the lowest).
                    if valid_loss <= result.best_valid_loss * (1 + cfg.plateau):
                        result.best_step, best_state = step, checkpoint.trainable_state(model)
                if checkpoint_dir and (evaluated or epoch_end) and not last_step:
                    next_batch = (epoch + 1, 0) if epoch_end else (epoch, index + 1)
                    snap = checkpoint.snapshot(model, optimizer, best_state)  # every rank: gathers FSDP shards
                    if ranks.main:  # every rank holds the same state; one writes it
                        checkpoint.save_progress(checkpoint_dir, snap, scheduler, result, step, next_batch, bad_evals)
                    barrier(ranks)
                if bad_evals >= cfg.patience:
                    result.stopped_early = True
                    break
            if result.stopped_early or step >= total_steps:
                break

    if not valid:  # nothing to choose with: the last weights are the result
        best_state, result.best_step = checkpoint.trainable_state(model), step
    result.steps, result.seconds = step, time.perf_counter() - start
    checkpoint.load_trainable(model, best_state)
    model.eval()
    return result


def overfitting(history: list[dict]) -> dict | None:
    """Training loss heading to zero while validation loss climbs from its best: memorising, not learning."""
    train = [h["train_loss"] for h in history if "train_loss" in h]
    valid = [(h["step"], h["valid_loss"]) for h in history if "valid_loss" in h]
    if len(train) < 10 or len(valid) < 3:
        return None
    tail = train[-max(3, len(train) // 10):]
    recent_train = sum(tail) / len(tail)
    best_step, best = min(valid, key=lambda v: v[1])
    last_step, last = valid[-1]
    if recent_train < 0.1 and last > best * 1.2 and last - best > 0.05 and last_step > best_step:
        return {"train_loss": round(recent_train, 4), "best_valid_loss": round(best, 4), "best_step": best_step,
                "last_valid_loss": round(last, 4), "last_step": last_step,
                "message": f"training loss fell to {recent_train:.3f} while validation loss rose from {best:.3f} "
                           f"(step {best_step}) to {last:.3f} (step {last_step}); the step-{best_step} weights were "
                           "kept — fewer epochs or more data would help"}
    return None
