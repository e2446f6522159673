"""Export a run as a merged Hugging Face folder or a GGUF file, then prove the export still behaves the same.

GGUF files are written by `models/gguf_file.py` with the `gguf` package, from the base's own GGUF, so
llama.cpp and Ollama see exactly the vocabulary and template the run was trained with; the weights are
the merged ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import torch

from tailored import atomic
from tailored.errors import TailoredError
from tailored.models import llama_cpp, resolve_base
from tailored.models.gguf_file import GGUF_TYPES, check_gguf_base, default_gguf_path, write_gguf
from tailored.models.load import quiet_transformers
from tailored.runs.card import write_card
from tailored.tuned import Tuned, load

# Two tokens whose logits are this close are a tie that any weight rounding may break either way: f16
# weights moved SmolLM2's logits by up to 0.021 against the fp32 run, and split an answer at a 0.0009 tie.
NEAR_TIE = 0.05
# The share of held-out answers (counting near-ties) an export must reproduce to count as the same model.
MIN_PARITY = 95.0


@dataclass
class Parity:
    rows: int
    same_output: float  # share of held-out rows whose greedy answer is identical, 0–100
    primary: str
    run_score: float
    export_score: float
    # share of rows identical or parting only where the export saw the run's token within NEAR_TIE of its own
    same_or_tie: float = 0.0
    reader: str = "transformers"  # what read the export back
    # llama.cpp only: share of prompts it tokenizes exactly as the run does (answers are compared on the run's tokens)
    same_tokens: float | None = None
    # where each differing answer left the run's beyond a near-tie: "row 3: token 12, 288 for the run's 411 (0.31 apart)"
    partings: list[str] = field(default_factory=list)

    def __str__(self) -> str:
        ties = f" ({self.same_or_tie:.1f}% counting near-ties)" if self.same_or_tie != self.same_output else ""
        tokens = "" if self.same_tokens is None else \
            f"; {self.same_tokens:.1f}% of prompts tokenized as in training"
        parted = "; parted: " + "; ".join(self.partings) if self.partings else ""
        return (f"{self.reader}: {self.same_output:.1f}% of {self.rows} held-out answers identical{ties}; "
                f"{self.primary} {self.run_score:.1f} (run) vs {self.export_score:.1f} (export){tokens}{parted}")


@dataclass
class Exported:
    path: Path
    parity: Parity | None  # None when the check was off or the run has no held-out file
    min_parity: float = MIN_PARITY
    llama_cpp: Parity | None = None  # a GGUF export read by llama.cpp itself, when llama-cpp-python is installed
    unrouted: bool = False  # the run has a router the export cannot carry (models/router.py)

    @property
    def note(self) -> str | None:
        return ("the run sends requests unlike its training inputs to the untouched base (its router); the export "
                "holds merged weights only, so it answers every request with the adapter, and the general answers it "
                "keeps are the run's 'adapter alone' figure") if self.unrouted else None

    @property
    def checks(self) -> list[Parity]:
        return [p for p in (self.parity, self.llama_cpp) if p is not None]

    @property
    def passed(self) -> bool:
        return all(p.same_or_tie >= self.min_parity for p in self.checks)

    @property
    def failure(self) -> str:
        worst = min(self.checks, key=lambda p: p.same_or_tie) if self.checks else None
        return "" if self.passed else (f"only {worst.same_or_tie:.1f}% of answers match the run in {worst.reader}, "
                                       f"counting near-ties (need {self.min_parity:g}%); "
                                       + "; ".join(worst.partings))


def merged_model(tuned: Tuned):
    """The run's weights as one plain transformers model (LoRA folded into the base weights)."""
    if tuned.kind == "classify":
        raise TailoredError("classifier runs need no export: RUN/classifier holds the encoder (a plain HF folder), "
                            "head.safetensors and classifier.json; tailored.load(RUN) serves it")
    model = tuned.model.merge_and_unload() if hasattr(tuned.model, "merge_and_unload") else tuned.model
    model.eval()
    return model


