"""The OpenAI-compatible server, driven by the real `openai` client over loopback, on tiny models."""

from __future__ import annotations

import json
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import httpx
import openai
import pytest

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, ServerConfig, TrainConfig
from tailored.server import build
from tests.conftest import write_jsonl

KEY = "test-key-123"


@pytest.fixture(scope="module")
def runs_dir(tiny_base, tmp_path_factory):
    """Three runs over the same tiny base: they always answer 'yes', 'no' and 'ok'."""
    folder = tmp_path_factory.mktemp("serve")
    for name, word in (("yes", "yes"), ("no", "no"), ("ok", "ok")):
        data = write_jsonl(folder / f"{name}.jsonl",
                           [{"prompt": f"question number {i} please", "completion": word} for i in range(40)])
        tailored.train(data, TrainConfig(base=str(tiny_base), epochs=5, learning_rate=1e-2, batch_size=8),
                       DataConfig(), EvalConfig(), RunConfig(runs_dir=str(folder / "runs"), evaluate=False), quiet=True)
    return folder / "runs"


class Server:
    def __init__(self, runs_dir, runs=("yes",), **overrides):
        import uvicorn

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            self.port = s.getsockname()[1]
        cfg = ServerConfig(runs_dir=str(runs_dir), api_key=KEY, port=self.port, **overrides)
        self.app, self.pool = build(list(runs), cfg)
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_level="error"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        while not self.server.started:
            time.sleep(0.02)
        self.url = f"http://127.0.0.1:{self.port}"

    def client(self, key=KEY) -> openai.OpenAI:
        return openai.OpenAI(base_url=self.url + "/v1", api_key=key, max_retries=0, timeout=60)

    def stop(self):
        self.server.should_exit = True
        self.thread.join(10)
        if getattr(self.app.state, "runner", None):  # the fine-tuning job runner and any training process
            self.app.state.runner.stop()


@pytest.fixture(scope="module")
def server(runs_dir):
    s = Server(runs_dir)
    yield s
    s.stop()


def ask(client, model, text="question number 7 please", max_tokens=5, **kw):
    return client.chat.completions.create(model=model, messages=[{"role": "user", "content": text}],
                                          max_tokens=max_tokens, **kw)


def test_two_adapters_answer_differently_in_one_server(server):
    client = server.client()
    yes, no = ask(client, "yes"), ask(client, "no/v1")
    assert yes.choices[0].message.content == "yes" and yes.choices[0].finish_reason == "stop"
    assert no.choices[0].message.content == "no"
    assert yes.usage.completion_tokens >= 1 and yes.usage.prompt_tokens > 3
    base = ask(client, server.pool.base_name)
    assert base.choices[0].message.content not in ("yes", "no")
    ids = {m.id for m in client.models.list().data}
    assert {"yes", "yes/v1", "no", "no/v1", server.pool.base_name} <= ids


def test_streaming_gives_the_same_answer_in_chunks(server):
    client = server.client()
    chunks = list(ask(client, "no", stream=True))
    text = "".join(c.choices[0].delta.content or "" for c in chunks)
    assert text == ask(client, "no").choices[0].message.content == "no"
    assert chunks[-1].choices[0].finish_reason == "stop"
    cut = list(ask(client, "yes", stream=True, stop=["es"]))
    assert "".join(c.choices[0].delta.content or "" for c in cut) == "y"
    assert cut[-1].choices[0].finish_reason == "stop"


def test_batched_answers_equal_one_at_a_time_answers(server):
    client = server.client()
    prompts = ["hello", "please help me reset my password please", "the answer is", "billing no yes ok help",
               "system user assistant hello the answer", "ok"]
    alone = [ask(client, "base", text=p, max_tokens=8).choices[0].message.content for p in prompts]
    with ThreadPoolExecutor(len(prompts)) as pool:  # arrive together: generated as one left-padded batch
        together = list(pool.map(lambda p: ask(client, "base", text=p, max_tokens=8).choices[0].message.content,
                                 prompts))
    assert together == alone and len(set(alone)) > 1


