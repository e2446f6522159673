"""Training-time speed-ups for causal LMs, each measured with torch.profiler (see BENCHMARKS.md).

Each one computes the same function as the code it replaces:
- `grouped_causal_attention`: attention as two batched GEMMs with one query-head group per key/value
  head, with HF's eager numerics (scores in the compute dtype, softmax in fp32). On a 2-core CPU, torch's
  flash-attention backward for sequences of 60-400 tokens is 1.5-3.7x slower than this.
- `head_loss`: the LM head and cross-entropy on loss positions, chunk by chunk, with the gradient
  computed in the forward pass, so the [tokens x 49k] logits are never stored and there is no separate
  log-softmax backward.
- `_Fused`: PEFT LoRA linears as W x + B (s A x), with Q/K/V and gate/up each as one GEMM (and their A
  matrices as one), the low-rank product added inside the GEMM (`addmm`), the scale applied to the
  rank-16 activations rather than the full-width output, and the frozen weights held in bf16 for the run
  instead of cast by autocast at every call. PEFT's version also casts its input to fp32 and back.
- norm outputs in bf16: under bf16 autocast each RMSNorm output is cast to bf16 once instead of once per
  linear layer that reads it (five times per decoder layer).
"""

from __future__ import annotations

import functools
from contextlib import contextmanager

import torch

IMPLEMENTATION = "tailored_grouped_causal"
# Every speed-up; tailored always uses all of them. bench/profile_levers.py passes subsets to measure each.
ALL_LEVERS = frozenset({"attention", "head_loss", "fused_lora", "norm_cast"})


