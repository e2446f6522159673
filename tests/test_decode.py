"""tailored's own decode loop gives exactly the tokens `model.generate` gives, streamed or not."""

from __future__ import annotations

import pytest
import torch

import tailored.evaluation.generate as generation
from tailored.models import decode as decoding
from tailored.models.prefill import prefill
from tests.conftest import build_tokenizer

PROMPTS = ["hello", "please help reset password billing the answer is", "yes no ok", "the answer is ok please help"]


def _model(kv_heads: int, adapters: int = 2, attn: str = "sdpa"):
    """A tiny random Llama with LoRA adapters whose B matrices are not zero, so they change the answers."""
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=kv_heads, max_position_embeddings=256,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id, bos_token_id=None,
                         initializer_range=0.3, attn_implementation=attn)
    model = LlamaForCausalLM(config)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj",
                                                         "up_proj", "down_proj"])
    model = get_peft_model(model, lora, adapter_name="first")
    for k in range(1, adapters):
        model.add_adapter(f"other{k}", lora)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.3)
    model.eval()
    return model, tok


def _both(model, tok, monkeypatch, texts, budgets, batch_size, **kw):
    """(fast, reference) token ids, checking that the fast path really ran."""
    calls = []
    real = generation._continuous

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(generation, "_continuous", spy)
    fast = generation.generate_ids(model, tok, texts, budgets, batch_size, **kw)
    assert calls, "the decode loop did not run"
    monkeypatch.setattr(generation, "supported", lambda m: False)
    reference = generation.generate_ids(model, tok, texts, budgets, batch_size, **kw)
    monkeypatch.undo()
    return fast, reference


@pytest.mark.parametrize("kv_heads", [2, 4])  # grouped-query attention and plain multi-head
@pytest.mark.parametrize("batch_size", [1, 4])  # one prompt (no mask) and left-padded batches
def test_decode_gives_generates_tokens(kv_heads, batch_size, monkeypatch):
    model, tok = _model(kv_heads)
    assert decoding.supported(model)
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    fast, reference = _both(model, tok, monkeypatch, texts, [12, 5, 20, 9], batch_size)
    assert fast == reference
    assert [len(r) for r in fast] == [12, 5, 20, 9]  # no stop token came up: each row ran to its own budget
    # the adapter mattered, and switching it or turning it off is followed
    model.set_adapter("other1")
    other, other_ref = _both(model, tok, monkeypatch, texts, 12, batch_size)
    with model.disable_adapter():
        bare, bare_ref = _both(model, tok, monkeypatch, texts, 12, batch_size)
    assert other == other_ref and bare == bare_ref
    assert other != [r[:12] for r in fast] and bare != other


def test_decode_stops_each_row_at_its_stop_token(monkeypatch):
    model, tok = _model(2)
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    free = generation.generate_ids(model, tok, texts, 16, 4)
    stop = free[0][3]  # a token the first answer gives fourth: now it ends that answer (and maybe others)
    model.generation_config.eos_token_id = [tok.eos_token_id, stop]
    fast, reference = _both(model, tok, monkeypatch, texts, 16, 4)
    assert fast == reference
    assert fast[0] == free[0][:4] and fast[0][-1] == stop


def test_streaming_and_cancelling_follow_the_same_tokens(monkeypatch):
    model, tok = _model(2)
    text = tok.apply_chat_template([{"role": "user", "content": "hello"}], tokenize=False, add_generation_prompt=True)
    for fast in (True, False):
        if not fast:
            monkeypatch.setattr(generation, "supported", lambda m: False)
        seen = []
        ids = generation.generate_ids(model, tok, [text], 10, 1, on_token=seen.append)
        assert seen == [*ids[0], None]
        seen = []
        ids_cut = generation.generate_ids(model, tok, [text], 10, 1, on_token=seen.append,
                                          cancelled=lambda: len(seen) >= 3)
        # model.generate checks its stopping criteria one token later than the loop does
        cut = 3 if fast else 4
        assert ids_cut[0] == ids[0][:cut] and seen == [*ids[0][:cut], None]


def test_what_the_loop_cannot_reproduce_goes_to_generate():
    model, _ = _model(2, attn="eager")
    assert not decoding.supported(model)
    dora, _ = _model(2)
    from peft import LoraConfig

    dora.add_adapter("dora", LoraConfig(r=4, target_modules=["q_proj"], use_dora=True))
    dora.set_adapter("dora")
    assert not decoding.supported(dora)


@pytest.mark.parametrize("kv_heads", [2, 4])
def test_a_decode_step_gives_the_models_own_logits(kv_heads):
    # Tokens can agree while logits drift; the loop is meant to repeat the model's arithmetic exactly.
    from transformers import DynamicCache

    model, tok = _model(kv_heads)
    prompts = [tok(p, return_tensors="pt")["input_ids"] for p in PROMPTS]
    tokens = torch.tensor([5, 17, 42, 99])
    alone, caches = [], []
    with torch.no_grad():
        for ids, token in zip(prompts, tokens):
            ours, theirs = DynamicCache(config=model.config), DynamicCache(config=model.config)
            for past in (ours, theirs):
                model(input_ids=ids, cache=past, use_cache=True)
            caches.append(ours)
            one = decoding.Cache(1)
            one.add(*_kv(ours), ids.shape[1] + 2)
            fast = decoding.step(decoding.Weights(model), one, token[None], [(decoding.adapters_in_use(model), None)])
            reference = model(input_ids=token[None, None], cache=theirs, use_cache=True).logits[:, -1]
            assert torch.equal(fast, reference)  # a row alone: the model's own logits, bit for bit
            alone.append(reference[0])
        # the four rows at different lengths in one batch (their prefills untouched by the steps above, which
        # wrote into our own cache): each row's logits up to the rounding of a bigger matrix product
        batch = decoding.Cache(4)
        for past, ids in zip(caches, prompts):
            batch.add(*_kv(past), ids.shape[1] + 2)
        together = decoding.step(decoding.Weights(model), batch, tokens, [(decoding.adapters_in_use(model), None)])
    assert len(set(batch.lengths)) > 1
    torch.testing.assert_close(together, torch.stack(alone), rtol=0, atol=1e-5)
    assert together.argmax(-1).tolist() == torch.stack(alone).argmax(-1).tolist()


