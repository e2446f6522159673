"""What a loaded model computes for evaluation and training alike: labelled-token loss and label predictions.

These are the plain computations (HF modules only). Training swaps in faster kernels of its own
(training/fast_path.py) that compute the same values; evaluation never needs them.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailored.data.encode import IGNORE, Encoded, collate
from tailored.device import autocast, device_of


def unwrapped(model):
    """The transformers model under a PEFT wrapper, or the model itself."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def labelled_hidden(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """The decoder's last hidden states at positions whose next token carries loss, and those tokens.

    The LM head then runs only where loss is taken: with a 49k vocabulary it is a large GEMM, and most
    positions (prompts, padding) would be thrown away.
    """
    inner = unwrapped(model)
    hidden = inner.get_decoder()(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    return hidden[:, :-1][keep], targets[keep]


def _at_least_fp32(logits: torch.Tensor) -> torch.Tensor:
    return logits.to(torch.promote_types(logits.dtype, torch.float32))  # bf16 under autocast; fp64 stays


def head_logits(model, hidden: torch.Tensor) -> torch.Tensor:
    inner = unwrapped(model)
    logits = _at_least_fp32(inner.get_output_embeddings()(hidden))
    cap = getattr(inner.config, "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


def token_loss(model, batch: dict[str, torch.Tensor], head_loss=None) -> tuple[torch.Tensor, int, int]:
    """Summed cross-entropy over the labelled tokens of a batch, how many there were, and how many the
    model already predicts (argmax = target: token accuracy).

    `head_loss(hidden, targets)` may compute the head and loss faster (training's kernels); where it
    returns None, the plain head and cross-entropy run.
    """
    hidden, targets = labelled_hidden(model, batch)
    fast = head_loss(hidden, targets) if head_loss else None
    if fast is not None:
        value, correct = fast
    else:
        logits = head_logits(model, hidden)
        value, correct = F.cross_entropy(logits, targets, reduction="sum"), (logits.argmax(-1) == targets).sum()
    return value, len(targets), int(correct)


def sequence_logps(model, batch: dict[str, torch.Tensor]) -> torch.Tensor:
    """Per row, the summed log-probability of its labelled tokens (the reply), in fp32 at least.

    The head runs only at labelled positions, as in `token_loss`; DPO and its evaluation compare these
    sums between the chosen and rejected replies and between the tuned model and the base.
    """
    hidden, targets = labelled_hidden(model, batch)
    keep = batch["labels"][:, 1:] != IGNORE
    rows = torch.arange(keep.shape[0], device=keep.device).unsqueeze(1).expand_as(keep)[keep]
    logp = -F.cross_entropy(head_logits(model, hidden), targets, reduction="none")
    return torch.zeros(keep.shape[0], dtype=logp.dtype, device=logp.device).index_add(0, rows, logp)


def forward_token_loss(model, batch: dict[str, torch.Tensor]) -> tuple[torch.Tensor, int, int]:
    """`token_loss` through the model's own forward (logits at every position).

    For wrapped models whose forward must run as a whole (FSDP gathers the weights in its hooks).
    """
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1]
    targets = batch["labels"][:, 1:]
    keep = targets != IGNORE
    logits, targets = _at_least_fp32(logits[keep]), targets[keep]
    correct = int((logits.argmax(-1) == targets).sum())
    return F.cross_entropy(logits, targets, reduction="sum"), len(targets), correct


@torch.no_grad()
def mean_token_loss(model, rows: list[Encoded], batch_size: int, pad_id: int, bf16: bool) -> float:
    """Mean per-token loss of `rows`' labelled tokens under teacher forcing (held-out loss, perplexity)."""
    model.eval()
    device = device_of(model)
    total, count = 0.0, 0
    order = sorted(rows, key=lambda r: len(r.input_ids))
    for k in range(0, len(order), batch_size):
        batch = {n: t.to(device) for n, t in collate(order[k : k + batch_size], pad_id).items()}
        with autocast(device, bf16):
            loss, n, _ = token_loss(model, batch)
        total, count = total + float(loss), count + n
    return total / max(count, 1)


@torch.no_grad()
def label_probabilities(model, tokenizer, texts: list[str], batch_size: int = 64, bf16: bool = False,
                        truncate: bool = False) -> torch.Tensor:
    """A sequence classifier's probability of each label per text, as a (texts, labels) tensor.

    `truncate` cuts texts to the encoder's length: for scoring generated text, which nobody wrote, and
    whose opening carries its voice; the user's own rows are checked for length instead (callers do).
    """
    model.eval()
    device, out = device_of(model), []
    for k in range(0, len(texts), batch_size):
        enc = tokenizer(texts[k : k + batch_size], padding=True, truncation=truncate, return_tensors="pt").to(device)
        with torch.no_grad(), autocast(device, bf16):
            out.append(model(**enc).logits.float().softmax(-1))
    return torch.cat(out) if out else torch.empty(0)


def predict_labels(model, tokenizer, texts: list[str], batch_size: int = 64, bf16: bool = False) -> list[int]:
    """A sequence classifier's most likely label index per text (callers check lengths)."""
    probabilities = label_probabilities(model, tokenizer, texts, batch_size, bf16)
    return probabilities.argmax(-1).tolist() if len(texts) else []
