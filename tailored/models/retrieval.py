"""Passages of the documents found for each question and put before it: at training, evaluation and answer time.

Training on every token of the handbook did not teach the 135M base to recall a page's fact from a
differently worded question (BENCHMARKS.md, "Documents": 2 of 44 at best, 0 of 44 after 20 epochs or
full fine-tuning). A model that small can still copy a fact it is shown. So when a run has --documents
and chat rows, each row's last question is matched against the documents' passages and the closest
`retrieve` of them go into its system message. The FAQ rows teach the model to answer from passages;
at answer time the passages for a new question carry the fact.

Passages are the documents' paragraphs (blocks between blank lines, cut at sentences past
PASSAGE_WORDS words), each with its page and section heading. Matching is by all-MiniLM-L6-v2's
mean-pooled embeddings (the bundled encoder): on the handbook's 44 held-out questions the passage with
the fact was first for 36 and in the top 3 for 41; SQLite's BM25 (FTS5) found it first for 21 and in
the top 3 for 31. The index is an SQLite file in the run folder; the passages are the documents' own
words, nothing is cut from them.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable

import numpy as np

from tailored.atomic import atomic_path
from tailored.data.documents import TEXT_SUFFIXES, Document
from tailored.data.formats import Example
from tailored.errors import TailoredError

INDEX_FILE = "retrieval.sqlite"
ENCODER = "minilm-l6"
PASSAGE_WORDS = 120  # three passages of at most this many words stay near 500 tokens of prompt
HEADER = "Passages from the documents that may help:"

Embed = Callable[[list[str]], np.ndarray]  # texts → unit-length rows


@dataclass
class Passage:
    text: str  # "Page title — Section: paragraph", as the model reads it
    source: str
    line: int  # where the paragraph starts in its file (a data file: the document's row)


def _pieces(body: str, most: int) -> list[str]:
    """`body` as it is, or cut between sentences (between words for one sentence past `most`) into pieces."""
    if len(body.split()) <= most:
        return [body]
    out, words = [], []
    for sentence in re.split(r"(?<=[.!?])\s+", body):
        tokens = sentence.split()
        if words and len(words) + len(tokens) > most:
            out.append(" ".join(words))
            words = []
        while len(tokens) > most:
            out.append(" ".join(tokens[:most]))
            tokens = tokens[most:]
        words += tokens
    return out + ([" ".join(words)] if words else [])


def passages(docs: list[Document], most_words: int = PASSAGE_WORDS) -> list[Passage]:
    """Every paragraph of every document, with its headings (Markdown `#` lines) as its place."""
    out = []
    for doc in docs:
        whole_file = Path(doc.source).suffix.lower() in TEXT_SUFFIXES
        headings: list[str] = []
        for block in re.finditer(r"\S(?:.*?)(?=\n[ \t]*\n|\Z)", doc.text, flags=re.S):
            line = doc.line + doc.text.count("\n", 0, block.start()) if whole_file else doc.line
            lines = block.group(0).strip().splitlines()
            while lines and lines[0].lstrip().startswith("#"):
                level = len(lines[0].lstrip()) - len(lines[0].lstrip().lstrip("#"))
                headings = headings[: level - 1] + [lines.pop(0).lstrip().lstrip("#").strip()]
            body = "\n".join(lines).strip()
            if not body:
                continue
            place = " — ".join(h for h in headings if h)
            for piece in _pieces(body, most_words):
                out.append(Passage(f"{place}: {piece}" if place else piece, doc.source, line))
    return out


def encoder_embed() -> Embed:
    """The bundled all-MiniLM-L6-v2 as an embedder: mean-pooled, as it was trained, and unit length. A question
    past its 256 tokens is matched on its start; the model still reads it whole."""
    from tailored.models.bases import resolve_base
    from tailored.models.sentence_classifier import text_embedder

    embed = text_embedder(resolve_base(ENCODER).path, batch_size=32, max_length=256)
    return lambda texts: embed(texts).numpy()


class Retriever:
    """Passages and their embeddings; `ground` puts the closest ones into a conversation."""

    def __init__(self, items: list[Passage], vectors: np.ndarray, k: int, embed: Embed | None = None):
        self.items, self.vectors, self.k = items, vectors.astype(np.float32), k
        self._embed = embed

    @classmethod
    def build(cls, docs: list[Document], k: int, embed: Embed | None = None) -> "Retriever":
        embed = embed or encoder_embed()
        items = passages(docs)
        return cls(items, embed([p.text for p in items]), k, embed)

    def top(self, questions: list[str]) -> list[list[Passage]]:
        """The `k` passages closest to each question, closest first."""
        if not questions or not self.items:
            return [[] for _ in questions]
        self._embed = self._embed or encoder_embed()
        scores = self._embed(questions) @ self.vectors.T
        order = np.argsort(-scores, axis=1, kind="stable")[:, : self.k]
        return [[self.items[i] for i in row] for row in order]

    def ground(self, conversations: list[list[dict]]) -> list[list[dict]]:
        """Each conversation with the passages for its last user turn at the end of its system message."""
        questions = [next((m["content"] for m in reversed(c) if m["role"] == "user"), "") for c in conversations]
        return [with_passages(c, found) for c, found in zip(conversations, self.top(questions))]

    def ground_examples(self, examples: list[Example]) -> list[Example]:
        """Rows with the passages for their question in the system message; the reply to learn is unchanged."""
        grounded = self.ground([ex.messages for ex in examples])
        return [replace(ex, messages=messages) for ex, messages in zip(examples, grounded)]

    def save(self, run_dir: Path) -> None:
        with atomic_path(Path(run_dir) / INDEX_FILE) as tmp:
            with sqlite3.connect(tmp) as db:
                db.execute("CREATE TABLE settings (key TEXT PRIMARY KEY, value TEXT)")
                db.executemany("INSERT INTO settings VALUES (?, ?)", [("encoder", ENCODER), ("k", str(self.k))])
                db.execute("CREATE TABLE passages (id INTEGER PRIMARY KEY, source TEXT, line INTEGER, text TEXT, "
                           "vector BLOB)")
                db.executemany("INSERT INTO passages VALUES (?, ?, ?, ?, ?)",
                               [(i, p.source, p.line, p.text, v.tobytes())
                                for i, (p, v) in enumerate(zip(self.items, self.vectors))])
            db.close()

    @classmethod
    def open(cls, run_dir: Path, embed: Embed | None = None) -> "Retriever | None":
        """The run's index, or None for a run without one."""
        path = Path(run_dir) / INDEX_FILE
        if not path.exists():
            return None
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            settings = dict(db.execute("SELECT key, value FROM settings"))
            rows = db.execute("SELECT source, line, text, vector FROM passages ORDER BY id").fetchall()
        finally:
            db.close()
        if settings.get("encoder") != ENCODER:
            raise TailoredError(f"{path}: passages indexed with '{settings.get('encoder')}', which this version "
                                f"does not read — retrain the run")
        vectors = np.stack([np.frombuffer(r[3], dtype=np.float32) for r in rows]) if rows else np.zeros((0, 384))
        return cls([Passage(r[2], r[0], r[1]) for r in rows], vectors, int(settings["k"]), embed)


