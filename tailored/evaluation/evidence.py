"""Everything evaluation shows beyond the headline table: held-out loss, slices, memorisation, loops, forgetting, gate.

`assess` (the comparison, then `gather`) is called by both `tailor train` and `tailor eval`, so a run's
report and a later evaluation show the same evidence.
"""

from __future__ import annotations

import math
from contextlib import nullcontext

from tailored.config import EvalConfig
from tailored.data.encode import TemplateError, encode_many
from tailored.data.formats import Example
from tailored.device import device_of
from tailored.errors import TailoredError
from tailored.evaluation import general, review
from tailored.evaluation.answer_cache import BaseAnswers
from tailored.evaluation.compare import Comparison, compare, compare_classifier, score
from tailored.models import materialise
from tailored.models.scoring import mean_token_loss


KEPT_WELL = 90.0  # without a noise floor, under this share kept (the interval's low end) is said in colour
TASK_FORM_WARN = 3  # general answers in the task's form (more than the base's) at which the console warns


def below_floor(fg: dict) -> bool:
    """Whether the tuned model kept clearly fewer general answers than a harmless prompt change costs the base:
    its whole interval under the floor's share (or, with no floor measured, under KEPT_WELL)."""
    floor = (fg.get("floor") or {}).get("kept_share")
    return fg["kept_ci"][1] < floor if floor is not None else fg["kept_ci"][0] < KEPT_WELL


def heldout_loss(model, tokenizer, examples: list[Example], bf16: bool, base_model=None) -> dict:
    """Per-token loss and perplexity of the expected answers under base and tuned (teacher forcing).

    `bf16` is training's setting, not answering's: the loss is then measured as validation loss was, and on
    a CPU with AMX it takes about half the time of fp32 (16-17 against 30-32 s for usaddress's 100 rows, 2026-12-04)."""
    encoded = [e for e in encode_many(tokenizer, [ex.messages for ex in examples]) if not isinstance(e, TemplateError)]
    if not encoded:
        return {}
    pad = tokenizer.pad_token_id
    with (nullcontext() if base_model is not None else model.disable_adapter()):
        base = mean_token_loss(base_model if base_model is not None else model, encoded, 8, pad, bf16)
    tuned = mean_token_loss(model, encoded, 8, pad, bf16)
    return {"base_loss": base, "tuned_loss": tuned, "base_perplexity": math.exp(min(base, 50)),
            "tuned_perplexity": math.exp(min(tuned, 50)), "rows": len(encoded)}


def general_answers(model, tokenizer, bf16: bool, base_model=None, base_answers=None,
                    train_targets: list[str] = (), system: str | None = None, router=None) -> dict:
    """The general-ability check (evaluation/general.py) for base and tuned: the share of kept answers, the
    share the base itself keeps under a neutral system prompt (the measure's noise floor), and, for a task
    whose answers are JSON, how many general answers came back in that form. With `system`, the run's own
    system prompt, also the share kept when asked with it first, as `predict` and the server ask (`as_asked`).

    With the run's `router`, the questions it sends to the base get the base's answer, as `predict` and the server
    give it; `adapter` then keeps what the adapter alone kept (what a merged or GGUF export answers)."""
    with (nullcontext() if base_model is not None else model.disable_adapter()):
        untuned = base_model if base_model is not None else model
        base = general.answer_questions(untuned, tokenizer, bf16, cache=base_answers)
        neutral = general.answer_questions(untuned, tokenizer, bf16, cache=base_answers, system=general.NEUTRAL_SYSTEM)
        right = general.base_right(base) if system else []
        base_prompted = general.answer_questions(untuned, tokenizer, bf16, cache=base_answers, system=system,
                                                 only=right) if right else []
    adapter = general.answer_questions(model, tokenizer, bf16)
    to_base = router.to_base([[{"role": "user", "content": q.prompt}] for q in general.questions()]) if router \
        else [False] * len(adapter)
    tuned = [b if r else a for a, b, r in zip(adapter, base, to_base)]
    out = {**general.retention(base, tuned), "floor": general.noise_floor(base, neutral),
           "task_form": general.task_form(base, tuned, list(train_targets))}
    if router:
        alone = general.retention(base, adapter)
        out["routed"] = sum(to_base)
        out["adapter"] = {k: alone[k] for k in ("kept", "kept_share", "kept_ci", "tuned_correct")}
    if right:
        adapter_prompted = general.answer_questions(model, tokenizer, bf16, system=system, only=right)
        tuned_prompted = [b if to_base[i] else a for i, a, b in zip(right, adapter_prompted, base_prompted)]
        out["as_asked"] = general.as_asked(base, right, base_prompted, tuned_prompted, system,
                                           out["task_form"] is not None)
        if router:
            out["as_asked"]["adapter_kept"] = general.as_asked(base, right, base_prompted, adapter_prompted,
                                                               system)["kept"]
    return out


