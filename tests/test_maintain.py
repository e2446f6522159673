"""Maintenance: the run index, promotion and name resolution, retraining from a parent, drift, model cards."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.data import Example
from tailored.data.drift import drift, recommend
from tailored.errors import TailoredError
from tailored.runs import index
from tailored.runs.manage import compare, listing, promote, reindex, remove
from tailored.runs.store import resolve_run_how
from tests.conftest import write_jsonl, yes_rows

ROOT = Path(__file__).parent.parent
KILLER = Path(__file__).with_name("kill_at.py")


def cli_train(tiny_base, data, runs, *extra, kill: str | None = None) -> subprocess.Popen:
    args = ["train", str(data), "--base", str(tiny_base), "--epochs", "3", "--learning-rate", "1e-2", "--batch-size",
            "4", "--runs-dir", str(runs), "--guard", "0", "-q", *extra]
    cmd = [sys.executable, str(KILLER), kill, *args] if kill else [sys.executable, "-m", "tailored.cli", *args]
    return subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def fit(tiny_base, data, runs, parent=None, epochs=5, fail_if_worse=False, name=None):
    return tailored.train(data, TrainConfig(base=str(tiny_base), epochs=epochs, learning_rate=1e-2, batch_size=8),
                          DataConfig(guard=0.0), EvalConfig(max_new_tokens=4, fail_if_worse=fail_if_worse, samples=0,
                                                            forgetting=False),
                          RunConfig(runs_dir=str(runs), parent=parent, name=name), quiet=True)


def comparable(rows):
    return [{k: v for k, v in r.items() if k != "status" or v in index.FINAL} for r in rows]


def test_a_migration_from_the_first_schema_keeps_the_rows(tmp_path):
    with index.connect(tmp_path, index.MIGRATIONS[:1]) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == 1
        db.execute("INSERT INTO runs (name, version, status, base) VALUES ('old', 1, 'finished', 'smollm2-135m')")
    with index.connect(tmp_path) as db:
        assert db.execute("PRAGMA user_version").fetchone()[0] == len(index.MIGRATIONS) == 2
        row = dict(db.execute("SELECT * FROM runs").fetchone())
        assert row["name"] == "old" and row["base"] == "smollm2-135m" and row["task"] is None
        assert db.execute("SELECT count(*) FROM tags").fetchone()[0] == 0
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_an_index_that_cannot_be_written_does_not_fail_a_run(tiny_base, tmp_path):
    runs = tmp_path / "runs"
    runs.mkdir()
    (runs / index.INDEX).write_text("not a database")  # unreadable as SQLite
    run = fit(tiny_base, write_jsonl(tmp_path / "yes.jsonl", yes_rows(24)), runs, epochs=1)
    assert (run.path / "COMPLETE").exists()
    with pytest.raises(sqlite3.Error):
        index.record(runs, run.path)  # strict by default, for commands that only touch the index
    (runs / index.INDEX).unlink()
    assert [r["status"] for r in listing(runs)] == ["finished"]  # the folders are the truth


def test_two_concurrent_trainings_leave_a_consistent_index(tiny_base, tmp_path):
    data, runs = write_jsonl(tmp_path / "d.jsonl", yes_rows(40)), tmp_path / "runs"
    jobs = [cli_train(tiny_base, data, runs, "--no-evaluate") for _ in range(2)]
    for job in jobs:
        out, err = job.communicate(timeout=600)
        assert job.returncode == 0, err
    rows = listing(runs)
    assert [(r["name"], r["version"], r["status"]) for r in rows] == [("d", 1, "finished"), ("d", 2, "finished")]
    with sqlite3.connect(runs / index.INDEX) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    before = listing(runs)
    for suffix in ("", "-wal", "-shm"):  # the folders are the truth: the index can always be rebuilt
        Path(f"{runs / index.INDEX}{suffix}").unlink(missing_ok=True)
    assert reindex(runs) == 2
    assert listing(runs) == before
    shutil.rmtree(runs / "d" / "v1")  # a folder removed by hand leaves the listing too
    assert [r["version"] for r in listing(runs)] == [2]


def test_a_run_killed_with_sigkill_is_listed_as_interrupted(tiny_base, tmp_path):
    data, runs = write_jsonl(tmp_path / "d.jsonl", yes_rows(40)), tmp_path / "runs"
    job = cli_train(tiny_base, data, runs, "--no-evaluate", kill="step:3")
    job.communicate(timeout=600)
    assert job.returncode == -9
    with index.connect(runs) as db:  # the index last heard "running" from the process that died
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "running"
    assert [r["status"] for r in listing(runs)] == ["interrupted"]
    job = cli_train(tiny_base, data, runs, "--no-evaluate")  # rerunning the command resumes it
    job.communicate(timeout=600)
    assert job.returncode == 0 and [(r["version"], r["status"]) for r in listing(runs)] == [(1, "finished")]


def test_promote_resolves_names_and_guards_removal(tiny_base, tmp_path):
    data, runs = write_jsonl(tmp_path / "yes.jsonl", yes_rows(24)), tmp_path / "runs"
    first, second = fit(tiny_base, data, runs, epochs=1), fit(tiny_base, data, runs, epochs=1)
    assert resolve_run_how("yes", runs) == (second.path, "its latest finished version (none is promoted to "
                                                          "production)")
    promote("yes/v1", runs)
    assert resolve_run_how("yes", runs) == (first.path, "its production version")
    assert tailored.load("yes", runs_dir=runs).path == first.path
    assert [r["tags"] for r in listing(runs)] == [["production"], []]
    with pytest.raises(TailoredError, match="production version"):
        remove("yes/v1", runs)
    with pytest.raises(TailoredError, match="not one version"):
        remove("yes", runs)
    remove("yes/v2", runs)
    assert [r["version"] for r in listing(runs)] == [1] and not second.path.exists()
    remove("yes/v1", runs, force=True)
    assert listing(runs) == [] and json.loads((runs / "yes" / "tags.json").read_text()) == {}


def test_retrain_from_a_parent_diffs_the_data_and_compares_three_ways(tiny_base, tmp_path):
    runs = tmp_path / "runs"
    old = yes_rows(40)
    write_jsonl(tmp_path / "t.heldout.jsonl", yes_rows(6, start=500))
    parent = fit(tiny_base, write_jsonl(tmp_path / "t.jsonl", old), runs)
    assert parent.path == runs / "t" / "v1"
    # 3 removed, 5 edited (same question, new answer), 10 added
    new = [dict(r, completion="yes.") if 3 <= i < 8 else r for i, r in enumerate(old)][3:] + yes_rows(10, start=1000)
    (tmp_path / "v2").mkdir()
    data = write_jsonl(tmp_path / "v2" / "t.jsonl", new)
    write_jsonl(tmp_path / "v2" / "t.heldout.jsonl", yes_rows(4, start=600) + yes_rows(2, start=500))
    child = fit(tiny_base, data, runs, parent="t", epochs=2, fail_if_worse=True)

    assert child.path == runs / "t" / "v2"
    lineage = json.loads((child.path / "run.json").read_text())
    assert lineage["parent"] == "t/v1"
    assert {k: lineage["data_diff"][k] for k in ("added", "edited", "removed")} == {"added": 10, "edited": 5,
                                                                                     "removed": 3}
    c = child.comparison  # base, parent and new on the union: 4 + 2 new rows here, 4 more of the parent's
    assert len(c.rows) == 10 and all({"base", "parent", "tuned"} <= set(r) for r in c.rows)
    assert c.parent["name"] == "t/v1" and c.parent["values"]["exact_match"] == pytest.approx(
        100 * sum(r["parent"] == r["expected"] for r in c.rows) / 10)
    gate = c.review["gate"]
    assert gate["against"] == "the parent t/v1"
    worse = c.tuned_ci[c.primary][1] < c.parent["values"][c.primary]
    assert gate["passed"] == (not worse) == child.passed
    listed = listing(runs)
    assert [r["parent"] for r in listed] == [None, "t/v1"]
    diff = compare("t/v1", "t/v2", runs)
    assert (diff["data"]["added"], diff["data"]["edited"], diff["data"]["removed"]) == (10, 5, 3)
    assert diff["settings"]["train.epochs"] == [5, 2]

    # a retrain that unlearns the task is worse than its parent: the gate fails
    flipped = write_jsonl(tmp_path / "v2" / "no.jsonl", [dict(r, completion="no") for r in old])
    write_jsonl(tmp_path / "v2" / "no.heldout.jsonl", yes_rows(6, start=700))
    worse_run = fit(tiny_base, flipped, runs, parent="t/v1", epochs=3, fail_if_worse=True, name="t")
    assert worse_run.comparison.parent["values"]["rouge_l"] == 100.0  # the parent answers yes
    assert not worse_run.passed
    assert "worse than the parent t/v1's 100.0" in worse_run.comparison.review["gate"]["failures"][0]


def test_every_version_writes_a_model_card(tiny_base, tmp_path):
    write_jsonl(tmp_path / "yes.heldout.jsonl", yes_rows(4, start=500))
    run = fit(tiny_base, write_jsonl(tmp_path / "yes.jsonl", yes_rows(24)), tmp_path / "runs", epochs=1)
    card = (run.path / "README.md").read_text()
    header, body = card.split("---\n")[1], card.split("---\n", 2)[2]
    assert f"base_model: {tiny_base}" in header and "library_name: peft" in header and "- tailored" in header
    for section in ("Intended use", "Training data", "Settings", "Evaluation", "Per-slice findings",
                    "Memorisation and forgetting", "Known limits", "Lineage"):
        assert f"## {section}\n" in body
    assert "| rouge_l (primary) |" in body and "parent: none" in body


def ex(text: str, label: str | None = None) -> Example:
    return Example([{"role": "user", "content": text}, {"role": "assistant", "content": label or "ok"}], "f", 1, label)


def test_drift_finds_new_labels_shifted_shares_and_longer_inputs():
    words = "order parcel refund invoice desk motor login account delivery courier".split()
    train = [ex(f"my {words[i % 10]} and {words[(i * 3) % 10]} question", "a" if i % 2 else "b") for i in range(100)]
    same = drift(train, [ex(f"my {words[i % 10]} and {words[(i * 7) % 10]} question", "a" if i % 2 else "b")
                         for i in range(40)], labelled=True)
    assert recommend(same)[0] == "keep" and not same["labels"]["moved"] and same["labels"]["unseen"] == []

    shares = drift(train, [ex(f"my {words[i % 10]} question", "a" if i % 5 else "b") for i in range(40)], True)
    assert shares["labels"]["moved"] == {"a": [50.0, 80.0], "b": [50.0, 20.0]}
    assert recommend(shares)[0] == "retrain"

    unseen = drift(train, [ex("my order question", "c")] * 3 + [ex("my desk question", "a")] * 7, True)
    assert unseen["labels"]["unseen"] == ["c"] and unseen["labels"]["unseen_rows"] == 3
    assert recommend(unseen)[0] == "retrain with review"

    longer = drift(train, [ex(" ".join(f"zebra{j} quantum" for j in range(20)), "a") for _ in range(10)], True)
    assert longer["length"]["shifted"] and longer["vocabulary"]["shifted"]
    assert longer["near_duplicates"]["share"] == 0.0
    assert recommend(longer)[0] == "retrain" and "as long" in recommend(longer)[1]
    assert drift(train, train[:10], True)["near_duplicates"]["share"] == 100.0


@pytest.mark.integration
def test_the_readme_maintenance_cycle_runs_as_written(tmp_path):
    """The exact commands of the README's maintain cycle, on the bundled MiniLM and example emails."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = readme.split("<!-- maintain-cycle -->\n```\n", 1)[1].split("```", 1)[0]
    commands = [shlex.split(line) for line in block.strip().splitlines()]
    assert [c[:2] for c in commands][:4] == [["tailor", "train"], ["tailor", "runs"], ["tailor", "check"],
                                             ["tailor", "train"]]
    (tmp_path / "examples").symlink_to(ROOT / "examples")
    outputs = []
    for command in commands:
        done = subprocess.run([sys.executable, "-m", "tailored.cli", *command[1:]], cwd=tmp_path, text=True,
                              capture_output=True, timeout=900, env={**os.environ, "COLUMNS": "200"})
        assert done.returncode == 0, (command, done.stdout[-2000:], done.stderr[-2000:])
        outputs.append(done.stdout)
    drift_out, retrain_out, compare_out, listed = outputs[2], outputs[3], outputs[4], outputs[6]
    assert "drift against routing/v1 (its production version)" in drift_out
    assert "labels never seen: none" in drift_out
    assert "data against routing/v1: 40 rows added, 0 edited, 0 removed" in retrain_out
    assert "parent routing/v1: accuracy" in retrain_out
    assert "data: 40 rows added, 0 edited, 0 removed" in compare_out
    rows = listing(tmp_path / "runs")
    assert [(r["version"], r["status"], r["tags"], r["parent"]) for r in rows] == [
        (1, "finished", [], None), (2, "finished", ["production"], "routing/v1")]
    assert "routing/v2" in listed and "production" in listed
    assert resolve_run_how("routing", tmp_path / "runs")[0] == tmp_path / "runs" / "routing" / "v2"
