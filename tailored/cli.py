"""`tailor`: a thin command line over the library. Flags come from the config dataclasses."""

from __future__ import annotations

import functools
import inspect
import json
import sys
import typing
from dataclasses import MISSING, fields
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.markup import escape

from tailored.config import DataConfig, EvalConfig, RunConfig, ServerConfig, SettingsError, TrainConfig, build
from tailored.errors import DataError, TailoredError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Fine-tune a small model on your examples, prove it got better, use it.")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def user_errors(fn):
    """Print a user error as its own lines, with no traceback, and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except DataError as e:
            for problem in e.problems[:50]:
                err.print(f"[red]error[/red] {problem}", markup=True, highlight=False)
            if e.total > 50:
                err.print(f"… {e.total - 50} more problems ({e.total} in all)")
            raise typer.Exit(1)
        except SettingsError as e:
            for problem in e.problems:
                err.print(f"[red]error[/red] {escape(problem)}")
            raise typer.Exit(1)
        except TailoredError as e:
            err.print(f"[red]error[/red] {e}")
            raise typer.Exit(1)
        except KeyboardInterrupt:
            err.print("interrupted")
            raise typer.Exit(130)

    return wrapper


def with_config_flags(*classes):
    """Give a command one --flag per dataclass field (help from the field) and pass built configs.

    The command receives the built config objects as keyword arguments named after the classes.
    """

    def decorate(fn):
        own = list(inspect.signature(fn).parameters.values())
        own = [p for p in own if p.kind is not inspect.Parameter.VAR_KEYWORD]
        extra = []
        for cls in classes:
            hints = typing.get_type_hints(cls)
            for f in fields(cls):
                default = None if f.default is MISSING else f.default
                flag = "--" + f.name.replace("_", "-")
                hint = hints[f.name]  # a Literal becomes a checked choice, listed in --help
                decls = [f"{flag}/--no-{flag[2:]}"] if hint in (bool, Optional[bool]) else [flag]
                option = typer.Option(default, *decls, help=f.metadata.get("help", ""), rich_help_panel=cls.__name__)
                extra.append(inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, default=option,
                                               annotation=hint))

        names = {f.name for cls in classes for f in fields(cls)}

        @functools.wraps(fn)
        def wrapper(**kwargs):
            # every settings problem in every config is reported together (config.build)
            built = build({k: kwargs.pop(k) for k in list(kwargs) if k in names}, *classes)
            return fn(**kwargs, **built)

        wrapper.__signature__ = inspect.Signature(own + extra)
        return wrapper

    return decorate


@app.command()
@user_errors
@with_config_flags(TrainConfig, DataConfig, EvalConfig, RunConfig)
def train(ctx: typer.Context,
          data: Optional[Path] = typer.Argument(None, help="Training data: .jsonl, .csv or .parquet."),
          quiet: bool = typer.Option(False, "--quiet", "-q", help="Print nothing but errors."),
          config: Optional[Path] = typer.Option(None, help="YAML settings file (write one with `tailor config`); "
                                                           "flags given here win over it."),
          **configs) -> None:
    """Fine-tune the base on DATA, keep the best adapter, and compare base vs tuned on held-out rows."""
    from tailored.config import from_yaml
    from tailored.pipeline import train as run_train
    from tailored.training.distributed import cluster_command, run_local, under_torchrun

    if config:
        given = {k: v for k, v in ctx.params.items() if ctx.get_parameter_source(k).name == "COMMANDLINE"}
        configs = from_yaml(str(config), given)
    launch = configs["RunConfig"]
    if launch.print_launch:  # the same command on every machine, through torchrun
        typer.echo(cluster_command([a for a in sys.argv[1:] if a != "--print-launch"], launch.processes,
                                   launch.nnodes, launch.name or Path(str(data)).stem))
        return
    if launch.processes > 1 and not under_torchrun():  # rerun this command as N processes under torchrun
        raise typer.Exit(run_local(sys.argv[1:], launch.processes))

    run = run_train(data, configs["TrainConfig"], configs["DataConfig"], configs["EvalConfig"], configs["RunConfig"],
                    quiet=quiet)
    if not run.passed:
        raise typer.Exit(1)


@app.command("config")
def config_() -> None:
    """Print a YAML settings file with every setting, its default and its help; edit it and pass --config."""
    from tailored.config import template_yaml

    typer.echo(template_yaml(), nl=False)


@app.command()
@user_errors
def predict(run: str = typer.Argument(..., help="Run folder (runs/NAME/vN) or name (latest version)."),
            prompt: str = typer.Argument(..., help="The user message."),
            max_new_tokens: int = typer.Option(256, help="Most tokens to generate."),
            runs_dir: str = typer.Option("runs", help="Folder that holds all runs.")) -> None:
    """Answer PROMPT with a tuned run."""
    from tailored.tuned import load

    typer.echo(load(run, runs_dir).generate(prompt, max_new_tokens=max_new_tokens))


@app.command()
@user_errors
def chat(run: str = typer.Argument(..., help="Run folder or name."),
         max_new_tokens: int = typer.Option(256, help="Most tokens per reply."),
         runs_dir: str = typer.Option("runs", help="Folder that holds all runs.")) -> None:
    """Talk to a tuned run in the terminal. An empty line or Ctrl-D ends the chat."""
    from tailored.tuned import load

    tuned = load(run, runs_dir)
    messages = tuned.messages_for("")[:-1]  # the run's system prompt, if it had one
    while True:
        try:
            line = input("you> ").strip()
        except EOFError:
            break
        if not line:
            break
        messages.append({"role": "user", "content": line})
        reply = tuned.generate(messages, max_new_tokens=max_new_tokens)
        messages.append({"role": "assistant", "content": reply})
        typer.echo(f"model> {reply}")


@app.command("eval")
@user_errors
@with_config_flags(EvalConfig)
def eval_(run: str = typer.Argument(..., help="Run folder or name."),
          data: Optional[Path] = typer.Option(None, help="Held-out file. Default: the run's own held-out file."),
          runs_dir: str = typer.Option("runs", help="Folder that holds all runs."),
          **configs) -> None:
    """Compare base and tuned on held-out rows, scoring generated answers."""
    from tailored.pipeline import evaluate

    comparison = evaluate(run, data, configs["EvalConfig"], runs_dir)
    if not comparison.passed:
        raise typer.Exit(1)


@app.command()
@user_errors
@with_config_flags(DataConfig)
def check(data: Path = typer.Argument(..., help="Data file to check."),
          base: str = typer.Option("smollm2-135m", help="Base whose tokenizer and chat template to check against."),
          as_json: bool = typer.Option(False, "--json", help="Print the report as JSON."),
          strict: bool = typer.Option(False, help="Exit 1 on warnings too, not only on errors."),
          show: int = typer.Option(0, help="Print N examples exactly as trained, the learned tokens highlighted."),
          **configs) -> None:
    """Check a data file without training: every error at once, warnings, and a profile. Exit 1 on errors."""
    from tailored.pipeline import check as run_check

    result = run_check(data, configs["DataConfig"], base, strict=strict, show=show)
    if as_json:
        typer.echo(json.dumps(result.to_dict(), indent=2, ensure_ascii=False))
        raise typer.Exit(0 if result.passed else 1)
    out = Console(highlight=False, soft_wrap=True)
    for problem in result.errors[:50]:
        out.print(f"[red]error[/red] {escape(problem)}")
    if len(result.errors) > 50:
        out.print(f"… {len(result.errors) - 50} more errors ({len(result.errors)} in all)")
    for finding in result.warnings:
        out.print(f"[yellow]warning[/yellow] {escape(str(finding))}")
    for key, value in result.profile.items():
        out.print(f"{key:>22}: {value}")
    for text in result.shown:
        out.rule()
        out.print(text)
    colour = "green" if result.passed else "red"
    word, rest = result.verdict.split(":", 1)
    out.print(f"[{colour}]{word}[/{colour}]:{escape(rest)}")
    raise typer.Exit(0 if result.passed else 1)


@app.command()
@user_errors
def export(run: str = typer.Argument(..., help="Run folder or name."),
           format: str = typer.Option("merged", "--format", help="merged (HF safetensors folder) or gguf."),
           out: Optional[Path] = typer.Option(None, help="Where to write. Default: RUN/export/."),
           gguf_type: str = typer.Option("f16", help="GGUF weight type: f16 (answers match the run) or q8_0 (half the size; check the parity it prints)."),
           check: bool = typer.Option(True, help="Reload the export and compare it with the run on held-out rows."),
           max_rows: Optional[int] = typer.Option(None, help="Compare on at most this many held-out rows."),
           runs_dir: str = typer.Option("runs", help="Folder that holds all runs.")) -> None:
    """Export a run as a merged model folder or a GGUF file (plus an Ollama Modelfile), checked for parity."""
    from tailored.export import export as run_export

    exported = run_export(run, format, out, runs_dir, gguf_type, check, max_rows)
    typer.echo(f"wrote {exported.path}")
    if exported.parity:
        typer.echo(f"parity: {exported.parity}")
    if not exported.passed:
        err.print(f"[red]error[/red] {escape(exported.failure)}")
        raise typer.Exit(1)


@app.command()
@user_errors
@with_config_flags(ServerConfig)
def serve(runs: Optional[list[str]] = typer.Argument(None, help="Runs to load at start (more load on first use)."),
          **configs) -> None:
    """Serve runs over an OpenAI-compatible API: one base in memory, adapters picked by the request's model."""
    from tailored.server import serve as run_server

    run_server(runs or [], configs["ServerConfig"])


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
