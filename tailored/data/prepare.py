"""Everything we can find wrong with the data before a model loads, collected and reported together.

`prepare` is shared by `tailor check` and `tailor train`, so both see exactly the same problems.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from tailored.config import DataConfig
from tailored.data import Dataset, Example, Problem, load_dataset, split_train_valid
from tailored.data.audit import MIN_EXAMPLES, Finding, audit
from tailored.data.documents import (Document, audit_documents, documents_digest, encode_documents, is_documents,
                                     load_documents)
from tailored.data.encode import IGNORE, Encoded, Labelled, Pair, TemplateError, encode_labelled, encode_many
from tailored.data.formats import PREFERENCE, TASK_PROMPT, attach_task_prompt
from tailored.errors import DataError, TailoredError

# SmolLM2-135M LoRA on 2 CPU cores trained `make demo` at 632 tokens/s with bf16 autocast (a CPU with native
# bf16, README) and at 163 tokens/s in fp32 (a CPU without it, 2026-12-02); other bases are scaled by
# parameter count. An estimate, printed as one.
TOKENS_PER_SECOND_135M = {True: 630, False: 160}


@dataclass
class Prepared:
    """Data ready to train on, and everything found on the way."""

    train: Dataset | None
    train_examples: list[Example]
    valid_examples: list[Example]
    heldout: Dataset | None
    valid_source: str = "split"
    errors: list[Problem] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)
    train_encoded: list[Encoded | Labelled] = field(default_factory=list)
    valid_encoded: list[Encoded | Labelled] = field(default_factory=list)
    shown: list[Encoded] = field(default_factory=list)  # encodings aligned with train_examples, for --show
    context: int = 2048  # the base's context window, read once by `prepare`
    mixed: list[Example] = field(default_factory=list)  # general rows from --mix, trained on with the task rows
    documents: list[Document] = field(default_factory=list)  # --documents: learned on every token, with the rows
    document_chunks: int = 0  # their windows, in train_encoded after the task rows (and --mix's)
    router: object = None  # a guarded LoRA run's models.router.Router, fitted before training (guard.fit_router)
    routing: dict | None = None  # what the router's check on the validation rows found
    retriever: object = None  # --retrieve: the documents' passages, in every training and validation prompt
    guard_rows: int = 0  # the base's own answers to general requests, appended to train_encoded (the guard)
    task_prompt: str | None = None  # set when tailored gave the rows its own system prompt (`give_task_prompt`)
    # Problems with the data as a whole (too few examples): also in `errors`, but --skip-invalid, which
    # drops bad rows, cannot skip these.
    refusals: list[Problem] = field(default_factory=list)

    def raise_errors(self, skip_invalid: bool) -> None:
        if self.refusals:
            raise DataError(self.refusals)
        if self.errors and not skip_invalid:
            raise DataError(self.errors)
        if not self.train_encoded:
            raise DataError(self.errors or [Problem(str(self.train.path if self.train else "?"), 1, "(file)",
                                                    "nothing left to train on", "add examples")])

    @property
    def system_prompt(self) -> str | None:
        """The system message every training row starts with, if they all share one (tailored's TASK_PROMPT
        included). The run records it, and `predict`, chat and the server add it to a request that has none,
        so the tuned model is asked the way it was trained."""
        rows = self.train.examples if self.train else []  # as written: --retrieve's passages are not the prompt
        if not rows:  # documents alone: no turns at all
            return None
        firsts = Counter(ex.messages[0]["content"] if ex.messages[0]["role"] == "system" else None for ex in rows)
        (prompt, count), = firsts.most_common(1)
        return prompt if count == len(rows) else None

    @property
    def own_system_prompt(self) -> str | None:
        """`system_prompt` where it is the user's own, not the TASK_PROMPT tailored gave bare rows."""
        prompt = self.system_prompt
        return prompt if prompt != self.task_prompt else None

    @property
    def _alone(self) -> bool:
        return bool(self.train and self.train.format == "documents")

    def profile(self, n_params: int | None = None, epochs: int | None = None, bf16: bool | None = None) -> dict:
        """Counts, lengths and labels; with `n_params` and `epochs`, a training-time estimate for 2 CPU cores
        (in bf16 where this CPU computes it natively, unless `bf16` says)."""
        task = self.train_encoded[: len(self.train_encoded) - self.guard_rows]  # the guard's rows come last
        lengths = sorted(len(e.input_ids) for e in task)
        profile = {
            "format": self.train.format if self.train else None,
            # documents alone: each document is a row
            "rows": len(self.train.examples) + len(self.train.problems) + len(self.documents) * self._alone
            if self.train else 0,
            "valid_rows": len(self.train.examples) + len(self.documents) * self._alone if self.train else 0,
            "train_rows": len(self.train_encoded) - self.guard_rows,  # the user's rows (and --mix's)
            "validation_rows": len(self.valid_encoded),
            "validation_source": self.valid_source,
            "heldout_rows": len(self.heldout.examples) if self.heldout else 0,
            "mixed_rows": len(self.mixed),
            "documents": len(self.documents),
            "document_chunks": self.document_chunks,
            "guard_rows": self.guard_rows,
            "errors": len(self.errors),
            "warnings": len(self.findings),
        }
        if self.task_prompt:  # said wherever the profile is: `tailor check`, the plan, check.json
            profile["system_prompt"] = f"tailored's own, as no row has one: {self.task_prompt}"
        if lengths:
            p95 = lengths[min(len(lengths) - 1, math.ceil(0.95 * len(lengths)) - 1)]
            profile["tokens_per_example"] = {"min": lengths[0], "median": statistics.median(lengths), "p95": p95,
                                             "max": lengths[-1]}
            profile["total_tokens"] = sum(lengths)
            profile["trainable_tokens"] = sum(e.trainable for e in task)
        if self.train and self.train.labels:
            counts = {label: 0 for label in self.train.labels}
            for ex in self.train_examples:
                counts[ex.label] = counts.get(ex.label, 0) + 1
            profile["labels"] = counts
        if lengths and n_params and epochs:
            if bf16 is None:  # asked of the CPU only here, so the data layer loads no torch until an estimate needs it
                import torch

                from tailored.device import choose_bf16

                bf16 = choose_bf16(None, torch.device("cpu"))
            speed = TOKENS_PER_SECOND_135M[bf16] * 135e6 / n_params
            profile["estimated_training_minutes"] = round(sum(lengths) * epochs / speed / 60, 1)
            profile["estimate_basis"] = (f"{epochs} epochs at ~{speed:.0f} tokens/s "
                                         f"(2 CPU cores, {'bf16' if bf16 else 'fp32: this CPU has no native bf16'})")
        return profile


