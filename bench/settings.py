"""Are the automatic settings right on real data? Defaults against nearby alternatives, side by side.

    python bench/settings.py [--tasks clinc150_8,usaddress_fields,sgd_responses,tweeteval_emotion,nlupp_slots]
                             [--settings "lr x3,epochs x2"] [--out bench/settings.json]

For each task (the seeded subsamples of bench/quality.py, smaller for generation so the sweep fits
on 2 cores), tailored trains once with every default, then once per alternative with one setting
moved: learning rate x0.3 and x3, epochs halved and doubled, LoRA rank 8 and 32 (generation only),
and plain random batch order instead of length-grouped batches. Each alternative is scored on the
same held-out rows as the default, and its difference from the default gets a paired 95% bootstrap
interval (rows resampled together), so "loses beyond the interval" means the whole interval is
on one side of zero. The guard is on (the default); the general-ability check is off to save time.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from quality import TASKS, split_rows, write  # noqa: E402

SIZES = {"generate": (200, 80)}  # train rows, held-out rows for generation tasks (classifiers as in quality.py)


def per_row(preds: list[str], refs: list[str], primary: str) -> np.ndarray:
    """The primary metric row by row, for the paired bootstrap (corpus figures come from `score`)."""
    from tailored.evaluation.metrics import leaves, parse_object, rouge_l_rows

    if primary == "accuracy":
        return np.array([float(p == r) for p, r in zip(preds, refs)])
    if primary == "rouge_l":
        return np.array(rouge_l_rows(preds, refs)) / 100  # shares, like the other metrics' rows
    values = []
    for p, r in zip(preds, refs):  # field F1 per row: matching leaves over leaves predicted and expected
        want, got = leaves(parse_object(r) or {}), leaves(parse_object(p) or {})
        hits = sum(1 for k, v in got.items() if want.get(k) == v)
        values.append(2 * hits / (len(want) + len(got)) if want or got else 1.0)
    return np.array(values)


def paired_interval(alt: np.ndarray, default: np.ndarray, seed: int = 0, resamples: int = 2000) -> list[float]:
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(alt), size=(resamples, len(alt)))
    diffs = (alt[idx] - default[idx]).mean(1) * 100
    return [float(np.percentile(diffs, 2.5)), float(np.percentile(diffs, 97.5))]


def train_and_score(name: str, folder: Path, label: str, overrides: dict) -> dict:
    import tailored
    from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
    from tailored.evaluation.compare import answer_budget, score
    from tailored.runs import read_json

    task = TASKS[name][1]
    data, heldout = folder / f"{name}.jsonl", folder / f"{name}.heldout.jsonl"
    started = time.perf_counter()
    run = tailored.train(data, TrainConfig(task=task, **overrides), DataConfig(), EvalConfig(samples=0),
                         RunConfig(runs_dir=str(folder / "runs"), name=f"{name}-{label}", evaluate=False), quiet=True)
    model = tailored.load(run.path)
    test = [json.loads(line) for line in heldout.read_text().splitlines()]
    refs = [r["label"] if task == "classify" else r["output"] for r in test]
    prompts = [r["text"] if task == "classify" else r["input"] for r in test]
    preds = model.generate(prompts, answer_budget(model.tokenizer, refs, EvalConfig()) if task != "classify" else 1)
    values, intervals = score(preds, refs, model.labels)
    primary = "accuracy" if task == "classify" else ("field_f1" if "field_f1" in values else "rouge_l")
    trained = read_json(run.path / "config.json")["train"]
    return {"task": name, "setting": label, "primary": primary, "value": values[primary],
            "ci": intervals.get(primary), "rows": per_row(preds, refs, primary).tolist(),
            "epochs": trained["epochs"], "learning_rate": trained["learning_rate"], "lora_rank": trained["lora_rank"],
            "steps": run.fit.steps, "best_step": run.fit.best_step, "train_s": run.fit.seconds,
            "wall_s": time.perf_counter() - started}


def alternatives(default: dict, task: str) -> dict[str, dict]:
    lr, epochs = default["learning_rate"], default["epochs"]
    alts = {"lr x0.3": {"learning_rate": lr * 0.3}, "lr x3": {"learning_rate": lr * 3},
            "epochs /2": {"epochs": max(1, epochs // 2)}, "epochs x2": {"epochs": epochs * 2}}
    if task == "generate":
        alts |= {"rank 8": {"lora_rank": 8}, "rank 32": {"lora_rank": 32}}
    alts["random order"] = {"batch_order": "random"}
    return alts


def table(results: list[dict]) -> str:
    lines = ["| task | metric | default | setting | alternative | difference [paired 95% CI] | verdict |",
             "|---|---|---|---|---|---|---|"]
    defaults = {r["task"]: r for r in results if r["setting"] == "default"}
    for r in results:
        if r["setting"] == "default":
            continue
        d = defaults[r["task"]]
        low, high = paired_interval(np.array(r["rows"]), np.array(d["rows"]))
        verdict = "default loses" if low > 0 else "default wins" if high < 0 else "within the interval"
        # the difference of the row means, which the interval is about; field F1 over all fields (the value
        # columns) weighs rows by their field count and can differ from it
        diff = 100 * (np.mean(r["rows"]) - np.mean(d["rows"]))
        lines.append(f"| {r['task']} | {r['primary']} | {d['value']:.1f} ({d['epochs']} ep, lr {d['learning_rate']:g}) "
                     f"| {r['setting']} | {r['value']:.1f} | {diff:+.1f} [{low:+.1f}, {high:+.1f}] "
                     f"| {verdict} |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="clinc150_8,usaddress_fields,sgd_responses,tweeteval_emotion,nlupp_slots")
    ap.add_argument("--settings", default=None,
                    help="Only these alternatives, comma-separated (e.g. 'lr x3'), to check one finding on more tasks")
    ap.add_argument("--out", default=str(ROOT / "bench" / "settings.json"))
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="settings-"))
    out, names = Path(args.out), args.tasks.split(",")
    # tasks measured by an earlier run stay in the file; the ones run now replace theirs
    kept = [r for r in json.loads(out.read_text()) if r["task"] not in names] if out.exists() else []
    results, started = [], time.perf_counter()
    for name in names:
        task = TASKS[name][1]
        train, test = split_rows(name)
        if task in SIZES:
            train, test = train[: SIZES[task][0]], test[: SIZES[task][1]]
        write(folder / f"{name}.jsonl", train)
        write(folder / f"{name}.heldout.jsonl", test)
        default = train_and_score(name, folder, "default", {})
        results.append(default)
        print(json.dumps({k: v for k, v in default.items() if k != "rows"}), flush=True)
        for label, overrides in alternatives(default, task).items():
            if args.settings and label not in args.settings.split(","):
                continue
            results.append(train_and_score(name, folder, label, overrides))
            print(json.dumps({k: v for k, v in results[-1].items() if k != "rows"}), flush=True)
            out.write_text(json.dumps(kept + results, indent=1))
        print(table(kept + results), flush=True)
    print(f"\ntotal wall time {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
