"""How fragile are the base's right answers to the general check? The untuned base asked again with only a system prompt.

    python bench/general_floor.py [RUN ...]

The general check (tailored/evaluation/general/check.jsonl) counts how many of the base's right answers
a tuned model keeps. This script asks the untuned SmolLM2-135M the same 129 questions with no system
prompt, then with two harmless ones, and prints how many of its own right answers survive each: the
share a model that learned nothing would "keep". Runs given as arguments are scored against the same
base answers. Greedy, fp32.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SYSTEMS = ["You are a helpful assistant.", "Answer the question."]


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
    for system in SYSTEMS:
        floor = general.noise_floor(plain, general.answer_questions(model, tokenizer, False, system=system))
        low, high = floor["kept_ci"]
        print(f"| \"{system}\" | {floor['tuned_correct']} | {floor['kept']}: {floor['kept_share']:.1f}% "
              f"[{low:.1f}–{high:.1f}] |", flush=True)
    for run in sys.argv[1:]:
        tuned = tailored.load(run)
        kept = general.retention(plain, general.answer_questions(tuned.model, tuned.tokenizer, False))
        low, high = kept["kept_ci"]
        print(f"| {run} (tuned, no system prompt) | {kept['tuned_correct']} | {kept['kept']}: "
              f"{kept['kept_share']:.1f}% [{low:.1f}–{high:.1f}] |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
