"""The model card: RUN/README.md in the Hugging Face layout, written from what the run folder records.

Everything in it comes from the run's own files (run.json, config.json, check.json, metrics.json),
so the card never claims what the run did not measure; a missing measurement says so.
"""

from __future__ import annotations

from pathlib import Path

from tailored import atomic
from tailored.data.formats import TASK_PROMPT
from tailored.runs.store import read_json

CARD = "README.md"


def _opt(path: Path) -> dict:
    return read_json(path) if path.exists() else {}


def _ci(value: float, ci) -> str:
    return f"{value:.1f} [{ci[0]:.1f}–{ci[1]:.1f}]" if ci else f"{value:.1f}"


def render(run_dir: Path) -> str:
    lineage, saved = read_json(run_dir / "run.json"), _opt(run_dir / "config.json")
    check, metrics = _opt(run_dir / "check.json"), _opt(run_dir / "metrics.json")
    task, train = lineage["task"], saved.get("train", {})
    kind = "text-classification" if task["kind"] == "classify" else "text-generation"
    library = "peft" if task["kind"] == "generate" and task["method"] in ("lora", "dpo") else "transformers"
    title = f"{lineage['name']} v{lineage['version']}"
    out = ["---", f"base_model: {lineage['base']['name']}", f"library_name: {library}", f"pipeline_tag: {kind}",
           "tags:", "- tailored", f"- {task['method']}", f"- {kind}", "---", "", f"# {title}", "",
           f"Fine-tuned from `{lineage['base']['name']}` with tailored ({task['method']}, task: {task['kind']}).", ""]

    out += ["## Intended use", ""]
    if task.get("labels"):
        out.append(f"Assigns one of {len(task['labels'])} labels to a text: {', '.join(task['labels'][:20])}"
                   + (" …" if len(task["labels"]) > 20 else "") + ".")
    else:
        prompt = task.get("system_prompt")
        after = "" if not prompt else ", after the system prompt it was trained with" + (
            " (tailored's own, as the data had none)" if prompt == TASK_PROMPT else "")
        out.append(f"Answers requests like those in its training data (`{Path(lineage['data']['train']['path']).name}`, "
                   f"{task['format']} format){after}.")
    out += ["It was measured only on the held-out rows below; check it on your own traffic before relying on it "
            "elsewhere.", ""]

    profile = check.get("profile", {})
    out += ["## Training data", "",
            f"- file: `{lineage['data']['train']['path']}` (sha256 `{lineage['data']['train']['sha256'][:16]}…`)",
            f"- rows: {profile.get('rows', '?')}; trained on {profile.get('train_rows', '?')}, validated on "
            f"{profile.get('validation_rows', '?')} ({lineage['data'].get('valid')}), "
            f"{profile.get('heldout_rows', 0)} held out"]
    if profile.get("documents"):
        out.append(f"- plus {profile['documents']} documents (`{lineage['data']['documents']['path']}`), learned on every "
                   f"token in {profile['document_chunks']} windows")
    if (run_dir / "retrieval.sqlite").exists():
        out.append(f"- every question, in training and in every answer, carried the "
                   f"{saved.get('data', {}).get('retrieve', '?')} closest passages of the documents in its system "
                   "message (`retrieval.sqlite`): `tailor predict`, `chat`, `serve` and `load()` add them; a merged "
                   "or GGUF export holds the weights only, so ask it with the passages yourself")
    if (run_dir / "router.safetensors").exists():
        out.append("- requests unlike the training inputs are answered by the untouched base (`router.safetensors`, a "
                   "classifier on the inputs' embeddings): `tailor predict`, `chat`, `serve` and `load()` route them; a "
                   "merged or GGUF export cannot, and answers every request with the adapter")
    if profile.get("guard_rows"):
        out.append(f"- plus {profile['guard_rows']} of the base's own answers to general requests and to the task's "
                   "inputs without the task prompt (the forgetting guard)")
    if tokens := profile.get("tokens_per_example"):
        out.append(f"- tokens per example: median {tokens['median']}, max {tokens['max']}")
    if profile.get("labels"):
        out.append("- labels: " + ", ".join(f"{k} {v}" for k, v in list(profile["labels"].items())[:20]))
    out.append(f"- check: {len(check.get('errors', []))} errors, {len(check.get('warnings', []))} warnings")
    out.append("")

    reasons = saved.get("reasons", {})
    out += ["## Settings", "", "| setting | value | why |", "|---|---|---|"]
    for key in ("epochs", "learning_rate", "batch_size", "lora_rank", "lora_alpha", "seed"):
        if key in train:
            out.append(f"| {key} | {train[key]} | {reasons.get(key, 'default')} |")
    out.append("")

    evaluation = metrics.get("eval")
    out += ["## Evaluation", ""]
    if evaluation:
        p = evaluation["primary"]
        out += [f"On {len(evaluation['rows'])} {evaluation.get('on', 'held-out')} rows never trained on, with 95% "
                "bootstrap intervals:", "", f"| metric | {evaluation.get('base_name', 'base')} | tuned |", "|---|---|---|"]
        for metric, value in evaluation["tuned"].items():
            if isinstance(value, (int, float)) and isinstance(evaluation["base"].get(metric), (int, float)):
                out.append(f"| {metric}{' (primary)' if metric == p else ''} | "
                           f"{_ci(evaluation['base'][metric], evaluation['base_ci'].get(metric))} | "
                           f"{_ci(value, evaluation['tuned_ci'].get(metric))} |")
        if parent := evaluation.get("parent"):
            out.append(f"\nThe parent version scored {_ci(parent['values'][p], parent['ci'].get(p))} on the same rows.")
        if verdict := evaluation.get("review", {}).get("verdict"):
            out += ["", f"Verdict: {verdict['text']}"]
    else:
        out.append("Not evaluated (no held-out rows, or evaluation was turned off).")
    out.append("")

    review = (evaluation or {}).get("review", {})
    out += ["## Per-slice findings", ""]
    if sl := review.get("slices"):
        for name, s in sl["slices"].items():
            note = "below overall" if s["flagged"] else "too few rows to judge" if s["too_small"] else "ok"
            out.append(f"- {sl['field']}={name}: {s['rows']} rows, {sl['primary']} {s['tuned'][sl['primary']]:.1f} ({note})")
    else:
        out.append("No slices were reviewed (train with --slice-by COLUMN to add them).")
    out += ["", "## Memorisation and forgetting", ""]
    if mem := review.get("memorisation"):
        out.append(f"- {mem['verbatim_share']:.0f}% of held-out answers repeat a training answer verbatim; "
                   f"{mem['near_share']:.0f}% share {mem['ngram_words']}+ words with one.")
    if (fg := review.get("forgetting")) and fg.get("kept_share") is not None:
        out.append(f"- General ability: keeps {fg['kept']} of the {fg['base_correct']} general answers the base got "
                   f"right ({_ci(fg['kept_share'], fg['kept_ci'])}%)." + (
                       f" The untuned base itself keeps {_ci(fg['floor']['kept_share'], fg['floor']['kept_ci'])}% of "
                       "them when only a neutral system prompt is added (the measure's noise floor)."
                       if (fg.get("floor") or {}).get("kept_share") is not None else ""))
        if alone := fg.get("adapter"):
            out.append(f"- The router gave {fg['routed']} of the {fg['questions']} general questions to the untouched "
                       f"base; the adapter alone (what a merged or GGUF export answers) keeps {alone['kept']} of "
                       f"{fg['base_correct']} ({_ci(alone['kept_share'], alone['kept_ci'])}%).")
        if (asked := fg.get("as_asked")) and asked.get("kept_share") is not None:
            out.append(f"- Asked with the run's system prompt first, as predict and the server ask: keeps "
                       f"{asked['kept']} of {asked['base_correct']} ({_ci(asked['kept_share'], asked['kept_ci'])}%); "
                       f"the untuned base given that prompt keeps {_ci(asked['floor']['kept_share'], asked['floor']['kept_ci'])}%.")
    if not mem and not fg:
        out.append("Not measured for this run.")
    out += ["", "## Known limits", ""]
    limits = []
    if (gap := review.get("knowledge_gap")) and gap.get("flagged"):
        limits.append(f"{gap['gap_rows']} of {gap['rows']} held-out answers rest on facts absent from training "
                      "(a knowledge gap: tuning cannot teach them).")
    if (metrics.get("overfitting") or {}).get("message"):
        limits.append(metrics["overfitting"]["message"])
    limits.append(f"A {lineage['base']['name']} model: small, so it can be fluent and wrong; keep a person in the loop "
                  "where answers matter.")
    out += [f"- {item}" for item in limits]
    out += ["", "## Lineage", "", f"- base: `{lineage['base']['name']}` (file hash `{lineage['base']['fingerprint']}`)",
            f"- parent: {lineage.get('parent') or 'none (trained from the base)'}"]
    if diff := lineage.get("data_diff"):
        out.append(f"- data against the parent: {diff['added']} rows added, {diff['edited']} edited, "
                   f"{diff['removed']} removed")
    out += [f"- created: {lineage.get('created')}", f"- machine: {lineage['machine']['platform']}", ""]
    return "\n".join(out)


def write_card(run_dir: Path, target: Path | None = None) -> Path:
    target = target or run_dir / CARD
    atomic.write_text(target, render(run_dir))
    return target
