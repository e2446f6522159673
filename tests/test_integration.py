"""The real bundled SmolLM2, for a handful of steps. Select with `-m integration`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(autouse=True)
def _shared_cache(monkeypatch):
    # The dequantised SmolLM2 is cached once per machine, as users get it; not per test.
    if "TAILORED_CACHE" not in os.environ:
        monkeypatch.delenv("TAILORED_CACHE", raising=False)


def test_cached_base_matches_the_gguf_exactly():
    import torch
    from transformers import AutoModelForCausalLM

    from tailored.models import load_causal_lm, resolve_base

    base = resolve_base("smollm2-135m")
    direct = AutoModelForCausalLM.from_pretrained(base.path, gguf_file=base.gguf_file, local_files_only=True)
    cached = load_causal_lm(base)
    ids = torch.tensor([[1, 500, 900, 1234, 42, 7]])
    with torch.no_grad():
        assert torch.equal(direct(ids).logits, cached(ids).logits)


def test_smollm2_trains_a_few_steps_and_evaluates(tmp_path):
    run = tailored.train(EXAMPLES / "support.jsonl", TrainConfig(max_steps=3, batch_size=4), DataConfig(),
                         EvalConfig(max_rows=4, max_new_tokens=16), RunConfig(runs_dir=str(tmp_path)), quiet=True)
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 3
    assert metrics["eval"]["on"] == "held-out" and len(metrics["eval"]["rows"]) == 4
    losses = [h["train_loss"] for h in json.loads((run.path / "history.json").read_text()) if "train_loss" in h]
    assert len(losses) == 3 and all(0 < x < 10 for x in losses)
    lineage = json.loads((run.path / "run.json").read_text())
    assert lineage["base"]["fingerprint"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    tuned = tailored.load(run.path)
    assert isinstance(tuned.generate("How do I reset my password?", max_new_tokens=8), str)
