"""--retrieve: the documents' passages, found for each question and put into its system message."""

from __future__ import annotations

import json
import re
import zlib

import numpy as np

import tailored
from tailored.evaluation import evidence
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.data.documents import Document
from tailored.models.retrieval import HEADER, INDEX_FILE, Passage, Retriever, passages, with_passages
from tests.conftest import write_jsonl

PAGE = """# Plans

Starter is free for 4 members.
Crew costs 9 dollars.

## Refunds

Refunds are given within 14 days.

- cards accepted
- no PayPal
"""


def bag_of_words(texts: list[str]) -> np.ndarray:
    """A stand-in encoder: words hashed into 4096 buckets, unit length. Shared words make texts close."""
    out = np.zeros((len(texts), 4096), dtype=np.float32)
    for row, text in enumerate(texts):
        for word in re.findall(r"[a-z0-9]+", text.lower()):
            out[row, zlib.crc32(word.encode()) % 4096] += 1
    return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-9)


def test_passages_are_paragraphs_with_their_headings_and_lines():
    found = passages([Document(PAGE, "pages/plans.md", 1)])
    assert [(p.text, p.line) for p in found] == [
        ("Plans: Starter is free for 4 members.\nCrew costs 9 dollars.", 3),
        ("Plans — Refunds: Refunds are given within 14 days.", 8),
        ("Plans — Refunds: - cards accepted\n- no PayPal", 10)]
    # a row of a data file keeps its row's line; a new page title replaces the section heading
    row = passages([Document("# A\n\none\n\n## B\n\ntwo\n\n# C\n\nthree", "docs.jsonl", 7)])
    assert [(p.text, p.line) for p in row] == [("A: one", 7), ("A — B: two", 7), ("C: three", 7)]


def test_a_long_paragraph_is_cut_between_sentences_and_keeps_every_word():
    sentences = [f"Sentence {i} has " + "word " * 30 + "end." for i in range(9)]  # 34 words each
    body = " ".join(sentences)
    found = passages([Document(body, "long.txt", 1)], most_words=120)
    assert [len(p.text.split()) for p in found] == [102, 102, 102]  # three sentences each; a fourth would pass 120
    assert " ".join(p.text for p in found).split() == body.split()  # nothing dropped or repeated
    one_sentence = passages([Document("w " * 250, "one.txt", 1)], most_words=120)
    assert [len(p.text.split()) for p in one_sentence] == [120, 120, 10]


def test_passages_go_at_the_end_of_the_system_message():
    found = [Passage("A: one", "a.md", 1), Passage("B: two", "b.md", 3)]
    asked = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q"}]
    assert with_passages(asked, found) == [
        {"role": "system", "content": f"Be brief.\n\n{HEADER}\n[1] A: one\n[2] B: two"}, asked[1]]
    assert with_passages(asked[1:], found[:1]) == [{"role": "system", "content": f"{HEADER}\n[1] A: one"}, asked[1]]
    assert with_passages(asked, []) == asked
    once = with_passages(asked, found)
    assert with_passages(once, found) == once  # asked twice (a validation row, a parent's answer): grounded once


def test_the_closest_passages_are_found_and_the_index_reads_back_the_same(tmp_path):
    docs = [Document(PAGE, "plans.md", 1)]
    retriever = Retriever.build(docs, k=1, embed=bag_of_words)
    assert [p[0].text for p in retriever.top(["when are refunds given", "is paypal accepted"])] == [
        "Plans — Refunds: Refunds are given within 14 days.", "Plans — Refunds: - cards accepted\n- no PayPal"]
    grounded = retriever.ground([[{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "x"},
                                  {"role": "user", "content": "how much does crew cost"}]])[0]
    assert grounded[0]["content"].endswith("[1] Plans: Starter is free for 4 members.\nCrew costs 9 dollars.")
    assert grounded[1:] == [{"role": "user", "content": "earlier"}, {"role": "assistant", "content": "x"},
                            {"role": "user", "content": "how much does crew cost"}]
    retriever.save(tmp_path)
    again = Retriever.open(tmp_path, embed=bag_of_words)
    assert again.k == 1 and again.items == retriever.items and np.array_equal(again.vectors, retriever.vectors)
    assert again.ground([[{"role": "user", "content": "paypal?"}]]) == retriever.ground([[{"role": "user",
                                                                                            "content": "paypal?"}]])
    assert Retriever.open(tmp_path / "elsewhere") is None


