"""Checks beyond the headline metric: per-slice numbers, memorisation, forgetting, and the pass/fail gate."""

from __future__ import annotations

from collections import defaultdict

from tailored.evaluation.metrics import normalise, rouge_l_rows

# General requests, written by us, that have nothing to do with any user's task. A tuned model that
# answers these very differently from its base has drifted beyond the task (catastrophic forgetting).
GENERAL_PROMPTS = [
    "What is the capital of France?",
    "Give me three tips for sleeping better.",
    "Explain what a noun is in one sentence.",
    "Write a short, friendly greeting for a new colleague.",
    "What is 12 multiplied by 7?",
    "Name three fruits that are red.",
    "How many days are there in a leap year?",
    "Translate 'thank you' into Spanish.",
    "What does a thermometer measure?",
    "Suggest a name for a pet goldfish.",
    "Why is the sky blue? Answer briefly.",
    "List the four seasons of the year.",
]
CHANGED_BELOW = 30.0  # ROUGE-L between base and tuned answers under this counts as a drastic change
NEAR_COPY_WORDS = 12  # a shared run of this many words with a training target counts as a near copy


def slices(rows: list[dict], field: str, score, primary: str, overall: float, margin: float,
           min_size: int) -> dict:
    """Every metric per value of `field`, flagging slices more than `margin` points below the overall figure.

    `score(preds, refs)` returns (values, intervals) for a list of rows. Slices smaller than
    `min_size` are reported but not judged: their intervals are too wide to mean anything.
    """
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[str(row.get("extra", {}).get(field, "(missing)"))].append(row)
    out = {}
    for value, members in sorted(groups.items()):
        refs = [r["expected"] for r in members]
        base, _ = score([r["base"] for r in members], refs)
        tuned, tuned_ci = score([r["tuned"] for r in members], refs)
        small = len(members) < min_size
        below = not small and tuned[primary] < overall - margin
        out[value] = {"rows": len(members), "base": _numbers(base), "tuned": _numbers(tuned),
                      "tuned_ci": tuned_ci.get(primary), "too_small": small, "flagged": below}
    return {"field": field, "primary": primary, "overall": overall, "margin": margin, "min_size": min_size,
            "slices": out}


def _numbers(values: dict) -> dict:
    return {k: v for k, v in values.items() if isinstance(v, (int, float))}


def _ngrams(text: str, n: int) -> set[tuple[str, ...]]:
    words = normalise(text).split()
    return {tuple(words[i : i + n]) for i in range(len(words) - n + 1)}


def memorisation(rows: list[dict], train_targets: list[str], n: int = NEAR_COPY_WORDS, examples: int = 5) -> dict:
    """Held-out answers that repeat a training target verbatim, or share a run of `n` words with one.

    A copy is only a problem when it is wrong for the row, so copies that do not match the expected
    answer (ROUGE-L under 50) are counted separately, with examples.
    """
    exact = {normalise(t): t for t in train_targets}
    grams: set[tuple[str, ...]] = set()
    for t in train_targets:
        grams |= _ngrams(t, n)
    fit = rouge_l_rows([r["tuned"] for r in rows], [r["expected"] for r in rows])
    verbatim = near = wrong = 0
    shown = []
    for row, score in zip(rows, fit):
        copy = normalise(row["tuned"]) in exact
        close = copy or bool(_ngrams(row["tuned"], n) & grams)
        verbatim += copy
        near += close and not copy
        if close and score < 50:
            wrong += 1
            if len(shown) < examples:
                shown.append({"line": row["line"], "prompt": row["prompt"], "tuned": row["tuned"],
                              "expected": row["expected"], "verbatim": copy})
    total = max(len(rows), 1)
    return {"rows": len(rows), "verbatim": verbatim, "near": near, "wrong_copies": wrong,
            "verbatim_share": 100.0 * verbatim / total, "near_share": 100.0 * near / total,
            "wrong_copy_share": 100.0 * wrong / total, "ngram_words": n, "examples": shown,
            "warning": (f"{wrong} of {len(rows)} held-out answers copy training text that does not fit the row — "
                        "the model may be reciting, not answering" if wrong / total >= 0.1 else None)}


def forgetting(base_answers: list[str], tuned_answers: list[str], prompts: list[str] = GENERAL_PROMPTS) -> dict:
    """How many general prompts the tuned model answers drastically differently from its base."""
    similarity = rouge_l_rows(tuned_answers, base_answers)
    changed = [i for i, s in enumerate(similarity) if s < CHANGED_BELOW]
    return {"prompts": len(prompts), "changed": len(changed), "threshold_rouge_l": CHANGED_BELOW,
            "examples": [{"prompt": prompts[i], "base": base_answers[i], "tuned": tuned_answers[i],
                          "similarity": round(similarity[i], 1)} for i in changed[:5]]}


def verdict(primary: str, base: dict, tuned: dict, tuned_ci: dict, base_name: str = "base") -> dict:
    """Better, no clear change, or worse than the base (or the simple baseline), in plain words.

    Judged as the gate judges: the tuned score's whole 95% interval above the base's score is better,
    wholly below it is worse, anything else is no clear change.
    """
    before, after, interval = base[primary], tuned[primary], tuned_ci.get(primary)
    than = "the base model" if base_name == "base" else f"the {base_name} baseline"
    low, high = interval if interval else (after, after)
    if low > before:
        word, how = "better", "its whole 95% interval is above"
    elif high < before:
        word, how = "worse", "its whole 95% interval is below"
    else:
        word, how = "no clear change", "its 95% interval includes"
    text = (f"{'Better than' if word == 'better' else 'Worse than' if word == 'worse' else 'No clear change from'} "
            f"{than}: {primary} {before:.1f} → {after:.1f} [{low:.1f}–{high:.1f}]; {how} {than}'s {before:.1f}.")
    if word != "better":
        text += (" Tuning did not help here: check the data (tailor check), or try more examples or epochs."
                 if word == "worse" else " The difference is within what chance alone would give on these rows.")
    return {"word": word, "text": text}


def gate(primary: str, base: dict, tuned: dict, tuned_ci: dict, fail_if_worse: bool,
         floors: dict[str, float]) -> dict:
    """Pass/fail for CI: worse than the base beyond the interval, or under an absolute floor."""
    failures = []
    low_high = tuned_ci.get(primary)
    if fail_if_worse and low_high and low_high[1] < base[primary]:
        failures.append(f"{primary} {tuned[primary]:.1f} is worse than the base's {base[primary]:.1f}, beyond the "
                        f"95% interval [{low_high[0]:.1f}–{low_high[1]:.1f}]")
    for metric, floor in floors.items():
        if metric not in tuned or not isinstance(tuned[metric], (int, float)):
            failures.append(f"--min {metric}: no such metric (have: "
                            f"{', '.join(k for k, v in tuned.items() if isinstance(v, (int, float)))})")
        elif tuned[metric] < floor:
            failures.append(f"{metric} {tuned[metric]:.1f} is under the floor {floor:g}")
    return {"passed": not failures, "failures": failures, "fail_if_worse": fail_if_worse, "floors": floors}
