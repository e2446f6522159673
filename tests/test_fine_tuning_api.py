"""OpenAI's files and fine-tuning jobs API on `tailor serve`, driven by the real `openai` client on a tiny base."""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest
from safetensors.torch import load_file

import tailored

from tests.conftest import bundled_router_encoder, write_jsonl
from tests.test_server import KEY, Server

FINAL = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module", autouse=True)
def _bundled_router_encoder():
    with bundled_router_encoder():  # jobs train in worker processes, which route on the bundled encoder
        yield


def rows(n: int, word: str = "yes") -> list[dict]:
    return [{"messages": [{"role": "user", "content": f"question number {i} please"},
                          {"role": "assistant", "content": word}]} for i in range(n)]


def wait(client, job_id: str, until=FINAL, timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if job.status in until:
            return job
        time.sleep(0.2)
    raise AssertionError(f"job {job_id} still {job.status} after {timeout}s")


def upload(client, path: Path) -> str:
    with open(path, "rb") as f:
        return client.files.create(file=f, purpose="fine-tune").id


@pytest.fixture(scope="module")
def live(tiny_base, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ftapi")
    server = Server(folder / "runs", runs=(), base=str(tiny_base))
    yield server, folder
    server.stop()


def test_upload_train_poll_events_checkpoints_then_chat_with_the_ft_model(live):
    server, folder = live
    client = server.client()
    data = write_jsonl(folder / "yes.jsonl", rows(40))
    file_id = upload(client, data)
    assert client.files.retrieve(file_id).bytes == data.stat().st_size
    assert client.files.content(file_id).read() == data.read_bytes()
    assert file_id in [f.id for f in client.files.list().data]
    job = client.fine_tuning.jobs.create(
        model=server.pool.base_name, training_file=file_id, suffix="yes", seed=3,
        method={"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 5, "batch_size": 8,
                                                                         "learning_rate_multiplier": 20}}})
    assert job.status == "validating_files" and job.seed == 3
    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    assert done.fine_tuned_model.startswith("ft:") and ":tailored:yes:" in done.fine_tuned_model
    assert done.trained_tokens > 0 and done.finished_at >= done.created_at
    events = client.fine_tuning.jobs.list_events(job.id, limit=1000).data
    messages = [e.message for e in events]
    assert "Files validated, moving job to queued state" in messages and "The job has successfully completed" in messages
    assert any(e.type == "metrics" and "train_loss" in e.data for e in events)
    steps = [e for e in events if e.type == "metrics" and "train_loss" in e.data]
    # one metrics event per optimizer step (training may stop early, before total_steps)
    assert sorted(e.data["step"] for e in steps) == list(range(1, len(steps) + 1))
    checkpoint = client.fine_tuning.jobs.checkpoints.list(job.id).data[0]
    assert checkpoint.fine_tuned_model_checkpoint.startswith(done.fine_tuned_model) and checkpoint.step_number > 0
    results = client.files.content(done.result_files[0]).text
    assert results.splitlines()[0] == "step,train_loss,train_mean_token_accuracy,valid_loss,valid_mean_token_accuracy"
    table = list(csv.DictReader(io.StringIO(results)))
    assert len(table) == len(steps) and all(0 <= float(r["train_mean_token_accuracy"]) <= 1 for r in table)
    valid = [float(r["valid_mean_token_accuracy"]) for r in table if r["valid_loss"]]
    # "yes" then the end-of-turn token: learned, the replies are predicted token for token (some training
    # batches are the guard's replayed general answers, which are not learned so fast)
    assert valid and valid[-1] > 0.9 and max(float(r["train_mean_token_accuracy"]) for r in table) > 0.9, results
    assert float(table[0]["train_mean_token_accuracy"]) < 0.5
    assert "train_mean_token_accuracy" in steps[-1].data and checkpoint.metrics.valid_mean_token_accuracy is not None
    # the job is an ordinary run, and the server answers with its adapter at once
    run_dir = Path(server.pool.fine_tuning.get(job.id)["run_dir"])
    assert (run_dir / "COMPLETE").exists() and (run_dir / "report.html").exists()
    assert done.fine_tuned_model in [m.id for m in client.models.list().data]
    answer = client.chat.completions.create(model=done.fine_tuned_model, max_tokens=5,
                                            messages=[{"role": "user", "content": "question number 7 please"}])
    # the run's own answer (how well 40 rows train a random 32-dim model is not this test's business)
    assert answer.choices[0].message.content == tailored.load(run_dir).generate("question number 7 please",
                                                                                max_new_tokens=5)
    assert answer.choices[0].message.content.startswith("yes")
    listed = client.fine_tuning.jobs.list(limit=10).data
    assert listed[0].id == job.id


