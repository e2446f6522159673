"""The general check asked three ways: as a run reports it, as `predict` and the server ask, and with a client's own
system prompt.

    python bench/general_modes.py RUN [RUN ...]

Every run's general check asks the tuned model each question with no system prompt. `predict`, `chat`, the
server and the export's Modelfile put the run's system prompt first whenever a request brings none of its own
(`Tuned.messages_for`): the support example's own prompt, or tailored's TASK_PROMPT for rows that had none.
A client that sends its own system message replaces it. This asks the same 129 questions of each run in all three
ways, and of the untuned base with no system prompt (whose right answers are the ones counted) and with the run's
system prompt (that mode's noise floor: what the base itself keeps when only that prompt is added). Greedy, fp32,
as the run's own check on a CPU. It prints kept of the base's right answers, with 95% intervals, and how many
general answers came back as a JSON object (the form of three of the real tasks' answers).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLIENT_SYSTEM = "You are a helpful assistant."  # a client's own system message, as many OpenAI-style clients send


def main() -> None:
    import tailored
    from tailored.evaluation import general
    from tailored.evaluation.metrics import parse_object
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base

    started = time.perf_counter()
    base_ref = resolve_base("smollm2-135m")
    base, tokenizer = load_causal_lm(base_ref), load_tokenizer(base_ref)
    plain = general.answer_questions(base, tokenizer, False)
    print(f"base, no system prompt: {sum(q.correct(a) for q, a in zip(general.questions(), plain))} of "
          f"{len(plain)} right ({time.perf_counter() - started:.0f} s)\n")
    print("| run | asked | right answers | of the base's right answers, still right | answers that are JSON |")
    print("|---|---|---|---|---|")
    floors: dict[str, list[str]] = {}
    for run in sys.argv[1:]:
        tuned = tailored.load(run, engine="torch")
        system = tuned.task.get("system_prompt")
        if system not in floors:
            floors[system] = general.answer_questions(base, tokenizer, False, system=system)
        ways = [("the base, with the run's system prompt (floor)", base, system),
                ("tuned, no system prompt (the run's check)", tuned.model, None),
                ("tuned, with the run's system prompt (predict, server)", tuned.model, system),
                (f"tuned, with a client's own \"{CLIENT_SYSTEM}\"", tuned.model, CLIENT_SYSTEM)]
        print(f"| {run} | system prompt: “{system}” | | | |")
        for label, model, prompt in ways:
            answers = floors[system] if model is base else general.answer_questions(model, tokenizer, False,
                                                                                     system=prompt)
            kept = general.retention(plain, answers)
            low, high = kept["kept_ci"]
            print(f"| | {label} | {kept['tuned_correct']} | {kept['kept']}: {kept['kept_share']:.1f}% "
                  f"[{low:.1f}–{high:.1f}] | {sum(parse_object(a) is not None for a in answers)} |", flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