def _short_during_long(client, names, steps):
    """A long base answer (150 tokens), and short requests for `names` sent once the batch has stepped:
    the short answers with the times they came, the long answer and the time it came."""
    with ThreadPoolExecutor(len(names) + 1) as pool:
        long = pool.submit(lambda: (ask(client, "base", text="hello", max_tokens=150), time.monotonic()))
        while not steps:
            time.sleep(0.005)
        short = [pool.submit(lambda m=m: (ask(client, m), time.monotonic())) for m in names]
        answers = [f.result() for f in short]
        long_answer, long_done = long.result()
    return answers, long_answer, long_done


def test_requests_join_the_running_batch_mid_answer_with_their_own_adapters(server, monkeypatch):
    from tailored.models.batch import Batcher

    client = server.client()
    names = ("yes", "no", "base", "yes")
    alone = [ask(client, m).choices[0].message.content for m in names]
    long_alone = ask(client, "base", text="hello", max_tokens=150).choices[0].message.content
    steps, real = [], Batcher.step

    def slow_step(self):  # a slow model: the short requests surely arrive while the long one runs
        steps.append((len(self), {row.adapters for row in self.rows}))
        time.sleep(0.02)
        return real(self)

    monkeypatch.setattr(Batcher, "step", slow_step)
    answers, long_answer, long_done = _short_during_long(client, names, steps)
    assert [a.choices[0].message.content for a, _ in answers] == alone
    assert long_answer.choices[0].message.content == long_alone and long_answer.choices[0].finish_reason == "length"
    assert all(done < long_done for _, done in answers)  # they joined mid-answer instead of waiting for it
    assert max(n for n, _ in steps) >= 3 and max(len(a) for _, a in steps) >= 3  # base, yes and no rows together


def test_requests_beyond_the_cache_memory_wait_for_it_and_still_get_their_answers(runs_dir, server, monkeypatch):
    from tailored.models.batch import Batcher
    from tailored.models.decode import token_bytes

    client = server.client()
    names = ("yes", "no", "base", "yes")
    alone = [ask(client, m).choices[0].message.content for m in names]
    long_alone = ask(client, "base", text="hello", max_tokens=150).choices[0].message.content
    # room for the long request alone (its prompt and 150 tokens), so the short ones wait until it ends
    tight = Server(runs_dir, kv_cache_gb=200 * token_bytes(server.pool.model) / 2**30)
    steps, real = [], Batcher.step

    def slow_step(self):
        steps.append(len(self))
        time.sleep(0.02)
        return real(self)

    monkeypatch.setattr(Batcher, "step", slow_step)
    try:
        answers, long_answer, long_done = _short_during_long(tight.client(), names, steps)
    finally:
        tight.stop()
    assert [a.choices[0].message.content for a, _ in answers] == alone
    assert long_answer.choices[0].message.content == long_alone
    assert all(done > long_done for _, done in answers)  # they waited for its memory instead of joining
    assert steps[:149] == [1] * 149 and max(steps) >= 2  # alone for its 150 tokens, then the short ones together


def test_completions_endpoint_and_stop_sequences(server):
    client = server.client()
    out = client.completions.create(model="yes", prompt="hello", max_tokens=6)
    assert out.choices[0].finish_reason in ("stop", "length") and out.usage.completion_tokens <= 6
    cut = ask(client, "yes", stop=["es"])
    assert cut.choices[0].message.content == "y" and cut.choices[0].finish_reason == "stop"


