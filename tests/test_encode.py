"""Loss masking: only assistant replies (and their end-of-turn token) carry loss."""

from __future__ import annotations

import pytest

from tailored.data.encode import IGNORE, TemplateError, encode
from tailored.models.load import PLAIN_TEMPLATE
from tests.conftest import build_tokenizer


def labelled_text(tok, enc) -> str:
    return tok.decode([t for t in enc.labels if t != IGNORE])


def test_only_the_reply_and_end_of_turn_are_trained():
    tok = build_tokenizer()
    msgs = [{"role": "system", "content": "be nice"}, {"role": "user", "content": "hello"},
            {"role": "assistant", "content": "the answer is ok"}]
    enc = encode(tok, msgs)
    assert labelled_text(tok, enc) == "the answer is ok<|im_end|>"
    assert len(enc.input_ids) == len(enc.labels)
    # the prompt part is fully masked
    prompt_len = len(tok(tok.apply_chat_template(msgs[:2], tokenize=False, add_generation_prompt=True),
                         add_special_tokens=False)["input_ids"])
    assert all(t == IGNORE for t in enc.labels[:prompt_len])


def test_every_assistant_turn_is_trained_in_multi_turn():
    tok = build_tokenizer()
    msgs = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "yes"},
            {"role": "user", "content": "please help"}, {"role": "assistant", "content": "no"}]
    assert labelled_text(tok, encode(tok, msgs)) == "yes<|im_end|>no<|im_end|>"


def test_eos_is_appended_when_the_template_has_none():
    no_eos = ("{% for m in messages %}{{ m['role'] + ': ' + m['content'] + '\n' }}{% endfor %}"
              "{% if add_generation_prompt %}{{ 'assistant: ' }}{% endif %}")
    tok = build_tokenizer(no_eos)
    enc = encode(tok, [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "yes"}])
    # " yes": the prompt's trailing space is glued to the reply's first token by byte-level BPE
    assert labelled_text(tok, enc) == " yes<|im_end|>"


def test_plain_template_for_base_models_masks_the_response():
    tok = build_tokenizer(PLAIN_TEMPLATE)
    enc = encode(tok, [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "yes"}])
    assert labelled_text(tok, enc) == "yes<|im_end|>"


def test_template_that_rewrites_history_is_rejected():
    # A template that only renders the last turn does not grow as a prefix: masking would be wrong.
    last_only = "{{ messages[-1]['content'] }}{% if add_generation_prompt %}>{% endif %}"
    tok = build_tokenizer(last_only)
    with pytest.raises(TemplateError):
        encode(tok, [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "yes"}])


def test_a_weight_zero_reply_is_context_with_an_all_masked_span():
    tok = build_tokenizer()
    msgs = [{"role": "user", "content": "hello"}, {"role": "assistant", "content": "wrong answer", "weight": 0},
            {"role": "user", "content": "try again"}, {"role": "assistant", "content": "no"}]
    enc = encode(tok, msgs)
    assert labelled_text(tok, enc) == "no<|im_end|>"
    # the weight-0 reply is in the input, every one of its tokens masked
    text = tok.apply_chat_template(msgs, tokenize=False)
    start = text.index("wrong answer")
    spans = tok(text, add_special_tokens=False, return_offsets_mapping=True)["offset_mapping"]
    inside = [i for i, (a, b) in enumerate(spans) if a >= start and b <= start + len("wrong answer<|im_end|>")]
    assert inside and all(enc.labels[i] == IGNORE for i in inside)
    assert tok.decode([enc.input_ids[i] for i in inside]).startswith("wrong answer")
