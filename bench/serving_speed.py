"""Serving and evaluation speed of two trees side by side: the server at 1, 8 and 50 concurrent clients,
one adapter against two mixed in one batch, and base-vs-tuned evaluation of held-out rows; then one
stream, this tree against llama.cpp on the same run.

    python bench/serving_speed.py RUN --other RUN2 --runs-dir DIR [--before TREE] [--clients 1,8,50]
                                  [--max-tokens 48] [--batch-size N] [--eval-data FILE] [--eval-rows 200]
                                  [--only server|eval|single]

TREE is another checkout of tailored (e.g. `git worktree add /tmp/before HEAD~1`); every measurement
runs in a child process, once with TREE's library and once with this one's, alternating, so both see
the same machine in the same run. Without --before, only this tree runs.

- server: `tailor serve`'s app in the child, on loopback, driven by the `openai` client. A level of c
  clients fires c requests at once (1 client: 8 requests one after another), each for at most
  --max-tokens tokens. "mixed" is the highest level again with requests alternating RUN and RUN2.
- evaluation: `compare` (base with the adapter off, then tuned) on the first --eval-rows rows of
  --eval-data, as `tailor eval` runs it; the answers of both trees are compared row by row.
- single stream (this tree only): `decode_speed.py`'s single-stream measurement of the same run, 4 prompts
  of --eval-data, 64 new tokens each: the torch decode loop, the llama.cpp engine that `predict` and `chat`
  use when llama-cpp-python is installed (the run as an f32 GGUF), and llama.cpp on the run's f16 export,
  with each one's ratio to llama.cpp.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

QUESTIONS = ["How do I reset my password?", "Can I get a refund for last month?", "How do I export my notes?",
             "Is there a student discount?", "How do I share a notebook with a colleague?",
             "Why was my card declined?", "How do I turn on two-factor authentication?", "Can I work offline?"]


def child_server(args) -> dict:
    import openai
    import uvicorn

    from tailored.config import ServerConfig
    from tailored.server import build

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    levels = [int(c) for c in args.clients.split(",")]
    size = {"batch_size": args.batch_size} if args.batch_size else {}  # else each tree's own default
    cfg = ServerConfig(runs_dir=args.runs_dir, port=port, api_key="bench", max_in_flight=max(levels) + 1, **size)
    app, pool = build([args.run, args.other], cfg)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0, timeout=900)

    def one(i: int, model: str) -> tuple[float, int]:
        start = time.perf_counter()
        r = client.chat.completions.create(model=model, max_tokens=args.max_tokens, temperature=0,
                                           messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
        return time.perf_counter() - start, r.usage.completion_tokens

    def level(clients: int, models: list[str]) -> dict:
        rounds = 8 if clients == 1 else 1
        start = time.perf_counter()
        with ThreadPoolExecutor(clients) as ex:
            futures = [ex.submit(lambda c=c: [one(c * rounds + r, models[c % len(models)]) for r in range(rounds)])
                       for c in range(clients)]
            done = [x for f in futures for x in f.result()]
        wall = time.perf_counter() - start
        latencies = sorted(d for d, _ in done)
        tokens = sum(n for _, n in done)
        return {"clients": clients, "requests": len(done), "wall": wall, "tokens": tokens,
                "tok_s": tokens / wall, "p50": statistics.median(latencies),
                "p99": latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))]}

    for model in (args.run, args.other):  # warm both adapters
        client.chat.completions.create(model=model, max_tokens=4, messages=[{"role": "user", "content": "hi"}])
    results = [level(c, [args.run]) for c in levels]
    mixed = level(max(levels), [args.run, args.other])
    server.should_exit = True
    return {"levels": results, "mixed": mixed}


def child_eval(args) -> dict:
    from tailored.config import EvalConfig
    from tailored.data import load_dataset
    from tailored.evaluation.compare import compare
    from tailored.tuned import load

    tuned = load(args.run, runs_dir=args.runs_dir)
    rows = load_dataset(args.eval_data, labels=tuned.labels).examples[: args.eval_rows]
    start = time.perf_counter()
    result = compare(tuned.model, tuned.tokenizer, rows, tuned.labels, EvalConfig(), tuned.bf16)
    seconds = time.perf_counter() - start
    return {"seconds": seconds, "rows": len(rows), "primary": result.primary, "batch": EvalConfig().eval_batch_size,
            "base": result.base[result.primary], "tuned": result.tuned[result.primary],
            "answers": [[r["base"], r["tuned"]] for r in result.rows]}


def child_single(args) -> dict:
    """Decode tokens/s of one stream, each engine in turn on the same prompts (see decode_speed.py)."""
    import decode_speed as ds
    import torch

    from tailored.data import load_dataset
    from tailored.data.encode import render_prompt
    from tailored.models import llama_cpp
    from tailored.tuned import load

    tuned = load(args.run, runs_dir=args.runs_dir, engine="torch")
    rows = load_dataset(args.eval_data, labels=tuned.labels).examples[:4]
    prompts = [tuned.tokenizer(render_prompt(tuned.tokenizer, r.prompt), add_special_tokens=False,
                               return_tensors="pt")["input_ids"] for r in rows]
    n = 64
    engines = {"tailored, torch decode loop": lambda ids: ds.single_stream_torch(tuned.model, ids, n, True)}
    if llama_cpp.installed():
        from llama_cpp import Llama

        gguf = ds.find_gguf(tuned.path, None)
        theirs = Llama(model_path=str(gguf), n_ctx=4096, n_threads=torch.get_num_threads(), n_batch=512, verbose=False)
        ours = load(args.run, runs_dir=args.runs_dir, engine="llama.cpp")._llama_model().llm  # f32 GGUF, written once
        engines["tailored, llama.cpp engine (f32)"] = lambda ids: ds.single_stream_llama(ours, ids[0].tolist(), n)
        engines["llama.cpp on the f16 export"] = lambda ids: ds.single_stream_llama(theirs, ids[0].tolist(), n)
    for fn in engines.values():  # warm-up: first calls allocate and pick kernels
        fn(prompts[0])
    rates = {}
    for name, fn in engines.items():
        seconds = sum(fn(ids)[1] for ids in prompts)
        rates[name] = len(prompts) * (n - 1) / seconds
    return {"rates": rates, "prompts": len(prompts), "new_tokens": n}


def in_child(tree: Path, what: str, args) -> dict:
    env = dict(os.environ, PYTHONPATH=str(tree))
    cmd = [sys.executable, __file__, args.run, "--other", args.other, "--runs-dir", str(Path(args.runs_dir).resolve()),
           "--clients", args.clients, "--max-tokens", str(args.max_tokens), "--batch-size", str(args.batch_size or 0),
           "--eval-data", str(Path(args.eval_data).resolve()), "--eval-rows", str(args.eval_rows), "--child", what,
           *(["--fp32"] if args.fp32 else [])]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{what} on {tree} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--other", required=True, help="a second run on the same base, for the mixed-adapter level")
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--before", help="another checkout of tailored to measure beside this one")
    ap.add_argument("--clients", default="1,8,50")
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=0, help="the server's --batch-size (default: each tree's own)")
    ap.add_argument("--eval-data", default="examples/support.heldout.jsonl")
    ap.add_argument("--eval-rows", type=int, default=200)
    ap.add_argument("--only", choices=["server", "eval", "single"], help="measure one of the three")
    ap.add_argument("--fp32", action="store_true",
                    help="answer in fp32 in both trees (trees before 2026-12-02 used bf16 on CPUs with native bf16)")
    ap.add_argument("--child", choices=["server", "eval", "single"])
    args = ap.parse_args()
    if args.child:
        if args.fp32:  # an older tree chose bf16 autocast wherever the CPU has native bf16; this one answers in fp32
            import torch

            torch.backends.mkldnn.is_available = lambda: False
        import tailored

        result = {"server": child_server, "eval": child_eval, "single": child_single}[args.child](args)
        result["library"] = str(Path(tailored.__file__).parent.parent)
        if args.child == "server":
            from tailored.config import ServerConfig

            result["batch_size"] = args.batch_size or ServerConfig().batch_size
        print(json.dumps(result))
        return

    import torch

    here = Path(__file__).resolve().parent.parent
    trees = {"before": Path(args.before).resolve(), "after": here} if args.before else {"after": here}
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; run {args.run}, other {args.other}")
    server, evals, single = {}, {}, None
    for name, tree in trees.items():
        if args.only in (None, "server"):
            server[name] = in_child(tree, "server", args)
            print(f"  server measured on {server[name]['library']} (batch {server[name]['batch_size']})", flush=True)
    for name, tree in trees.items():
        if args.only in (None, "eval"):
            evals[name] = in_child(tree, "eval", args)
            print(f"  evaluation measured on {evals[name]['library']}", flush=True)
    if args.only in (None, "single"):
        single = in_child(here, "single", args)
    if server:
        report_server(args, trees, server)
    if evals:
        report_eval(args, trees, evals)
    if single:
        report_single(single)


def report_server(args, trees: dict, server: dict) -> None:
    print(f"\nserver, {args.max_tokens} new tokens at most per request (p50 / p99 latency, aggregate tokens/s)")
    for i, c in enumerate(int(x) for x in args.clients.split(",")):
        line = f"  {c:3d} clients"
        for name in trees:
            r = server[name]["levels"][i]
            line += f"   {name}: p50 {r['p50']:6.2f}s p99 {r['p99']:6.2f}s {r['tok_s']:6.1f} tok/s"
        if len(trees) == 2:
            b, a = server["before"]["levels"][i], server["after"]["levels"][i]
            line += f"   throughput x{a['tok_s'] / b['tok_s']:.2f}, p50 x{a['p50'] / b['p50']:.2f}"
        print(line)
    for name in trees:
        single, mixed = server[name]["levels"][-1], server[name]["mixed"]
        print(f"  {name}: {mixed['clients']} clients on two adapters: {mixed['tok_s']:.1f} tok/s, p50 {mixed['p50']:.2f}s "
              f"(one adapter: {single['tok_s']:.1f} tok/s; mixed/one x{mixed['tok_s'] / single['tok_s']:.2f})")


def report_eval(args, trees: dict, evals: dict) -> None:
    print(f"\nevaluation, base + tuned, {args.eval_rows} rows at most of {args.eval_data}")
    for name in trees:
        e = evals[name]
        print(f"  {name}: {e['rows']} rows in {e['seconds']:.1f}s, batch {e['batch']} ({e['primary']} {e['base']:.1f} -> {e['tuned']:.1f})")
    if len(trees) == 2:
        b, a = evals["before"], evals["after"]
        same = [sum(x[k] == y[k] for x, y in zip(b["answers"], a["answers"])) for k in (0, 1)]
        print(f"  after / before: x{b['seconds'] / a['seconds']:.2f} faster; identical answers: base "
              f"{same[0]}/{len(a['answers'])}, tuned {same[1]}/{len(a['answers'])}")


def report_single(single: dict) -> None:
    rates = single["rates"]
    print(f"\nsingle stream, this tree: {single['prompts']} prompts, {single['new_tokens']} new tokens each, decode only")
    reference = rates.get("llama.cpp on the f16 export")
    for name, rate in rates.items():
        ratio = f"   x{rate / reference:.2f} llama.cpp" if reference else ""
        print(f"  {name:34s} {rate:6.1f} tok/s ({1000 / rate:5.1f} ms/token){ratio}")
    if not reference:
        print("  llama.cpp: not installed (pip install -e '.[llama]'), so no ratio")


if __name__ == "__main__":
    main()
