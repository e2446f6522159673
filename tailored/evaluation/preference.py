"""Held-out preference pairs: does the tuned model prefer the chosen reply, and by how much?

- preference accuracy: the share of pairs where the tuned model's implicit DPO reward,
  β·(log π − log base), is higher for the chosen reply than for the rejected one;
- the reward margin: the mean of that difference;
- likelihood preference, for the base and the tuned model alike: the share of pairs whose chosen
  reply is more likely than the rejected one. The base's implicit reward is zero by definition, so
  this is its figure to beat ("from the base's figure").
Each comes with a 95% bootstrap interval over pairs.
"""

from __future__ import annotations

import numpy as np
import torch

from tailored.data.encode import Pair, TemplateError, collate_pairs, encode_many, stop_token_ids
from tailored.data.formats import Example
from tailored.device import autocast, device_of
from tailored.evaluation.metrics import bootstrap
from tailored.models.scoring import sequence_logps


def encode_pairs(tokenizer, examples: list[Example]) -> list[Pair]:
    stops = stop_token_ids(tokenizer)
    chosen = encode_many(tokenizer, [ex.messages for ex in examples], stops)
    rejected = encode_many(tokenizer, [ex.prompt + [{"role": "assistant", "content": ex.rejected}]
                                       for ex in examples], stops)
    return [Pair(c, r) for c, r in zip(chosen, rejected)
            if not isinstance(c, TemplateError) and not isinstance(r, TemplateError)]


@torch.no_grad()
def pair_logps(model, pairs: list[Pair], pad_id: int, bf16: bool, batch_size: int = 8) -> np.ndarray:
    """(n, 2): log-probability of the chosen and of the rejected reply, per pair."""
    model.eval()
    device, out = device_of(model), []
    for k in range(0, len(pairs), batch_size):
        batch = {n: t.to(device) for n, t in collate_pairs(pairs[k : k + batch_size], pad_id).items()}
        with autocast(device, bf16):
            logps = sequence_logps(model, batch).float().cpu()
        half = logps.shape[0] // 2
        out.append(torch.stack([logps[:half], logps[half:]], 1))
    return torch.cat(out).double().numpy() if out else np.zeros((0, 2))


def preference_review(model, tokenizer, examples: list[Example], beta: float, bf16: bool) -> dict:
    """Preference accuracy, margin and likelihood preference of base and tuned, with intervals."""
    pairs = encode_pairs(tokenizer, [ex for ex in examples if ex.rejected is not None])
    tuned = pair_logps(model, pairs, tokenizer.pad_token_id, bf16)
    with model.disable_adapter():
        base = pair_logps(model, pairs, tokenizer.pad_token_id, bf16)
    margin = beta * ((tuned[:, 0] - base[:, 0]) - (tuned[:, 1] - base[:, 1]))
    per_pair = {"preference_accuracy": 100.0 * (margin > 0), "reward_margin": margin,
                "tuned_prefers_chosen": 100.0 * (tuned[:, 0] > tuned[:, 1]),
                "base_prefers_chosen": 100.0 * (base[:, 0] > base[:, 1])}
    review = {"pairs": len(pairs), "beta": beta}
    for name, values in per_pair.items():
        review[name] = float(values.mean()) if len(values) else 0.0
        review[name + "_ci"] = list(bootstrap(lambda idx, v=values: float(v[idx].mean()), len(values)))
    return review


def describe(review: dict) -> str:
    def ci(name: str) -> str:
        low, high = review[name + "_ci"]
        return f"{review[name]:.1f} [{low:.1f}–{high:.1f}]"

    return (f"preference on {review['pairs']} held-out pairs: the tuned model's implicit reward prefers the chosen "
            f"reply in {ci('preference_accuracy')}% (mean margin {ci('reward_margin')}); the chosen reply is the more "
            f"likely one for the base in {ci('base_prefers_chosen')}%, for the tuned model in "
            f"{ci('tuned_prefers_chosen')}%")