def test_a_bad_file_fails_the_job_with_line_numbered_messages(live):
    server, folder = live
    client = server.client()
    bad = folder / "bad.jsonl"
    bad.write_text("".join(f'{{"messages": [{{"role": "user", "content": "q{i}"}}, {{"role": "assistant", '
                           f'"content": "a"}}]}}\n' for i in range(12)) + '{"messages": [{"role": "user"}]}\nnot json\n')
    job = client.fine_tuning.jobs.create(model=server.pool.base_name, training_file=upload(client, bad))
    done = wait(client, job.id)
    assert done.status == "failed" and done.error.code == "invalid_training_file"
    assert "bad.jsonl:13:" in done.error.message and "bad.jsonl:14:" in done.error.message
    assert str(server.pool.runs_dir) not in done.error.message  # the user's file name, not our storage path


def test_refused_before_queueing_unknown_base_file_or_setting(live):
    server, folder = live
    client = server.client()
    file_id = upload(client, write_jsonl(folder / "ok.jsonl", rows(20)))
    for kwargs, where in (({"model": "/etc"}, "model"), ({"training_file": "file-nope"}, "training_file"),
                          ({"hyperparameters": {"n_epochs": 0}}, "n_epochs"),
                          ({"hyperparameters": {"warmup": 3}}, "warmup")):
        args = {"model": server.pool.base_name, "training_file": file_id, **kwargs}
        with pytest.raises(openai.BadRequestError) as e:
            client.fine_tuning.jobs.create(**args)
        assert where in str(e.value)


def test_cancel_stops_a_running_job_and_its_process(live):
    server, folder = live
    client = server.client()
    file_id = upload(client, write_jsonl(folder / "long.jsonl", rows(200)))
    job = client.fine_tuning.jobs.create(model=server.pool.base_name, training_file=file_id,
                                         hyperparameters={"n_epochs": 400, "batch_size": 2})
    wait(client, job.id, until=("running",) + FINAL)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 10
    while server.app.state.runner.children and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.app.state.runner.children, "the training process outlived its cancelled job"
    assert client.fine_tuning.jobs.retrieve(job.id).status == "cancelled"
    with pytest.raises(openai.BadRequestError):
        client.fine_tuning.jobs.cancel(job.id)


def test_pause_stops_the_process_and_resume_continues_the_same_run(live):
    server, folder = live
    client = server.client()
    file_id = upload(client, write_jsonl(folder / "paused.jsonl", rows(120, "ok")))
    job = client.fine_tuning.jobs.create(model=server.pool.base_name, training_file=file_id,
                                         hyperparameters={"n_epochs": 4, "batch_size": 4})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # paused after the first epoch's checkpoint
        steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(job.id, limit=3).data if e.type == "metrics"]
        if steps and steps[0] >= 30:
            break
        time.sleep(0.05)
    assert client.fine_tuning.jobs.pause(job.id).status == "paused"
    deadline = time.monotonic() + 10
    while server.app.state.runner.children and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not server.app.state.runner.children
    run_dir = Path(server.pool.fine_tuning.get(job.id)["run_dir"])
    assert not (run_dir / "COMPLETE").exists()
    assert client.fine_tuning.jobs.resume(job.id).status == "queued"
    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    assert Path(server.pool.fine_tuning.get(job.id)["run_dir"]) == run_dir  # continued, not started over
    messages = [e.message for e in client.fine_tuning.jobs.list_events(job.id, limit=1000).data]
    assert f"Resumed training in {run_dir}" in messages


