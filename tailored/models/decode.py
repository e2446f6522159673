"""Greedy decoding for Llama-family models without transformers' per-token machinery.

On a 2-core CPU, SmolLM2-135M with a LoRA adapter spent 146 ms per new token in `model.generate`,
while the same weights' matrix-vector products take about 50 ms: the rest is Python, module calls,
PEFT's bookkeeping, mask building and cache objects, paid 30 layers x 7 projections times per token.

`decode` runs the prompt through the model's own forward (the prefill, where that overhead is spread
over many tokens), then produces each new token in a short loop over the model's own weights with a
preallocated KV cache. Each step repeats transformers' and PEFT's arithmetic op for op: unfused
projections, LoRA added as B(A x)·s after the base product, RMSNorm in fp32, RoPE computed as
transformers computes it, and SDPA called with the arguments transformers passes. So its greedy tokens
are the ones `model.generate` gives (tests/test_decode.py holds it to that on a tiny model, and
bench/decode_speed.py on SmolLM2).

`supported` says where it applies; everything else (other architectures, LoRA variants such as DoRA,
attention other than SDPA, sampling) stays on `model.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ARCHITECTURES = ("llama",)  # config.model_type values whose decoder layer this file reproduces


@dataclass
class _Projection:
    """A linear layer as PEFT computes it: the base product, then each active adapter's B(A x)·s added."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    loras: list[tuple[torch.Tensor, torch.Tensor, float]]

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        for a, b, scale in self.loras:
            y = y + F.linear(F.linear(x, a), b) * scale
        return y


def _projection(module) -> _Projection | None:
    """The weights behind a plain or PEFT-wrapped linear layer; None for anything this file cannot reproduce."""
    if isinstance(module, torch.nn.Linear):
        return _Projection(module.weight, module.bias, [])
    base = getattr(module, "base_layer", None)
    if not isinstance(base, torch.nn.Linear) or not hasattr(module, "lora_A"):
        return None
    if module.disable_adapters or module.merged:  # merged: the adapter is inside the base weight already
        return _Projection(base.weight, base.bias, [])
    loras = []
    for name in module.active_adapters:
        if name not in module.lora_A:
            continue
        if name in getattr(module, "lora_variant", {}):  # DoRA and the like compute differently
            return None
        loras.append((module.lora_A[name].weight, module.lora_B[name].weight, module.scaling[name]))
    return _Projection(base.weight, base.bias, loras)


def _inner(model):
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supported(model) -> bool:
    """Whether `decode` reproduces this model's forward (else the caller uses `model.generate`)."""
    inner = _inner(model)
    config = inner.config
    return (config.model_type in ARCHITECTURES and config._attn_implementation == "sdpa"
            and getattr(config, "rope_parameters", {}).get("rope_type", "default") == "default"
            and not getattr(config, "mlp_bias", False) and config.hidden_act == "silu"
            and not getattr(config, "pretraining_tp", 1) > 1
            and all(p is not None for p in _layers(inner)))


def _layers(inner) -> list:
    names = ("q_proj", "k_proj", "v_proj", "o_proj")
    found = []
    for layer in inner.model.layers:
        attn, mlp = layer.self_attn, layer.mlp
        found += [_projection(getattr(attn, n)) for n in names]
        found += [_projection(getattr(mlp, n)) for n in ("gate_proj", "up_proj", "down_proj")]
    head = inner.get_output_embeddings()
    found.append(_projection(head))
    return found


def _rms_norm(x: torch.Tensor, weight: torch.Tensor, eps: float) -> torch.Tensor:
    # transformers' LlamaRMSNorm, op for op (a fused rms_norm rounds differently)
    dtype = x.dtype
    h = x.to(torch.float32)
    h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + eps)
    return weight * h.to(dtype)


def _rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class _Weights:
    """The model's tensors (not copies) in the order one decode step reads them."""

    def __init__(self, model):
        inner = _inner(model)
        config = inner.config
        projections = _layers(inner)
        self.layers = []
        for i, layer in enumerate(inner.model.layers):
            q, k, v, o, gate, up, down = projections[7 * i : 7 * i + 7]
            self.layers.append((layer.input_layernorm.weight, q, k, v, o, layer.post_attention_layernorm.weight,
                                gate, up, down))
        self.head = projections[-1]
        self.embed = inner.get_input_embeddings().weight
        self.norm = inner.model.norm.weight
        self.eps = config.rms_norm_eps
        self.heads = config.num_attention_heads
        self.kv_heads = config.num_key_value_heads
        self.head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.scaling = self.head_dim**-0.5
        self.inv_freq = inner.model.rotary_emb.inv_freq
        self.rope_scale = inner.model.rotary_emb.attention_scaling


