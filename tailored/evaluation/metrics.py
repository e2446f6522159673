"""Scores for generated text against references. Each takes lists and returns a 0–100 figure."""

from __future__ import annotations

import re
import string
from collections import Counter

_PUNCT = re.compile(f"[{re.escape(string.punctuation)}]")


def normalise(text: str) -> str:
    return " ".join(text.lower().split())


def _tokens(text: str) -> list[str]:
    return _PUNCT.sub(" ", text.lower()).split()


def exact_match(preds: list[str], refs: list[str]) -> float:
    return 100.0 * sum(normalise(p) == normalise(r) for p, r in zip(preds, refs)) / max(len(refs), 1)


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


def token_f1(preds: list[str], refs: list[str]) -> float:
    return 100.0 * sum(token_f1_one(p, r) for p, r in zip(preds, refs)) / max(len(refs), 1)


def rouge_l(preds: list[str], refs: list[str]) -> float:
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=True)
    return 100.0 * sum(scorer.score(r, p)["rougeL"].fmeasure for p, r in zip(preds, refs)) / max(len(refs), 1)


def match_label(pred: str, labels: list[str]) -> str:
    """The label a free-text reply names: an exact match first, else the first label mentioned."""
    text = normalise(pred).strip(" .\"'")
    by_lower = {label.lower(): label for label in labels}
    if text in by_lower:
        return by_lower[text]
    hits = [(m.start(), label) for label in labels if (m := re.search(rf"\b{re.escape(label.lower())}\b", text))]
    return min(hits)[1] if hits else "(none)"


def label_scores(preds: list[str], refs: list[str], labels: list[str]) -> dict:
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    predicted = [match_label(p, labels) for p in preds]
    return {
        "accuracy": 100.0 * accuracy_score(refs, predicted),
        "macro_f1": 100.0 * f1_score(refs, predicted, labels=labels, average="macro", zero_division=0),
        "confusion": {"labels": labels, "matrix": confusion_matrix(refs, predicted, labels=labels).tolist()},
    }


def text_scores(preds: list[str], refs: list[str]) -> dict:
    return {"exact_match": exact_match(preds, refs), "token_f1": token_f1(preds, refs),
            "rouge_l": rouge_l(preds, refs)}


def primary_metric(labels: list[str] | None) -> str:
    return "accuracy" if labels else "rouge_l"
