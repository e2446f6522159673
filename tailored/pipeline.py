"""The public `train`, `evaluate` and `check`: data → check → LoRA → best adapter → base vs tuned."""

from __future__ import annotations

import datetime as dt
import json
import platform
import shutil
from collections import Counter
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tailored import atomic
from tailored.data.audit import Finding
from tailored.data.prepare import Prepared, load_splits, prepare
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.data.encode import stop_token_ids
from tailored.errors import TailoredError
from tailored.evaluation import report as html_report
from tailored.evaluation.compare import Comparison, compare, compare_classifier, print_comparison
from tailored.evaluation.evidence import gather, print_evidence
from tailored.models import context_length, load_causal_lm, load_tokenizer, materialise, parameter_count, resolve_base
from tailored.atomic import sha256_file
from tailored.runs import COMPLETE, new_run_dir, read_json, unfinished_runs
from tailored.training import classifier, defaults, lora


@dataclass
class Run:
    path: Path | None  # None for --explain, which trains nothing
    metrics: dict

    def __str__(self) -> str:
        return str(self.path)

    @property
    def passed(self) -> bool:
        """False when --fail-if-worse or a --min floor failed."""
        return self.metrics.get("eval", {}).get("review", {}).get("gate", {}).get("passed", True)


def _console(quiet: bool) -> Console:
    return Console(quiet=quiet, stderr=False, highlight=False)


def shared_system_prompt(prep: Prepared) -> str | None:
    """The system message every training example starts with, if they all share one.

    `predict` adds it to a bare prompt, so the tuned model is asked the way it was trained.
    """
    firsts = Counter(ex.messages[0]["content"] if ex.messages[0]["role"] == "system" else None
                     for ex in prep.train_examples)
    (prompt, count), = firsts.most_common(1)
    return prompt if count == len(prep.train_examples) else None


def check(data: str | Path, data_cfg: DataConfig | None = None, base: str = "smollm2-135m", seed: int = 0) -> dict:
    """Read, validate, audit and tokenise `data` without training.

    Returns {"errors": [...], "warnings": [...], "profile": {...}}; nothing is raised for bad rows.
    """
    data_cfg = data_cfg or DataConfig()
    task = "classify" if resolve_base(base).kind == "encoder" else "generate"
    prep, (resolved, _) = prepare_data(data, data_cfg, base, seed, task)
    return report(prep, estimated_profile(prep, resolved))


def estimated_profile(prep: Prepared, base) -> dict:
    """The profile with a training-time estimate for the default settings on this machine."""
    epochs, _ = defaults.choose_epochs(len(prep.train_encoded))
    return prep.profile(parameter_count(base), epochs)


def report(prep: Prepared, profile: dict) -> dict:
    return {"errors": [str(p) for p in prep.errors], "warnings": [f.to_dict() for f in prep.findings],
            "profile": profile}


def prepare_data(data, data_cfg: DataConfig, base_name: str, seed: int, task: str = "generate"):
    base = resolve_base(base_name)
    if task == "classify":
        return _prepare_classifier(data, data_cfg, base, seed), (base, load_tokenizer(base))
    if base.kind != "causal":
        raise TailoredError(f"base '{base_name}' is an encoder; it can classify (--task classify) but not "
                            "generate text — use smollm2-135m or gemma3-270m")
    tokenizer = load_tokenizer(base)
    prep = prepare(data, data_cfg, seed, tokenizer, stop_token_ids(tokenizer), context_length(base))
    return prep, (base, tokenizer)


def _prepare_classifier(data, data_cfg: DataConfig, base, seed: int) -> Prepared:
    if data_cfg.mix:
        raise TailoredError("--mix is for generating models; a classifier learns only its labels")
    prep = load_splits(data, data_cfg, seed)
    prep.context = context_length(base)
    if prep.train is None:
        return prep
    if not prep.train.labels:
        raise TailoredError(f"{data}: --task classify needs text/label rows, and this file is "
                            f"{prep.train.format} — train a generating model instead (leave out --task)")
    tokenizer, too_long = load_tokenizer(base), []
    limit = data_cfg.max_length or prep.context
    prep.train_encoded = classifier.encode(tokenizer, prep.train_examples, prep.train.labels, limit, too_long)
    prep.valid_encoded = classifier.encode(tokenizer, prep.valid_examples, prep.train.labels, limit, too_long)
    if data_cfg.too_long == "error":
        prep.errors.extend(too_long)
    elif too_long:
        prep.findings.append(Finding("too-long", f"{len(too_long)} rows are over {limit} tokens and will be "
                                                 "dropped (--too-long drop), never cut",
                                     [p.line for p in too_long[:10]], len(too_long)))
    return prep


