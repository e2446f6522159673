"""Keeping a model current: retraining from a parent version, and checking new data against a version.

`train(..., RunConfig(parent="support"))` calls `inherit` before the data is read (the parent decides
the base, task, method and adapter shape), `start_weights` once the model is set up, and, after
training, `heldout_union` and `add_parent` for the three-way comparison: base, parent and new on the
union of both versions' held-out rows, where the gate's "worse" means worse than the parent.
`drift_report` is `check NEW --against NAME`.
"""

from __future__ import annotations

import random
from dataclasses import replace
from pathlib import Path

from tailored.config import EvalConfig, RunConfig, TrainConfig
from tailored.data import Example, load_dataset
from tailored.data.drift import drift, recommend
from tailored.errors import TailoredError
from tailored.evaluation import review
from tailored.evaluation.compare import Comparison, answer_budget, score
from tailored.evaluation.metrics import PRIMARY, task_kind
from tailored.runs.diff import data_diff, row_key, training_examples
from tailored.runs.store import read_json, resolve_run_how, version_ref as parent_ref


def inherit(run_cfg: RunConfig, train_cfg: TrainConfig) -> tuple[Path, TrainConfig, str]:
    """The parent's folder, the settings that must match it, and a line saying what was taken from it.

    A LoRA adapter can only continue with its own rank and alpha, on its own base; the task and method
    follow the parent too. Everything else (epochs, learning rate, ...) is chosen afresh or as given.
    """
    parent, how = resolve_run_how(run_cfg.parent, run_cfg.runs_dir)
    saved = read_json(parent / "config.json")["train"]
    kept = {k: saved[k] for k in ("task", "method", "base", "lora_rank", "lora_alpha")}
    if train_cfg.method == "dpo" and saved["method"] in ("lora", "dpo"):
        kept["method"] = "dpo"  # preference tuning continues a supervised adapter: the usual order
    changed = [f"{k} {getattr(train_cfg, k)} → {v}" for k, v in kept.items() if getattr(train_cfg, k) != v]
    note = (f"from {parent_ref(parent)} ({how}): continuing its weights"
            + (f"; taken from it: {', '.join(changed)}" if changed else ""))
    return parent, replace(train_cfg, **kept), note


def lineage_fields(parent: Path, new_examples: list[Example]) -> dict:
    """What run.json records about the parent: its reference and the data diff against it."""
    return {"parent": parent_ref(parent), "data_diff": data_diff(training_examples(parent), new_examples)}


def start_weights(parent: Path, model, train_cfg: TrainConfig) -> None:
    """Load the parent's adapter into freshly set-up adapters of the same shape (LoRA runs)."""
    from peft import set_peft_model_state_dict
    from safetensors.torch import load_file

    if train_cfg.task == "generate" and train_cfg.method in ("lora", "dpo"):
        set_peft_model_state_dict(model, load_file(str(parent / "adapter" / "adapter_model.safetensors")))


def parent_weights_path(parent: Path, train_cfg: TrainConfig) -> Path | None:
    """Where the parent's whole weights are, for methods that load them instead of the base's."""
    if train_cfg.task == "classify":
        return parent / "classifier"  # its fine-tuned encoder; the head is refitted for the new label set
    if train_cfg.method == "full":
        return parent / "model"
    return None


def heldout_union(parent: Path, rows: list[Example], train: list[Example], labels: list[str] | None,
                  ) -> tuple[list[Example], str]:
    """This run's held-out rows plus the parent's that are new, minus any that this run trained on."""
    source = (read_json(parent / "run.json")["data"].get("heldout") or {}).get("path")
    if not source or not Path(source).exists():
        return rows, f"the parent's held-out file ({source or 'none'}) is not available; compared on this run's rows"
    seen = {row_key(ex) for ex in rows}
    trained = {row_key(ex)[0] for ex in train}
    extra = [ex for ex in load_dataset(source, labels=labels).examples if row_key(ex) not in seen]
    kept = [ex for ex in extra if row_key(ex)[0] not in trained]
    note = (f"{len(rows)} held-out rows of this run + {len(kept)} of the parent's"
            + (f" ({len(extra) - len(kept)} of its rows are now training data, so left out)" if len(kept) < len(extra)
               else ""))
    return rows + kept, note