def choose_primary(comparison: Comparison, metric: str | None) -> None:
    if metric is None:
        return
    numeric = [k for k, v in comparison.tuned.items() if isinstance(v, (int, float))]
    if metric not in numeric:
        raise TailoredError(f"--metric {metric}: not computed for this task — use one of {', '.join(numeric)}")
    comparison.primary = metric


def gather(comparison: Comparison, cfg: EvalConfig, labels: list[str] | None, train_targets: list[str],
           model=None, tokenizer=None, examples: list[Example] | None = None, bf16: bool = False,
           base_model=None, train_prompts: list[str] | None = None, base_answers=None,
           loss_bf16: bool | None = None, system: str | None = None, router=None) -> dict:
    """Attach the evidence to `comparison.review` and return it. `model` is None for classifiers.

    `bf16` is for answering; `loss_bf16` (training's bf16, default `bf16`) for the held-out loss; `system` is
    the system prompt the run is asked with where a request brings none (the lineage's), for the general check."""
    choose_primary(comparison, cfg.metric)
    evidence: dict = {}
    if model is not None and examples:
        evidence["loss"] = heldout_loss(model, tokenizer, examples[: len(comparison.rows)],
                                        bf16 if loss_bf16 is None else loss_bf16, base_model)
        if cfg.forgetting:
            evidence["forgetting"] = general_answers(model, tokenizer, bf16, base_model, base_answers, train_targets,
                                                     system, router)
    if comparison.task != "label":
        evidence["repetition"] = review.repetition(comparison.rows)
        if train_targets:
            evidence["memorisation"] = review.memorisation(comparison.rows, train_targets)
            evidence["knowledge_gap"] = review.knowledge_gap(comparison.rows, train_targets + (train_prompts or []))
    if cfg.slice_by:
        if not any(cfg.slice_by in r.get("extra", {}) for r in comparison.rows):
            have = sorted({k for r in comparison.rows for k in r.get("extra", {})})
            raise TailoredError(f"--slice-by {cfg.slice_by}: no held-out row has that column"
                                + (f" — columns: {', '.join(have)}" if have else " — the rows have no extra columns"))
        evidence["slices"] = review.slices(comparison.rows, cfg.slice_by,
                                           lambda preds, refs: score(preds, refs, labels), comparison.primary,
                                           comparison.tuned[comparison.primary], cfg.slice_margin, cfg.min_slice)
    evidence["verdict"] = review.verdict(comparison.primary, comparison.base, comparison.tuned, comparison.tuned_ci,
                                         comparison.base_name, evidence.get("knowledge_gap"))
    evidence["gate"] = review.gate(comparison.primary, comparison.base, comparison.tuned, comparison.tuned_ci,
                                   cfg.fail_if_worse, cfg.floors)
    comparison.review = evidence
    return evidence


