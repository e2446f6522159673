"""Answering in bf16 autocast against fp32 on this CPU: time, and whether the answers stay the same.

    python bench/bf16_answers.py [RUN] [--data FILE] [--rows 60] [--alone 12] [--max-new-tokens 64]

`device.generation_bf16` makes CPUs answer in fp32. Its reasons were measured on a CPU with avx512_bf16
but no AMX: bf16 was slower there, and it gave a row joining a running batch a different answer than
alone. This checks both on the machine it runs on, for the untuned base (RUN omitted) or a run:

- the batched evaluator (64 rows at once) on `--rows` held-out rows, fp32 then bf16: seconds, and how
  many answers are the same in both;
- in bf16, the first `--alone` rows each answered alone against their answer in the batch: how many agree
  (fp32 agrees on all of them: tests/test_decode.py).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tailored.data import load_dataset  # noqa: E402
from tailored.data.encode import render_prompt  # noqa: E402
from tailored.device import choose_bf16  # noqa: E402
from tailored.evaluation.generate import generate_ids  # noqa: E402


def timed(model, tokenizer, texts, max_new: int, bf16: bool, batch: int = 64):
    start = time.perf_counter()
    ids = generate_ids(model, tokenizer, texts, max_new, batch_size=batch, bf16=bf16)
    return time.perf_counter() - start, ids


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", default=None, help="a run (name or folder); the untuned base if omitted")
    ap.add_argument("--data", default="examples/support.heldout.jsonl")
    ap.add_argument("--rows", type=int, default=60)
    ap.add_argument("--alone", type=int, default=12)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    torch.set_num_threads(2)
    if args.run:
        from tailored.tuned import load

        tuned = load(args.run)
        model, tokenizer = tuned.model, tuned.tokenizer
    else:
        from tailored.models import load_causal_lm, load_tokenizer, resolve_base

        base = resolve_base("smollm2-135m")
        model, tokenizer = load_causal_lm(base), load_tokenizer(base)
    rows = load_dataset(args.data).examples[: args.rows]
    texts = [render_prompt(tokenizer, ex.prompt) for ex in rows]
    native = choose_bf16(None, torch.device("cpu"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, native bf16: {native}, "
          f"{args.run or 'the base'}, {len(texts)} rows of {args.data}, at most {args.max_new_tokens} new tokens")
    timed(model, tokenizer, texts[:4], 8, False)  # warm both paths before timing
    timed(model, tokenizer, texts[:4], 8, True)
    fp32_s, fp32 = timed(model, tokenizer, texts, args.max_new_tokens, False)
    bf16_s, bf16 = timed(model, tokenizer, texts, args.max_new_tokens, True)
    tokens = sum(len(r) for r in fp32)
    same = sum(a == b for a, b in zip(fp32, bf16))
    print(f"batched, 64 rows at once: fp32 {fp32_s:.1f} s ({tokens / fp32_s:.1f} tok/s), "
          f"bf16 {bf16_s:.1f} s ({sum(len(r) for r in bf16) / bf16_s:.1f} tok/s): bf16 x{fp32_s / bf16_s:.2f} faster; "
          f"same answers {same}/{len(texts)}")
    n = min(args.alone, len(texts))
    alone_s = time.perf_counter()
    alone = [timed(model, tokenizer, [t], args.max_new_tokens, True, batch=1)[1][0] for t in texts[:n]]
    alone_s = time.perf_counter() - alone_s
    agree = sum(a == b for a, b in zip(alone, bf16[:n]))
    print(f"bf16, each of the first {n} rows alone ({alone_s:.1f} s) against its answer in the batch: "
          f"{agree}/{n} the same")


if __name__ == "__main__":
    main()
