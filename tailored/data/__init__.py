"""Load a user's data file into chat-turn examples, reporting every problem at once."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tailored.data.formats import (
    FORMATS,
    Example,
    attach_label_prompt,
    detect_format,
    normalise_row,
    unknown_format_problem,
)
from tailored.data.readers import Problem, read_rows
from tailored.data.split import split_train_valid
from tailored.atomic import sha256_file
from tailored.errors import DataError

__all__ = ["Dataset", "Example", "Problem", "load_dataset", "split_train_valid"]


@dataclass
class Dataset:
    path: str
    format: str
    examples: list[Example]
    sha256: str
    labels: list[str] | None = None  # set for text/label data
    problems: list[Problem] = field(default_factory=list)  # rows dropped by skip_invalid


def load_dataset(path: str | Path, labels: list[str] | None = None, skip_invalid: bool = False) -> Dataset:
    """Read and normalise a data file.

    Raises DataError listing every bad row, unless `skip_invalid`, which drops them and keeps the list.
    `labels` fixes the label set (held-out data uses the training labels, so prompts match).
    """
    path = Path(path)
    problems: list[Problem] = []
    rows = read_rows(path, problems)
    source = str(path)

    fmt = None
    for row in rows:
        if isinstance(row.value, dict) and (fmt := detect_format(set(row.value))):
            break

    examples: list[Example] = []
    for row in rows:
        if not isinstance(row.value, dict):
            problems.append(Problem(source, row.line, "(row)", f"expected a JSON object, got {type(row.value).__name__}",
                                    'write one object per line, e.g. {"prompt": "…", "completion": "…"}'))
            continue
        row_fmt = detect_format(set(row.value))
        if row_fmt is None:
            problems.append(unknown_format_problem(source, row.line, set(row.value)))
            continue
        if row_fmt != fmt:
            problems.append(Problem(source, row.line, "(row)",
                                    f"row is {'+'.join(FORMATS[row_fmt])} but the file is {'+'.join(FORMATS[fmt])}",
                                    "use one format per file"))
            continue
        ex = normalise_row(row, source, fmt, problems)
        if ex is not None:
            examples.append(ex)

    if problems and not skip_invalid:
        raise DataError(problems)
    if not examples:
        raise DataError(problems or [Problem(source, 1, "(file)", "no usable examples", "add examples")])

    if fmt == "text_label":
        labels = labels or sorted({ex.label for ex in examples})
        attach_label_prompt(examples, labels)
    return Dataset(source, fmt, examples, sha256_file(path), labels if fmt == "text_label" else None, problems)