def grouped_causal_attention(module, query, key, value, attention_mask, scaling=None, dropout=0.0, **kwargs):
    """Causal attention for right-padded batches: [B, H, T, D] in, [B, T, H, D] out (HF's interface).

    Right padding needs no mask beyond causality: a real token only sees earlier positions, which are
    real; padded positions compute values that nothing reads. A mask that is not right padding is refused.
    """
    if attention_mask is not None:
        mask = attention_mask.bool()
        if mask.ndim != 2 or bool((mask[:, 1:] & ~mask[:, :-1]).any()):
            raise ValueError("grouped_causal_attention needs right-padded batches (a 2-D mask of 1s then 0s)")
    if dropout:
        raise ValueError("grouped_causal_attention has no attention dropout")
    b, h, t, d = query.shape
    kv = key.shape[1]
    # Query heads sharing a key/value head are stacked along the rows: one larger GEMM per group and no
    # repeated copies of K and V.
    scale = scaling if scaling is not None else d**-0.5
    q = (query * scale).reshape(b, kv, (h // kv) * t, d)  # scaling the queries is cheaper than the T x T scores
    scores = torch.matmul(q, key.transpose(-1, -2)).view(b, kv, h // kv, t, t)
    # The softmax accumulates in fp32 whatever the input dtype; asking for an fp32 output would only add a
    # slow conversion pass over the T x T scores.
    future = torch.ones(t, t, dtype=torch.bool, device=query.device).triu(1)
    probs = torch.softmax(scores.masked_fill(future, float("-inf")), dim=-1)
    out = torch.matmul(probs.view(b, kv, (h // kv) * t, t), value).view(b, h, t, d)
    return out.transpose(1, 2).contiguous(), None


def _register() -> None:
    from transformers import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, grouped_causal_attention)


class Kernels:
    """The speed-ups on for one model, and the buffers they keep while on (made by `training_kernels`)."""

    def __init__(self, levers: frozenset[str], bf16: bool):
        self.levers, self.bf16 = levers, bf16
        self.workspace = Workspace()

    def head_loss(self, inner, hidden: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor] | None:
        """`head_loss` with kept buffers, or None where it does not apply (lever off, head bias, soft-cap)."""
        head = inner.get_output_embeddings()
        if "head_loss" not in self.levers or head.bias is not None or \
                getattr(inner.config, "final_logit_softcapping", None):
            return None
        device = hidden.device.type
        bf16 = torch.is_autocast_enabled(device) and torch.get_autocast_dtype(device) == torch.bfloat16
        return head_loss(hidden, head.weight, targets, bf16, workspace=self.workspace)


def active_kernels(inner) -> Kernels | None:
    """The Kernels `training_kernels` attached to this (unwrapped) model, while its block runs."""
    return getattr(inner, "_tailored_kernels", None)


@contextmanager
def training_kernels(model, bf16: bool, levers: frozenset[str] = ALL_LEVERS):
    """Train `model` with the speed-ups in `levers`; on exit it is exactly the model that came in.

    The attention is swapped only for decoders that use HF's AttentionInterface without sliding windows
    or soft-capping. LoRA layers without dropout or variants get the fused forwards; others keep PEFT's.
    Yields the Kernels object, which is also reachable from the model through `active_kernels`.
    """
    inner = model.get_base_model() if hasattr(model, "get_base_model") else model
    if active_kernels(inner) is not None:  # already on (validation inside `fit`)
        yield active_kernels(inner)
        return
    kernels = inner._tailored_kernels = Kernels(frozenset(levers), bf16)
    config = inner.config
    previous = config._attn_implementation
    swap = ("attention" in levers and getattr(config, "sliding_window", None) is None
            and not getattr(config, "attn_logit_softcapping", None) and previous in ("sdpa", "eager"))
    if swap:
        _register()
        inner.set_attn_implementation(IMPLEMENTATION)
    cast = bf16 and "norm_cast" in levers
    hooks = [m.register_forward_hook(_to_bf16) for n, m in inner.named_modules() if cast and _feeds_linears(n, m)]
    fused = _lora_groups(inner) if "fused_lora" in levers else []
    for group in fused:
        shared = _Fused(group, torch.bfloat16 if bf16 else None)
        for index, module in enumerate(group):
            module.forward = functools.partial(shared.forward, index)
    try:
        yield kernels
    finally:
        for hook in hooks:
            hook.remove()
        for module in (m for group in fused for m in group):
            del module.forward
        if swap:
            inner.set_attn_implementation(previous)
        del inner._tailored_kernels  # with it go the head's bf16 copy and the loss buffers (~120 MB for SmolLM2)


def _plain_lora(module) -> bool:
    """A PEFT LoRA linear with one active adapter, no dropout and no variant (DoRA and the like)."""
    from peft.tuners.lora import Linear

    if not isinstance(module, Linear) or module.merged or module.disable_adapters or len(module.active_adapters) != 1:
        return False
    name = module.active_adapters[0]
    return (name in module.lora_A and name not in module.lora_variant
            and isinstance(module.lora_dropout[name], torch.nn.Identity) and module.base_layer.bias is None)


SIBLINGS = (("q_proj", "k_proj", "v_proj"), ("gate_proj", "up_proj"))


def _lora_groups(model) -> list[list]:
    """Plain LoRA linears, grouped where they read the same input in one block (Q/K/V; gate/up), else alone."""
    groups = []
    for parent in model.modules():
        for names in SIBLINGS:
            members = [getattr(parent, n, None) for n in names]
            if all(m is not None and _plain_lora(m) for m in members):
                adapter = members[0].active_adapters[0]
                same = {(m.active_adapters[0], m.scaling[adapter], m.base_layer.in_features) for m in members}
                if len(same) == 1:
                    groups.append(members)
    grouped = {m for group in groups for m in group}
    return groups + [[m] for m in model.modules() if _plain_lora(m) and m not in grouped]


class _Fused:
    """LoRA linears computed together: [W_q; W_k; W_v] x plus blockdiag(B) (s [A_q; A_k; A_v] x); or alone.

    The first member called with an input computes every member's output; the others take theirs for
    that same input (checked by identity) and the result is dropped once all have. Called with any other
    input, a member computes the group afresh, so the result is always right, only slower.
    """

    def __init__(self, members: list, dtype: torch.dtype | None):
        self.members = members
        self.adapter = members[0].active_adapters[0]
        self.sizes = [m.base_layer.out_features for m in members]
        weight = torch.cat([m.base_layer.weight.detach() for m in members])
        self.weight = weight.to(dtype) if dtype else weight
        self.pending: tuple | None = None  # (input, outputs not yet taken)

    def forward(self, index: int, x: torch.Tensor) -> torch.Tensor:
        if self.pending is None or self.pending[0] is not x or self.pending[1][index] is None:
            self.pending = (x, list(self._compute(x)))
        outputs = self.pending[1]
        out, outputs[index] = outputs[index], None
        if all(o is None for o in outputs):
            self.pending = None
        return out

    def _compute(self, x: torch.Tensor):
        a = torch.cat([m.lora_A[self.adapter].weight for m in self.members])
        b = torch.block_diag(*[m.lora_B[self.adapter].weight for m in self.members])
        base = torch.nn.functional.linear(x, self.weight)
        low = torch.nn.functional.linear(x, a) * self.members[0].scaling[self.adapter]
        out = torch.addmm(base.flatten(0, -2), low.flatten(0, -2), b.T).view(*x.shape[:-1], -1)
        return out.split(self.sizes, dim=-1)


def _feeds_linears(name: str, module) -> bool:
    # The norms whose only readers are linear layers under autocast: the per-layer ones. The final norm
    # feeds `head_loss`, which casts it itself.
    return "RMSNorm" in type(module).__name__ and name.rsplit(".", 1)[-1] in ("input_layernorm",
                                                                              "post_attention_layernorm")


def _to_bf16(module, args, output):
    return output.to(torch.bfloat16)


class Workspace:
    """What `head_loss` keeps between calls: the head's cast copy and three [rows x vocab] work buffers.

    A frozen head is cast once per run, not per batch. Fresh buffers this size come from the kernel as
    untouched pages, and on our CI machines (VMs) first-touch page faults cost more than the softmax
    itself: 3-8x slower than on warm memory.
    """

    def __init__(self):
        self.cast_key, self.cast_value = None, None
        self.buffer_key, self.buffers = None, None

    def cast_once(self, weight: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
        """`weight.to(dtype)`, reused while the weight is unchanged."""
        if weight.dtype == dtype:
            return weight
        key = (weight.data_ptr(), weight._version, weight.shape, dtype)
        if self.cast_key != key:
            self.cast_key, self.cast_value = key, weight.detach().to(dtype)
        return self.cast_value

    def rows(self, rows: int, vocab: int, dtype: torch.dtype, wide: torch.dtype, device) -> tuple[torch.Tensor, ...]:
        key = (vocab, dtype, wide, str(device))
        if self.buffer_key != key or self.buffers[0].shape[0] < rows:
            self.buffer_key = key
            self.buffers = None  # freed before the larger ones are made
            self.buffers = (torch.empty(rows, vocab, dtype=dtype, device=device),
                            torch.empty(rows, vocab, dtype=wide, device=device),
                            torch.empty(rows, vocab, dtype=wide, device=device))
        return tuple(b[:rows] for b in self.buffers)


class _HeadLoss(torch.autograd.Function):
    """Summed cross-entropy of `hidden @ weight.T` against `targets`, with the gradient made in the forward pass.

    Also gives how many targets are the argmax (token accuracy), read off the log-probabilities already
    in memory rather than from a second pass over the logits; that count carries no gradient.
    """

    @staticmethod
    def forward(ctx, hidden, weight, targets, compute_dtype, chunk, workspace):
        with torch.autocast(hidden.device.type, enabled=False):  # the dtypes are chosen by hand below
            return _HeadLoss._forward(ctx, hidden, weight, targets, compute_dtype, chunk, workspace)

    @staticmethod
    def _forward(ctx, hidden, weight, targets, compute_dtype, chunk, workspace):
        ctx.weight_dtype = weight.dtype
        w = workspace.cast_once(weight, compute_dtype)
        softmax_dtype = torch.promote_types(compute_dtype, torch.float32)  # fp32 at least
        loss = torch.zeros((), dtype=softmax_dtype, device=hidden.device)
        correct = torch.zeros((), dtype=torch.long, device=hidden.device)
        grad_hidden = torch.empty_like(hidden)
        grad_weight = torch.zeros_like(weight, dtype=softmax_dtype) if ctx.needs_input_grad[1] else None
        want_grad = ctx.needs_input_grad[0] or grad_weight is not None  # not when validating
        for start in range(0, hidden.shape[0], chunk):
            h = hidden[start : start + chunk].to(compute_dtype)
            t = targets[start : start + chunk]
            rows = torch.arange(len(t), device=t.device)
            logits, wide, logprobs = workspace.rows(len(t), w.shape[0], compute_dtype, softmax_dtype, h.device)
            torch.mm(h, w.T, out=logits)
            wide.copy_(logits)
            torch._log_softmax(wide, 1, False, out=logprobs)
            picked = logprobs[rows, t]
            loss -= picked.sum()
            correct += (logprobs.argmax(1) == t).sum()
            if not want_grad:
                continue
            # d(loss)/d(logits) = softmax - one_hot, written back over the logits in the compute dtype
            grad = logits.copy_(logprobs.exp_())
            grad[rows, t] = (picked.exp() - 1).to(compute_dtype)
            grad_hidden[start : start + chunk] = (grad @ w).to(hidden.dtype)
            if grad_weight is not None:
                grad_weight += (grad.T @ h).to(softmax_dtype)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.mark_non_differentiable(correct)
        return loss, correct

    @staticmethod
    def backward(ctx, grad_loss, _grad_correct):
        grad_hidden, grad_weight = ctx.saved_tensors
        grad_weight = None if grad_weight is None else (grad_weight * grad_loss).to(ctx.weight_dtype)
        return grad_hidden * grad_loss, grad_weight, None, None, None, None


def head_loss(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, bf16: bool,
              chunk: int = 128, workspace: Workspace | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """Summed cross-entropy of the LM head on `hidden` ([N, d]) against `targets` ([N]), and how many are the argmax.

    The same values as `F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")` under
    autocast: the GEMMs run in bf16 when `bf16`, the softmax in fp32.
    """
    return _HeadLoss.apply(hidden, weight, targets, torch.bfloat16 if bf16 else weight.dtype, chunk,
                           workspace or Workspace())
