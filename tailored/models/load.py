"""Load a resolved base as a PyTorch model and tokenizer, offline, with one chat template for all uses."""

from __future__ import annotations

import contextlib
import io
import math
import os
import warnings
from dataclasses import replace
from pathlib import Path

import torch

from tailored.atomic import atomic_dir
from tailored.errors import TailoredError
from tailored.models.bases import ResolvedBase, cache_dir

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


@contextlib.contextmanager
def quiet_transformers():
    """transformers' info logs, progress bars and deprecation chatter off for this block, then as they were.

    Library chatter (peft asking transformers about gradient checkpointing, a missing optional config
    file) is not something our users can act on.
    """
    from transformers.utils import logging

    verbosity, bars = logging.get_verbosity(), logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=FutureWarning, module=r"(transformers|peft)\.")
            warnings.filterwarnings("ignore", message=r".*Could not find a config file.*")
            yield
    finally:
        logging.set_verbosity(verbosity)
        if bars:
            logging.enable_progress_bar()


def materialise(base: ResolvedBase) -> ResolvedBase:
    """A GGUF base as a cached HF folder (safetensors + tokenizer), converted once per file hash.

    Dequantising the GGUF takes ~15 s per load on 2 cores; reading the cached safetensors takes ~1 s.
    Other bases are returned unchanged.
    """
    if not base.gguf_file:
        return base
    from transformers import AutoModelForCausalLM, AutoTokenizer

    # "-t2": folders written before the tokenizer fix below held the tokenizer without it
    folder = cache_dir() / "dequantised" / f"{Path(base.gguf_file).stem}-{base.fingerprint()[:16]}-t2"
    if not (folder / "COMPLETE").exists():
        # the GGUF converter's own progress bar goes to stderr
        with quiet_transformers(), contextlib.redirect_stderr(io.StringIO()):
            try:
                tok = AutoTokenizer.from_pretrained(base.path, gguf_file=base.gguf_file, local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(base.path, gguf_file=base.gguf_file,
                                                             dtype=torch.float32, local_files_only=True)
            except (OSError, ValueError) as e:
                raise TailoredError(f"could not read {base.gguf_file}: {e}") from None
        _split_like_gguf(tok, Path(base.path) / base.gguf_file)
        from safetensors.torch import save_model

        with atomic_dir(folder) as tmp:
            # save_pretrained refuses models loaded from GGUF; the weights are plain fp32 tensors now,
            # so we write them directly (save_model drops the tied LM-head duplicate).
            if hasattr(model.config, "quantization_config"):
                del model.config.quantization_config  # the weights are no longer quantised
            model.config.save_pretrained(tmp)
            model.generation_config.save_pretrained(tmp)
            save_model(model, str(tmp / "model.safetensors"))
            tok.save_pretrained(tmp)
            (tmp / "COMPLETE").write_text("ok\n")
    return replace(base, path=str(folder), gguf_file=None)


def _split_like_gguf(tok, gguf_file: Path) -> None:
    """Give the tokenizer the pre-tokenizer the GGUF names, where transformers' converter leaves it out.

    SmolLM2's GGUF names the "smollm" pre-tokenizer, which splits off every digit before the byte-level
    split, as SmolLM2's own tokenizer does. transformers' converter keeps only the byte-level split, so
    whitespace before a digit tokenized differently from pretraining and from llama.cpp and Ollama
    (374 of 4,409 rows of our examples and ../shared/realdata; none with this split).
    """
    import gguf
    from tokenizers import pre_tokenizers

    field = gguf.GGUFReader(str(gguf_file)).fields.get("tokenizer.ggml.pre")
    if field is not None and field.contents() == "smollm":
        tok.backend_tokenizer.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True),
        ])


def _local_only(base: ResolvedBase) -> bool:
    # A hub id may download when the user has a network; anything on disk must never touch it.
    return Path(base.path).exists() or os.environ.get("HF_HUB_OFFLINE") == "1"


def load_tokenizer(base: ResolvedBase, path: str | Path | None = None):
    """The base's fast tokenizer, with a pad token and a chat template guaranteed."""
    from transformers import AutoTokenizer

    try:
        if path is not None:  # a tokenizer saved with a run
            with quiet_transformers():
                tok = AutoTokenizer.from_pretrained(str(path), local_files_only=True)
        else:
            base_dir = materialise(base)
            with quiet_transformers():
                tok = AutoTokenizer.from_pretrained(base_dir.path, local_files_only=_local_only(base_dir))
    except OSError as e:
        raise TailoredError(f"could not load the tokenizer of '{base.name}': {e}") from None
    if not getattr(tok, "is_fast", False):
        raise TailoredError(f"base '{base.name}' has no fast tokenizer — tailored needs one for loss masking")
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    if path is None and (not base.instruct or not tok.chat_template):
        tok.chat_template = PLAIN_TEMPLATE
    return tok


def context_length(base: ResolvedBase) -> int:
    """The base's context window, read from its config without loading weights."""
    from transformers import AutoConfig

    folder = materialise(base)
    config = AutoConfig.from_pretrained(folder.path, local_files_only=_local_only(folder))
    return int(getattr(config, "max_position_embeddings", 2048) or 2048)


def parameter_count(base: ResolvedBase) -> int | None:
    """Parameters in the base's safetensors files, from their headers alone (no weights read)."""
    from safetensors import safe_open

    folder = Path(materialise(base).path)
    files = sorted(folder.glob("*.safetensors")) if folder.is_dir() else []
    total = 0
    for f in files:
        with safe_open(str(f), framework="pt") as st:
            for name in st.keys():
                total += math.prod(st.get_slice(name).get_shape())
    return total or None


def load_causal_lm(base: ResolvedBase, dtype: torch.dtype = torch.float32):
    """The base as a normal (dequantised) PyTorch causal LM in eval mode."""
    from transformers import AutoModelForCausalLM

    base = materialise(base)
    try:
        with quiet_transformers():
            model = AutoModelForCausalLM.from_pretrained(
                base.path, dtype=dtype, local_files_only=_local_only(base), trust_remote_code=False,
            )
    except OSError as e:
        raise TailoredError(f"could not load base '{base.name}': {e}") from None
    model.eval()
    return model
