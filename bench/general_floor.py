"""How fragile are the base's right answers to the general check? The untuned base asked again with only a system prompt.

    python bench/general_floor.py [RUN ...]

The general check (tailored/evaluation/general/check.jsonl) counts how many of the base's right answers
a tuned model keeps. This script asks the untuned SmolLM2-135M the same 129 questions with no system
prompt, then with two harmless ones, and prints how many of its own right answers survive each: the
share a model that learned nothing would "keep". Runs given as arguments are scored against the same
base answers. Greedy, fp32.

It then narrows the check to what the base knows robustly: the questions it answers right with no
system prompt and with both harmless ones. A third harmless prompt, used nowhere else, gives the
floor on those; runs are scored on them too. A kept share there can be told from noise where the
whole check's floor (about 79%) cannot.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYSTEMS = ["You are a helpful assistant.", "Answer the question."]
HELD_OUT_SYSTEM = "You are a friendly assistant."  # the robust set's floor: a harmless prompt not used to pick it


def main() -> None:
    import tailored
    from tailored.evaluation import general
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base

    started = time.perf_counter()
    base = resolve_base("smollm2-135m")
    model, tokenizer = load_causal_lm(base), load_tokenizer(base)
    plain = general.answer_questions(model, tokenizer, False)
    right = sum(q.correct(a) for q, a in zip(general.questions(), plain))
    print(f"base, no system prompt: {right} of {len(plain)} right")
    print("| the base, asked with | right answers | of its right answers, still right |\n|---|---|---|")
    neutral = []
    for system in SYSTEMS:
        neutral.append(general.answer_questions(model, tokenizer, False, system=system))
        floor = general.noise_floor(plain, neutral[-1])
        low, high = floor["kept_ci"]
        print(f"| \"{system}\" | {floor['tuned_correct']} | {floor['kept']}: {floor['kept_share']:.1f}% "
              f"[{low:.1f}–{high:.1f}] |", flush=True)
    tuned = {}
    for run in sys.argv[1:]:
        loaded = tailored.load(run)
        tuned[run] = general.answer_questions(loaded.model, loaded.tokenizer, False)
        kept = general.retention(plain, tuned[run])
        low, high = kept["kept_ci"]
        print(f"| {run} (tuned, no system prompt) | {kept['tuned_correct']} | {kept['kept']}: "
              f"{kept['kept_share']:.1f}% [{low:.1f}–{high:.1f}] |", flush=True)
    items = general.questions()
    robust = [i for i, q in enumerate(items) if all(q.correct(a[i]) for a in (plain, *neutral))]
    pick = lambda answers: [answers[i] for i in robust]
    print(f"\nrobustly known: {len(robust)} questions the base answers right with no system prompt and with both "
          f"above\n| asked | of those, still right |\n|---|---|")
    rows = [(f"the base, \"{HELD_OUT_SYSTEM}\" (floor)",
             general.answer_questions(model, tokenizer, False, system=HELD_OUT_SYSTEM))]
    rows += [(f"{run} (tuned, no system prompt)", answers) for run, answers in tuned.items()]
    for name, answers in rows:
        kept = general.retention(pick(plain), pick(answers), [items[i] for i in robust])
        low, high = kept["kept_ci"]
        print(f"| {name} | {kept['kept']}/{len(robust)}: {kept['kept_share']:.1f}% [{low:.1f}–{high:.1f}] |",
              flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
