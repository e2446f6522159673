"""The training speed-ups compute the same function as the code they replace, and leave the model as it was."""

import pytest
import torch
import torch.nn.functional as F

from tailored.training import lora
from tailored.training.fast_path import grouped_causal_attention, head_loss, training_kernels


@pytest.mark.parametrize("chunk", [3, 128])
def test_head_loss_matches_cross_entropy_and_its_gradients(chunk):
    torch.manual_seed(0)
    hidden = torch.randn(10, 8, dtype=torch.float64, requires_grad=True)
    weight = torch.randn(50, 8, dtype=torch.float64, requires_grad=True)
    targets = torch.randint(0, 50, (10,))
    reference = F.cross_entropy(F.linear(hidden, weight), targets, reduction="sum")
    want = torch.autograd.grad(reference, [hidden, weight])
    ours, correct = head_loss(hidden, weight, targets, bf16=False, chunk=chunk)
    got = torch.autograd.grad(ours * 2, [hidden, weight])  # a scaled loss scales both gradients
    assert ours.item() == pytest.approx(reference.item(), rel=1e-6)
    argmax_right = int((F.linear(hidden, weight).argmax(-1) == targets).sum())
    targets_right = targets.clone()
    targets_right[:4] = F.linear(hidden, weight)[:4].argmax(-1)  # at least four right, so the count is tested
    assert correct.item() == argmax_right
    assert head_loss(hidden, weight, targets_right, bf16=False, chunk=chunk)[1].item() == \
        int((F.linear(hidden, weight).argmax(-1) == targets_right).sum()) >= 4
    for g, w in zip(got, want):
        torch.testing.assert_close(g, 2 * w)
    with torch.no_grad():  # validation skips the gradient work and must give the same loss
        assert head_loss(hidden, weight, targets, bf16=False, chunk=chunk)[0].item() == \
            pytest.approx(reference.item(), rel=1e-12)


def test_head_loss_in_bf16_matches_autocast():
    torch.manual_seed(0)
    hidden = torch.randn(40, 32, requires_grad=True)
    weight = torch.randn(300, 32) * 0.3
    targets = torch.randint(0, 300, (40,))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        reference = F.cross_entropy(F.linear(hidden, weight).float(), targets, reduction="sum")
    (want,) = torch.autograd.grad(reference, [hidden])
    ours, _ = head_loss(hidden, weight, targets, bf16=True, chunk=16)
    (got,) = torch.autograd.grad(ours, [hidden])
    assert ours.item() == pytest.approx(reference.item(), rel=1e-4)
    torch.testing.assert_close(got, want, rtol=1e-2, atol=1e-3)


class _Heads(torch.nn.Module):
    num_key_value_groups = 2


def test_grouped_attention_matches_sdpa_on_every_real_position():
    torch.manual_seed(0)
    q, k, v = torch.randn(2, 4, 7, 16), torch.randn(2, 2, 7, 16), torch.randn(2, 2, 7, 16)
    mask = torch.tensor([[1] * 7, [1] * 5 + [0] * 2])  # the second row is right-padded
    ours, _ = grouped_causal_attention(_Heads(), q, k, v, mask, scaling=0.25)
    want = F.scaled_dot_product_attention(q, k.repeat_interleave(2, 1), v.repeat_interleave(2, 1), is_causal=True,
                                          scale=0.25).transpose(1, 2)
    torch.testing.assert_close(ours[0], want[0])
    torch.testing.assert_close(ours[1, :5], want[1, :5])
    with pytest.raises(ValueError, match="right-padded"):
        grouped_causal_attention(_Heads(), q, k, v, mask.flip(1))


def _lora_model(tiny_base):
    from tailored.config import TrainConfig
    from tailored.models import load_causal_lm, resolve_base
    from tailored.training import lora

    model = lora.setup(load_causal_lm(resolve_base(str(tiny_base))), TrainConfig(lora_rank=4))
    torch.manual_seed(1)
    for name, p in model.named_parameters():
        if "lora_B" in name:  # PEFT starts B at zero, which would hide a wrong adapter product
            p.data.normal_(0, 0.1)
    return model


def _grads(model, loss):
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.requires_grad}
    model.zero_grad()
    return loss.item(), grads


def _plain_loss(model, batch):
    """The reference: transformers' own forward (no tailored code) and torch's cross-entropy, summed."""
    logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
    logits = logits[:, :-1].flatten(0, 1)
    logits = logits.to(torch.promote_types(logits.dtype, torch.float32))  # fp32 softmax at least, fp64 kept
    return F.cross_entropy(logits, batch["labels"][:, 1:].flatten(), reduction="sum")


