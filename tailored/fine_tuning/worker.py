"""One fine-tuning job, trained in a process of its own: `python -m tailored.fine_tuning.worker RUNS JOB`.

It is an ordinary `tailored.train` run (so `tailor runs`, the report and export all work on it),
named after the job, so running the same job again after a kill resumes its interrupted folder
exactly. Progress goes to the job's events; the end state is written here, the runner only reaps.
"""

from __future__ import annotations

import csv
import io
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

from tailored.config import DataConfig, EvalConfig, RunConfig, SettingsError, TrainConfig, openai_names
from tailored.errors import TailoredError
from tailored.fine_tuning import store

RESULT_COLUMNS = ["step", "train_loss", "train_mean_token_accuracy", "valid_loss", "valid_mean_token_accuracy"]


def openai_metrics(entry: dict, method: str) -> dict:
    """A history entry's losses and accuracies under OpenAI's metric names.

    The loop's accuracy is the share of a method's units it gets right: labelled tokens that are the
    argmax for supervised jobs, which is OpenAI's mean token accuracy. For DPO jobs it is the share of
    pairs ranked right, a different quantity, so it is left out rather than shown under that name.
    """
    names = {"train_loss": "train_loss", "valid_loss": "valid_loss"}
    if method != "dpo":
        names |= {"train_accuracy": "train_mean_token_accuracy", "valid_accuracy": "valid_mean_token_accuracy"}
    return {ours: round(entry[key], 6) for key, ours in names.items() if key in entry}


def run_name(job: dict) -> str:
    short = job["id"].removeprefix("ftjob-")[:8]
    return f"{job['suffix']}-{short}" if job["suffix"] else f"ft-{short}"


def model_name(job: dict) -> str:
    """OpenAI's `ft:BASE:ORG:SUFFIX:ID`, with our base's short name and `tailored` as the organisation."""
    return f"ft:{Path(job['model']).name}:tailored:{job['suffix'] or ''}:{job['id'].removeprefix('ftjob-')[:8]}"


def train_config(model: str, method: str, hyperparameters: dict, seed: int = 0) -> TrainConfig:
    """A job's settings as ours: OpenAI's hyperparameter names, `"auto"` meaning tailored chooses."""
    problems: list[str] = []
    chosen = {k: v for k, v in hyperparameters.items() if v != "auto"}
    hyper = openai_names(chosen, "hyperparameters", problems)
    if problems:
        raise SettingsError("; ".join(problems))
    return TrainConfig(base=model, seed=seed, **({"method": "dpo"} if method == "dpo" else {}),
                       **{k: v for k, v in hyper.items() if v is not None})


def configs(job: dict, runs_dir: Path) -> tuple[TrainConfig, DataConfig, RunConfig]:
    train = train_config(job["model"], json.loads(job["method"]), json.loads(job["hyperparameters"]), job["seed"])
    valid = store.file_path(runs_dir, job["validation_file"]) if job["validation_file"] else None
    return train, DataConfig(valid=str(valid) if valid else None), RunConfig(name=run_name(job), runs_dir=str(runs_dir))


def result_csv(history: list[dict], method: str = "supervised") -> str:
    """Step metrics in OpenAI's result-file shape: a row per optimizer step, validation columns where one ran."""
    steps: dict[int, dict] = {}
    for entry in history:
        steps.setdefault(entry["step"], {"step": entry["step"]}).update(openai_metrics(entry, method))
    out = io.StringIO()
    writer = csv.DictWriter(out, RESULT_COLUMNS, restval="")
    writer.writeheader()
    writer.writerows(steps[s] for s in sorted(steps) if s > 0)
    return out.getvalue()


def run(runs_dir: Path, job_id: str) -> int:
    jobs = store.Jobs(runs_dir)
    job = jobs.get(job_id)
    if job is None or not jobs.update(job_id, only_if=("queued", "running"), status="running"):
        return 0  # cancelled or paused before this process started
    from tailored.pipeline import train

    last = {"at": time.monotonic(), "step": None}
    method = json.loads(job["method"])

    def on_event(event: dict) -> None:
        if event["kind"] == "run":
            jobs.update(job_id, run_dir=event["path"])
            jobs.event(job_id, f"{'Resumed' if event['resumed'] else 'Started'} training in {event['path']}")
        elif event["kind"] == "train":
            step, total = event["step"], event["total_steps"]
            now = time.monotonic()
            if last["step"] is not None and step > last["step"]:
                per_step = (now - last["at"]) / (step - last["step"])
                jobs.update(job_id, estimated_finish=int(time.time() + per_step * (total - step)),
                            trained_tokens=event["tokens"])
            last.update(at=now, step=step)
            jobs.event(job_id, f"Step {step}/{total}: training loss={event['train_loss']:.4f}",
                       data={"step": step, "total_steps": total, **openai_metrics(event, method)})
        elif event["kind"] == "valid":
            jobs.event(job_id, f"Step {event['step']}: validation loss={event['valid_loss']:.4f}",
                       data={"step": event["step"], **openai_metrics(event, method)})

    try:
        train_cfg, data_cfg, run_cfg = configs(job, runs_dir)
        result = train(str(store.file_path(runs_dir, job["training_file"])), train_cfg, data_cfg,
                       EvalConfig(), run_cfg, quiet=True, on_event=on_event)
    except (TailoredError, SettingsError) as e:
        return fail(jobs, job_id, "training_failed", str(e))
    except Exception as e:  # noqa: BLE001 - the job fails with the reason; the runner lives on
        traceback.print_exc()
        return fail(jobs, job_id, "internal_error", f"{type(e).__name__}: {e}")
    with tempfile.NamedTemporaryFile("w", suffix=".csv", dir=runs_dir, delete=False) as f:
        f.write(result_csv(result.fit.history, method))
    results = store.save_file(runs_dir, Path(f.name), "step_metrics.csv", "fine-tune-results")
    history = [h for h in result.fit.history if h["step"] == result.fit.best_step]
    best = {k: v for h in history for k, v in openai_metrics(h, method).items()}
    jobs.update(job_id, only_if=("running",), status="succeeded", fine_tuned_model=model_name(job),
                finished_at=int(time.time()), trained_tokens=result.fit.trained_tokens, estimated_finish=None,
                result_files=[results["id"]], best_step=result.fit.best_step, best_metrics=best)
    jobs.event(job_id, f"New fine-tuned model created: {model_name(job)}")
    jobs.event(job_id, "The job has successfully completed")
    return 0


def fail(jobs: store.Jobs, job_id: str, code: str, message: str) -> int:
    jobs.update(job_id, only_if=("running", "validating_files", "queued"), status="failed",
                finished_at=int(time.time()), error={"code": code, "message": message, "param": None},
                estimated_finish=None)
    jobs.event(job_id, f"Fine-tuning job failed: {message}", level="error")
    return 1


if __name__ == "__main__":
    sys.exit(run(Path(sys.argv[1]), sys.argv[2]))
