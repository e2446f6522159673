"""Scores for generated text against references, on a 0–100 scale, with bootstrap intervals.

Most metrics are means of per-row scores; the F1s are recomputed from resampled rows, so every
figure gets a 95% interval that shows whether a gain on a few dozen rows is more than noise.
"""

from __future__ import annotations

import json
import re
import string
from collections import Counter
from fractions import Fraction
from typing import Callable

import numpy as np

from tailored.data.tools import calls_in

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _tokens(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.lower()).split()


def _mean(values: list[float]) -> float:
    return sum(values) / max(len(values), 1)


def exact_match_rows(preds: list[str], refs: list[str]) -> list[float]:
    return [100.0 * (normalise(p) == normalise(r)) for p, r in zip(preds, refs)]


def token_f1_one(pred: str, ref: str) -> float:
    """SQuAD-style F1 over lower-cased, punctuation-free word tokens."""
    p, r = _tokens(pred), _tokens(ref)
    if not p and not r:
        return 1.0
    common = sum((Counter(p) & Counter(r)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(p), common / len(r)
    return 2 * precision * recall / (precision + recall)


def token_f1_rows(preds: list[str], refs: list[str]) -> list[float]:
    return [100.0 * token_f1_one(p, r) for p, r in zip(preds, refs)]


def rouge_l_rows(preds: list[str], refs: list[str]) -> list[float]:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return [100.0 * scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)]


def exact_match(preds: list[str], refs: list[str]) -> float:
    return _mean(exact_match_rows(preds, refs))


def token_f1(preds: list[str], refs: list[str]) -> float:
    return _mean(token_f1_rows(preds, refs))


def rouge_l(preds: list[str], refs: list[str]) -> float:
    return _mean(rouge_l_rows(preds, refs))


def match_label(pred: str, labels: list[str]) -> str:
    """The label a free-text reply names: an exact match first, else the first label mentioned."""
    text = normalise(pred).strip(" .\"'")
    by_lower = {label.lower(): label for label in labels}
    if text in by_lower:
        return by_lower[text]
    hits = [(m.start(), label) for label in labels if (m := re.search(rf"\b{re.escape(label.lower())}\b", text))]
    return min(hits)[1] if hits else "(none)"


def label_scores(preds: list[str], refs: list[str], labels: list[str], seed: int = 0) -> tuple[dict, dict]:
    from sklearn.metrics import confusion_matrix, f1_score

    predicted = np.asarray([match_label(p, labels) for p in preds], dtype=object)
    truth = np.asarray(refs, dtype=object)

    def macro(idx: np.ndarray) -> float:
        return 100.0 * f1_score(truth[idx], predicted[idx], labels=labels, average="macro", zero_division=0)

    values, intervals = mean_scores({"accuracy": [100.0 * (p == t) for p, t in zip(predicted, truth)]}, seed)
    every = np.arange(len(refs))
    values["macro_f1"], intervals["macro_f1"] = macro(every), bootstrap(macro, len(refs), seed)
    values["confusion"] = {"labels": labels, "matrix": confusion_matrix(truth, predicted, labels=labels).tolist()}
    return values, intervals


def bootstrap(stat: Callable[[np.ndarray], float], n_rows: int, seed: int = 0, resamples: int = 1000,
              ) -> tuple[float, float]:
    """95% percentile interval of `stat(row_indices)` over `resamples` resamplings of the rows."""
    if n_rows == 0:
        return (0.0, 0.0)
    rng = np.random.default_rng(seed)
    values = [stat(rng.integers(0, n_rows, n_rows)) for _ in range(resamples)]
    low, high = np.percentile(values, [2.5, 97.5])
    return (float(low), float(high))


def mean_scores(per_row: dict[str, list[float]], seed: int = 0) -> tuple[dict, dict]:
    """Each metric's mean over rows, and its 95% bootstrap interval."""
    arrays = {k: np.asarray(v, dtype=float) for k, v in per_row.items()}
    values = {k: float(a.mean()) if len(a) else 0.0 for k, a in arrays.items()}
    intervals = {k: bootstrap(lambda idx, a=a: float(a[idx].mean()), len(a), seed) for k, a in arrays.items()}
    return values, intervals


def text_scores(preds: list[str], refs: list[str], seed: int = 0) -> tuple[dict, dict]:
    from sacrebleu.metrics import CHRF

    chrf = CHRF()
    per_row = {
        "exact_match": exact_match_rows(preds, refs),
        "token_f1": token_f1_rows(preds, refs),
        "rouge_l": rouge_l_rows(preds, refs),
        "chrf": [chrf.sentence_score(p, [r]).score for p, r in zip(preds, refs)],
    }
    return mean_scores(per_row, seed)


def _field_value(value) -> str:
    if isinstance(value, str):
        return normalise(value)
    if isinstance(value, list):  # a list is compared as a set: order and repeats do not count
        return json.dumps(sorted({_field_value(v) for v in value}))
    return json.dumps(value, sort_keys=True)


def leaves(obj: dict, prefix: str = "") -> dict:
    """A nested object as {leaf path: value}: {"slots": {"time": "7pm"}} → {"slots.time": "7pm"}.

    Each leaf is scored on its own, so one wrong slot does not hide behind its parent. Lists stay
    one leaf, compared as sets; an empty object is a leaf too.
    """
    out = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(leaves(value, path + "."))
        else:
            out[path] = value
    return out


def parse_object(text: str) -> dict | None:
    """The JSON object in a reply; a ```json fence around it is tolerated, nothing else is."""
    text = text.strip()
    fenced = re.fullmatch(r"```(?:json)?\s*(.*?)\s*```", text, flags=re.S)
    try:
        value = json.loads(fenced.group(1) if fenced else text)
    except (json.JSONDecodeError, RecursionError):
        return None
    return value if isinstance(value, dict) else None


def json_scores(preds: list[str], refs: list[str], seed: int = 0) -> tuple[dict, dict]:
    """Extraction: replies that parse, that have the target's fields, and field-level exact match and F1.

    Fields are leaf paths (`slots.movie_type`; see `leaves`). A field counts as correct when the reply
    has it with an equal value (strings compared ignoring case and spacing, lists as sets). Micro F1
    pools fields over rows; macro F1 averages per field.
    """
    targets = [leaves(parse_object(r) or {}) for r in refs]
    outputs = [None if (o := parse_object(p)) is None else leaves(o) for p in preds]
    fields = sorted({k for t in targets for k in t})
    n, f = len(refs), len(fields)
    tp, fp, fn = np.zeros((n, f)), np.zeros((n, f)), np.zeros((n, f))
    for i, (out, target) in enumerate(zip(outputs, targets)):
        got = out or {}
        for j, name in enumerate(fields):
            correct = name in target and name in got and _field_value(got[name]) == _field_value(target[name])
            tp[i, j] = correct
            fp[i, j] = name in got and not correct
            fn[i, j] = name in target and not correct
    # keys the target does not have at all are false positives too
    extra_fp = np.array([len(set(o or {}) - set(fields)) for o in outputs], dtype=float)

    def micro(idx: np.ndarray) -> float:
        t, p_, n_ = tp[idx].sum(), fp[idx].sum() + extra_fp[idx].sum(), fn[idx].sum()
        return 100.0 * 2 * t / (2 * t + p_ + n_) if (t + p_ + n_) else 100.0

    def macro(idx: np.ndarray) -> float:
        t, p_, n_ = tp[idx].sum(0), fp[idx].sum(0), fn[idx].sum(0)
        denom = 2 * t + p_ + n_
        per_field = np.where(denom > 0, 2 * t / np.maximum(denom, 1), 1.0)
        return 100.0 * float(per_field.mean()) if f else 100.0

    per_row = {
        "json_valid": [100.0 * (o is not None) for o in outputs],
        "keys_match": [100.0 * (o is not None and set(o) == set(t)) for o, t in zip(outputs, targets)],
    }
    values, intervals = mean_scores(per_row, seed)
    every = np.arange(n)
    values["field_f1"], intervals["field_f1"] = micro(every), bootstrap(micro, n, seed)
    values["field_macro_f1"], intervals["field_macro_f1"] = macro(every), bootstrap(macro, n, seed)
    has = np.array([[name in t for name in fields] for t in targets], dtype=float)
    accuracy = {name: 100.0 * tp[:, j].sum() / max(has[:, j].sum(), 1) for j, name in enumerate(fields)}
    values["field_accuracy"] = dict(sorted(accuracy.items(), key=lambda kv: kv[1]))  # most often wrong first
    return values, intervals


def tool_scores(preds: list[str], refs: list[str], seed: int = 0) -> tuple[dict, dict]:
    """On rows whose expected reply calls tools: were the right functions called, with valid JSON
    arguments, and how well do the arguments match (F1 over (function, argument path, value))?"""
    per_row: dict[str, list[float]] = {"tool_name_accuracy": [], "tool_arguments_valid": [], "argument_f1": []}
    for pred, ref in zip(preds, refs):
        want = calls_in(ref)
        if not want:
            continue
        got = calls_in(pred) or []
        per_row["tool_name_accuracy"].append(100.0 * (sorted(str(c["name"]) for c in got)
                                                      == sorted(str(c["name"]) for c in want)))
        per_row["tool_arguments_valid"].append(100.0 * bool(got) * all(isinstance(c["arguments"], dict) for c in got))
        triples = lambda calls: Counter((c["name"], k, v) for c in calls if isinstance(c["arguments"], dict)  # noqa: E731
                                        for k, v in leaves(c["arguments"]).items())
        a, b = triples(got), triples(want)
        hits = sum((a & b).values())
        per_row["argument_f1"].append(100.0 * 2 * hits / (sum(a.values()) + sum(b.values())) if a or b else
                                      100.0 * (len(got) == len(want)))
    return mean_scores(per_row, seed)


def fact_alternatives(fact) -> list[str]:
    """A row's `fact`: one string, or a list of acceptable ways to write it ("14 hours", "fourteen hours")."""
    return [str(f) for f in fact] if isinstance(fact, (list, tuple)) else [str(fact)]


# Numbers keep their sign, decimals and fractions ("-0.5", "3/13"); words keep combining marks ("x̄").
_FACT_TOKEN = re.compile(r"-?\d+(?:[./]\d+)*|(?:[^\W\d_][\u0300-\u036f]*)+")


def _fact_tokens(text: str) -> list[str]:
    return _FACT_TOKEN.findall(text.lower())


def contains_fact(pred: str, fact) -> bool:
    """Whether the answer states the fact: its words and numbers, in order and adjacent, ignoring case and
    punctuation ("$9" is in "costs $9 a month", not in "$99"; "-2" is not "2")."""
    words = f" {' '.join(_fact_tokens(pred))} "
    return any(f" {' '.join(_fact_tokens(alt))} " in words for alt in fact_alternatives(fact) if _fact_tokens(alt))


def fact_scores(preds: list[str], facts: list, seed: int = 0) -> tuple[dict, dict]:
    """fact_recall: the share of answers that contain their row's key fact, with its bootstrap interval."""
    return mean_scores({"fact_recall": [100.0 * contains_fact(p, f) for p, f in zip(preds, facts)]}, seed)


# Checks a held-out row may carry beside its reference, and the metric each gives:
#   fact → fact_recall: the words a right answer must contain (one string, or a list of ways to write it);
#   answer → final_answer: a number (2, -0.5, 3/13) the reply must end on: the first number after "Final
#            answer" when the reply says that, else its last number, so repeating a question's numbers
#            along the way earns nothing;
#   mentions → mentions: what the reply must mention (a brief's details, a course's terms), each a string or
#              a list of ways to write it; the score is the share mentioned;
#   avoid → avoids: words the reply must not use (a house style's banned words, terms above a student's level).
# A metric is scored on the rows that carry its field (null or absent: not judged), when any row does.
RUBRIC = {"fact": "fact_recall", "answer": "final_answer", "mentions": "mentions", "avoid": "avoids"}
_NUMBER = re.compile(r"-?\d+(?:\.\d+)?(?:/\d+)?")
_FINAL = re.compile(r"final answer", re.I)


def _as_number(text: str) -> Fraction | None:
    try:
        return Fraction(text.replace(" ", ""))
    except (ValueError, ZeroDivisionError):
        return None


def final_answer(pred: str) -> Fraction | None:
    """The number a reply ends on: the first after its last "Final answer", else its last number."""
    marker = list(_FINAL.finditer(pred))
    numbers = _NUMBER.findall(pred[marker[-1].end():]) if marker else []
    numbers = numbers[:1] if numbers else _NUMBER.findall(pred)[-1:]
    return _as_number(numbers[0]) if numbers else None


def _items(value) -> list:
    """A list field as a list; one string (a CSV cell, say) is one item."""
    return list(value) if isinstance(value, (list, tuple)) else [value] if value not in (None, "") else []


def _rubric_row(field: str, pred: str, value) -> float:
    if field == "fact":
        return 100.0 * contains_fact(pred, value)
    if field == "answer":
        want = _as_number(str(value))
        return 100.0 * (want is not None and final_answer(pred) == want)
    if field == "mentions":
        return 100.0 * _mean([contains_fact(pred, m) for m in _items(value)]) if _items(value) else 100.0
    return 100.0 * (not any(contains_fact(pred, w) for w in _items(value)))


def rubric_scores(preds: list[str], extras: list[dict], seed: int = 0) -> tuple[dict, dict]:
    """The RUBRIC metrics of the fields the rows carry, each a mean over those rows with its interval."""
    per_row = {metric: [_rubric_row(field, p, e[field]) for p, e in zip(preds, extras) if e.get(field) is not None]
               for field, metric in RUBRIC.items()}
    return mean_scores({metric: rows for metric, rows in per_row.items() if rows}, seed)


def task_kind(refs: list[str], labels: list[str] | None) -> str:
    if labels:
        return "label"
    if refs and all(calls_in(r) for r in refs):
        return "tool"
    if refs and all(parse_object(r) is not None for r in refs):
        return "json"
    return "text"


PRIMARY = {"label": "accuracy", "json": "field_f1", "text": "rouge_l", "tool": "argument_f1"}