def test_every_route_but_health_needs_the_key(server):
    # Every route the app has, not only API routes: /docs, /redoc or /openapi.json coming back would show here.
    routes = [(r.path, m) for r in server.app.routes for m in getattr(r, "methods", None) or {"GET"}]
    assert len(routes) >= 4  # health, models, chat, completions: a new route is checked automatically
    for path, method in routes + [("/docs", "GET"), ("/redoc", "GET"), ("/openapi.json", "GET")]:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            status = httpx.request(method, server.url + path, headers=headers, json={}).status_code
            allowed = {200} if path == "/health" else {401} if (path, method) in routes else {401, 404}
            assert status in allowed, (path, method, headers, status)
    with pytest.raises(openai.AuthenticationError):
        ask(server.client(key="nope"), "yes")


def test_limits_give_openai_shaped_errors(server):
    client = server.client()
    big = httpx.post(server.url + "/v1/chat/completions", content=b"x" * 1_000_001,
                     headers={"Authorization": f"Bearer {KEY}", "Content-Type": "application/json"})
    assert big.status_code == 413 and big.json()["error"]["code"] == "request_too_large"
    with pytest.raises(openai.BadRequestError, match="context"):
        ask(client, "yes", text="please " * 300)  # the tiny base has a 256-token context
    with pytest.raises(openai.BadRequestError, match="n must be 1"):
        ask(client, "yes", n=2)
    with pytest.raises(openai.BadRequestError, match="stop"):
        ask(client, "yes", stop=["a", "b", "c", "d", "e"])
    for name in ("../yes/v1", "/etc/passwd", "yes/../../x"):
        with pytest.raises(openai.NotFoundError):
            ask(client, name)


def test_a_burst_beyond_the_limit_gets_429_with_retry_after(runs_dir):
    s = Server(runs_dir, max_in_flight=2, batch_size=1)
    try:
        def one(_):
            r = httpx.post(s.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"}, timeout=60,
                           json={"model": "yes", "max_tokens": 120,
                                 "messages": [{"role": "user", "content": "say something long"}]})
            return r.status_code, r.headers.get("retry-after")

        with ThreadPoolExecutor(16) as pool:
            results = list(pool.map(one, range(16)))
        codes = [c for c, _ in results]
        assert set(codes) <= {200, 429} and codes.count(429) >= 1 and codes.count(200) >= 2, codes
        assert all(after == "1" for c, after in results if c == 429)
        # a client that disconnects mid-stream frees its slot: the server keeps answering afterwards
        for _ in range(3):
            with httpx.stream("POST", s.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                              json={"model": "yes", "max_tokens": 200, "stream": True,
                                    "messages": [{"role": "user", "content": "go"}]}) as r:
                next(r.iter_lines())
        deadline = time.time() + 10
        while (code := one(0)[0]) == 429 and time.time() < deadline:
            time.sleep(0.2)
        assert code == 200
    finally:
        s.stop()


