"""Errors the user can fix. The CLI prints these as one line, without a traceback."""

from __future__ import annotations


class TailoredError(Exception):
    """A problem with the user's input or setup, with a message that says how to fix it."""


class DataError(TailoredError):
    """One or more problems in a data file, each as `file:line: field: reason — fix`."""

    def __init__(self, problems: list, total: int | None = None):
        self.problems = problems
        self.total = total if total is not None else len(problems)
        shown = "\n".join(str(p) for p in problems[:50])
        more = f"\n… and {self.total - 50} more" if self.total > 50 else ""
        super().__init__(f"{shown}{more}")