def train(
    data: str | Path | None,
    train_cfg: TrainConfig | None = None,
    data_cfg: DataConfig | None = None,
    eval_cfg: EvalConfig | None = None,
    run_cfg: RunConfig | None = None,
    quiet: bool = False,
) -> Run:
    """Fine-tune a base on `data`, keep the best adapter, and compare base vs tuned on held-out rows."""
    train_cfg, data_cfg = train_cfg or TrainConfig(), data_cfg or DataConfig()
    eval_cfg, run_cfg = eval_cfg or EvalConfig(), run_cfg or RunConfig()
    console = _console(quiet)
    resume_dir = None
    if run_cfg.resume:  # the run's own settings and data, not the ones on this command line
        resume_dir, data, train_cfg, data_cfg, eval_cfg = _saved_run(Path(run_cfg.resume))
        run_cfg = replace(run_cfg, name=resume_dir.parent.name, runs_dir=str(resume_dir.parent.parent))
    if data is None:
        raise TailoredError("no training data — pass a .jsonl, .csv or .parquet file, or --resume RUN")

    # Everything that can be wrong with the data is found before the model loads.
    classify = train_cfg.task == "classify"
    prep, (base, tokenizer) = prepare_data(data, data_cfg, train_cfg.base, train_cfg.seed, train_cfg.task)
    prep.raise_errors(data_cfg.skip_invalid)
    longest = max(len(e.input_ids) for e in prep.train_encoded + prep.valid_encoded)
    context = prep.context

    if classify:
        model = classifier.setup(materialise(base).path, prep.train.labels, train_cfg, Path(base.path).exists())
    else:
        model = load_causal_lm(base)
    n_params = sum(p.numel() for p in model.parameters())
    train_cfg, data_cfg, reasons = defaults.resolve(train_cfg, data_cfg, len(prep.train_encoded), longest, n_params,
                                                    min(2048, context))
    profile = prep.profile(n_params, train_cfg.epochs)
    console.print(f"[bold]data[/bold] {data}: {profile['rows']} rows ({profile['format']}), "
                  f"{profile['train_rows']} train / {profile['validation_rows']} valid ({prep.valid_source}), "
                  f"{profile['heldout_rows']} held-out"
                  + (f", {profile['mixed_rows']} general rows mixed in from {data_cfg.mix_file}" if prep.mixed else ""))
    if prep.errors:
        console.print(f"[yellow]skipped {len(prep.errors)} rows with errors (--skip-invalid)[/yellow]")
    for finding in prep.findings:
        console.print(f"[yellow]warning[/yellow] {escape(str(finding))}")
    for key, why in reasons.items():
        console.print(f"[dim]{key} = {getattr(train_cfg, key, getattr(data_cfg, key, None))}: {why}[/dim]")

    if run_cfg.explain:
        return Run(None, {"settings": {"train": asdict(train_cfg), "data": asdict(data_cfg)}, "reasons": reasons})

    name = run_cfg.name or Path(data).stem
    saved = {"train": asdict(train_cfg), "data": asdict(data_cfg), "eval": asdict(eval_cfg), "reasons": reasons}
    resume_dir = resume_dir or _same_unfinished_run(run_cfg.runs_dir, name, prep.train.sha256, saved)
    run_dir = resume_dir or new_run_dir(run_cfg.runs_dir, name)
    if resume_dir:
        console.print(f"[bold]resuming[/bold] {run_dir} from its last complete checkpoint")
    lineage = {
        "name": run_dir.parent.name, "version": int(run_dir.name[1:]), "parent": None,
        "created": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "base": {"name": train_cfg.base, "fingerprint": base.fingerprint(), "kind": base.kind},
        "data": {"train": {"path": str(data), "sha256": prep.train.sha256},
                 "valid": prep.valid_source,
                 "heldout": ({"path": prep.heldout.path, "sha256": prep.heldout.sha256} if prep.heldout else None)},
        "task": {"kind": train_cfg.task, "method": "full" if classify else train_cfg.method,
                 "format": prep.train.format, "labels": prep.train.labels,
                 "system_prompt": shared_system_prompt(prep)},
        "machine": {"python": platform.python_version(), "platform": platform.platform()},
    }
    if not resume_dir:  # a resumed run keeps the lineage and reasons it started with
        atomic.write_json(run_dir / "run.json", lineage)
        atomic.write_json(run_dir / "config.json", saved)
    check_report = report(prep, profile)
    atomic.write_json(run_dir / "check.json", check_report)
    console.print(f"[bold]run[/bold] {run_dir}")

    trainer = classifier if classify else lora
    model = model if classify else lora.setup(model, train_cfg)
    bf16 = lora.use_bf16(train_cfg, lora.device_of(model))
    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TextColumn("valid {task.fields[valid]}"), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("train", total=None, loss="-", valid="-")

        def on_train(info: dict) -> None:
            progress.update(task, completed=info["step"], total=info["total_steps"], loss=f"{info['train_loss']:.3f}")

        def on_val(info: dict) -> None:
            progress.update(task, valid=f"{info['valid_loss']:.3f}{' *' if info['improved'] else ''}")

        result, _ = trainer.fit(model, prep.train_encoded, prep.valid_encoded, train_cfg, tokenizer.pad_token_id,
                             on_train, on_val, checkpoint_dir=run_dir / "checkpoints")
    speed = result.trained_tokens / max(result.seconds, 1e-9)
    console.print(f"trained {result.steps} steps in {result.seconds:.0f}s ({speed:.0f} tokens/s); "
                  f"best valid loss {result.best_valid_loss if result.best_valid_loss is None else round(result.best_valid_loss, 4)}"
                  f" at step {result.best_step}{' (stopped early)' if result.stopped_early else ''}")

    if classify:
        classifier.save(model, tokenizer, run_dir / "classifier")
    else:  # the adapter, or the whole model after full fine-tuning
        lora.save(model, run_dir / ("model" if train_cfg.method == "full" else "adapter"))
        tokenizer.save_pretrained(run_dir / "tokenizer")  # carries the chat template used in training
    atomic.write_json(run_dir / "history.json", result.history)
    metrics = {"train": {k: v for k, v in asdict(result).items() if k != "history"}, "tokens_per_second": speed,
               "overfitting": lora.overfitting(result.history)}
    if metrics["overfitting"]:
        console.print(f"[yellow]warning overfitting: {escape(metrics['overfitting']['message'])}[/yellow]")

    rows, where = (prep.heldout.examples, "held-out") if prep.heldout else (prep.valid_examples, "validation")
    if run_cfg.evaluate and rows:
        base_model = load_causal_lm(base) if train_cfg.method == "full" and not classify else None
        comparison = _compare(model, tokenizer, rows, prep.train_examples, prep.train.labels, eval_cfg, bf16,
                              classify, base_model)
        metrics["eval"] = {**comparison.to_dict(), "on": where}
        print_comparison(comparison, console, eval_cfg.samples, where)
        print_evidence(comparison.review, console)
    atomic.write_json(run_dir / "metrics.json", metrics)
    for target in [run_dir / "report.html"] + ([Path(eval_cfg.report)] if eval_cfg.report else []):
        # config and lineage from disk: a resumed run keeps the ones it started with
        html_report.write(target, f"{run_dir.parent.name} {run_dir.name}", metrics.get("eval"), result.history,
                          check_report, read_json(run_dir / "config.json"), read_json(run_dir / "run.json"))
    atomic.write_text(run_dir / COMPLETE, dt.datetime.now(dt.timezone.utc).isoformat() + "\n")
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # only needed to resume an unfinished run
    console.print(f"[bold green]done[/bold green] → {run_dir}   report: {run_dir / 'report.html'}   "
                  f"try: tailor predict {run_dir} \"…\"")
    return Run(run_dir, metrics)


