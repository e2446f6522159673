"""The router: requests unlike a LoRA run's training inputs answered by the untouched base, everywhere the run answers."""

from __future__ import annotations

import json

import numpy as np
import pytest

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.errors import TailoredError
from tailored.evaluation import general
from tailored.evaluation.general import Question
from tailored.models.router import ROUTER_FILE, Router, fit_checked, user_text
from tests.conftest import SwitchableModel, hashed_embed, write_jsonl

TASK = [f"reset the password for account {i} please" for i in range(30)] + \
       [f"billing question about invoice {i}" for i in range(30)]
GENERAL = ["What is the capital of France?", "Explain gravity in one sentence.", "Write a haiku about rain.",
           "How many days are in a week?", "Translate 'good morning' into Spanish.", "Name three primary colours."]


def ask(text: str) -> list[dict]:
    return [{"role": "system", "content": "You are a support agent."}, {"role": "user", "content": text}]


def test_the_router_sends_general_requests_to_the_base_and_task_inputs_to_the_adapter():
    router = Router.fit(TASK, GENERAL, hashed_embed)
    assert router.to_base([ask("reset the password for account 99 please"), ask("billing question about invoice 7"),
                           ask("What is the capital of Spain?"), ask("Explain rain in one sentence.")]) == \
        [False, False, True, True]


def test_it_routes_on_the_user_turns_only():
    """The run's system prompt (and --retrieve's passages, which sit in it) are the same on every request."""
    assert user_text([{"role": "system", "content": "billing"}, {"role": "user", "content": "a"},
                      {"role": "assistant", "content": "b"}, {"role": "user", "content": None},
                      {"role": "user", "content": "c"}]) == "a\n\nc"


def test_a_saved_router_decides_as_the_fitted_one_and_another_encoder_s_is_refused(tmp_path):
    router = Router.fit(TASK, GENERAL, hashed_embed)
    router.save(tmp_path)
    again = Router.open(tmp_path, hashed_embed)
    asked = [ask(t) for t in TASK[:5] + GENERAL]
    assert np.allclose(again.task_scores(asked), router.task_scores(asked))
    assert Router.open(tmp_path / "elsewhere") is None
    from safetensors.numpy import save_file

    save_file({"weight": router.weight, "bias": np.array([0.0], dtype=np.float32)}, str(tmp_path / ROUTER_FILE),
              metadata={"encoder": "some-other-encoder"})
    with pytest.raises(TailoredError, match="some-other-encoder"):
        Router.open(tmp_path)


def test_a_task_whose_inputs_look_general_keeps_every_request_on_the_adapter():
    kept, found = fit_checked([ask(t) for t in TASK], [ask(t) for t in TASK[:10]], GENERAL, hashed_embed)
    assert kept is not None and found == {"valid_to_base": 0, "valid": 10, "kept": True}
    # a tutor on general knowledge: its validation questions look like the guard's general requests
    off, found = fit_checked([ask(t) for t in TASK], [ask(t) for t in GENERAL], GENERAL, hashed_embed)
    assert off is None and found["valid_to_base"] > 0.05 * len(GENERAL) and not found["kept"]
    assert fit_checked([ask(t) for t in TASK], [], GENERAL, hashed_embed)[0] is None  # nothing to check it on


class Routes:
    """A router that sends the conversations whose user text is in `to` to the base."""

    def __init__(self, to: set[str]):
        self.to = to

    def to_base(self, conversations):
        return [user_text(c) in self.to for c in conversations]


def test_evaluation_gives_routed_rows_the_base_s_answer_and_counts_them(monkeypatch):
    from tailored.data.formats import Example
    from tailored.evaluation import compare as compare_module
    from tailored.evaluation.compare import compare

    asked = []

    def fake_generate(model, tok, prompts, *a):
        asked.append((model.adapter, [p[-1]["content"] for p in prompts]))
        return [("tuned " if model.adapter else "base ") + p[-1]["content"] for p in prompts]

    monkeypatch.setattr(compare_module, "generate", fake_generate)
    monkeypatch.setattr(compare_module, "answer_budget", lambda *a: 8)
    rows = [Example([{"role": "user", "content": q}, {"role": "assistant", "content": "x"}], "f", i + 1)
            for i, q in enumerate(["q0", "q1", "q2"])]
    c = compare(SwitchableModel(), None, rows, None, EvalConfig(), router=Routes({"q1"}))
    assert [r["tuned"] for r in c.rows] == ["tuned q0", "base q1", "tuned q2"]
    assert [r.get("routed", False) for r in c.rows] == [False, True, False] and c.routed == 1
    assert asked == [(False, ["q0", "q1", "q2"]), (True, ["q0", "q2"])]  # the adapter is not asked what it won't answer
    assert compare(SwitchableModel(), None, rows, None, EvalConfig()).routed is None