def test_a_run_with_documents_answers_every_question_with_its_passages(tiny_base, tmp_path, monkeypatch):
    system = "You answer about Orbitask."
    rows = [{"messages": [{"role": "system", "content": system}, {"role": "user", "content": f"question {i} please"},
                          {"role": "assistant", "content": "yes"}]} for i in range(20)]
    data = write_jsonl(tmp_path / "faq.jsonl", rows)
    write_jsonl(tmp_path / "faq.heldout.jsonl", [{"messages": [{"role": "system", "content": system},
                                                               {"role": "user", "content": "When are refunds given?"},
                                                               {"role": "assistant", "content": "within 14 days"}],
                                                  "fact": "14 days"}])
    (tmp_path / "plans.md").write_text(PAGE, encoding="utf-8")
    evaluated, compare = [], evidence.compare
    monkeypatch.setattr("tailored.evaluation.evidence.compare", lambda model, tok, rows, *a, **kw: evaluated.append(rows)
                        or compare(model, tok, rows, *a, **kw))
    runs = []
    for name, k in (("grounded", 2), ("plain", 0)):
        runs.append(tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=2, batch_size=8),
                                   DataConfig(documents=str(tmp_path / "plans.md"), retrieve=k, guard=0),
                                   EvalConfig(max_new_tokens=2, forgetting=False),
                                   RunConfig(runs_dir=str(tmp_path / "runs"), name=name), quiet=True))
    grounded, plain = runs
    # the held-out question was asked with its passages, as the run will be asked, and only by the grounded run
    assert "[1] Plans — Refunds: Refunds are given within 14 days." in evaluated[0][0].prompt[0]["content"]
    assert evaluated[1][0].prompt[0]["content"] == system
    # ...and the report shows the passages beside the answers
    row = json.loads((grounded.path / "metrics.json").read_text())["eval"]["rows"][0]
    assert row["passages"].startswith("[1] Plans — Refunds: Refunds are given within 14 days.\n[2] ")
    assert "asked with these passages" in (grounded.path / "report.html").read_text()
    assert "passages" not in json.loads((plain.path / "metrics.json").read_text())["eval"]["rows"][0]
    assert (grounded.path / INDEX_FILE).exists() and not (plain.path / INDEX_FILE).exists()
    # the system prompt `predict` adds is the one the rows were written with, not one row's passages
    assert json.loads((grounded.path / "run.json").read_text())["task"]["system_prompt"] == system
    assert "retrieval.sqlite" in (grounded.path / "README.md").read_text()

    asked = []
    monkeypatch.setattr("tailored.tuned.generate", lambda model, tok, conversations, *a: asked.extend(conversations)
                        or ["ok"] * len(conversations))
    tuned = tailored.load(grounded.path, engine="torch")
    assert tuned.generate("When are refunds given?") == "ok"
    assert asked[0][0]["content"].startswith(system + "\n\n" + HEADER + "\n[1] ")
    assert "Refunds are given within 14 days." in asked[0][0]["content"]  # the real encoder found it
    assert asked[0][1] == {"role": "user", "content": "When are refunds given?"}
    tailored.load(plain.path, engine="torch").generate("When are refunds given?")
    assert asked[1] == [{"role": "system", "content": system}, {"role": "user", "content": "When are refunds given?"}]
    # a message list is asked as the server asks it: the run's system prompt first unless it brings its own
    asked.clear()
    assert tuned.generate([{"role": "user", "content": "When are refunds given?"}]) == "ok"
    assert asked[0][0]["role"] == "system" and asked[0][0]["content"].startswith(system + "\n\n" + HEADER)
    tuned.generate([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Refunds?"}])
    assert asked[1][0]["content"].startswith("Be brief.") and system not in asked[1][0]["content"]


def test_the_server_asks_a_run_with_documents_with_its_passages(tiny_base, tmp_path, monkeypatch):
    from tailored.server.pool import Pool
    from tests.test_server import Server, ask

    data = write_jsonl(tmp_path / "faq.jsonl", [{"prompt": f"question number {i} please", "completion": "yes"}
                                                for i in range(20)])
    (tmp_path / "plans.md").write_text("# Plans\n\nStarter is free for 4 members.\n\nRefunds are given within 14 "
                                       "days.\n", encoding="utf-8")
    tailored.train(data, TrainConfig(base=str(tiny_base), max_steps=2, batch_size=8),
                   DataConfig(documents=str(tmp_path / "plans.md"), guard=0), EvalConfig(),
                   RunConfig(runs_dir=str(tmp_path / "runs"), name="docs", evaluate=False), quiet=True)
    texts, submit = [], Pool.submit
    monkeypatch.setattr(Pool, "submit", lambda self, job: texts.append(job.text) or submit(self, job))
    server = Server(tmp_path / "runs", runs=("docs",))
    try:
        ask(server.client(), "docs", text="When are refunds given?")
        ask(server.client(), "base", text="When are refunds given?")
    finally:
        server.stop()
    docs, base = texts[-2:]  # the server's own warm-up job comes first
    assert f"{HEADER}\n[1] Plans: Refunds are given within 14 days.\n[2] Plans: Starter is free" in docs
    assert "When are refunds given?" in base and HEADER not in base  # the base was not trained with passages, and is asked as it is
