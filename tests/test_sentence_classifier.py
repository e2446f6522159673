"""The classifier's pooling and head initialisation, on a tiny BERT built in code."""

import numpy as np
import pytest
import torch

from tailored.config import TrainConfig
from tailored.data.encode import collate_labelled, encode_labelled
from tailored.data.formats import Example
from tailored.models.sentence_classifier import SentenceClassifier, mean_pool
from tailored.training import classifier


def _rows(labels, n, start=0):
    words = ["alpha", "beta", "gamma", "delta", "omega"]
    return [Example([{"role": "user", "content": f"{words[i % len(labels)]} " * (1 + i % 3) + f"item {i}"},
                     {"role": "assistant", "content": labels[i % len(labels)]}], "x", i + 1,
                    label=labels[i % len(labels)]) for i in range(start, start + n)]


def _setup(tiny_encoder, labels, n=30):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_encoder)
    train = encode_labelled(tok, _rows(labels, n), labels, 128, [])
    model = classifier.setup(str(tiny_encoder), labels, TrainConfig(task="classify", base=str(tiny_encoder)),
                             train, tok.pad_token_id).eval()
    return tok, train, model


def test_mean_pool_averages_only_real_tokens_and_is_unit_length():
    hidden = torch.tensor([[[1.0, 0.0], [3.0, 4.0], [100.0, 100.0]]])  # the third position is padding
    pooled = mean_pool(hidden, torch.tensor([[1, 1, 0]]))
    expected = torch.tensor([2.0, 2.0]) / (8.0 ** 0.5)  # mean (2, 2), normalised
    assert torch.allclose(pooled[0], expected)


def test_padding_does_not_change_a_rows_embedding(tiny_encoder):
    tok, train, model = _setup(tiny_encoder, ["no", "yes"])
    short, long = sorted(train, key=lambda r: len(r.input_ids))[:: len(train) - 1]
    alone = collate_labelled([short], tok.pad_token_id)
    padded = collate_labelled([short, long], tok.pad_token_id)  # `short` is padded to `long`'s length here
    assert padded["input_ids"].shape[1] > alone["input_ids"].shape[1]
    with torch.no_grad():
        a = model.embed(alone["input_ids"], alone["attention_mask"])[0]
        b = model.embed(padded["input_ids"], padded["attention_mask"])[0]
    assert torch.allclose(a, b, atol=1e-5)


@pytest.mark.parametrize("labels", [["no", "yes"], ["a", "b", "c", "d"]])
def test_head_starts_as_the_probe_on_frozen_embeddings(tiny_encoder, labels):
    """Step 0 is logistic regression on the frozen, mean-pooled embeddings: same probabilities."""
    from sklearn.linear_model import LogisticRegression

    tok, train, model = _setup(tiny_encoder, labels)
    batch = collate_labelled(train, tok.pad_token_id)
    with torch.no_grad():
        x = model.embed(batch["input_ids"], batch["attention_mask"])
        ours = model(batch["input_ids"], batch["attention_mask"]).logits.softmax(-1).double().numpy()
    probe = LogisticRegression(C=classifier.PROBE_C, max_iter=2000).fit(x.double().numpy(), [r.label for r in train])
    theirs = probe.predict_proba(x.double().numpy())
    assert np.allclose(ours, theirs, atol=1e-4)
    assert (ours.argmax(-1) == probe.predict(x.double().numpy())).all()


def test_a_label_missing_from_training_is_never_predicted_at_the_start():
    x = torch.nn.functional.normalize(torch.randn(12, 8), dim=-1)
    y = [0, 2] * 6  # label 1 of 3 has no training row
    weight, bias = classifier.probe_head(x, y, 3)
    logits = x @ weight.T + bias
    assert (logits.argmax(-1) != 1).all()
    assert torch.equal(weight[1], torch.zeros(8)) and bias[1] < bias[0] and bias[1] < bias[2]


def test_saved_classifier_loads_with_the_same_logits(tiny_encoder, tmp_path):
    tok, train, model = _setup(tiny_encoder, ["no", "yes", "maybe"])
    classifier.save(model, tok, tmp_path / "classifier")
    again = SentenceClassifier.from_pretrained(tmp_path / "classifier")
    batch = collate_labelled(train[:6], tok.pad_token_id)
    with torch.no_grad():
        a = model(batch["input_ids"], batch["attention_mask"]).logits
        b = again(batch["input_ids"], batch["attention_mask"]).logits
    assert again.labels == ["no", "yes", "maybe"] and torch.equal(a, b)
