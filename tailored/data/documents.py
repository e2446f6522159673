"""Plain documents as training data: manuals, policies, help pages, learned with the loss on every token.

Chat pairs teach a model how to answer; documents are where the facts are. A document is a `.txt` or
`.md` file (a folder holds several), or a JSONL/CSV/Parquet row with only `text`. Each is tokenised
whole and cut into windows of `chunk_tokens` that overlap by `chunk_overlap`. In every window after a
document's first, the overlapping tokens are context only (no loss), so each token is learned exactly
once and never without what came before it. Nothing is dropped: the last window is short instead.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from tailored.data.audit import Finding, _finding, normalise, personal_data, prompt_key
from tailored.data.encode import IGNORE, Encoded
from tailored.data.formats import Example
from tailored.data.readers import SUFFIXES, Problem, read_rows
from tailored.errors import TailoredError

TEXT_SUFFIXES = (".txt", ".md")


@dataclass
class Document:
    text: str
    source: str
    line: int  # 1 for a whole file; the row's line for a data file


def load_documents(path: str | Path, problems: list[Problem]) -> list[Document]:
    """Every document under `path`; rows that are not documents become entries in `problems`."""
    path = Path(path)
    if path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise TailoredError(f"{path}: no .txt or .md files in this folder — put the documents there")
        return [doc for f in files for doc in load_documents(f, problems)]
    if not path.exists():
        raise TailoredError(f"{path}: file not found — check the --documents path")
    if path.suffix.lower() in TEXT_SUFFIXES:
        try:
            text = path.read_text(encoding="utf-8-sig")
        except UnicodeDecodeError as e:
            problems.append(Problem(str(path), 1, "(file)", f"invalid UTF-8 at byte {e.start}", "save the file as UTF-8"))
            return []
        if not text.strip():
            problems.append(Problem(str(path), 1, "(file)", "the document is empty", "add its text or remove it"))
            return []
        return [Document(text, str(path), 1)]
    docs = []
    for row in read_rows(path, problems):
        value = row.value
        if not isinstance(value, dict) or "text" not in value:
            problems.append(Problem(str(path), row.line, "(row)", "a document row needs a 'text' field",
                                    'write {"text": "…"}, one document per line'))
        elif set(value) != {"text"}:
            other = ", ".join(sorted(set(value) - {"text"}))
            problems.append(Problem(str(path), row.line, "(row)", f"a document row has only 'text'; found {other}",
                                    "remove the other keys, or pass this file as DATA (text+label trains a "
                                    "classifier)"))
        elif not isinstance(value["text"], str) or not value["text"].strip():
            problems.append(Problem(str(path), row.line, "text", "expected non-empty text", "put the document here"))
        else:
            docs.append(Document(value["text"], str(path), row.line))
    return docs


def is_documents(path: str | Path) -> bool:
    """Whether DATA is documents alone: a folder, a .txt/.md file, or a data file whose rows have only `text`."""
    path = Path(path)
    if path.is_dir() or path.suffix.lower() in TEXT_SUFFIXES:
        return True
    if not path.is_file() or path.suffix.lower() not in SUFFIXES:
        return False
    try:
        first = next((row.value for row in read_rows(path, []) if isinstance(row.value, dict)), None)
    except TailoredError:
        return False
    return first is not None and set(first) == {"text"}


def documents_digest(docs: list[Document]) -> str:
    """One sha256 over every document's place and text, for the run's lineage."""
    digest = hashlib.sha256()
    for doc in docs:
        digest.update(f"{doc.source}:{doc.line}\0{doc.text}\0".encode())
    return digest.hexdigest()


def windows(n_tokens: int, size: int, overlap: int) -> list[tuple[int, int, int]]:
    """(start, end, first learned position) of each window over `n_tokens` tokens."""
    if n_tokens <= size:
        return [(0, n_tokens, 0)]
    out, learned = [], 0
    while learned < n_tokens:
        start = max(0, learned - overlap)
        end = min(n_tokens, start + size)
        out.append((start, end, learned))
        learned = end
    return out


def encode_documents(tokenizer, docs: list[Document], size: int, overlap: int) -> list[Encoded]:
    """Each document as windows with labels on every token it learns; the end-of-text token closes it."""
    if not docs:
        return []
    out = []
    encoded = tokenizer.backend_tokenizer.encode_batch([d.text for d in docs], add_special_tokens=False)
    for enc in encoded:
        ids = list(enc.ids) + ([tokenizer.eos_token_id] if tokenizer.eos_token_id is not None else [])
        for start, end, learned in windows(len(ids), size, overlap):
            piece = ids[start:end]
            out.append(Encoded(piece, [IGNORE] * (learned - start) + piece[learned - start:]))
    return out


def _paragraphs(doc: Document) -> list[str]:
    return [p for p in (normalise(block) for block in doc.text.split("\n\n")) if len(p.split()) >= 8]


def audit_documents(docs: list[Document], heldout: list[Example] | None) -> list[Finding]:
    """Repeated paragraphs, personal data, and held-out questions that appear word for word in a document."""
    findings = []
    seen: dict[str, str] = {}
    repeats = []
    for doc in docs:
        for para in _paragraphs(doc):
            if para in seen:
                repeats.append(f"{doc.source}:{doc.line}")
            seen.setdefault(para, doc.source)
    if repeats:
        findings.append(Finding("duplicate", f"{len(repeats)} paragraphs of the documents repeat an earlier one "
                                             f"(e.g. in {repeats[0]}); repeats weigh that text more", [],
                                len(repeats)))
    for doc in docs:  # per document, so the finding can name the file (its line is 1 for a whole file)
        for finding in personal_data([Example([{"role": "user", "content": doc.text}], doc.source, doc.line)]):
            findings.append(Finding("personal-data", f"{doc.source}:{doc.line} contains "
                                    f"{finding.message.split(' contain ', 1)[1]}", [], 1))
    if heldout:
        corpus = "\n".join(normalise(d.text) for d in docs)
        leaked = [ex.line for ex in heldout if len(prompt_key(ex).split()) >= 4 and prompt_key(ex) in corpus]
        if leaked:
            findings.append(_finding("leakage", f"{len(leaked)} held-out questions appear word for word in the "
                                                "documents; their scores would measure memory of that text — "
                                                "rephrase them", leaked))
    return findings
