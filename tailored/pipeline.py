"""The public `check`, `train` and `evaluate`: data → check → fit → best weights → base vs tuned.

`train` is plain steps: read and check the data (before any model loads), start or resume a run,
fit with a progress bar, then finish (save, metrics, evaluation, report, marker). Results are typed
objects; `passed` says whether the run's gate held.
"""

from __future__ import annotations

import datetime as dt
import shutil
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

from rich.console import Console
from rich.markup import escape

from tailored import atomic, guard, maintain
from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig
from tailored.data.audit import Finding
from tailored.data.encode import stop_token_ids
from tailored.data.formats import TASK_PROMPT, attach_task_prompt
from tailored.data.prepare import (Prepared, encode_chat_all, encode_labelled_all, give_task_prompt, load_splits,
                                   render_masked)
from tailored.device import choose_bf16, device_of, generation_bf16
from tailored.errors import TailoredError
from tailored.evaluation import preference, report as html_report
from tailored.evaluation.compare import Comparison, print_comparison
from tailored.evaluation.evidence import assess, print_evidence
from tailored.progress import print_plan, progress_hooks
from tailored.models import context_length, load_causal_lm, load_tokenizer, materialise, parameter_count, resolve_base
from tailored.models import retrieval
from tailored.models.router import describe as describe_router
from tailored.runs import COMPLETE, index, read_json, resolve_run
from tailored.runs.card import write_card
from tailored.runs.record import saved_run, settings, start_run
from tailored.runs.store import running
from tailored.training import checkpoint, classifier, defaults, distributed, dpo, lora
from tailored.training.loop import FitResult, fit, overfitting
from tailored.tuned import house_voice


@dataclass
class CheckReport:
    """What `check` found: every error, the warnings, a profile, and the first rows as trained (`show`)."""

    errors: list[str]
    warnings: list[Finding]
    profile: dict
    strict: bool = False  # warnings fail the check too
    shown: list = field(default_factory=list)  # rich Text: rows exactly as trained, learned tokens marked
    drift: dict | None = None  # `against` a version: how the data moved since it trained, and what to do

    @property
    def passed(self) -> bool:
        return not self.errors and not (self.strict and self.warnings)

    @property
    def verdict(self) -> str:
        line = f"{'ok' if self.passed else 'fail'}: {len(self.errors)} errors, {len(self.warnings)} warnings"
        if self.errors:
            line += " — training refuses to start until the errors are fixed (or --skip-invalid)"
        return line

    def to_dict(self) -> dict:
        return {"errors": self.errors, "warnings": [f.to_dict() for f in self.warnings], "profile": self.profile,
                **({"drift": self.drift} if self.drift else {})}


@dataclass
class Run:
    path: Path | None  # None for --explain, which trains nothing
    metrics: dict
    fit: FitResult | None = None
    comparison: Comparison | None = None

    def __str__(self) -> str:
        return str(self.path)

    @property
    def passed(self) -> bool:
        """False when --fail-if-worse or a --min floor failed."""
        return self.comparison.passed if self.comparison else True


def _console(quiet: bool) -> Console:
    return Console(quiet=quiet, stderr=False, highlight=False)


def _task_of(base_name: str) -> str:
    return "classify" if resolve_base(base_name).kind == "encoder" else "generate"


def prepare_data(data, data_cfg: DataConfig, base_name: str, seed: int, task: str = "generate",
                 guarded: bool = False):
    """The data read, split, audited and encoded for `base_name`; returns (Prepared, (base, tokenizer)).

    The file is read before the base's tokenizer loads, so an unreadable or empty file is reported
    at once rather than after a model load. `guarded`: the guard will replay general rows, so rows
    without a system prompt get tailored's (`give_task_prompt`).
    """
    base = resolve_base(base_name)
    if task != "classify" and base.kind != "causal":
        raise TailoredError(f"base '{base_name}' is an encoder; it can classify (--task classify) but not "
                            "generate text — use smollm2-135m or gemma3-270m")
    prep = load_splits(data, data_cfg, seed)
    if prep.train is None:  # nothing readable: there is nothing to tokenise
        return prep, (base, None)
    if guarded:
        give_task_prompt(prep)
    if task != "classify":  # --retrieve's passages go after the system prompt
        retrieval.ground_prepared(prep, data_cfg.retrieve)
    tokenizer = load_tokenizer(base)
    if task == "classify":
        return encode_labelled_all(prep, tokenizer, data_cfg, context_length(base)), (base, tokenizer)
    return encode_chat_all(prep, tokenizer, data_cfg, stop_token_ids(tokenizer), context_length(base)), \
        (base, tokenizer)


