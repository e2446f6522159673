"""Uploaded files and fine-tuning jobs, kept under the runs folder so they outlive any process.

Files are folders `RUNS/files/file-ID/` holding the upload under its own name plus `meta.json`.
Jobs and their events live in `RUNS/fine_tuning.sqlite` (WAL, one short transaction per write),
shared by the server, its job runner and the training process. Objects come out in OpenAI's shapes.
"""

from __future__ import annotations

import json
import re
import secrets
import shutil
import sqlite3
import time
from contextlib import closing
from pathlib import Path

from tailored import atomic

FILES = "files"
DB = "fine_tuning.sqlite"
ACTIVE = ("validating_files", "queued", "running", "paused")
FINAL = ("succeeded", "failed", "cancelled")
_ID = re.compile(r"^[a-z]+-[A-Za-z0-9]{1,64}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY, created_at INTEGER NOT NULL, status TEXT NOT NULL, model TEXT NOT NULL,
    training_file TEXT NOT NULL, validation_file TEXT, method TEXT NOT NULL, hyperparameters TEXT NOT NULL,
    suffix TEXT, seed INTEGER NOT NULL, metadata TEXT, run_dir TEXT, fine_tuned_model TEXT, error TEXT,
    trained_tokens INTEGER, finished_at INTEGER, estimated_finish INTEGER, result_files TEXT NOT NULL DEFAULT '[]',
    best_step INTEGER, best_metrics TEXT);
CREATE TABLE IF NOT EXISTS events (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, created_at INTEGER NOT NULL,
    level TEXT NOT NULL, type TEXT NOT NULL, message TEXT NOT NULL, data TEXT);
CREATE INDEX IF NOT EXISTS events_by_job ON events (job_id, seq);
"""


def new_id(prefix: str) -> str:
    return f"{prefix}-{secrets.token_hex(12)}"


def valid_id(ident: str, prefix: str) -> bool:
    """Ids come from requests: anything but our own shape is simply not found (never a path)."""
    return bool(_ID.match(ident)) and ident.startswith(prefix + "-")


# ---- files ---------------------------------------------------------------------------------------
def file_dir(runs_dir: Path, file_id: str) -> Path | None:
    if not valid_id(file_id, "file"):
        return None
    path = Path(runs_dir) / FILES / file_id
    return path if (path / "meta.json").exists() else None


def save_file(runs_dir: Path, upload: Path, filename: str, purpose: str) -> dict:
    """Move a fully received upload into the store; the metadata is written last, so a half-stored file is absent."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", Path(filename or "upload.jsonl").name).strip(".-") or "upload.jsonl"
    file_id = new_id("file")
    folder = Path(runs_dir) / FILES / file_id
    folder.mkdir(parents=True)
    shutil.move(str(upload), folder / name)
    meta = {"id": file_id, "object": "file", "bytes": (folder / name).stat().st_size, "created_at": int(time.time()),
            "filename": name, "purpose": purpose, "status": "processed", "status_details": None}
    atomic.write_json(folder / "meta.json", meta)
    return meta


def file_meta(runs_dir: Path, file_id: str) -> dict | None:
    folder = file_dir(runs_dir, file_id)
    return json.loads((folder / "meta.json").read_text()) if folder else None


def file_path(runs_dir: Path, file_id: str) -> Path | None:
    meta = file_meta(runs_dir, file_id)
    return Path(runs_dir) / FILES / file_id / meta["filename"] if meta else None


def list_files(runs_dir: Path, purpose: str | None = None) -> list[dict]:
    root = Path(runs_dir) / FILES
    found = [json.loads(p.read_text()) for p in root.glob("file-*/meta.json")] if root.is_dir() else []
    return sorted((m for m in found if purpose in (None, m["purpose"])), key=lambda m: (-m["created_at"], m["id"]))


def delete_file(runs_dir: Path, file_id: str) -> bool:
    folder = file_dir(runs_dir, file_id)
    if folder is None:
        return False
    (folder / "meta.json").unlink()  # gone for readers at once; the rest follows
    shutil.rmtree(folder, ignore_errors=True)
    return True


