"""The run index: one SQLite row per version, for listing and comparing without opening every folder.

The folders are the truth; the index is a cache of them that `reindex` can always rebuild. It lives
in RUNS_DIR/index.sqlite, in WAL mode with a busy timeout, and every write is one short
`BEGIN IMMEDIATE` transaction, so several `tailor` processes at once queue rather than corrupt it.
The schema is versioned through `PRAGMA user_version` and the numbered MIGRATIONS below, applied in
order inside one transaction; a new schema is a new entry, never an edit of an old one.
"""

from __future__ import annotations

import json
import sqlite3
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Iterator

from tailored.runs.store import read_json, read_tags, status, versions

INDEX = "index.sqlite"

MIGRATIONS = (
    # 1: the first schema
    """CREATE TABLE runs (name TEXT NOT NULL, version INTEGER NOT NULL, status TEXT NOT NULL, base TEXT,
        base_sha TEXT, data_sha TEXT, data_rows INTEGER, settings TEXT, parent TEXT, metrics TEXT,
        created TEXT, PRIMARY KEY (name, version))""",
    # 2: tags get their own table (a tag names one version per run name); the task and the headline
    # metric get columns so listing needs no JSON
    """CREATE TABLE tags (name TEXT NOT NULL, tag TEXT NOT NULL, version INTEGER NOT NULL,
        PRIMARY KEY (name, tag));
    ALTER TABLE runs ADD COLUMN task TEXT;
    ALTER TABLE runs ADD COLUMN headline TEXT""",
)
FINAL = ("finished", "failed")


@contextmanager
def connect(runs_dir: str | Path, migrations: tuple[str, ...] = MIGRATIONS) -> Iterator[sqlite3.Connection]:
    Path(runs_dir).mkdir(parents=True, exist_ok=True)
    with closing(sqlite3.connect(Path(runs_dir) / INDEX, timeout=30, isolation_level=None)) as db:
        db.row_factory = sqlite3.Row
        db.execute("PRAGMA busy_timeout = 30000")
        db.execute("PRAGMA journal_mode = WAL")
        with transaction(db):
            current = db.execute("PRAGMA user_version").fetchone()[0]
            for number, script in enumerate(migrations[current:], start=current + 1):
                for statement in script.split(";"):
                    db.execute(statement)
                db.execute(f"PRAGMA user_version = {number}")
        yield db


@contextmanager
def transaction(db: sqlite3.Connection) -> Iterator[None]:
    db.execute("BEGIN IMMEDIATE")  # take the write lock up front: no upgrade deadlock between readers
    try:
        yield
        db.execute("COMMIT")
    except BaseException:
        db.execute("ROLLBACK")
        raise


def row_of(run_dir: Path) -> dict:
    """What the index holds about one version, read from its folder."""
    lineage = read_json(run_dir / "run.json")
    saved = read_json(run_dir / "config.json") if (run_dir / "config.json").exists() else {}
    metrics = read_json(run_dir / "metrics.json") if (run_dir / "metrics.json").exists() else {}
    check = read_json(run_dir / "check.json") if (run_dir / "check.json").exists() else {}
    evaluation = metrics.get("eval") or {}
    headline = None
    if evaluation:
        primary = evaluation["primary"]
        headline = {"metric": primary, "tuned": evaluation["tuned"][primary],
                    "ci": (evaluation.get("tuned_ci") or {}).get(primary), "before": evaluation["base"][primary],
                    "before_name": evaluation.get("base_name", "base")}
    return {"name": run_dir.parent.name, "version": int(run_dir.name[1:]), "status": status(run_dir),
            "base": lineage["base"]["name"], "base_sha": lineage["base"]["fingerprint"],
            "data_sha": lineage["data"]["train"]["sha256"], "data_rows": (check.get("profile") or {}).get("rows"),
            "settings": json.dumps(saved.get("train", {})), "parent": lineage.get("parent"),
            "metrics": json.dumps(evaluation and {k: evaluation[k] for k in ("primary", "base", "tuned", "base_ci",
                                                                            "tuned_ci", "base_name")}),
            "created": lineage.get("created"), "task": lineage["task"]["kind"], "headline": json.dumps(headline)}


