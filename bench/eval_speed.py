"""How long base-vs-tuned evaluation takes, batched against one row at a time.

    python bench/eval_speed.py [RUN] [--data FILE] [--rows 200] [--single-rows 40]

Generates (greedy, KV cache, at most --max-new-tokens each) for base and tuned on --rows rows with
the batched evaluator, then on the first --single-rows rows both batched and one row at a time, and
prints the times and the ratio measured on those same rows.
"""

from __future__ import annotations

import argparse
import time

import torch

from tailored.config import EvalConfig
from tailored.data import load_dataset
from tailored.evaluation.compare import compare
from tailored.tuned import load


def timed(tuned, rows, batch: int, max_new: int) -> tuple[float, object]:
    start = time.perf_counter()
    result = compare(tuned.model, tuned.tokenizer, rows, tuned.labels,
                     EvalConfig(max_new_tokens=max_new, eval_batch_size=batch), tuned.bf16)
    return time.perf_counter() - start, result


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", default="support")
    ap.add_argument("--data", default="examples/support.jsonl")
    ap.add_argument("--rows", type=int, default=200)
    ap.add_argument("--single-rows", type=int, default=40)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    tuned = load(args.run)
    rows = load_dataset(args.data, labels=tuned.labels).examples[: args.rows]
    full, result = timed(tuned, rows, 16, args.max_new_tokens)
    print(f"{len(rows)} rows, base + tuned, batched (16): {full:.1f}s "
          f"({result.primary} {result.base[result.primary]:.1f} → {result.tuned[result.primary]:.1f})")
    few = rows[: args.single_rows]
    batched, _ = timed(tuned, few, 16, args.max_new_tokens)
    single, _ = timed(tuned, few, 1, args.max_new_tokens)
    print(f"{len(few)} rows, base + tuned: batched {batched:.1f}s, one at a time {single:.1f}s → "
          f"{single / batched:.2f}x faster batched; one at a time would take ~{single / len(few) * len(rows):.0f}s "
          f"for {len(rows)} rows")


if __name__ == "__main__":
    main()
