"""The router on finished runs: what `tailor eval` reports once a run routes, paired with what it reported before.

    TAILORED_CACHE=<the runs' cache> python bench/router.py RUN [RUN ...] [--out FILE]

A run trained before routers (or with --no-route) has no `router.safetensors`. This copies each run, fits the
router its training would have fitted (`models/router.py`: its training inputs against the guard's general
requests, checked on its validation inputs), and evaluates the copy on the run's own held-out file as
`tailor eval` does. The run's stored answers are the unrouted figures, so every difference is paired per row; the
copy's "adapter alone" figure must repeat the run's own kept count, which the script checks. It also counts how
many of people's general requests it has never seen, the 252 `user_oriented_eval` instructions of
selfinstruct_human, the router sends to the base. The base's answers come from the cache, so point
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

from tailored.config import DataConfig, EvalConfig  # noqa: E402
from tailored.data.prepare import load_splits  # noqa: E402
from tailored import guard  # noqa: E402
from tailored.pipeline import evaluate  # noqa: E402

SELFINSTRUCT = Path(__file__).resolve().parents[2] / "shared" / "realdata" / "selfinstruct_human.jsonl"


def people_requests() -> list[str]:
    """selfinstruct_human's 252 `user_oriented_eval` instructions: people's general requests, never trained on."""
    rows = [json.loads(line) for line in SELFINSTRUCT.read_text().splitlines()]
    return [r["input"] for r in rows if r["split"] == "user_oriented_eval"]


def refit(run: Path) -> tuple[object, dict]:
    """The finished run's training splits, with `prep.router` fitted and checked as its training fits it."""
    lineage, cfg = (json.loads((run / name).read_text()) for name in ("run.json", "config.json"))
    prep = load_splits(lineage["data"]["train"]["path"], DataConfig(**cfg["data"]), cfg["train"]["seed"])
    return prep, guard.fit_router(prep)


def routed_copy(run: Path, folder: Path) -> tuple[Path, object, dict]:
    """A copy of `run` with the router its training would have kept (none if the check turned it off)."""
    copy = folder / run.parent.name / f"{run.name}-routed"
    shutil.copytree(run, copy, ignore=shutil.ignore_patterns("report.html", "checkpoints", "router.safetensors"))
    prep, found = refit(run)
    if prep.router:
        prep.router.save(copy)
    return copy, prep.router, found


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--out", default=None, help="write the figures as JSON here")
    args = ap.parse_args()
    people = people_requests()
    folder = Path(tempfile.mkdtemp(prefix="router-"))
    record = []
    print("| run | validation inputs to the base | held-out rows to the base | primary (row mean): run → routed, "
          "paired | general questions to the base | kept of the base's right: adapter → routed [95%] | asked with "
          "the run's prompt: adapter → routed (floor) | selfinstruct requests to the base | eval s |")
    print("|---|---|---|---|---|---|---|---|---|")
    for run in map(Path, args.runs):
        metrics = json.loads((run / "metrics.json").read_text())["eval"]
        refs = [r["expected"] for r in metrics["rows"]]
        own = guard_cost.per_row(metrics["primary"], [r["tuned"] for r in metrics["rows"]], refs)
        heldout = json.loads((run / "run.json").read_text())["data"]["heldout"]["path"]
        copy, router, found = routed_copy(run, folder)
        start = time.perf_counter()
        c = evaluate(copy, heldout, EvalConfig(samples=0), quiet=True)
        seconds = time.perf_counter() - start
        if [r["expected"] for r in c.rows] != refs:
            sys.exit(f"{run}: the held-out rows differ from the ones the run stored")
        fg, stored = c.review["forgetting"], metrics["review"]["forgetting"]
        alone = (fg.get("adapter") or fg)["kept"]
        if alone != stored["kept"]:
            sys.exit(f"{run}: the adapter alone kept {alone} here, {stored['kept']} in the run's own evaluation")
        routed = guard_cost.per_row(c.primary, [r["tuned"] for r in c.rows], refs)
        diff = routed - own
        dlow, dhigh = guard_cost.interval(diff)
        asked = fg.get("as_asked") or {}
        asked_text = (f"{asked.get('adapter_kept', asked['kept'])} → {asked['kept']} ({asked['floor']['kept']})"
                      if asked else "—")
        to_base = sum(router.to_base([[{"role": "user", "content": p}] for p in people])) if router else 0
        print(f"| {run.parent.name} | {found['valid_to_base']}/{found['valid']}{'' if found['kept'] else ' (off)'} | "
              f"{c.routed or 0}/{len(c.rows)} | {own.mean():.2f} → {routed.mean():.2f}, {diff.mean():+.2f} "
              f"[{dlow:+.2f}, {dhigh:+.2f}] | {fg.get('routed', 0)}/{fg['questions']} | {alone} → {fg['kept']} of "
              f"{fg['base_correct']} [{fg['kept_ci'][0]:.1f}–{fg['kept_ci'][1]:.1f}%] | {asked_text} | "
              f"{to_base}/{len(people)} | {seconds:.0f} |", flush=True)
        record.append({"run": str(run), "primary": c.primary, "router": found, "heldout_to_base": c.routed or 0,
                       "heldout": len(c.rows), "run_score": float(own.mean()), "routed_score": float(routed.mean()),
                       "paired": [float(diff.mean()), dlow, dhigh], "questions_to_base": fg.get("routed", 0),
                       "kept_adapter": alone, "kept_routed": fg["kept"], "of": fg["base_correct"],
                       "kept_ci": fg["kept_ci"], "as_asked": asked.get("kept"),
                       "as_asked_adapter": asked.get("adapter_kept"), "floor": (asked.get("floor") or {}).get("kept"),
                       "selfinstruct_to_base": to_base, "selfinstruct": len(people), "eval_s": seconds})
    if args.out:
        Path(args.out).write_text(json.dumps(record, indent=1))
    shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