def check(data: str | Path, data_cfg: DataConfig | None = None, base: str = "smollm2-135m", seed: int = 0,
          strict: bool = False, show: int = 0, against: str | None = None, runs_dir: str = "runs") -> CheckReport:
    """Read, validate, audit and tokenise `data` without training; nothing is raised for bad rows.

    `strict` makes warnings fail the check; `show` renders that many rows exactly as trained;
    `against` (a run name or NAME/vN) adds the drift report against what that version learned.
    """
    if against:  # the version decides the base the data is checked against
        base = read_json(resolve_run(against, runs_dir) / "config.json")["train"]["base"]
    task = _task_of(base)
    data_cfg = data_cfg or DataConfig()
    prep, (resolved, tokenizer) = prepare_data(data, data_cfg, base, seed, task, guard.guarded(task, "lora", data_cfg))
    shown = [render_masked(tokenizer, enc) for enc in prep.shown[:show]] if task == "generate" else []
    drift = maintain.drift_report(data, against, runs_dir) if against and not prep.errors else None
    return CheckReport([str(p) for p in prep.errors], prep.findings, estimated_profile(prep, resolved, task), strict,
                       shown, drift)


def estimated_profile(prep: Prepared, base, task: str = "generate") -> dict:
    """The profile with a training-time estimate for the default settings on this machine."""
    if not prep.train_encoded:  # nothing to time, and no reason to open the base's weights
        return prep.profile()
    epochs, _ = defaults.choose_epochs(len(prep.train_encoded), task)
    return prep.profile(parameter_count(base), epochs)


