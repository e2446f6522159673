"""The general-ability check and the guard's replay data, on hand-made answers and a tiny model built in code."""

import re

import pytest
from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

from tailored.data.encode import encode_many
from tailored.data.formats import TASK_PROMPT
from tailored.evaluation import general
from tailored.evaluation.general import Question
from tests.conftest import SwitchableModel


def test_the_check_and_the_replay_sets_are_big_enough_and_kept_apart():
    checks, replay = general.questions(), general.replay_prompts()
    assert len(checks) >= 100 and len(replay) >= 100
    assert len({q.prompt for q in checks}) == len(checks) and len(set(replay)) == len(replay)
    assert not {q.prompt.lower() for q in checks} & {p.lower() for p in replay}
    # short questions replay too, but none is a check question reworded: none shares five words in a row with
    # one, names a checked answer ("Paris", "honey"; bare numbers and yes/true aside), or takes on a topic the
    # check covers item by item (capitals, planets, opposites, plurals, past tenses, translations, its sums), or
    # holds all of one's content words (a synonym still gets past: "Earth's biggest sea")
    def runs(text: str) -> set:
        words = re.findall(r"[a-z0-9']+", text.lower())
        return {tuple(words[i:i + 5]) for i in range(len(words) - 4)}
    checked_runs = set().union(*(runs(q.prompt) for q in checks))
    generic = {"yes", "no", "true", "false", "one", "two", "three", "four", "six", "seven", "eight", "twelve", "zero"}
    named = {a for q in checks for a in q.accept
             if re.search(r"[a-z]{3}", a, re.IGNORECASE) and a.lower() not in generic}
    covered = r"\b(capital|planet|plus|minus|divided|opposite|plural|translate|past tense)\b|\btimes \d"

    def content(text: str) -> frozenset:
        return frozenset(re.sub(r"'s$", "", w) for w in re.findall(r"[a-z0-9']+", text.lower())) - ENGLISH_STOP_WORDS
    checked_words = [content(q.prompt) for q in checks]

    def too_close(prompt: str, reworded: bool = True) -> bool:
        return bool(runs(prompt) & checked_runs or re.search(covered, prompt, re.IGNORECASE)
                    or any(Question(prompt, (a,), "fact").correct(prompt) for a in named)
                    or reworded and any(words <= content(prompt) for words in checked_words if words))
    assert [p for p in replay if too_close(p)] == []
    assert all(too_close(p) for p in ("Which planet has rings?", "Why do bees make so much honey?",
                                      "Who wrote the play Romeo and Juliet, and when?", "What is 4 times 4?"))
    rewordings = ("Tell me which ocean on Earth is the largest.", "In a year, how many months are there?")
    assert all(too_close(p) and not too_close(p, reworded=False) for p in rewordings)  # only the words rule sees them
    assert sum(p.endswith("?") and len(p.split()) <= 9 for p in replay) >= 50  # short questions, not only essays
    assert {q.kind for q in checks} == {"fact", "arithmetic", "instruction"}


def test_an_answer_is_correct_when_it_holds_an_accepted_answer_as_a_whole_word():
    q = Question("What is 6 times 7?", ("42",), "arithmetic")
    assert q.correct("6 times 7 is 42.") and not q.correct("It is 420.") and not q.correct("142")
    assert Question("Capital of Italy?", ("Rome",), "fact").correct("The capital is rome")
    shout = Question("Write 'hello' in capital letters.", ("HELLO",), "instruction", case=True)
    assert shout.correct("HELLO") and not shout.correct("hello")
    # a number inside a larger or signed one is a different number; at a sentence's end it is itself
    freeze = Question("Water freezes at how many degrees Celsius?", ("0", "zero"), "fact")
    assert not freeze.correct("The freezing point of water is -18.0°C.") and freeze.correct("It freezes at 0°C.")
    assert freeze.correct("At 0.") and freeze.correct("Zero degrees") and not freeze.correct("10.0 degrees")
    assert not Question("100 + 1000?", ("1100",), "arithmetic").correct("It is 11,100")
    assert not q.correct("It is -42") and not q.correct("about 42.5") and q.correct("42, of course")
    assert Question("Sort 3, 1, 2.", ("1, 2, 3",), "instruction").correct("Sorted: 1, 2, 3.")


