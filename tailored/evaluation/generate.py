"""Generation for evaluation, prediction and the server.

Continuous batching over tailored's own decode step where it applies (models/batch.py), `model.generate`
on padded batches elsewhere.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch

from tailored.data.encode import render_prompt, stop_token_ids
from tailored.device import autocast, device_of
from tailored.models.batch import CACHE_BYTES, Batcher, Row
from tailored.models.decode import supported

# prompts generated together by default: on 2 cores a decode step of 64 rows took 4 ms a row, one of 16
# rows 6 ms, and more rows joining together share one prefill pass
ROWS = 64


@torch.no_grad()
def generate_ids(model, tokenizer, texts: list[str], max_new_tokens: int | list[int], batch_size: int = ROWS,
                 bf16: bool = False, on_token=None, cancelled=None,
                 sampling: dict | None = None, cache_bytes: int = CACHE_BYTES) -> list[list[int]]:
    """New token ids for each rendered prompt in `texts`, in order (stop tokens kept); greedy by default.

    `max_new_tokens` may differ per prompt. `sampling` ({"temperature", "top_p", "seed"}) samples
    instead; with a seed the same call gives the same tokens, and the caller's random state is left as
    it was. Streaming (one prompt): `on_token(id)` gets each new token and then None; `cancelled()`
    returning True ends generation early.
    Models `decode.supported` accepts run in tailored's own decode loop with continuous batching: up
    to `batch_size` rows at once, each leaving as soon as it ends and the next prompt taking its place,
    and each row's answer the one it gets alone; rows join only while their keys and values fit in
    `cache_bytes`. The rest use `model.generate` on left-padded batches of prompts sorted by length.
    """
    model.eval()
    budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(texts)
    prompts = [tokenizer(t, add_special_tokens=False)["input_ids"] for t in texts]
    stop = sorted(stop_token_ids(tokenizer, model))
    stream = on_token is not None
    try:
        if supported(model):
            out = _continuous(model, prompts, budgets, stop, batch_size, bf16, on_token, cancelled, sampling,
                              cache_bytes)
        else:
            out = _padded(model, tokenizer, texts, prompts, budgets, stop, batch_size, bf16, on_token, cancelled,
                          sampling)
    finally:
        if stream:
            on_token(None)
    for i, row in enumerate(out):
        row = row[: budgets[i]]
        end = next((j for j, t in enumerate(row) if t in stop), None)
        out[i] = row if end is None else row[: end + 1]
    return out


def _continuous(model, prompts, budgets, stop, batch_size, bf16, on_token, cancelled, sampling,
                cache_bytes) -> list[list[int]]:
    """Every prompt through one running batch; the longest prompts go first, so short ones fill the gaps."""
    out: list[list[int]] = [[] for _ in prompts]
    waiting = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))  # pop() takes the longest
    batcher = Batcher(model, batch_size, cache_bytes)
    stops = frozenset(stop)
    with autocast(device_of(model), bf16):
        while waiting or batcher:
            rows = []  # the longest waiting prompts that fit beside the running rows
            while waiting:
                row = Row(prompts[waiting[-1]], budgets[waiting[-1]], stops, on_token, cancelled, sampling,
                          tag=waiting[-1])
                if not batcher.fits(rows + [row]):
                    break
                rows.append(row)
                waiting.pop()
            for row, joined in zip(rows, batcher.add_many(rows)):  # prefilled together, one pass
                if not joined:
                    out[row.tag] = row.tokens
            for row in batcher.step():
                out[row.tag] = row.tokens
    return out


def _padded(model, tokenizer, texts, prompts, budgets, stop, batch_size, bf16, on_token, cancelled,
            sampling) -> list[list[int]]:
    """`model.generate` on left-padded batches of prompts sorted by length (each batch runs to its longest)."""
    device = device_of(model)
    order = sorted(range(len(texts)), key=lambda i: len(prompts[i]))
    out: list[list[int]] = [[] for _ in texts]
    how = {"do_sample": False}
    if sampling:
        how = {"do_sample": True, "temperature": sampling["temperature"], "top_p": sampling.get("top_p", 1.0),
               "top_k": 0}
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation appends on the right, so padding must sit on the left
    try:
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            enc = tokenizer([texts[i] for i in idx], add_special_tokens=False, padding=True, return_tensors="pt")
            enc = {n: t.to(device) for n, t in enc.items()}
            with autocast(device, bf16), _seeded(sampling and sampling.get("seed"), device):
                new = model.generate(**enc, max_new_tokens=max(budgets[i] for i in idx), **how, eos_token_id=stop,
                                     pad_token_id=tokenizer.pad_token_id, use_cache=True,
                                     **_hf_streaming(on_token, cancelled))
            for i, row in zip(idx, new[:, enc["input_ids"].shape[1] :].tolist()):
                out[i] = row
    finally:
        tokenizer.padding_side = side
    return out


def _hf_streaming(on_token, cancelled) -> dict:
    """`on_token` and `cancelled` as the streamer and stopping criterion `model.generate` takes."""
    if on_token is None and cancelled is None:
        return {}
    from transformers import StoppingCriteria, StoppingCriteriaList

    class Cancelled(StoppingCriteria):
        def __call__(self, input_ids, scores, **kwargs):
            return cancelled is not None and cancelled()

    return {"streamer": _Streamer(on_token) if on_token else None, "stopping_criteria": StoppingCriteriaList([Cancelled()])}


class _Streamer:
    """transformers' streamer protocol: the prompt comes first (skipped), then one token per step."""

    def __init__(self, on_token):
        self.on_token, self.seen_prompt = on_token, False

    def put(self, value) -> None:
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        for token in value.reshape(-1).tolist():
            self.on_token(token)

    def end(self) -> None:
        pass  # generate_ids sends the end (None) itself, whichever path ran


@contextmanager
def _seeded(seed: int | None, device):
    """Draws from `seed` inside, and the global random state as it was outside."""
    if seed is None:
        yield
        return
    devices = [device] if getattr(device, "type", "cpu") == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield


def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, batch_size: int = ROWS,
             bf16: bool = False, cache=None) -> list[str]:
    """Greedy replies to each conversation in `prompts`, in order; `cache` (answer_cache.BaseAnswers, for the
    untuned base only) gives those it already holds and keeps the rest."""
    texts = [render_prompt(tokenizer, p) for p in prompts]
    make = cache.generate_ids if cache is not None else generate_ids
    return decode_answers(tokenizer, make(model, tokenizer, texts, max_new_tokens, batch_size, bf16))


def decode_answers(tokenizer, ids: list[list[int]]) -> list[str]:
    return [tokenizer.decode(row, skip_special_tokens=True).strip() for row in ids]
