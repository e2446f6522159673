"""Base vs tuned on the same held-out rows, scored on generated text."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from tailored.config import EvalConfig
from tailored.data.formats import Example
from tailored.evaluation.generate import generate
from tailored.evaluation.metrics import PRIMARY, json_scores, label_scores, task_kind, text_scores
from tailored.models.scoring import predict_labels


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
    base_name: str = "base"  # what "base" is: the untuned model, or a classifier's TF-IDF baseline
    review: dict = field(default_factory=dict)  # slices, memorisation, forgetting, loss, gate (evidence.gather)

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
    return values, intervals


def answer_budget(tokenizer, refs: list[str], cfg: EvalConfig) -> int:
    """Enough new tokens for the longest reference plus a margin, so neither model is cut short."""
    if cfg.max_new_tokens:
        return cfg.max_new_tokens
    longest = max(len(tokenizer(r, add_special_tokens=False)["input_ids"]) for r in refs)
    return min(256, longest + 16)


def compare(model, tokenizer, examples: list[Example], labels: list[str] | None, cfg: EvalConfig,
            bf16: bool = False, base_model=None) -> Comparison:
    """Generate with the adapter off (base) and on (tuned) for the same prompts and score both.

    After full fine-tuning there is no adapter to switch off, so the untouched base comes as `base_model`.
    """
    examples = examples[: cfg.max_rows] if cfg.max_rows else examples
    prompts = [ex.prompt for ex in examples]
    refs = [ex.target for ex in examples]
    budget = answer_budget(tokenizer, refs, cfg)
    start = time.perf_counter()
    if base_model is not None:
        base_out = generate(base_model, tokenizer, prompts, budget, cfg.eval_batch_size, bf16)
    else:
        with model.disable_adapter():
            base_out = generate(model, tokenizer, prompts, budget, cfg.eval_batch_size, bf16)
    tuned_out = generate(model, tokenizer, prompts, budget, cfg.eval_batch_size, bf16)
    seconds = time.perf_counter() - start
    rows = [{"line": ex.line, "prompt": ex.prompt[-1]["content"], "expected": ref, "base": b, "tuned": t,
             "extra": ex.extra} for ex, ref, b, t in zip(examples, refs, base_out, tuned_out)]
    (base, base_ci), (tuned, tuned_ci) = score(base_out, refs, labels), score(tuned_out, refs, labels)
    kind = task_kind(refs, labels)
    return Comparison(PRIMARY[kind], base, tuned, rows, budget, seconds, base_ci, tuned_ci, kind)


def tfidf_baseline(train: list[Example], texts: list[str]) -> list[str]:
    """TF-IDF + logistic regression fitted on the same training rows: the bar a neural classifier must clear."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True)
    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(vectoriser.fit_transform([ex.text for ex in train]), [ex.label for ex in train])
    return list(model.predict(vectoriser.transform(texts)))


def compare_classifier(model, tokenizer, examples: list[Example], train: list[Example], labels: list[str],
                       cfg: EvalConfig, bf16: bool = False) -> Comparison:
    """The tuned classifier against a TF-IDF + logistic regression baseline on the same rows.

    An encoder with a fresh head predicts at chance before training, so the honest "before" for a
    classifier is the cheap baseline a user could fit in a second.
    """
    examples = examples[: cfg.max_rows] if cfg.max_rows else examples
    texts, refs = [ex.text for ex in examples], [ex.target for ex in examples]
    start = time.perf_counter()
    base_out = tfidf_baseline(train, texts)
    tuned_out = [labels[i] for i in predict_labels(model, tokenizer, texts, cfg.eval_batch_size, bf16)]
    seconds = time.perf_counter() - start
    rows = [{"line": ex.line, "prompt": text, "expected": ref, "base": b, "tuned": t, "extra": ex.extra}
            for ex, text, ref, b, t in zip(examples, texts, refs, base_out, tuned_out)]
    (base, base_ci), (tuned, tuned_ci) = label_scores(base_out, refs, labels), label_scores(tuned_out, refs, labels)
    return Comparison("accuracy", base, tuned, rows, 0, seconds, base_ci, tuned_ci, "label",
                      base_name="TF-IDF + logistic regression")


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
        table.add_row(label, _with_ci(base_value, c.base_ci.get(name)), _with_ci(c.tuned[name], c.tuned_ci.get(name)),
                      change)
    console.print(table)
    if c.task == "json":
        worst = ", ".join(f"{k} {v:.0f}%" for k, v in list(c.tuned["field_accuracy"].items())[:3])
        console.print(f"fields most often wrong (tuned, share correct): {worst}")
    for row in c.rows[:samples]:
        console.print(f"[bold]prompt[/bold] (line {row['line']}): {_short(row['prompt'])}")
        console.print(f"  [dim]expected[/dim] {_short(row['expected'])}")
        console.print(f"  [red]base    [/red] {_short(row['base'])}")
        console.print(f"  [green]tuned   [/green] {_short(row['tuned'])}")


def _with_ci(value: float, interval) -> str:
    return f"{value:.1f} [{interval[0]:.1f}–{interval[1]:.1f}]" if interval else f"{value:.1f}"


def _short(text: str, width: int = 220) -> str:
    text = " ".join(text.split())
    return escape(text if len(text) <= width else text[: width - 1] + "…")
