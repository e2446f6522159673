"""Drift: is a new data file still like the data a version was trained on?

Each check compares the new rows with the training rows and says whether it moved enough to matter:
- labels the version never saw (it cannot predict them), or a label whose share moved 10+ points;
- input length: the median moved by half again or more;
- vocabulary: the share of new input words unknown to training, against the same share for training
  rows held back from their own vocabulary (what fresh rows from the same source look like);
- near-duplicates: new inputs that almost repeat a training input (TF-IDF cosine >= 0.9) add little.
The version's own score on the new rows (when they carry answers) needs the model, so the caller
adds it (`recommend(..., score_drop=...)`).
"""

from __future__ import annotations

import random
import re
import statistics
from collections import Counter

from tailored.data.formats import Example

SHARE_MOVED = 10.0  # points
LENGTH_RATIO = 1.5
NEAR_DUPLICATE = 0.9
_WORD = re.compile(r"[a-z0-9]+")


def _input(ex: Example) -> str:
    return ex.text if ex.label is not None else "\n".join(m["content"] for m in ex.prompt if m["role"] != "system")


def _words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def _unknown_share(rows: list[str], vocabulary: set[str]) -> float:
    words = [w for text in rows for w in _words(text)]
    return 100 * sum(w not in vocabulary for w in words) / max(1, len(words))


def label_drift(train: list[Example], new: list[Example]) -> dict:
    old, now = Counter(ex.label for ex in train), Counter(ex.label for ex in new)
    unseen = sorted(label for label in now if label not in old)
    moved = {}
    for label in sorted(set(old) | set(now)):
        a, b = 100 * old[label] / max(1, len(train)), 100 * now[label] / max(1, len(new))
        if abs(b - a) >= SHARE_MOVED:
            moved[label] = [round(a, 1), round(b, 1)]
    return {"unseen": unseen, "unseen_rows": sum(now[label] for label in unseen), "moved": moved}


def length_drift(train: list[Example], new: list[Example]) -> dict:
    old = statistics.median(len(_words(_input(ex))) for ex in train)
    now = statistics.median(len(_words(_input(ex))) for ex in new)
    ratio = max(now, 1) / max(old, 1)
    return {"median_words_train": old, "median_words_new": now, "ratio": round(ratio, 2),
            "shifted": ratio >= LENGTH_RATIO or ratio <= 1 / LENGTH_RATIO}


def vocabulary_drift(train: list[Example], new: list[Example], seed: int = 0) -> dict:
    texts = [_input(ex) for ex in train]
    vocabulary = {w for text in texts for w in _words(text)}
    rng = random.Random(seed)
    order = rng.sample(range(len(texts)), len(texts))
    half, rest = [texts[i] for i in order[: len(texts) // 2]], [texts[i] for i in order[len(texts) // 2:]]
    reference = _unknown_share(rest, {w for text in half for w in _words(text)})
    share = _unknown_share([_input(ex) for ex in new], vocabulary)
    return {"unknown_words_new": round(share, 1), "unknown_words_reference": round(reference, 1),
            "shifted": share > max(2 * reference, reference + 10)}


def near_duplicates(train: list[Example], new: list[Example]) -> dict:
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([_input(ex) for ex in train + new])
    similar = linear_kernel(vectoriser.transform([_input(ex) for ex in new]),
                            vectoriser.transform([_input(ex) for ex in train])).max(1)
    share = 100 * float((similar >= NEAR_DUPLICATE).mean())
    return {"share": round(share, 1), "rows": int((similar >= NEAR_DUPLICATE).sum())}


def drift(train: list[Example], new: list[Example], labelled: bool) -> dict:
    report = {"train_rows": len(train), "new_rows": len(new), "length": length_drift(train, new),
              "vocabulary": vocabulary_drift(train, new), "near_duplicates": near_duplicates(train, new)}
    if labelled:
        report["labels"] = label_drift(train, new)
    return report


def recommend(report: dict, score_drop: str | None = None) -> tuple[str, str]:
    """(keep | retrain | retrain with review, the reason in one line)."""
    labels = report.get("labels") or {}
    if labels.get("unseen"):
        return "retrain with review", (f"{labels['unseen_rows']} new rows carry labels the version never saw "
                                       f"({', '.join(labels['unseen'][:5])}); check they are meant to be new classes")
    if score_drop:
        return "retrain with review", score_drop
    reasons = []
    if labels.get("moved"):
        reasons.append("label shares moved: " + ", ".join(f"{k} {a}% → {b}%" for k, (a, b) in
                                                          list(labels["moved"].items())[:4]))
    if report["length"]["shifted"]:
        reasons.append(f"inputs are {report['length']['ratio']}× as long (median words)")
    if report["vocabulary"]["shifted"]:
        v = report["vocabulary"]
        reasons.append(f"{v['unknown_words_new']}% of new words are unknown to training (fresh rows of the "
                       f"training data: {v['unknown_words_reference']}%)")
    if reasons:
        return "retrain", "; ".join(reasons)
    dup = report["near_duplicates"]["share"]
    return "keep", (f"the new rows look like the training data (no label, length or vocabulary shift"
                    f"{f'; {dup}% nearly repeat training inputs' if dup else ''})")
