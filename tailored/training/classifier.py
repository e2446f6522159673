"""An encoder classifier on text/label rows: what is its own is setup, the loss and save.

The model classifies from the mean-pooled sentence embedding (models/sentence_classifier.py), and
its head starts as logistic regression fitted on the frozen embeddings of the training rows. So
step 0 of training *is* the frozen-embedding probe, the strongest simple baseline in the few-shot,
many-class regime, and the loop's step-0 validation and best checkpoint decide honestly between
it and fine-tuning: when fine-tuning never improves the validation loss, the probe is what ships.

Every weight then trains (the bundled MiniLM has 22M parameters, so full fine-tuning is cheap). The
loop is `training.loop.fit`, the same one LoRA uses; pass it `**classifier.batching(pad_id)`.
"""

from __future__ import annotations

import functools
from pathlib import Path

import torch
import torch.nn.functional as F

from tailored.config import TrainConfig
from tailored.data.encode import Labelled, collate_labelled
from tailored.models.load import quiet_transformers
from tailored.models.sentence_classifier import PROBE_C, SentenceClassifier, embeddings
from tailored.training.batches import seed_everything


def setup(path: str, labels: list[str], cfg: TrainConfig, train: list[Labelled], pad_id: int,
          local_only: bool = True) -> SentenceClassifier:
    """The encoder with a head over `labels` fitted as a probe on the frozen embeddings of `train`."""
    from transformers import AutoModel

    seed_everything(cfg.seed)
    with quiet_transformers():  # an encoder-only checkpoint may carry unused pooler weights: not news
        encoder = AutoModel.from_pretrained(path, local_files_only=local_only, trust_remote_code=False)
    model = SentenceClassifier(encoder, labels)
    batches = [collate_labelled(train[k : k + 64], pad_id) for k in range(0, len(train), 64)]
    model.set_head(*probe_head(embeddings(model, batches), [r.label for r in train], len(labels)))
    return model.train()


def probe_head(x: torch.Tensor, y: list[int], n_labels: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of a logistic-regression head over `n_labels` classes, as softmax logits.

    scikit-learn returns one row per class it saw (a single row for two classes); labels missing from
    `y` get a zero row and the lowest bias, so they start out never predicted.
    """
    from sklearn.linear_model import LogisticRegression

    probe = LogisticRegression(C=PROBE_C, max_iter=2000).fit(x.double().numpy(), y)
    coef = torch.tensor(probe.coef_, dtype=torch.float32)
    intercept = torch.tensor(probe.intercept_, dtype=torch.float32)
    if len(probe.classes_) == 2:  # sigmoid(w·x + b) is softmax over the logits [0, w·x + b]
        coef = torch.cat([torch.zeros_like(coef), coef])
        intercept = torch.cat([torch.zeros_like(intercept), intercept])
    weight = torch.zeros(n_labels, x.shape[1])
    bias = torch.full((n_labels,), float(intercept.min()) - 10.0 if len(probe.classes_) < n_labels else 0.0)
    for row, label in enumerate(probe.classes_):
        weight[int(label)], bias[int(label)] = coef[row], intercept[row]
    return weight, bias


def loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy of the rows' labels, how many rows, and how many are predicted right."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits.float()
    labels = batch["labels"]
    return F.cross_entropy(logits, labels, reduction="sum"), len(labels), int((logits.argmax(-1) == labels).sum())


def units(row: Labelled) -> int:
    return 1  # one label to learn per row, whatever its length


def batching(pad_id: int) -> dict:
    """What `loop.fit` needs from this method, as keyword arguments."""
    return {"loss": loss, "collate": functools.partial(collate_labelled, pad_id=pad_id), "units": units}


def save(model: SentenceClassifier, tokenizer, folder: Path) -> None:
    model.save_pretrained(folder, tokenizer)
