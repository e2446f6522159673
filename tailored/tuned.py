"""`load(run)`: a finished run as a model you can ask questions, with the run's own chat template."""

from __future__ import annotations

import warnings
from pathlib import Path

from tailored.evaluation.generate import generate
from tailored.evaluation.metrics import match_label
from tailored.models import load_causal_lm, load_tokenizer, resolve_base
from tailored.models.load import quiet_transformers
from tailored.runs import read_json, resolve_run
from tailored.device import choose_bf16, device_of
from tailored.errors import TailoredError
from tailored.models.scoring import label_probabilities, predict_labels
from tailored.models.sentence_classifier import SentenceClassifier


class Tuned:
    """A finished run as a model: a base with its LoRA adapter, a fully fine-tuned model, or a classifier.

    `generate` takes a string (sent as the user turn, after the run's system prompt if it had one)
    or a list of chat messages. A classifier answers with one of its labels.
    """

    def __init__(self, path: Path):
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
        self.bf16 = choose_bf16(read_json(path / "config.json")["train"].get("bf16"), device_of(self.model))

    @property
    def labels(self) -> list[str] | None:
        return self.task.get("labels")

    def messages_for(self, prompt: str | list[dict]) -> list[dict]:
        if not isinstance(prompt, str):
            return list(prompt)
        messages = [{"role": "user", "content": prompt}]
        system = self.task.get("system_prompt")
        return [{"role": "system", "content": system}, *messages] if system else messages

    def generate(self, prompts: str | list[dict] | list[str | list[dict]], max_new_tokens: int = 256,
                 batch_size: int = 16) -> str | list[str]:
        """The tuned model's greedy reply; a list in gives a list out."""
        single = isinstance(prompts, str) or (prompts and isinstance(prompts[0], dict))
        items = [prompts] if single else list(prompts)
        if self.kind == "classify":
            texts = [p if isinstance(p, str) else p[-1]["content"] for p in items]
            replies = [self.labels[i] for i in predict_labels(self.model, self.tokenizer, texts, batch_size, self.bf16)]
            return replies[0] if single else replies
        replies = generate(self.model, self.tokenizer, [self.messages_for(p) for p in items], max_new_tokens,
                           batch_size, self.bf16)
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


def load(run: str | Path, runs_dir: str | Path = "runs") -> Tuned:
    """Load a finished run by folder (`runs/support/v1`) or name (`support`, the latest version)."""
    return Tuned(resolve_run(run, runs_dir))


def house_voice(run: str | Path | None, runs_dir: str | Path = "runs"):
    """--voice's classifier as texts → probability of 'house', or None without one; says at once when the run
    cannot score the voice (not a classifier, no 'house' label)."""
    if not run:
        return None
    classifier = load(run, runs_dir=runs_dir)
    classifier.probability([], "house")
    return lambda texts: classifier.probability(texts, "house")
