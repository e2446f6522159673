"""Documents as training data: loading, windows with overlap, the audit, and a run that learns them."""

from __future__ import annotations

import json

import pytest

import tailored
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.data.documents import Document, audit_documents, encode_documents, load_documents, windows
from tailored.data.encode import IGNORE
from tailored.data.formats import Example
from tailored.errors import TailoredError
from tailored.evaluation.metrics import contains_fact, fact_scores
from tests.conftest import build_tokenizer, write_jsonl, yes_rows

DOC = "the answer is ok please help reset password billing the answer is no " * 6


def test_windows_by_hand_learn_every_token_once():
    assert windows(3, 4, 1) == [(0, 3, 0)]
    assert windows(10, 4, 1) == [(0, 4, 0), (3, 7, 4), (6, 10, 7)]
    for n, size, overlap in [(10, 4, 1), (100, 16, 4), (17, 16, 0), (33, 16, 7)]:
        learned = [p for start, end, first in windows(n, size, overlap) for p in range(first, end)]
        assert learned == list(range(n))  # each position once, in order
        assert all(end - start <= size for start, end, _ in windows(n, size, overlap))


def test_document_windows_carry_loss_on_every_token_once_and_end_with_eos():
    tok = build_tokenizer()
    ids = tok(DOC, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    chunks = encode_documents(tok, [Document(DOC, "d.md", 1)], size=16, overlap=4)
    assert len(chunks) > 2 and all(len(c.input_ids) <= 16 for c in chunks)
    assert chunks[0].labels == chunks[0].input_ids  # the first window is learned whole
    for chunk in chunks[1:]:  # later ones start with 4 tokens of context
        assert chunk.labels[:4] == [IGNORE] * 4 and chunk.labels[4:] == chunk.input_ids[4:]
    assert [t for c in chunks for t in c.labels if t != IGNORE] == ids
    assert chunks[-1].input_ids[-1] == tok.eos_token_id
    short = encode_documents(tok, [Document("hello yes", "s.txt", 1)], size=16, overlap=4)
    assert len(short) == 1 and short[0].labels == short[0].input_ids


def test_documents_load_from_a_folder_and_from_text_rows(tmp_path):
    folder = tmp_path / "docs"
    (folder / "sub").mkdir(parents=True)
    (folder / "a.md").write_text("# Title\n\nBody text.", encoding="utf-8")
    (folder / "sub" / "b.txt").write_text("More text.", encoding="utf-8")
    (folder / "notes.json").write_text("{}", encoding="utf-8")  # not a document type: not read
    problems = []
    docs = load_documents(folder, problems)
    assert [d.source for d in docs] == [str(folder / "a.md"), str(folder / "sub" / "b.txt")] and not problems

    rows = write_jsonl(tmp_path / "docs.jsonl", [{"text": "First page."}, {"text": "x", "label": "a"}, {"text": " "},
                                                 {"body": "no"}, {"text": "Last page."}])
    docs = load_documents(rows, problems)
    assert [(d.text, d.line) for d in docs] == [("First page.", 1), ("Last page.", 5)]
    assert [(p.line, p.field) for p in problems] == [(2, "(row)"), (3, "text"), (4, "(row)")]
    assert "only 'text'; found label" in str(problems[0]) and str(problems[0]).startswith(f"{rows}:2: (row):")
    with pytest.raises(TailoredError, match="no .txt or .md"):
        (tmp_path / "empty").mkdir()
        load_documents(tmp_path / "empty", [])


def test_document_audit_finds_repeats_personal_data_and_leaked_questions():
    para = "Deleted projects stay in the Bin for sixty days and can be restored from there."
    docs = [Document(f"{para}\n\nWrite to help@example.com for more.", "a.md", 1), Document(para, "b.md", 1)]
    asked = Example([{"role": "user", "content": "Deleted projects stay in the Bin for how long?"},
                     {"role": "assistant", "content": "60 days"}], "h.jsonl", 3)
    fresh = Example([{"role": "user", "content": "How long can I restore a project?"},
                     {"role": "assistant", "content": "60 days"}], "h.jsonl", 4)
    found = {f.kind: f for f in audit_documents(docs, [asked, fresh])}
    assert found["duplicate"].count == 1 and "b.md" in found["duplicate"].message
    assert found["personal-data"].message.startswith("a.md:1 contains email addresses")
    assert "leakage" not in found  # "deleted projects stay in the bin for how long" is not in the text
    leaked = Example([{"role": "user", "content": "Deleted projects stay in the Bin"},
                      {"role": "assistant", "content": "?"}], "h.jsonl", 7)
    found = {f.kind: f for f in audit_documents(docs, [leaked, fresh])}
    assert found["leakage"].lines == [7]


def test_fact_recall_by_hand():
    assert contains_fact("Passwords need at least 12 characters.", "12 characters")
    assert contains_fact("It's $9 a month.", "$9") and not contains_fact("It's $99 a month.", "$9")
    assert contains_fact("Press Shift+N.", "shift n") and not contains_fact("Press N.", "shift n")
    assert contains_fact("eighteen... no, 18 percent", ["18%", "18 percent"])
    assert not contains_fact("We take 180 days", "18")
    assert contains_fact("z = -0.5, so", "-0.5") and not contains_fact("z = 0.5", "-0.5")  # the sign is the answer
    assert contains_fact("P(A) = 3/13.", "3/13") and not contains_fact("P(A) = 3/12", "3/13")
    assert contains_fact("so x̄ = 4", "x̄") and not contains_fact("so x = 4", "x̄")
    values, intervals = fact_scores(["It is 14 days.", "About two weeks.", "14 days", "No idea"],
                                    ["14 days", "14 days", ["fourteen days", "14 days"], "14 days"])
    assert values["fact_recall"] == 50.0  # rows 1 and 3 of 4
    low, high = intervals["fact_recall"]
    assert 0.0 <= low < 50.0 < high <= 100.0


def _doc_loss(model, tok, text: str) -> float:
    import torch

    ids = torch.tensor([tok(text, add_special_tokens=False)["input_ids"]])
    with torch.no_grad():
        return float(model(input_ids=ids, labels=ids).loss)


def test_a_run_with_documents_learns_their_text_and_scores_facts(tiny_base, tmp_path):
    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(30))
    heldout = [{"prompt": f"question number {i} please", "completion": "yes", "fact": "yes"} for i in range(500, 504)]
    write_jsonl(tmp_path / "yes.heldout.jsonl", heldout)
    docs = tmp_path / "pages"
    docs.mkdir()
    (docs / "manual.md").write_text(DOC, encoding="utf-8")
    cfg = TrainConfig(base=str(tiny_base), epochs=3, learning_rate=1e-2, batch_size=8)
    runs = []
    for name, documents in (("with", str(docs)), ("without", None)):
        data_cfg = DataConfig(documents=documents, chunk_tokens=32, chunk_overlap=8, guard=0)
        runs.append(tailored.train(data, cfg, data_cfg, EvalConfig(max_new_tokens=4),
                                   RunConfig(runs_dir=str(tmp_path / "runs"), name=name), quiet=True))
    with_docs, without = runs
    check = json.loads((with_docs.path / "check.json").read_text())["profile"]
    tok = build_tokenizer()
    n_windows = len(encode_documents(tok, [Document(DOC, "m", 1)], 32, 8))
    assert check["documents"] == 1 and check["document_chunks"] == n_windows > 1
    assert check["train_rows"] == 27 + n_windows  # 30 rows less the validation split, plus the windows
    lineage = json.loads((with_docs.path / "run.json").read_text())
    assert lineage["data"]["documents"]["path"] == str(docs / "manual.md")
    assert len(lineage["data"]["documents"]["sha256"]) == 64
    assert "documents" not in json.loads((without.path / "run.json").read_text())["data"]
    # the run keeps a copy of the documents it learned from, as it does of its training file
    assert (with_docs.path / "documents" / "manual.md").read_text(encoding="utf-8") == DOC
    assert not (without.path / "documents").exists()
    # the documents' tokens carried loss: the run that read them predicts their text far better (by 2.4 nats a
    # token when written; were the windows masked out, the two runs would sit within noise of each other)
    learned = _doc_loss(tailored.load(with_docs.path).model, tok, DOC)
    not_learned = _doc_loss(tailored.load(without.path).model, tok, DOC)
    assert learned < not_learned - 1.0
    metrics = json.loads((with_docs.path / "metrics.json").read_text())["eval"]
    assert metrics["primary"] == "fact_recall" and "fact_recall" in metrics["tuned_ci"]


