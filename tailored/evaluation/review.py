"""Checks beyond the headline metric: per-slice numbers, memorisation, looping answers, forgetting, and the gate."""

from __future__ import annotations

import re
from collections import defaultdict

from tailored.evaluation.metrics import normalise, rouge_l_rows

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


LOOP_REPEATS = 3  # a run of words said this many times back to back...
LOOP_WORDS = 6  # ...covering at least this many words is a loop ("no no no" is an answer, not a loop)
LOOP_UNIT = 10  # the longest run looked for, in words


def loops(text: str) -> str | None:
    """The run of words `text` repeats back to back (greedy decoding's failure mode), or None."""
    words = normalise(text).split()
    for unit in range(1, LOOP_UNIT + 1):
        for start in range(len(words) - unit * LOOP_REPEATS + 1):
            run, times = words[start : start + unit], 1
            while words[start + times * unit : start + (times + 1) * unit] == run:
                times += 1
            if times >= LOOP_REPEATS and times * unit >= LOOP_WORDS:
                return " ".join(run)
    return None


def repetition(rows: list[dict], examples: int = 3) -> dict:
    """Held-out answers that loop, the base's and the tuned model's.

    Validation loss does not see loops: a tuned model can score a good loss while some greedy answers
    repeat a phrase until the token limit. Counted for both models, so a loop the base had is not
    blamed on tuning.
    """
    base = sum(loops(r["base"]) is not None for r in rows)
    shown, tuned = [], 0
    for row in rows:
        if (run := loops(row["tuned"])) is not None:
            tuned += 1
            if len(shown) < examples:
                shown.append({"line": row["line"], "prompt": row["prompt"], "tuned": row["tuned"], "run": run})
    share = 100.0 * tuned / max(len(rows), 1)
    return {"rows": len(rows), "base": base, "tuned": tuned, "tuned_share": share, "examples": shown,
            "warning": (f"{tuned} of {len(rows)} tuned answers repeat a phrase back to back (the base: {base}), "
                        f"e.g. “{shown[0]['run']}” — a validation loss cannot see this; fewer epochs, more data or "
                        "a lower learning rate may help" if tuned > base and share >= 5 else None)}


GAP_ROW_WORDS = 2  # a held-out answer with this many unseen content words depends on facts not in training
GAP_SHARE = 25.0  # the share of such answers at which the verdict speaks of a knowledge gap
_COMMON = set("""about after again also been before being between both could does doing down during each from
further have having here into just more most much must only other over same should some such than that their
them then there these they this those through under until very were what when where which while will with
would your yours please thank thanks sorry""".split())


def _content_words(text: str) -> set[str]:
    """Numbers and words of 4+ letters, minus the most common function words: where facts live."""
    return {w for w in re.findall(r"\w+", text.lower()) if (w.isdigit() or len(w) >= 4) and w not in _COMMON}


def knowledge_gap(rows: list[dict], train_texts: list[str], examples: int = 5) -> dict:
    """How many held-out answers need content words found neither in their own prompt nor anywhere in training.

    No amount of tuning teaches a model facts it never saw: when many expected answers rest on such
    words, a flat or worse score is a knowledge gap in the data, not a training failure.
    """
    known: set[str] = set()
    for text in train_texts:
        known |= _content_words(text)
    gaps, shown = 0, []
    for row in rows:
        unseen = sorted(_content_words(row["expected"]) - known - _content_words(row["prompt"]))
        if len(unseen) >= GAP_ROW_WORDS:
            gaps += 1
            if len(shown) < examples:
                shown.append({"line": row["line"], "prompt": row["prompt"], "expected": row["expected"],
                              "unseen": unseen[:8]})
    share = 100.0 * gaps / max(len(rows), 1)
    return {"rows": len(rows), "gap_rows": gaps, "share": share, "flagged": share >= GAP_SHARE, "examples": shown}


def verdict(primary: str, base: dict, tuned: dict, tuned_ci: dict, base_name: str = "base",
            gap: dict | None = None) -> dict:
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
    flagged = bool(gap and gap["flagged"] and gap["examples"])
    if flagged:
        unseen = ", ".join(gap["examples"][0]["unseen"][:4])
        text += (f" {gap['gap_rows']} of {gap['rows']} expected answers rest on words found neither in their question "
                 f"nor anywhere in the training data (e.g. {unseen})")
        text += (": those cannot improve by tuning." if word == "better" else
                 ": a model cannot learn facts it never saw, so this is a knowledge gap in the data, not a training "
                 "failure — add documents or examples that contain those facts.")
    elif word != "better":
        text += (" Tuning did not help here: check the data (tailor check), or try more examples or epochs."
                 if word == "worse" else " The difference is within what chance alone would give on these rows.")
    return {"word": word, "text": text, "knowledge_gap": flagged}


def gate(primary: str, base: dict, tuned: dict, tuned_ci: dict, fail_if_worse: bool,
         floors: dict[str, float], than: str = "the base") -> dict:
    """Pass/fail for CI: worse than `than` (the base, or a parent version) beyond the interval, or under a floor."""
    failures = []
    low_high = tuned_ci.get(primary)
    if fail_if_worse and low_high and low_high[1] < base[primary]:
        failures.append(f"{primary} {tuned[primary]:.1f} is worse than {than}'s {base[primary]:.1f}, beyond the "
                        f"95% interval [{low_high[0]:.1f}–{low_high[1]:.1f}]")
    for metric, floor in floors.items():
        if metric not in tuned or not isinstance(tuned[metric], (int, float)):
            failures.append(f"--min {metric}: no such metric (have: "
                            f"{', '.join(k for k, v in tuned.items() if isinstance(v, (int, float)))})")
        elif tuned[metric] < floor:
            failures.append(f"{metric} {tuned[metric]:.1f} is under the floor {floor:g}")
    return {"passed": not failures, "failures": failures, "fail_if_worse": fail_if_worse, "floors": floors,
            "against": than}
