"""The guard's cost to the task across training seeds, not only across held-out rows.

    python bench/guard_seeds.py [--task sgd_responses] [--seeds 1 2] [--rows 1000]
                                [--settings "guard on" "--guard 0"] [--reuse 0:RUN_ON:RUN_OFF]
                                [--stored "1:--guard 0:RUN"] [--baseline "--guard 0"]
                                [--out bench/guard_seeds.json]

About 15 minutes a run on sgd_responses (2 cores): 6-7 minutes of training, 8-9 of evaluating 1,000 rows;
about 10 once the base's answers to those rows are in the cache (the evaluation then asks the tuned model only).

`guard_cost.py` compares one guarded run with one `--guard 0` run, and its interval covers only which
held-out rows were drawn. Adding the guard changes more than the replayed rows: the batches, their order
and the steps differ, so the two runs differ as two seeds of the same run would. This trains the task
with the guard (default share) and with `--guard 0` for each seed in `--seeds`, on the quality
benchmark's seeded training rows, evaluating each on the first `--rows` of its seeded held-out rows
(the first 100 are the benchmark's). `--reuse SEED:ON:OFF` adds two finished runs of that seed on the
same training rows (for example `quality.py`'s seed-0 runs), evaluated here on the same rows.
`--stored SEED:LABEL:RUN` adds a finished run under any label without evaluating it again: the answers
its own evaluation stored (metrics.json), which must be on the same held-out rows (a run this script
trained earlier, or an earlier version of a setting).

It prints each seed's scores and paired difference (guard on − off) with row-bootstrap intervals, the
spread of each setting across seeds, and the mean paired difference over seeds with an interval that
resamples both seeds and rows. Per-row answers go to `--out` (about 250 KB a run, so not kept in git),
so later seeds and settings can be added.
`--settings` takes any of SETTINGS below: what replays, which prompt, which rank, how many epochs (BENCHMARKS.md
has each); `--baseline` names the one the others are paired against (`--guard 0` unless said).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path
from unittest import mock

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import guard_cost  # noqa: E402  (per-row scoring and the row bootstrap)
import quality  # noqa: E402  (the same tasks and seeded splits)

import tailored  # noqa: E402
from tailored import guard  # noqa: E402
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig  # noqa: E402
from tailored.data.formats import TASK_PROMPT  # noqa: E402
from tailored.data.split import valid_size  # noqa: E402
from tailored.pipeline import evaluate  # noqa: E402
from tailored.training import defaults  # noqa: E402

# label: what that run changes. guard: the share (default when absent); prompted: every row carries tailored's
# TASK_PROMPT as written data; rows: what the guard replays, "general" requests only or the task's own inputs
# without the prompt only, "plain" (both by default); rank: the LoRA rank (default 16).
# "prompt only" is `--guard 0` on rows that carry the system prompt the guard gives prompt-less rows: it
# separates the prompt's part in the guard's cost from the replayed rows' part. "general only" replays
# general requests alone, the guard as it was before the eleventh session; "plain only" the task's inputs
# without the prompt alone (asked of twice as many inputs, as not every answer finishes). "guard, rank 32"
# asks whether an adapter with room for both behaviours pays less for the guard. "replies cut" keeps each
# replayed answer only up to the task's mean answer length (`cut_replies`), so that the guard's rows weigh
# in the token-summed loss as rows, not as the base's long answers (42% of sgd_responses' tokens otherwise).
# "guard 0.3" and "guard 0.4": a larger share of replayed rows than the default 0.2, for the kept share.
# "general unprompted": the general requests replayed without the user's own system prompt, as the guard did
# before it replayed them with it (2026-12-04: "general prompted" then, the guard's default now).
# "one epoch fewer" and "one epoch more": the guard on, trained one pass fewer (at least one) or more than the epoch
# rule gives, for what a shorter or longer schedule does to the task and to the general answers; pair them against
# "guard on" (--baseline). "1,400 seen": the epoch rule aiming at 1,400 examples instead of 1,000, counted as the rule
# counts them, over the rows left after the validation split (usaddress_fields gained 7.6 field F1 from a fourth pass).
SETTINGS = {"guard on": {}, "--guard 0": {"guard": 0.0}, "prompt only": {"guard": 0.0, "prompted": True},
            "general only": {"rows": "general"}, "plain only": {"rows": "plain"}, "guard, rank 32": {"rank": 32},
            "replies cut": {"rows": "cut"}, "guard 0.3": {"guard": 0.3}, "guard 0.4": {"guard": 0.4},
            "general unprompted": {"rows": "general unprompted"}, "one epoch fewer": {"epochs": -1},
            "one epoch more": {"epochs": 1}, "1,400 seen": {"seen": 1400}}


def with_prompt(rows: list[dict]) -> list[dict]:
    """input/output rows as the messages the guard makes of them: TASK_PROMPT, the input, the output."""
    return [{"messages": [{"role": "system", "content": TASK_PROMPT}, {"role": "user", "content": r["input"]},
                          {"role": "assistant", "content": r["output"]}]} for r in rows]


def cut_replies(add_replay, shortest: int = 16):
    """`guard.add_replay`, then each replayed row kept up to its answer's first N tokens, N the task's mean (at
    least `shortest`); the sequence ends there, as nothing after the last labelled token changes the loss."""
    from tailored.data.encode import IGNORE, Encoded

    def cut(row: Encoded, keep: int) -> Encoded:
        labelled = [i for i, t in enumerate(row.labels) if t != IGNORE]
        end = labelled[keep - 1] + 1 if len(labelled) > keep else len(row.labels)
        return Encoded(row.input_ids[:end], row.labels[:end])

    def replay(prep, *args):
        add_replay(prep, *args)
        task = prep.train_encoded[: len(prep.train_encoded) - prep.guard_rows]
        keep = max(shortest, round(sum(r.trainable for r in task) / len(task)))
        prep.train_encoded = task + [cut(r, keep) for r in prep.train_encoded[len(task):]]

    return replay


def train_one(task: str, folder: Path, data: Path, heldout: Path, seed: int, label: str) -> tuple:
    setting = SETTINGS[label]
    rows = setting.get("rows", "both")
    data_cfg = DataConfig(heldout=str(heldout), **({"guard": setting["guard"]} if "guard" in setting else {}))
    task_kind = quality.TASKS[task][1]
    overrides = {"lora_rank": setting["rank"]} if "rank" in setting else {}
    n_rows = sum(1 for _ in data.open(encoding="utf-8"))
    n_rows -= valid_size(n_rows, data_cfg.valid_fraction)  # the rule sees the rows left after the validation split
    if "epochs" in setting:  # relative to what the rule gives these rows
        overrides["epochs"] = max(1, defaults.choose_epochs(n_rows, task_kind)[0] + setting["epochs"])
    if "seen" in setting:  # the rule itself with another target
        _, low, high = defaults.EXAMPLES_SEEN[task_kind]
        with mock.patch.dict(defaults.EXAMPLES_SEEN, {task_kind: (setting["seen"], low, high)}):
            overrides["epochs"] = defaults.choose_epochs(n_rows, task_kind)[0]
    train_cfg = TrainConfig(task=task_kind, seed=seed, **overrides)
    name = f"{task}-seed{seed}-" + "".join(ch for ch in label if ch.isalnum())
    with contextlib.ExitStack() as patches:
        if rows == "general":  # add_replay then fills the share with general requests, as for rows with no prompt
            patches.enter_context(mock.patch.object(guard, "plain_examples", lambda *a, **k: []))
        if rows == "plain":
            asked = guard.plain_examples
            patches.enter_context(mock.patch.object(guard.general, "replay_examples", lambda *a, **k: []))
            patches.enter_context(mock.patch.object(guard, "plain_examples", lambda m, t, f, ex, n, seed, bf16=False:
                                                    asked(m, t, f, ex, 4 * n, seed, bf16)[: 2 * n]))
        if rows == "cut":
            patches.enter_context(mock.patch.object(guard, "add_replay", cut_replies(guard.add_replay)))
        if rows == "general unprompted":
            replay = guard.general.replay_examples
            patches.enter_context(mock.patch.object(guard.general, "replay_examples",
                                                    lambda *a, system=None, **k: replay(*a, **k)))
        run = tailored.train(data, train_cfg, data_cfg, EvalConfig(samples=0),
                             RunConfig(runs_dir=str(folder / "runs"), name=name), quiet=True)
    return run.comparison, {"steps": run.fit.steps, "best_step": run.fit.best_step, "train_s": run.fit.seconds}


def answers(rows: list[dict], primary: str, review: dict, **facts) -> dict:
    """What the report needs of one run's evaluation: its answers, the references and the general check."""
    fg = review.get("forgetting") or {}
    asked = fg.get("as_asked") or {}
    return {"tuned": [r["tuned"] for r in rows], "refs": [r["expected"] for r in rows], "primary": primary,
            "kept": fg.get("kept"), "base_correct": fg.get("base_correct"), "kept_as_asked": asked.get("kept"),
            "as_asked_floor": (asked.get("floor") or {}).get("kept"), **facts}