def test_documents_are_refused_where_they_cannot_train(tiny_base, tmp_path):
    pairs = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"q{i}", "chosen": "yes", "rejected": "no"} for i in range(12)])
    (tmp_path / "d.md").write_text(DOC, encoding="utf-8")
    with pytest.raises(TailoredError, match="--documents adds supervised rows"):
        tailored.train(pairs, TrainConfig(base=str(tiny_base), method="dpo", max_steps=1),
                       DataConfig(documents=str(tmp_path / "d.md")), EvalConfig(),
                       RunConfig(runs_dir=str(tmp_path / "runs")), quiet=True)


def test_data_that_is_documents_alone_is_recognised(tmp_path):
    from tailored.data.documents import is_documents

    (tmp_path / "folder").mkdir()
    (tmp_path / "page.md").write_text("# Page", encoding="utf-8")
    assert is_documents(tmp_path / "folder") and is_documents(tmp_path / "page.md")
    assert is_documents(write_jsonl(tmp_path / "docs.jsonl", [{"text": "a page"}]))
    assert not is_documents(write_jsonl(tmp_path / "labels.jsonl", [{"text": "a", "label": "b"}]))
    assert not is_documents(write_jsonl(tmp_path / "chat.jsonl", yes_rows(2)))
    assert not is_documents(tmp_path / "missing.jsonl")


