"""Continuous batching: requests join and leave a running batch at every decode step.

A padded batch runs until its longest answer ends, with finished rows still computing and new requests
waiting for the whole batch. Here each request is prefilled alone when it arrives (its prompt through
the model's own forward, so its first token is the one it would get alone), then joins the running
batch; every `step` gives each row its next token, and a row leaves as soon as it stops, runs out of
tokens or is cancelled, freeing its slot for the next request. Rows may use different LoRA adapters of
the same base: each row keeps the adapters the model applied when it joined.

The server, evaluation, `predict` and `chat` all generate through this one path for the models
`decode.supported` accepts (evaluation/generate.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tailored.models.decode import Cache, Weights, adapters_in_use, inner_model, step


@dataclass
class Row:
    """One request in the batch: its prompt, its limits, and the tokens it has so far."""

    prompt: list[int]
    max_new_tokens: int
    stop: frozenset[int]
    on_token: Callable[[int], None] | None = None  # streaming: called with each new token as it comes
    cancelled: Callable[[], bool] | None = None  # returning True ends the row after its current token
    sampling: dict | None = None  # {"temperature", "top_p", "seed"}; None is greedy
    tag: object = None  # the caller's own handle (its request, its index)
    tokens: list[int] = field(default_factory=list)
    adapters: tuple[str, ...] = ()
    generator: torch.Generator | None = None

    def _take(self, token: int) -> bool:
        """Record a token; True when the row is finished."""
        self.tokens.append(token)
        if self.on_token is not None:
            self.on_token(token)
        return (token in self.stop or len(self.tokens) >= self.max_new_tokens
                or (self.cancelled is not None and self.cancelled()))


def _choose(logits: torch.Tensor, row: Row) -> int:
    """The row's next token: the most likely one, or a draw from its own seeded generator."""
    if not row.sampling:
        return int(logits.argmax(-1))
    probs = torch.softmax(logits.float() / row.sampling["temperature"], dim=-1)
    top_p = row.sampling.get("top_p", 1.0)
    if top_p < 1.0:  # keep the most likely tokens whose mass reaches top_p (at least one)
        ranked, order = probs.sort(descending=True)
        keep = (ranked.cumsum(-1) - ranked) < top_p
        keep[0] = True
        probs = torch.zeros_like(probs).scatter_(0, order[keep], ranked[keep])
    return int(torch.multinomial(probs, 1, generator=row.generator))


class Batcher:
    """A running batch over one model that rows join (`add`) and leave (`step`) at any time.

    Not thread-safe: one thread owns it, and the model's adapter state must not change while `add`
    prefills (the caller sets the adapter, or turns adapters off, just before).
    """

    def __init__(self, model, max_rows: int):
        self.model, self.max_rows = model, max_rows
        self.rows: list[Row] = []
        self.cache = Cache(max_rows)
        self.weights: Weights | None = None

    def __len__(self) -> int:
        return len(self.rows)

    def full(self) -> bool:
        return len(self.rows) >= self.max_rows

    def adapters(self) -> set[str]:
        """Adapters some running row uses: they must stay loaded until those rows finish."""
        return {name for row in self.rows for name in row.adapters}

    @torch.no_grad()
    def add(self, row: Row) -> bool:
        """Prefill `row` alone and take its first token; True if it joined the batch, False if it already finished."""
        from transformers import DynamicCache

        if self.full():
            raise RuntimeError("the batch is full")
        if row.max_new_tokens <= 0:
            return False
        device = self.model.get_input_embeddings().weight.device
        if row.sampling:  # a row's own generator: its seed decides its tokens, whatever else runs beside it
            row.generator = torch.Generator(device=device)
            if row.sampling.get("seed") is not None:
                row.generator.manual_seed(int(row.sampling["seed"]))
            else:
                row.generator.seed()
        row.adapters = adapters_in_use(self.model)
        ids = torch.tensor([row.prompt], device=device)
        past = DynamicCache(config=inner_model(self.model).config)
        logits = self.model(input_ids=ids, cache=past, use_cache=True, logits_to_keep=1).logits[0, -1].float()
        if row._take(_choose(logits, row)):
            return False
        self.weights = Weights(self.model)  # after any adapter load, so every row's adapters are in it
        self.cache.add(past, len(row.prompt) + row.max_new_tokens)
        self.rows.append(row)
        return True

    @torch.no_grad()
    def step(self) -> list[Row]:
        """One new token for every row; the rows that finished leave the batch and are returned."""
        if not self.rows:
            return []
        tokens = torch.tensor([row.tokens[-1] for row in self.rows], device=self.weights.embed.device)
        logits = step(self.weights, self.cache, tokens, self._groups()).float()
        finished = []
        for i, row in enumerate(self.rows):
            if row._take(_choose(logits[i], row)):
                finished.append(i)
        done = [self.rows[i] for i in finished]
        for i in reversed(finished):  # from the back, so each move keeps the earlier indices valid
            self.cache.remove(i)
            self.rows[i] = self.rows[-1]
            self.rows.pop()
        if not self.rows:
            self.cache = Cache(self.max_rows)  # an idle batch holds no memory
        return done

    def _groups(self) -> list:
        """Rows by the adapters they use, as `decode.step` takes them (one group: no indexing)."""
        by: dict[tuple[str, ...], list[int]] = {}
        for i, row in enumerate(self.rows):
            by.setdefault(row.adapters, []).append(i)
        if len(by) == 1:
            return [(next(iter(by)), None)]
        device = self.weights.embed.device
        return [(names, torch.tensor(rows, device=device)) for names, rows in by.items() if names]