def find_heldout(data: Path) -> Path | None:
    """NAME.heldout.EXT beside NAME.EXT, the layout the bundled examples use."""
    sibling = data.with_name(f"{data.stem}.heldout{data.suffix}")
    return sibling if sibling.exists() and sibling != data else None


def _load(path, errors: list[Problem], labels: list[str] | None = None) -> Dataset | None:
    """Load keeping every bad row as an error instead of stopping at the first file."""
    try:
        ds = load_dataset(path, labels=labels, skip_invalid=True)
    except DataError as e:  # no usable row at all
        errors.extend(e.problems)
        return None
    errors.extend(ds.problems)
    return ds


def load_splits(data: str | Path, cfg: DataConfig, seed: int) -> Prepared:
    if is_documents(data):
        return documents_only(data, cfg)
    errors: list[Problem] = []
    train = _load(data, errors)
    labels = train.labels if train else None
    valid = _load(cfg.valid, errors, labels) if cfg.valid else None
    heldout_path = cfg.heldout or find_heldout(Path(data))
    heldout = _load(heldout_path, errors, labels) if heldout_path else None
    if train is None:
        return Prepared(None, [], [], heldout, errors=errors)
    refusals = []
    if len(train.examples) < MIN_EXAMPLES:
        refusals.append(Problem(str(data), 1, "(file)", f"only {len(train.examples)} usable examples; at least "
                                                        f"{MIN_EXAMPLES} are needed to train and validate",
                                "add examples (100+ gives reliable gains)"))
        errors.append(refusals[-1])
    if cfg.valid:
        train_examples, valid_examples = train.examples, valid.examples if valid else []
        source = str(cfg.valid)
    else:
        train_examples, valid_examples = split_train_valid(train.examples, cfg.valid_fraction, seed)
        source = f"split ({cfg.valid_fraction:.0%} of {Path(data).name}, seed {seed})"
    prep = Prepared(train, train_examples, valid_examples, heldout, source, errors, refusals=refusals)
    prep.findings = audit(train.examples, train.labels, train_examples, valid_examples,
                          heldout.examples if heldout else None)
    if cfg.mix:
        prep.mixed = mix_rows(cfg, len(train_examples), seed, errors, prep.findings)
    if cfg.documents:
        prep.documents = load_documents(cfg.documents, errors)
        prep.findings += audit_documents(prep.documents, heldout.examples if heldout else None)
    return prep