def test_merged_export_has_the_adapters_logits_in_plain_transformers(runs_dir, tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tailored.export import export
    from tailored.tuned import load

    exported = export("yes", "merged", tmp_path / "merged", str(runs_dir), check=False)
    model, tok = AutoModelForCausalLM.from_pretrained(exported.path), AutoTokenizer.from_pretrained(exported.path)
    tuned = load("yes", runs_dir)
    assert tok.chat_template == tuned.tokenizer.chat_template
    ids = tok(["hello the answer is", "please help reset password billing"], padding=True, return_tensors="pt")
    with torch.no_grad():
        merged, peft = model(**ids).logits, tuned.model(**ids).logits
        with tuned.model.disable_adapter():
            base = tuned.model(**ids).logits
    assert (peft - base).abs().max() > 1.0  # the trained adapter (non-zero B) moves the logits a lot
    torch.testing.assert_close(merged, peft, rtol=1e-4, atol=1e-4)


def test_adapters_are_evicted_least_recently_used_and_reload_correctly(runs_dir):
    s = Server(runs_dir, max_adapters=2)
    try:
        client = s.client()
        answers = [ask(client, name).choices[0].message.content for name in ("yes", "no", "yes", "ok")]
        assert answers == ["yes", "no", "yes", "ok"]
        # "no" was used longest ago when "ok" needed a slot; "yes", used since, stays
        assert sorted(s.pool.adapters) == ["ok/v1", "yes/v1"]
        assert ask(client, "no").choices[0].message.content == "no"  # reloaded on demand, and right
        assert sorted(s.pool.adapters) == ["no/v1", "ok/v1"]
    finally:
        s.stop()


def test_a_client_that_disconnects_mid_stream_stops_generation_and_frees_its_slot(runs_dir):
    s = Server(runs_dir, max_in_flight=1)
    try:
        client = s.client()
        long = ask(client, "base", text="hello", max_tokens=200)
        assert long.choices[0].finish_reason == "length"  # left alone, it generates all 200 tokens
        jobs = []
        submit = s.pool.submit
        s.pool.submit = lambda job: (jobs.append(job), submit(job))[1]
        with httpx.stream("POST", s.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                          json={"model": "base", "max_tokens": 200, "stream": True,
                                "messages": [{"role": "user", "content": "hello"}]}) as r:
            next(r.iter_lines())
        generated = jobs[0].future.result(timeout=30)
        assert len(generated) < 200  # stopped when the client went away
        # the slot is released by the job's done-callback, which may run a moment after result() returns
        deadline = time.time() + 5
        while (reply := httpx.post(s.url + "/v1/chat/completions", headers={"Authorization": f"Bearer {KEY}"},
                                   json={"model": "yes", "max_tokens": 5, "messages": [
                                       {"role": "user", "content": "question number 7 please"}]})).status_code == 429 \
                and time.time() < deadline:
            time.sleep(0.05)
        assert reply.status_code == 200 and reply.json()["choices"][0]["message"]["content"] == "yes"
    finally:
        s.stop()


def test_tools_round_trip_through_the_openai_client(tiny_base, tmp_path):
    """A run trained to call get_weather answers a tools request with tool_calls in OpenAI's shape."""
    from tailored.data.tools import call_text

    weather = {"type": "function", "function": {"name": "w"}}  # short: the tiny model's context is 256
    reply = {"role": "assistant", "content": None, "tool_calls": [
        {"id": "c1", "type": "function", "function": {"name": "w", "arguments": '{"c": "O"}'}}]}
    rows = [{"tools": [weather], "messages": [{"role": "user", "content": f"q {i}"}, reply]} for i in range(40)]
    data = write_jsonl(tmp_path / "calls.jsonl", rows)
    run = tailored.train(data, TrainConfig(base=str(tiny_base), epochs=25, learning_rate=1e-2, batch_size=8),
                         DataConfig(guard=0.0), EvalConfig(), RunConfig(runs_dir=str(tmp_path / "runs"),
                                                                       evaluate=False), quiet=True)
    want = call_text("w", {"c": "O"})
    assert tailored.load(run.path).generate("q 7", max_new_tokens=60) == want
    s = Server(tmp_path / "runs", runs=("calls",))
    try:
        client = s.client()
        asked = dict(model="calls", messages=[{"role": "user", "content": "q 7"}], max_tokens=60)
        answer = client.chat.completions.create(tools=[weather], **asked).choices[0]
        assert answer.finish_reason == "tool_calls" and answer.message.content is None
        (call,) = answer.message.tool_calls
        assert call.type == "function" and call.function.name == "w"
        assert json.loads(call.function.arguments) == {"c": "O"}
        # without tools offered, the same reply comes back as text, as OpenAI would never call a function
        assert client.chat.completions.create(**asked).choices[0].message.content == want
        # streamed, the calls arrive as OpenAI streams them: deltas with an index, then finish_reason tool_calls
        chunks = list(client.chat.completions.create(tools=[weather], stream=True, **asked))
        deltas = [c.choices[0].delta for c in chunks if c.choices]
        streamed = [t for d in deltas for t in (d.tool_calls or [])]
        assert [(t.index, t.function.name, json.loads(t.function.arguments)) for t in streamed] == [(0, "w", {"c": "O"})]
        assert streamed[0].id.startswith("call_") and chunks[-1].choices[0].finish_reason == "tool_calls"
        assert not "".join(d.content or "" for d in deltas)  # the call's markup never leaks as text
        # offered tools, a model that answers in words answers as text, streamed or not (the base calls nothing)
        plain = dict(asked, model=s.pool.base_name, max_tokens=8, tools=[weather])
        offered = client.chat.completions.create(**plain).choices[0]
        said = offered.message.content
        assert said and "<tool_call>" not in said and not offered.message.tool_calls
        assert offered.finish_reason in ("stop", "length")
        chunks = list(client.chat.completions.create(stream=True, **plain))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == said
    finally:
        s.stop()


def test_sampling_follows_temperature_top_p_and_seed(server):
    client = server.client()
    base = server.pool.base_name  # the random tiny base spreads its probability: samples differ by seed

    def sample(**kw):
        return ask(client, base, max_tokens=24, **kw).choices[0].message.content

    first, again = sample(temperature=0.9, seed=1), sample(temperature=0.9, seed=1)
    assert first == again
    others = {sample(temperature=0.9, seed=s) for s in (2, 3, 4)}
    assert others - {first}, "a different seed gave the same text every time"
    greedy = sample()
    assert sample(temperature=0) == greedy and sample(temperature=0, seed=5) == greedy
    assert sample(temperature=0.9, top_p=1e-6, seed=7) == greedy  # top_p that keeps one token is greedy
    tuned = tailored.load("yes", runs_dir=server.pool.runs_dir)
    assert ask(client, "yes", max_tokens=5).choices[0].message.content == \
        tuned.generate("question number 7 please", max_new_tokens=5)
    with pytest.raises(openai.BadRequestError, match="temperature"):
        sample(temperature=3)


def test_no_input_gives_a_5xx_on_any_route(server):
    """Junk names, ids and bodies, of any length or bytes, get a 4xx everywhere (once: a 5,000-char name gave 500)."""
    from urllib.parse import quote

    from hypothesis import HealthCheck, given, settings, strategies as st

    headers = {"Authorization": f"Bearer {KEY}"}
    text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40) | \
        st.sampled_from(["x" * 5000, "../" * 300, "yes/" + "v" * 300, "ft:" + "a" * 4000, "\x00", "runs/yes/v1"])
    junk = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | text,
                        lambda inner: st.lists(inner, max_size=3) | st.dictionaries(text, inner, max_size=3),
                        max_leaves=8)
    bodies = st.fixed_dictionaries({}, optional={
        "model": text | junk, "messages": junk | st.lists(st.fixed_dictionaries({"role": text, "content": text}),
                                                          max_size=2),
        "prompt": text | junk, "max_tokens": junk, "temperature": junk, "top_p": junk, "seed": junk, "n": junk,
        "training_file": text | junk, "validation_file": junk, "hyperparameters": junk, "method": junk,
        "suffix": junk, "stop": junk, "stream": junk, "tools": junk})
    # well-formed requests whose names are junk reach the run lookup, where the 500 was
    named = st.fixed_dictionaries({"model": text, "messages": st.just([{"role": "user", "content": "hi"}]),
                                   "prompt": st.just("hi"), "max_tokens": st.just(2), "training_file": text,
                                   "validation_file": text | st.none()})
    bodies = bodies | named
    routes = [("POST", "/v1/chat/completions"), ("POST", "/v1/completions"), ("POST", "/v1/fine_tuning/jobs"),
              ("GET", "/v1/fine_tuning/jobs/{}"), ("POST", "/v1/fine_tuning/jobs/{}/cancel"),
              ("GET", "/v1/fine_tuning/jobs/{}/events"), ("GET", "/v1/files/{}"), ("DELETE", "/v1/files/{}"),
              ("GET", "/v1/files/{}/content"), ("POST", "/v1/files"), ("GET", "/v1/models")]
    with httpx.Client(base_url=server.url, headers=headers, timeout=60) as http:
        @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        @given(route=st.sampled_from(routes), ident=text, body=bodies, raw=st.binary(max_size=64))
        def probe(route, ident, body, raw):
            method, path = route
            path = path.format(quote(ident, safe="") or "x")  # any bytes, percent-encoded as a client sends them
            if body.get("max_tokens") is not None:
                body["max_tokens"] = 2 if body["max_tokens"] is True else body["max_tokens"]
            reply = http.request(method, path, json=body) if raw[:1] != b"\x00" else \
                http.request(method, path, content=raw, headers={"Content-Type": "application/json"})
            assert reply.status_code < 500, (method, path, body, reply.status_code, reply.text[:300])

        probe()


