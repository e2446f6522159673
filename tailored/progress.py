"""What a training run prints: the plan (data, settings and why) and a progress bar with ETA fed by the loop's hooks."""

from __future__ import annotations

from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from tailored.data.prepare import Prepared


def print_plan(console, data, data_cfg, train_cfg, prep: Prepared, profile: dict, reasons: dict) -> None:
    if profile["format"] == "documents":  # documents alone: windows, not rows
        console.print(f"[bold]data[/bold] {data}: {profile['documents']} documents in {profile['document_chunks']} "
                      f"training windows of {data_cfg.chunk_tokens} tokens (learned on every token), "
                      f"{profile['validation_rows']} validation ({prep.valid_source}), {profile['heldout_rows']} "
                      "held-out" + (f", plus {prep.guard_rows} of the base's own answers to general requests (the "
                                    "guard against forgetting)" if prep.guard_rows else ""))
    else:
        _print_rows(console, data, data_cfg, prep, profile)
    if prep.errors:
        console.print(f"[yellow]skipped {len(prep.errors)} rows with errors (--skip-invalid)[/yellow]")
    for finding in prep.findings:
        console.print(f"[yellow]warning[/yellow] {escape(str(finding))}")
    if prep.task_prompt:
        console.print(f"[dim]system prompt = “{escape(prep.task_prompt)}”: your rows have none, and neither have the "
                      "guard's general rows, so this one, tailored's, tells the task apart; the run is evaluated and "
                      "answers with it. Write a system prompt in your rows to choose your own.[/dim]")
    for key, why in reasons.items():
        console.print(f"[dim]{key} = {getattr(train_cfg, key, getattr(data_cfg, key, None))}: {why}[/dim]")


def _print_rows(console, data, data_cfg, prep: Prepared, profile: dict) -> None:
    console.print(f"[bold]data[/bold] {data}: {profile['rows']} rows ({profile['format']}), "
                  f"{profile['train_rows']} train / {profile['validation_rows']} valid ({prep.valid_source}), "
                  f"{profile['heldout_rows']} held-out"
                  + (f", {profile['mixed_rows']} general rows mixed in from {data_cfg.mix_file}" if prep.mixed else "")
                  + (f", {profile['document_chunks']} windows of {data_cfg.chunk_tokens} tokens from "
                     f"{profile['documents']} documents in {data_cfg.documents} (learned on every token)"
                     if prep.documents else "")
                  + (f"; each question carries the {data_cfg.retrieve} closest of the documents' "
                     f"{len(prep.retriever.items)} passages, in training and in every answer (--retrieve 0 turns "
                     "it off)" if prep.retriever else "")
                  + (f", plus {prep.guard_rows} of the base's own answers to general requests"
                     + (" (asked with your system prompt, as predict asks)" if prep.own_system_prompt else "")
                     + " and to the task's inputs without the task prompt, in training (the guard against forgetting; "
                     "--guard 0 turns it off)" if prep.guard_rows else ""))


@contextmanager
def progress_hooks(console: Console, on_event=None):
    """A progress bar with ETA, fed by the loop's two report hooks, which also reach `on_event`."""
    with Progress(TextColumn("[bold]train"), BarColumn(), MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"),
                  TextColumn("valid {task.fields[valid]}"), TimeElapsedColumn(), TextColumn("ETA"),
                  TimeRemainingColumn(), console=console, transient=False) as progress:
        task = progress.add_task("train", total=None, loss="-", valid="-")

        def on_train(info: dict) -> None:
            progress.update(task, completed=info["step"], total=info["total_steps"], loss=f"{info['train_loss']:.3f}")
            if on_event:
                on_event({"kind": "train", **info})

        def on_val(info: dict) -> None:
            progress.update(task, valid=f"{info['valid_loss']:.3f}{' *' if info['improved'] else ''}")
            if on_event:
                on_event({"kind": "valid", **info})

        yield {"on_train_report": on_train, "on_val_report": on_val}
