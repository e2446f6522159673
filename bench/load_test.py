"""Load test for `tailor serve`: N concurrent chat requests over loopback, latency percentiles and errors.

    python bench/load_test.py [RUN] [--requests 50] [--max-tokens 48]

Starts the server in this process on 127.0.0.1 (a free port), fires all requests at once from a
thread pool with the official `openai` client, and prints p50/p99 latency, generated tokens/s and
the error count. Bounded: every request has a timeout, and the whole test stops after --deadline s.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor, wait

import openai
import uvicorn

from tailored.config import ServerConfig
from tailored.server import build

QUESTIONS = ["How do I reset my password?", "Can I get a refund for last month?", "How do I export my notes?",
             "Is there a student discount?", "How do I share a notebook with a colleague?",
             "Why was my card declined?", "How do I turn on two-factor authentication?", "Can I work offline?"]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("run", nargs="?", default="support")
    ap.add_argument("--runs-dir", default="runs")
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--max-tokens", type=int, default=48)
    ap.add_argument("--batch-size", type=int, default=16)
    ap.add_argument("--deadline", type=float, default=600)
    args = ap.parse_args()

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cfg = ServerConfig(runs_dir=args.runs_dir, port=port, api_key="bench", max_in_flight=args.requests,
                       batch_size=args.batch_size)
    app, pool = build([args.run], cfg)
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="error"))
    threading.Thread(target=server.run, daemon=True).start()
    while not server.started:
        time.sleep(0.05)
    client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="bench", max_retries=0, timeout=args.deadline)

    def one(i: int):
        start = time.perf_counter()
        r = client.chat.completions.create(model=args.run, max_tokens=args.max_tokens,
                                           messages=[{"role": "user", "content": QUESTIONS[i % len(QUESTIONS)]}])
        return time.perf_counter() - start, r.usage.completion_tokens

    client.chat.completions.create(model=args.run, max_tokens=4, messages=[{"role": "user", "content": "hi"}])  # warm
    start = time.perf_counter()
    with ThreadPoolExecutor(args.requests) as ex:
        futures = [ex.submit(one, i) for i in range(args.requests)]
        done, pending = wait(futures, timeout=args.deadline)
    wall = time.perf_counter() - start
    results, errors = [], len(pending)
    for f in done:
        try:
            results.append(f.result())
        except Exception as e:  # noqa: BLE001 - counted and shown, never hidden
            errors += 1
            print("error:", type(e).__name__, e)
    latencies = sorted(r[0] for r in results)
    tokens = sum(r[1] for r in results)
    p99 = latencies[min(len(latencies) - 1, int(0.99 * len(latencies)))] if latencies else float("nan")
    print(f"requests {args.requests} concurrent, max_tokens {args.max_tokens}, server batch {args.batch_size}, "
          f"model {args.run} on {pool.base_name}")
    print(f"ok {len(results)}  errors {errors}  wall {wall:.1f}s")
    if latencies:
        print(f"latency p50 {statistics.median(latencies):.2f}s  p99 {p99:.2f}s  max {latencies[-1]:.2f}s")
    print(f"generated {tokens} tokens: {tokens / wall:.1f} tokens/s aggregate")
    server.should_exit = True


if __name__ == "__main__":
    main()