def test_listening_beyond_loopback_without_a_key_is_refused(monkeypatch, tmp_path):
    from tailored.errors import TailoredError
    from tailored.server import serve

    monkeypatch.delenv("TAILORED_API_KEY", raising=False)
    with pytest.raises(TailoredError, match="allow-unauthenticated-network"):
        serve(cfg=ServerConfig(host="0.0.0.0", runs_dir=str(tmp_path)))  # refused before any model loads


def test_runs_named_on_the_command_line_load_from_an_absolute_runs_folder(runs_dir, tmp_path):
    from tailored.cli import chosen
    from tailored.errors import TailoredError

    # `tailor serve yes --runs-dir /abs/runs`: the CLI resolves the name to an absolute folder
    folder = chosen("yes", str(runs_dir.resolve()))
    assert folder.startswith("/")
    _, pool = build([folder], ServerConfig(runs_dir=str(runs_dir.resolve()), api_key=KEY))
    assert list(pool.adapters) == ["yes/v1"]
    with pytest.raises(TailoredError, match="outside the runs folder"):
        build([folder], ServerConfig(runs_dir=str(tmp_path), api_key=KEY))


def test_full_fine_tunes_and_classifiers_are_served_too(tiny_base, tiny_encoder, tmp_path):
    from tests.test_methods import keyword_csv

    runs = str(tmp_path / "runs")
    data = write_jsonl(tmp_path / "full.jsonl", [{"prompt": f"question number {i} please", "completion": "no"}
                                                 for i in range(40)])
    tailored.train(data, TrainConfig(base=str(tiny_base), method="full", epochs=5, learning_rate=1e-3, batch_size=8),
                   DataConfig(guard=0), EvalConfig(), RunConfig(runs_dir=runs, evaluate=False), quiet=True)
    tailored.train(keyword_csv(tmp_path / "kw.csv", 60), TrainConfig(task="classify", base=str(tiny_encoder), epochs=8,
                                                                    learning_rate=3e-3, batch_size=8),
                   run_cfg=RunConfig(runs_dir=runs, evaluate=False), quiet=True)
    s = Server(runs, runs=(), base=str(tiny_base))
    try:
        client = s.client()
        assert {"full", "full/v1", "kw", "kw/v1"} <= {m.id for m in client.models.list().data}
        tuned = tailored.load("full", runs_dir=runs)
        assert ask(client, "full").choices[0].message.content == \
            tuned.generate("question number 7 please", max_new_tokens=5) == "no"
        classifier = tailored.load("kw", runs_dir=runs)
        for text in ("hello 78 the answer is no please", "hello 77 the answer is yes please"):
            label = ask(client, "kw", text=text).choices[0].message.content
            assert label == classifier.generate(text) and label in ("positive", "negative")
        assert client.completions.create(model="kw", prompt="hello 77 the answer is yes please").choices[0].text \
            == classifier.generate("hello 77 the answer is yes please")
        with pytest.raises(openai.BadRequestError, match="stream"):
            ask(client, "kw", stream=True)
    finally:
        s.stop()
