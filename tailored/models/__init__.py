"""Base models: names resolved to local files, loading, and the chat template we use everywhere."""

from tailored.models.bases import DEFAULT_BASE, NAMED_BASES, ResolvedBase, resolve_base
from tailored.models.load import context_length, load_causal_lm, load_tokenizer, materialise, parameter_count

__all__ = ["DEFAULT_BASE", "NAMED_BASES", "ResolvedBase", "resolve_base", "load_causal_lm", "load_tokenizer", "context_length", "parameter_count", "materialise"]
