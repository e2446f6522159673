"""Base vs tuned on the same held-out rows, scored on generated text."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tailored.config import EvalConfig
from tailored.data.formats import Example
from tailored.evaluation.generate import generate
from tailored.data.tools import calls_in
from tailored.evaluation.metrics import (PRIMARY, json_scores, label_scores, mean_scores, rubric_scores, task_kind,
                                        text_scores, tool_scores)
from tailored.models.retrieval import passages_in
from tailored.models.scoring import predict_labels
from tailored.models.sentence_classifier import PROBE_C, text_embedder


@dataclass
class Comparison:
    primary: str
    base: dict
    tuned: dict
    rows: list[dict]  # prompt, expected, base, tuned for every evaluated row
    max_new_tokens: int
    seconds: float
    base_ci: dict = field(default_factory=dict)  # metric -> [low, high], 95% bootstrap
    tuned_ci: dict = field(default_factory=dict)
    task: str = "text"
    base_name: str = "base"  # what "base" is: the untuned model, or a classifier's stronger simple baseline
    review: dict = field(default_factory=dict)  # slices, memorisation, forgetting, loss, gate (evidence.gather)
    baselines: dict = field(default_factory=dict)  # classifiers: every simple baseline's {metric: value}
    parent: dict | None = None  # retraining: the parent version's {name, values, ci} on the same rows
    routed: int | None = None  # rows the run's router gave to the base (their tuned answer is the base's); None: no router

    @property
    def passed(self) -> bool:
        """False when the gate (--fail-if-worse, --min floors) failed."""
        return self.review.get("gate", {}).get("passed", True)

    @property
    def gain(self) -> float:
        return self.tuned[self.primary] - self.base[self.primary]

    def to_dict(self) -> dict:
        return {**asdict(self), "gain": self.gain}


def score(preds: list[str], refs: list[str], labels: list[str] | None) -> tuple[dict, dict]:
    """Metrics chosen from the data: labels, JSON objects, or free text (JSON also gets the text ones)."""
    kind = task_kind(refs, labels)
    if kind == "label":
        return label_scores(preds, refs, labels)
    values, intervals = text_scores(preds, refs)
    if kind == "json":
        json_values, json_intervals = json_scores(preds, refs)
        values, intervals = {**json_values, **values}, {**json_intervals, **intervals}
    if any(calls_in(r) for r in refs):  # tool-calling rows, all or some: scored on the calls themselves
        tool_values, tool_intervals = tool_scores(preds, refs)
        values, intervals = {**tool_values, **values}, {**tool_intervals, **intervals}
    return values, intervals


def answer_budget(tokenizer, refs: list[str], cfg: EvalConfig) -> int:
    """Enough new tokens for the longest reference plus a margin, so neither model is cut short."""
    if cfg.max_new_tokens:
        return cfg.max_new_tokens
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in refs)
    return min(256, longest + 16)


def compare(model, tokenizer, examples: list[Example], labels: list[str] | None, cfg: EvalConfig,
            bf16: bool = False, base_model=None, voice: Callable[[list[str]], list[float]] | None = None,
            base_answers=None, router=None) -> Comparison:
    """Generate with the adapter off (base) and on (tuned) for the same prompts and score both.

    After full fine-tuning there is no adapter to switch off, so the untouched base comes as `base_model`.
    `voice(texts)` gives each text's probability of being in the house voice (--voice's classifier).
    `base_answers` (answer_cache.BaseAnswers) reuses the base's answers from an earlier evaluation.
    `router` (models.router.Router): the rows it sends to the base get the base's answer as the tuned one, as
    `predict` and the server answer them; each such row is marked `routed`.
    """
    examples = examples[: cfg.max_rows] if cfg.max_rows else examples
    prompts = [ex.prompt for ex in examples]
    refs = [ex.target for ex in examples]
    budget = answer_budget(tokenizer, refs, cfg)
    start = time.perf_counter()
    if base_model is not None:
        base_out = generate(base_model, tokenizer, prompts, budget, cfg.eval_batch_size, bf16, base_answers)
    else:
        with model.disable_adapter():
            base_out = generate(model, tokenizer, prompts, budget, cfg.eval_batch_size, bf16, base_answers)
    to_base = router.to_base(prompts) if router else [False] * len(prompts)
    asked = [p for p, r in zip(prompts, to_base) if not r]
    adapter_out = iter(generate(model, tokenizer, asked, budget, cfg.eval_batch_size, bf16) if asked else [])
    tuned_out = [b if r else next(adapter_out) for b, r in zip(base_out, to_base)]
    seconds = time.perf_counter() - start
    rows = [{"line": ex.line, "prompt": ex.prompt[-1]["content"], "expected": ref, "base": b, "tuned": t,
             "extra": ex.extra, **({"passages": found} if (found := passages_in(ex.prompt)) else {}),
             **({"routed": True} if r else {})}
            for ex, ref, b, t, r in zip(examples, refs, base_out, tuned_out, to_base)]
    (base, base_ci), (tuned, tuned_ci) = score(base_out, refs, labels), score(tuned_out, refs, labels)
    kind = task_kind(refs, labels)
    primary = PRIMARY[kind]
    # Rows that name their key fact or what the brief asks for are judged on that first: whether the answer
    # states it counts, not how closely its wording follows one reference.
    extras = [ex.extra for ex in examples]
    for out, values, intervals in ((base_out, base, base_ci), (tuned_out, tuned, tuned_ci)):
        checked, checked_ci = rubric_scores(out, extras)
        if voice is not None:
            voiced, voiced_ci = mean_scores({"voice": [100.0 * p for p in voice(out)]})
            checked, checked_ci = {**voiced, **checked}, {**voiced_ci, **checked_ci}
        values.update(checked)
        intervals.update(checked_ci)
    primary = next((m for m in ("fact_recall", "final_answer", "voice", "mentions") if m in tuned), primary)
    return Comparison(primary, base, tuned, rows, budget, seconds, base_ci, tuned_ci, kind,
                      routed=sum(to_base) if router else None)


def tfidf_baseline(train: list[Example], texts: list[str]) -> list[str]:
    """TF-IDF + logistic regression fitted on the same training rows: the bar a neural classifier must clear."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(vectoriser.fit_transform([ex.text for ex in train]), [ex.label for ex in train])
    return list(model.predict(vectoriser.transform(texts)))