def _kv(past) -> tuple[list, list]:
    """A transformers cache of one row as `Cache.add` takes it."""
    return [layer.keys[0] for layer in past.layers], [layer.values[0] for layer in past.layers]


@pytest.mark.parametrize("kv_heads", [2, 4])
def test_prefill_gives_the_models_own_logits_and_cache(kv_heads):
    # A prompt alone: the logits and keys/values transformers computes, bit for bit; prompts packed
    # together, with different adapters per prompt: the same up to a bigger product's rounding.
    from transformers import DynamicCache

    model, tok = _model(kv_heads, adapters=2)
    prompts = [tok(p)["input_ids"] for p in PROMPTS]
    plan = ["first", "other1", None, "first"]  # each prompt's adapter; None: adapters off
    alone, caches = [], []
    with torch.no_grad():
        for ids, adapter in zip(prompts, plan):
            past = DynamicCache(config=model.config)
            if adapter is None:
                with model.disable_adapter():
                    reference = model(input_ids=torch.tensor([ids]), cache=past, use_cache=True, logits_to_keep=1)
            else:
                model.set_adapter(adapter)
                reference = model(input_ids=torch.tensor([ids]), cache=past, use_cache=True, logits_to_keep=1)
            names = () if adapter is None else (adapter,)
            one = decoding.Cache(1)
            fast = prefill(decoding.Weights(model), one, [ids], [(names, None)], [len(ids) + 3])
            assert torch.equal(fast, reference.logits[:, -1])
            for i, layer in enumerate(past.layers):
                assert torch.equal(one.keys[i][0, :, : len(ids)], layer.keys[0])
                assert torch.equal(one.values[i][0, :, : len(ids)], layer.values[0])
            assert one.lengths == [len(ids)]
            alone.append(fast[0])
            caches.append(one)
        packed = decoding.Cache(4)
        groups = [(names, torch.tensor([r for r, a in enumerate(plan) if a == adapter]))
                  for names, adapter in ((("first",), "first"), (("other1",), "other1"))]
        together = prefill(decoding.Weights(model), packed, prompts, groups, [len(p) + 3 for p in prompts])
    assert packed.lengths == [len(p) for p in prompts] and len(set(packed.lengths)) > 1
    torch.testing.assert_close(together, torch.stack(alone), rtol=0, atol=1e-5)
    assert together.argmax(-1).tolist() == torch.stack(alone).argmax(-1).tolist()
    for i in range(len(packed.keys)):
        for r, one in enumerate(caches):
            torch.testing.assert_close(packed.keys[i][r, :, : len(prompts[r])], one.keys[i][0, :, : len(prompts[r])],
                                       rtol=0, atol=1e-5)


@pytest.mark.parametrize("kv_heads", [2, 4])
def test_a_prompt_that_starts_from_kept_keys_gets_its_own_logits(kv_heads):
    # Keys and values of a prompt's first tokens, taken from another prompt that begins the same way:
    # only the rest runs, and the logits and cache are those of the whole prompt, up to rounding.
    model, tok = _model(kv_heads)
    model.set_adapter("other1")
    names = ("other1",)
    shared = tok("please help reset password billing the answer is yes no ok")["input_ids"]
    one, two = shared + tok("hello")["input_ids"], shared + tok("the answer is ok")["input_ids"]
    assert len(shared) >= 8 and one[len(shared)] != two[len(shared)]
    w = decoding.Weights(model)
    with torch.no_grad():
        first = decoding.Cache(1)
        prefill(w, first, [one], [(names, None)], [len(one)])
        past = ([k[0, :, : len(shared)] for k in first.keys], [v[0, :, : len(shared)] for v in first.values])
        alone, reused = decoding.Cache(1), decoding.Cache(1)
        expected = prefill(w, alone, [two], [(names, None)], [len(two)])
        got = prefill(w, reused, [two], [(names, None)], [len(two)], past=[past])
        with pytest.raises(ValueError):  # the last token must run, or there are no logits to give
            prefill(w, decoding.Cache(1), [shared], [(names, None)], [len(shared)], past=[past])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)
    assert got.argmax(-1).tolist() == expected.argmax(-1).tolist()
    assert reused.lengths == alone.lengths == [len(two)]
    for k_got, k_alone in zip(reused.keys, alone.keys):
        torch.testing.assert_close(k_got[0, :, : len(two)], k_alone[0, :, : len(two)], rtol=0, atol=1e-5)
    # the kept keys themselves are copied in unchanged
    assert torch.equal(reused.keys[0][0, :, : len(shared)], first.keys[0][0, :, : len(shared)])
