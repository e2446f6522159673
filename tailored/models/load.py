"""Load a resolved base as a PyTorch model and tokenizer, offline, with one chat template for all uses."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from tailored.errors import TailoredError
from tailored.models.bases import ResolvedBase

# Used for bases that ship no chat template (pretrained, not instruct). It is saved with the run, so
# training, prediction, serving and export all render conversations the same way.
PLAIN_TEMPLATE = (
    "{% if bos_token %}{{ bos_token }}{% endif %}"
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### Input:\n{{ m['content'] }}\n\n"
    "{% else %}### Response:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Response:\n{% endif %}"
)


def _quiet_transformers() -> None:
    import transformers

    transformers.utils.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()


def _local_only(base: ResolvedBase) -> bool:
    # A hub id may download when the user has a network; anything on disk must never touch it.
    return Path(base.path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"


def load_tokenizer(base: ResolvedBase, path: str | Path | None = None):
    """The base's fast tokenizer, with a pad token and a chat template guaranteed."""
    from transformers import AutoTokenizer

    _quiet_transformers()
    try:
        if path is not None:  # a tokenizer saved with a run
            tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        else:
            tok = AutoTokenizer.from_pretrained(base.path, gguf_file=base.gguf_file, local_files_only=_local_only(base))
    except OSError as e:
        raise TailoredError(f"could not load the tokenizer of '{base.name}': {e}") from None
    if not getattr(tok, "is_fast", False):
        raise TailoredError(f"base '{base.name}' has no fast tokenizer — tailored needs one for loss masking")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if path is None and (not base.instruct or not tok.chat_template):
        tok.chat_template = PLAIN_TEMPLATE
    return tok


def load_causal_lm(base: ResolvedBase, dtype: torch.dtype = torch.float32):
    """The base as a normal (dequantised) PyTorch causal LM in eval mode."""
    from transformers import AutoModelForCausalLM

    _quiet_transformers()
    try:
        model = AutoModelForCausalLM.from_pretrained(
            base.path, gguf_file=base.gguf_file, dtype=dtype, local_files_only=_local_only(base),
            trust_remote_code=False,
        )
    except OSError as e:
        raise TailoredError(f"could not load base '{base.name}': {e}") from None
    model.eval()
    return model
