"""Shared fixtures: a tiny random Llama and tokenizer built in code (no downloads), and data writers."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import pytest

CHATML = (
    "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>' + '\n' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    # Unit tests never write to the user's cache; the real model's cache is shared by integration tests.
    if "TAILORED_CACHE" not in os.environ:
        monkeypatch.setenv("TAILORED_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def hashed_embed(texts: list[str]):
    """A stand-in for the bundled sentence encoder: words hashed into 256 dimensions, unit length."""
    import hashlib

    import numpy as np

    out = np.zeros((len(texts), 256), dtype=np.float32)
    for i, text in enumerate(texts):
        for word in text.lower().split():
            out[i, int(hashlib.md5(word.encode()).hexdigest(), 16) % 256] += 1.0
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


@pytest.fixture(scope="session", autouse=True)
def _hashed_router_embeddings():
    # Unit tests route on hashed words, from the first run a fixture trains (session scope comes first);
    # modules that need the bundled encoder put it back (`bundled_router_encoder`).
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("tailored.models.router.encoder_embed", lambda: hashed_embed)
        yield


@contextmanager
def bundled_router_encoder():
    """Routers on the bundled encoder again, for a module whose runs are trained or served in another process
    (which the hashed stand-in does not reach) or that tests the real models."""
    from tailored.models.retrieval import encoder_embed

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr("tailored.models.router.encoder_embed", encoder_embed)
        yield


class SwitchableModel:
    """A stand-in model whose `adapter` says whether its adapter is on, switched off as PEFT's is."""

    adapter = True

    @contextmanager
    def disable_adapter(self):
        self.adapter = False
        yield
        self.adapter = True


def build_tokenizer(chat_template: str = CHATML):
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tk = Tokenizer(models.BPE(unk_token=None))
    tk.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tk.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=400, special_tokens=["<|im_start|>", "<|im_end|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    corpus = ["user assistant system hello yes no the answer is ok please help reset password billing"] * 20
    tk.train_from_iterator(corpus, trainer)
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, eos_token="<|im_end|>", pad_token="<|im_end|>")
    tok.chat_template = chat_template
    return tok


@pytest.fixture(scope="session")
def tiny_base(tmp_path_factory) -> Path:
    """A 2-layer, 32-dim Llama saved as a local HF folder, usable as `--base PATH`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id,
                         # no pad_token_id: nn.Embedding would zero that row, and pad is <|im_end|> here
                         bos_token_id=None,
                         # LoRA leaves the tied embeddings frozen; at the usual 0.02 init a 32-dim model's
                         # logits stay near-uniform whatever the adapters do, so nothing could be learned.
                         initializer_range=0.3)
    folder = tmp_path_factory.mktemp("tiny_base")
    LlamaForCausalLM(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def tiny_encoder(tmp_path_factory):
    """A 2-layer, 32-dim BERT with our BPE tokenizer, saved as a local HF folder."""
    import torch
    from transformers import BertConfig, BertModel

    torch.manual_seed(0)
    tok = build_tokenizer()
    config = BertConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                        num_attention_heads=4, max_position_embeddings=128, pad_token_id=tok.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny_encoder")
    BertModel(config).save_pretrained(folder)
    tok.save_pretrained(folder)
    return folder


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows), encoding="utf-8")
    return path


def yes_rows(n: int, start: int = 0) -> list[dict]:
    """A task a tiny model can learn in a few dozen steps: always answer 'yes'."""
    return [{"prompt": f"question number {i} please", "completion": "yes"} for i in range(start, start + n)]
