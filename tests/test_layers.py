"""Imports run downward: data → models → training → evaluation → runs → guard → pipeline → fine_tuning → CLI/server.

Evaluation, the server, `load` and export never reach into training: what they share with it (device
facts, plain scoring) lives below both. Function-level imports count too.
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).parent.parent / "tailored"
BASE = {"errors", "atomic", "device", "config"}
# what each part of tailored may import, besides itself and BASE
ALLOWED = {
    "errors": set(), "atomic": set(), "device": set(), "config": {"errors"},
    "data": set(),
    "models": {"data"},
    "training": {"data", "models"},
    "evaluation": {"data", "models"},
    "tuned": {"data", "models", "evaluation", "runs"},
    "export": {"data", "models", "evaluation", "tuned", "runs"},
    "runs": {"data"},
    "maintain": {"data", "models", "evaluation", "runs", "tuned"},
    "progress": {"data"},
    "guard": {"data", "models", "evaluation"},  # models.router: the guard fits the run's router
    "pipeline": {"data", "models", "training", "evaluation", "runs", "tuned", "maintain", "progress", "guard"},
    "fine_tuning": {"pipeline"},  # jobs are runs trained through `train`; the server is above them
    "server": {"data", "models", "evaluation", "runs", "tuned", "fine_tuning"},
    "cli": {"pipeline", "tuned", "export", "server", "data", "training", "runs"},  # training.distributed: the launch
    "__init__": {"pipeline", "tuned", "server"},
}


def part_of(path: Path) -> str:
    return path.relative_to(PACKAGE).parts[0].removesuffix(".py")


def imported_parts(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("tailored"):
            names = node.module.split(".")[1:2] or [a.name for a in node.names]
            found.update(names)
        elif isinstance(node, ast.Import):
            found.update(a.name.split(".")[1] for a in node.names if a.name.startswith("tailored."))
    return found


def test_every_module_imports_only_downward():
    wrong = []
    for path in sorted(PACKAGE.rglob("*.py")):
        part = part_of(path)
        allowed = ALLOWED[part] | BASE | {part}
        for name in sorted(imported_parts(path) - allowed):
            wrong.append(f"{path.relative_to(PACKAGE.parent)} imports tailored.{name}")
    assert wrong == []


def test_nothing_below_the_orchestrator_imports_training():
    users = {part_of(p) for p in PACKAGE.rglob("*.py") if "training" in imported_parts(p)}
    assert users <= {"training", "pipeline", "cli"}, users
