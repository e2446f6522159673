"""One decode step for Llama-family models, without transformers' per-token machinery.

On a 2-core CPU, SmolLM2-135M with a LoRA adapter spent 146 ms per new token in `model.generate`,
while the same weights' matrix-vector products take about 50 ms: the rest is Python, module calls,
PEFT's bookkeeping, mask building and cache objects, paid 30 layers x 7 projections times per token.

Prompts go in through models/prefill.py, the same arithmetic over many tokens at once; `step` then
produces one new token for every row of a running batch in a short loop over the model's own weights,
with keys and values in preallocated slots. Rows may sit at different lengths and
use different LoRA adapters of the same base (each row's adapters are added to its own rows only), so
requests can join and leave the batch at any step (models/batch.py). Each step repeats transformers'
and PEFT's arithmetic op for op: unfused projections, LoRA added as B(A x)·s after the base product,
RMSNorm in fp32, RoPE computed as transformers computes it, and SDPA called with the arguments
transformers passes. A row alone gets the model's own logits bit for bit (tests/test_decode.py); rows
batched together get them up to the rounding of a bigger matrix product.

`supported` says where it applies; everything else (other architectures, LoRA variants such as DoRA,
merged adapters, attention other than SDPA) stays on `model.generate`.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

ARCHITECTURES = ("llama",)  # config.model_type values whose decoder layer this file reproduces


Groups = list  # [(adapter names, row index tensor or None for every row)], one entry per set of rows


@dataclass
class _Projection:
    """A linear layer as PEFT computes it: the base product, then each of a row's adapters' B(A x)·s added."""

    weight: torch.Tensor
    bias: torch.Tensor | None
    loras: dict[str, tuple[torch.Tensor, torch.Tensor, float]]

    def __call__(self, x: torch.Tensor, groups: Groups) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        for names, rows in groups:
            for name in names:
                if name not in self.loras:  # PEFT skips an adapter that does not wrap this layer
                    continue
                a, b, scale = self.loras[name]
                if rows is None:
                    y = y + F.linear(F.linear(x, a), b) * scale
                else:  # the same sum for these rows alone; the others keep the base product
                    y.index_add_(0, rows, F.linear(F.linear(x[rows], a), b) * scale)
        return y


def _projection(module) -> _Projection | None:
    """A plain or PEFT-wrapped linear layer with every adapter it holds; None for what this file cannot reproduce."""
    if isinstance(module, torch.nn.Linear):
        return _Projection(module.weight, module.bias, {})
    base = getattr(module, "base_layer", None)
    if not isinstance(base, torch.nn.Linear) or not hasattr(module, "lora_A") or module.merged:
        return None  # merged: an adapter is inside the base weight, so rows without it would be wrong
    if any(name in module.lora_A for name in getattr(module, "lora_variant", {})):
        return None  # DoRA and the like compute differently
    loras = {name: (module.lora_A[name].weight, module.lora_B[name].weight, module.scaling[name])
             for name in module.lora_A}
    return _Projection(base.weight, base.bias, loras)


def adapters_in_use(model) -> tuple[str, ...]:
    """The adapters the model's own forward applies now: none when adapters are off or there are none."""
    for module in inner_model(model).modules():
        if hasattr(module, "lora_A") and hasattr(module, "disable_adapters"):
            return () if module.disable_adapters else tuple(module.active_adapters)
    return ()


def inner_model(model):
    """The transformers model under a PEFT wrapper (or the model itself)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supported(model) -> bool:
    """Whether `step` reproduces this model's forward (else the caller uses `model.generate`)."""
    inner = inner_model(model)
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


class Weights:
    """The model's tensors (not copies) in the order one decode step reads them."""

    def __init__(self, model):
        inner = inner_model(model)
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

    def tensors_of(self, adapters: tuple[str, ...]) -> tuple:
        """The base's embedding and the adapters' A matrices: what keys computed with `adapters` came from
        (a reloaded adapter has new tensors)."""
        loras = [p.loras[name][0] for layer in self.layers for p in layer if isinstance(p, _Projection)
                 for name in adapters if name in p.loras]
        return (self.embed, *loras)


