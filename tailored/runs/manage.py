"""What `tailor runs` does to versions: show one, compare two, promote (tag), remove, list, rebuild the index.

Each change lands in the folders first (they are the truth) and then in the index.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from tailored.errors import TailoredError
from tailored.runs import index
from tailored.runs.diff import compare_versions
from tailored.runs.store import drop_tags, read_json, read_tags, resolve_run_how, set_tag, status, version_ref

PROTECTED = "production"


def version_dir(ref: str, runs_dir: str | Path, finished: bool = True) -> Path:
    """NAME/vN or a folder; a bare NAME is its production (else latest finished) version.

    `finished=False` also accepts an unfinished NAME/vN folder (to show or remove it)."""
    path = Path(runs_dir) / ref if not Path(ref).exists() else Path(ref)
    if not finished and (path / "run.json").exists():
        return path
    return resolve_run_how(ref, runs_dir)[0]


def show(ref: str, runs_dir: str | Path) -> dict:
    path = version_dir(ref, runs_dir, finished=False)
    lineage = read_json(path / "run.json")
    saved = read_json(path / "config.json") if (path / "config.json").exists() else {}
    metrics = read_json(path / "metrics.json") if (path / "metrics.json").exists() else {}
    evaluation = metrics.get("eval") or {}
    tags = [t for t, v in read_tags(path.parent).items() if v == int(path.name[1:])]
    return {"version": version_ref(path), "folder": str(path), "status": status(path), "tags": tags,
            "parent": lineage.get("parent"), "data_diff": lineage.get("data_diff"), "base": lineage["base"],
            "data": lineage["data"], "task": lineage["task"], "created": lineage.get("created"),
            "settings": saved.get("train", {}), "reasons": saved.get("reasons", {}),
            "metrics": {k: evaluation.get(k) for k in ("primary", "base", "tuned", "base_ci", "tuned_ci", "base_name",
                                                       "parent")} if evaluation else None,
            "report": str(path / "report.html") if (path / "report.html").exists() else None,
            "card": str(path / "README.md") if (path / "README.md").exists() else None}


def compare(a: str, b: str, runs_dir: str | Path) -> dict:
    return compare_versions(version_dir(a, runs_dir), version_dir(b, runs_dir))


def promote(ref: str, runs_dir: str | Path, tag: str = PROTECTED) -> tuple[Path, int | None]:
    """Tag a finished version (moving the tag off any other version of its name); returns (folder, previous)."""
    path = version_dir(ref, runs_dir)
    previous = set_tag(path, tag)
    index.record(runs_dir, path)
    return path, previous


def remove(ref: str, runs_dir: str | Path, force: bool = False) -> Path:
    """Delete one version's folder; a production version only with `force`, a running one never."""
    if not _names_version(ref):
        raise TailoredError(f"'{ref}' names a run, not one version — say which, e.g. {ref}/v1")
    path = version_dir(ref, runs_dir, finished=False)
    if status(path) == "running":
        raise TailoredError(f"{path}: a process is training in it; stop that first")
    tags = [t for t, v in read_tags(path.parent).items() if v == int(path.name[1:])]
    if PROTECTED in tags and not force:
        raise TailoredError(f"{version_ref(path)} is the {PROTECTED} version; promote another first, or "
                            "pass --force")
    drop_tags(path)
    shutil.rmtree(path)
    index.forget(runs_dir, path.parent.name, int(path.name[1:]))
    index.record_tags(runs_dir, path.parent)
    return path


def _names_version(ref: str) -> bool:
    return Path(ref).name.startswith("v") and Path(ref).name[1:].isdigit()


def listing(runs_dir: str | Path, name: str | None = None) -> list[dict]:
    return index.list_runs(runs_dir, name)


def reindex(runs_dir: str | Path) -> int:
    return index.reindex(runs_dir)
