"""Do documents teach facts? The handbook example trained with and without its pages, side by side.

    python bench/documents.py [--out bench/documents.json]

examples/handbook/ holds a made-up product handbook and FAQ pairs on half of its facts; its held-out
questions ask about the other half, in words of their own, so a model can answer them only from the
handbook. tailored trains three times with every default: on the FAQ pairs alone; with
`--documents examples/handbook/pages --retrieve 0` (the pages learned on every token, nothing in the
prompt); and with `--documents examples/handbook/pages` (the default: the pages learned, and the 3
closest passages in every question's system message). All answer the same held-out questions. The
script prints each run's fact recall (answers that state the key fact) with its 95% interval, the
base's (without passages, and with the same passages as the retrieval run), and differences with
paired 95% bootstrap intervals (questions resampled together), plus general answers kept and the
training time of each run.
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
HANDBOOK = ROOT / "examples" / "handbook"
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from settings import paired_interval  # noqa: E402


def train(name: str, runs: Path, documents: str | None, retrieve: int = 3) -> dict:
    import tailored
    from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
    from tailored.evaluation.metrics import contains_fact

    heldout = [json.loads(line) for line in (HANDBOOK / "faq.heldout.jsonl").read_text().splitlines() if line]
    started = time.perf_counter()
    run = tailored.train(str(HANDBOOK / "faq.jsonl"), TrainConfig(), DataConfig(documents=documents, retrieve=retrieve),
                         EvalConfig(samples=0), RunConfig(runs_dir=str(runs), name=name), quiet=True)
    c = run.comparison
    facts = {i + 1: r["fact"] for i, r in enumerate(heldout)}  # by the held-out file's line, as rows carry it
    tuned = np.array([contains_fact(row["tuned"], facts[row["line"]]) for row in c.rows], dtype=float)
    base = np.array([contains_fact(row["base"], facts[row["line"]]) for row in c.rows], dtype=float)
    fg = c.review.get("forgetting") or {}
    return {"run": name, "documents": documents, "retrieve": retrieve if documents else 0, "fact_recall": c.tuned["fact_recall"],
            "fact_recall_ci": c.tuned_ci.get("fact_recall"), "base_fact_recall": c.base["fact_recall"],
            "base_fact_recall_ci": c.base_ci.get("fact_recall"), "tuned_rows": tuned.tolist(),
            "base_rows": base.tolist(), "steps": run.fit.steps,
            "train_s": run.fit.seconds, "wall_s": time.perf_counter() - started,
            "general_kept": {k: fg.get(k) for k in ("kept", "base_correct", "kept_share", "kept_ci", "floor")},
            "answers": [{"question": row["prompt"], "fact": facts[row["line"]], "tuned": row["tuned"]}
                        for row in c.rows]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(ROOT / "bench" / "documents.json"))
    args = ap.parse_args()
    runs = Path(tempfile.mkdtemp(prefix="documents-"))
    pages = str(HANDBOOK / "pages")
    results = [train("faq-only", runs, None), train("faq-and-pages-no-retrieval", runs, pages, retrieve=0),
               train("faq-and-pages", runs, pages)]
    Path(args.out).write_text(json.dumps(results, indent=1))
    faq, learned, grounded = results
    n = len(faq["tuned_rows"])
    fmt = lambda v, ci: f"{v:.1f} [{ci[0]:.1f}–{ci[1]:.1f}]" if ci else f"{v:.1f}"  # noqa: E731
    print(f"\n{n} held-out questions whose answers are only in the handbook\n")
    print("| run | fact recall | right answers | general answers kept | steps | training |")
    print("|---|---|---|---|---|---|")
    for label, r in (("base, as asked", faq), ("base, with the 3 passages", grounded)):
        print(f"| {label} | {fmt(r['base_fact_recall'], r['base_fact_recall_ci'])} | "
              f"{int(sum(r['base_rows']))}/{n} | — | — | — |")
    for r in results:
        g = r["general_kept"]
        kept = f"{g['kept']}/{g['base_correct']} ({g['kept_share']:.0f}%)" if g.get("kept_share") is not None else "—"
        print(f"| {r['run']} | {fmt(r['fact_recall'], r['fact_recall_ci'])} | {int(sum(r['tuned_rows']))}/{n} | "
              f"{kept} | {r['steps']} | {r['train_s']:.0f} s |")
    print()
    for label, a, b in (("FAQ + pages (default) minus FAQ only", grounded["tuned_rows"], faq["tuned_rows"]),
                        ("FAQ + pages, no retrieval, minus FAQ only", learned["tuned_rows"], faq["tuned_rows"]),
                        ("FAQ + pages (default) minus the base with the same passages", grounded["tuned_rows"],
                         grounded["base_rows"])):
        low, high = paired_interval(np.array(a), np.array(b), resamples=4000)
        diff = 100 * (np.mean(a) - np.mean(b))
        print(f"{label}: {diff:+.1f} points, paired 95% interval [{low:+.1f}, {high:+.1f}]"
              f" ({'better beyond the interval' if low > 0 else 'worse beyond the interval' if high < 0 else 'not separable'})")


if __name__ == "__main__":
    main()