def token_bytes(model) -> int:
    """Memory one token's keys and values take in the cache, over every layer, at the model's own dtype."""
    config = inner_model(model).config
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    size = model.get_input_embeddings().weight.element_size()
    return 2 * config.num_hidden_layers * kv_heads * head_dim * size


class Cache:
    """Keys and values of every layer in row slots: the rows in use are slots 0..rows-1, each from position 0.

    Slots grow in number (doubling, up to `max_rows`) as rows join and in length as longer rows join,
    so a step reads views, never copies; a row that leaves is replaced by the last one (one row copied).
    Memory is slots x the longest row's room: a batch of a few short rows does not hold `max_rows` slots,
    and growth stops short of `max_tokens` (slots x room) where the rows in use allow; `room_after` says
    what rows joining would need, for the batch to admit only those that fit. When the longest row leaves,
    `fit_to` gives its room back.
    """

    def __init__(self, max_rows: int, max_tokens: int | None = None):
        self.max_rows, self.max_tokens, self.capacity, self.slots = max_rows, max_tokens, 0, 0
        self.keys: list[torch.Tensor] = []
        self.values: list[torch.Tensor] = []
        self.lengths: list[int] = []  # tokens held per row in use

    @property
    def rows(self) -> int:
        return len(self.lengths)

    def add(self, keys: list[torch.Tensor], values: list[torch.Tensor], need: int) -> None:
        """Put one prefilled row (per layer, keys and values [kv_heads, length, head_dim]) in the next slot,
        with room for `need` tokens."""
        length = keys[0].shape[1]
        capacity, slots = self._grown(self.rows, self.capacity, self.slots, need)
        if not self.keys or (capacity, slots) != (self.capacity, self.slots):
            self._grow(keys, values, capacity, slots)
        for slots_k, slots_v, k, v in zip(self.keys, self.values, keys, values):
            slots_k[self.rows, :, :length] = k
            slots_v[self.rows, :, :length] = v
        self.lengths.append(length)

    def room_after(self, needs: list[int]) -> int:
        """Tokens of room (slots x length) the cache would hold once rows needing `needs` tokens each join."""
        rows, capacity, slots = self.rows, self.capacity, self.slots
        for need in needs:
            capacity, slots = self._grown(rows, capacity, slots, need)
            rows += 1
        return slots * capacity

    def _grown(self, rows: int, capacity: int, slots: int, need: int) -> tuple[int, int]:
        """Length and slot count once one more row needing `need` tokens joins: doubled, so joining rarely
        copies the cache, but short of `max_tokens` when the rows in use fit below it."""
        bound = self.max_tokens or 1 << 62
        if need > capacity:
            capacity = max(need, min(2 * capacity, bound // max(slots, rows + 1)))
        if rows == slots:
            slots = min(self.max_rows, max(rows + 1, min(2 * slots, bound // capacity)))
        return capacity, slots

    def fit_to(self, needs: list[int]) -> None:
        """Give back room once the rows in use need at most half of it (`needs`: each row's room, in row order).

        Without this, one long request kept every slot its length until the batch went idle, so in a busy
        server fewer rows fit the memory bound long after it had left."""
        if self.keys and needs and max(needs) <= self.capacity // 2:
            self._grow([k[0] for k in self.keys], [v[0] for v in self.values], max(needs), self.slots)

    def _grow(self, new_keys: list[torch.Tensor], new_values: list[torch.Tensor], capacity: int, slots: int) -> None:
        """New slots of `capacity` tokens each (more or fewer than now), the rows in use copied in."""
        keys, values = [], []
        kept = min(capacity, self.capacity)
        for i, (nk, nv) in enumerate(zip(new_keys, new_values)):
            h, _, d = nk.shape
            # zeros, not empty: a masked slot still enters the attention product as 0 x value, and
            # uninitialized memory can hold NaN, which 0 x NaN spreads into the row
            k = nk.new_zeros(slots, h, capacity, d)
            v = nv.new_zeros(slots, h, capacity, d)
            if self.keys:
                k[: self.rows, :, :kept] = self.keys[i][: self.rows, :, :kept]
                v[: self.rows, :, :kept] = self.values[i][: self.rows, :, :kept]
            keys.append(k)
            values.append(v)
        self.keys, self.values, self.capacity, self.slots = keys, values, capacity, slots

    def remove(self, row: int) -> None:
        """Free a row's slot: the last row moves into it, so the rows in use stay contiguous."""
        last = self.rows - 1
        if row != last:
            n = self.lengths[last]
            for keys, values in zip(self.keys, self.values):
                keys[row, :, :n] = keys[last, :, :n]
                values[row, :, :n] = values[last, :, :n]
            self.lengths[row] = n
        self.lengths.pop()


def step(w: Weights, cache: Cache, tokens: torch.Tensor, groups: Groups) -> torch.Tensor:
    """Logits [rows, vocab] for one new token per row in use, each at its row's next position.

    The new keys and values go into `cache`. Rows of equal length attend without a mask, as a row alone
    does in transformers; rows of different lengths mask the slots beyond their own.
    """
    b = tokens.shape[0]
    lengths = torch.tensor(cache.lengths, device=tokens.device)
    x = F.embedding(tokens[:, None], w.embed)  # [B, 1, hidden]
    freqs = lengths[:, None, None].float() * w.inv_freq.to(dtype=torch.float)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = (emb.cos() * w.rope_scale).to(x.dtype)[:, None]  # [B, 1, 1, head_dim]
    sin = (emb.sin() * w.rope_scale).to(x.dtype)[:, None]
    even = min(cache.lengths) == max(cache.lengths)
    end = max(cache.lengths) + 1
    mask = None if even else (torch.arange(end, device=tokens.device)[None] <= lengths[:, None])[:, None, None]
    rows = torch.arange(b, device=tokens.device)
    groups_n = w.heads // w.kv_heads
    for i, (ln1, q_proj, k_proj, v_proj, o_proj, ln2, gate, up, down) in enumerate(w.layers):
        h = _rms_norm(x, ln1, w.eps)
        q = q_proj(h, groups).view(b, 1, -1, w.head_dim).transpose(1, 2)
        k = k_proj(h, groups).view(b, 1, -1, w.head_dim).transpose(1, 2)
        v = v_proj(h, groups).view(b, 1, -1, w.head_dim).transpose(1, 2)
        q = (q * cos) + (_rotate_half(q) * sin)
        k = (k * cos) + (_rotate_half(k) * sin)
        if even:
            t = end - 1
            cache.keys[i][:b, :, t : t + 1] = k
            cache.values[i][:b, :, t : t + 1] = v
        else:
            cache.keys[i][rows, :, lengths] = k[:, :, 0]
            cache.values[i][rows, :, lengths] = v[:, :, 0]
        keys, values = cache.keys[i][:b, :, :end], cache.values[i][:b, :, :end]
        # transformers' SDPA call for one query token: GQA inside SDPA without a mask, query heads packed
        # per key/value head with one
        if groups_n == 1:
            out = F.scaled_dot_product_attention(q, keys, values, attn_mask=mask, scale=w.scaling)
        elif mask is None:
            out = F.scaled_dot_product_attention(q, keys, values, scale=w.scaling, enable_gqa=True)
        else:
            out = F.scaled_dot_product_attention(q.reshape(b, w.kv_heads, groups_n, w.head_dim), keys, values,
                                                 attn_mask=mask, scale=w.scaling)
        out = out.reshape(b, -1, 1, w.head_dim).transpose(1, 2).contiguous().reshape(b, 1, -1).contiguous()
        x = x + o_proj(out, groups)
        h = _rms_norm(x, ln2, w.eps)
        x = x + down(F.silu(gate(h, groups)) * up(h, groups), groups)
    cache.lengths = [n + 1 for n in cache.lengths]
    return w.head(_rms_norm(x, w.norm, w.eps), groups)[:, -1]
