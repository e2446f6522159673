"""Everything we can find wrong with the data before a model loads, collected and reported together.

`prepare` is shared by `tailor check` and `tailor train`, so both see exactly the same problems.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path

from tailored.config import DataConfig
from tailored.data import Dataset, Example, Problem, load_dataset, split_train_valid
from tailored.data.encode import Encoded, TemplateError, encode
from tailored.errors import DataError


@dataclass
class Prepared:
    """Data ready to train on: examples, their encodings, and what was found on the way."""

    train: Dataset
    train_examples: list[Example]
    valid_examples: list[Example]
    heldout: Dataset | None
    train_encoded: list[Encoded] = field(default_factory=list)
    valid_encoded: list[Encoded] = field(default_factory=list)
    dropped_too_long: list[Problem] = field(default_factory=list)
    valid_source: str = "split"

    def profile(self) -> dict:
        lengths = [len(e.input_ids) for e in self.train_encoded]
        return {
            "format": self.train.format,
            "rows": len(self.train.examples),
            "train_rows": len(self.train_encoded),
            "valid_rows": len(self.valid_encoded),
            "valid_source": self.valid_source,
            "heldout_rows": len(self.heldout.examples) if self.heldout else 0,
            "tokens": {"min": min(lengths), "median": statistics.median(lengths), "max": max(lengths),
                       "total": sum(lengths)} if lengths else {},
            "trainable_tokens": sum(e.trainable for e in self.train_encoded),
            "labels": self.train.labels,
            "invalid_rows_skipped": len(self.train.problems),
            "too_long_dropped": len(self.dropped_too_long),
        }


def find_heldout(data: Path) -> Path | None:
    """NAME.heldout.EXT beside NAME.EXT, the layout the bundled examples use."""
    sibling = data.with_name(f"{data.stem}.heldout{data.suffix}")
    return sibling if sibling.exists() and sibling != data else None


def load_splits(data: str | Path, cfg: DataConfig, seed: int) -> Prepared:
    train = load_dataset(data, skip_invalid=cfg.skip_invalid)
    if cfg.valid:
        valid = load_dataset(cfg.valid, labels=train.labels, skip_invalid=cfg.skip_invalid)
        train_examples, valid_examples, source = train.examples, valid.examples, cfg.valid
    else:
        train_examples, valid_examples = split_train_valid(train.examples, cfg.valid_fraction, seed)
        source = f"split ({cfg.valid_fraction:.0%} of {Path(data).name}, seed {seed})"
    heldout_path = cfg.heldout or find_heldout(Path(data))
    heldout = load_dataset(heldout_path, labels=train.labels) if heldout_path else None
    return Prepared(train, train_examples, valid_examples, heldout, valid_source=source)


def encode_all(prep: Prepared, tokenizer, cfg: DataConfig, stop_ids: set[int]) -> Prepared:
    """Encode train and valid rows; rows with nothing to learn or over max_length are reported."""
    problems: list[Problem] = []
    too_long: list[Problem] = []

    def run(examples: list[Example]) -> list[Encoded]:
        out = []
        for ex in examples:
            try:
                enc = encode(tokenizer, ex.messages, stop_ids)
            except TemplateError as e:
                problems.append(Problem(ex.source, ex.line, "messages", str(e), "reorder the turns: system, user, assistant, …"))
                continue
            if enc.trainable == 0:
                problems.append(Problem(ex.source, ex.line, "(row)", "no trainable tokens after templating",
                                        "the assistant reply must not be empty"))
                continue
            if cfg.max_length and len(enc.input_ids) > cfg.max_length:
                too_long.append(Problem(ex.source, ex.line, "(row)",
                                        f"{len(enc.input_ids)} tokens, {len(enc.input_ids) - cfg.max_length} over "
                                        f"max_length {cfg.max_length}",
                                        "raise --max-length, shorten the row, or pass --too-long drop"))
                continue
            out.append(enc)
        return out

    prep.train_encoded = run(prep.train_examples)
    prep.valid_encoded = run(prep.valid_examples)
    if too_long and cfg.too_long == "error":
        problems.extend(too_long)
    else:
        prep.dropped_too_long = too_long
    if problems and not cfg.skip_invalid:
        raise DataError(problems)
    if not prep.train_encoded:
        raise DataError(problems + too_long or [Problem(prep.train.path, 1, "(file)", "nothing left to train on",
                                                        "add examples")])
    return prep