def print_evidence(evidence: dict, console) -> None:
    from rich.markup import escape

    if loss := evidence.get("loss"):
        console.print(f"held-out loss: base {loss['base_loss']:.3f} (perplexity {loss['base_perplexity']:.1f}) → "
                      f"tuned {loss['tuned_loss']:.3f} (perplexity {loss['tuned_perplexity']:.1f})")
    if mem := evidence.get("memorisation"):
        console.print(f"memorisation: {mem['verbatim_share']:.0f}% of answers repeat a training answer verbatim, "
                      f"{mem['near_share']:.0f}% share {mem['ngram_words']}+ words with one; "
                      f"{mem['wrong_copies']} copies do not fit their row")
        if mem["warning"]:
            console.print(f"[yellow]warning[/yellow] {escape(mem['warning'])}")
    if (rep := evidence.get("repetition")) and rep["tuned"]:
        console.print(f"looping answers: {rep['tuned']} of {rep['rows']} tuned answers repeat a phrase back to back "
                      f"(the base: {rep['base']})")
        if rep["warning"]:
            console.print(f"[yellow]warning[/yellow] {escape(rep['warning'])}")
    if (fg := evidence.get("forgetting")) and fg["kept_share"] is not None:
        floor = fg.get("floor") or {}
        colour = "yellow" if below_floor(fg) else "dim"
        console.print(f"[{colour}]general ability: the tuned model still answers {fg['kept']} of the {fg['base_correct']} "
                      f"general questions the base got right ({fg['kept_share']:.0f}% "
                      f"[{fg['kept_ci'][0]:.0f}–{fg['kept_ci'][1]:.0f}]; {fg['questions']} questions, "
                      f"tuned correct on {fg['tuned_correct']})" + (
                          f"; the untuned base itself keeps {floor['kept_share']:.0f}% of them when only a neutral "
                          f"system prompt is added, the measure's noise floor" if floor.get("kept_share") is not None
                          else "") + f"[/{colour}]")
        if alone := fg.get("adapter"):
            console.print(f"[dim]the router answered {fg['routed']} of the {fg['questions']} with the untouched base; "
                          f"the adapter alone, as a merged or GGUF export answers, keeps {alone['kept']} of the "
                          f"{fg['base_correct']} ({alone['kept_share']:.0f}% [{alone['kept_ci'][0]:.0f}–"
                          f"{alone['kept_ci'][1]:.0f}])[/dim]")
        if (asked := fg.get("as_asked")) and asked["kept_share"] is not None:
            colour = "yellow" if below_floor(asked) else "dim"
            console.print(f"[{colour}]asked as predict and the server ask, with the run's system prompt first: "
                          f"{asked['kept']} of the {asked['base_correct']} ({asked['kept_share']:.0f}% "
                          f"[{asked['kept_ci'][0]:.0f}–{asked['kept_ci'][1]:.0f}]); the untuned base given that prompt "
                          f"keeps {asked['floor']['kept_share']:.0f}%" + (
                              f"; {asked['task_form']} of them answered in the task's form, as that prompt asks"
                              if asked.get("task_form") else "") + f"[/{colour}]")
        if (form := fg.get("task_form")) and form["tuned"] > form["base"] and form["tuned"] >= TASK_FORM_WARN:
            console.print(f"[yellow]warning[/yellow] {form['tuned']} of {form['questions']} general questions were "
                          f"answered in the task's form, a {form['form']} (the base: {form['base']}), e.g. "
                          f"“{escape(form['examples'][0]['prompt'])}” → {escape(form['examples'][0]['tuned'][:80])}: "
                          "the model treats requests that are not the task as the task")
    if sl := evidence.get("slices"):
        for value, s in sl["slices"].items():
            note = " [red]below overall[/red]" if s["flagged"] else " (too few rows to judge)" if s["too_small"] else ""
            console.print(f"slice {escape(sl['field'])}={escape(value)}: {s['rows']} rows, {sl['primary']} "
                          f"{s['base'][sl['primary']]:.1f} → {s['tuned'][sl['primary']]:.1f}{note}")
    g = evidence.get("gate", {})
    for failure in g.get("failures", []):
        console.print(f"[red]gate failed[/red] {escape(failure)}")
    if v := evidence.get("verdict"):
        colour = {"better": "green", "worse": "red"}.get(v["word"], "yellow")
        console.print(f"[bold {colour}]verdict[/bold {colour}] {escape(v['text'])}")


def assess(model, tokenizer, rows, train_rows, labels, eval_cfg: EvalConfig, bf16: bool, classify: bool,
           base_model=None, base=None, documents: list[str] = (), voice=None,
           loss_bf16: bool | None = None, system: str | None = None, router=None) -> Comparison:
    """Before vs tuned on `rows`, with the evidence attached; shared by `tailor train` and `tailor eval`.

    `bf16` is for answering, `loss_bf16` for the held-out loss, `system` the run's system prompt (see `gather`),
    `router` the run's (models/router.py): tuned answers are the routed ones, as the run answers.
    `documents` (--documents' texts) count as training text where the evidence asks what training saw;
    `voice` is --voice's scorer (`tuned.house_voice`)."""
    if classify:  # the untuned encoder's embeddings are one of the baselines
        comparison = compare_classifier(model, tokenizer, rows, train_rows, labels, eval_cfg, bf16,
                                        materialise(base).path if base else None)
        base_answers = None
    else:
        base_answers = BaseAnswers.of(base, bf16, device_of(model)) if base is not None else None
        comparison = compare(model, tokenizer, rows, labels, eval_cfg, bf16, base_model, voice, base_answers, router)
    gather(comparison, eval_cfg, labels, [ex.target for ex in train_rows], None if classify else model, tokenizer,
           rows, bf16, base_model, [m["content"] for ex in train_rows for m in ex.prompt] + list(documents),
           base_answers, loss_bf16, system, router)
    return comparison