def test_a_dpo_job_on_openai_preference_rows(live):
    server, folder = live
    client = server.client()
    data = write_jsonl(folder / "prefs.jsonl", [
        {"input": {"messages": [{"role": "user", "content": f"question number {i} please"}]},
         "preferred_output": [{"role": "assistant", "content": "yes"}],
         "non_preferred_output": [{"role": "assistant", "content": "no"}]} for i in range(40)])
    job = client.fine_tuning.jobs.create(model=server.pool.base_name, training_file=upload(client, data),
                                         method={"type": "dpo", "dpo": {"hyperparameters": {"beta": 0.5,
                                                                                            "n_epochs": 2}}})
    assert job.method.type == "dpo" and job.method.dpo.hyperparameters.beta == 0.5
    done = wait(client, job.id)
    assert done.status == "succeeded", done.error
    run_dir = Path(server.pool.fine_tuning.get(job.id)["run_dir"])
    saved = json.loads((run_dir / "config.json").read_text())["train"]
    assert saved["method"] == "dpo" and saved["beta"] == 0.5 and saved["epochs"] == 2
    # a pair ranked right is not a token predicted right: DPO jobs leave the token-accuracy columns empty
    table = list(csv.DictReader(io.StringIO(client.files.content(done.result_files[0]).text)))
    assert table and all(r["train_loss"] and not r["train_mean_token_accuracy"] for r in table)
    with pytest.raises(openai.BadRequestError, match="beta"):  # beta is DPO's alone
        client.fine_tuning.jobs.create(model=server.pool.base_name, training_file=done.training_file,
                                       hyperparameters={"beta": 0.5})


def test_every_new_route_needs_the_key(live):
    server, _ = live
    routes = [("POST", "/v1/files"), ("GET", "/v1/files"), ("GET", "/v1/files/file-abc"),
              ("DELETE", "/v1/files/file-abc"), ("GET", "/v1/files/file-abc/content"),
              ("POST", "/v1/fine_tuning/jobs"), ("GET", "/v1/fine_tuning/jobs"),
              ("GET", "/v1/fine_tuning/jobs/ftjob-abc"), ("POST", "/v1/fine_tuning/jobs/ftjob-abc/cancel"),
              ("POST", "/v1/fine_tuning/jobs/ftjob-abc/pause"), ("POST", "/v1/fine_tuning/jobs/ftjob-abc/resume"),
              ("GET", "/v1/fine_tuning/jobs/ftjob-abc/events"), ("GET", "/v1/fine_tuning/jobs/ftjob-abc/checkpoints")]
    for method, path in routes:
        for headers in ({}, {"Authorization": "Bearer wrong"}):
            reply = httpx.request(method, server.url + path, headers=headers)
            assert reply.status_code == 401, (method, path, reply.status_code)
            assert reply.json()["error"]["code"] == "invalid_api_key"


def test_uploads_over_the_file_cap_get_413_and_leave_nothing(tiny_base, tmp_path):
    server = Server(tmp_path / "runs", runs=(), base=str(tiny_base), max_file_bytes=10_000, jobs=True)
    try:
        client = server.client()
        big = write_jsonl(tmp_path / "big.jsonl", rows(400))
        with pytest.raises(openai.APIStatusError) as e:
            upload(client, big)
        assert e.value.status_code == 413
        # a lying Content-Length does not get past the streamed count
        body = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"x.jsonl\"\r\n\r\n" + b"x" * 20_000 \
            + b"\r\n--b--\r\n"
        reply = httpx.post(server.url + "/v1/files", content=iter([body]), headers={
            "Authorization": f"Bearer {KEY}", "Content-Type": "multipart/form-data; boundary=b"})
        assert reply.status_code == 413
        assert client.files.list().data == []
        small = write_jsonl(tmp_path / "small.jsonl", rows(3))
        assert upload(client, small).startswith("file-")  # the body limit (1 MB) is not what caps files
    finally:
        server.stop()


def _serve(runs_dir: Path, base: Path, port: int) -> subprocess.Popen:
    env = {**os.environ, "TAILORED_API_KEY": KEY}
    return subprocess.Popen([sys.executable, "-m", "tailored.cli", "serve", "--base", str(base), "--runs-dir",
                             str(runs_dir), "--port", str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)


def _client(port: int) -> openai.OpenAI:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"http://127.0.0.1:{port}/health").status_code == 200:
                return openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=KEY, max_retries=0, timeout=60)
        except httpx.HTTPError:
            time.sleep(0.2)
    raise AssertionError("server did not start")


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _weights(run_dir: str) -> dict:
    return load_file(Path(run_dir) / "adapter" / "adapter_model.safetensors")


