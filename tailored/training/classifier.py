"""An encoder with a classification head, fine-tuned on text/label rows: encode, setup, fit, validate, save.

Every weight trains (the bundled MiniLM has 22M parameters, so full fine-tuning is cheap), with the
same length-grouped batches, schedule, early stopping, best-checkpoint and exact-resume machinery as
the LoRA loop.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from tailored.atomic import atomic_dir
from tailored.config import TrainConfig
from tailored.data.formats import Example
from tailored.data.readers import Problem
from tailored.training import checkpoint
from tailored.training.batches import length_grouped_batches, seed_everything, warmup_cosine
from tailored.training.lora import FitResult, Report, autocast, device_of, load_trainable, use_bf16


@dataclass
class Labelled:
    input_ids: list[int]
    label: int

    @property
    def trainable(self) -> int:
        return 1  # one label to learn per row, whatever its length


def text_of(ex: Example) -> str:
    return ex.messages[-2]["content"]  # the user turn; the system prompt listing the labels is for LMs only


def encode(tokenizer, examples: list[Example], labels: list[str], max_length: int,
           problems: list[Problem]) -> list[Labelled]:
    """Token ids and label index per row; rows over `max_length` are reported, never cut."""
    out = []
    ids = tokenizer([text_of(ex) for ex in examples], add_special_tokens=True)["input_ids"] if examples else []
    for ex, row in zip(examples, ids):
        if len(row) > max_length:
            problems.append(Problem(ex.source, ex.line, "text", f"{len(row)} tokens, over the encoder's "
                                    f"{max_length}", "shorten the text or split it into several rows"))
            continue
        out.append(Labelled(row, labels.index(ex.label)))
    return out


def collate(rows: list[Labelled], pad_id: int) -> dict[str, torch.Tensor]:
    width = max(len(r.input_ids) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r.input_ids)] = torch.tensor(r.input_ids)
        mask[i, : len(r.input_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": torch.tensor([r.label for r in rows])}


def setup(path: str, labels: list[str], cfg: TrainConfig, local_only: bool = True):
    """The encoder with a new, seeded classification head over `labels`."""
    from transformers import AutoModelForSequenceClassification

    seed_everything(cfg.seed)  # the head is initialised here
    return AutoModelForSequenceClassification.from_pretrained(
        path, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id={l: i for i, l in enumerate(labels)},
        local_files_only=local_only, trust_remote_code=False)


def _loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    return F.cross_entropy(logits, batch["labels"], reduction="sum"), logits


@torch.no_grad()
def validate(model, data: list[Labelled], batch_size: int, pad_id: int, bf16: bool) -> float:
    """Mean cross-entropy per row."""
    model.eval()
    device, total = device_of(model), 0.0
    for k in range(0, len(data), batch_size):
        batch = {n: t.to(device) for n, t in collate(data[k : k + batch_size], pad_id).items()}
        with autocast(device, bf16):
            total += float(_loss(model, batch)[0])
    return total / max(len(data), 1)


@torch.no_grad()
def predict(model, tokenizer, texts: list[str], batch_size: int = 64, bf16: bool = False) -> list[int]:
    """The most likely label index per text (no length limit is applied: callers check lengths)."""
    model.eval()
    device, out = device_of(model), []
    for k in range(0, len(texts), batch_size):
        enc = tokenizer(texts[k : k + batch_size], padding=True, return_tensors="pt").to(device)
        with autocast(device, bf16):
            out.extend(model(**enc).logits.argmax(-1).tolist())
    return out


def fit(model, train: list[Labelled], valid: list[Labelled], cfg: TrainConfig, pad_id: int,
        on_train_report: Report | None = None, on_val_report: Report | None = None,
        checkpoint_dir: Path | None = None) -> tuple[FitResult, dict[str, torch.Tensor]]:
    """Train the encoder and head; keep the best weights by validation loss; stop after `patience` bad checks."""
    device = device_of(model)
    bf16 = use_bf16(cfg, device)
    seed_everything(cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total_steps = min(steps_per_epoch * cfg.epochs, cfg.max_steps or 1 << 62)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, warmup_cosine(total_steps, cfg.warmup_ratio))
    eval_every = max(1, steps_per_epoch // cfg.evals_per_epoch)
    lengths = [len(r.input_ids) for r in train]

    result = FitResult()
    bad_evals, step, start_epoch, skip = 0, 0, 0, 0
    resumed = checkpoint.resume(checkpoint_dir, model, optimizer, scheduler, result) if checkpoint_dir else None
    if resumed:  # every piece of state comes back, so the run continues as if never stopped
        (step, start_epoch, skip, bad_evals), best_state = resumed
    else:
        best_state = checkpoint.trainable_state(model)
        result.best_valid_loss = validate(model, valid, cfg.batch_size, pad_id, bf16) if valid else None
        result.history.append({"step": 0, "epoch": 0.0, "valid_loss": result.best_valid_loss})
    start = time.perf_counter()

    for epoch in range(start_epoch, cfg.epochs):
        batches = length_grouped_batches(lengths, cfg.batch_size, cfg.seed, epoch)
        for index, batch_ids in enumerate(batches):
            if step >= total_steps:
                break
            if epoch == start_epoch and index < skip:
                continue
            model.train()
            batch = {k: v.to(device) for k, v in collate([train[i] for i in batch_ids], pad_id).items()}
            with autocast(device, bf16):
                loss_sum, _ = _loss(model, batch)
            loss = loss_sum / len(batch_ids)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(params, 1.0)
            optimizer.step()
            scheduler.step()
            optimizer.zero_grad(set_to_none=True)
            step += 1
            checkpoint._test_hook("step", step)
            result.trained_tokens += int(batch["attention_mask"].sum())
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

    if not valid:
        best_state, result.best_step = checkpoint.trainable_state(model), step
    result.steps, result.seconds = step, time.perf_counter() - start
    load_trainable(model, best_state)
    model.eval()
    return result, best_state


def save(model, tokenizer, folder: Path) -> None:
    """A standard Hugging Face sequence-classification folder (safetensors), written atomically."""
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
