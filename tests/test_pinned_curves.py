"""Recorded loss curves, as torchtune's recipe tests keep them: a few fp32 steps of each method on tiny models.

The other training tests compare runs with each other, so a drift in the schedule, the batch order,
the micro-batching or the fast path would pass them. These compare with numbers written down once
(`python -m tests.test_pinned_curves` prints them again after an intended change).
"""

from __future__ import annotations

import pytest

from tailored.config import TrainConfig
from tailored.data.encode import encode, encode_labelled
from tailored.data.formats import Example
from tailored.models import load_causal_lm, load_tokenizer, resolve_base
from tailored.training import classifier, lora
from tailored.training.loop import fit

# train losses of steps 1-8, then the validation losses at steps 0, 3, 6 and 8; `patience=3` below keeps all 8 steps
# whatever the default (the classifier's validation loss rises twice after step 0, which stops it under patience 2)
RECORDED = {
    "lora": [6.940731, 6.660703, 6.345342, 4.542777, 2.410829, 3.68137, 1.298696, 3.050732, 8.078534, 4.490818, 3.112167,
             2.865147],
    "full": [6.940731, 7.083723, 7.52801, 6.477659, 5.540485, 6.590713, 4.776494, 6.285219, 8.078534, 6.969831, 6.268403,
             6.12208],
    "classifier": [0.5624968, 0.08846935, 2.372812, 1.676338, 1.437749, 1.163866, 0.5741934, 0.922067, 0.4116879, 1.329216,
                   0.4704152, 0.3100059],
}


def _chat_rows(n: int, start: int = 0) -> list[list[dict]]:
    # different lengths and two answers, so which rows share a batch changes every step's loss
    return [[{"role": "user", "content": "question " * (1 + i % 4) + f"number {i} please"},
             {"role": "assistant", "content": "yes" if i % 3 else "no the answer is no"}] for i in range(start, start + n)]


def _curve(result) -> list[float]:
    return [h["train_loss"] for h in result.history if "train_loss" in h] + \
        [h["valid_loss"] for h in result.history if "valid_loss" in h]


def lm_curve(tiny_base, method: str) -> list[float]:
    cfg = TrainConfig(base=str(tiny_base), method=method, epochs=2, learning_rate=1e-2 if method == "lora" else 1e-3,
                      batch_size=4, max_steps=8, evals_per_epoch=2, patience=3, bf16=False, seed=5,
                      micro_batch_tokens=40)
    base = resolve_base(str(tiny_base))
    tok = load_tokenizer(base)
    model = lora.setup(load_causal_lm(base), cfg)
    train = [encode(tok, rows) for rows in _chat_rows(24)]
    valid = [encode(tok, rows) for rows in _chat_rows(6, start=100)]
    return _curve(fit(model, train, valid, cfg, **lora.batching(tok.pad_token_id)))


def classifier_curve(tiny_encoder) -> list[float]:
    from transformers import AutoTokenizer

    cfg = TrainConfig(task="classify", base=str(tiny_encoder), epochs=2, learning_rate=3e-3, batch_size=4,
                      max_steps=8, evals_per_epoch=2, patience=3, bf16=False, seed=5, micro_batch_tokens=40)
    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    labels = ["negative", "positive"]
    rows = [Example([{"role": "user", "content": "hello " * (1 + i % 4) + ("yes" if i % 2 else "no") + f" {i}"},
                     {"role": "assistant", "content": labels[i % 2]}], "x", i + 1, label=labels[i % 2])
            for i in range(30)]
    train = encode_labelled(tok, rows[:24], labels, 128, [])
    valid = encode_labelled(tok, rows[24:], labels, 128, [])
    model = classifier.setup(str(tiny_encoder), labels, cfg, train, tok.pad_token_id)
    return _curve(fit(model, train, valid, cfg, **classifier.batching(tok.pad_token_id)))


@pytest.mark.parametrize("method", ["lora", "full"])
def test_causal_lm_loss_curve_is_the_recorded_one(tiny_base, method):
    assert lm_curve(tiny_base, method) == pytest.approx(RECORDED[method], rel=1e-5)


def test_classifier_loss_curve_is_the_recorded_one(tiny_encoder):
    assert classifier_curve(tiny_encoder) == pytest.approx(RECORDED["classifier"], rel=1e-5)


if __name__ == "__main__":  # print the curves to record, on the tiny models the fixtures build
    import tempfile
    from pathlib import Path

    import tests.conftest as conftest

    class _Factory:
        def mktemp(self, name):
            return Path(tempfile.mkdtemp(prefix=name))

    base = conftest.tiny_base.__wrapped__(_Factory())
    encoder = conftest.tiny_encoder.__wrapped__(_Factory())
    for name, curve in [("lora", lm_curve(base, "lora")), ("full", lm_curve(base, "full")),
                        ("classifier", classifier_curve(encoder))]:
        print(f'    "{name}": [{", ".join(f"{v:.7g}" for v in curve)}],')
