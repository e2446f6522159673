"""Continuous batching: rows join and leave a running batch at any step, with any adapter, and each gets its answer alone."""

from __future__ import annotations

import contextlib

import torch

from tailored.models.batch import Batcher, Row
from tests.test_decode import PROMPTS, _model


def _prompts(tok) -> list[list[int]]:
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS]
    return [tok(t, add_special_tokens=False)["input_ids"] for t in texts]


def _as(model, adapter: str | None):
    """The model's state for a row: an adapter set active, or adapters off (None)."""
    if adapter is None:
        return model.disable_adapter()
    model.set_adapter(adapter)
    return contextlib.nullcontext()


def _alone(model, prompt, n, adapter, stop=frozenset(), sampling=None) -> list[int]:
    batcher = Batcher(model, 1)
    row = Row(prompt, n, stop, sampling=sampling)
    with _as(model, adapter):
        joined = batcher.add(row)
    while joined and batcher:
        batcher.step()
    return row.tokens


def test_rows_that_join_mid_batch_with_other_adapters_get_their_answers_alone():
    model, tok = _model(2, adapters=3)
    prompts = _prompts(tok)
    # (prompt, new tokens, adapter, step at which it arrives): three adapters and the bare base in one batch
    plan = [(0, 14, "first", 0), (1, 6, "other1", 0), (2, 20, None, 3), (3, 9, "other2", 5), (1, 7, "first", 8)]
    alone = [_alone(model, prompts[p], n, a) for p, n, a, _ in plan]
    assert len({tuple(r[:6]) for r in alone[:4]}) == 4  # the adapters really answer differently
    batcher = Batcher(model, 4)
    rows = [Row(prompts[p], n, frozenset(), tag=k) for k, (p, n, _, _) in enumerate(plan)]
    finished, sizes, pending = {}, [], list(range(len(plan)))
    for t in range(100):
        while pending and plan[pending[0]][3] <= t and not batcher.full():
            k = pending.pop(0)
            with _as(model, plan[k][2]):
                assert batcher.add(rows[k])
        sizes.append(len(batcher))
        for row in batcher.step():
            finished[row.tag] = t
        if not pending and not batcher:
            break
    assert [r.tokens for r in rows] == alone
    assert max(sizes) == 4 and len(set(map(len, alone))) > 1  # rows ran side by side and left at their own steps
    assert finished[1] < finished[4] < finished[2]  # the last arrival took the slot the short row left


def test_a_row_leaves_at_its_stop_token_or_when_cancelled_and_the_others_carry_on():
    model, tok = _model(2)
    prompts = _prompts(tok)
    free = [_alone(model, p, 12, "first") for p in prompts]
    stop = frozenset({free[0][3]})
    cancel_after = 5
    rows = [Row(prompts[0], 12, stop), Row(prompts[1], 12, frozenset()),
            Row(prompts[2], 12, frozenset(), cancelled=lambda: len(rows[2].tokens) >= cancel_after)]
    batcher = Batcher(model, 3)
    model.set_adapter("first")
    for row in rows:
        batcher.add(row)
    while batcher:
        batcher.step()
    cut = free[0].index(free[0][3]) + 1  # the first time that token comes up
    assert rows[0].tokens == free[0][:cut] and rows[1].tokens == free[1] and rows[2].tokens == free[2][:cancel_after]


def test_a_seed_decides_a_sampled_rows_tokens_whatever_runs_beside_it():
    model, tok = _model(2)
    prompts = _prompts(tok)
    hot = {"temperature": 1.5, "seed": 11}
    alone = _alone(model, prompts[0], 16, "first", sampling=hot)
    assert alone != _alone(model, prompts[0], 16, "first")  # it really samples
    assert alone == _alone(model, prompts[0], 16, "first", sampling=hot)
    assert alone != _alone(model, prompts[0], 16, "first", sampling={**hot, "seed": 12})
    batcher = Batcher(model, 3)
    model.set_adapter("first")
    rows = [Row(prompts[1], 16, frozenset(), sampling={**hot, "seed": 3}), Row(prompts[0], 16, frozenset(), sampling=hot),
            Row(prompts[2], 16, frozenset())]
    for row in rows:
        batcher.add(row)
    while batcher:
        batcher.step()
    assert rows[1].tokens == alone
    greedy = _alone(model, prompts[0], 16, "first")
    assert _alone(model, prompts[0], 16, "first", sampling={"temperature": 1.5, "top_p": 1e-6, "seed": 1}) == greedy


