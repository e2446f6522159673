"""The machine's measured bf16 matmul peak with 2 threads: the ceiling training throughput is compared to.

    python bench/matmul_peak.py [--threads 2] [--seconds 3]

Times square and training-shaped bf16 GEMMs and prints the best sustained FLOP/s as JSON.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

# (m, k, n): large squares, and the shapes of SmolLM2-135M's projections for a ~1,150-token batch.
SHAPES = [(2048, 2048, 2048), (4096, 4096, 4096), (1152, 576, 1536), (1152, 1536, 576), (1152, 576, 576)]


def measure(m: int, k: int, n: int, dtype: torch.dtype, seconds: float) -> float:
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        runs += 1
    return 2 * m * k * n * runs / (time.perf_counter() - start)


def peak(threads: int = 2, seconds: float = 3.0) -> dict:
    torch.set_num_threads(threads)
    results = {f"{m}x{k}x{n}": measure(m, k, n, torch.bfloat16, seconds) for m, k, n in SHAPES}
    fp32 = measure(2048, 2048, 2048, torch.float32, seconds)
    return {"threads": threads, "bf16_flops": results, "bf16_peak": max(results.values()), "fp32_2048": fp32}


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=3.0)
    args = ap.parse_args()
    out = peak(args.threads, args.seconds)
    for shape, flops in out["bf16_flops"].items():
        print(f"bf16 {shape:>16}: {flops / 1e9:7.1f} GFLOP/s")
    print(f"fp32 2048x2048x2048: {out['fp32_2048'] / 1e9:.1f} GFLOP/s")
    print(json.dumps({"bf16_peak": out["bf16_peak"], "threads": args.threads}))
