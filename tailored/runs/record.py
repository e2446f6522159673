"""What a run folder records about itself, and finding the run an interrupted command should continue.

A run's `run.json` (lineage: base, data, task, machine) and `config.json` (settings and the reason for
each automatic one) are written once, when the run starts; a resumed run keeps the ones it began with.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from dataclasses import asdict
from pathlib import Path

from tailored import atomic
from tailored.atomic import sha256_file
from tailored.config import DataConfig, EvalConfig, TrainConfig
from tailored.data.documents import documents_digest
from tailored.data.prepare import Prepared
from tailored.errors import TailoredError
from tailored.runs.diff import keep_data_copy, keep_documents_copy
from tailored.runs.store import COMPLETE, RUNNING, new_run_dir, read_json, status, unfinished_runs


def settings(train_cfg: TrainConfig, data_cfg: DataConfig, eval_cfg: EvalConfig, reasons: dict) -> dict:
    return {"train": asdict(train_cfg), "data": asdict(data_cfg), "eval": asdict(eval_cfg), "reasons": reasons}


def lineage(run_dir: Path, data, train_cfg: TrainConfig, base, prep: Prepared) -> dict:
    classify = train_cfg.task == "classify"
    return {
        "name": run_dir.parent.name, "version": int(run_dir.name[1:]), "parent": None,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "base": {"name": train_cfg.base, "fingerprint": base.fingerprint(), "kind": base.kind},
        "data": {"train": {"path": str(data), "sha256": prep.train.sha256},
                 "valid": prep.valid_source,
                 "heldout": ({"path": prep.heldout.path, "sha256": prep.heldout.sha256} if prep.heldout else None),
                 **({"documents": {"path": os.path.commonpath([d.source for d in prep.documents]),
                                   "sha256": documents_digest(prep.documents)}} if prep.documents else {})},
        "task": {"kind": train_cfg.task, "method": "full" if classify else train_cfg.method,
                 "format": prep.train.format, "labels": prep.train.labels,
                 "system_prompt": prep.system_prompt},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }


def start_run(runs_dir: str, name: str, data, train_cfg: TrainConfig, base, prep: Prepared, saved: dict,
              resume_dir: Path | None = None, family: dict | None = None) -> tuple[Path, bool]:
    """The folder to train in: the one asked to resume, an interrupted run of the same data and settings,
    or a new version. Returns (folder, resumed). `family` is the parent and the data diff, when retraining.

    A new folder gets a copy of its training file and documents first, then its lineage and settings."""
    resume_dir = resume_dir or same_unfinished_run(runs_dir, name, prep.train.sha256, saved)
    if resume_dir:
        return resume_dir, True
    run_dir = new_run_dir(runs_dir, name)
    keep_data_copy(run_dir, data)
    keep_documents_copy(run_dir, [d.source for d in prep.documents if Path(d.source) != Path(data)])  # not twice
    atomic.write_json(run_dir / "run.json", {**lineage(run_dir, data, train_cfg, base, prep), **(family or {})})
    atomic.write_json(run_dir / "config.json", saved)
    return run_dir, False


def saved_run(path: Path) -> tuple[Path, str, TrainConfig, DataConfig, EvalConfig]:
    """Data path and settings of an unfinished run, for --resume."""
    if not (path / "run.json").exists():
        raise TailoredError(f"{path}: not a run folder (no run.json) — pass a folder like runs/NAME/v3")
    if (path / COMPLETE).exists():
        raise TailoredError(f"{path}: this run already finished — nothing to resume")
    if status(path) == "running":
        raise TailoredError(f"{path}: another process is training in it right now")
    lineage_, saved = read_json(path / "run.json"), read_json(path / "config.json")
    data = lineage_["data"]["train"]["path"]
    if not Path(data).exists() or sha256_file(data) != lineage_["data"]["train"]["sha256"]:
        raise TailoredError(f"{path}: its training data {data} is missing or changed since the run started — "
                            "train a new version instead")
    return path, data, TrainConfig(**saved["train"]), DataConfig(**saved["data"]), EvalConfig(**saved["eval"])


def same_unfinished_run(runs_dir: str, name: str, data_sha: str, saved: dict) -> Path | None:
    """An interrupted run of the same data and settings: rerunning the command continues it.

    Only a folder whose trainer took the RUNNING lock and is gone (killed, or failed) qualifies: one
    another process is training in, or has only just created, is left alone, so concurrent runs get
    versions of their own."""
    for path in unfinished_runs(runs_dir, name):
        if not (path / RUNNING).exists() or status(path) not in ("interrupted", "failed"):
            continue  # a failed run resumes too: a crashed rank or a full disk is worth continuing after
        try:
            same = (read_json(path / "run.json")["data"]["train"]["sha256"] == data_sha
                    and read_json(path / "config.json") == json.loads(json.dumps(saved)))
        except (TailoredError, KeyError):
            continue
        if same:
            return path
    return None
