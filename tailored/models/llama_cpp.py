"""llama.cpp, through llama-cpp-python when it is installed, as a reader of tailored's GGUF exports.

Users run an exported GGUF in llama.cpp or Ollama, not in transformers, so the export's parity check
also asks llama.cpp itself for its answers when the package is there. It is optional: the default
install never needs it (`make install` adds it for the tests).
"""

from __future__ import annotations

import os
from pathlib import Path


def installed() -> bool:
    try:
        import llama_cpp  # noqa: F401
    except ImportError:
        return False
    return True


class LlamaCpp:
    """One GGUF file loaded in llama.cpp on the CPU, for greedy answers and next-token logits."""

    def __init__(self, gguf: Path, context: int = 4096, threads: int | None = None):
        from llama_cpp import Llama

        threads = threads or max(1, len(os.sched_getaffinity(0)))
        self.llm = Llama(model_path=str(gguf), n_ctx=context, n_threads=threads, verbose=False)

    def tokenize(self, text: str) -> list[int]:
        """The prompt as llama.cpp (and Ollama) tokenize it: special tokens parsed, no BOS added."""
        return self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True)

    def greedy(self, ids: list[int], budget: int, stop: set[int]) -> list[int]:
        """Greedy new tokens after `ids`, at most `budget`, the stop token kept (as tailored's answers keep it)."""
        out: list[int] = []
        for token in self.llm.generate(ids, top_k=1, temp=0.0, reset=True):
            out.append(token)
            if token in stop or len(out) >= budget:
                break
        return out

    def next_logits(self, ids: list[int]):
        """llama.cpp's logits for the token after `ids` (a numpy vector over the vocabulary)."""
        import llama_cpp
        import numpy as np

        self.llm.reset()
        self.llm.eval(ids)
        # Read from the context itself: llama-cpp-python stopped copying logits into `Llama.scores` unless the
        # model is loaded with logits_all (0.3.x), and that row read back all zeros, so every parting looked like a tie.
        row = llama_cpp.llama_get_logits_ith(self.llm.ctx, -1)
        return np.ctypeslib.as_array(row, shape=(self.llm.n_vocab(),)).copy()
