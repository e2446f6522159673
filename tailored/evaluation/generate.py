"""Batched greedy generation with a KV cache: the way answers are produced for evaluation and prediction."""

from __future__ import annotations

import torch

from tailored.data.encode import render_prompt, stop_token_ids
from tailored.training.lora import autocast, device_of


@torch.no_grad()
def generate(model, tokenizer, prompts: list[list[dict]], max_new_tokens: int, batch_size: int = 16,
             bf16: bool = False) -> list[str]:
    """Greedy replies to each conversation in `prompts`, in order.

    Prompts are sorted by length and left-padded so each batch wastes little compute on padding.
    """
    model.eval()
    device = device_of(model)
    texts = [render_prompt(tokenizer, p) for p in prompts]
    lengths = [len(tokenizer(t, add_special_tokens=False)["input_ids"]) for t in texts]
    order = sorted(range(len(texts)), key=lambda i: lengths[i])
    stop = sorted(stop_token_ids(tokenizer, model))
    replies: list[str] = [""] * len(texts)
    side = tokenizer.padding_side
    tokenizer.padding_side = "left"  # generation appends on the right, so padding must sit on the left
    try:
        for k in range(0, len(order), batch_size):
            idx = order[k : k + batch_size]
            enc = tokenizer([texts[i] for i in idx], add_special_tokens=False, padding=True, return_tensors="pt")
            enc = {n: t.to(device) for n, t in enc.items()}
            with autocast(device, bf16):
                out = model.generate(**enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=stop,
                                     pad_token_id=tokenizer.pad_token_id, use_cache=True)
            new = out[:, enc["input_ids"].shape[1] :]
            for i, row in zip(idx, new):
                replies[i] = tokenizer.decode(row, skip_special_tokens=True).strip()
    finally:
        tokenizer.padding_side = side
    return replies
