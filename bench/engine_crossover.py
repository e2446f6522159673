"""How many prompts before torch's batched decode beats llama.cpp answering them one at a time?

    python bench/engine_crossover.py [RUN] [--sizes 1,2,4,8,16]

`load(RUN).generate(list)` under the `auto` engine answers a few prompts through llama.cpp (fast for one
stream) and more through torch's batch; `tuned.AUTO_LLAMA_CPP_MOST` is where it switches. This prints,
for each number of support held-out prompts (48 new tokens at most), the seconds each engine takes and
whether their answers are the same, timed alternately in one process so machine drift hits both.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from tailored.tuned import AUTO_LLAMA_CPP_MOST, Tuned

    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", default=str(ROOT / "runs" / "support" / "v1"))
    ap.add_argument("--sizes", default="1,2,4,8,16")
    ap.add_argument("--rows", default=str(ROOT / "examples" / "support.heldout.jsonl"))
    args = ap.parse_args()
    torch_engine, llama = Tuned(Path(args.run), "torch"), Tuned(Path(args.run), "llama.cpp")
    convs = [json.loads(line)["messages"][:-1] for line in Path(args.rows).read_text().splitlines() if line]
    torch_engine.answer(convs[:1], 8), llama.answer(convs[:1], 8)  # warm both (llama.cpp writes its GGUF once)
    print(f"auto switches to torch above {AUTO_LLAMA_CPP_MOST} prompts\n")
    print("| prompts | torch, batched | llama.cpp, one at a time | torch / llama.cpp | same answers |")
    print("|---|---|---|---|---|")
    start = 0
    for n in map(int, args.sizes.split(",")):
        batch = convs[start:start + n]
        start += n  # fresh prompts for each size, so no engine answers a prompt twice
        began = time.perf_counter()
        a = torch_engine.answer(batch, 48, batch_size=16)
        torch_s = time.perf_counter() - began
        began = time.perf_counter()
        b = llama.answer(batch, 48)
        llama_s = time.perf_counter() - began
        print(f"| {n} | {torch_s:.2f} s | {llama_s:.2f} s | {torch_s / llama_s:.2f} | "
              f"{sum(x == y for x, y in zip(a, b))}/{n} |", flush=True)


if __name__ == "__main__":
    main()
