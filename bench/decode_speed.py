"""Decode speed: transformers' `model.generate`, tailored's decode loop and llama.cpp, side by side in one run.

    python bench/decode_speed.py RUN [--data FILE] [--prompts 4] [--new-tokens 64] [--rows 32] [--gguf FILE]

On the same run (base + LoRA adapter) and the same rendered prompts:
1. single stream: each prompt alone, greedy, exactly --new-tokens new tokens (stop tokens ignored so every
   engine does the same work). The prompt's prefill is timed apart, so "decode tok/s" is new tokens per
   second of decoding alone, and "end to end" includes the prefill;
2. answers: greedy with stop tokens on --rows held-out rows, batched 16 as evaluation does, for the
   tuned model and the base (adapter off), with both tailored paths. Prints the time and how many answers
   are identical. llama.cpp's answers to the same rows (one at a time) are compared with tailored's.
   The run's adapter merged into a copy of the base weights is timed beside them, and its answers compared;
3. the predict path: `load(RUN, engine=...).generate` one prompt at a time on the same rows, with the
   torch engine and the llama.cpp engine (the run as an f32 GGUF), against llama.cpp on the f16 export.

llama.cpp runs only when `llama_cpp` (llama-cpp-python) is installed; it reads the run's f16 GGUF export
(`tailor export RUN --format gguf`), made here when missing. Everything runs on 2 threads, one engine at a time.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time
from pathlib import Path

import torch

import tailored.evaluation.generate as generation
from tailored.data import load_dataset
from tailored.data.encode import render_prompt, stop_token_ids
from tailored.models.batch import Batcher, Row
from tailored.models.decode import supported
from tailored.tuned import load


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def decode(model, prompt: list[int], n: int) -> list[int]:
    """n greedy new tokens for one prompt through the batch path that predict, chat and the server use."""
    batcher, row = Batcher(model, 1), Row(prompt, n, frozenset())
    if batcher.add(row):
        while batcher:
            batcher.step()
    return row.tokens


def single_stream_torch(model, ids: torch.Tensor, n: int, fast: bool) -> tuple[float, float]:
    """(prefill seconds, decode seconds for n - 1 further tokens) for one prompt, stop tokens ignored."""
    mask = torch.ones_like(ids)
    with torch.no_grad():
        if fast:
            first, _ = timed(lambda: decode(model, ids[0].tolist(), 1))
            whole, out = timed(lambda: torch.tensor([decode(model, ids[0].tolist(), n)]))
        else:
            run = lambda k: model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=k, min_new_tokens=k,  # noqa: E731
                                           do_sample=False, pad_token_id=0, use_cache=True)
            first, _ = timed(lambda: run(1))
            whole, out = timed(lambda: run(n))
            out = out[:, ids.shape[1]:]
    assert out.shape[1] == n
    return first, whole - first


def single_stream_llama(llm, ids: list[int], n: int) -> tuple[float, float]:
    llm.reset()
    first, _ = timed(lambda: llm.eval(ids))
    start = time.perf_counter()
    for _ in range(n - 1):
        llm.eval([llm.sample(top_k=1, temp=0.0)])
    return first, time.perf_counter() - start


def llama_answers(llm, prompts: list[list[int]], budget: int, stop: set[int]) -> list[list[int]]:
    answers = []
    for ids in prompts:
        out = []
        for token in llm.generate(ids, top_k=1, temp=0.0, reset=True):
            out.append(token)
            if token in stop or len(out) >= budget:
                break
        answers.append(out)
    return answers


def find_gguf(run_path: Path, given: str | None) -> Path:
    if given:
        return Path(given)
    found = sorted((run_path / "export").glob("*.f16.gguf"))
    if found:
        return found[0]
    from tailored.export import export

    return export(run_path, "gguf", gguf_type="f16", check=False).path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--data", default="examples/support.heldout.jsonl")
    ap.add_argument("--prompts", type=int, default=4)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--rows", type=int, default=32)
    ap.add_argument("--gguf")
    args = ap.parse_args()
    torch.set_num_threads(2)
    tuned = load(args.run)
    model, tok = tuned.model, tuned.tokenizer
    assert supported(model), "this run's model is not one the decode loop reproduces"
    rows = load_dataset(args.data, labels=tuned.labels).examples
    texts = [render_prompt(tok, r.prompt) for r in rows]
    try:
        from llama_cpp import Llama

        gguf = find_gguf(tuned.path, args.gguf)
        llm = Llama(model_path=str(gguf), n_ctx=4096, n_threads=2, n_batch=512, verbose=False)
    except ImportError:
        llm = None
    print(f"torch {torch.__version__}, 2 threads; run {tuned.path}; llama.cpp: "
          f"{'on ' + str(gguf) if llm else 'not installed'}\n")

    engines = {"transformers generate": lambda ids: single_stream_torch(model, ids, args.new_tokens, False),
               "tailored decode loop": lambda ids: single_stream_torch(model, ids, args.new_tokens, True)}
    # #19's lever "adapters merged into the weights when one model serves alone": each projection then skips
    # its adapter's two small products, at the price of other rounding (W + s·BA summed once)
    merged = copy.deepcopy(model).merge_and_unload() if hasattr(model, "merge_and_unload") else None
    if merged is not None:
        engines["decode loop, adapter merged"] = lambda ids: single_stream_torch(merged, ids, args.new_tokens, True)
    if llm:
        engines["llama.cpp (f16 GGUF)"] = lambda ids: single_stream_llama(llm, ids[0].tolist(), args.new_tokens)
        ours = load(args.run, engine="llama.cpp")._llama_model().llm  # the engine's own f32 GGUF, written if missing
        engines["tailored llama.cpp engine"] = lambda ids: single_stream_llama(ours, ids[0].tolist(), args.new_tokens)
    prompts = [tok(t, add_special_tokens=False, return_tensors="pt")["input_ids"] for t in texts[: args.prompts]]
    for ids in prompts[:1]:  # warm-up: first calls allocate and pick kernels
        for fn in engines.values():
            fn(ids)
    rates = {}
    print(f"single stream, {len(prompts)} prompts of {statistics.mean(p.shape[1] for p in prompts):.0f} tokens on "
          f"average, {args.new_tokens} new tokens each")
    for name, fn in engines.items():
        parts = [fn(ids) for ids in prompts]
        prefill, steps = sum(p for p, _ in parts), sum(d for _, d in parts)
        decoded = len(prompts) * (args.new_tokens - 1)
        rates[name] = decoded / steps
        print(f"  {name:24s} decode {rates[name]:6.1f} tok/s ({1000 / rates[name]:5.1f} ms/token)   "
              f"end to end {len(prompts) * args.new_tokens / (prefill + steps):6.1f} tok/s")
    new = rates["tailored decode loop"]
    if merged is not None:
        print(f"  adapter merged / decode loop: {rates['decode loop, adapter merged'] / new:.2f}x")
    print(f"  decode loop / generate: {new / rates['transformers generate']:.2f}x", end="")
    print(f"   decode loop / llama.cpp: {new / rates['llama.cpp (f16 GGUF)']:.2f}x   llama.cpp engine (f32) / llama.cpp "
          f"(f16): {rates['tailored llama.cpp engine'] / rates['llama.cpp (f16 GGUF)']:.2f}x" if llm else "", "\n")

    rows_texts = texts[: args.rows]
    budget = args.new_tokens
    print(f"answers to {len(rows_texts)} held-out rows (batches of 16, stop tokens on, at most {budget} tokens)")
    answers = {}
    for who in ("tuned", "base"):
        for path in ("decode loop", "generate"):
            if path == "generate":
                generation.supported = lambda m: False
            with (model.disable_adapter() if who == "base" else torch.no_grad()):
                seconds, answers[who, path] = timed(
                    lambda: generation.generate_ids(model, tok, rows_texts, budget, 16))
            generation.supported = supported
            n = sum(map(len, answers[who, path]))
            print(f"  {who:5s} {path:11s} {seconds:6.1f} s  {n / seconds:5.1f} tok/s")
        same = sum(a == b for a, b in zip(answers[who, "decode loop"], answers[who, "generate"]))
        print(f"  {who}: {same}/{len(rows_texts)} answers identical between the two paths")
    if merged is not None:
        with torch.no_grad():
            seconds, answers["merged"] = timed(lambda: generation.generate_ids(merged, tok, rows_texts, budget, 16))
        same = sum(a == b for a, b in zip(answers["merged"], answers["tuned", "decode loop"]))
        print(f"  tuned, adapter merged, decode loop {seconds:6.1f} s  {sum(map(len, answers['merged'])) / seconds:5.1f} "
              f"tok/s; {same}/{len(rows_texts)} answers identical to the adapter's")
    if llm:
        stop = stop_token_ids(tok, model)
        ids = [tok(t, add_special_tokens=False)["input_ids"] for t in rows_texts]
        seconds, theirs = timed(lambda: llama_answers(llm, ids, budget, stop))
        same = sum(a == b for a, b in zip(theirs, answers["tuned", "decode loop"]))
        raw = sum(map(len, theirs)) / seconds
        print(f"  llama.cpp one row at a time {seconds:6.1f} s  {raw:5.1f} tok/s; {same}/{len(rows_texts)} answers "
              "identical to the run's (f16 weights against the run's fp32)")
    conversations = [r.prompt for r in rows[: args.rows]]
    print(f"\none prompt at a time, as predict and chat answer (load(RUN, engine=...).generate), {len(conversations)} "
          f"rows, at most {budget} tokens, stop tokens on")
    replies = {}
    for engine in ("torch", "llama.cpp") if llm else ("torch",):
        tuned_engine = load(args.run, engine=engine)
        if engine == "torch":
            print(f"  engine torch in {'bf16 autocast' if tuned_engine.bf16 else 'fp32'}")
        tuned_engine.generate(conversations[0], max_new_tokens=budget)  # warm-up (and the GGUF written once)
        seconds, replies[engine] = timed(lambda: [tuned_engine.generate(c, max_new_tokens=budget)
                                                  for c in conversations])
        # tokens counted on the decode loop's answers to the same rows (how far the engines' replies agree is below)
        n = sum(map(len, answers["tuned", "decode loop"]))
        print(f"  engine {engine:9s} {seconds:6.1f} s  {n / seconds:5.1f} tok/s")
        rates[f"engine {engine}"] = n / seconds
    if llm:
        same = sum(a == b for a, b in zip(replies["torch"], replies["llama.cpp"]))
        print(f"  {same}/{len(conversations)} replies identical between the engines; engine llama.cpp / torch: "
              f"{rates['engine llama.cpp'] / rates['engine torch']:.2f}x; engine llama.cpp / llama.cpp on the f16 "
              f"export one row at a time: {rates['engine llama.cpp'] / raw:.2f}x")


if __name__ == "__main__":
    main()