def test_a_server_killed_mid_job_resumes_it_to_the_same_weights(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "train.jsonl", rows(120, "no"))
    settings = {"n_epochs": 6, "batch_size": 4}
    port = _port()
    server = _serve(tmp_path / "runs", tiny_base, port)
    try:
        client = _client(port)
        file_id = upload(client, data)
        killed = client.fine_tuning.jobs.create(model=str(tiny_base), training_file=file_id, hyperparameters=settings)
        # past the first epoch's checkpoint, and not finished: kill the server (and with it, its trainer)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            steps = [e.data["step"] for e in client.fine_tuning.jobs.list_events(killed.id, limit=5).data
                     if e.type == "metrics"]
            if steps and steps[0] >= 45:
                break
            time.sleep(0.05)
        server.send_signal(signal.SIGKILL)
        server.wait()
    finally:
        server.kill()
    from tailored.fine_tuning.store import Jobs
    from tailored.runs.store import status

    row = Jobs(tmp_path / "runs").get(killed.id)
    assert row["status"] == "running" and row["run_dir"]
    time.sleep(1)  # the kernel's parent-death signal reaches the trainer
    assert status(Path(row["run_dir"])) == "interrupted", "the trainer outlived the server"
    assert not (Path(row["run_dir"]) / "COMPLETE").exists()

    server = _serve(tmp_path / "runs", tiny_base, port)
    try:
        client = _client(port)
        done = wait(client, killed.id)
        assert done.status == "succeeded", done.error
        messages = [e.message for e in client.fine_tuning.jobs.list_events(killed.id, limit=1000).data]
        assert any(m.startswith("Resumed training in") for m in messages)
        fresh = client.fine_tuning.jobs.create(model=str(tiny_base), training_file=file_id, hyperparameters=settings)
        assert wait(client, fresh.id).status == "succeeded"
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(30)
    jobs = Jobs(tmp_path / "runs")
    resumed, uninterrupted = _weights(jobs.get(killed.id)["run_dir"]), _weights(jobs.get(fresh.id)["run_dir"])
    assert resumed.keys() == uninterrupted.keys()
    assert all((resumed[k] == uninterrupted[k]).all() for k in resumed)


@pytest.fixture
def wide_server(tmp_path):
    """The tiny Llama with a 2,048-token context: the bundled example's rows are longer than 256 of its tokens."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from tests.conftest import build_tokenizer

    torch.manual_seed(0)
    tok = build_tokenizer()
    config = LlamaConfig(vocab_size=len(tok), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         tie_word_embeddings=True, eos_token_id=tok.eos_token_id, bos_token_id=None,
                         initializer_range=0.3)
    LlamaForCausalLM(config).save_pretrained(tmp_path / "base")
    tok.save_pretrained(tmp_path / "base")
    server = Server(tmp_path / "runs", runs=(), base=str(tmp_path / "base"))
    yield server
    server.stop()


def test_the_readme_openai_snippet_runs_as_written(wide_server, monkeypatch, capsys):
    """The README's snippet, with only base_url (this test's port) and the base (a tiny one) changed."""
    server = wide_server
    root = Path(__file__).parent.parent
    readme = (root / "README.md").read_text(encoding="utf-8")
    snippet = readme.split("<!-- openai-fine-tuning -->\n```python\n", 1)[1].split("```", 1)[0]
    assert 'base_url="http://127.0.0.1:8000/v1", api_key="KEY"' in snippet and 'model="smollm2-135m"' in snippet
    snippet = snippet.replace("http://127.0.0.1:8000/v1", server.url + "/v1").replace('api_key="KEY"', f'api_key="{KEY}"')
    snippet = snippet.replace('model="smollm2-135m"', f'model={server.pool.base_name!r}').replace("time.sleep(5)",
                                                                                                 "time.sleep(0.2)")
    monkeypatch.chdir(root)  # the snippet names the bundled example by its path in the repository
    exec(compile(snippet, "README.md", "exec"), {})
    status, model = capsys.readouterr().out.splitlines()[0].split()[:2]
    assert status == "succeeded" and model.startswith("ft:") and ":tailored:support:" in model


def test_one_runner_per_runs_folder(tmp_path):
    """A second server on the same runs folder serves, but never starts the first one's jobs a second time."""
    from tailored.fine_tuning.runner import Runner

    first = Runner(tmp_path).start()
    second = Runner(tmp_path).start()
    try:
        assert first.lock is not None and first.thread.is_alive()
        assert second.lock is None and not second.thread.is_alive()
    finally:
        second.stop()
        first.stop()
    third = Runner(tmp_path).start()  # the first one's lock went with it
    assert third.lock is not None
    third.stop()