def test_retention_counts_only_what_the_base_got_right():
    items = [Question(f"q{i}", (a,), "fact") for i, a in enumerate(["Paris", "12", "blue", "Nile"])]
    base = ["Paris.", "It is 12", "red", "The Nile"]  # 3 of 4 correct
    tuned = ["Paris!", "13", "blue", "Amazon"]  # keeps Paris only; "blue" was not the base's to keep
    out = general.retention(base, tuned, items)
    assert (out["base_correct"], out["tuned_correct"], out["kept"]) == (3, 2, 1)
    assert out["kept_share"] == pytest.approx(100 / 3)
    assert out["kept_ci"] == pytest.approx((6.149, 79.234), abs=1e-3)  # Wilson, 1 of 3
    assert [e["prompt"] for e in out["examples"]] == ["q1", "q3"]


def test_the_kept_interval_is_wilson_s_and_not_closed_at_all_kept():
    # by hand: centre (p + z²/2n) / (1 + z²/n), half-width z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n), z = 1.96
    assert general.share_interval(61, 61) == pytest.approx((94.076, 100.0), abs=1e-3)
    assert general.share_interval(49, 61) == pytest.approx((68.690, 88.372), abs=1e-3)
    assert general.share_interval(0, 5) == pytest.approx((0.0, 43.448), abs=1e-3)


def test_the_noise_floor_is_the_base_s_own_retention_under_a_neutral_system_prompt():
    items = [Question(f"q{i}", (a,), "fact") for i, a in enumerate(["Paris", "12", "blue", "Nile", "7"])]
    plain = ["Paris.", "It is 12", "red", "The Nile", "7"]  # 4 right
    neutral = ["Paris", "It is 13", "blue", "The Nile", "seven?"]  # keeps Paris and Nile; blue is new, not kept
    floor = general.noise_floor(plain, neutral, items)
    assert (floor["kept"], floor["tuned_correct"], floor["system"]) == (2, 3, general.NEUTRAL_SYSTEM)
    assert floor["kept_share"] == pytest.approx(50.0)
    assert floor["kept_ci"][0] <= 50.0 <= floor["kept_ci"][1]


def test_the_neutral_prompt_is_asked_as_a_system_turn(monkeypatch):
    seen = []
    monkeypatch.setattr(general, "generate", lambda model, tok, prompts, *a, **k: seen.append(prompts) or
                        ["" for _ in prompts])
    general.answer_questions(None, None, False)
    general.answer_questions(None, None, False, system=general.NEUTRAL_SYSTEM)
    plain, neutral = seen
    assert plain[0] == [{"role": "user", "content": general.questions()[0].prompt}]
    assert neutral[0] == [{"role": "system", "content": general.NEUTRAL_SYSTEM}, plain[0][0]]
    assert len(plain) == len(neutral) == len(general.questions())


