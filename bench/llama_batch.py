"""Would llama.cpp's own batched decode beat tailored's torch batch? Measured, not adopted.

    python bench/llama_batch.py RUN [--data examples/support.heldout.jsonl] [--rows 60] [--new-tokens 64]
                                    [--no-flash] [--kv f16]

An experiment for #19: `LlamaBatcher` below has `models/batch.Batcher`'s contract (rows join with
`add_many`, every `step` gives each row its next token and lets finished rows leave) over an f32 GGUF in
llama.cpp, many sequences in one `llama_decode` per step, each row a sequence with its own room in the
cache. This prints, for the run's base and for the run, the torch batch's time (`generate_ids`, the path
evaluation and the server use) and the llama.cpp batch's time on the same prompts, and how many answers
are identical. The base is written once as an f32 GGUF beside the run's own (`/tmp` by default).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tailored.models.batch import Row, _choose  # noqa: E402


# most prompt tokens prefilled in one decode call (packing many prompts did not pay here: BENCHMARKS.md)
PREFILL_TOKENS = 2048


class LlamaModel:
    """One f32 GGUF loaded once in llama.cpp; batchers over it each hold their own cache."""

    def __init__(self, gguf: Path):
        import llama_cpp
        from llama_cpp import _internals

        params = llama_cpp.llama_model_default_params()
        self.model = _internals.LlamaModel(path_model=str(gguf), params=params, verbose=False)
        self.n_vocab = self.model.n_vocab()


class LlamaBatcher:
    """A running batch of up to `max_rows` rows, each with `room` tokens of prompt and answer."""

    def __init__(self, model: LlamaModel, max_rows: int, room: int, flash: bool = True, kv: str = "f32",
                 threads: int | None = None):
        import llama_cpp
        from llama_cpp import _internals

        self.model, self.max_rows, self.room = model, max_rows, room
        params = llama_cpp.llama_context_default_params()
        threads = threads or max(1, len(os.sched_getaffinity(0)))
        params.n_threads = params.n_threads_batch = threads
        params.n_seq_max = max_rows
        params.n_ctx = max_rows * room
        params.kv_unified = False  # each sequence attends over its own cells only
        params.n_batch = max(PREFILL_TOKENS, max_rows)
        params.n_ubatch = 512
        # f32 keys and values: llama.cpp's default f16 cache rounds what the torch loop keeps in fp32
        params.type_k = params.type_v = llama_cpp.GGML_TYPE_F32 if kv == "f32" else llama_cpp.GGML_TYPE_F16
        params.flash_attn_type = (llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED if flash
                                  else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED)
        params.no_perf = True
        self._lib = llama_cpp
        self.ctx = _internals.LlamaContext(model=model.model, params=params, verbose=False)
        self.capacity = params.n_batch
        self.batch = _internals.LlamaBatch(n_tokens=params.n_batch, embd=0, n_seq_max=1, verbose=False)
        self.rows: list[Row] = []
        self.seq: list[int] = []  # each row's sequence id
        self.free = list(range(max_rows - 1, -1, -1))

    def __len__(self) -> int:
        return len(self.rows)

    def fits(self, rows: list[Row]) -> bool:
        return len(self.rows) + len(rows) <= self.max_rows and all(row.need <= self.room for row in rows)

    def add_many(self, rows: list[Row]) -> list[bool]:
        """Prefill `rows` (as many prompts per decode call as PREFILL_TOKENS allows) and take each one's first
        token; True for each row that joined the batch, False for one that already finished."""
        if not self.fits(rows):
            raise RuntimeError("the batch is full, or a row needs more room than each row has")
        for row in rows:
            if row.sampling:
                row.generator = torch.Generator()
                if row.sampling.get("seed") is not None:
                    row.generator.manual_seed(int(row.sampling["seed"]))
                else:
                    row.generator.seed()
        todo = [row for row in rows if row.max_new_tokens > 0]
        part: list[Row] = []
        for row in todo:
            if part and sum(len(r.prompt) for r in part) + len(row.prompt) > self.capacity:
                self._prefill(part)
                part = []
            part.append(row)
        if part:
            self._prefill(part)
        return [any(row is r for r in self.rows) for row in rows]

    def _prefill(self, rows: list[Row]) -> None:
        self.batch.reset()
        seqs = [self.free.pop() for _ in rows]
        for row, seq in zip(rows, seqs):
            self.batch.add_sequence(row.prompt, seq, False)
        logits = self._decode(len(rows))
        for i, (row, seq) in enumerate(zip(rows, seqs)):
            if row._take(_choose(logits[i], row)):
                self._release(seq)
            else:
                self.rows.append(row)
                self.seq.append(seq)

    def step(self) -> list[Row]:
        """One new token for every row; the rows that finished leave the batch and are returned."""
        if not self.rows:
            return []
        b = self.batch.batch
        b.n_tokens = len(self.rows)
        for i, (row, seq) in enumerate(zip(self.rows, self.seq)):
            b.token[i] = row.tokens[-1]
            b.pos[i] = len(row.prompt) + len(row.tokens) - 1
            b.seq_id[i][0] = seq
            b.n_seq_id[i] = 1
            b.logits[i] = True
        logits = self._decode(len(self.rows))
        done, keep, seqs = [], [], []
        for i, (row, seq) in enumerate(zip(self.rows, self.seq)):
            if row._take(_choose(logits[i], row)):
                done.append(row)
                self._release(seq)
            else:
                keep.append(row)
                seqs.append(seq)
        self.rows, self.seq = keep, seqs
        return done

    def _decode(self, outputs: int) -> torch.Tensor:
        """Run the batch; the logits of its `outputs` marked tokens, in batch order."""
        self.ctx.decode(self.batch)
        raw = self._lib.llama_get_logits(self.ctx.ctx)
        return torch.from_numpy(np.ctypeslib.as_array(raw, shape=(outputs, self.model.n_vocab)).copy())

    def _release(self, seq: int) -> None:
        self.ctx.kv_cache_seq_rm(seq, -1, -1)
        self.free.append(seq)


def llama_answers(batcher: LlamaBatcher, prompts: list[list[int]], budget: int, stop: frozenset) -> list[list[int]]:
    """Every prompt through the running batch, longest first, as `evaluation/generate._continuous` orders them."""
    out: list[list[int]] = [[] for _ in prompts]
    waiting = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    while waiting or len(batcher):
        rows = []
        while waiting and batcher.fits(rows + [Row(prompts[waiting[-1]], budget, stop)]):
            i = waiting.pop()
            rows.append(Row(prompts[i], budget, stop, tag=i))
        for row, joined in zip(rows, batcher.add_many(rows)):
            if not joined:
                out[row.tag] = row.tokens
        for row in batcher.step():
            out[row.tag] = row.tokens
    return out


def main() -> None:
    import llama_cpp

    from tailored.data import load_dataset
    from tailored.data.encode import render_prompt, stop_token_ids
    from tailored.evaluation.generate import ROWS, generate_ids
    from tailored.models import load_causal_lm
    from tailored.models.gguf_file import default_gguf_path, write_gguf
    from tailored.tuned import load

    ap = argparse.ArgumentParser()
    ap.add_argument("run")
    ap.add_argument("--data", default=str(ROOT / "examples" / "support.heldout.jsonl"))
    ap.add_argument("--rows", type=int, default=60)
    ap.add_argument("--new-tokens", type=int, default=64)
    ap.add_argument("--no-flash", action="store_true", help="llama.cpp's plain attention instead of flash attention")
    ap.add_argument("--kv", choices=("f32", "f16"), default="f32", help="llama.cpp's key and value type")
    ap.add_argument("--base-gguf", default="/tmp/tailored-bench-base.f32.gguf")
    args = ap.parse_args()
    torch.set_num_threads(2)
    quiet = llama_cpp.llama_log_callback(lambda *a: None)  # kept referenced: llama.cpp calls it later
    llama_cpp.llama_log_set(quiet, None)  # its context logs are long
    tuned = load(args.run, engine="llama.cpp")
    tok, budget = tuned.tokenizer, args.new_tokens
    rows = load_dataset(args.data).examples[: args.rows]
    texts = [render_prompt(tok, tuned.messages_for(r.prompt)) for r in rows]
    prompts = [tok(t, add_special_tokens=False)["input_ids"] for t in texts]
    stop = frozenset(stop_token_ids(tok, tuned.model))
    base_gguf = Path(args.base_gguf)
    if not base_gguf.exists():
        write_gguf(tuned.base, load_causal_lm(tuned.base), tok.chat_template, base_gguf, "f32")
    room = (max(len(p) for p in prompts) + budget + 255) // 256 * 256
    print(f"torch {torch.__version__}, 2 threads; {len(prompts)} rows of {args.data}, {budget} new tokens at most; "
          f"torch batch {ROWS} rows; llama.cpp batch {ROWS} sequences of {room} tokens, "
          f"{'plain' if args.no_flash else 'flash'} attention, {args.kv} keys and values, f32 weights")
    tuned._llama_model()  # writes the run's own f32 GGUF once
    for who, gguf in (("base", base_gguf), ("tuned", default_gguf_path(tuned.path, "f32"))):
        with (tuned.model.disable_adapter() if who == "base" else torch.no_grad()):
            start = time.perf_counter()
            ours = generate_ids(tuned.model, tok, texts, budget)
            torch_s = time.perf_counter() - start
        model = LlamaModel(gguf)  # loaded and warmed outside the timing, as a server or an evaluation would hold it
        llama_answers(LlamaBatcher(model, 2, room, not args.no_flash, args.kv), prompts[:2], 4, stop)
        start = time.perf_counter()
        theirs = llama_answers(LlamaBatcher(model, ROWS, room, not args.no_flash, args.kv), prompts, budget, stop)
        llama_s = time.perf_counter() - start
        same = sum(a == b for a, b in zip(ours, theirs))
        print(f"  {who:5s}  torch batch {torch_s:6.1f} s   llama.cpp batch {llama_s:6.1f} s   "
              f"torch / llama.cpp time {torch_s / llama_s:.2f}x   identical answers {same}/{len(prompts)}")
    sys.stdout.flush()
    os._exit(0)  # llama-cpp-python's finalizers crash at interpreter exit once its log callback is replaced


if __name__ == "__main__":
    main()
