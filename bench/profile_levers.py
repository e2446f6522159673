"""Where a training step's time goes, with each speed-up of tailored/training/fast_path.py on and off.

    python bench/profile_levers.py [--steps 8]

Each configuration runs in its own process on the same batches (SmolLM2-135M, LoRA r=16, the
train_vs_trl.py data, micro-batches of 1,024 tokens, bf16 autocast, 2 threads): 3 warm-up steps, then
`--steps` timed steps, then the same steps again under torch.profiler, whose self CPU times are summed
into the categories below (milliseconds per step). "outside ops" is wall time the profiler did not
attribute to any op: Python, autograd bookkeeping and waiting. (Counting FLOPs in the profiler,
with_flops=True, slowed every op by about a third, so the split would no longer be the real one.)
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LEVERS = ("attention", "head_loss", "fused_lora", "norm_cast")
CONFIGS = {"none": set(), **{f"all but {lever}": set(LEVERS) - {lever} for lever in LEVERS}, "all": set(LEVERS)}
CATEGORIES = {
    "GEMM": ("aten::mm", "aten::bmm", "aten::addmm", "aten::baddbmm"),
    "attention": ("aten::_scaled_dot_product_flash_attention_for_cpu",
                  "aten::_scaled_dot_product_flash_attention_for_cpu_backward", "aten::_softmax",
                  "aten::_softmax_backward_data", "aten::masked_fill_", "aten::masked_fill"),
    "head loss": ("aten::_log_softmax", "aten::_log_softmax_backward_data", "aten::nll_loss_forward",
                  "aten::nll_loss_backward", "aten::exp_", "aten::fill_"),
    "casts/copies": ("aten::copy_", "aten::_to_copy", "aten::clone"),
    "elementwise": ("aten::mul", "aten::mul_", "aten::add", "aten::add_", "aten::pow", "aten::rsqrt", "aten::silu",
                    "aten::silu_backward", "aten::neg", "aten::cat", "aten::sum", "aten::mean", "aten::div",
                    "aten::sub", "aten::sqrt", "aten::lerp_", "aten::addcmul_", "aten::addcdiv_", "aten::where"),
}


def worker(name: str, steps: int, out: Path) -> None:
    import torch

    torch.set_num_threads(2)
    sys.path.insert(0, str(ROOT))
    sys.path.insert(0, str(ROOT / "bench"))
    from torch.profiler import profile
    from train_vs_trl import make_conversations

    from tailored.config import TrainConfig
    from tailored.data.encode import encode_many
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base
    from tailored.data.encode import collate
    from tailored.training import fast_path, lora
    from tailored.training.batches import length_grouped_batches, micro_batches
    base = resolve_base("smollm2-135m")
    tok, model = load_tokenizer(base), load_causal_lm(base)
    encoded = [e for e in encode_many(tok, make_conversations(240, seed=1)) if 60 <= len(e.input_ids) <= 400][:200]
    model = lora.setup(model, TrainConfig(lora_rank=16, lora_alpha=32, seed=0))
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    batches = length_grouped_batches([len(e.input_ids) for e in encoded], 8, 0, 0)

    def step(ids) -> int:
        tokens = 0
        for chunk in micro_batches([encoded[i] for i in ids], 1024):
            batch = collate(chunk, tok.pad_token_id)
            with torch.autocast("cpu", dtype=torch.bfloat16):
                loss, *_ = lora.loss(model, batch)
            (loss / 1000).backward()
            tokens += int(batch["attention_mask"].sum())
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        return tokens

    model.train()
    with fast_path.training_kernels(model, bf16=True, levers=frozenset(CONFIGS[name])):
        for ids in batches[:3]:
            step(ids)
        timed = batches[3 : 3 + steps]
        start = time.perf_counter()
        tokens = sum(step(ids) for ids in timed)
        seconds = time.perf_counter() - start
        with profile() as prof:
            start = time.perf_counter()
            for ids in timed:
                step(ids)
            profiled = time.perf_counter() - start
    by_op = {e.key: e.self_cpu_time_total / 1000 for e in prof.key_averages()}  # ms
    split = {c: sum(by_op.get(op, 0.0) for op in ops) for c, ops in CATEGORIES.items()}
    split["other ops"] = sum(by_op.values()) - sum(split.values())
    split["outside ops"] = profiled * 1000 - sum(by_op.values())
    out.write_text(json.dumps({"name": name, "tokens_per_second": tokens / seconds,
                               "ms_per_step": 1000 * seconds / len(timed),
                               "split": {k: v / len(timed) for k, v in split.items()}}))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=8)
    ap.add_argument("--worker")
    ap.add_argument("--out")
    args = ap.parse_args()
    if args.worker:
        return worker(args.worker, args.steps, Path(args.out))
    rows = []
    for name in CONFIGS:
        with tempfile.NamedTemporaryFile(suffix=".json") as f:
            subprocess.run([sys.executable, __file__, "--worker", name, "--steps", str(args.steps), "--out", f.name],
                           check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            rows.append(json.loads(Path(f.name).read_text()))
    columns = list(rows[0]["split"])
    print(f"{'configuration':>22} {'tok/s':>7} {'ms/step':>8} " + " ".join(f"{c:>12}" for c in columns))
    for r in rows:
        print(f"{r['name']:>22} {r['tokens_per_second']:7.1f} {r['ms_per_step']:8.0f} "
              + " ".join(f"{r['split'][c]:12.0f}" for c in columns))
    everything = next(r for r in rows if r["name"] == "all")
    for r in rows:
        if r["name"].startswith("all but"):
            lever = r["name"].removeprefix("all but ")
            print(f"{lever}: {everything['tokens_per_second'] / r['tokens_per_second']:.2f}x tokens/s "
                  f"({r['ms_per_step']:.0f} -> {everything['ms_per_step']:.0f} ms/step)")
    none = next(r for r in rows if r["name"] == "none")
    print(f"all levers against none: {everything['tokens_per_second'] / none['tokens_per_second']:.2f}x")


if __name__ == "__main__":
    main()
