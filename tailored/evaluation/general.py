"""General ability, kept and measured: the base's own answers replayed in training, and a checked question set.

Two sets of general prompts, written for this project and kept apart item by item (tests/test_general.py
checks that no replayed request is a checked question reworded, names a checked answer, or takes on a
topic the check covers question by question):

- `general/check.jsonl`: 129 questions with short checkable answers (facts, arithmetic, simple
  instructions). `retention` reports the share of the questions the base answers correctly that the
  tuned model still answers correctly, with a 95% Wilson score interval.
- `general/replay.txt`: 171 open requests (explain, list, write, advise) and 122 short questions
  (facts, sums, small instructions: the kinds of answer a tuned model loses most). `replay_examples`
  answers them with the base model itself, greedily, and those conversations are mixed into training:
  the guard (with the user's own system prompt first where their rows share one, `guard.add_replay`).
  It needs no data from the user and no network, and costs one generation pass per base (cached by the
  base's file hash and the decode settings).
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from tailored import atomic
from tailored.data.encode import render_prompt, stop_token_ids
from tailored.data.formats import Example
from tailored.device import device_of
from tailored.evaluation.answer_cache import decode_scope
from tailored.evaluation.generate import ROWS, decode_answers, generate, generate_ids
from tailored.evaluation.metrics import parse_object
from tailored.models.bases import cache_dir

HERE = Path(__file__).parent / "general"
REPLAY_ANSWER_TOKENS = 160  # answers that do not finish within this are left out, never cut
CHECK_ANSWER_TOKENS = 48
NEUTRAL_SYSTEM = "You are a helpful assistant."  # a change of prompt that teaches nothing: the check's noise floor


@dataclass(frozen=True)
class Question:
    prompt: str
    accept: tuple[str, ...]  # any of these, as a whole word (case-insensitive unless `case`), is correct
    kind: str
    case: bool = False

    def correct(self, answer: str) -> bool:
        flags = 0 if self.case else re.IGNORECASE
        return any(re.search(_whole(a), answer, flags) for a in self.accept)


def _whole(accepted: str) -> str:
    """`accepted` as a whole word; a number also not as part of a larger one ("0" is not in "-18.0", "100" not
    in "1,100", "7" not in "-7" or "7.5"), since a weak base often writes a wrong number that contains the right one."""
    before = r"(?<![\w.,\-\u2212])" if accepted[:1].isdigit() else r"(?<!\w)"
    after = r"(?!\w|[.,]\d)" if accepted[-1:].isdigit() else r"(?!\w)"
    return before + re.escape(accepted) + after


def questions() -> list[Question]:
    rows = [json.loads(line) for line in (HERE / "check.jsonl").read_text(encoding="utf-8").splitlines() if line]
    return [Question(r["prompt"], tuple(r["accept"]), r["kind"], r.get("case", False)) for r in rows]


def replay_prompts() -> list[str]:
    return [line for line in (HERE / "replay.txt").read_text(encoding="utf-8").splitlines() if line.strip()]


def share_interval(k: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of k kept out of n, in percent. A bootstrap over the questions reads 61 of 61
    as [100, 100], as if no other outcome were possible; Wilson's reads it [94.1, 100]."""
    from scipy.stats import binomtest

    ci = binomtest(k, n).proportion_ci(0.95, method="wilson")
    return 100.0 * float(ci.low), 100.0 * float(ci.high)


def retention(base_answers: list[str], tuned_answers: list[str], items: list[Question] | None = None) -> dict:
    """How many of the base's correct answers the tuned model keeps, with a 95% interval, and what it lost."""
    items = items or questions()
    base_ok = np.array([q.correct(a) for q, a in zip(items, base_answers)])
    tuned_ok = np.array([q.correct(a) for q, a in zip(items, tuned_answers)])
    kept = tuned_ok[base_ok].astype(float)
    share = 100.0 * float(kept.mean()) if len(kept) else None
    interval = share_interval(int(kept.sum()), len(kept)) if len(kept) else None
    lost = [i for i in range(len(items)) if base_ok[i] and not tuned_ok[i]]
    return {"questions": len(items), "base_correct": int(base_ok.sum()), "tuned_correct": int(tuned_ok.sum()),
            "kept": int(kept.sum()), "kept_share": share, "kept_ci": interval,
            "examples": [{"prompt": items[i].prompt, "expected": " / ".join(items[i].accept),
                          "base": base_answers[i], "tuned": tuned_answers[i]} for i in lost[:5]]}


JSON_TASK = 0.8  # the share of training answers that are JSON objects for the task's form to be JSON


def task_form(base_answers: list[str], tuned_answers: list[str], train_targets: list[str]) -> dict | None:
    """General questions answered in the task's JSON form, by base and tuned; None when the task's answers are not
    JSON objects. Forgetting that a kept share hides: a model that answers "What is 6 times 7?" with
    `{"intents": [...]}` has learned that every request is the task's, whatever it still knows."""
    if not train_targets or sum(parse_object(t) is not None for t in train_targets) < JSON_TASK * len(train_targets):
        return None
    items = questions()
    tuned = [i for i, a in enumerate(tuned_answers) if parse_object(a) is not None]
    return {"form": "JSON object", "questions": len(tuned_answers),
            "base": sum(parse_object(a) is not None for a in base_answers), "tuned": len(tuned),
            "examples": [{"prompt": items[i].prompt, "tuned": tuned_answers[i]} for i in tuned[:3]]}