def _compare(model, tokenizer, rows, train_rows, labels, eval_cfg: EvalConfig, bf16: bool, classify: bool,
             base_model=None) -> Comparison:
    """Before vs tuned on `rows`, with the evidence attached; shared by `train` and `evaluate`."""
    if classify:
        comparison = compare_classifier(model, tokenizer, rows, train_rows, labels, eval_cfg, bf16)
    else:
        comparison = compare(model, tokenizer, rows, labels, eval_cfg, bf16, base_model)
    gather(comparison, eval_cfg, labels, [ex.target for ex in train_rows], None if classify else model, tokenizer,
           rows, bf16, base_model)
    return comparison


def _saved_run(path: Path):
    """Data path and settings of an unfinished run, for --resume."""
    if not (path / "run.json").exists():
        raise TailoredError(f"{path}: not a run folder (no run.json) — pass a folder like runs/NAME/v3")
    if (path / COMPLETE).exists():
        raise TailoredError(f"{path}: this run already finished — nothing to resume")
    lineage, saved = read_json(path / "run.json"), read_json(path / "config.json")
    data = lineage["data"]["train"]["path"]
    if not Path(data).exists() or sha256_file(data) != lineage["data"]["train"]["sha256"]:
        raise TailoredError(f"{path}: its training data {data} is missing or changed since the run started — "
                            "train a new version instead")
    return (path, data, TrainConfig(**saved["train"]), DataConfig(**saved["data"]), EvalConfig(**saved["eval"]))