def train(
    data: str | Path | None,
    train_cfg: TrainConfig | None = None,
    data_cfg: DataConfig | None = None,
    eval_cfg: EvalConfig | None = None,
    run_cfg: RunConfig | None = None,
    quiet: bool = False,
    on_event=None,
) -> Run:
    """Fine-tune a base on `data`, keep the best weights, and compare base vs tuned on held-out rows.

    `on_event(dict)`, if given, hears progress as it happens: {"kind": "run", "path"} once the folder
    is chosen, then {"kind": "train", ...} each step and {"kind": "valid", ...} each validation.
    """
    train_cfg, data_cfg = train_cfg or TrainConfig(), data_cfg or DataConfig()
    eval_cfg, run_cfg = eval_cfg or EvalConfig(), run_cfg or RunConfig()
    ranks = distributed.start()  # under torchrun: this process's share of the job; otherwise alone
    if run_cfg.processes > 1 and not ranks.many:
        raise TailoredError(f"processes={run_cfg.processes}: several processes start through torchrun — use "
                            f"`tailor train ... --processes {run_cfg.processes}`, or launch under torchrun yourself")
    if run_cfg.fsdp and not (ranks.many and train_cfg.method == "full" and train_cfg.task == "generate"):
        raise TailoredError("--fsdp shards a fully fine-tuned causal LM among processes: use it with --method full "
                            "and --processes 2 or more (or under torchrun)")
    console = _console(quiet or not ranks.main)
    resume_dir = None
    if run_cfg.resume:  # the run's own settings and data, not the ones on this command line
        resume_dir, data, train_cfg, data_cfg, eval_cfg = saved_run(Path(run_cfg.resume))
        run_cfg = replace(run_cfg, name=resume_dir.parent.name, runs_dir=str(resume_dir.parent.parent),
                          parent=read_json(resume_dir / "run.json").get("parent"))
    parent = None
    if run_cfg.parent:
        parent, train_cfg, note = maintain.inherit(run_cfg, train_cfg)
        console.print(f"[bold]retrain[/bold] {note}")
    if data is None:
        raise TailoredError("no training data — pass a .jsonl, .csv or .parquet file, or --resume RUN")

    # Everything that can be wrong with the data is found before the model loads. Rank 0 goes first, so
    # a GGUF base is converted into the cache once, not by every process at the same time.
    if not ranks.main:
        distributed.barrier(ranks)
    prep, (base, tokenizer) = prepare_data(data, data_cfg, train_cfg.base, train_cfg.seed, train_cfg.task,
                                           guard.guarded(train_cfg.task, train_cfg.method, data_cfg))
    if ranks.main:
        distributed.barrier(ranks)
    prep.raise_errors(data_cfg.skip_invalid)
    if run_cfg.evaluate:
        house_voice(eval_cfg.voice, run_cfg.runs_dir)  # a --voice run that cannot score: said now, not after training
    dpo.check_data(train_cfg.method, prep.train.format, prep.train.path,
                   "--mix" if data_cfg.mix else "--documents" if data_cfg.documents else None)
    if parent:
        maintain.check_parent_compatible(parent, base.fingerprint())
    model = _load_model(train_cfg, base, prep, tokenizer, parent and maintain.parent_weights_path(parent, train_cfg))
    if guard.guarded(train_cfg.task, train_cfg.method, data_cfg) and not run_cfg.explain:
        if not ranks.main:  # rank 0 answers the replay prompts into the cache; the others read it
            distributed.barrier(ranks)
        guard.add_replay(prep, model, tokenizer, base, data_cfg, train_cfg)
        if ranks.main:
            distributed.barrier(ranks)
    if guard.routed(train_cfg.task, train_cfg.method, data_cfg) and ranks.main and not run_cfg.explain:
        prep.routing = guard.fit_router(prep)
        console.print(describe_router(prep.routing))
    n_params = sum(p.numel() for p in model.parameters())
    longest = max(len(e.input_ids) for e in prep.train_encoded + prep.valid_encoded)
    # the task's rows decide the schedule; the guard's replayed rows ride along without changing it
    train_cfg, data_cfg, reasons = defaults.resolve(train_cfg, data_cfg, len(prep.train_encoded) - prep.guard_rows,
                                                    longest, n_params, min(2048, prep.context), parent is not None)
    profile = prep.profile(n_params, train_cfg.epochs)
    print_plan(console, data, data_cfg, train_cfg, prep, profile, reasons)
    if run_cfg.explain:
        return Run(None, {"settings": {"train": asdict(train_cfg), "data": asdict(data_cfg)}, "reasons": reasons})

    saved = settings(train_cfg, data_cfg, eval_cfg, reasons)
    family = maintain.lineage_fields(parent, prep.train.examples) if parent and not resume_dir else {}
    if family:
        d = family["data_diff"]
        console.print(f"[bold]data[/bold] against {family['parent']}: {d['added']} rows added, {d['edited']} edited, "
                      f"{d['removed']} removed, {d['unchanged']} unchanged")
    started = start_run(run_cfg.runs_dir, run_cfg.name or (parent.parent.name if parent else Path(data).stem), data,
                        train_cfg, base, prep, saved, resume_dir, family) if ranks.main else None
    run_dir, resumed = distributed.from_main(started, ranks)  # one run folder for the whole job
    if resumed:
        console.print(f"[bold]resuming[/bold] {run_dir} from its last complete checkpoint")
    check_report = CheckReport([str(p) for p in prep.errors], prep.findings, profile).to_dict()
    if ranks.main:
        atomic.write_json(run_dir / "check.json", check_report)
        if prep.retriever:  # every answer the run gives is grounded in these passages, as training was
            prep.retriever.save(run_dir)
        if prep.router:  # every answer the run gives is routed, as its evaluation was
            prep.router.save(run_dir)
    console.print(f"[bold]run[/bold] {run_dir}" + (f" ({ranks.world} processes)" if ranks.many else ""))
    if on_event and ranks.main:
        on_event({"kind": "run", "path": str(run_dir), "resumed": resumed})

    try:  # the lock marks the folder as running; a failure inside leaves FAILED; the index hears both
        with running(run_dir) if ranks.main else nullcontext():
            if ranks.main:
                index.record(run_cfg.runs_dir, run_dir, strict=False)
            return _train_in(run_dir, model, tokenizer, base, prep, train_cfg, eval_cfg, run_cfg, check_report,
                             parent, ranks, console, on_event)
    finally:
        if ranks.main and not index.record(run_cfg.runs_dir, run_dir, strict=False):
            console.print(f"[yellow]warning[/yellow] the run index ({run_cfg.runs_dir}/index.sqlite) could not be "
                          "updated; the run folder is complete, and `tailor runs` catches up from it")