def embedding_baseline(encoder_path: str, train: list[Example], texts: list[str], bf16: bool = False) -> list[str]:
    """Logistic regression on the untuned encoder's mean-pooled, normalised sentence embeddings.

    No fine-tuning at all: the bar a tuned encoder must clear, and on few examples per class a high one
    (all-MiniLM-L6-v2 was trained for exactly these embeddings).
    """
    from sklearn.linear_model import LogisticRegression

    embed = text_embedder(encoder_path, bf16)
    model = LogisticRegression(C=PROBE_C, max_iter=2000)
    model.fit(embed([ex.text for ex in train]).numpy(), [ex.label for ex in train])
    return list(model.predict(embed(texts).numpy()))


def compare_classifier(model, tokenizer, examples: list[Example], train: list[Example], labels: list[str],
                       cfg: EvalConfig, bf16: bool = False, encoder_path: str | None = None) -> Comparison:
    """The tuned classifier against the stronger of two simple baselines on the same rows.

    An encoder with a fresh head predicts at chance before training, so the honest "before" for a
    classifier is what a user could fit in seconds: TF-IDF + logistic regression, and logistic
    regression on the untuned encoder's embeddings (`encoder_path`). The stronger one on these rows
    is the bar the table, the verdict and the gate use; both are reported.
    """
    examples = examples[: cfg.max_rows] if cfg.max_rows else examples
    texts, refs = [ex.text for ex in examples], [ex.target for ex in examples]
    start = time.perf_counter()
    candidates = {"TF-IDF + logistic regression": tfidf_baseline(train, texts)}
    if encoder_path:
        candidates["frozen embeddings + logistic regression"] = embedding_baseline(encoder_path, train, texts, bf16)
    tuned_out = [labels[i] for i in predict_labels(model, tokenizer, texts, cfg.eval_batch_size, bf16)]
    seconds = time.perf_counter() - start
    scored = {name: label_scores(out, refs, labels) for name, out in candidates.items()}
    base_name = max(scored, key=lambda name: scored[name][0]["accuracy"])
    base_out, (base, base_ci) = candidates[base_name], scored[base_name]
    rows = [{"line": ex.line, "prompt": text, "expected": ref, "base": b, "tuned": t, "extra": ex.extra}
            for ex, text, ref, b, t in zip(examples, texts, refs, base_out, tuned_out)]
    tuned, tuned_ci = label_scores(tuned_out, refs, labels)
    baselines = {name: {"accuracy": values["accuracy"], "macro_f1": values["macro_f1"], "ci": ci["accuracy"]}
                 for name, (values, ci) in scored.items()}
    return Comparison("accuracy", base, tuned, rows, 0, seconds, base_ci, tuned_ci, "label", base_name=base_name,
                      baselines=baselines)


