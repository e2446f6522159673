"""A text classifier built the way sentence encoders are trained: mean-pooled, normalised embedding → linear head.

`AutoModelForSequenceClassification` classifies from BERT's [CLS] pooler, which all-MiniLM-L6-v2 and
most sentence encoders were never trained to fill: their meaning is in the mean of the token states.
Classifying from that mean keeps the encoder's strength, and lets the head start as logistic
regression on the frozen embeddings (training/classifier.py), so fine-tuning begins where the
simple probe ends.

On disk a classifier is a folder with the encoder (a plain HF model in safetensors, loadable by
sentence-transformers too), its tokenizer, `head.safetensors` and `classifier.json` (labels, pooling).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
import torch.nn.functional as F
from transformers.modeling_outputs import SequenceClassifierOutput

from tailored.atomic import atomic_dir
from tailored.models.load import quiet_transformers

HEAD_FILE, CONFIG_FILE = "head.safetensors", "classifier.json"
# Logistic regression's inverse regularisation for the probe on frozen embeddings: one value for the
# head's starting point (training/classifier.py) and the baseline it is compared with (evaluation),
# so a run's step 0 is that baseline.
PROBE_C = 10.0


def mean_pool(hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """The unit-length mean of the real (unpadded) token states: the sentence embedding."""
    mask = attention_mask.unsqueeze(-1).to(hidden.dtype)
    summed = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
    return F.normalize(summed.to(torch.promote_types(summed.dtype, torch.float32)), dim=-1)  # bf16 → fp32; fp64 stays


class SentenceClassifier(torch.nn.Module):
    def __init__(self, encoder, labels: list[str]):
        super().__init__()
        self.encoder = encoder
        self.labels = list(labels)
        self.head = torch.nn.Linear(encoder.config.hidden_size, len(labels))
        self.config = encoder.config  # what transformers-style callers read (hidden size, model type)

    def embed(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        return mean_pool(hidden, attention_mask)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, **_) -> SequenceClassifierOutput:
        return SequenceClassifierOutput(logits=self.head(self.embed(input_ids, attention_mask)))

    def set_head(self, weight: torch.Tensor, bias: torch.Tensor) -> None:
        with torch.no_grad():
            self.head.weight.copy_(weight)
            self.head.bias.copy_(bias)

    def save_pretrained(self, folder: Path, tokenizer=None) -> None:
        """Encoder, head and labels (and the tokenizer when given), written atomically as one folder."""
        from safetensors.torch import save_file

        with atomic_dir(Path(folder)) as tmp, quiet_transformers():
            self.encoder.save_pretrained(tmp, safe_serialization=True)
            if tokenizer is not None:
                tokenizer.save_pretrained(tmp)
            save_file({"weight": self.head.weight.detach().contiguous(), "bias": self.head.bias.detach().contiguous()},
                      str(tmp / HEAD_FILE))
            (tmp / CONFIG_FILE).write_text(json.dumps({"labels": self.labels, "pooling": "mean", "normalise": True},
                                                      indent=1))

    @classmethod
    def from_pretrained(cls, folder: str | Path, local_only: bool = True) -> "SentenceClassifier":
        """A classifier folder written by `save_pretrained`."""
        from safetensors.torch import load_file
        from transformers import AutoModel

        folder = Path(folder)
        encoder = AutoModel.from_pretrained(folder, local_files_only=local_only, trust_remote_code=False)
        labels = json.loads((folder / CONFIG_FILE).read_text())["labels"]
        model = cls(encoder, labels)
        head = load_file(str(folder / HEAD_FILE))
        model.set_head(head["weight"], head["bias"])
        return model.eval()


@torch.no_grad()
def embeddings(model: SentenceClassifier, rows: list[dict[str, torch.Tensor]]) -> torch.Tensor:
    """Sentence embeddings of collated batches, in eval mode (no dropout)."""
    training = model.training
    model.eval()
    out = torch.cat([model.embed(b["input_ids"], b["attention_mask"]) for b in rows])
    model.train(training)
    return out


def text_embedder(encoder_path: str | Path, bf16: bool = False, batch_size: int = 64, max_length: int | None = None):
    """An untuned sentence encoder as texts → unit-length embeddings (one row each, on the CPU).

    Shared by the frozen-embedding baseline (evaluation) and --retrieve's passage index (retrieval)."""
    from transformers import AutoModel, AutoTokenizer

    from tailored.device import autocast, device_of

    tokenizer = AutoTokenizer.from_pretrained(encoder_path, local_files_only=True)
    with quiet_transformers():
        encoder = AutoModel.from_pretrained(encoder_path, local_files_only=True).eval()
    device = device_of(encoder)

    @torch.no_grad()
    def embed(texts: list[str]) -> torch.Tensor:
        out = []
        for k in range(0, len(texts), batch_size):
            enc = tokenizer(texts[k : k + batch_size], padding=True, truncation=True, max_length=max_length,
                            return_tensors="pt").to(device)
            with autocast(device, bf16):
                out.append(mean_pool(encoder(**enc).last_hidden_state.float(), enc["attention_mask"]).cpu())
        return torch.cat(out) if out else torch.zeros(0, encoder.config.hidden_size)
    return embed