def stored(run: str) -> dict:
    """`answers` of a finished run, read from the evaluation it stored instead of evaluating again."""
    metrics = json.loads((Path(run) / "metrics.json").read_text())
    e = metrics["eval"]
    return answers(e["rows"], e["primary"], e["review"], run=run,
                   **{k: metrics["train"][k] for k in ("steps", "best_step")})


def seeds_and_rows_interval(diffs: np.ndarray, rounds: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% interval of the mean over seeds of the mean paired difference: seeds resampled, then rows within each."""
    rng = np.random.default_rng(seed)
    n_seeds, n_rows = diffs.shape
    means = []
    for _ in range(rounds):
        chosen = rng.integers(0, n_seeds, n_seeds)
        means.append(np.mean([diffs[s][rng.integers(0, n_rows, n_rows)].mean() for s in chosen]))
    return float(np.percentile(means, 2.5)), float(np.percentile(means, 97.5))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--task", default="sgd_responses")
    ap.add_argument("--seeds", type=int, nargs="*", default=[1, 2])
    ap.add_argument("--settings", nargs="*", default=["guard on", "--guard 0"], choices=list(SETTINGS))
    ap.add_argument("--rows", type=int, default=1000)
    ap.add_argument("--baseline", default="--guard 0", choices=list(SETTINGS),
                    help="the setting the others pair against")
    ap.add_argument("--reuse", action="append", default=[], help="SEED:RUN_ON:RUN_OFF, finished runs to evaluate")
    ap.add_argument("--stored", action="append", default=[],
                    help="SEED:LABEL:RUN, a finished run's stored answers (evaluated on the same rows), under LABEL")
    ap.add_argument("--out", default=str(Path(__file__).resolve().parent / "guard_seeds.json"))
    args = ap.parse_args()
    train, test = quality.split_rows(args.task, heldout_rows=args.rows)
    folder = Path(tempfile.mkdtemp(prefix="guard-seeds-"))
    data = quality.write(folder / f"{args.task}.jsonl", train)
    heldout = quality.write(folder / f"{args.task}.heldout.jsonl", test)
    prompted = (quality.write(folder / f"{args.task}.prompted.jsonl", with_prompt(train)),  # input/output rows only
                quality.write(folder / f"{args.task}.prompted.heldout.jsonl", with_prompt(test))) \
        if any(SETTINGS[label].get("prompted") for label in args.settings) else None
    out = Path(args.out)
    record = json.loads(out.read_text()) if out.exists() else {}
    per_seed = record.setdefault(args.task, {})
    for spec in args.reuse:
        seed, on, off = spec.split(":")
        entry = per_seed.setdefault(seed, {})
        for label, run in (("guard on", on), ("--guard 0", off)):
            guard_cost.check_trained_on(run, train, args.task)
            start = time.perf_counter()
            c = evaluate(run, heldout, EvalConfig(samples=0), quiet=True)
            history = json.loads((Path(run) / "metrics.json").read_text())["train"]
            entry[label] = answers(c.rows, c.primary, c.review, eval_s=time.perf_counter() - start, run=run,
                                   **{k: history[k] for k in ("steps", "best_step")})
        out.write_text(json.dumps(record, indent=1))
    for spec in args.stored:
        if spec.count(":") < 2:
            sys.exit(f"--stored {spec!r}: expected SEED:LABEL:RUN")
        seed, label, run = spec.split(":", 2)
        guard_cost.check_trained_on(run, train, args.task)
        per_seed.setdefault(seed, {})[label] = stored(run)
    out.write_text(json.dumps(record, indent=1))
    for seed in args.seeds:
        entry = per_seed.setdefault(str(seed), {})
        for label in args.settings:
            start = time.perf_counter()
            files = prompted if SETTINGS[label].get("prompted") else (data, heldout)
            c, fit = train_one(args.task, folder, *files, seed, label)
            entry[label] = answers(c.rows, c.primary, c.review, wall_s=time.perf_counter() - start, **fit)
        out.write_text(json.dumps(record, indent=1))  # after each seed, so a stopped run keeps what it finished
    report(args.task, per_seed, args.rows, args.baseline)


def report(task: str, per_seed: dict, rows: int, baseline: str = "--guard 0") -> None:
    """Each seed's runs, then each setting against `baseline` over the seeds that ran both."""
    labels = sorted({label for entry in per_seed.values() for label in entry}, key=lambda name: name != baseline)
    diffs = {label: [] for label in labels if label != baseline}
    scores = {label: [] for label in labels}
    print(f"{task}: each setting against {baseline} of the same seed, first {rows} held-out rows")
    for seed, entry in sorted(per_seed.items()):
        if baseline not in entry:  # nothing to pair against yet: add that seed's run (--seeds or --stored)
            print(f"  seed {seed}: no {baseline} run, so {', '.join(sorted(entry))} left out")
            continue
        refs = entry[baseline]["refs"][:rows]
        primary = entry[baseline]["primary"]
        values = {}
        for label in sorted(entry, key=lambda name: name != baseline):  # the baseline first, to pair against
            e = entry[label]
            assert e["refs"][:rows] == refs, "every run of a seed must be scored on the same rows"
            values[label] = guard_cost.per_row(primary, e["tuned"][:rows], refs)
            scores[label].append(values[label].mean())
            lo, hi = guard_cost.interval(values[label])
            kept = f", kept {e['kept']}/{e['base_correct']}" if e.get("kept") is not None else ""
            if e.get("kept_as_asked") is not None:
                kept += f", {e['kept_as_asked']} with its system prompt (floor {e['as_asked_floor']})"
            line = (f"  seed {seed}, {label:>11}: {values[label].mean():.2f} [{lo:.2f}–{hi:.2f}] "
                    f"(best step {e['best_step']}/{e['steps']}{kept})")
            if label != baseline:
                d = values[label] - values[baseline]
                diffs[label].append(d)
                lo, hi = guard_cost.interval(d)
                line += f"; paired against {baseline} {d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}]"
            print(line)
    for label, values in scores.items():
        if values:
            sd = f" (sd {np.std(values, ddof=1):.2f})" if len(values) > 1 else ""
            print(f"  {label}: mean over {len(values)} seed(s) {np.mean(values):.2f}, "
                  f"spread {min(values):.2f}–{max(values):.2f}{sd}")
    for label, ds in diffs.items():
        if ds:
            d = np.array(ds)
            lo, hi = seeds_and_rows_interval(d)
            print(f"  {label} − {baseline}, mean over {len(ds)} seed(s): {d.mean():+.2f} [{lo:+.2f}, {hi:+.2f}] "
                  f"(seeds and rows resampled)")


if __name__ == "__main__":
    main()