def answer_questions(model, tokenizer, bf16: bool, batch_size: int = ROWS, cache=None,
                     system: str | None = None, only: list[int] | None = None) -> list[str]:
    """The answers to every check question, or to those numbered in `only`, in that order."""
    items = questions()
    prompts = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": q.prompt}]
               for q in (items if only is None else [items[i] for i in only])]
    return generate(model, tokenizer, prompts, CHECK_ANSWER_TOKENS, batch_size, bf16, cache)


def base_right(base_answers: list[str]) -> list[int]:
    """The numbers of the questions the base answers correctly: the only ones a kept share counts."""
    return [i for i, (q, a) in enumerate(zip(questions(), base_answers)) if q.correct(a)]


def as_asked(base_answers: list[str], right: list[int], base_prompted: list[str], tuned_prompted: list[str],
             system: str, json_task: bool = False) -> dict:
    """Kept when the tuned model is asked as `predict`, `chat` and the server ask it: `system`, the run's own system
    prompt, first. The check itself asks with none, the switch the guard trains; a deployed run gets its prompt
    on every request that brings none of its own. `base_prompted` and `tuned_prompted` answer the `right` questions
    only (`base_right`, not empty), with `system` first; the base's are this mode's noise floor (the prompt alone, nothing learned).
    For a task whose answers are JSON (`json_task`), it counts the tuned answers in that form: a prompt that
    turns the task on may rightly get the task's answer to any request (nlupp_slots, asked with TASK_PROMPT,
    answered 126 of 129 general questions in its JSON, bench/general_modes.py).
    Before the guard replayed general requests with the user's own prompt, the support example kept 47 of 61 asked
    with none and 40 asked with its prompt, where the base given it keeps 54 (BENCHMARKS.md, 2026-12-04)."""
    items = questions()
    subset, asked = [items[i] for i in right], [base_answers[i] for i in right]
    kept, floor = retention(asked, tuned_prompted, subset), retention(asked, base_prompted, subset)
    return {"system": system, **{k: kept[k] for k in ("kept", "base_correct", "kept_share", "kept_ci", "examples")},
            "floor": {k: floor[k] for k in ("kept", "kept_share", "kept_ci")},
            "task_form": sum(parse_object(a) is not None for a in tuned_prompted) if json_task else None}


def noise_floor(base_answers: list[str], base_neutral: list[str], items: list[Question] | None = None) -> dict:
    """How many of its own correct answers the untuned base keeps when only `NEUTRAL_SYSTEM` is added.

    A small base's right answers are often fragile: on SmolLM2-135M a harmless system prompt alone
    turned 13 of its 61 right answers wrong (BENCHMARKS.md), while it got as many right in all. That
    share is what the check reads as "forgetting" when nothing was learned, so a tuned model's kept
    share is judged beside it, not against 100%.
    """
    out = retention(base_answers, base_neutral, items)
    return {"system": NEUTRAL_SYSTEM, **{k: out[k] for k in ("kept", "kept_share", "kept_ci", "tuned_correct")}}


def replay_examples(model, tokenizer, fingerprint: str, n: int, seed: int, bf16: bool = False,
                    system: str | None = None) -> list[Example]:
    """`n` general conversations (at most all of them) answered by `model`, the untuned base, in seeded order;
    with `system` first in each, answered as the base answers the request alone."""
    prompts = replay_prompts()
    conversations = [[{"role": "user", "content": p}] for p in prompts]
    answers = base_replies(model, tokenizer, fingerprint, conversations, bf16)
    first = [{"role": "system", "content": system}] if system else []
    rows = [Example(first + [{"role": "user", "content": p}, {"role": "assistant", "content": a}], "(general replay)",
                    i + 1) for i, (p, a) in enumerate(zip(prompts, answers)) if a]
    random.Random(seed).shuffle(rows)
    return rows[:n]


def base_replies(model, tokenizer, fingerprint: str, conversations: list[list[dict]], bf16: bool = False) -> list:
    """`model`'s (the untuned base's) greedy reply to each conversation, or None where it did not finish within
    REPLAY_ANSWER_TOKENS (left out, never cut). Computed once per base and set of conversations, then read
    from the cache, which is also how the other ranks of a distributed run get rank 0's answers."""
    texts = [render_prompt(tokenizer, c) for c in conversations]
    # bf16, the device and the decode path change greedy tokens too, so a cache written under other ones is not
    # reused: two machines' caches once held 88 and 96 finished answers of 171, and their runs differed by points
    scope = decode_scope(bf16, device_of(model))
    key = hashlib.sha256(json.dumps([texts, REPLAY_ANSWER_TOKENS, scope]).encode()).hexdigest()[:12]
    path = cache_dir() / "replay" / f"{fingerprint[:16]}-{key}.jsonl"
    if path.exists():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    # the default batch: each row's answer is the one it gets alone, so more rows at once are only faster
    # (the 171 open requests, before the short questions joined: 84.5 s in rows of 16, 47.1 s in 64, all the same)
    ids = generate_ids(model, tokenizer, texts, REPLAY_ANSWER_TOKENS, ROWS, bf16)
    stops = stop_token_ids(tokenizer, model)
    finished = [bool(row) and row[-1] in stops for row in ids]
    answers = [a if done else None for a, done in zip(decode_answers(tokenizer, ids), finished)]
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic.write_text(path, "".join(json.dumps(a) + "\n" for a in answers))
    return answers
