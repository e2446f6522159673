"""`load(run)`: a finished run as a model you can ask questions, with the run's own chat template.

Answers come from one of two engines. `torch` is the decode loop evaluation and the server use.
`llama.cpp` (when llama-cpp-python is installed and the base came as a llama-architecture GGUF) reads
the run written once as an f32 GGUF beside its exports and answers one prompt several times faster on a
CPU (BENCHMARKS.md). f32, not f16: with f16 weights a 12-step support run parted from the torch answer
on 1 of 60 held-out rows, where two tokens' logits were 0.012 apart; with f32 weights, 60 of 60 agreed.
`auto`, the default, takes llama.cpp where it can, for up to AUTO_LLAMA_CPP_MOST prompts in a call. Both
engines answer in fp32 on a CPU (`device.generation_bf16`), as the run's own evaluation did, so they give
the evaluated answers.
"""

from __future__ import annotations

import warnings
from pathlib import Path

from tailored.data.encode import render_prompt, stop_token_ids
from tailored.data.formats import as_trained
from tailored.evaluation.generate import ROWS, decode_answers, generate
from tailored.evaluation.metrics import match_label
from tailored.models import context_length, llama_cpp, load_causal_lm, load_tokenizer, resolve_base
from tailored.models.gguf_file import default_gguf_path, gguf_architecture, write_gguf
from tailored.models.load import quiet_transformers
from tailored.models.retrieval import Retriever
from tailored.models.router import Router
from tailored.runs import read_json, resolve_run
from tailored.device import choose_bf16, device_of, generation_bf16
from tailored.errors import TailoredError
from tailored.models.scoring import label_probabilities, predict_labels
from tailored.models.sentence_classifier import SentenceClassifier

ENGINES = ("auto", "torch", "llama.cpp")
# `auto` answers up to this many prompts in one call through llama.cpp, one after another, and more through
# torch's batched decode: on 2 cores torch took 3.45x llama.cpp's time for 1 prompt, 1.40x for 4, 1.03x for 8
# and 0.67x for 16 (bench/engine_crossover.py, BENCHMARKS.md).
AUTO_LLAMA_CPP_MOST = 7


