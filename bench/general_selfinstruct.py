"""Forgetting on a real, human-written general set: Self-Instruct's user-oriented instructions, base against runs.

    python bench/general_selfinstruct.py [--rows 126] RUN [RUN ...]

tailored's own general check (129 short questions with checkable answers) is written for the project
and its right answers are fragile on a 135M base (BENCHMARKS.md, the noise floor). This script measures
the same thing another way, on data no one here wrote: the 252 `user_oriented_eval` instructions of
Self-Instruct (../shared/realdata/selfinstruct_human.jsonl; its authors ask that they not be trained
on, and nothing here trains on them), a seeded sample of `--rows`, each asked alone with no system
prompt, greedy, fp32, at most 128 new tokens. Each answer is scored by ROUGE-L against the human-written
answer. It prints the base's mean, the base's again under a harmless system prompt (what a change that
teaches nothing moves: the floor), and each run's, with the paired difference from the base and its
95% bootstrap interval (rows resampled together).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "realdata" / "selfinstruct_human.jsonl"
MAX_NEW_TOKENS = 128


def sample(n: int) -> list[dict]:
    rows = [json.loads(line) for line in DATA.read_text(encoding="utf-8").splitlines() if line.strip()]
    rows = [r for r in rows if r["split"] == "user_oriented_eval"]
    return random.Random(0).sample(rows, min(n, len(rows)))


def main() -> None:
    import numpy as np

    import tailored
    from tailored.evaluation.general import NEUTRAL_SYSTEM
    from tailored.evaluation.generate import generate
    from tailored.evaluation.metrics import bootstrap, rouge_l_rows
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=126)
    ap.add_argument("runs", nargs="*")
    args = ap.parse_args()
    started = time.perf_counter()
    rows = sample(args.rows)
    refs = [r["output"] for r in rows]

    def ask(model, tokenizer, system: str | None = None) -> np.ndarray:
        prompts = [([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": r["input"]}]
                   for r in rows]
        return np.asarray(rouge_l_rows(generate(model, tokenizer, prompts, MAX_NEW_TOKENS), refs), dtype=float)

    def line(name: str, scores: np.ndarray, base: np.ndarray | None) -> str:
        low, high = bootstrap(lambda i: float(scores[i].mean()), len(scores))
        out = f"| {name} | {scores.mean():.1f} [{low:.1f}–{high:.1f}] |"
        if base is None:
            return out + " — |"
        d = scores - base
        d_low, d_high = bootstrap(lambda i: float(d[i].mean()), len(d))
        return out + f" {d.mean():+.1f} [{d_low:+.1f}, {d_high:+.1f}] |"

    base = resolve_base("smollm2-135m")
    model, tokenizer = load_causal_lm(base), load_tokenizer(base)
    plain = ask(model, tokenizer)
    print(f"{len(rows)} Self-Instruct user-oriented instructions, ROUGE-L against the human answer\n"
          "| model | ROUGE-L [95% CI] | minus the base, paired [95% CI] |\n|---|---|---|")
    print(line("the base", plain, None), flush=True)
    print(line(f"the base, system prompt \"{NEUTRAL_SYSTEM}\" (floor)", ask(model, tokenizer, NEUTRAL_SYSTEM), plain),
          flush=True)
    for run in args.runs:
        loaded = tailored.load(run)
        print(line(run, ask(loaded.model, loaded.tokenizer), plain), flush=True)
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