def _train_in(run_dir: Path, model, tokenizer, base, prep: Prepared, train_cfg: TrainConfig, eval_cfg: EvalConfig,
              run_cfg: RunConfig, check_report: dict, parent: Path | None, ranks, console: Console,
              on_event=None) -> Run:
    """Fit in the run folder, then finish it; the caller holds the folder's RUNNING lock."""
    classify = train_cfg.task == "classify"
    model = model if classify else lora.setup(model, train_cfg)
    if parent:
        maintain.start_weights(parent, model, train_cfg)
    batching = classifier.batching(tokenizer.pad_token_id) if classify else \
        dpo.batching(tokenizer.pad_token_id, train_cfg.beta) if train_cfg.method == "dpo" else \
        lora.batching(tokenizer.pad_token_id, sharded=run_cfg.fsdp)
    if run_cfg.fsdp:
        model = distributed.shard(model)
    with progress_hooks(console, on_event) as hooks:
        result = fit(model, prep.train_encoded, prep.valid_encoded, train_cfg, **batching,
                     **(hooks if ranks.main else {}), checkpoint_dir=run_dir / "checkpoints", ranks=ranks)
    if run_cfg.fsdp:  # rank 0 saves and evaluates a whole, plain model with the best weights
        weights = checkpoint.whole(checkpoint.trainable_state(model))  # every rank takes part in the gather
        if ranks.main:
            model = load_causal_lm(base)
            checkpoint.load_trainable(model, weights)
    distributed.barrier(ranks)
    if not ranks.main:  # rank 0 saves, evaluates and reports alone
        distributed.stop()
        return Run(run_dir, {}, result)
    speed = result.trained_tokens / max(result.seconds, 1e-9)
    best = None if result.best_valid_loss is None else round(result.best_valid_loss, 4)
    console.print(f"trained {result.steps} steps in {result.seconds:.0f}s ({speed:.0f} tokens/s); lowest valid loss "
                  f"{best}, weights of step {result.best_step} kept{' (stopped early)' if result.stopped_early else ''}")
    if classify and result.best_step == 0:
        console.print("kept the frozen encoder with its fitted head (step 0): fine-tuning the encoder never lowered "
                      "the validation loss below it")
    finished = _finish(run_dir, model, tokenizer, base, prep, result, train_cfg, eval_cfg, run_cfg, check_report,
                       console, parent)
    distributed.stop()
    return finished


def _load_model(train_cfg: TrainConfig, base, prep: Prepared, tokenizer, weights: Path | None = None):
    """The model to train: the base's weights, or a parent run's (`weights`) when retraining."""
    if train_cfg.task == "classify":  # the head starts as a probe fitted on the training rows
        return classifier.setup(str(weights or materialise(base).path), prep.train.labels, train_cfg,
                                prep.train_encoded, tokenizer.pad_token_id, weights is not None or Path(base.path).exists())
    if weights:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_pretrained(weights, local_files_only=True)
    return load_causal_lm(base)


def _finish(run_dir: Path, model, tokenizer, base, prep: Prepared, result: FitResult, train_cfg: TrainConfig,
            eval_cfg: EvalConfig, run_cfg: RunConfig, check_report: dict, console: Console,
            parent: Path | None = None) -> Run:
    """Save the weights, evaluate, write metrics and the report, then the COMPLETE marker last."""
    classify = train_cfg.task == "classify"
    if classify:
        classifier.save(model, tokenizer, run_dir / "classifier")
    else:  # the adapter, or the whole model after full fine-tuning
        lora.save(model, run_dir / ("model" if train_cfg.method == "full" else "adapter"))
        tokenizer.save_pretrained(run_dir / "tokenizer")  # carries the chat template used in training
    atomic.write_json(run_dir / "history.json", result.history)
    metrics = {"train": {k: v for k, v in asdict(result).items() if k != "history"},
               "tokens_per_second": result.trained_tokens / max(result.seconds, 1e-9),
               "overfitting": overfitting(result.history), **({"router": prep.routing} if prep.routing else {})}
    if metrics["overfitting"]:
        console.print(f"[yellow]warning overfitting: {escape(metrics['overfitting']['message'])}[/yellow]")

    comparison = None
    rows, where = (prep.heldout.examples, "held-out") if prep.heldout else (prep.valid_examples, "validation")
    if parent and run_cfg.evaluate:
        rows, union = maintain.heldout_union(parent, rows, prep.train.examples, prep.train.labels)
        if prep.task_prompt:  # the parent's rows are asked as this run's are
            attach_task_prompt(rows, prep.task_prompt)
        console.print(f"[bold]compare[/bold] base, parent and new on {union}")
    if run_cfg.evaluate and not rows and prep.documents:
        console.print("no held-out questions to compare base and tuned on: pass --heldout FILE with questions whose "
                      "answers are in the documents (rows may carry `fact`, the words a right answer contains)")
    if run_cfg.evaluate and rows:
        bf16 = generation_bf16(train_cfg.bf16, device_of(model))
        base_model = load_causal_lm(base) if train_cfg.method == "full" and not classify else None
        asked = prep.retriever.ground_examples(rows) if prep.retriever else rows  # as the run will be asked
        comparison = assess(model, tokenizer, asked, prep.train_examples, prep.train.labels, eval_cfg, bf16,
                            classify, base_model, base, [d.text for d in prep.documents],
                            house_voice(eval_cfg.voice, run_cfg.runs_dir),
                            loss_bf16=choose_bf16(train_cfg.bf16, device_of(model)),
                            system=prep.system_prompt,  # as the lineage records it and predict adds it
                            router=prep.router)
        if parent:
            maintain.add_parent(comparison, parent, rows, prep.train.labels, eval_cfg)
        if train_cfg.method == "dpo":
            comparison.review["preference"] = preference.preference_review(model, tokenizer, rows, train_cfg.beta, bf16)
            console.print(preference.describe(comparison.review["preference"]))
        metrics["eval"] = {**comparison.to_dict(), "on": where}
        print_comparison(comparison, console, eval_cfg.samples, where)
        print_evidence(comparison.review, console)
    atomic.write_json(run_dir / "metrics.json", metrics)
    for target in [run_dir / "report.html"] + ([Path(eval_cfg.report)] if eval_cfg.report else []):
        # config and lineage from disk: a resumed run keeps the ones it started with
        html_report.write(target, f"{run_dir.parent.name} {run_dir.name}", metrics.get("eval"), result.history,
                          check_report, read_json(run_dir / "config.json"), read_json(run_dir / "run.json"))
    write_card(run_dir)
    atomic.write_text(run_dir / COMPLETE, dt.datetime.now(dt.timezone.utc).isoformat() + "\n")
    shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)  # only needed to resume an unfinished run
    console.print(f"[bold green]done[/bold green] → {run_dir}   report: {run_dir / 'report.html'}   "
                  f"try: tailor predict {run_dir} \"…\"")
    return Run(run_dir, metrics, result, comparison)


