"""An encoder with a classification head on text/label rows: what is its own is setup, the loss and save.

Every weight trains (the bundled MiniLM has 22M parameters, so full fine-tuning is cheap). The loop is
`training.loop.fit`, the same one LoRA uses; pass it `**classifier.batching(pad_id)`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F

from tailored.atomic import atomic_dir
from tailored.config import TrainConfig
from tailored.data.encode import Labelled, collate_labelled
from tailored.models.load import quiet_transformers
from tailored.training.batches import seed_everything


def setup(path: str, labels: list[str], cfg: TrainConfig, local_only: bool = True):
    """The encoder with a new, seeded classification head over `labels`."""
    from transformers import AutoModelForSequenceClassification

    seed_everything(cfg.seed)  # the head is initialised here
    with quiet_transformers():  # "newly initialized" head weights are the point here, not news
        return AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(labels), id2label=dict(enumerate(labels)),
            label2id={l: i for i, l in enumerate(labels)}, local_files_only=local_only, trust_remote_code=False)


def loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int]:
    """Summed cross-entropy of the rows' labels, and how many rows."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    return F.cross_entropy(logits, batch["labels"], reduction="sum"), len(batch["labels"])


def units(row: Labelled) -> int:
    return 1  # one label to learn per row, whatever its length


def batching(pad_id: int) -> dict:
    """What `loop.fit` needs from this method, as keyword arguments."""
    return {"loss": loss, "collate": functools.partial(collate_labelled, pad_id=pad_id), "units": units}


def save(model, tokenizer, folder: Path) -> None:
    """A standard Hugging Face sequence-classification folder (safetensors), written atomically."""
    with atomic_dir(folder) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
