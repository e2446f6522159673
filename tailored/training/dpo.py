"""Preference tuning (DPO) on LoRA: what is its own is the loss and batching; the loop is `loop.fit`.

Direct Preference Optimization (Rafailov et al., 2023) raises the tuned model's log-probability of
the chosen reply relative to the rejected one, measured against a reference model:

    loss = -log σ(β · [(log π(chosen) − log ref(chosen)) − (log π(rejected) − log ref(rejected))])

The reference is the base itself with the adapter switched off (`disable_adapter`), so no second
copy of the model is held in memory. β (`--beta`) sets how far the tuned model may move from it.
A batch holds n pairs as 2n rows (chosen sides, then rejected sides); a pair counts as one unit.
"""

from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from tailored.data.encode import Pair, collate_pairs
from tailored.data.formats import PREFERENCE
from tailored.errors import TailoredError
from tailored.models.scoring import sequence_logps


def rewards(model, batch: dict[str, torch.Tensor], beta: float) -> tuple[torch.Tensor, torch.Tensor]:
    """The implicit rewards β·(log π − log ref) of the chosen and of the rejected sides."""
    policy = sequence_logps(model, batch)
    with torch.no_grad(), model.disable_adapter():
        reference = sequence_logps(model, batch)
    n = policy.shape[0] // 2
    reward = beta * (policy - reference)
    return reward[:n], reward[n:]


def loss(model, batch: dict[str, torch.Tensor], beta: float) -> tuple[torch.Tensor, int, int]:
    """Summed DPO loss over the pairs, how many pairs, and in how many the chosen side has the higher reward."""
    chosen, rejected = rewards(model, batch, beta)
    return -F.logsigmoid(chosen - rejected).sum(), chosen.shape[0], int((chosen > rejected).sum())


def units(row: Pair) -> int:
    return 1


def length(row: Pair) -> int:
    """What a pair costs in a batch: both sides are run."""
    return len(row.chosen.input_ids) + len(row.rejected.input_ids)


def batching(pad_id: int, beta: float) -> dict:
    """What `loop.fit` needs from this method, as keyword arguments."""
    return {"loss": functools.partial(loss, beta=beta), "collate": functools.partial(collate_pairs, pad_id=pad_id),
            "units": units, "length": length}


def check_data(method: str, fmt: str, path: str, mixed: str | None) -> None:
    """Preference pairs train with DPO, and DPO trains only on preference pairs."""
    pairs = fmt in PREFERENCE
    if method == "dpo" and not pairs:
        raise TailoredError(f"{path}: --method dpo trains on preference pairs (prompt/chosen/rejected, or OpenAI's "
                            f"input/preferred_output/non_preferred_output), and this file is {fmt}")
    if pairs and method != "dpo":
        raise TailoredError(f"{path}: this file holds preference pairs; train it with --method dpo (optionally "
                            "--from a supervised run)")
    if method == "dpo" and mixed:  # the flag that adds them: --mix or --documents
        raise TailoredError(f"{mixed} adds supervised rows; DPO trains on pairs only")