def evaluate(run: str | Path, data: str | Path | None = None, eval_cfg: EvalConfig | None = None,
             runs_dir: str = "runs", quiet: bool = False) -> Comparison:
    """Base vs tuned for a finished run, on `data` or the run's own held-out file."""
    from tailored.data import load_dataset
    from tailored.tuned import load

    eval_cfg = eval_cfg or EvalConfig()
    tuned = load(run, runs_dir=runs_dir, engine="torch")
    path = data or (tuned.lineage["data"]["heldout"] or {}).get("path")
    if path is None:
        raise TailoredError(f"run {tuned.path} has no held-out file — pass one with --data FILE")
    dataset = load_dataset(path, labels=tuned.labels)
    if tuned.task.get("system_prompt") == TASK_PROMPT:  # the run gave its bare rows tailored's prompt: so here
        attach_task_prompt(dataset.examples)
    examples = tuned.retriever.ground_examples(dataset.examples) if tuned.retriever else dataset.examples
    lineage, saved = tuned.lineage, read_json(tuned.path / "config.json")
    train_path = lineage["data"]["train"]["path"]
    prep = load_splits(train_path, DataConfig(**saved["data"]), saved["train"]["seed"]) \
        if Path(train_path).exists() else None  # without it: no baseline for classifiers, no memorisation check
    train_rows = prep.train_examples if prep else []
    classify = tuned.kind == "classify"
    if classify and not train_rows:
        raise TailoredError(f"{train_path}: the run's training data is gone; the classifier's baseline needs it")
    base_model = load_causal_lm(tuned.base) if (tuned.path / "model").is_dir() else None
    comparison = assess(tuned.model, tuned.tokenizer, examples, train_rows, tuned.labels, eval_cfg,
                        tuned.bf16, classify, base_model, tuned.base,
                        [d.text for d in prep.documents] if prep else [],
                        house_voice(eval_cfg.voice, runs_dir), loss_bf16=tuned.trained_bf16,
                        system=tuned.task.get("system_prompt"), router=tuned.router)
    console = _console(quiet)
    print_comparison(comparison, console, eval_cfg.samples)
    print_evidence(comparison.review, console)
    if eval_cfg.report:
        history = read_json(tuned.path / "history.json") if (tuned.path / "history.json").exists() else []
        html_report.write(Path(eval_cfg.report), f"{tuned.path.parent.name} {tuned.path.name} on {Path(path).name}",
                          {**comparison.to_dict(), "on": Path(path).name}, history, None, saved, lineage)
        console.print(f"report → {eval_cfg.report}")
    return comparison
