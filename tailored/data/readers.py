"""Read JSONL, CSV and Parquet into (line number, row) pairs, collecting problems instead of raising.

Every row keeps the line it came from so that any later complaint can say `file:line`.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from tailored.errors import TailoredError

SUFFIXES = {".jsonl": "jsonl", ".json": "jsonl", ".ndjson": "jsonl", ".csv": "csv", ".parquet": "parquet"}


@dataclass(frozen=True)
class Problem:
    """One thing wrong with one row, printed as `file:line: field: reason — fix`."""

    file: str
    line: int
    field: str
    reason: str
    fix: str = ""

    def __str__(self) -> str:
        fix = f" — {self.fix}" if self.fix else ""
        return f"{self.file}:{self.line}: {self.field}: {self.reason}{fix}"


@dataclass
class Row:
    line: int
    value: Any  # a dict for well-formed rows; anything JSON can hold otherwise


def file_kind(path: Path) -> str:
    kind = SUFFIXES.get(path.suffix.lower())
    if kind is None:
        raise TailoredError(
            f"{path}: unsupported file type '{path.suffix or '(none)'}' — use .jsonl, .csv or .parquet"
        )
    return kind


def read_rows(path: str | Path, problems: list[Problem]) -> list[Row]:
    """All rows of a data file; unreadable rows become entries in `problems`."""
    path = Path(path)
    if not path.exists():
        raise TailoredError(f"{path}: file not found — check the path")
    if path.is_dir():
        raise TailoredError(f"{path}: is a folder — pass a .jsonl, .csv or .parquet file")
    kind = file_kind(path)
    reader = {"jsonl": _read_jsonl, "csv": _read_csv, "parquet": _read_parquet}[kind]
    rows = list(reader(path, problems))
    if not rows and not problems:
        raise TailoredError(f"{path}: the file has no rows — add examples, one per line")
    return rows


def _read_jsonl(path: Path, problems: list[Problem]) -> Iterator[Row]:
    name = str(path)
    with open(path, "rb") as f:
        for line_no, raw in enumerate(f, start=1):
            if line_no == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 BOM is common from Windows editors; not an error
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as e:
                problems.append(
                    Problem(name, line_no, "(line)", f"invalid UTF-8 at byte {e.start}", "save the file as UTF-8")
                )
                continue
            text = text.strip()  # also drops the \r of CRLF line ends
            if not text:
                continue
            try:
                value = json.loads(text)
            except json.JSONDecodeError as e:
                where = f"{e.msg} column {e.colno}" if e.msg.endswith(" at") else f"{e.msg} at column {e.colno}"
                problems.append(
                    Problem(name, line_no, "(line)", f"not valid JSON ({where})",
                            "each line must be one complete JSON object")
                )
                continue
            except RecursionError:
                problems.append(Problem(name, line_no, "(line)", "JSON nested too deeply", "flatten the row"))
                continue
            yield Row(line_no, value)


def _read_csv(path: Path, problems: list[Problem]) -> Iterator[Row]:
    name = str(path)
    data = path.read_bytes()
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        line_no = data[: e.start].count(b"\n") + 1
        problems.append(Problem(name, line_no, "(line)", f"invalid UTF-8 at byte {e.start}", "save the file as UTF-8"))
        return
    csv.field_size_limit(1 << 30)
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except StopIteration:
        return
    except csv.Error as e:
        problems.append(Problem(name, 1, "(header)", f"unreadable CSV header ({e})", "fix the first line"))
        return
    header = [h.strip() for h in header]
    line_no = reader.line_num
    while True:
        start = line_no + 1  # a quoted field can span lines; report where the row begins
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as e:
            problems.append(Problem(name, start, "(line)", f"unreadable CSV row ({e})", "check the quoting"))
            return
        line_no = reader.line_num
        if not cells or all(not c.strip() for c in cells):
            continue
        if len(cells) != len(header):
            problems.append(
                Problem(name, start, "(line)", f"{len(cells)} columns, header has {len(header)}",
                        "quote fields that contain commas")
            )
            continue
        yield Row(start, dict(zip(header, cells)))


def _read_parquet(path: Path, problems: list[Problem]) -> Iterator[Row]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises several unrelated types for a bad file
        raise TailoredError(f"{path}: not a readable Parquet file ({type(e).__name__}: {e})") from None
    # Parquet has no lines; row N (1-based) plays that part in messages.
    for i, value in enumerate(table.to_pylist(), start=1):
        yield Row(i, value)