def _fast_loss(model, batch):
    return lora.loss(model, batch)[0]


def _half_predicted(model, batch) -> tuple[dict, int]:
    """`batch` with every other labelled token set to transformers' own argmax, and how many are then right."""
    with torch.no_grad():
        guess = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits[:, :-1].argmax(-1)
    labels = batch["labels"].clone()
    keep = labels[:, 1:] != -100
    every_other = keep & (torch.arange(keep.shape[1]) % 2 == 0)
    labels[:, 1:][every_other] = guess[every_other]
    right = int(((labels[:, 1:] == guess) & keep).sum())
    assert 0 < int(every_other.sum()) <= right < int(keep.sum())
    return {**batch, "labels": labels}, right


def _batch():
    torch.manual_seed(2)
    ids = torch.randint(3, 40, (3, 9))
    mask = torch.tensor([[1] * 9, [1] * 6 + [0] * 3, [1] * 4 + [0] * 5])
    labels = torch.where(mask.bool(), ids, torch.full_like(ids, -100))
    labels[:, :2] = -100
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_training_kernels_give_the_same_loss_and_gradients_as_plain_transformers(tiny_base):
    from tailored.training.fast_path import ALL_LEVERS, IMPLEMENTATION

    model, batch = _lora_model(tiny_base).double(), _batch()  # fp64: summation order cannot show
    config = model.get_base_model().config
    plain_loss, plain_grads = _grads(model, _plain_loss(model, batch))
    guessed, right = _half_predicted(model, batch)
    with training_kernels(model, bf16=False) as kernels:
        assert kernels.levers == ALL_LEVERS and config._attn_implementation == IMPLEMENTATION  # really swapped
        assert all("forward" in vars(m) for m in model.modules() if type(m).__name__ == "Linear" and hasattr(m, "lora_A"))
        fast_loss, fast_grads = _grads(model, _fast_loss(model, batch))
        assert kernels.workspace.buffers is not None  # the loss really went through head_loss
        fast_correct = lora.loss(model, guessed)[2]
    assert fast_correct == lora.loss(model, guessed)[2] == right  # token accuracy: fast path, plain path, HF
    assert fast_loss == pytest.approx(plain_loss, rel=1e-12)
    assert plain_grads.keys() == fast_grads.keys() and len(plain_grads) == 2 * 7 * 2  # A and B, 7 linears, 2 layers
    for name in plain_grads:
        torch.testing.assert_close(fast_grads[name], plain_grads[name], rtol=1e-9, atol=1e-12)


def test_each_lever_can_be_left_off(tiny_base):
    model, batch = _lora_model(tiny_base).double(), _batch()
    config = model.get_base_model().config
    plain_loss = _plain_loss(model, batch).item()
    with training_kernels(model, bf16=False, levers=frozenset({"head_loss"})) as kernels:
        assert config._attn_implementation == "sdpa"
        assert not any("forward" in vars(m) for m in model.modules())
        assert _fast_loss(model, batch).item() == pytest.approx(plain_loss, rel=1e-12)
        assert kernels.workspace.buffers is not None
    with training_kernels(model, bf16=False, levers=frozenset()) as kernels:
        assert _fast_loss(model, batch).item() == pytest.approx(plain_loss, rel=1e-12)
        assert kernels.workspace.buffers is None  # plain head and cross-entropy


def test_training_kernels_in_bf16_stay_close_and_restore_the_model(tiny_base):
    model, batch = _lora_model(tiny_base), _batch()
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    config = model.get_base_model().config
    with torch.autocast("cpu", dtype=torch.bfloat16):
        plain_loss, plain_grads = _grads(model, _plain_loss(model, batch))
    with training_kernels(model, bf16=True):
        assert config._attn_implementation != "sdpa"
        with torch.autocast("cpu", dtype=torch.bfloat16):
            fast_loss, fast_grads = _grads(model, _fast_loss(model, batch))
    assert fast_loss == pytest.approx(plain_loss, rel=2e-2)
    for name in plain_grads:
        cosine = F.cosine_similarity(fast_grads[name].flatten(), plain_grads[name].flatten(), dim=0)
        assert cosine > 0.99, name
    # Everything put back: attention, forwards, hooks, the kernels object and fp32 weights with their exact values.
    assert config._attn_implementation == "sdpa"
    assert not hasattr(model.get_base_model(), "_tailored_kernels")
    for name, p in model.named_parameters():
        assert p.dtype == torch.float32 and torch.equal(p, before[name]), name
    for module in model.modules():
        assert "forward" not in vars(module) and not module._forward_hooks