def _same_unfinished_run(runs_dir: str, name: str, data_sha: str, saved: dict) -> Path | None:
    """An interrupted run of the same data and settings: rerunning the command continues it."""
    for path in unfinished_runs(runs_dir, name):
        try:
            same = (read_json(path / "run.json")["data"]["train"]["sha256"] == data_sha
                    and read_json(path / "config.json") == json.loads(json.dumps(saved)))
        except (TailoredError, KeyError):
            continue
        if same:
            return path
    return None


def evaluate(run: str | Path, data: str | Path | None = None, eval_cfg: EvalConfig | None = None,
             runs_dir: str = "runs", quiet: bool = False) -> Comparison:
    """Base vs tuned for a finished run, on `data` or the run's own held-out file."""
    from tailored.data import load_dataset
    from tailored.tuned import load

    eval_cfg = eval_cfg or EvalConfig()
    tuned = load(run, runs_dir=runs_dir)
    path = data or (tuned.lineage["data"]["heldout"] or {}).get("path")
    if path is None:
        raise TailoredError(f"run {tuned.path} has no held-out file — pass one with --data FILE")
    dataset = load_dataset(path, labels=tuned.labels)
    lineage, saved = tuned.lineage, read_json(tuned.path / "config.json")
    train_path = lineage["data"]["train"]["path"]
    train_rows = load_splits(train_path, DataConfig(**saved["data"]), saved["train"]["seed"]).train_examples \
        if Path(train_path).exists() else []  # without it: no baseline for classifiers, no memorisation check
    classify = tuned.kind == "classify"
    if classify and not train_rows:
        raise TailoredError(f"{train_path}: the run's training data is gone; the classifier's baseline needs it")
    base_model = load_causal_lm(tuned.base) if (tuned.path / "model").is_dir() else None
    comparison = _compare(tuned.model, tuned.tokenizer, dataset.examples, train_rows, tuned.labels, eval_cfg,
                          tuned.bf16, classify, base_model)
    console = _console(quiet)
    print_comparison(comparison, console, eval_cfg.samples)
    print_evidence(comparison.review, console)
    if eval_cfg.report:
        history = read_json(tuned.path / "history.json") if (tuned.path / "history.json").exists() else []
        html_report.write(Path(eval_cfg.report), f"{tuned.path.parent.name} {tuned.path.name} on {Path(path).name}",
                     {**comparison.to_dict(), "on": Path(path).name}, history, None, saved, lineage)
        console.print(f"report → {eval_cfg.report}")
    return comparison