def export_merged(tuned: Tuned, out: Path) -> Path:
    model = merged_model(tuned)
    with atomic.atomic_dir(out) as tmp:
        model.save_pretrained(tmp, safe_serialization=True)
        tuned.tokenizer.save_pretrained(tmp)  # with the chat template used in training
        write_card(tuned.path, tmp / "README.md")  # the run's model card travels with the weights
    return out


def export_gguf(tuned: Tuned, out: Path, kind: str = "f16") -> Path:
    """The run's merged weights as GGUF, with an Ollama Modelfile beside it that answers as evaluated."""
    base = resolve_base(tuned.lineage["base"]["name"])
    check_gguf_base(base)  # before merging, which changes the loaded weights
    write_gguf(base, merged_model(tuned), tuned.tokenizer.chat_template, out, kind)
    modelfile = [f"FROM ./{out.name}", "PARAMETER temperature 0"]  # greedy, as evaluated
    modelfile += [f"PARAMETER stop {json.dumps(tuned.tokenizer.eos_token)}"] if tuned.tokenizer.eos_token else []
    if prompt := tuned.task.get("system_prompt"):
        modelfile.append(f'SYSTEM """{prompt}"""')
    atomic.write_text(out.with_name("Modelfile"), "\n".join(modelfile) + "\n")
    return out


def load_export(path: Path, tuned: Tuned):
    """Read an export back with plain transformers, the way a user's other tools would."""
    from transformers import AutoModelForCausalLM

    with quiet_transformers():
        if path.suffix == ".gguf":
            with contextlib.redirect_stderr(io.StringIO()):  # the GGUF converter's own progress bar
                return AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name,
                                                            dtype=torch.float32)
        return AutoModelForCausalLM.from_pretrained(str(path), dtype=torch.float32)


def heldout_answers(tuned: Tuned, data: str | Path, max_rows: int | None = None):
    """The run's own greedy answers to held-out rows: (prompts, references, token budget, answer ids).

    Taken before exporting, since merging folds the adapter into the loaded base weights.
    """
    from tailored.config import EvalConfig
    from tailored.data import load_dataset
    from tailored.evaluation.compare import answer_budget
    from tailored.data.encode import render_prompt
    from tailored.evaluation.generate import generate_ids

    rows = load_dataset(data, labels=tuned.labels).examples[:max_rows]
    prompts, refs = [render_prompt(tuned.tokenizer, ex.prompt) for ex in rows], [ex.target for ex in rows]
    budget = answer_budget(tuned.tokenizer, refs, EvalConfig())
    # fp32 on both sides: bf16 autocast rounds a merged weight differently from base and adapter
    # computed apart, and on uncertain answers that alone flips greedy choices; parity is about the export.
    return prompts, refs, budget, generate_ids(tuned.model, tuned.tokenizer, prompts, budget, 16, bf16=False)


def parity(tuned: Tuned, exported, reference) -> Parity:
    """The exported model's answers to the same rows, generated the same way, compared row by row."""
    from tailored.evaluation.generate import generate_ids

    prompts, refs, budget, ours = reference
    theirs = generate_ids(exported, tuned.tokenizer, prompts, budget, 16, bf16=False)

    def parting(prompt: str, a: list[int], b: list[int]) -> str | None:
        ids = tuned.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return _parting(lambda prefix: exported(torch.tensor([prefix])).logits[0, -1].float(), ids, a, b)

    return _compare(tuned, reference, theirs, parting)


def parity_llama_cpp(tuned: Tuned, gguf: Path, reference) -> Parity:
    """The GGUF export's answers in llama.cpp itself, one row at a time, on the run's own prompt tokens."""
    from tailored.data.encode import stop_token_ids
    from tailored.models.llama_cpp import LlamaCpp

    prompts, refs, budget, ours = reference
    llm = LlamaCpp(gguf)
    stop = stop_token_ids(tuned.tokenizer, tuned.model)
    ids = [tuned.tokenizer(p, add_special_tokens=False)["input_ids"] for p in prompts]
    theirs = [llm.greedy(i, budget, stop) for i in ids]
    tokenized = [llm.tokenize(p) == i for p, i in zip(prompts, ids)]

    def parting(prompt: str, a: list[int], b: list[int]) -> str | None:
        prompt_ids = tuned.tokenizer(prompt, add_special_tokens=False)["input_ids"]
        return _parting(lambda prefix: torch.from_numpy(llm.next_logits(prefix)).float(), prompt_ids, a, b)

    result = _compare(tuned, reference, theirs, parting)
    result.reader, result.same_tokens = "llama.cpp", 100.0 * sum(tokenized) / max(len(tokenized), 1)
    return result


