"""Parity counts an answer that parts from the run's only at a near-tie, and nothing else, as matching."""

import types

import torch

from tailored.export import NEAR_TIE, _split_at_tie
from tests.conftest import build_tokenizer


class _Fixed:
    """A stand-in LM whose next-token logits are the same at every position."""

    def __init__(self, logits: dict[int, float]):
        self.logits = torch.zeros(100)
        for token, value in logits.items():
            self.logits[token] = value

    def __call__(self, ids):
        return types.SimpleNamespace(logits=self.logits.expand(1, ids.shape[1], 100))


def test_a_split_counts_as_a_tie_only_when_the_exports_logits_were_that_close():
    tok = build_tokenizer()
    ours, theirs = [7, 8, 5, 9], [7, 8, 6, 9]  # the export picked 6 where the run picked 5
    assert _split_at_tie(_Fixed({6: 1.0, 5: 1.0 - NEAR_TIE / 10}), tok, "hi", ours, theirs)
    assert not _split_at_tie(_Fixed({6: 1.0, 5: 1.0 - 2 * NEAR_TIE}), tok, "hi", ours, theirs)
    # one answer stopping earlier is not a tie on a token
    assert not _split_at_tie(_Fixed({6: 1.0}), tok, "hi", [7, 8], [7, 8, 6])
