"""Chat latency of `tailor serve` on its default base, idle and while a fine-tuning job trains beside it.

    python bench/serve_while_training.py [--requests 20] [--max-tokens 32]

Both phases run in one session on the same server, one request at a time, so the ratio is
side by side. The job is created through the OpenAI client (examples/support.jsonl, one epoch) and
cancelled once the second phase ends. Nothing else should run on the machine meanwhile.
"""

from __future__ import annotations

import argparse
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import openai

ROOT = Path(__file__).parent.parent
KEY = "bench-key"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def measure(client, n: int, max_tokens: int) -> list[float]:
    took = []
    for i in range(n):
        start = time.perf_counter()
        client.chat.completions.create(model="smollm2-135m", max_tokens=max_tokens, messages=[
            {"role": "user", "content": f"Give me one tip for writing a clear email (#{i})."}])
        took.append(time.perf_counter() - start)
    return took


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=20)
    parser.add_argument("--max-tokens", type=int, default=32)
    args = parser.parse_args()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    runs = Path(tempfile.mkdtemp(prefix="bench-serve-"))
    server = subprocess.Popen([sys.executable, "-m", "tailored.cli", "serve", "--runs-dir", str(runs), "--port",
                               str(port)], env={**os.environ, "TAILORED_API_KEY": KEY},
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, timeout=600, max_retries=0)
        measure(client, 2, args.max_tokens)  # warm-up
        idle = measure(client, args.requests, args.max_tokens)
        with open(ROOT / "examples" / "support.jsonl", "rb") as f:
            file_id = client.files.create(file=f, purpose="fine-tune").id
        job = client.fine_tuning.jobs.create(model="smollm2-135m", training_file=file_id,
                                             hyperparameters={"n_epochs": 1})
        while not [e for e in client.fine_tuning.jobs.list_events(job.id, limit=5).data if e.type == "metrics"]:
            assert client.fine_tuning.jobs.retrieve(job.id).status not in ("failed", "cancelled")
            time.sleep(1)
        steps_before = client.fine_tuning.jobs.list_events(job.id, limit=1).data[0].data.get("step", 0)
        started = time.perf_counter()
        busy = measure(client, args.requests, args.max_tokens)
        busy_seconds = time.perf_counter() - started
        latest = [e for e in client.fine_tuning.jobs.list_events(job.id, limit=5).data if e.type == "metrics"]
        steps_during = latest[0].data["step"] - steps_before
        client.fine_tuning.jobs.cancel(job.id)
    finally:
        server.terminate()
        server.wait(30)
    print(f"chat, {args.max_tokens} new tokens, {args.requests} sequential requests, SmolLM2-135M, "
          f"{os.cpu_count()} cores")
    for name, values in (("idle", idle), ("while a job trains", busy)):
        print(f"  {name:20s} p50 {percentile(values, 0.5):6.2f}s  p99 {percentile(values, 0.99):6.2f}s  "
              f"mean {statistics.mean(values):6.2f}s")
    print(f"  p50 ratio busy/idle: {percentile(busy, 0.5) / percentile(idle, 0.5):.2f}x; the job trained "
          f"{steps_during} steps during the {busy_seconds:.0f}s of busy requests")


if __name__ == "__main__":
    main()
