"""LoRA fine-tuning of a causal LM: setup, fit, validate, save. Plain functions, two report hooks."""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import torch

from tailored.atomic import atomic_dir
from tailored.config import TrainConfig
from tailored.data.encode import Encoded
from tailored.training import checkpoint
from tailored.data.encode import IGNORE
from tailored.training.fast_path import training_kernels
from tailored.training.batches import (collate, length_grouped_batches, micro_batches, seed_everything, token_loss,
                                       warmup_cosine)

Report = Callable[[dict], None]


@dataclass
class FitResult:
    history: list[dict] = field(default_factory=list)  # one entry per train step and per validation
    best_valid_loss: float | None = None
    best_step: int = 0
    steps: int = 0
    stopped_early: bool = False
    seconds: float = 0.0
    trained_tokens: int = 0
    resumed_from: int | None = None  # the step a resumed run continued from


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def use_bf16(cfg: TrainConfig, device: torch.device) -> bool:
    if cfg.bf16 is not None:
        return cfg.bf16
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    # Only with native bf16 instructions: emulated bf16 is slower than fp32 (and fp16 is ~100x slower on CPU).
    return torch.backends.mkldnn.is_available() and torch.ops.mkldnn._is_mkldnn_bf16_supported()


def autocast(device: torch.device, enabled: bool):
    return torch.autocast(device.type, dtype=torch.bfloat16) if enabled else nullcontext()


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
    return get_peft_model(model, lora)


@torch.no_grad()
def validate(model, data: list[Encoded], batch_size: int, pad_id: int, bf16: bool) -> float:
    """Mean per-token loss over the labelled tokens of `data`."""
    model.eval()
    device = device_of(model)
    total, count = 0.0, 0
    order = sorted(range(len(data)), key=lambda i: len(data[i].input_ids))
    with training_kernels(model, bf16):
        for k in range(0, len(order), batch_size):
            batch = {n: t.to(device) for n, t in collate([data[i] for i in order[k : k + batch_size]], pad_id).items()}
            with autocast(device, bf16):
                loss, n = token_loss(model, batch)
            total, count = total + float(loss), count + n
    return total / max(count, 1)


def fit(
    model,
    train: list[Encoded],
    valid: list[Encoded],
    cfg: TrainConfig,
    pad_id: int,
    on_train_report: Report | None = None,
    on_val_report: Report | None = None,
    checkpoint_dir: Path | None = None,
) -> tuple[FitResult, dict[str, torch.Tensor]]:
    """Train, validating `evals_per_epoch` times per epoch; return the history and the best adapter weights.

    The best weights by validation loss are kept (not the last), and training stops after
    `patience` validations without improvement. With `checkpoint_dir`, a checkpoint is written at
    every validation and epoch end, and a complete one found there is resumed from exactly.
    """
    device = device_of(model)
    bf16 = use_bf16(cfg, device)
    seed_everything(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)

    lengths = [len(e.input_ids) for e in train]
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = steps_per_epoch * cfg.epochs
    if cfg.max_steps:
        total_steps = min(total_steps, cfg.max_steps)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, cfg.warmup_ratio))
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)

    result = FitResult()
    bad_evals, step, start_epoch, skip = 0, 0, 0, 0
    resumed = checkpoint.resume(checkpoint_dir, model, optimizer, scheduler, result) if checkpoint_dir else None
    if resumed:  # every piece of state comes back, so the run continues as if never stopped
        (step, start_epoch, skip, bad_evals), best_state = resumed
    else:
        best_state = checkpoint.trainable_state(model)
        if valid:
            result.best_valid_loss = validate(model, valid, cfg.batch_size, pad_id, bf16)
            result.history.append({"step": 0, "epoch": 0.0, "valid_loss": result.best_valid_loss})
            if on_val_report:
                on_val_report({"step": 0, "valid_loss": result.best_valid_loss, "improved": True})
    start = time.perf_counter()

    # Same function, fewer passes over memory: fused attention, head loss and LoRA GEMMs (fast_path.py).
    with training_kernels(model, bf16):
        for epoch in range(start_epoch, cfg.epochs):
            batches = length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
            for index, batch_ids in enumerate(batches):
                if step >= total_steps:
                    break
                if epoch == start_epoch and index < skip:
                    continue  # already trained before the interruption
                model.train()
                examples = [train[i] for i in batch_ids]
                n_tokens = max(1, sum(sum(1 for t in e.labels[1:] if t != IGNORE) for e in examples))
                loss = torch.zeros(())
                # A long batch runs as several micro-batches with summed gradients: the same update, with
                # activation memory bounded by `micro_batch_tokens` instead of the batch's size.
                for chunk in micro_batches(examples, cfg.micro_batch_tokens):
                    batch = {k: v.to(device) for k, v in collate(chunk, pad_id).items()}
                    with autocast(device, bf16):
                        loss_sum, _ = token_loss(model, batch)
                    (loss_sum / n_tokens).backward()
                    loss += loss_sum.detach().float().cpu() / n_tokens
                    result.trained_tokens += int(batch["attention_mask"].sum())
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                step += 1
                checkpoint._test_hook("step", step)
                entry = {"step": step, "epoch": round(step / steps_per_epoch, 4), "train_loss": loss.item(),
                         "lr": scheduler.get_last_lr()[0], "tokens": result.trained_tokens}
                result.history.append(entry)
                if on_train_report:
                    on_train_report({**entry, "total_steps": total_steps})

                last_step, epoch_end = step == total_steps, index == len(batches) - 1
                evaluated = valid and (step % eval_every == 0 or last_step)
                if evaluated:
                    valid_loss = validate(model, valid, cfg.batch_size, pad_id, bf16)
                    improved = valid_loss < result.best_valid_loss
                    if improved:
                        result.best_valid_loss, result.best_step, bad_evals = valid_loss, step, 0
                        best_state = checkpoint.trainable_state(model)
                    else:
                        bad_evals += 1
                    result.history.append({"step": step, "epoch": entry["epoch"], "valid_loss": valid_loss})
                    if on_val_report:
                        on_val_report({"step": step, "valid_loss": valid_loss, "improved": improved})
                if checkpoint_dir and (evaluated or epoch_end) and not last_step:
                    next_batch = (epoch + 1, 0) if epoch_end else (epoch, index + 1)
                    checkpoint.save_progress(checkpoint_dir, model, optimizer, scheduler, result, best_state, step,
                                             next_batch, bad_evals)
                if bad_evals >= cfg.patience:
                    result.stopped_early = True
                    break
            if result.stopped_early or step >= total_steps:
                break

    if not valid:  # nothing to choose with: the last weights are the result
        best_state = checkpoint.trainable_state(model)
        result.best_step = step
    result.steps = step
    result.seconds = time.perf_counter() - start
    load_trainable(model, best_state)
    model.eval()
    return result, best_state


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


def load_trainable(model, state: dict[str, torch.Tensor]) -> None:
    named = dict(model.named_parameters())
    with torch.no_grad():
        for name, value in state.items():
            named[name].copy_(value)


def save(model, folder: Path) -> None:
    """The adapter (or, for full fine-tuning, the whole model) as safetensors with its config, atomically."""
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