def test_slots_grow_with_the_rows_and_an_idle_batch_holds_no_cache():
    model, tok = _model(2)
    batcher = Batcher(model, 3)
    rows = [Row(_prompts(tok)[i], 4, frozenset()) for i in range(3)]
    slots = []
    for row in rows:
        assert batcher.add(row)
        slots.append(batcher.cache.keys[0].shape[0])
    assert slots == [1, 2, 3]  # doubling, but never past the batch's rows
    while batcher:
        batcher.step()
    assert all(len(row.tokens) == 4 for row in rows) and not batcher.cache.keys
    with torch.no_grad():
        assert not batcher.add(Row(_prompts(tok)[0], 0, frozenset()))  # nothing asked for: never joins


def test_rows_join_only_while_the_cache_stays_within_its_memory_bound(monkeypatch):
    from tailored.evaluation.generate import generate_ids
    from tailored.models.decode import token_bytes

    model, tok = _model(2)
    texts = [tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False, add_generation_prompt=True)
             for p in PROMPTS * 2]
    free = generate_ids(model, tok, texts, 12, 8)
    bound = 2 * max(len(p) for p in _prompts(tok)) + 2 * 12 + 1  # tokens of room: two rows fit, never three
    seen, real = [], Batcher.step

    def spy(self):
        seen.append((len(self), self.cache.slots * self.cache.capacity))
        return real(self)

    monkeypatch.setattr(Batcher, "step", spy)
    tight = generate_ids(model, tok, texts, 12, 8, cache_bytes=bound * token_bytes(model))
    assert tight == free  # the same answers, fewer rows at a time
    assert max(n for n, _ in seen) == 2 and max(room for _, room in seen) <= bound  # memory decided, not the 8 rows
    monkeypatch.undo()
    # a row needing more than the whole bound still runs alone, and nothing joins beside it
    prompts = _prompts(tok)
    lone = Batcher(model, 8, max_cache_bytes=4 * token_bytes(model))
    long = Row(prompts[0], 12, frozenset())
    assert lone.fits([long]) and lone.add(long)
    assert not lone.fits([Row(prompts[1], 1, frozenset())])
    while lone:
        lone.step()
    assert long.tokens == _alone(model, prompts[0], 12, "first")  # the adapter active when it joined


def test_a_long_row_that_leaves_gives_its_room_back_so_more_rows_fit_the_bound():
    from tailored.models.decode import token_bytes

    model, tok = _model(2)
    prompts = _prompts(tok)
    long = Row(prompts[1] * 6, 2, frozenset())  # a long prompt with a short answer: it leaves first
    short = [Row(prompts[i], 10, frozenset()) for i in (0, 2)]
    bound = 2 * long.need  # tokens of room: two slots the long row's length, so it and one short row
    batcher = Batcher(model, 8, max_cache_bytes=bound * token_bytes(model))
    model.set_adapter("first")
    with torch.no_grad():
        assert batcher.add(long) and batcher.fits(short[:1]) and not batcher.fits(short)
        assert batcher.add_many(short[:1]) == [True]
        while long in batcher.rows:
            batcher.step()
        # its room is given back: slots as long as the short row needs, and two more short rows now fit
        assert batcher.cache.capacity == short[0].need
        assert batcher.fits([short[1], Row(prompts[3], 10, frozenset())])
        assert batcher.add_many(short[1:]) == [True]
        while batcher:
            batcher.step()
    assert [row.tokens for row in short] == [_alone(model, row.prompt, 10, "first") for row in short]
    assert long.tokens == _alone(model, long.prompt, 2, "first")


def test_prompts_that_begin_alike_share_their_first_keys_and_still_get_their_answers_alone(monkeypatch):
    import tailored.models.batch as batching

    model, tok = _model(2, adapters=2)
    shared = tok("please help reset password billing the answer is yes no ok please help reset")["input_ids"]
    assert len(shared) >= batching.MIN_SHARED
    prompts = [shared + tok(p)["input_ids"] for p in PROMPTS]
    plan = [(0, "first"), (1, "first"), (2, "other1"), (3, "first"), (2, None)]  # (prompt, adapter)
    alone = [_alone(model, prompts[p], 10, a) for p, a in plan]
    pasts = []
    real = batching.prefill

    def spy(w, cache, rows, groups, needs, past=None):
        pasts.append([0 if p is None else p[0][0].shape[1] for p in past])
        return real(w, cache, rows, groups, needs, past)

    monkeypatch.setattr(batching, "prefill", spy)
    batcher = Batcher(model, 8)
    rows = [Row(prompts[p], 10, frozenset(), adapters=() if a is None else (a,)) for p, a in plan]
    assert batcher.add_many(rows[:3]) == [True] * 3  # arrive together
    batcher.step()
    assert batcher.add_many(rows[3:]) == [True] * 2  # arrive later
    while batcher:
        batcher.step()
    assert [r.tokens for r in rows] == alone
    # together: one row per adapter went first, then the other "first" row started from its keys;
    # later: the "first" row started from the kept keys, the base's row (nothing kept) went alone
    assert pasts == [[0, 0], [len(shared)], [0], [len(shared)]]
