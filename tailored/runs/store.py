"""Where runs live, how versions are numbered, and how a reference like `support` finds its folder."""

from __future__ import annotations

import json
import re
from pathlib import Path

from tailored.errors import TailoredError

COMPLETE = "COMPLETE"  # written last; a folder without it is an unfinished or crashed run
_VERSION = re.compile(r"^v(\d+)$")


def _versions(folder: Path) -> list[tuple[int, Path]]:
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _VERSION.match(p.name)) and p.is_dir()]
    return sorted(found)


def safe_name(name: str) -> str:
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", name).strip(".-")
    if not cleaned:
        raise TailoredError(f"run name {name!r} has no usable characters — use letters, digits, '-', '_' or '.'")
    return cleaned


def new_run_dir(runs_dir: str | Path, name: str) -> Path:
    """Create and return runs_dir/name/v<N+1>. mkdir is atomic, so two runs never share a version."""
    folder = Path(runs_dir) / safe_name(name)
    folder.mkdir(parents=True, exist_ok=True)
    version = (_versions(folder)[-1][0] if _versions(folder) else 0) + 1
    while True:
        path = folder / f"v{version}"
        try:
            path.mkdir()
            return path
        except FileExistsError:
            version += 1


def resolve_run(ref: str | Path, runs_dir: str | Path = "runs") -> Path:
    """A finished run folder from `runs/support/v2`, `runs/support`, `support/v2` or `support` (latest).

    Names are looked up only inside `runs_dir` unless the reference is an existing path.
    """
    ref_path = Path(ref)
    candidates = [ref_path] if ref_path.exists() else []
    if not ref_path.is_absolute() and ".." not in ref_path.parts:
        candidates.append(Path(runs_dir) / ref_path)
    for path in candidates:
        if (path / "run.json").exists():
            if not (path / COMPLETE).exists():
                raise TailoredError(f"{path}: this run did not finish (no {COMPLETE} marker) — train it again")
            return path
        done = [p for _, p in _versions(path) if (p / COMPLETE).exists()]
        if done:
            return done[-1]
    raise TailoredError(f"run '{ref}' not found — pass a folder like runs/NAME/v1 or a name under {runs_dir}/")


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise TailoredError(f"{path}: unreadable ({e}) — the run folder is damaged") from None


def unfinished_runs(runs_dir: str | Path, name: str) -> list[Path]:
    """Versions of `name` that started but never wrote COMPLETE, newest first."""
    folder = Path(runs_dir) / safe_name(name)
    return [p for _, p in reversed(_versions(folder)) if (p / "run.json").exists() and not (p / COMPLETE).exists()]
