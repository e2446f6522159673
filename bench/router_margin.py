"""Where the router draws its line: the task against people's general requests at several margins, on finished runs.

    TAILORED_CACHE=<the runs' cache> python bench/router_margin.py RUN [RUN ...] [--margins 0,1,2,3]

The router sends a request to the base when its decision score (a logit, `Router.task_scores`) is below 0. This
asks what a stricter line costs and gains: at margin m a request goes to the base only below -m, that is when
the router gives it at least sigmoid(m) odds of being general (m=2: 88%). For each run it refits the router its
training fits and scores, with no new task answers:

- held-out rows sent to the base and the primary metric (row mean), from the run's stored base and tuned answers
  (a run trained before routers stores the adapter's answer for every row; a routed row takes the base's);
- the general check's base-right questions kept: the base's answer where routed, else the adapter's (both
  generated here, greedy, as the run's evaluation does);
- selfinstruct_human's 252 `user_oriented_eval` instructions sent to the base (people's requests, unseen).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import guard_cost  # noqa: E402  (per-row scoring)
import router as router_bench  # noqa: E402  (people's requests, the router refitted on a finished run)

from tailored.data import load_dataset  # noqa: E402
from tailored.evaluation import general  # noqa: E402
from tailored.tuned import load  # noqa: E402


def conversations(texts: list[str]) -> list[list[dict]]:
    return [[{"role": "user", "content": t}] for t in texts]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--margins", default="0,1,2,3")
    args = ap.parse_args()
    margins = [float(m) for m in args.margins.split(",")]
    people = router_bench.people_requests()
    items = general.questions()
    print("| run | margin (odds general) | validation to base | held-out to base | primary (row mean) | "
          "general questions to base | kept of the base's right | selfinstruct to base |")
    print("|---|---|---|---|---|---|---|---|")
    for run in map(Path, args.runs):
        prep, _ = router_bench.refit(run)
        router = prep.router
        if router is None:
            print(f"| {run.parent.name} | router off at its own check | | | | | | |")
            continue
        metrics = json.loads((run / "metrics.json").read_text())["eval"]
        rows = metrics["rows"]
        if any(r.get("routed") for r in rows):
            sys.exit(f"{run}: its stored answers are already routed; pass a run trained without a router")
        refs = [r["expected"] for r in rows]
        base_rows = guard_cost.per_row(metrics["primary"], [r["base"] for r in rows], refs)
        tuned_rows = guard_cost.per_row(metrics["primary"], [r["tuned"] for r in rows], refs)
        s_valid = router.task_scores([ex.prompt for ex in prep.valid_examples])
        heldout = json.loads((run / "run.json").read_text())["data"]["heldout"]["path"]
        asked = {ex.line: ex.prompt for ex in load_dataset(heldout).examples}
        s_held = router.task_scores([asked[r["line"]] for r in rows])
        s_general = router.task_scores(conversations([q.prompt for q in items]))
        s_people = router.task_scores(conversations(people))

        tuned = load(run, engine="torch")
        model, tok = tuned.model, tuned.tokenizer
        with model.disable_adapter():
            base_answers = general.answer_questions(model, tok, tuned.bf16)
        adapter_answers = general.answer_questions(model, tok, tuned.bf16)
        base_ok = np.array([q.correct(a) for q, a in zip(items, base_answers)])
        adapter_ok = np.array([q.correct(a) for q, a in zip(items, adapter_answers)])
        for m in margins:
            held = s_held < -m
            score = np.where(held, base_rows, tuned_rows).mean()
            gen = s_general < -m
            kept = int((base_ok & (gen | adapter_ok)).sum())
            odds = 1 / (1 + np.exp(-m))
            print(f"| {run.parent.name} | {m:g} ({odds:.0%}) | {int((s_valid < -m).sum())}/{len(s_valid)} | "
                  f"{int(held.sum())}/{len(held)} | {tuned_rows.mean():.2f} → {score:.2f} | "
                  f"{int(gen.sum())}/{len(gen)} | {kept}/{int(base_ok.sum())} (adapter alone "
                  f"{int((base_ok & adapter_ok).sum())}) | {int((s_people < -m).sum())}/{len(people)} |", flush=True)
        print(f"|   scores | held-out rows sent at 0: {', '.join(f'{v:.2f}' for v in sorted(s_held[s_held < 0]))} "
              f"| general questions kept on the adapter at 0: "
              f"{', '.join(f'{v:.2f}' for v in sorted(s_general[s_general >= 0]))} | | | | | |", flush=True)


if __name__ == "__main__":
    main()