def test_the_general_check_counts_routed_answers_and_keeps_the_adapter_s_own_figure(monkeypatch):
    from tailored.evaluation.evidence import general_answers

    items = [Question(f"q{i}", (a,), "fact") for i, a in enumerate(["Paris", "12", "blue", "Nile"])]
    monkeypatch.setattr(general, "questions", lambda: items)

    said = {(False, None): ["Paris", "12", "red", "Nile"],  # the base: right on q0, q1, q3
            (False, general.NEUTRAL_SYSTEM): ["Paris", "12", "red", "Nile"],
            (False, "Be a support agent."): ["Paris", "13", "Nile"],  # q0, q1, q3 with the run's prompt
            (True, None): ["Lyon", "12", "blue", "Rhine"],  # the adapter alone keeps 1 of 3
            (True, "Be a support agent."): ["Lyon", "12", "Rhine"]}  # as predict asks: 1 of 3

    def fake_generate(model, tok, prompts, *a, **k):
        system = prompts[0][0]["content"] if prompts[0][0]["role"] == "system" else None
        return said[(model.adapter, system)]

    monkeypatch.setattr(general, "generate", fake_generate)
    out = general_answers(SwitchableModel(), None, False, system="Be a support agent.", router=Routes({"q0", "q3"}))
    assert (out["kept"], out["base_correct"], out["routed"]) == (3, 3, 2)  # q0 and q3 from the base, q1 kept
    assert (out["adapter"]["kept"], out["as_asked"]["adapter_kept"]) == (1, 1)
    assert out["as_asked"]["kept"] == 3  # the base with the prompt on q0 and q3, the adapter's "12" on q1
    unrouted = general_answers(SwitchableModel(), None, False, system="Be a support agent.")
    assert unrouted["kept"] == 1 and "adapter" not in unrouted and "routed" not in unrouted


@pytest.fixture(scope="module")
def routed_run(tiny_base, tmp_path_factory):
    """A tiny guarded run whose adapter, scaled up, answers differently from the base."""
    from safetensors.torch import load_file, save_file

    folder = tmp_path_factory.mktemp("routed")
    data = write_jsonl(folder / "d.jsonl", [{"prompt": f"reset the password for account {i} please",
                                             "completion": "yes"} for i in range(40)])
    run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=3, learning_rate=1e-2), DataConfig(),
                         EvalConfig(), RunConfig(runs_dir=str(folder / "runs"), evaluate=False), quiet=True)
    weights = run.path / "adapter" / "adapter_model.safetensors"
    save_file({k: v * 50 if ".lora_B." in k else v for k, v in load_file(weights).items()}, weights)
    return run.path


def test_a_guarded_lora_run_keeps_its_router_and_the_run_says_so(routed_run, tiny_base, tmp_path):
    assert (routed_run / ROUTER_FILE).exists()
    found = json.loads((routed_run / "metrics.json").read_text())["router"]
    assert found == {"valid_to_base": 0, "valid": 4, "kept": True}
    assert "router.safetensors" in (routed_run / "README.md").read_text()
    data = write_jsonl(tmp_path / "d.jsonl", [{"prompt": f"question {i}", "completion": "yes"} for i in range(40)])
    for data_cfg in (DataConfig(route=False), DataConfig(guard=0)):  # turned off, or no guard to go with
        run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=1), data_cfg, EvalConfig(),
                             RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
        assert not (run.path / ROUTER_FILE).exists() and "router" not in json.loads((run.path / "metrics.json").read_text())


def test_predict_answers_routed_requests_as_the_base_and_the_rest_with_the_adapter(routed_run):
    tuned = tailored.load(routed_run, engine="torch")
    task, other = "reset the password for account 7 please", "What is the capital of France?"
    assert tuned.router.to_base([[{"role": "user", "content": t}] for t in (task, other)]) == [False, True]
    routed = tuned.generate([task, other], max_new_tokens=6)
    tuned.router = None
    adapter = tuned.generate([task, other], max_new_tokens=6)
    with tuned.model.disable_adapter():
        base = tuned.generate([task, other], max_new_tokens=6)
    assert base[1] != adapter[1]  # else this test could not tell the two apart
    assert routed == [adapter[0], base[1]]


def test_the_server_answers_routed_requests_with_the_base_and_the_run_s_prompt(routed_run):
    from tailored.server.pool import Pool, Served

    served = Served("routed/v1", object(), "Be brief.", router=Routes({"What is 2 + 2?"}))
    same = Pool.route(None, served, [{"role": "user", "content": "reset the password for account 7 please"}])
    assert same is served
    base = Pool.route(None, served, [{"role": "user", "content": "What is 2 + 2?"}])
    assert (base.key, base.tokenizer, base.system_prompt, base.kind) == ("", served.tokenizer, "Be brief.", "lora")


def test_an_export_says_it_cannot_route(routed_run, tmp_path):
    from tailored.export import export

    out = export(routed_run, "merged", tmp_path / "merged", check=False)
    assert out.unrouted and "every request with the adapter" in out.note