class _Cache:
    """Keys and values for every layer, preallocated for the prompt plus the longest answer asked for."""

    def __init__(self, past, capacity: int):
        self.keys, self.values = [], []
        for layer in past.layers:
            b, h, t, d = layer.keys.shape
            keys = layer.keys.new_empty(b, h, capacity, d)
            values = layer.values.new_empty(b, h, capacity, d)
            keys[:, :, :t] = layer.keys
            values[:, :, :t] = layer.values
            self.keys.append(keys)
            self.values.append(values)
        self.length = past.layers[0].keys.shape[2]


def _step(w: _Weights, cache: _Cache, tokens: torch.Tensor, positions: torch.Tensor,
          mask: torch.Tensor | None) -> torch.Tensor:
    """Logits [B, vocab] for one new token per row, writing its keys and values into `cache`."""
    b = tokens.shape[0]
    x = F.embedding(tokens[:, None], w.embed)  # [B, 1, hidden]
    freqs = positions[:, None, None].float() * w.inv_freq.to(dtype=torch.float)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = (emb.cos() * w.rope_scale).to(x.dtype)[:, None]  # [B, 1, 1, head_dim]
    sin = (emb.sin() * w.rope_scale).to(x.dtype)[:, None]
    t = cache.length
    groups = w.heads // w.kv_heads
    for i, (ln1, q_proj, k_proj, v_proj, o_proj, ln2, gate, up, down) in enumerate(w.layers):
        h = _rms_norm(x, ln1, w.eps)
        q = q_proj(h).view(b, 1, -1, w.head_dim).transpose(1, 2)
        k = k_proj(h).view(b, 1, -1, w.head_dim).transpose(1, 2)
        v = v_proj(h).view(b, 1, -1, w.head_dim).transpose(1, 2)
        q = (q * cos) + (_rotate_half(q) * sin)
        k = (k * cos) + (_rotate_half(k) * sin)
        cache.keys[i][:, :, t : t + 1] = k
        cache.values[i][:, :, t : t + 1] = v
        keys, values = cache.keys[i][:, :, : t + 1], cache.values[i][:, :, : t + 1]
        # transformers' SDPA call for one query token: GQA inside SDPA without a mask, query heads packed
        # per key/value head with one
        if groups == 1:
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=w.scaling)
        elif mask is None:
            out = F.scaled_dot_product_attention(q, keys, values, scale=w.scaling, enable_gqa=True)
        else:
            out = F.scaled_dot_product_attention(q.reshape(b, w.kv_heads, groups, w.head_dim), keys, values,
                                                 attn_mask=mask, scale=w.scaling)
        out = out.reshape(b, -1, 1, w.head_dim).transpose(1, 2).contiguous().reshape(b, 1, -1).contiguous()
        x = x + o_proj(out)
        h = _rms_norm(x, ln2, w.eps)
        x = x + down(F.silu(gate(h)) * up(h))
    cache.length = t + 1
    return w.head(_rms_norm(x, w.norm, w.eps))[:, -1]


@torch.no_grad()
def decode(model, input_ids: torch.Tensor, attention_mask: torch.Tensor, max_new_tokens: int, stop: list[int],
           pad_token_id: int, on_token=None, cancelled=None) -> torch.Tensor:
    """Greedy new tokens [B, <= max_new_tokens] for a left-padded batch, as `model.generate` gives them.

    A row that has produced a stop token is padded with `pad_token_id` from then on, and decoding ends
    when every row has stopped. `on_token(ids)` is called with each step's tokens (streaming);
    `cancelled()` returning True ends decoding after the current step.
    """
    from transformers import DynamicCache

    w = _Weights(model)
    inner = _inner(model)
    positions = attention_mask.long().cumsum(-1) - 1
    positions.masked_fill_(attention_mask == 0, 1)  # as generate does; padded positions are never attended
    past = DynamicCache(config=inner.config)
    out = model(input_ids=input_ids, attention_mask=attention_mask, position_ids=positions, cache=past,
                use_cache=True, logits_to_keep=1)
    logits = out.logits[:, -1].float()
    cache = _Cache(past, input_ids.shape[1] + max_new_tokens)
    mask_2d = attention_mask.bool()
    padded = not bool(mask_2d.all())
    mask_2d = torch.cat([mask_2d, mask_2d.new_ones(mask_2d.shape[0], max_new_tokens)], dim=1)
    position = positions[:, -1]
    stop_ids = torch.tensor(stop, device=input_ids.device)
    done = torch.zeros(input_ids.shape[0], dtype=torch.bool, device=input_ids.device)
    new = []
    for _ in range(max_new_tokens):
        token = logits.argmax(-1)
        token = torch.where(done, torch.full_like(token, pad_token_id), token)
        new.append(token)
        if on_token is not None:
            on_token(token)
        done |= torch.isin(token, stop_ids)
        if bool(done.all()) or len(new) == max_new_tokens or (cancelled is not None and cancelled()):
            break
        position = position + 1
        mask = mask_2d[:, None, None, : cache.length + 1] if padded else None
        logits = _step(w, cache, token, position, mask).float()
    return torch.stack(new, dim=1) if new else input_ids.new_empty(input_ids.shape[0], 0)
