"""Quality on real, human-written data: the base, the strongest simple baseline, tailored's defaults, and TRL.

    python bench/quality.py [--tasks all] [--guard-off usaddress_fields,sgd_responses]
                            [--trl usaddress_fields,nlupp_slots] [--out bench/quality.json]

The data sets are `../shared/realdata/` (see its README); each task is a seeded subsample. From an empty
cache on 2 cores the whole benchmark takes 56-89 minutes, by instance: 56 on the fastest Intel Xeon so far and
75-77 on slower instances on 2026-12-05 (BENCHMARKS.md has every run); 52.5 with a warm cache (2026-12-03).
`--trl` needs the bench extra (`pip install -e ".[bench]"`: trl and datasets). Every figure is on held-out rows never trained on,
with a 95% bootstrap interval, and every task records its wall time. A speed probe (seconds per training
step of the base on a fixed batch) at the start and the end puts the total beside this machine's speed that day.

- Classifiers (clinc150 at 8 and 64 rows per intent, tweeteval_emotion): `tailor train --task
  classify` with defaults against both simple baselines it measures itself (TF-IDF + logistic
  regression, and logistic regression on the untuned encoder's embeddings).
- Generation (usaddress_fields, nlupp_slots, sgd_responses, dialogsum, and the bundled support example
  with its own held-out file): the untuned base, a
  nearest-neighbour baseline (the training answer of the most similar training input, by TF-IDF),
  and tailored with defaults (the guard on); plus the guard's general-ability check.
- `--guard-off` (none by default, to keep the hour): the named tasks trained again with `--guard 0`,
  for the guard's cost; usaddress_fields and sgd_responses add about 13 minutes. `--guard-off-only` runs
  those tasks only without the guard (their guarded runs are seeded and repeat exactly).
- `--trl`: TRL's SFTTrainer with its defaults (LoRA r=16 on all linear layers, as TRL's docs show)
  on the same rows, stopped at tailored's training wall time, scored by the same code. By default on the
  two generation tasks whose training is shortest (usaddress_fields, nlupp_slots), to keep the hour.
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
REAL = ROOT.parent / "shared" / "realdata"
sys.path.insert(0, str(ROOT))

# name: (file, task, how to split, train rows, held-out rows)
TASKS = {
    "clinc150_8": ("clinc150.jsonl", "classify", "per_label:8", None, 1500),
    "clinc150_64": ("clinc150.jsonl", "classify", "per_label:64", None, 1500),
    "tweeteval_emotion": ("tweeteval_emotion.jsonl", "classify", "splits", None, None),
    "usaddress_fields": ("usaddress_fields.jsonl", "generate", "splits", 400, 100),
    "nlupp_slots": ("nlupp_slots.jsonl", "generate", "folds:15", 400, 100),
    "sgd_responses": ("sgd_responses.jsonl", "generate", "random", 400, 100),
    "dialogsum": ("dialogsum.jsonl", "generate", "splits:validation,test", 200, 60),
    "support": ("support.jsonl", "generate", "bundled", None, None),  # examples/, with its own held-out file
}


def split_rows(name: str, seed: int = 0, heldout_rows: int | None = None) -> tuple[list[dict], list[dict]]:
    """The task's seeded training and held-out rows; `heldout_rows` takes more (or fewer) of the same held-out
    order, whose first rows are the benchmark's own."""
    file, _, how, n_train, n_test = TASKS[name]
    n_test = heldout_rows or n_test
    if how == "bundled":  # as the user has them: every training row, the held-out file as written
        read = lambda path: [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
        return read(ROOT / "examples" / file), read(ROOT / "examples" / file.replace(".jsonl", ".heldout.jsonl"))
    rows = [json.loads(line) for line in (REAL / file).read_text(encoding="utf-8").splitlines()]
    rng = random.Random(seed)
    if how.startswith("per_label:"):
        per = int(how.split(":")[1])
        by = collections.defaultdict(list)
        for r in rows:
            if r["split"] == "train":
                by[r["label"]].append(r)
        train = [r for label in sorted(by) for r in rng.sample(by[label], min(per, len(by[label])))]
        test = [r for r in rows if r["split"] == "test"]
    elif how.startswith("folds:"):  # nlupp: folds 0..k-1 of both domains train, the rest is held out
        k = int(how.split(":")[1])
        train = [r for r in rows if int(r["split"].rsplit("fold", 1)[1]) < k]
        test = [r for r in rows if int(r["split"].rsplit("fold", 1)[1]) >= k]
    elif how == "random":
        rows = rows[:]
        rng.shuffle(rows)
        train, test = rows[: len(rows) // 2], rows[len(rows) // 2 :]
    else:
        train_split, test_split = how.split(":")[1].split(",") if ":" in how else ("train", "test")
        train = [r for r in rows if r["split"] == train_split]
        test = [r for r in rows if r["split"] == test_split]
    rng.shuffle(train)
    rng.shuffle(test)
    strip = [{k: v for k, v in r.items() if k != "split"} for r in (train[:n_train] if n_train else train)]
    return strip, [{k: v for k, v in r.items() if k != "split"} for r in (test[:n_test] if n_test else test)]


def write(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


def nearest_neighbour(train: list, test: list) -> list[str]:
    """The training answer whose question (the last user turn) is most like each held-out question."""
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.metrics.pairwise import linear_kernel

    question = lambda ex: ex.prompt[-1]["content"]
    vectoriser = TfidfVectorizer(ngram_range=(1, 2), sublinear_tf=True).fit([question(ex) for ex in train])
    similar = linear_kernel(vectoriser.transform([question(ex) for ex in test]),
                            vectoriser.transform([question(ex) for ex in train]))
    return [train[int(i)].target for i in similar.argmax(1)]


def run_tailored(name: str, folder: Path, guard: float | None = None) -> dict:
    import tailored
    from tailored.config import DataConfig, EvalConfig, RunConfig, TrainConfig

    train, test = split_rows(name)
    data, heldout = write(folder / f"{name}.jsonl", train), write(folder / f"{name}.heldout.jsonl", test)
    task = TASKS[name][1]
    data_cfg = DataConfig(heldout=str(heldout), **({} if guard is None else {"guard": guard}))
    start = time.perf_counter()
    run = tailored.train(data, TrainConfig(task=task), data_cfg, EvalConfig(samples=0),
                         RunConfig(runs_dir=str(folder / "runs"), name=name + ("" if guard is None else "-guard0")),
                         quiet=True)
    c = run.comparison
    out = {"task": name, "kind": task, "train_rows": len(train), "heldout_rows": len(c.rows), "primary": c.primary,
           "tuned": c.tuned[c.primary], "tuned_ci": c.tuned_ci.get(c.primary), "wall_s": time.perf_counter() - start,
           "train_s": run.fit.seconds, "steps": run.fit.steps,
           "best_step": run.fit.best_step, "verdict": c.review.get("verdict", {}).get("word")}
    if task == "classify":
        out["baselines"] = {k: {"value": v["accuracy"], "ci": v["ci"]} for k, v in c.baselines.items()}
    else:
        from tailored.data import load_dataset
        from tailored.evaluation.compare import score

        out["base"], out["base_ci"] = c.base[c.primary], c.base_ci.get(c.primary)
        train_ex, test_ex = load_dataset(data).examples, load_dataset(heldout).examples
        values, intervals = score(nearest_neighbour(train_ex, test_ex), [ex.target for ex in test_ex], None)
        out["baselines"] = {"nearest training answer (TF-IDF)": {"value": values[c.primary],
                                                                  "ci": intervals.get(c.primary)}}
        fg = c.review.get("forgetting") or {}
        out["general"] = {k: fg.get(k) for k in ("kept", "base_correct", "kept_share", "kept_ci", "tuned_correct",
                                                 "floor", "routed", "adapter")}  # routed: the router's, as it answers
        if asked := fg.get("as_asked"):  # with the run's system prompt first, as predict and the server ask
            out["general"]["as_asked"] = {k: asked.get(k) for k in ("system", "kept", "base_correct", "kept_share",
                                                                    "kept_ci", "floor", "task_form", "adapter_kept")}
        out["heldout_routed"] = c.routed  # held-out rows the router gave to the base
    return out


def run_trl(name: str, folder: Path, budget_s: float) -> dict:
    """TRL SFTTrainer defaults on the same rows, stopped at `budget_s` of training, scored like tailored."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTConfig, SFTTrainer

    from tailored.data import load_dataset
    from tailored.evaluation.compare import answer_budget, score
    from tailored.evaluation.generate import generate
    from tailored.config import EvalConfig
    from tailored.device import device_of, generation_bf16
    from tailored.models import load_causal_lm, load_tokenizer, resolve_base

    torch.set_num_threads(2)
    train = load_dataset(folder / f"{name}.jsonl").examples
    test = load_dataset(folder / f"{name}.heldout.jsonl").examples
    base = resolve_base("smollm2-135m")
    tok, model = load_tokenizer(base), load_causal_lm(base)

    class Budget(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if time.perf_counter() - started > budget_s:
                control.should_training_stop = True

    data = Dataset.from_list([{"prompt": ex.prompt, "completion": ex.messages[-1:]} for ex in train])
    args = SFTConfig(output_dir=tempfile.mkdtemp(), use_cpu=True, save_strategy="no", report_to=[], seed=0,
                     dataloader_num_workers=0)
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, target_modules="all-linear", task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tok, peft_config=peft,
                         callbacks=[Budget()])
    started = time.perf_counter()
    trainer.train()
    train_s = time.perf_counter() - started
    refs = [ex.target for ex in test]
    bf16 = generation_bf16(None, device_of(trainer.model))  # as tailored's own evaluation decides
    preds = generate(trainer.model, tok, [ex.prompt for ex in test], answer_budget(tok, refs, EvalConfig()), bf16=bf16)
    values, intervals = score(preds, refs, None)
    primary = "field_f1" if "field_f1" in values else "rouge_l"
    return {"task": name, "primary": primary, "trl": values[primary], "trl_ci": intervals.get(primary),
            "trl_train_s": train_s, "trl_steps": trainer.state.global_step,
            "trl_epochs": round(trainer.state.epoch or 0, 2)}


def speed_probe(steps: int = 2) -> float:
    """Seconds per bf16 training step of SmolLM2-135M on a fixed 8 x 128-token batch: this machine's speed now.

    The same CPU model has run the same training steps 1.4-2.7x slower than in an earlier session, and slowed
    down within one run (2026-12-04), so a run's wall time is read against this, taken at its start and end."""
    import torch

    from tailored.device import autocast, choose_bf16
    from tailored.models import load_causal_lm, resolve_base

    torch.manual_seed(0)
    model = load_causal_lm(resolve_base("smollm2-135m"))
    model.train()
    ids = torch.randint(0, model.config.vocab_size, (8, 128))
    bf16, seconds = choose_bf16(None, ids.device), []
    for _ in range(steps + 1):  # the first is a warm-up
        start = time.perf_counter()
        with autocast(ids.device, bf16):
            loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        model.zero_grad()
        seconds.append(time.perf_counter() - start)
    return min(seconds[1:])


def fmt(value, ci) -> str:
    return f"{value:.1f} [{ci[0]:.1f}–{ci[1]:.1f}]" if ci else f"{value:.1f}"


def table(results: list[dict]) -> str:
    lines = ["| task | rows train / held-out | metric | base | strongest simple baseline | tailored (defaults) | "
             "TRL, same time | general answers kept | wall |", "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        best = max(r["baselines"].items(), key=lambda kv: kv[1]["value"])
        base = fmt(r["base"], r.get("base_ci")) if "base" in r else "—"
        trl = fmt(r["trl"], r["trl_ci"]) + f" ({r['trl_epochs']} ep)" if "trl" in r else "—"
        g = r.get("general") or {}
        kept = f"{g['kept']}/{g['base_correct']} ({fmt(g['kept_share'], g['kept_ci'])})" if g.get("kept_share") \
            is not None else "—"
        if g.get("adapter"):
            kept += f"; the adapter alone {g['adapter']['kept']}/{g['base_correct']}"
        if (asked := g.get("as_asked") or {}).get("kept_share") is not None:
            kept += f"; with its system prompt {asked['kept']}/{asked['base_correct']} (floor {asked['floor']['kept']})"
        lines.append(f"| {r['task']}{' (guard off)' if r.get('guard_off') else ''} | {r['train_rows']} / "
                     f"{r['heldout_rows']} | {r['primary']} | {base} | {best[0]}: {fmt(best[1]['value'], best[1]['ci'])} "
                     f"| {fmt(r['tuned'], r['tuned_ci'])} | {trl} | {kept} | {r['wall_s']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tasks", default="all")
    ap.add_argument("--guard-off", default="", help="tasks to train again with --guard 0 (about 7 min each)")
    ap.add_argument("--guard-off-only", action="store_true",
                    help="run the --guard-off tasks only with --guard 0 (their guarded figures repeat exactly: seeded)")
    ap.add_argument("--trl", default="usaddress_fields,nlupp_slots")
    ap.add_argument("--out", default=str(ROOT / "bench" / "quality.json"))
    args = ap.parse_args()
    names = list(TASKS) if args.tasks == "all" else args.tasks.split(",")
    if any(name in args.trl.split(",") for name in names):  # said now, not after forty minutes of other tasks
        import importlib.util

        if not (importlib.util.find_spec("trl") and importlib.util.find_spec("datasets")):
            sys.exit('--trl needs the bench extra: pip install -e ".[bench]" (or pass --trl "")')
    folder = Path(tempfile.mkdtemp(prefix="quality-"))
    results, started = [], time.perf_counter()  # the probes count: they are part of the command's hour
    probe = {"start_step_s": speed_probe()}
    print(f"speed probe: {probe['start_step_s']:.2f} s a training step", flush=True)
    guard_off = args.guard_off.split(",")
    for name in names:
        if not (args.guard_off_only and name in guard_off):
            result = run_tailored(name, folder)
            if name in args.trl.split(","):
                trl_started = time.perf_counter()
                result.update({k: v for k, v in run_trl(name, folder, result["train_s"]).items() if k != "primary"})
                result["trl_wall_s"] = time.perf_counter() - trl_started  # loading, training and scoring
            results.append(result)
            print(json.dumps(result), flush=True)
        if name in guard_off:
            off = {**run_tailored(name, folder, guard=0.0), "guard_off": True}
            results.append(off)
            print(json.dumps(off), flush=True)
        Path(args.out).write_text(json.dumps(results, indent=1))
    probe["end_step_s"] = speed_probe()
    total = time.perf_counter() - started
    Path(args.out).write_text(json.dumps(results + [{"speed_probe": probe}], indent=1))
    print(table(results))
    print(f"\ntotal wall time {total:.0f} s; speed probe {probe['start_step_s']:.2f} s a training step at the start, "
          f"{probe['end_step_s']:.2f} at the end")


if __name__ == "__main__":
    main()