def test_replay_rows_are_the_base_s_finished_answers_cached_and_seeded(tiny_base, monkeypatch, tmp_path):
    """Finished answers become user/assistant rows; unfinished ones are left out, never cut; the cache is reused."""
    monkeypatch.setenv("TAILORED_CACHE", str(tmp_path / "cache"))  # an empty cache: other tests fill the shared one
    from tailored.data.encode import stop_token_ids
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base

    prompts = [f"Tell me about thing {i}." for i in range(12)]
    monkeypatch.setattr(general, "replay_prompts", lambda: prompts)
    base = resolve_base(str(tiny_base))
    tok, model = load_tokenizer(base), load_causal_lm(base)
    eos = min(stop_token_ids(tok, model))
    seen = []

    def fake_generate_ids(model_, tok_, texts, budget, batch, bf16):  # what the base "answers": odd ones never stop
        seen.extend(texts)
        return [tok(f"answer {i}", add_special_tokens=False)["input_ids"] + ([eos] if i % 2 == 0 else [])
                for i in range(len(texts))]

    monkeypatch.setattr(general, "generate_ids", fake_generate_ids)
    rows = general.replay_examples(model, tok, base.fingerprint(), 4, seed=1)
    assert len(seen) == 12 and "thing 3" in seen[3]  # every prompt rendered through the chat template once
    assert len(rows) == 4
    for row in rows:
        i = int(row.messages[0]["content"].split()[-1].rstrip("."))
        assert i % 2 == 0 and row.messages == [{"role": "user", "content": prompts[i]},
                                               {"role": "assistant", "content": f"answer {i}"}]
    assert len(general.replay_examples(model, tok, base.fingerprint(), 100, seed=1)) == 6  # all finished ones
    cached = list((general.cache_dir() / "replay").glob("*.jsonl"))
    assert len(cached) == 1 and len(seen) == 12  # the second call read the cache
    again = general.replay_examples(model, tok, base.fingerprint(), 4, seed=1)
    assert [r.messages for r in again] == [r.messages for r in rows]  # seeded order
    assert [r.messages for r in general.replay_examples(model, tok, base.fingerprint(), 4, seed=2)] != \
        [r.messages for r in rows]
    assert all(e.trainable for e in encode_many(tok, [r.messages for r in again]))
    general.replay_examples(model, tok, base.fingerprint(), 4, seed=1, bf16=True)  # greedy tokens differ in bf16
    assert len(seen) == 24 and len(list((general.cache_dir() / "replay").glob("*.jsonl"))) == 2


def test_train_mixes_the_guard_in_without_changing_the_task_s_schedule(tiny_base, tmp_path, monkeypatch):
    """The guard's rows are 20% of training, half general replay and half the task's inputs without the task
    prompt; epochs and batch size still come from the task's rows alone."""
    import json

    import tailored
    from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
    from tailored.data.formats import Example
    from tests.conftest import write_jsonl, yes_rows

    asked = []

    def fake_replay(model, tok, fingerprint, n, seed, bf16=False, system=None):
        asked.append(n)
        assert system is None  # tailored's TASK_PROMPT is the switch: general rows go without it
        return [Example([{"role": "user", "content": f"general request {i}"},
                         {"role": "assistant", "content": f"a general answer {i}"}], "(general replay)", i + 1)
                for i in range(n)]

    monkeypatch.setattr(general, "replay_examples", fake_replay)
    plain_asked = []

    def fake_replies(model, tok, fingerprint, conversations, bf16=False):
        plain_asked.append(conversations)
        return [f"the base's reply to {c[-1]['content']}" for c in conversations]

    monkeypatch.setattr(general, "base_replies", fake_replies)
    data = write_jsonl(tmp_path / "d.jsonl", yes_rows(100))
    runs = []
    for guard in (0.2, 0.0):
        run = tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=2), DataConfig(guard=guard),
                             EvalConfig(), RunConfig(runs_dir=str(tmp_path / "runs"), evaluate=False), quiet=True)
        profile = json.loads((run.path / "check.json").read_text())["profile"]
        config = json.loads((run.path / "config.json").read_text())
        runs.append((profile, config, json.loads((run.path / "run.json").read_text())))
    (on, on_cfg, on_run), (off, off_cfg, off_run) = runs
    wanted = round(0.2 / 0.8 * 90)  # 90 task rows after the validation split; off: never asked
    assert len(plain_asked) == 1 and len(plain_asked[0]) == wanted // 2 and asked == [wanted - wanted // 2]
    assert all(len(c) == 1 and c[0]["role"] == "user" and c[0]["content"].startswith("question number")
               for c in plain_asked[0])  # the task's own inputs, without the system prompt the task rows got
    assert on["guard_rows"] == wanted and off["guard_rows"] == 0
    assert on["train_rows"] == off["train_rows"] == 90  # the task's rows; the guard's are counted apart
    assert on_cfg["train"]["epochs"] == off_cfg["train"]["epochs"]
    assert on_cfg["train"]["batch_size"] == off_cfg["train"]["batch_size"]
    # the rows had no system prompt: with the guard on they train, and the run answers, with tailored's
    assert on_run["task"]["system_prompt"] == TASK_PROMPT and off_run["task"]["system_prompt"] is None


def _rows(tmp_path, name, rows):
    from tailored.data import load_dataset
    from tests.conftest import write_jsonl

    return load_dataset(write_jsonl(tmp_path / name, rows))


