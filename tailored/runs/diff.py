"""What changed between two versions: their data row by row (by content hash), their settings, their scores.

Every run keeps a copy of its training file (RUN/data/), so a diff or a drift check never depends on
the user's file still being where it was, or unchanged.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from collections import defaultdict
from pathlib import Path

from tailored import atomic
from tailored.data import Example, load_dataset
from tailored.data.formats import without_task_prompt
from tailored.runs.store import read_json, version_ref

DATA = "data"
DOCUMENTS = "documents"


def keep_data_copy(run_dir: Path, data: str | Path) -> None:
    """Copy the training file into the run, atomically (the folder's truth includes what it learned).

    A folder of documents is copied by `keep_documents_copy`."""
    if Path(data).is_dir():
        return
    with atomic.atomic_path(run_dir / DATA / Path(data).name) as tmp:
        shutil.copyfile(data, tmp)


def keep_documents_copy(run_dir: Path, sources: list[str]) -> None:
    """Copy every documents file (--documents, or documents given as DATA) into the run's `documents/`, under
    its path below the folder they share, so the run keeps all it learned from, as it does its training file."""
    files = sorted({Path(s) for s in sources})
    if not files:
        return
    root = Path(os.path.commonpath(files)) if len(files) > 1 else files[0].parent
    for path in files:
        with atomic.atomic_path(run_dir / DOCUMENTS / path.relative_to(root)) as tmp:
            shutil.copyfile(path, tmp)


def data_copy(run_dir: Path) -> Path | None:
    folder = run_dir / DATA
    files = sorted(folder.iterdir()) if folder.is_dir() else []
    return files[0] if files else None


def training_examples(run_dir: Path) -> list[Example]:
    """Every row of the run's training file (its copy; the lineage path if the copy is missing)."""
    lineage = read_json(run_dir / "run.json")
    path = data_copy(run_dir) or lineage["data"]["train"]["path"]
    return load_dataset(path, labels=lineage["task"].get("labels")).examples


def _digest(value) -> str:
    return hashlib.sha256(json.dumps(value, ensure_ascii=False, sort_keys=True).encode()).hexdigest()[:16]


def row_key(ex: Example) -> tuple[str, str]:
    """(input hash, output hash). A labelled row's input is its text alone: the system prompt listing the
    labels changes whenever a label is added, and that is not an edit of the row."""
    source = ex.text if ex.label is not None else without_task_prompt(ex.prompt)  # tailored's, not the user's
    return _digest(source), _digest(ex.target)


def data_diff(old: list[Example], new: list[Example]) -> dict:
    """Rows added (new input), removed (input gone) and edited (same input, new output), by content hash."""
    before, after = defaultdict(set), defaultdict(set)
    for ex in old:
        key, out = row_key(ex)
        before[key].add(out)
    for ex in new:
        key, out = row_key(ex)
        after[key].add(out)
    added = sum(1 for k in after if k not in before)
    removed = sum(1 for k in before if k not in after)
    edited = sum(1 for k in after if k in before and after[k] != before[k])
    return {"added": added, "removed": removed, "edited": edited,
            "unchanged": sum(1 for k in after if k in before and after[k] == before[k]),
            "rows_before": len(old), "rows_after": len(new)}


def _flat(settings: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in settings.items():
        if isinstance(value, dict) and key != "reasons":
            out |= _flat(value, f"{prefix}{key}.")
        elif key != "reasons":
            out[prefix + key] = value
    return out


def compare_versions(a: Path, b: Path) -> dict:
    """Settings that differ, the data diff from a to b, and each primary metric with its interval."""
    sa, sb = _flat(read_json(a / "config.json")), _flat(read_json(b / "config.json"))
    settings = {k: [sa.get(k), sb.get(k)] for k in sorted(set(sa) | set(sb)) if sa.get(k) != sb.get(k)}
    la, lb = read_json(a / "run.json"), read_json(b / "run.json")
    same_data = la["data"]["train"]["sha256"] == lb["data"]["train"]["sha256"]
    diff = {"added": 0, "removed": 0, "edited": 0} if same_data else data_diff(training_examples(a),
                                                                             training_examples(b))
    metrics = {}
    ea, eb = (read_json(p / "metrics.json").get("eval") if (p / "metrics.json").exists() else None for p in (a, b))
    if ea and eb:
        numeric = [m for m in sorted(set(ea["tuned"]) & set(eb["tuned"]))
                   if isinstance(ea["tuned"][m], (int, float)) and isinstance(eb["tuned"][m], (int, float))]
        for metric in numeric:  # confusion matrices and per-field tables are for the report
            metrics[metric] = {"a": ea["tuned"][metric], "a_ci": (ea.get("tuned_ci") or {}).get(metric),
                               "b": eb["tuned"][metric], "b_ci": (eb.get("tuned_ci") or {}).get(metric),
                               "delta": eb["tuned"][metric] - ea["tuned"][metric]}
    heldout = [(x["data"].get("heldout") or {}).get("sha256") for x in (la, lb)]
    return {"a": version_ref(a), "b": version_ref(b), "settings": settings,
            "data": {**diff, "same_file": same_data}, "metrics": metrics,
            "primary": (eb or ea or {}).get("primary"),
            "same_heldout": heldout[0] is not None and heldout[0] == heldout[1],
            "lineage": {"a_parent": la.get("parent"), "b_parent": lb.get("parent")}}
