"""The base's answers are generated once per base, prompt, budget and numeric setting, then read back."""

from __future__ import annotations

import tailored
import tailored.evaluation.answer_cache as answer_cache
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.evaluation import general
from tailored.evaluation.answer_cache import BaseAnswers
from tailored.evaluation.generate import generate_ids
from tests.conftest import write_jsonl, yes_rows
from tests.test_decode import PROMPTS, _model

HASH = "ab" * 32


def _counting(monkeypatch) -> list[int]:
    """How many prompts each call to the real generator was given."""
    made = []

    def spy(model, tokenizer, texts, *args, **kwargs):
        made.append(len(texts))
        return generate_ids(model, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(answer_cache, "generate_ids", spy)
    return made


def test_answers_are_made_once_and_only_for_prompts_not_seen(tmp_path, monkeypatch):
    model, tok = _model(2)
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    made = _counting(monkeypatch)
    with model.disable_adapter():
        fresh = generate_ids(model, tok, texts, 10)
        store = BaseAnswers(HASH, False, "cpu", tmp_path / "a.sqlite")
        assert store.generate_ids(model, tok, texts[:2], 10) == fresh[:2]
        assert store.generate_ids(model, tok, texts, 10) == fresh  # only the two new ones generated
        assert BaseAnswers(HASH, False, "cpu", tmp_path / "a.sqlite").generate_ids(model, tok, texts, 10) == fresh
        assert made == [2, 2]
        store.generate_ids(model, tok, texts[:1], 6)  # another budget is another answer
        BaseAnswers(HASH, True, "cpu", tmp_path / "a.sqlite").generate_ids(model, tok, texts[:1], 10)  # bf16
        BaseAnswers("cd" * 32, False, "cpu", tmp_path / "a.sqlite").generate_ids(model, tok, texts[:1], 10)
    assert made == [2, 2, 1, 1, 1]


def test_only_bases_with_a_content_hash_are_cached(tiny_base):
    from tailored.models import resolve_base

    assert BaseAnswers.of(resolve_base(str(tiny_base)), False, "cpu") is not None  # model.safetensors: hashed

    class Named:
        def fingerprint(self):
            return "some-org/some-model"  # a hub id: the same name may mean other weights tomorrow

    assert BaseAnswers.of(Named(), False, "cpu") is None


def test_a_second_evaluation_reuses_the_bases_answers_and_scores_the_same(tiny_base, tmp_path, monkeypatch):
    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(40))
    heldout = write_jsonl(tmp_path / "heldout.jsonl", yes_rows(12, start=100))
    run = tailored.train(data, TrainConfig(base=str(tiny_base), epochs=2, learning_rate=1e-2, batch_size=8),
                         DataConfig(heldout=str(heldout), guard=0.0), EvalConfig(),
                         RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)
    made, asked, real = _counting(monkeypatch), [], BaseAnswers.generate_ids

    def asking(self, model, tokenizer, texts, *args, **kwargs):
        asked.append(len(texts))
        return real(self, model, tokenizer, texts, *args, **kwargs)

    monkeypatch.setattr(BaseAnswers, "generate_ids", asking)
    again = tailored.evaluate(run.path, quiet=True)
    n = len(general.questions())
    assert asked == [12, n, n]  # the base's answers to the held-out rows, the general check, its neutral-prompt floor
    assert made == []  # all of them were made by the training run's own evaluation
    assert again.rows == run.comparison.rows and again.base == run.comparison.base
    assert again.review["forgetting"] == run.comparison.review["forgetting"]
    floor = again.review["forgetting"]["floor"]
    assert floor["system"] == general.NEUTRAL_SYSTEM and set(floor) >= {"kept", "kept_share", "kept_ci"}