def test_the_guard_replays_general_requests_with_the_user_s_own_system_prompt(tiny_base, tmp_path, monkeypatch):
    """predict and the server put a system prompt the user's rows share on every request, so the general rows
    carry it; the task's inputs are still replayed without it, and tailored's TASK_PROMPT never goes on them."""
    from tailored import guard
    from tailored.config import DataConfig, TrainConfig
    from tailored.data.prepare import Prepared, give_task_prompt
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base

    monkeypatch.setattr(general, "replay_prompts", lambda: [f"general request {i}" for i in range(20)])
    monkeypatch.setattr(general, "base_replies", lambda m, t, f, conversations, bf16=False:
                        [f"reply to {c[-1]['content']}" for c in conversations])
    seen, encode = [], guard.encode_many
    monkeypatch.setattr(guard, "encode_many", lambda tok, rows, *a: seen.append(rows) or encode(tok, rows, *a))
    base = resolve_base(str(tiny_base))
    tok, model = load_tokenizer(base), load_causal_lm(base)

    def replayed(name, rows) -> tuple[list, list]:
        train = _rows(tmp_path, name, rows)
        prep = Prepared(train, train.examples, [], None, train_encoded=[None] * 20)  # 20 task rows: 5 replayed
        give_task_prompt(prep)
        seen.clear()
        guard.add_replay(prep, model, tok, base, DataConfig(guard=0.2), TrainConfig(base=str(tiny_base)))
        (rows_in,) = seen
        is_general = lambda m: m[-2]["content"].startswith("general request")
        return [m for m in rows_in if is_general(m)], [m for m in rows_in if not is_general(m)]

    own = [{"messages": [{"role": "system", "content": "Be Northwind's agent."}, {"role": "user", "content": f"q{i}"},
                         {"role": "assistant", "content": "a"}]} for i in range(20)]
    general_rows, plain_rows = replayed("own.jsonl", own)
    assert (len(general_rows), len(plain_rows)) == (3, 2)
    assert all(m[0] == {"role": "system", "content": "Be Northwind's agent."} and len(m) == 3 for m in general_rows)
    assert all(m[0]["role"] == "user" and m[0]["content"].startswith("q") for m in plain_rows)

    general_rows, plain_rows = replayed("bare.jsonl", [{"prompt": f"q{i}", "completion": "a"} for i in range(20)])
    assert (len(general_rows), len(plain_rows)) == (3, 2)  # the task's inputs without the TASK_PROMPT they got
    assert all(m[0]["role"] == "user" for m in general_rows + plain_rows)  # TASK_PROMPT on no replayed row


def test_rows_without_any_system_prompt_get_tailored_s_in_every_split(tmp_path):
    from tailored.data.prepare import Prepared, give_task_prompt

    bare = [{"prompt": f"q{i}", "completion": "a"} for i in range(4)]
    train, heldout = _rows(tmp_path, "t.jsonl", bare), _rows(tmp_path, "h.jsonl", bare[:2])
    valid = _rows(tmp_path, "v.jsonl", [{"messages": [{"role": "system", "content": "mine"},
                                                      {"role": "user", "content": "q"},
                                                      {"role": "assistant", "content": "a"}]}])
    prep = Prepared(train, train.examples[:3], valid.examples, heldout)
    give_task_prompt(prep)
    assert prep.task_prompt == TASK_PROMPT
    for ex in train.examples + heldout.examples:
        assert ex.messages[0] == {"role": "system", "content": TASK_PROMPT} and ex.messages[1]["content"].startswith("q")
    assert valid.examples[0].messages[0]["content"] == "mine"  # a row's own system prompt is kept


def test_rows_with_a_system_prompt_labels_or_preferences_are_left_as_written(tmp_path):
    from tailored.data.prepare import Prepared, give_task_prompt

    some = [{"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}] * 3 + \
        [{"messages": [{"role": "system", "content": "mine"}, {"role": "user", "content": "q"},
                       {"role": "assistant", "content": "a"}]}]
    labels = [{"text": f"t{i}", "label": "x" if i % 2 else "y"} for i in range(4)]
    prefs = [{"prompt": "q", "chosen": "a", "rejected": "b"}] * 4
    for name, rows in (("some.jsonl", some), ("labels.jsonl", labels), ("prefs.jsonl", prefs)):
        ds = _rows(tmp_path, name, rows)
        before = [list(ex.messages) for ex in ds.examples]
        prep = Prepared(ds, ds.examples, [], None)
        give_task_prompt(prep)
        assert prep.task_prompt is None and [ex.messages for ex in ds.examples] == before, name


