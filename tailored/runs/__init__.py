"""Versioned run folders: runs/<name>/v<N>/, each finished with a COMPLETE marker written last."""

from tailored.runs.store import COMPLETE, new_run_dir, read_json, resolve_run, unfinished_runs

__all__ = ["COMPLETE", "new_run_dir", "read_json", "resolve_run", "unfinished_runs"]
