"""A LoRA run's router: requests unlike the task's inputs are answered by the untouched base, the adapter switched off.

Why: no change to training kept 90% of the base's right general answers. With the guard's replay, the runs of
`bench/quality.py` kept 72-87% (BENCHMARKS.md), and the 135M base itself keeps 79% when only a neutral system
prompt is added: its greedy answers flip under any change, and an adapter that learned the task changes them.
A LoRA run has the base in memory anyway, so a request that is not the task can simply not go through the
adapter. On the five real generation tasks of the benchmark this sent every one of the 129 general check
questions to the base on four tasks and 126 on the fifth, and 0-4 of 60-100 held-out task rows
(`bench/router.py`, BENCHMARKS.md, 2026-12-05).

How: logistic regression on the bundled all-MiniLM-L6-v2's mean-pooled embeddings (`retrieval.encoder_embed`),
the user turns of the run's training rows against the guard's general requests (`evaluation/general/replay.txt`).
The general check's questions (`check.jsonl`) are kept apart from both. A run checks its router on its own
validation rows and keeps it only if at most MOST_VALID_TO_BASE of them would go to the base: a task whose inputs
look like general requests (a tutor on general knowledge) keeps every request on the adapter.

Merged or GGUF exports have no adapter to switch off, so they answer everything with it (`export`, the model card).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tailored.atomic import atomic_path
from tailored.errors import TailoredError
from tailored.models.retrieval import ENCODER, Embed, encoder_embed

ROUTER_FILE = "router.safetensors"
MOST_VALID_TO_BASE = 0.05  # the share of the run's validation inputs its router may send to the base and be kept
C = 10.0  # inverse regularisation: the two sides separate widely, so a light penalty suffices


def user_text(conversation: list[dict]) -> str:
    """What a request is routed on: its user turns, as written (passages from --retrieve sit in the system turn)."""
    return "\n".join(m.get("content") or "" for m in conversation if m.get("role") == "user")


class Router:
    """Which conversations go to the base: a linear decision on their embedding."""

    def __init__(self, weight: np.ndarray, bias: float, embed: Embed | None = None):
        self.weight, self.bias = np.asarray(weight, dtype=np.float32), float(bias)
        self._embed = embed

    @classmethod
    def fit(cls, task_texts: list[str], general_texts: list[str], embed: Embed | None = None) -> "Router":
        """Task inputs (1) against general requests (0), the two sides weighted equally whatever their sizes."""
        from sklearn.linear_model import LogisticRegression

        if not task_texts or not general_texts:
            raise ValueError("a router needs task inputs and general requests")
        embed = embed or encoder_embed()
        x = np.vstack([embed(task_texts), embed(general_texts)])
        y = np.r_[np.ones(len(task_texts)), np.zeros(len(general_texts))]
        clf = LogisticRegression(C=C, max_iter=2000, class_weight="balanced").fit(x, y)
        return cls(clf.coef_[0], clf.intercept_[0], embed)

    def task_scores(self, conversations: list[list[dict]]) -> np.ndarray:
        """The decision's margin for each conversation: above 0 the adapter answers, below it the base."""
        if not conversations:
            return np.zeros(0, dtype=np.float32)
        self._embed = self._embed or encoder_embed()
        return self._embed([user_text(c) for c in conversations]) @ self.weight + self.bias

    def to_base(self, conversations: list[list[dict]]) -> list[bool]:
        return [bool(s < 0) for s in self.task_scores(conversations)]

    def save(self, run_dir: Path) -> None:
        from safetensors.numpy import save_file

        with atomic_path(Path(run_dir) / ROUTER_FILE) as tmp:
            save_file({"weight": self.weight, "bias": np.array([self.bias], dtype=np.float32)}, str(tmp),
                      metadata={"encoder": ENCODER})

    @classmethod
    def open(cls, run_dir: Path, embed: Embed | None = None) -> "Router | None":
        """The run's router, or None for a run without one (trained with --route off, or before routers)."""
        from safetensors import safe_open

        path = Path(run_dir) / ROUTER_FILE
        if not path.exists():
            return None
        with safe_open(str(path), framework="numpy") as f:
            encoder = (f.metadata() or {}).get("encoder")
            if encoder != ENCODER:
                raise TailoredError(f"{path}: a router on '{encoder}' embeddings, which this version does not read — "
                                    "retrain the run, or delete the file to answer every request with the adapter")
            return cls(f.get_tensor("weight"), float(f.get_tensor("bias")[0]), embed)


def fit_checked(train: list[list[dict]], valid: list[list[dict]], general_requests: list[str],
                embed: Embed | None = None) -> tuple[Router | None, dict]:
    """A router for a run with these training and validation conversations, and what its check found: None when
    more than MOST_VALID_TO_BASE of the validation inputs would go to the base (or there are none to check on)."""
    router = Router.fit([user_text(c) for c in train], general_requests, embed)
    sent = sum(router.to_base(valid))
    summary = {"valid_to_base": sent, "valid": len(valid), "kept": bool(valid) and sent <= MOST_VALID_TO_BASE * len(valid)}
    return (router if summary["kept"] else None), summary


def describe(summary: dict) -> str:
    if summary["kept"]:
        return (f"router: requests unlike your training inputs will be answered by the untouched base "
                f"({summary['valid_to_base']} of your {summary['valid']} validation inputs would be; --no-route "
                "sends every request through the adapter)")
    if not summary["valid"]:
        return "router: off (no validation rows to check it on)"
    return (f"router: off — it would send {summary['valid_to_base']} of your {summary['valid']} validation inputs to "
            f"the base (more than {MOST_VALID_TO_BASE:.0%}): your inputs look like general requests")

