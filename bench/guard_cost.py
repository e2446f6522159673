"""The guard's cost to the task, on more held-out rows than the quality benchmark can afford.

    python bench/guard_cost.py RUN_GUARDED RUN_UNGUARDED [--task sgd_responses] [--rows 1000]

#13 asks that the guard move the task's primary metric by at most 1 point against the same run without it.
On the quality benchmark's 60-100 held-out rows the paired difference's interval is 3-8 points wide either
way, so it cannot show that. This takes two finished runs of `bench/quality.py` on the same task and seed
(one guarded, one `--guard 0`), asks both the first `--rows` of the task's held-out rows (the same
seeded split; its first 100 are the benchmark's own), and prints each run's score and the paired
per-row difference, each with a 95% bootstrap interval. Both runs must have trained on the split's
training rows, which the script checks.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import quality  # noqa: E402  (bench/quality.py: the same tasks and seeded splits)

from tailored.config import EvalConfig  # noqa: E402
from tailored.evaluation.compare import score  # noqa: E402
from tailored.evaluation.metrics import bootstrap, rouge_l_rows  # noqa: E402
from tailored.pipeline import evaluate  # noqa: E402


def per_row(primary: str, preds: list[str], refs: list[str]) -> np.ndarray:
    if primary == "rouge_l":
        return np.array(rouge_l_rows(preds, refs))
    return np.array([score([p], [r], None)[0][primary] for p, r in zip(preds, refs)], float)


def interval(values: np.ndarray) -> tuple[float, float]:
    return bootstrap(lambda i: float(values[i].mean()), len(values))


def check_trained_on(run: str, train: list[dict], task: str) -> None:
    """Stop unless `run` trained on exactly `train`, the task's seeded training rows."""
    lineage = json.loads((Path(run) / "run.json").read_text())
    used = [json.loads(line) for line in Path(lineage["data"]["train"]["path"]).read_text().splitlines()]
    if [json.dumps(r, sort_keys=True) for r in used] != [json.dumps(r, sort_keys=True) for r in train]:
        sys.exit(f"{run} did not train on {task}'s seeded training rows")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("guarded")
    ap.add_argument("unguarded")
    ap.add_argument("--task", default="sgd_responses")
    ap.add_argument("--rows", type=int, default=1000)
    args = ap.parse_args()
    train, test = quality.split_rows(args.task, heldout_rows=args.rows)
    folder = Path(tempfile.mkdtemp(prefix="guard-cost-"))
    heldout = quality.write(folder / f"{args.task}.heldout.jsonl", test)
    runs = {}
    for label, run in (("guard on", args.guarded), ("--guard 0", args.unguarded)):
        check_trained_on(run, train, args.task)
        start = time.perf_counter()
        comparison = evaluate(run, heldout, EvalConfig(samples=0), quiet=True)
        runs[label] = (comparison, time.perf_counter() - start)
    primary = runs["guard on"][0].primary
    refs = [r["expected"] for r in runs["guard on"][0].rows]
    assert refs == [r["expected"] for r in runs["--guard 0"][0].rows]
    scores = {label: per_row(primary, [r["tuned"] for r in c.rows], refs) for label, (c, _) in runs.items()}
    base = per_row(primary, [r["base"] for r in runs["guard on"][0].rows], refs)
    print(f"{args.task}: {len(refs)} held-out rows, {primary}")
    for label, values in (("base", base), *scores.items()):
        lo, hi = interval(values)
        first = f"; first 100 rows {values[:100].mean():.2f}" if len(values) > 100 else ""
        seconds = f" ({runs[label][1]:.0f} s)" if label in runs else ""
        print(f"  {label:>9}: {values.mean():.2f} [{lo:.2f}–{hi:.2f}]{first}{seconds}")
    diff = scores["guard on"] - scores["--guard 0"]
    lo, hi = interval(diff)
    print(f"  paired, guard on − --guard 0: {diff.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]")
    for label, (c, _) in runs.items():
        g = c.review.get("forgetting") or {}
        if g.get("kept_share") is not None:
            print(f"  general answers kept, {label}: {g['kept']}/{g['base_correct']} ({g['kept_share']:.1f}% "
                  f"[{g['kept_ci'][0]:.1f}–{g['kept_ci'][1]:.1f}])")


if __name__ == "__main__":
    main()
