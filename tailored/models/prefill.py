"""Prompts into the decode loop's cache: many at once, packed into one pass, and a shared prefix computed once.

On 2 cores a 50-token prompt alone took ~145 ms, most of it in matrix products too small to run
near the CPU's peak; 32 prompts packed into one sequence took ~90 ms each. Chat prompts also begin
alike: the template and system prompt are the first 24-29 tokens of every prompt in examples/ and in
../shared/realdata/. Their keys and values depend only on those tokens (and the adapter), so a prompt
that starts like one prefilled before reuses them and runs only the rest.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from tailored.models.decode import Cache, Groups, Weights, _rms_norm, _rotate_half

KV = tuple[list[torch.Tensor], list[torch.Tensor]]  # per layer, keys and values [kv_heads, tokens, head_dim]


def prefill(w: Weights, cache: Cache, prompts: list[list[int]], groups: Groups, needs: list[int],
            past: list[KV | None] | None = None) -> torch.Tensor:
    """Logits [rows, vocab] at the last token of each prompt; each prompt becomes a new row of `cache`.

    The prompts run packed as one sequence, so every projection is one matrix product over all their
    tokens; attention stays within each prompt. `groups` index rows, as in `decode.step`. `past[r]`, when
    given, holds the keys and values of the first tokens of prompt r, computed before with the same
    adapters: only the rest of the prompt runs, attending to them. A prompt alone and without `past`
    gets the model's own logits bit for bit, as `model(input_ids, logits_to_keep=1)` computes them;
    packed or with `past`, the same up to the rounding of matrix products of another size.
    """
    device = w.embed.device
    past = past or [None] * len(prompts)
    done = [0 if p is None else p[0][0].shape[1] for p in past]
    lengths = [len(p) - d for p, d in zip(prompts, done)]
    if min(lengths) < 1:
        raise ValueError("every prompt needs a token of its own after its past")
    starts = [sum(lengths[:i]) for i in range(len(lengths))]
    ids = torch.tensor([t for p, d in zip(prompts, done) for t in p[d:]], device=device)
    positions = torch.cat([torch.arange(d, d + m, device=device) for d, m in zip(done, lengths)])
    x = F.embedding(ids, w.embed)  # [tokens, hidden]
    freqs = positions[:, None].float() * w.inv_freq.to(dtype=torch.float)
    emb = torch.cat((freqs, freqs), dim=-1)
    cos = (emb.cos() * w.rope_scale).to(x.dtype)[None]  # [1, tokens, head_dim]
    sin = (emb.sin() * w.rope_scale).to(x.dtype)[None]
    n = ids.shape[0]
    by_token = _tokens_of(groups, starts, lengths)  # the layers run on every token; the head on each row's last
    keys: list[list[torch.Tensor]] = [[] for _ in prompts]  # per row, per layer: [kv_heads, length, head_dim]
    values: list[list[torch.Tensor]] = [[] for _ in prompts]
    for i, (ln1, q_proj, k_proj, v_proj, o_proj, ln2, gate, up, down) in enumerate(w.layers):
        h = _rms_norm(x, ln1, w.eps)
        q = q_proj(h, by_token).view(n, -1, w.head_dim).transpose(0, 1)  # [heads, tokens, head_dim]
        k = k_proj(h, by_token).view(n, -1, w.head_dim).transpose(0, 1)
        v = v_proj(h, by_token).view(n, -1, w.head_dim).transpose(0, 1)
        q = (q * cos) + (_rotate_half(q) * sin)
        k = (k * cos) + (_rotate_half(k) * sin)
        outs = []
        for r, (s, m, d) in enumerate(zip(starts, lengths, done)):
            qr, kr, vr = q[None, :, s : s + m], k[:, s : s + m], v[:, s : s + m]
            if d:
                kr, vr = torch.cat((past[r][0][i], kr), dim=1), torch.cat((past[r][1][i], vr), dim=1)
            outs.append(_attend(w, qr, kr, vr, d))
            keys[r].append(kr)
            values[r].append(vr)
        out = torch.cat(outs, dim=1).transpose(0, 1).contiguous().reshape(n, -1)
        x = x + o_proj(out, by_token)
        h = _rms_norm(x, ln2, w.eps)
        x = x + down(F.silu(gate(h, by_token)) * up(h, by_token), by_token)
    for row_keys, row_values, need in zip(keys, values, needs):
        cache.add(row_keys, row_values, need)
    last = torch.tensor([s + m - 1 for s, m in zip(starts, lengths)], device=device)
    return w.head(_rms_norm(x[last], w.norm, w.eps), groups)


def _attend(w: Weights, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor, done: int) -> torch.Tensor:
    """One prompt's attention output [heads, tokens, head_dim]; its first `done` keys came from before."""
    if not done:  # transformers' SDPA call for an unpadded prompt: causal, no mask, GQA inside SDPA
        return F.scaled_dot_product_attention(q, keys[None], values[None], is_causal=q.shape[2] > 1, scale=w.scaling,
                                              enable_gqa=w.heads != w.kv_heads)[0]
    m, total = q.shape[2], keys.shape[1]
    # causal over the whole prompt: token j of the rest sees the past and the rest up to itself
    mask = torch.arange(total, device=q.device)[None] <= (done + torch.arange(m, device=q.device))[:, None]
    repeat = w.heads // w.kv_heads
    keys, values = keys.repeat_interleave(repeat, dim=0), values.repeat_interleave(repeat, dim=0)
    return F.scaled_dot_product_attention(q, keys[None], values[None], attn_mask=mask, scale=w.scaling)[0]


def _tokens_of(groups: Groups, starts: list[int], lengths: list[int]) -> Groups:
    """Row groups as groups of those rows' tokens in the packed sequence."""
    if len(groups) == 1 and groups[0][1] is None:
        return groups
    return [(names, torch.cat([torch.arange(starts[r], starts[r] + lengths[r], device=rows.device)
                               for r in rows.tolist()])) for names, rows in groups]


def common_length(a: list[int], b: list[int]) -> int:
    """How many leading tokens two prompts share."""
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n