def test_tailored_s_prompt_is_not_an_edit_of_the_row(tmp_path):
    from tailored.data.formats import attach_task_prompt
    from tailored.runs.diff import data_diff

    rows = [{"prompt": f"q{i}", "completion": "a"} for i in range(3)]
    old, new = _rows(tmp_path, "old.jsonl", rows).examples, _rows(tmp_path, "new.jsonl", rows).examples
    assert attach_task_prompt(new) == 3
    assert data_diff(old, new)["unchanged"] == 3
    new[0].messages[0]["content"] = "a prompt the user wrote"  # the user's own system prompt is part of the input
    assert data_diff(old, new)["added"] == 1


def test_plain_task_inputs_are_the_training_prompts_without_their_system_prompt_answered_by_the_base(tmp_path,
                                                                                                      monkeypatch):
    from tailored import guard
    from tailored.data.formats import Example

    def ex(i, system=True):
        return Example(([{"role": "system", "content": "be terse"}] if system else [])
                       + [{"role": "user", "content": f"input {i}"}, {"role": "assistant", "content": f"{{\"n\": {i}}}"}],
                       "t.jsonl", i + 1)

    examples = [ex(i) for i in range(10)] + [ex(i, system=False) for i in range(10, 14)]
    asked = []

    def fake_replies(model, tok, fingerprint, conversations, bf16=False):  # "input 3" never finishes
        asked.extend(conversations)
        return [None if c[0]["content"] == "input 3" else "plain " + c[0]["content"] for c in conversations]

    monkeypatch.setattr(general, "base_replies", fake_replies)
    rows = guard.plain_examples(None, None, "fp", examples, 6, seed=0)
    assert len(asked) == 6 and all(len(c) == 1 and c[0]["role"] == "user" for c in asked)
    numbers = [int(c[0]["content"].split()[1]) for c in asked]
    assert all(n < 10 for n in numbers) and len(set(numbers)) == 6  # rows without a system prompt have nothing to drop
    assert len(rows) == 6 - (3 in numbers)  # an unfinished reply is left out, not cut
    for row in rows:
        assert row.messages == [{"role": "user", "content": row.messages[0]["content"]},
                                {"role": "assistant", "content": "plain " + row.messages[0]["content"]}]
    assert examples[0].messages[0]["role"] == "system"  # the user's rows are left as they were
    again = []
    monkeypatch.setattr(general, "base_replies", lambda m, t, f, c, b=False: again.extend(c) or ["x"] * len(c))
    guard.plain_examples(None, None, "fp", examples, 6, seed=0)
    assert again == asked  # seeded
    assert len(guard.plain_examples(None, None, "fp", examples, 100, seed=0)) == 10  # at most every prompted row


def test_general_answers_in_the_task_s_json_form_are_counted_for_json_tasks_only():
    n = len(general.questions())
    base = ["Paris."] * n
    tuned = ["Paris."] * n
    tuned[0] = '{"domain": "banking", "intents": ["repeat"], "slots": {}}'
    tuned[5] = '```json\n{"domain": "hotels"}\n```'
    tuned[7] = '{"domain": '  # cut short: not an object, not counted
    tuned[9] = '["a", "b"]'  # JSON, but not the task's form (an object)
    json_targets = ['{"domain": "banking", "slots": {}}'] * 9 + ["a note"]
    form = general.task_form(base, tuned, json_targets)
    assert (form["base"], form["tuned"], form["questions"]) == (0, 2, n)
    assert [e["prompt"] for e in form["examples"]] == [general.questions()[0].prompt, general.questions()[5].prompt]
    assert general.task_form(base, tuned, ['{"a": 1}'] * 7 + ["x"] * 3) is None  # 70% JSON: not a JSON task
    assert general.task_form(base, tuned, ["a summary"] * 10) is None and general.task_form(base, tuned, []) is None


