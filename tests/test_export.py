"""Export parity: near-ties count as matching and nothing else does; `tailor export` fails below the threshold."""

import pytest
import torch
from typer.testing import CliRunner

import tailored
from tailored.config import RunConfig, TrainConfig
from tailored.export import MIN_PARITY, NEAR_TIE, _parting
from tests.conftest import write_jsonl, yes_rows


def _fixed(logits: dict[int, float]):
    """Next-token logits that are the same whatever came before."""
    vector = torch.zeros(100)
    for token, value in logits.items():
        vector[token] = value
    return lambda ids: vector


def test_a_split_counts_as_a_tie_only_when_the_exports_logits_were_that_close():
    ours, theirs = [7, 8, 5, 9], [7, 8, 6, 9]  # the export picked 6 where the run picked 5
    assert _parting(_fixed({6: 1.0, 5: 1.0 - NEAR_TIE / 10}), [1, 2], ours, theirs) is None
    far = _parting(_fixed({6: 1.0, 5: 1.0 - 2 * NEAR_TIE}), [1, 2], ours, theirs)
    assert far == f"token 2, 6 for the run's 5 ({2 * NEAR_TIE:.3f} apart)"
    # one answer stopping earlier is not a tie on a token
    assert _parting(_fixed({6: 1.0}), [1, 2], [7, 8], [7, 8, 6]) == \
        "one answer stopped after 2 tokens and the other went on"
    # the logits asked for are those after the prompt and the shared start of the answers
    asked = []
    _parting(lambda ids: asked.append(ids) or torch.zeros(100), [1, 2], ours, theirs)
    assert asked == [[1, 2, 7, 8]]


@pytest.fixture(scope="module")
def yes_run(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("export")
    data = write_jsonl(folder / "yes.jsonl", yes_rows(40))
    write_jsonl(folder / "yes.heldout.jsonl", yes_rows(8, start=700))
    tailored.train(data, TrainConfig(base=str(tiny_base), epochs=5, learning_rate=1e-2, batch_size=8),
                   run_cfg=RunConfig(runs_dir=str(folder / "runs"), evaluate=False), quiet=True)
    return folder / "runs"


def test_tailor_export_passes_when_the_export_answers_like_the_run(yes_run, tmp_path):
    from tailored.cli import app

    result = CliRunner().invoke(app, ["export", "yes", "--out", str(tmp_path / "m"), "--runs-dir", str(yes_run)])
    assert result.exit_code == 0, result.output
    assert "parity: transformers: 100.0% of 8 held-out answers identical" in result.output
    card = (tmp_path / "m" / "README.md").read_text()  # the run's model card travels with the weights
    assert card.startswith("---\nbase_model: ") and "## Lineage" in card


def test_tailor_export_exits_1_below_the_parity_threshold(yes_run, tiny_base, tmp_path, monkeypatch):
    from transformers import AutoModelForCausalLM

    import tailored.export
    from tailored.cli import app

    # An export that lost the adapter: reloading it gives the untouched base, which never says "yes".
    monkeypatch.setattr(tailored.export, "load_export", lambda path, tuned: AutoModelForCausalLM.from_pretrained(
        tiny_base, dtype=torch.float32))
    result = CliRunner().invoke(app, ["export", "yes", "--out", str(tmp_path / "m"), "--runs-dir", str(yes_run)])
    assert result.exit_code == 1, result.output
    assert f"need {MIN_PARITY:g}%" in result.output and "0.0% of 8 held-out answers identical" in result.output


def test_the_engine_is_torch_where_llama_cpp_cannot_read_the_run_and_asking_for_it_says_why(yes_run):
    from tailored.errors import TailoredError
    from tailored.models import llama_cpp

    assert tailored.load("yes", runs_dir=yes_run).engine == "torch"  # auto: the tiny base did not come as GGUF
    assert tailored.load("yes", runs_dir=yes_run, engine="torch").generate("yes?", max_new_tokens=4) == \
        tailored.load("yes", runs_dir=yes_run).generate("yes?", max_new_tokens=4)
    why = "did not come as GGUF" if llama_cpp.installed() else "llama-cpp-python is not installed"
    with pytest.raises(TailoredError, match=why):
        tailored.load("yes", runs_dir=yes_run, engine="llama.cpp")
    with pytest.raises(TailoredError, match="use one of auto, torch, llama.cpp"):
        tailored.load("yes", runs_dir=yes_run, engine="fast")


def test_tailor_predict_takes_the_engine_and_fails_clearly_when_it_cannot_have_it(yes_run):
    from tailored.cli import app

    ok = CliRunner().invoke(app, ["predict", "yes", "yes?", "--max-new-tokens", "4", "--runs-dir", str(yes_run),
                                  "--engine", "torch"])
    assert ok.exit_code == 0, ok.output
    bad = CliRunner().invoke(app, ["predict", "yes", "yes?", "--runs-dir", str(yes_run), "--engine", "llama.cpp"])
    assert bad.exit_code == 1 and "use --engine torch" in bad.output, bad.output


def test_auto_answers_a_few_prompts_through_llama_cpp_and_many_through_torchs_batch(yes_run, monkeypatch):
    """llama.cpp answers one prompt at a time; past AUTO_LLAMA_CPP_MOST prompts torch's batch is faster, and
    `auto` takes it. An explicit `--engine llama.cpp` is kept whatever the count."""
    from tailored import tuned as tuned_module
    from tailored.tuned import AUTO_LLAMA_CPP_MOST

    calls = []

    class FakeLlama:  # stands in for llama.cpp: the tiny base has no GGUF for it to read
        def greedy(self, ids, budget, stop):
            calls.append(ids)
            return [next(iter(stop))]

    def answered_by(engine: str, n: int) -> str:
        model = tailored.load("yes", runs_dir=yes_run, engine="torch")
        model.engine, model._auto, model._llama = "llama.cpp", engine == "auto", FakeLlama()
        model.router = None  # "yes?" is unlike the run's inputs: its router would give it to the base (torch)
        calls.clear()
        replies = model.generate(["yes?"] * n, max_new_tokens=4)
        assert len(replies) == n
        return "llama.cpp" if len(calls) == n else "torch" if not calls else "both"

    monkeypatch.setattr(tuned_module.Tuned, "_llama_model", lambda self: self._llama)
    assert answered_by("auto", 1) == "llama.cpp"
    assert answered_by("auto", AUTO_LLAMA_CPP_MOST) == "llama.cpp"
    assert answered_by("auto", AUTO_LLAMA_CPP_MOST + 1) == "torch"
    assert answered_by("llama.cpp", AUTO_LLAMA_CPP_MOST + 1) == "llama.cpp"