def give_task_prompt(prep: Prepared) -> None:
    """TASK_PROMPT for chat data none of whose training rows has a system prompt, on the training,
    validation and held-out rows alike, so the run is evaluated, and answers, as it was trained.

    Called when the guard is on: its replayed general conversations carry no system prompt, and the
    prompt is what tells the task's rows from them. Rows with a system prompt of their own keep theirs.
    """
    rows = prep.train.examples if prep.train else []
    if not rows or prep.train.labels or prep.train.format in PREFERENCE \
            or any(ex.messages[0]["role"] == "system" for ex in rows):
        return
    for examples in (rows, prep.valid_examples, prep.heldout.examples if prep.heldout else []):
        attach_task_prompt(examples)
    prep.task_prompt = TASK_PROMPT


def documents_only(data: str | Path, cfg: DataConfig) -> Prepared:
    """DATA that is documents alone (continued pre-training): no chat rows; validation is every
    1/valid_fraction-th window of the documents (`encode_all`), or --valid's rows."""
    if cfg.documents:
        raise TailoredError(f"{data} holds documents, and so does --documents {cfg.documents}: pass chat rows as "
                            "DATA with --documents, or the documents alone")
    if cfg.mix:
        raise TailoredError("--mix adds general chat rows to chat rows; documents alone train without it")
    errors: list[Problem] = []
    docs = load_documents(data, errors)
    valid = _load(cfg.valid, errors) if cfg.valid else None
    heldout_path = cfg.heldout or (None if Path(data).is_dir() else find_heldout(Path(data)))
    heldout = _load(heldout_path, errors) if heldout_path else None
    train = Dataset(str(data), "documents", [], documents_digest(docs))
    source = str(cfg.valid) if cfg.valid else f"1 window in {round(1 / cfg.valid_fraction)} of the documents, at least one"
    prep = Prepared(train, [], valid.examples if valid else [], heldout, source, errors, documents=docs)
    if not docs:
        prep.refusals.append(Problem(str(data), 1, "(file)", "no documents to train on", "add their text"))
        errors.append(prep.refusals[-1])
    prep.findings = audit_documents(docs, heldout.examples if heldout else None)
    return prep


def mix_rows(cfg: DataConfig, n_task: int, seed: int, errors: list[Problem], findings: list[Finding]) -> list[Example]:
    """Rows of the --mix file, drawn so they make up `mix_fraction` of the training rows.

    Validation and held-out data stay task-only, so the scores still measure the task.
    """
    import random

    general = _load(cfg.mix_file, errors)
    if general is None:
        return []
    if general.labels:
        errors.append(Problem(cfg.mix_file, 1, "(file)", "--mix data must be chat, prompt/completion or "
                              "input/output rows, not text/label", "mix in general conversations"))
        return []
    wanted = round(cfg.mix_fraction / (1 - cfg.mix_fraction) * n_task)
    rows = list(general.examples)
    random.Random(seed).shuffle(rows)
    if len(rows) < wanted:
        findings.append(Finding("mix-short", f"--mix asked for {wanted} general rows but {cfg.mix_file} has "
                                f"{len(rows)}; all of them are used ({len(rows) / (len(rows) + n_task):.0%} of "
                                "training)", [], len(rows)))
    return rows[:wanted]


