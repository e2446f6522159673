"""The untuned base's answers, kept per prompt so a repeat evaluation on the same base does not redo them.

Every run compares base and tuned on its held-out rows and on the general-ability questions. The
base half is the same work each time for the same base: the same weights, the same prompt tokens and
the same answer budget give the same greedy tokens. So it is done once and read back after, from a
SQLite table in the user's cache folder. A row's key holds everything its answer depends on: the
base's weights (their sha256), the prompt's token ids, the budget and stop tokens, bf16 or not, the
device kind and the versions of torch, transformers and tailored's decode path. Anything else (a
tuned model, sampling) is never cached.
"""

from __future__ import annotations

import hashlib
import json
import re
import sqlite3
from contextlib import closing
from pathlib import Path

from tailored.data.encode import stop_token_ids
from tailored.evaluation.generate import ROWS, generate_ids
from tailored.models.bases import cache_dir

DECODE_VERSION = 1  # raise when a change to the decode path may change greedy tokens, so old answers are not reused


def decode_scope(bf16: bool, device) -> list:
    """What greedy tokens depend on besides the weights, the prompt and the budget: part of every cached answer's key."""
    import torch
    import transformers

    return [bool(bf16), getattr(device, "type", str(device)), torch.__version__, transformers.__version__,
            DECODE_VERSION]


class BaseAnswers:
    """Greedy token ids of one untuned base, generated where missing and stored per prompt."""

    def __init__(self, fingerprint: str, bf16: bool, device, path: Path | None = None):
        self.path = path or cache_dir() / "base_answers.sqlite"
        self.scope = json.dumps([fingerprint, *decode_scope(bf16, device)])

    @classmethod
    def of(cls, base, bf16: bool, device) -> BaseAnswers | None:
        """The store for a resolved base; None where its weights have no content hash (a hub id, a sharded
        folder), since then the same name could stand for other weights later."""
        fingerprint = base.fingerprint()
        return cls(fingerprint, bf16, device) if re.fullmatch(r"[0-9a-f]{64}", fingerprint) else None

    def _key(self, prompt: list[int], budget: int, stop: list[int]) -> str:
        return hashlib.sha256(json.dumps([self.scope, prompt, budget, stop]).encode()).hexdigest()

    def _connect(self) -> sqlite3.Connection:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        db = sqlite3.connect(self.path, timeout=30)
        db.execute("CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, ids TEXT NOT NULL)")
        return db

    def generate_ids(self, model, tokenizer, texts: list[str], max_new_tokens: int | list[int], batch_size: int = ROWS,
                     bf16: bool = False) -> list[list[int]]:
        """As `generate.generate_ids` for `model`, which must be the base these answers belong to."""
        budgets = max_new_tokens if isinstance(max_new_tokens, list) else [max_new_tokens] * len(texts)
        stop = sorted(stop_token_ids(tokenizer, model))
        keys = [self._key(tokenizer(t, add_special_tokens=False)["input_ids"], b, stop) for t, b in zip(texts, budgets)]
        with closing(self._connect()) as db:
            found = {}
            for k in range(0, len(keys), 500):  # SQLite caps the number of parameters in one query
                chunk = keys[k : k + 500]
                found.update(db.execute(f"SELECT key, ids FROM answers WHERE key IN ({','.join('?' * len(chunk))})",
                                        chunk).fetchall())
            missing = [i for i, key in enumerate(keys) if key not in found]
            if missing:
                made = generate_ids(model, tokenizer, [texts[i] for i in missing], [budgets[i] for i in missing],
                                    batch_size, bf16)
                with db:  # one transaction: all of them or none
                    db.executemany("INSERT OR REPLACE INTO answers VALUES (?, ?)",
                                   [(keys[i], json.dumps(ids)) for i, ids in zip(missing, made)])
                found.update((keys[i], json.dumps(ids)) for i, ids in zip(missing, made))
        return [json.loads(found[key]) for key in keys]