class Tuned:
    """A finished run as a model: a base with its LoRA adapter, a fully fine-tuned model, or a classifier.

    `generate` takes a string (sent as the user turn) or a list of chat messages; either way the run's
    system prompt, if it had one, goes first unless the messages bring their own, as the server does.
    A classifier answers with one of its labels.
    """

    def __init__(self, path: Path, engine: str = "auto"):
        if engine not in ENGINES:
            raise TailoredError(f"engine '{engine}': use one of {', '.join(ENGINES)}")
        self.path = path
        self.lineage = read_json(path / "run.json")
        self.task = self.lineage["task"]
        self.base = resolve_base(self.lineage["base"]["name"])
        if self.base.fingerprint() != self.lineage["base"]["fingerprint"]:
            warnings.warn(f"base '{self.base.name}' is not the file this run was trained on (its hash differs); "
                          "answers may differ from the run's evaluation", stacklevel=2)
        self.kind = self.task.get("kind", "generate")
        if self.kind == "classify":
            self.tokenizer = load_tokenizer(self.base, path / "classifier")
            with quiet_transformers():
                self.model = SentenceClassifier.from_pretrained(path / "classifier")
        elif (path / "model").is_dir():  # full fine-tuning: the whole model was saved
            from transformers import AutoModelForCausalLM

            self.tokenizer = load_tokenizer(self.base, path / "tokenizer")
            with quiet_transformers():
                self.model = AutoModelForCausalLM.from_pretrained(path / "model", local_files_only=True)
        else:
            from peft import PeftModel

            self.tokenizer = load_tokenizer(self.base, path / "tokenizer")
            base_model = load_causal_lm(self.base)
            with quiet_transformers():
                self.model = PeftModel.from_pretrained(base_model, path / "adapter")
        self.model.eval()
        # generate the way the run's own evaluation did
        setting = read_json(path / "config.json")["train"].get("bf16")
        self.bf16 = generation_bf16(setting, device_of(self.model))
        self.trained_bf16 = choose_bf16(setting, device_of(self.model))  # how its validation loss was measured
        self.engine = self._choose_engine(engine)
        self._auto = engine == "auto"
        self._llama = None  # the llama.cpp model, loaded on the first answer
        # a run trained with --documents' passages in its prompts answers with them (models/retrieval.py)
        self.retriever = Retriever.open(path) if self.kind != "classify" else None
        # a guarded LoRA run answers requests unlike its training inputs with the base (models/router.py)
        self.router = Router.open(path) if (path / "adapter").is_dir() else None

    def _choose_engine(self, asked: str) -> str:
        """`asked`, or for `auto` llama.cpp where it can read this run; says why when llama.cpp was asked and cannot."""
        if asked == "torch":  # nothing to check, not even the base's GGUF header
            return "torch"
        why = ("llama-cpp-python is not installed (pip install llama-cpp-python)" if not llama_cpp.installed() else
               "a classifier answers with its own head" if self.kind == "classify" else
               f"the base '{self.base.name}' did not come as GGUF" if not self.base.gguf_file else
               "this run is on a GPU; llama.cpp here runs on the CPU" if device_of(self.model).type != "cpu" else
               f"the base '{self.base.name}' is not a llama-architecture model"
               if gguf_architecture(self.base) != "llama" else None)
        if asked == "llama.cpp" and why:
            raise TailoredError(f"--engine llama.cpp: {why}; use --engine torch")
        return "llama.cpp" if asked in ("auto", "llama.cpp") and not why else "torch"

    def _llama_model(self):
        """The run as an f32 GGUF in llama.cpp, written once next to the run's exports (merged from a fresh copy
        of base and adapter, so this object's own weights stay as they are)."""
        if self._llama is None:
            gguf = default_gguf_path(self.path, "f32")
            if not gguf.exists():
                write_gguf(self.base, self._merged_copy(), self.tokenizer.chat_template, gguf, "f32")
            self._llama = llama_cpp.LlamaCpp(gguf, context=context_length(self.base))
        return self._llama

    def _merged_copy(self):
        if (self.path / "model").is_dir():
            return self.model
        from peft import PeftModel

        with quiet_transformers():
            return PeftModel.from_pretrained(load_causal_lm(self.base), self.path / "adapter").merge_and_unload()

    def answer(self, conversations: list[list[dict]], max_new_tokens: int, batch_size: int = ROWS) -> list[str]:
        """Greedy replies to whole conversations, from this run's engine (torch for many under `auto`), each
        grounded in the passages for its last question when the run keeps them. Those the run's router sends to
        the base are answered with the adapter switched off, through torch: the base's weights are the ones in
        memory, and a llama.cpp copy of the base would be another file to write and hold."""
        to_base = self.router.to_base(conversations) if self.router else [False] * len(conversations)
        if self.retriever:
            conversations = self.retriever.ground(conversations)
        if not any(to_base):
            return self._answer(conversations, max_new_tokens, batch_size)
        with self.model.disable_adapter():
            base = iter(generate(self.model, self.tokenizer, [c for c, r in zip(conversations, to_base) if r],
                                 max_new_tokens, batch_size, self.bf16))
        asked = [c for c, r in zip(conversations, to_base) if not r]
        tuned = iter(self._answer(asked, max_new_tokens, batch_size) if asked else [])
        return [next(base) if r else next(tuned) for r in to_base]

    def _answer(self, conversations: list[list[dict]], max_new_tokens: int, batch_size: int) -> list[str]:
        if self.engine == "torch" or (self._auto and len(conversations) > AUTO_LLAMA_CPP_MOST):
            return generate(self.model, self.tokenizer, conversations, max_new_tokens, batch_size, self.bf16)
        llm = self._llama_model()
        stop = stop_token_ids(self.tokenizer, self.model)
        # the run's own tokens, not llama.cpp's tokenizer: answers are compared with the torch engine's on them
        ids = [self.tokenizer(render_prompt(self.tokenizer, c), add_special_tokens=False)["input_ids"]
               for c in conversations]
        return decode_answers(self.tokenizer, [llm.greedy(i, max_new_tokens, stop) for i in ids])

    @property
    def labels(self) -> list[str] | None:
        return self.task.get("labels")

    def messages_for(self, prompt: str | list[dict]) -> list[dict]:
        messages = [{"role": "user", "content": prompt}] if isinstance(prompt, str) else prompt
        return as_trained(messages, self.task.get("system_prompt"))

    def generate(self, prompts: str | list[dict] | list[str | list[dict]], max_new_tokens: int = 256,
                 batch_size: int = ROWS) -> str | list[str]:
        """The tuned model's greedy reply; a list in gives a list out."""
        single = isinstance(prompts, str) or (prompts and isinstance(prompts[0], dict))
        items = [prompts] if single else list(prompts)
        if self.kind == "classify":
            texts = [p if isinstance(p, str) else p[-1]["content"] for p in items]
            replies = [self.labels[i] for i in predict_labels(self.model, self.tokenizer, texts, batch_size, self.bf16)]
            return replies[0] if single else replies
        replies = self.answer([self.messages_for(p) for p in items], max_new_tokens, batch_size)
        if self.labels:
            replies = [match_label(r, self.labels) for r in replies]
        return replies[0] if single else replies


    def probability(self, texts: list[str], label: str, batch_size: int = 64) -> list[float]:
        """A classifier's probability that each text has `label` (texts over the encoder's length are cut)."""
        if self.kind != "classify" or label not in (self.labels or []):
            raise TailoredError(f"{self.path}: not a classifier with the label '{label}' (labels: {self.labels}) — "
                                f"train one on text/label rows that include '{label}'")
        column = self.labels.index(label)
        probabilities = label_probabilities(self.model, self.tokenizer, texts, batch_size, self.bf16, truncate=True)
        return probabilities[:, column].tolist() if len(texts) else []


def load(run: str | Path, runs_dir: str | Path = "runs", engine: str = "auto") -> Tuned:
    """Load a finished run by folder (`runs/support/v1`) or name (`support`, the latest version).

    `engine`: "auto" (llama.cpp where it can read the run, else torch), "torch" or "llama.cpp".
    """
    return Tuned(resolve_run(run, runs_dir), engine)


def house_voice(run: str | Path | None, runs_dir: str | Path = "runs"):
    """--voice's classifier as texts → probability of 'house', or None without one; says at once when the run
    cannot score the voice (not a classifier, no 'house' label)."""
    if not run:
        return None
    classifier = load(run, runs_dir=runs_dir)
    classifier.probability([], "house")
    return lambda texts: classifier.probability(texts, "house")
