"""The running batch's key/value memory with and without its bound, on one long prompt among short ones.

    python bench/cache_memory.py [--rows 64] [--long-tokens 4000] [--new 48]

The batch's cache holds slots x the longest row's room. One long prompt (handbook pages, about
`--long-tokens` tokens) arrives with 63 held-out support questions, as a server's clients or an
evaluation file might send them; all go through `generate_ids` (the path evaluation and the server
use), once without a bound (the rule before `--kv-cache-gb`: slots doubled up to the batch's rows,
whatever their length), once with the default bound (4 GiB) but the long row's room kept until the
batch empties (the rule before `Cache.fit_to`), and once with the default bound as it is. Each setting
runs in a process of its own, so each peak resident memory is its own. Prints the peak cache, the
process's peak memory, the most rows at once, the wall time, and whether the settings gave the same
answers.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def texts(tokenizer, rows: int, long_tokens: int) -> list[str]:
    from tailored.data import load_dataset
    from tailored.data.encode import render_prompt

    pages = "\n\n".join(p.read_text(encoding="utf-8") for p in sorted((ROOT / "examples/handbook/pages").glob("*.md")))
    ids = tokenizer(pages, add_special_tokens=False)["input_ids"][:long_tokens]
    long = [{"role": "user", "content": "Summarise these pages:\n\n" + tokenizer.decode(ids)}]
    short = [ex.prompt for ex in load_dataset(ROOT / "examples/support.jsonl").examples[: rows - 1]]
    return [render_prompt(tokenizer, p) for p in [long, *short]]


def one(bound: int, rows: int, long_tokens: int, new: int, keep_room: bool) -> dict:
    import torch

    from tailored.evaluation.generate import generate_ids
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base
    from tailored.models.batch import Batcher
    from tailored.models.decode import Cache, token_bytes

    torch.set_num_threads(2)
    base = resolve_base("smollm2-135m")
    tokenizer, model = load_tokenizer(base), load_causal_lm(base)
    prompts = texts(tokenizer, rows, long_tokens)
    peak, widest, real = [0], [0], Batcher.step

    def watch(self):
        peak[0] = max(peak[0], self.cache.slots * self.cache.capacity)
        widest[0] = max(widest[0], len(self))
        return real(self)

    Batcher.step = watch
    if keep_room:
        Cache.fit_to = lambda self, needs: None
    start = time.perf_counter()
    answers = generate_ids(model, tokenizer, prompts, new, rows, cache_bytes=bound)
    return {"seconds": time.perf_counter() - start, "cache_bytes": peak[0] * token_bytes(model),
            "widest": widest[0], "long_prompt": len(tokenizer(prompts[0], add_special_tokens=False)["input_ids"]),
            "max_rss_bytes": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, "answers": answers}


def main() -> None:
    from tailored.models.batch import CACHE_BYTES

    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=64)
    ap.add_argument("--long-tokens", type=int, default=4000)
    ap.add_argument("--new", type=int, default=48)
    ap.add_argument("--one", type=int, default=None, help=argparse.SUPPRESS)  # a child process: this bound
    ap.add_argument("--keep-room", action="store_true", help=argparse.SUPPRESS)  # ... and the rule before fit_to
    args = ap.parse_args()
    if args.one is not None:
        print(json.dumps(one(args.one, args.rows, args.long_tokens, args.new, args.keep_room)))
        return
    results = {}
    gib = f"bound {CACHE_BYTES / 2**30:g} GiB"
    for name, bound, keep in (("no bound", 1 << 62, False), (f"{gib}, room kept", CACHE_BYTES, True),
                              (f"{gib} (default)", CACHE_BYTES, False)):
        out = subprocess.run([sys.executable, __file__, "--one", str(bound), "--rows", str(args.rows),
                              "--long-tokens", str(args.long_tokens), "--new", str(args.new)]
                             + ["--keep-room"] * keep, check=True, capture_output=True, text=True).stdout
        results[name] = json.loads(out.strip().splitlines()[-1])
    first = next(iter(results.values()))
    print(f"{args.rows} prompts at once: one of {first['long_prompt']} tokens, {args.rows - 1} support questions; "
          f"{args.new} new tokens each, SmolLM2-135M, fp32")
    for name, r in results.items():
        print(f"  {name:26s} peak cache {r['cache_bytes'] / 2**30:6.2f} GiB   peak process memory "
              f"{r['max_rss_bytes'] / 2**30:6.2f} GiB   most rows at once {r['widest']:3d}   {r['seconds']:6.1f} s")
    a, *others = (r["answers"] for r in results.values())
    print("  same answers as without a bound: " + ", ".join(f"{sum(x == y for x, y in zip(a, b))}/{len(a)}"
                                                          for b in others))


if __name__ == "__main__":
    main()