def ground_prepared(prep, k: int, embed: Embed | None = None) -> None:
    """--retrieve: index the documents' passages and put them into every chat row the run trains and validates
    on (`prep`, a data.prepare.Prepared). The rows as written stay in `prep.train` for the lineage; held-out
    rows stay as written too and are grounded when asked, so a parent run is asked with its own passages."""
    if not (k and prep.documents and prep.train_examples):
        return
    prep.retriever = Retriever.build(prep.documents, k, embed)
    prep.train_examples = prep.retriever.ground_examples(prep.train_examples)
    prep.valid_examples = prep.retriever.ground_examples(prep.valid_examples)
    prep.mixed = prep.retriever.ground_examples(prep.mixed)  # a general question meets passages too at answer time


def with_passages(conversation: list[dict], found: list[Passage]) -> list[dict]:
    """The conversation with `found` numbered at the end of its system message (a new one if it had none); one
    that already carries passages is left as it is."""
    if not found or grounded(conversation):
        return list(conversation)
    block = HEADER + "\n" + "\n".join(f"[{n}] {p.text}" for n, p in enumerate(found, 1))
    if conversation and conversation[0]["role"] == "system":
        return [{**conversation[0], "content": f"{conversation[0]['content']}\n\n{block}"}, *conversation[1:]]
    return [{"role": "system", "content": block}, *conversation]


def grounded(conversation: list[dict]) -> bool:
    """Whether the conversation's system message already ends with a block of passages."""
    system = conversation[0]["content"] if conversation and conversation[0]["role"] == "system" else ""
    return system.startswith(HEADER + "\n") or f"\n\n{HEADER}\n" in system


def passages_in(conversation: list[dict]) -> str | None:
    """The numbered passages a grounded conversation was asked with, for the report; None if it has none."""
    if not grounded(conversation):
        return None
    return conversation[0]["content"].rsplit(HEADER + "\n", 1)[1]
