"""The adapter scaled down after training: what it keeps of the base against what the task loses.

    TAILORED_CACHE=<the runs' cache> python bench/adapter_scale.py RUN [RUN ...] [--scales 0.75 0.5]

A LoRA run's weights are the base's plus the adapter's product B·A. Multiplying B by s < 1 moves the weights
back along the straight line to the base (weight interpolation, as WiSE-FT does for full fine-tuning), with no
training. This copies each finished run, scales its adapter, and evaluates the copy on the run's own held-out
file exactly as `tailor eval` does: the task's primary metric, and the general check (kept of the base's right
answers, with no prompt and asked with the run's system prompt). The run at scale 1 is read from the answers it
stored, so every difference is paired per row. The base's answers come from the cache, so point
TAILORED_CACHE at the one the runs were trained with.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import guard_cost  # noqa: E402  (per-row scoring and the row bootstrap)

from tailored.config import EvalConfig  # noqa: E402
from tailored.pipeline import evaluate  # noqa: E402


def scaled_copy(run: Path, scale: float, folder: Path) -> Path:
    """A copy of `run` whose adapter's B matrices are multiplied by `scale`."""
    from safetensors.torch import load_file, save_file

    copy = folder / run.parent.name / f"{run.name}-x{scale}"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report.html", "checkpoints"))
    weights = copy / "adapter" / "adapter_model.safetensors"
    tensors = load_file(weights)
    if not any(".lora_B." in name for name in tensors):
        sys.exit(f"{run}: no lora_B weights in its adapter")
    save_file({k: v * scale if ".lora_B." in k else v for k, v in tensors.items()}, weights)
    return copy


def summary(primary: str, rows: list[str], refs: list[str], review: dict) -> dict:
    fg = review.get("forgetting") or {}
    asked = fg.get("as_asked") or {}
    values = guard_cost.per_row(primary, rows, refs)
    return {"values": values, "kept": fg.get("kept"), "of": fg.get("base_correct"),
            "as_asked": asked.get("kept"), "floor": (asked.get("floor") or {}).get("kept"),
            "json": asked.get("task_form")}  # general answers in the task's JSON, asked with the run's prompt


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--scales", type=float, nargs="+", default=[0.75, 0.5])
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="adapter-scale-"))
    record = []
    print("| run | adapter scale | primary (row mean) [95%] | against scale 1, paired | kept of the base's right "
          "| kept with the run's prompt (floor) | eval s |")
    print("|---|---|---|---|---|---|---|")
    for run in map(Path, args.runs):
        metrics = json.loads((run / "metrics.json").read_text())["eval"]
        refs = [r["expected"] for r in metrics["rows"]]
        full = summary(metrics["primary"], [r["tuned"] for r in metrics["rows"]], refs, metrics["review"])
        heldout = json.loads((run / "run.json").read_text())["data"]["heldout"]["path"]
        results = [(1.0, full, 0.0)]
        for scale in args.scales:
            start = time.perf_counter()
            c = evaluate(scaled_copy(run, scale, folder), heldout, EvalConfig(samples=0), quiet=True)
            if [r["expected"] for r in c.rows] != refs:
                sys.exit(f"{run}: the held-out rows differ from the ones the run stored")
            results.append((scale, summary(c.primary, [r["tuned"] for r in c.rows], refs, c.review),
                            time.perf_counter() - start))
        for scale, s, seconds in results:
            low, high = guard_cost.interval(s["values"])
            diff = s["values"] - full["values"]
            dlow, dhigh = guard_cost.interval(diff)
            json_note = "" if s["json"] is None else f", {s['json']} in JSON"
            paired = "—" if scale == 1.0 else f"{diff.mean():+.2f} [{dlow:+.2f}, {dhigh:+.2f}]"
            print(f"| {run.parent.name} | {scale:g} | {s['values'].mean():.2f} [{low:.2f}–{high:.2f}] "
                  f"| {paired} | {s['kept']} of {s['of']} | {s['as_asked']} ({s['floor']}){json_note} | {seconds:.0f} |",
                  flush=True)
            record.append({"run": str(run), "scale": scale, "primary": metrics["primary"],
                           "mean": float(s["values"].mean()), "paired": float(diff.mean()),
                           "kept": s["kept"], "of": s["of"], "as_asked": s["as_asked"], "floor": s["floor"],
                           "json": s["json"]})
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