def _compare(tuned: Tuned, reference, theirs: list[list[int]], parting) -> Parity:
    from tailored.evaluation.compare import score
    from tailored.evaluation.generate import decode_answers
    from tailored.evaluation.metrics import PRIMARY, task_kind

    prompts, refs, budget, ours = reference
    same = [a == b for a, b in zip(ours, theirs)]
    how = [None if s else parting(p, a, b) for s, p, a, b in zip(same, prompts, ours, theirs)]
    partings = [f"row {i}: {h}" for i, h in enumerate(how) if h]
    primary = PRIMARY[task_kind(refs, tuned.labels)]
    scores = [score(decode_answers(tuned.tokenizer, ids), refs, tuned.labels)[0][primary] for ids in (ours, theirs)]
    share = lambda flags: 100.0 * sum(flags) / max(len(refs), 1)  # noqa: E731
    return Parity(len(refs), share(same), primary, *scores, share([h is None for h in how]), partings=partings)


@torch.no_grad()
def _parting(next_logits, prompt_ids: list[int], ours: list[int], theirs: list[int]) -> str | None:
    """How the export's answer left the run's, in words; None when it left only where the run's token was
    within NEAR_TIE of the export's pick.

    `next_logits(ids)` is the export's logits for the token after `ids`.
    """
    k = next((i for i, (a, b) in enumerate(zip(ours, theirs)) if a != b), None)
    if k is None:  # one answer is a prefix of the other: they parted on stopping, not on a token
        return f"one answer stopped after {min(len(ours), len(theirs))} tokens and the other went on"
    logits = next_logits(prompt_ids + theirs[:k])
    gap = float(logits[theirs[k]] - logits[ours[k]])
    return None if gap < NEAR_TIE else f"token {k}, {theirs[k]} for the run's {ours[k]} ({gap:.3f} apart)"


def export(run: str | Path, fmt: str = "merged", out: str | Path | None = None, runs_dir: str = "runs",
           gguf_type: str = "f16", check: bool = True, max_rows: int | None = None,
           min_parity: float = MIN_PARITY) -> Exported:
    """Write the export, reload it with plain transformers and compare it with the run on held-out rows.

    The result's `passed` is False when under `min_parity`% of held-out answers match the run's.
    """
    if fmt not in ("merged", "gguf"):
        raise TailoredError(f"--format {fmt}: use merged or gguf")
    if gguf_type not in GGUF_TYPES:  # checked here too so a typo fails before the held-out answers are generated
        raise TailoredError(f"--gguf-type {gguf_type}: use one of {', '.join(GGUF_TYPES)}")
    tuned = load(run, runs_dir, engine="torch")  # the parity check compares the export with the torch engine
    default = tuned.path / "export" / "merged" if fmt == "merged" else default_gguf_path(tuned.path, gguf_type)
    target = Path(out) if out else default
    if fmt == "gguf" and target.suffix != ".gguf":
        target = target / default.name
    heldout = (tuned.lineage["data"]["heldout"] or {}).get("path")
    reference = heldout_answers(tuned, heldout, max_rows) if check and heldout and Path(heldout).exists() else None
    if target.exists():
        shutil.rmtree(target) if target.is_dir() else target.unlink()
    if fmt == "merged":
        export_merged(tuned, target)
    else:
        export_gguf(tuned, target, gguf_type)
    result = Exported(target, parity(tuned, load_export(target, tuned), reference) if reference else None, min_parity,
                      unrouted=tuned.router is not None)
    if reference and fmt == "gguf" and llama_cpp.installed():
        result.llama_cpp = parity_llama_cpp(tuned, target, reference)
    return result
