"""Where runs live, how versions are numbered, what state each is in, and how `support` finds its folder.

A run's state lives in its folder, so it survives any crash: COMPLETE (finished) or FAILED (an
error, with its message) is written last; while training, the process holds an exclusive `flock` on
RUNNING. The kernel drops that lock when the process dies, even by `kill -9`, so a folder with
neither marker and no held lock is an interrupted run, whatever the index last heard.
"""

from __future__ import annotations

import fcntl
import json
import os
import re
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from tailored import atomic
from tailored.errors import TailoredError

COMPLETE = "COMPLETE"  # written last; a folder without it is an unfinished or crashed run
FAILED = "FAILED"  # written when training raised; holds the error
RUNNING = "RUNNING"  # locked while a process trains in the folder
TAGS = "tags.json"  # per run name: {tag: version}
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
    """A finished run folder from `runs/support/v2`, `runs/support`, `support/v2` or `support`.

    A bare name means its `production` version when one is promoted, else its latest finished one.
    Names are looked up only inside `runs_dir` unless the reference is an existing path.
    """
    return resolve_run_how(ref, runs_dir)[0]


def resolve_run_how(ref: str | Path, runs_dir: str | Path = "runs") -> tuple[Path, str]:
    """`resolve_run`, plus how the folder was chosen, for commands to say which version they used."""
    try:
        return _resolve(ref, runs_dir)
    except (OSError, ValueError):  # a name too long for the file system, or with a NUL byte: no such run
        raise TailoredError(f"run '{str(ref)[:100]}' not found — pass a folder like runs/NAME/v1 or a name under "
                            f"{runs_dir}/") from None


def _resolve(ref: str | Path, runs_dir: str | Path) -> tuple[Path, str]:
    ref_path = Path(ref)
    candidates = [ref_path] if ref_path.exists() else []
    if not ref_path.is_absolute() and ".." not in ref_path.parts:
        candidates.append(Path(runs_dir) / ref_path)
    for path in candidates:
        if (path / "run.json").exists():
            if not (path / COMPLETE).exists():
                raise TailoredError(f"{path}: this run did not finish (no {COMPLETE} marker) — train it again")
            return path, "as named"
        promoted = read_tags(path).get("production")
        if promoted is not None:
            if not (path / f"v{promoted}" / COMPLETE).exists():
                raise TailoredError(f"{path}: its production version v{promoted} is missing or unfinished — "
                                    f"promote another with `tailor runs promote {path.name}/vN`")
            return path / f"v{promoted}", "its production version"
        done = [p for _, p in _versions(path) if (p / COMPLETE).exists()]
        if done:
            return done[-1], "its latest finished version (none is promoted to production)"
    raise TailoredError(f"run '{str(ref)[:100]}' not found — pass a folder like runs/NAME/v1 or a name under {runs_dir}/")


def version_ref(run_dir: Path) -> str:
    """How a version is named to users: `support/v2`."""
    return f"{Path(run_dir).parent.name}/{Path(run_dir).name}"


def versions(runs_dir: str | Path) -> list[Path]:
    """Every version folder that holds a run, by name then version."""
    root = Path(runs_dir)
    if not root.is_dir():
        return []
    return [p for name in sorted(root.iterdir()) if name.is_dir() for _, p in _versions(name)
            if (p / "run.json").exists()]


def status(run_dir: Path) -> str:
    """finished, failed, running (a live process holds the lock) or interrupted (it died, or never locked)."""
    if (run_dir / COMPLETE).exists():
        return "finished"
    if (run_dir / FAILED).exists():
        return "failed"
    try:
        fd = os.open(run_dir / RUNNING, os.O_RDONLY)
    except FileNotFoundError:
        return "interrupted"
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return "interrupted"  # nobody holds it: the trainer is gone
    except BlockingIOError:
        return "running"
    finally:
        os.close(fd)


@contextmanager
def running(run_dir: Path) -> Iterator[None]:
    """Hold the folder's RUNNING lock while training; a failure leaves FAILED with the error."""
    fd = os.open(run_dir / RUNNING, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise TailoredError(f"{run_dir}: another process is training in this folder") from None
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    (run_dir / FAILED).unlink(missing_ok=True)  # a resumed run's earlier failure is history
    try:
        yield
    except Exception as e:
        if not (run_dir / COMPLETE).exists():
            atomic.write_text(run_dir / FAILED, f"{type(e).__name__}: {e}\n")
        raise
    finally:
        os.close(fd)  # closing drops the lock; the file stays as a harmless trace


def read_tags(name_dir: Path) -> dict[str, int]:
    path = Path(name_dir) / TAGS
    return read_json(path) if path.exists() else {}


def set_tag(run_dir: Path, tag: str) -> int | None:
    """Point `tag` of the run's name at this version (moving it from another); returns the previous version."""
    if not re.fullmatch(r"[A-Za-z0-9._-]+", tag):
        raise TailoredError(f"tag {tag!r}: use letters, digits, '-', '_' or '.'")
    with _name_lock(run_dir.parent):
        tags = read_tags(run_dir.parent)
        previous = tags.get(tag)
        tags[tag] = int(run_dir.name[1:])
        atomic.write_json(run_dir.parent / TAGS, tags)
    return previous


def drop_tags(run_dir: Path) -> list[str]:
    """Remove every tag that points at this version; returns them."""
    with _name_lock(run_dir.parent):
        tags = read_tags(run_dir.parent)
        gone = [t for t, v in tags.items() if v == int(run_dir.name[1:])]
        atomic.write_json(run_dir.parent / TAGS, {t: v for t, v in tags.items() if t not in gone})
    return gone


@contextmanager
def _name_lock(name_dir: Path) -> Iterator[None]:
    """Serialise read-modify-write of a name's tags between processes."""
    fd = os.open(Path(name_dir) / ".tags.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def read_json(path: Path) -> dict:
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise TailoredError(f"{path}: unreadable ({e}) — the run folder is damaged") from None


def unfinished_runs(runs_dir: str | Path, name: str) -> list[Path]:
    """Versions of `name` that started but never wrote COMPLETE, newest first."""
    folder = Path(runs_dir) / safe_name(name)
    return [p for _, p in reversed(_versions(folder)) if (p / "run.json").exists() and not (p / COMPLETE).exists()]