# ---- jobs ----------------------------------------------------------------------------------------
class Jobs:
    """The job table and its events; every call opens its own connection, so any thread or process may use it."""

    def __init__(self, runs_dir: str | Path):
        self.runs_dir = Path(runs_dir)
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        with closing(self._connect()) as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(SCHEMA)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.runs_dir / DB, timeout=30, isolation_level=None)
        db.row_factory = sqlite3.Row
        return db

    def _write(self, sql: str, args: tuple) -> int:
        with closing(self._connect()) as db:
            db.execute("BEGIN IMMEDIATE")
            changed = db.execute(sql, args).rowcount
            db.execute("COMMIT")
        return changed

    def create(self, fields: dict) -> str:
        job_id = new_id("ftjob")
        row = {"id": job_id, "created_at": int(time.time()), "status": "validating_files", **fields}
        for key in ("method", "hyperparameters", "metadata"):
            row[key] = json.dumps(row.get(key))
        self._write(f"INSERT INTO jobs ({', '.join(row)}) VALUES ({', '.join('?' * len(row))})", tuple(row.values()))
        self.event(job_id, f"Created fine-tuning job: {job_id}")
        return job_id

    def get(self, job_id: str) -> dict | None:
        if not valid_id(job_id, "ftjob"):
            return None
        with closing(self._connect()) as db:
            row = db.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return dict(row) if row else None

    def all(self, status: tuple[str, ...] | None = None) -> list[dict]:
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY created_at DESC, rowid DESC").fetchall()
        return [dict(r) for r in rows if status is None or r["status"] in status]

    def update(self, job_id: str, only_if: tuple[str, ...] | None = None, **fields) -> bool:
        """Set fields; with `only_if`, only while the job is in one of those states (a compare-and-set)."""
        fields = {k: json.dumps(v) if k in ("error", "result_files", "best_metrics") else v for k, v in fields.items()}
        sql = f"UPDATE jobs SET {', '.join(f'{k} = ?' for k in fields)} WHERE id = ?"
        args = (*fields.values(), job_id)
        if only_if:
            sql += f" AND status IN ({', '.join('?' * len(only_if))})"
            args += tuple(only_if)
        return self._write(sql, args) > 0

    def event(self, job_id: str, message: str, level: str = "info", data: dict | None = None) -> None:
        self._write("INSERT INTO events (job_id, created_at, level, type, message, data) VALUES (?, ?, ?, ?, ?, ?)",
                    (job_id, int(time.time()), level, "metrics" if data else "message", message,
                     json.dumps(data) if data else None))

    def events(self, job_id: str, after: str | None = None, limit: int = 20) -> tuple[list[dict], bool]:
        """Newest first, as OpenAI lists them; `after` is an event id from an earlier page."""
        bound = int(after.removeprefix("ftevent-")) if after and after.removeprefix("ftevent-").isdigit() else None
        with closing(self._connect()) as db:
            rows = db.execute("SELECT * FROM events WHERE job_id = ? AND (? IS NULL OR seq < ?) ORDER BY seq DESC "
                              "LIMIT ?", (job_id, bound, bound, limit + 1)).fetchall()
        out = [{"object": "fine_tuning.job.event", "id": f"ftevent-{r['seq']}", "created_at": r["created_at"],
                "level": r["level"], "message": r["message"], "type": r["type"],
                "data": json.loads(r["data"]) if r["data"] else {}} for r in rows[:limit]]
        return out, len(rows) > limit

    def model_run(self, name: str) -> Path | None:
        """The run folder behind an `ft:` model name (or one of its `:ckpt-step-N` checkpoints)."""
        name = re.sub(r":ckpt-step-\d+$", "", name)
        with closing(self._connect()) as db:
            row = db.execute("SELECT run_dir FROM jobs WHERE fine_tuned_model = ? AND status = 'succeeded'",
                             (name,)).fetchone()
        return Path(row["run_dir"]) if row and row["run_dir"] else None

    def models(self) -> list[str]:
        return [j["fine_tuned_model"] for j in self.all(("succeeded",)) if j["fine_tuned_model"]]


def job_object(job: dict) -> dict:
    """A job row in the shape of OpenAI's `fine_tuning.job`."""
    method = json.loads(job["method"])
    hyper = json.loads(job["hyperparameters"])
    return {
        "object": "fine_tuning.job", "id": job["id"], "created_at": job["created_at"], "model": job["model"],
        "status": job["status"], "training_file": job["training_file"], "validation_file": job["validation_file"],
        "hyperparameters": hyper, "method": {"type": method, method: {"hyperparameters": hyper}},
        "fine_tuned_model": job["fine_tuned_model"], "finished_at": job["finished_at"],
        "trained_tokens": job["trained_tokens"], "estimated_finish": job["estimated_finish"],
        "result_files": json.loads(job["result_files"]), "error": json.loads(job["error"]) if job["error"] else None,
        "organization_id": "tailored", "seed": job["seed"], "suffix": job["suffix"],
        "metadata": json.loads(job["metadata"]) if job["metadata"] else None, "integrations": [],
        "user_provided_suffix": job["suffix"],
    }