def add_parent(comparison: Comparison, parent: Path, examples: list[Example], labels: list[str] | None,
               eval_cfg: EvalConfig) -> None:
    """Score the parent on the same rows; the gate's --fail-if-worse is then judged against the parent."""
    from tailored.tuned import Tuned

    model = Tuned(parent, engine="torch")  # the engine the tuned run's own evaluation used
    examples = examples[: len(comparison.rows)]
    if model.kind == "classify":
        preds = model.generate([ex.text for ex in examples])
    else:
        preds = model.generate([ex.prompt for ex in examples], comparison.max_new_tokens or
                               answer_budget(model.tokenizer, [ex.target for ex in examples], eval_cfg),
                               eval_cfg.eval_batch_size)
    values, intervals = score(preds, [ex.target for ex in examples], labels)
    for row, pred in zip(comparison.rows, preds):
        row["parent"] = pred
    comparison.parent = {"name": parent_ref(parent), "values": values, "ci": intervals}
    p = comparison.primary
    comparison.review["gate"] = review.gate(p, values, comparison.tuned, comparison.tuned_ci, eval_cfg.fail_if_worse,
                                            eval_cfg.floors, than=f"the parent {parent_ref(parent)}")


def drift_report(data: str | Path, against: str, runs_dir: str | Path = "runs", max_rows: int = 200) -> dict:
    """How new data compares with what version `against` learned, and what to do about it."""
    from tailored.tuned import Tuned

    version, how = resolve_run_how(against, runs_dir)
    lineage = read_json(version / "run.json")
    labels = lineage["task"].get("labels")
    new = load_dataset(data).examples  # its own labels: a label the version never saw must show up as one
    report = drift(training_examples(version), new, labels is not None)
    report["version"], report["chosen"] = parent_ref(version), how
    evaluation = (read_json(version / "metrics.json") if (version / "metrics.json").exists() else {}).get("eval")
    score_drop = None
    rows = [ex for ex in load_dataset(data, labels=labels, skip_invalid=True).examples if ex.label in labels] \
        if labels else [ex for ex in new if ex.target]  # the rows that carry an answer the version could give
    rows = random.Random(0).sample(rows, min(max_rows, len(rows)))  # files are often sorted by label or date
    if rows:
        model = Tuned(version, engine="torch")  # compared with its evaluation, which used torch
        if labels:
            preds = model.generate([ex.text for ex in rows]) if model.kind == "classify" else \
                model.generate([ex.prompt for ex in rows])
        else:
            preds = model.generate([ex.prompt for ex in rows],
                                   answer_budget(model.tokenizer, [ex.target for ex in rows], EvalConfig()))
        values, intervals = score(preds, [ex.target for ex in rows], labels)
        p = evaluation["primary"] if evaluation else PRIMARY[task_kind([ex.target for ex in rows], labels)]
        before = evaluation["tuned"][p] if evaluation else None  # a version trained without evaluation has none
        before_ci = (evaluation.get("tuned_ci") or {}).get(p) if evaluation else None
        report["score"] = {"metric": p, "new": values[p], "new_ci": intervals.get(p), "rows": len(rows),
                           "heldout": before, "heldout_ci": before_ci}
        if intervals.get(p) and before_ci and intervals[p][1] < before_ci[0]:
            score_drop = (f"on the new rows its {p} is {values[p]:.1f} [{intervals[p][0]:.1f}–{intervals[p][1]:.1f}], "
                          f"below its held-out {before:.1f} [{before_ci[0]:.1f}–{before_ci[1]:.1f}]")
    report["recommendation"], report["reason"] = recommend(report, score_drop)
    return report


def check_parent_compatible(parent: Path, base_fingerprint: str) -> None:
    if read_json(parent / "run.json")["base"]["fingerprint"] != base_fingerprint:
        raise TailoredError(f"{parent}: it was trained on a different file of its base (the hash differs); its "
                            "weights cannot continue on this one — train afresh")
