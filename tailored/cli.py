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
runs_app = typer.Typer(no_args_is_help=False, pretty_exceptions_enable=False,
                       help="Versions: list, show, compare, promote, remove, reindex.")
app.add_typer(runs_app, name="runs")
err = Console(stderr=True, highlight=False, soft_wrap=True)


def chosen(run: str, runs_dir: str) -> str:
    """Resolve a run reference and say which version a bare name picked (production, else latest)."""
    from tailored.runs.store import resolve_run_how

    path, how = resolve_run_how(run, runs_dir)
    if how != "as named":
        err.print(f"[dim]{run} → {path} ({how})[/dim]")
    return str(path)


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
                flag = f.metadata.get("flag") or "--" + f.name.replace("_", "-")
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


ENGINE_HELP = ("auto: llama.cpp when llama-cpp-python is installed and can read the run (written once as an f32 "
               "GGUF in RUN/export), else torch; torch: the decode loop evaluation uses; llama.cpp: fail if it cannot")

@app.command()
@user_errors
def predict(run: str = typer.Argument(..., help="Run folder (runs/NAME/vN) or name (latest version)."),
            prompt: str = typer.Argument(..., help="The user message."),
            max_new_tokens: int = typer.Option(256, help="Most tokens to generate."),
            runs_dir: str = typer.Option("runs", help="Folder that holds all runs."),
            engine: str = typer.Option("auto", help=ENGINE_HELP)) -> None:
    """Answer PROMPT with a tuned run."""
    from tailored.tuned import load

    typer.echo(load(chosen(run, runs_dir), runs_dir, engine).generate(prompt, max_new_tokens=max_new_tokens))


@app.command()
@user_errors
def chat(run: str = typer.Argument(..., help="Run folder or name."),
         max_new_tokens: int = typer.Option(256, help="Most tokens per reply."),
         runs_dir: str = typer.Option("runs", help="Folder that holds all runs."),
         engine: str = typer.Option("auto", help=ENGINE_HELP)) -> None:
    """Talk to a tuned run in the terminal. An empty line or Ctrl-D ends the chat."""
    from tailored.tuned import load

    tuned = load(chosen(run, runs_dir), runs_dir, engine)
    messages: list[dict] = []  # `generate` puts the run's system prompt first, as for every message list
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

    comparison = evaluate(chosen(run, runs_dir), data, configs["EvalConfig"], runs_dir)
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
          against: Optional[str] = typer.Option(None, help="A run (NAME for its production or latest version, or "
                                                           "NAME/vN): report how DATA drifted from what it learned."),
          runs_dir: str = typer.Option("runs", help="Folder that holds all runs (for --against)."),
          **configs) -> None:
    """Check a data file without training: every error at once, warnings, and a profile. Exit 1 on errors."""
    from tailored.pipeline import check as run_check

    result = run_check(data, configs["DataConfig"], base, strict=strict, show=show, against=against,
                       runs_dir=runs_dir)
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
    if result.drift:
        print_drift(result.drift, out)
    colour = "green" if result.passed else "red"
    word, rest = result.verdict.split(":", 1)
    out.print(f"[{colour}]{word}[/{colour}]:{escape(rest)}")
    raise typer.Exit(0 if result.passed else 1)


@app.command()
@user_errors
def export(run: str = typer.Argument(..., help="Run folder or name."),
           format: str = typer.Option("merged", "--format", help="merged (HF safetensors folder) or gguf."),
           out: Optional[Path] = typer.Option(None, help="Where to write. Default: RUN/export/."),
           gguf_type: str = typer.Option("f16", help="GGUF weight type: f16 (answers match the run but for near-ties), q8_0 (half the size; check the parity it prints) or f32 (twice the size, the run's fp32 answers)."),
           check: bool = typer.Option(True, help="Reload the export and compare it with the run on held-out rows."),
           max_rows: Optional[int] = typer.Option(None, help="Compare on at most this many held-out rows."),
           runs_dir: str = typer.Option("runs", help="Folder that holds all runs.")) -> None:
    """Export a run as a merged model folder or a GGUF file (plus an Ollama Modelfile), checked for parity."""
    from tailored.export import export as run_export

    exported = run_export(chosen(run, runs_dir), format, out, runs_dir, gguf_type, check, max_rows)
    typer.echo(f"wrote {exported.path}")
    for check in exported.checks:
        typer.echo(f"parity: {check}")
    if exported.note:
        typer.echo(f"note: {exported.note}")
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

    run_server([chosen(r, configs["ServerConfig"].runs_dir) for r in runs or []], configs["ServerConfig"])