def _write(db: sqlite3.Connection, run_dir: Path) -> None:
    row = row_of(run_dir)
    db.execute(f"INSERT OR REPLACE INTO runs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})",
               list(row.values()))
    db.execute("DELETE FROM tags WHERE name = ?", (row["name"],))
    for tag, version in read_tags(run_dir.parent).items():
        db.execute("INSERT INTO tags VALUES (?, ?, ?)", (row["name"], tag, version))


def record(runs_dir: str | Path, run_dir: Path, strict: bool = True) -> bool:
    """Bring the index up to date with one version's folder (after it starts, finishes, fails or is tagged).

    With `strict=False` (training), an index that cannot be written (busy past its timeout, a full
    disk) returns False instead of failing the run: the folder is complete, and the next listing or
    `reindex` catches up from it."""
    try:
        with connect(runs_dir) as db, transaction(db):
            _write(db, Path(run_dir))
        return True
    except sqlite3.Error:
        if strict:
            raise
        return False


def record_tags(runs_dir: str | Path, name_dir: Path) -> None:
    """Bring the index's tags for one run name up to date with its tags.json."""
    with connect(runs_dir) as db, transaction(db):
        db.execute("DELETE FROM tags WHERE name = ?", (name_dir.name,))
        for tag, version in read_tags(name_dir).items():
            db.execute("INSERT INTO tags VALUES (?, ?, ?)", (name_dir.name, tag, version))


def forget(runs_dir: str | Path, name: str, version: int) -> None:
    with connect(runs_dir) as db, transaction(db):
        db.execute("DELETE FROM runs WHERE name = ? AND version = ?", (name, version))
        db.execute("DELETE FROM tags WHERE name = ? AND version = ?", (name, version))


def reindex(runs_dir: str | Path) -> int:
    """Rebuild the index from the folders alone; returns how many versions it holds."""
    found = versions(runs_dir)
    with connect(runs_dir) as db, transaction(db):
        db.execute("DELETE FROM runs")
        db.execute("DELETE FROM tags")
        for run_dir in found:
            _write(db, run_dir)
    return len(found)


def list_runs(runs_dir: str | Path, name: str | None = None) -> list[dict]:
    """Every version (or one name's), oldest first, with tags; synced with the folders as it reads.

    Folders the index has not heard of are added, and a row still marked running or interrupted is
    checked against its folder, so a run killed with `kill -9` reads as interrupted, not running.
    """
    if not Path(runs_dir).is_dir():
        return []  # nothing trained here yet; listing creates nothing
    with connect(runs_dir) as db:
        known = {(r["name"], r["version"]): r["status"] for r in db.execute("SELECT name, version, status FROM runs")}
        folders = {(p.parent.name, int(p.name[1:])): p for p in versions(runs_dir)}
        stale = [p for key, p in folders.items() if key not in known
                 or (known[key] not in FINAL and status(p) != known[key])]
        gone = [key for key in known if key not in folders]  # removed by hand, not with `runs rm`
        if stale or gone:
            with transaction(db):
                for run_dir in stale:
                    _write(db, run_dir)
                for key in gone:
                    db.execute("DELETE FROM runs WHERE name = ? AND version = ?", key)
        query = "SELECT * FROM runs" + (" WHERE name = ?" if name else "") + " ORDER BY name, version"
        rows = [dict(r) for r in db.execute(query, (name,) if name else ())]
        tags: dict[tuple, list[str]] = {}
        for t in db.execute("SELECT * FROM tags ORDER BY tag"):
            tags.setdefault((t["name"], t["version"]), []).append(t["tag"])
    for row in rows:
        row["tags"] = tags.get((row["name"], row["version"]), [])
        row["settings"], row["metrics"] = json.loads(row["settings"] or "{}"), json.loads(row["metrics"] or "{}")
        row["headline"] = json.loads(row["headline"] or "null")
    return rows