def encode_all(prep: Prepared, tokenizer, cfg: DataConfig, stop_ids: set[int], max_length: int) -> Prepared:
    """Encode train and valid rows; rows with nothing to learn or over max_length are reported."""
    too_long: list[Problem] = []

    def run(examples: list[Example], keep_all: bool = False) -> list[Encoded | Pair]:
        out = []
        encoded = encode_many(tokenizer, [ex.messages for ex in examples], stop_ids)
        if any(ex.rejected is not None for ex in examples):  # preference rows: both sides, each a full conversation
            rejected = encode_many(tokenizer, [ex.prompt + [{"role": "assistant", "content": ex.rejected}]
                                               for ex in examples], stop_ids)
            encoded = [c if isinstance(c, TemplateError) else r if isinstance(r, TemplateError) else Pair(c, r)
                       for c, r in zip(encoded, rejected)]
        for ex, enc in zip(examples, encoded):
            if isinstance(enc, TemplateError):
                prep.errors.append(Problem(ex.source, ex.line, "messages", str(enc),
                                           "order the turns system, user, assistant, user, …"))
                continue
            if enc.trainable == 0:
                prep.errors.append(Problem(ex.source, ex.line, "(row)", "no trainable tokens after templating",
                                           "the assistant reply must not be empty"))
                continue
            if len(enc.input_ids) > max_length:
                ours = " (counting tailored's system prompt, which the guard adds)" if prep.task_prompt else ""
                too_long.append(Problem(ex.source, ex.line, "(row)",
                                        f"{len(enc.input_ids)} tokens{ours}, {len(enc.input_ids) - max_length} over "
                                        f"max_length {max_length}",
                                        "raise --max-length, shorten the row, or pass --too-long drop"))
                continue
            out.append(enc)
            if keep_all:
                prep.shown.append(enc.chosen if isinstance(enc, Pair) else enc)
        return out

    # Document windows are cut to fit, so none is ever over the limit; validation stays task rows only.
    chunks = encode_documents(tokenizer, prep.documents, min(cfg.chunk_tokens, max_length), cfg.chunk_overlap)
    rows = run(prep.train_examples, keep_all=True) + run(prep.mixed)
    prep.valid_encoded = run(prep.valid_examples)
    if prep.train and prep.train.format == "documents" and not cfg.valid and len(chunks) > 1:
        # documents alone: every step-th window validates, and at least one does
        step = max(2, min(round(1 / cfg.valid_fraction), len(chunks)))
        prep.valid_encoded = chunks[step - 1 :: step]
        chunks = [c for i, c in enumerate(chunks) if (i + 1) % step]
    prep.document_chunks = len(chunks)
    prep.train_encoded = rows + chunks
    _report_too_long(prep, cfg, too_long, max_length, "max_length")
    return prep


def _report_too_long(prep: Prepared, cfg: DataConfig, too_long: list[Problem], limit: int, unit: str) -> None:
    if too_long and cfg.too_long == "error":
        prep.errors.extend(too_long)
    elif too_long:
        lines = [p.line for p in too_long]
        prep.findings.append(Finding("too-long", f"{len(too_long)} rows are over {unit} {limit} and will be "
                                                 "dropped (--too-long drop), never cut", lines[:10], len(lines)))


def encode_labelled_all(prep: Prepared, tokenizer, cfg: DataConfig, context: int) -> Prepared:
    """Text/label rows as token ids for an encoder classifier; rows over the limit are reported, never cut."""
    if cfg.mix:
        raise TailoredError("--mix is for generating models; a classifier learns only its labels")
    if cfg.documents:
        raise TailoredError("--documents is for generating models; a classifier learns only its labels")
    prep.context = context
    if prep.train is None:
        return prep
    if not prep.train.labels:
        raise TailoredError(f"{prep.train.path}: --task classify needs text/label rows, and this file is "
                            f"{prep.train.format} — train a generating model instead (leave out --task)")
    too_long: list[Problem] = []
    limit = cfg.max_length or context
    prep.train_encoded = encode_labelled(tokenizer, prep.train_examples, prep.train.labels, limit, too_long)
    prep.valid_encoded = encode_labelled(tokenizer, prep.valid_examples, prep.train.labels, limit, too_long)
    _report_too_long(prep, cfg, too_long, limit, "the encoder's")
    return prep


def prepare(data: str | Path, cfg: DataConfig, seed: int, tokenizer, stop_ids: set[int], context: int) -> Prepared:
    """Load, split, audit and encode; every problem in every file is collected, nothing is raised."""
    return encode_chat_all(load_splits(data, cfg, seed), tokenizer, cfg, stop_ids, context)


def encode_chat_all(prep: Prepared, tokenizer, cfg: DataConfig, stop_ids: set[int], context: int) -> Prepared:
    """`encode_all` with the length limit the settings and the base's context give."""
    if cfg.max_length and cfg.max_length > context:
        raise TailoredError(f"max_length {cfg.max_length} is over the base's context of {context} tokens — "
                            f"use --max-length {context} or less")
    prep.context = context
    return encode_all(prep, tokenizer, cfg, stop_ids, cfg.max_length or min(2048, context))


def render_masked(tokenizer, enc: Encoded):
    """The exact training text; tokens that carry loss are highlighted, the rest dimmed."""
    from rich.text import Text

    text = Text()
    run_ids: list[int] = []
    run_trained = None
    for token, label in zip(enc.input_ids, enc.labels):
        trained = label != IGNORE
        if run_trained is not None and trained != run_trained:
            text.append(tokenizer.decode(run_ids), style="bold black on green" if run_trained else "dim")
            run_ids = []
        run_ids.append(token)
        run_trained = trained
    if run_ids:
        text.append(tokenizer.decode(run_ids), style="bold black on green" if run_trained else "dim")
    return text