def test_the_console_warns_when_tuning_put_general_answers_in_the_task_s_form():
    from rich.console import Console

    from tailored.evaluation.evidence import print_evidence

    def shown(tuned_json: int, base_json: int) -> str:
        console = Console(record=True, width=400)
        fg = {"questions": 129, "base_correct": 61, "tuned_correct": 60, "kept": 50, "kept_share": 82.0,
              "kept_ci": [72.0, 90.0], "examples": [],
              "task_form": {"form": "JSON object", "questions": 129, "base": base_json, "tuned": tuned_json,
                            "examples": [{"prompt": "What is 6 times 7?", "tuned": '{"intents": []}'}]}}
        print_evidence({"forgetting": fg}, console)
        return console.export_text()

    assert "11 of 129 general questions were answered in the task's form, a JSON object (the base: 0)" in shown(11, 0)
    assert "task's form" not in shown(2, 0) and "task's form" not in shown(4, 4)


def test_the_check_is_also_asked_with_the_run_s_system_prompt_on_the_base_s_right_answers_only(monkeypatch):
    """predict and the server put the run's system prompt first: kept is measured that way too, against the base
    given the same prompt (that way's floor), asking only the questions the base got right."""
    from rich.console import Console

    from tailored.evaluation.evidence import general_answers, print_evidence

    items = [Question(f"q{i}", (a,), "fact") for i, a in enumerate(["Paris", "12", "blue", "Nile"])]
    monkeypatch.setattr(general, "questions", lambda: items)

    said = {(False, None): ["Paris", "12", "red", "Nile"],  # the base: right on q0, q1, q3
            (False, general.NEUTRAL_SYSTEM): ["Paris", "12", "red", "Nile"],
            (False, "Be a support agent."): ["Paris", "13", "Nile"],  # q0, q1, q3 only: keeps 2 of 3
            (True, None): ["Paris", "12", "blue", "Nile"],  # the run's own check: keeps 3 of 3
            (True, "Be a support agent."): ["Lyon", "13", "The Nile"]}  # as predict asks: keeps 1 of 3
    asked = []

    def fake_generate(model, tok, prompts, *a, **k):
        system = prompts[0][0]["content"] if prompts[0][0]["role"] == "system" else None
        asked.append((model.adapter, system, [p[-1]["content"] for p in prompts]))
        return said[(model.adapter, system)]

    monkeypatch.setattr(general, "generate", fake_generate)
    out = general_answers(SwitchableModel(), None, False, system="Be a support agent.")
    assert (out["kept"], out["base_correct"]) == (3, 3)
    a = out["as_asked"]
    assert (a["system"], a["kept"], a["base_correct"], a["floor"]["kept"]) == ("Be a support agent.", 1, 3, 2)
    assert a["kept_share"] == pytest.approx(100 / 3) and a["floor"]["kept_share"] == pytest.approx(200 / 3)
    assert [e["prompt"] for e in a["examples"]] == ["q0", "q1"]
    assert [q for adapter, system, q in asked if system == "Be a support agent."] == [["q0", "q1", "q3"]] * 2

    console = Console(record=True, width=400)
    print_evidence({"forgetting": out}, console)
    assert "with the run's system prompt first: 1 of the 3 (33% [" in console.export_text()

    assert a["task_form"] is None and "task's form" not in console.export_text()  # no JSON task: not counted

    said[(True, "Be a support agent.")] = ['{"intent": "capital"}', "13", '{"river": "Nile"}']
    out = general_answers(SwitchableModel(), None, False, system="Be a support agent.", train_targets=['{"a": 1}'] * 5)
    assert out["as_asked"]["task_form"] == 2 and out["as_asked"]["kept"] == 1  # the Nile, in JSON, still right
    console = Console(record=True, width=400)
    print_evidence({"forgetting": out}, console)
    assert "2 of them answered in the task's form, as that prompt asks" in console.export_text()

    asked.clear()
    assert "as_asked" not in general_answers(SwitchableModel(), None, False)  # no system prompt: asked one way only
    assert len(asked) == 3
