"""Continuous batching: requests join and leave a running batch at every decode step.

A padded batch runs until its longest answer ends, with finished rows still computing and new requests
waiting for the whole batch. Here requests are prefilled when they arrive (the prompts that arrive
together packed into one pass, models/prefill.py), then join the running batch; every `step` gives each
row its next token, and a row leaves as soon as it stops, runs out of
tokens or is cancelled, freeing its slot for the next request. Rows may use different LoRA adapters of
the same base: each row keeps the adapters the model applied when it joined.

The server, evaluation, `predict` and `chat` all generate through this one path for the models
`decode.supported` accepts (evaluation/generate.py).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from tailored.models.decode import Cache, Weights, adapters_in_use, step, token_bytes
from tailored.models.prefill import common_length, prefill

# a shared prefix shorter than this is run again: the second pass would cost more than it saves
MIN_SHARED = 16
# keys and values of a running batch: 64 rows of SmolLM2 (46 KB a token in fp32) at its full 8k context
# would take 24 GB, more than a 24 GB machine has; 4 GB holds 64 rows of 1,400 tokens
CACHE_BYTES = 4 << 30


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
    adapters: tuple[str, ...] | None = None  # None: those the model applies when the row joins
    generator: torch.Generator | None = None

    def _take(self, token: int) -> bool:
        """Record a token; True when the row is finished."""
        self.tokens.append(token)
        if self.on_token is not None:
            self.on_token(token)
        return (token in self.stop or len(self.tokens) >= self.max_new_tokens
                or (self.cancelled is not None and self.cancelled()))

    @property
    def need(self) -> int:
        """Tokens of room the row may fill: its prompt and every token it may add."""
        return len(self.prompt) + self.max_new_tokens


def _same(old: tuple, new: tuple) -> bool:
    return len(old) == len(new) and all(a is b for a, b in zip(old, new))


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

    def __init__(self, model, max_rows: int, max_cache_bytes: int = CACHE_BYTES):
        self.model, self.max_rows = model, max_rows
        self.max_tokens = max(1, max_cache_bytes // token_bytes(model))  # the cache's bound, in tokens of room
        self.rows: list[Row] = []
        self.cache = Cache(max_rows, self.max_tokens)
        self.weights: Weights | None = None
        # by adapters: the tokens, keys and values of the last prompt unlike the one before, and the weights
        # they came from; a prompt that begins the same way starts from them
        self.prefixes: dict[tuple[str, ...], tuple] = {}

    def __len__(self) -> int:
        return len(self.rows)

    def full(self) -> bool:
        return len(self.rows) >= self.max_rows

    def fits(self, rows: list[Row]) -> bool:
        """Whether `rows` may join now: there are slots for them, and the cache's keys and values stay within
        `max_cache_bytes`. An idle batch always takes one row, so a long request waits but is never refused."""
        if len(self.rows) + len(rows) > self.max_rows:
            return False
        if not self.rows and len(rows) <= 1:
            return True
        return self.cache.room_after([row.need for row in rows]) <= self.max_tokens

    def adapters(self) -> set[str]:
        """Adapters some running row uses: they must stay loaded until those rows finish."""
        return {name for row in self.rows for name in row.adapters}

    def add(self, row: Row) -> bool:
        """Prefill `row` and take its first token; True if it joined the batch, False if it already finished."""
        return self.add_many([row])[0]

    @torch.no_grad()
    def add_many(self, rows: list[Row]) -> list[bool]:
        """Prefill `rows` together (as many as there are free slots) and take each one's first token.

        For each row, True if it joined the batch, False if it already finished. A row whose `adapters`
        is None gets the adapters the model applies now.
        """
        if len(self.rows) + len(rows) > self.max_rows:
            raise RuntimeError("the batch is full")
        device = self.model.get_input_embeddings().weight.device
        for row in rows:
            if row.adapters is None:
                row.adapters = adapters_in_use(self.model)
            if row.sampling:  # a row's own generator: its seed decides its tokens, whatever else runs beside it
                row.generator = torch.Generator(device=device)
                if row.sampling.get("seed") is not None:
                    row.generator.manual_seed(int(row.sampling["seed"]))
                else:
                    row.generator.seed()
        todo = [row for row in rows if row.max_new_tokens > 0]
        if todo:
            self.weights = Weights(self.model)  # after any adapter load, so every row's adapters are in it
            self.prefixes = {names: kept for names, kept in self.prefixes.items()  # only those of today's weights
                             if _same(kept[3], self.weights.tensors_of(names))}
            # with nothing kept for its adapters, one row goes first and the others start from its keys
            firsts = {}
            for row in todo:
                if row.adapters not in self.prefixes:
                    firsts.setdefault(row.adapters, row)
            rest = [row for row in todo if all(row is not first for first in firsts.values())]
            for part in (list(firsts.values()), rest):
                if part:
                    self._join(part)
        return [any(row is r for r in self.rows) for row in rows]

    def _join(self, rows: list[Row]) -> None:
        past = [self._shared(row) for row in rows]
        first = len(self.rows)
        logits = prefill(self.weights, self.cache, [row.prompt for row in rows], self._groups(rows),
                         [row.need for row in rows], past)
        self.rows += rows  # in the order prefill gave them the next slots
        for i, (row, p) in enumerate(zip(rows, past)):
            if p is None:  # a prompt unlike the one kept: its keys are kept instead
                n = len(row.prompt)
                self.prefixes[row.adapters] = (row.prompt, [k[first + i, :, :n].clone() for k in self.cache.keys],
                                               [v[first + i, :, :n].clone() for v in self.cache.values],
                                               self.weights.tensors_of(row.adapters))
        for i, row in reversed(list(enumerate(rows))):  # from the back, so each removal keeps slots valid
            if row._take(_choose(logits[i].float(), row)):
                self._leave(first + i)

    def _shared(self, row: Row):
        """Keys and values of the kept prompt's first tokens, when `row` starts with at least MIN_SHARED of them."""
        kept = self.prefixes.get(row.adapters)
        if kept is None:
            return None
        n = min(common_length(kept[0], row.prompt), len(row.prompt) - 1)  # the last token runs: its logits are needed
        if n < MIN_SHARED:
            return None
        return [k[:, :n] for k in kept[1]], [v[:, :n] for v in kept[2]]

    @torch.no_grad()
    def step(self) -> list[Row]:
        """One new token for every row; the rows that finished leave the batch and are returned."""
        if not self.rows:
            return []
        tokens = torch.tensor([row.tokens[-1] for row in self.rows], device=self.weights.embed.device)
        logits = step(self.weights, self.cache, tokens, self._groups(self.rows)).float()
        finished = []
        for i, row in enumerate(self.rows):
            if row._take(_choose(logits[i], row)):
                finished.append(i)
        done = [self.rows[i] for i in finished]
        for i in reversed(finished):  # from the back, so each move keeps the earlier indices valid
            self._leave(i)
        return done

    def _leave(self, i: int) -> None:
        """Row i leaves: the last row takes its slot."""
        self.cache.remove(i)
        self.rows[i] = self.rows[-1]
        self.rows.pop()
        if not self.rows:
            self.cache = Cache(self.max_rows, self.max_tokens)  # an idle batch holds no memory
        else:
            self.cache.fit_to([row.need for row in self.rows])

    def _groups(self, rows: list[Row]) -> list:
        """`rows` by the adapters they use, as `decode.step` and `prefill` take them (one group: no indexing)."""
        by: dict[tuple[str, ...], list[int]] = {}
        for i, row in enumerate(rows):
            by.setdefault(row.adapters, []).append(i)
        if len(by) == 1:
            return [(next(iter(by)), None)]
        device = self.weights.embed.device
        return [(names, torch.tensor(at, device=device)) for names, at in by.items() if names]