def print_drift(d: dict, out: Console) -> None:
    out.rule(f"drift against {d['version']} ({d['chosen']})")
    length, vocab, dup = d["length"], d["vocabulary"], d["near_duplicates"]
    out.print(f"rows: {d['train_rows']} trained on, {d['new_rows']} new")
    if labels := d.get("labels"):
        out.print(f"labels never seen: {', '.join(labels['unseen']) or 'none'}"
                  + (f" ({labels['unseen_rows']} rows)" if labels["unseen"] else ""))
        for label, (a, b) in labels["moved"].items():
            out.print(f"label share moved: {escape(label)} {a}% → {b}%")
    out.print(f"input length: median {length['median_words_train']} → {length['median_words_new']} words "
              f"(×{length['ratio']}){' [yellow]shifted[/yellow]' if length['shifted'] else ''}")
    out.print(f"vocabulary: {vocab['unknown_words_new']}% of new words unknown to training (fresh rows of the "
              f"training data: {vocab['unknown_words_reference']}%){' [yellow]shifted[/yellow]' if vocab['shifted'] else ''}")
    out.print(f"near-duplicates of training inputs: {dup['share']}% ({dup['rows']} rows)")
    if sc := d.get("score"):
        ci = f" [{sc['new_ci'][0]:.1f}–{sc['new_ci'][1]:.1f}]" if sc.get("new_ci") else ""
        then = f"held-out at training: {_ci(sc['heldout'], sc['heldout_ci'])}" if sc["heldout"] is not None else \
            "the version was not evaluated when trained"
        out.print(f"its {sc['metric']} on {sc['rows']} new rows: {sc['new']:.1f}{ci} ({then})")
    colour = {"keep": "green", "retrain": "yellow"}.get(d["recommendation"], "red")
    out.print(f"[bold {colour}]{d['recommendation']}[/bold {colour}]: {escape(d['reason'])}")


def _ci(value, ci) -> str:
    return "—" if value is None else f"{value:.1f}" + (f" [{ci[0]:.1f}–{ci[1]:.1f}]" if ci else "")


@runs_app.callback(invoke_without_command=True)
@user_errors
def runs_(ctx: typer.Context, runs_dir: str = typer.Option("runs", help="Folder that holds all runs."),
          name: Optional[str] = typer.Option(None, help="Only this run name's versions."),
          as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Every version: status, base, data rows, primary metric, tags, parent."""
    ctx.obj = runs_dir
    if ctx.invoked_subcommand:
        return
    from rich.table import Table

    from tailored.runs.manage import listing

    rows = listing(runs_dir, name)
    if as_json:
        typer.echo(json.dumps(rows, indent=2, default=str))
        return
    table = Table("version", "status", "base", "task", "rows", "metric", "tuned", "before", "tags", "parent")
    for r in rows:
        h = r["headline"] or {}
        table.add_row(f"{r['name']}/v{r['version']}", r["status"], r["base"], r["task"], str(r["data_rows"] or "—"),
                      h.get("metric", "—"), _ci(h.get("tuned"), h.get("ci")), _ci(h.get("before"), None),
                      ", ".join(r["tags"]), r["parent"] or "")
    Console(highlight=False).print(table)


@runs_app.command("show")
@user_errors
def runs_show(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME/vN, or NAME (production, else latest).")):
    """Lineage, settings with their reasons, data hash, metrics with intervals, and where the report is."""
    from tailored.runs.manage import show

    typer.echo(json.dumps(show(ref, ctx.obj), indent=2, default=str))


@runs_app.command("compare")
@user_errors
def runs_compare(ctx: typer.Context, a: str = typer.Argument(..., help="The older version."),
                 b: str = typer.Argument(..., help="The newer version."),
                 as_json: bool = typer.Option(False, "--json", help="Print JSON.")) -> None:
    """Settings diff, data diff (rows added, removed, edited) and metric deltas with intervals."""
    from tailored.runs.manage import compare

    c = compare(a, b, ctx.obj)
    if as_json:
        typer.echo(json.dumps(c, indent=2, default=str))
        return
    out = Console(highlight=False)
    out.print(f"[bold]{c['a']} → {c['b']}[/bold]")
    for key, (x, y) in c["settings"].items():
        out.print(f"setting {key}: {x} → {y}")
    d = c["data"]
    out.print("data: same file" if d["same_file"] else f"data: {d['added']} rows added, {d['edited']} edited, "
              f"{d['removed']} removed ({d['rows_before']} → {d['rows_after']} rows)")
    if not c["same_heldout"]:
        out.print("[yellow]note[/yellow] the two versions were evaluated on different held-out rows")
    for metric, m in c["metrics"].items():
        mark = " (primary)" if metric == c["primary"] else ""
        out.print(f"{metric}{mark}: {_ci(m['a'], m['a_ci'])} → {_ci(m['b'], m['b_ci'])} ({m['delta']:+.1f})")


@runs_app.command("promote")
@user_errors
def runs_promote(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME/vN to promote."),
                 tag: str = typer.Option("production", help="The tag to point at it.")) -> None:
    """Point a tag (production by default) at a finished version; bare names then resolve to it."""
    from tailored.runs.manage import promote
    from tailored.runs.store import version_ref

    path, previous = promote(ref, ctx.obj, tag)
    typer.echo(f"{version_ref(path)} is now {tag}" + (f" (was v{previous})" if previous else ""))


@runs_app.command("rm")
@user_errors
def runs_rm(ctx: typer.Context, ref: str = typer.Argument(..., help="NAME/vN to remove."),
            force: bool = typer.Option(False, help="Remove even the production version."),
            yes: bool = typer.Option(False, "--yes", "-y", help="Do not ask.")) -> None:
    """Remove one version's folder (asks first; never the production version without --force)."""
    from tailored.runs.manage import remove

    if not yes and not typer.confirm(f"remove {ref} and everything in its folder?"):
        raise typer.Exit(1)
    typer.echo(f"removed {remove(ref, ctx.obj, force)}")


@runs_app.command("reindex")
@user_errors
def runs_reindex(ctx: typer.Context) -> None:
    """Rebuild the run index from the run folders (they are the truth)."""
    from tailored.runs.manage import reindex

    typer.echo(f"indexed {reindex(ctx.obj)} versions")


def main() -> None:
    app()


if __name__ == "__main__":
    sys.exit(main())