def test_documents_alone_train_validate_on_their_own_windows_and_answer_held_out_questions(tiny_base, tmp_path):
    docs = tmp_path / "pages"
    docs.mkdir()
    for i in range(3):
        (docs / f"page{i}.md").write_text(DOC, encoding="utf-8")
    heldout = write_jsonl(tmp_path / "questions.jsonl", [{"prompt": "the answer is", "completion": "ok", "fact": "ok"}])
    run = tailored.train(docs, TrainConfig(base=str(tiny_base), epochs=2, learning_rate=1e-2, batch_size=4),
                         DataConfig(heldout=str(heldout), chunk_tokens=32, chunk_overlap=8, guard=0),
                         EvalConfig(max_new_tokens=4, forgetting=False), RunConfig(runs_dir=str(tmp_path / "runs")),
                         quiet=True)
    assert run.path == tmp_path / "runs" / "pages" / "v1"
    profile = json.loads((run.path / "check.json").read_text())["profile"]
    windows_per_page = len(encode_documents(build_tokenizer(), [Document(DOC, "m", 1)], 32, 8))
    every = 3 * windows_per_page
    assert profile["format"] == "documents" and profile["documents"] == 3
    step = min(10, every)  # every 10th window validates, and at least one
    assert profile["validation_rows"] == every // step >= 1 and profile["document_chunks"] == every - every // step
    assert json.loads((run.path / "run.json").read_text())["data"]["train"]["sha256"]  # the folder's digest
    assert sorted(p.name for p in (run.path / "documents").iterdir()) == ["page0.md", "page1.md", "page2.md"]
    metrics = json.loads((run.path / "metrics.json").read_text())
    assert metrics["train"]["best_valid_loss"] is not None  # validated on held-back windows
    assert metrics["eval"]["primary"] == "fact_recall" and len(metrics["eval"]["rows"]) == 1


def test_voice_scores_every_generated_reply_with_the_house_classifier(tiny_base, tiny_encoder, tmp_path):
    import csv

    voice_rows = tmp_path / "voice.csv"
    with open(voice_rows, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["text", "label"])
        writer.writerows([(f"yes yes the answer is yes {i}", "house") for i in range(20)]
                         + [(f"no please help billing no {i}", "other") for i in range(20)])
    runs = str(tmp_path / "runs")
    voice = tailored.train(voice_rows, TrainConfig(task="classify", base=str(tiny_encoder), epochs=3,
                                                   learning_rate=3e-3, batch_size=8),
                           run_cfg=RunConfig(runs_dir=runs, name="voice", evaluate=False), quiet=True)
    data = write_jsonl(tmp_path / "yes.jsonl", yes_rows(30))
    write_jsonl(tmp_path / "yes.heldout.jsonl", yes_rows(4, start=500))
    cfg = TrainConfig(base=str(tiny_base), epochs=2, learning_rate=1e-2, batch_size=8)
    run = tailored.train(data, cfg, DataConfig(guard=0), EvalConfig(max_new_tokens=4, forgetting=False, voice="voice"),
                         RunConfig(runs_dir=runs), quiet=True)
    evaluation = json.loads((run.path / "metrics.json").read_text())["eval"]
    assert evaluation["primary"] == "voice" and "voice" in evaluation["tuned_ci"]
    house = tailored.load(voice.path).probability([r["tuned"] for r in evaluation["rows"]], "house")
    assert evaluation["tuned"]["voice"] == pytest.approx(100 * sum(house) / len(house))
    # a run that cannot score the voice is refused before any training
    with pytest.raises(TailoredError, match="not a classifier with the label 'house'"):
        tailored.train(data, cfg, DataConfig(guard=0), EvalConfig(voice=str(run.path)), RunConfig(runs_dir=runs),
                       quiet=True)
    assert not (tmp_path / "runs" / "yes" / "v2").exists()


def test_the_bundled_handbook_holds_every_held_out_fact_that_no_faq_answer_gives():
    """The handbook example measures learning from documents only if its held-out facts are in the pages alone."""
    from pathlib import Path

    folder = Path(__file__).resolve().parent.parent / "examples" / "handbook"
    pages = " ".join(p.read_text(encoding="utf-8") for p in sorted((folder / "pages").glob("*.md")))
    assert len(pages.split()) >= 5000  # ten pages or more, as the example promises
    faq = [json.loads(line) for line in (folder / "faq.jsonl").read_text(encoding="utf-8").splitlines()]
    heldout = [json.loads(line) for line in (folder / "faq.heldout.jsonl").read_text(encoding="utf-8").splitlines()]
    assert len(heldout) >= 40
    faq_questions = {r["messages"][1]["content"].lower() for r in faq}
    for row in heldout:
        assert contains_fact(pages, row["fact"]), row["fact"]
        assert row["messages"][1]["content"].lower() not in faq_questions
        # no FAQ answer states it, so a right answer cannot come from the FAQ pairs
        assert not [r for r in faq if contains_fact(r["messages"][2]["content"], row["fact"])], row["fact"]