def print_comparison(c: Comparison, console: Console, samples: int = 3, title: str = "held-out") -> None:
    how = "predicted" if c.base_name != "base" else "generated, greedy"
    table = Table(title=f"{c.base_name[0].upper() + c.base_name[1:]} vs tuned on {len(c.rows)} {title} rows ({how}; "
                        "95% bootstrap intervals)")
    table.add_column("metric")
    table.add_column(c.base_name if len(c.base_name) < 12 else "baseline", justify="right")
    table.add_column("tuned", justify="right")
    table.add_column("change", justify="right")
    for name, base_value in c.base.items():
        if not isinstance(base_value, (int, float)):
            continue
        delta = c.tuned[name] - base_value
        change = f"[green]{delta:+.1f}[/green]" if delta > 0 else f"[red]{delta:+.1f}[/red]" if delta < 0 else "0.0"
        label = f"{name} (primary)" if name == c.primary else name
        table.add_row(label, with_ci(base_value, c.base_ci.get(name)), with_ci(c.tuned[name], c.tuned_ci.get(name)),
                      change)
    console.print(table)
    for name, b in c.baselines.items():
        console.print(f"baseline {name}: accuracy {with_ci(b['accuracy'], b['ci'])}"
                      + (" (the bar above)" if name == c.base_name else ""))
    if c.parent:  # retraining: the version it started from, on the same rows
        p, before = c.primary, c.parent["values"][c.primary]
        console.print(f"parent {c.parent['name']}: {p} {with_ci(before, c.parent['ci'].get(p))} → tuned "
                      f"{with_ci(c.tuned[p], c.tuned_ci.get(p))} ({c.tuned[p] - before:+.1f})")
    if c.routed:
        console.print(f"router: {c.routed} of {len(c.rows)} {title} rows looked unlike the training inputs and were "
                      "answered by the untouched base, as predict and the server would answer them")
    if c.task == "json":
        worst = ", ".join(f"{k} {v:.0f}%" for k, v in list(c.tuned["field_accuracy"].items())[:3])
        console.print(f"fields most often wrong (tuned, share correct): {worst}")
    for row in c.rows[:samples]:
        console.print(f"[bold]prompt[/bold] (line {row['line']}): {_short(row['prompt'])}")
        console.print(f"  [dim]expected[/dim] {_short(row['expected'])}")
        console.print(f"  [red]base    [/red] {_short(row['base'])}")
        console.print(f"  [green]tuned   [/green] {_short(row['tuned'])}")


def with_ci(value: float, interval) -> str:
    return f"{value:.1f} [{interval[0]:.1f}–{interval[1]:.1f}]" if interval else f"{value:.1f}"


def _short(text: str, width: int = 220) -> str:
    text = " ".join(text.split())
    return escape(text if len(text) <= width else text[: width - 1] + "…")
