"""The job runner: checks new jobs' files, then trains queued jobs one at a time, each in a process of its own.

The runner itself is a small supervising thread of the server; all training happens in child
processes (`worker.py`), so the server keeps answering while a job trains. The queue is the job
table, so it survives restarts: a job found `running` at start belonged to a process that died with
the last server, and is queued again; its worker resumes the run folder from its last checkpoint.
Cancel and pause kill the child at once (pause keeps the folder, and resuming continues it exactly).
"""

from __future__ import annotations

import ctypes
import fcntl
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

from tailored.fine_tuning import store

PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:  # runs in the child between fork and exec
    # A server killed with SIGKILL takes its training process with it, instead of leaving an orphan
    # training unsupervised; the restarted server resumes the job from its checkpoint.
    ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


class Runner:
    def __init__(self, runs_dir: str | Path, concurrent: int = 1, poll_s: float = 0.2, log: Path | None = None,
                 threads: int | None = None):
        self.runs_dir = Path(runs_dir).resolve()
        # a trainer on every core would triple chat latency on 2 cores; one core stays the server's. The
        # cores this process may run on, not the machine's: a container or taskset may grant fewer.
        self.threads = threads or max(1, len(os.sched_getaffinity(0)) - 1)
        self.jobs = store.Jobs(self.runs_dir)
        self.concurrent, self.poll_s = concurrent, poll_s
        self.children: dict[str, subprocess.Popen] = {}
        self.stopping = threading.Event()
        self.log = log or self.runs_dir / "fine_tuning.log"
        self.thread = threading.Thread(target=self._loop, name="tailored-jobs", daemon=True)
        self.lock: int | None = None

    def start(self) -> "Runner":
        # One runner per runs folder: a second server on the same folder serves, but leaves jobs to the first
        self.lock = os.open(self.runs_dir / "fine_tuning.lock", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self.lock)
            self.lock = None
            print(f"fine-tuning jobs in {self.runs_dir} are run by another server; this one only serves")
            return self
        for job in self.jobs.all(("running",)):  # its process died with the previous server
            self.jobs.update(job["id"], only_if=("running",), status="queued")
            self.jobs.event(job["id"], "The server restarted: the job is queued again and resumes from its last "
                                       "checkpoint")
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        if self.thread.is_alive():
            self.thread.join(10)
        for child in self.children.values():
            child.kill()
            child.wait()
        if self.lock is not None:
            os.close(self.lock)  # closing drops the lock
            self.lock = None

    def _loop(self) -> None:
        while not self.stopping.is_set():
            try:
                self._tick()
            except Exception as e:  # noqa: BLE001 - a bad row must not stop the queue; it is logged
                with open(self.log, "a") as f:
                    f.write(f"runner: {type(e).__name__}: {e}\n")
            self.stopping.wait(self.poll_s)

    def _tick(self) -> None:
        for job in reversed(self.jobs.all(("validating_files",))):
            self._validate(job)
        for job_id, child in list(self.children.items()):
            state = (self.jobs.get(job_id) or {}).get("status")
            if child.poll() is None and state in ("cancelled", "paused"):
                child.kill()  # prompt: the checkpoint on disk is what a resumed job continues from
            if child.poll() is not None:
                del self.children[job_id]
                if (self.jobs.get(job_id) or {}).get("status") == "running":  # it died without a verdict
                    from tailored.fine_tuning.worker import fail

                    fail(self.jobs, job_id, "internal_error", f"the training process exited with code "
                                                              f"{child.returncode}; see {self.log}")
        queued = list(reversed(self.jobs.all(("queued",))))  # oldest first
        while queued and len(self.children) < self.concurrent:
            self._launch(queued.pop(0)["id"])

    def _launch(self, job_id: str) -> None:
        with open(self.log, "a") as log:
            self.children[job_id] = subprocess.Popen(
                [sys.executable, "-m", "tailored.fine_tuning.worker", str(self.runs_dir), job_id],
                stdout=log, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent,
                env={**os.environ, "OMP_NUM_THREADS": str(self.threads)})

    def _validate(self, job: dict) -> None:
        """`tailor check` on the job's files: any error fails the job with the file:line messages."""
        from tailored.pipeline import check
        from tailored.fine_tuning.worker import fail

        problems = []
        for key in ("training_file", "validation_file"):
            file_id = job[key]
            if file_id is None:
                continue
            path = store.file_path(self.runs_dir, file_id)
            if path is None:
                problems.append(f"{key} {file_id}: no such file (it was deleted?)")
                continue
            try:
                report = check(path, base=job["model"])
            except Exception as e:  # noqa: BLE001 - an unreadable file is the user's to fix
                problems.append(f"{path.name}: {e}")
                continue
            problems += [e.replace(str(path), path.name) for e in report.errors]
        if problems:
            fail(self.jobs, job["id"], "invalid_training_file", "\n".join(problems[:20])
                 + (f"\n… and {len(problems) - 20} more" if len(problems) > 20 else ""))
        elif self.jobs.update(job["id"], only_if=("validating_files",), status="queued"):
            self.jobs.event(job["id"], "Files validated, moving job to queued state")
