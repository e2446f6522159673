"""The guard against forgetting, on by default: the base's own general answers replayed in training, and a router.

Three parts, none needing data from the user beyond their rows, and no network:

- `add_replay` mixes the untuned base's own answers into training, as `--guard` of the rows: half to
  bundled general requests (`evaluation/general.py` answers and caches them), half to the task's own
  training inputs asked without their system prompt (`plain_examples`). Where the user's rows share a
  system prompt of their own, the general requests are replayed with it first: `predict`, chat and the
  server put it on every request, so that is how general questions reach the model. Without it, the
  support example kept 40 of the base's 61 right general answers asked that way, 47 with it, at the same
  ROUGE-L (87.2 against 86.9; BENCHMARKS.md, 2026-12-04);
- `data.prepare.give_task_prompt` (called by `pipeline.prepare_data` when `guarded`) gives rows that
  have no system prompt tailored's own, since the replayed rows have none either and a model that
  cannot tell the two apart answers a plain question in the task's form;
- `fit_router` (a guarded LoRA run, unless --no-route) fits `models.router.Router`: requests unlike the
  user's inputs are answered by the untouched base. The replay alone kept 72-87% of the base's right general
  answers on five real tasks; with the router every run kept 61 of 61 (BENCHMARKS.md, 2026-12-05). The
  replay stays: it is what the adapter alone, and so a merged or GGUF export, keeps.

Why the task's own inputs: with general requests alone, a model tuned on short requests turned into
JSON (nlupp_slots) still answered general requests in JSON, since the content of a row told it more
than the system prompt did. The same inputs with and without the prompt, answered two ways, leave
the prompt as the only switch.

Validation and held-out rows stay task-only, so the scores still measure the task; the general
check (`evaluation/general.py`) measures what was kept.
"""

from __future__ import annotations

import random

from tailored.config import DataConfig, TrainConfig
from tailored.data.encode import TemplateError, encode_many, stop_token_ids
from tailored.data.formats import Example
from tailored.data.prepare import Prepared
from tailored.device import device_of, generation_bf16
from tailored.evaluation import general
from tailored.models import router


def guarded(task: str, method: str, data_cfg: DataConfig) -> bool:
    """Whether training replays the guard's general rows (DPO needs none: its loss is measured against the base)."""
    return task == "generate" and method != "dpo" and data_cfg.guard > 0


def plain_examples(model, tokenizer, fingerprint: str, examples: list[Example], n: int, seed: int,
                   bf16: bool = False) -> list[Example]:
    """Up to `n` of the task's training conversations (seeded sample) without their system prompt, answered
    by `model`, the untuned base; conversations that have no system prompt to take away are not used."""
    prompted = [ex for ex in examples if any(t["role"] == "system" for t in ex.prompt)]
    chosen = random.Random(seed).sample(prompted, min(n, len(prompted)))
    conversations = [[t for t in ex.prompt if t["role"] != "system"] for ex in chosen]
    answers = general.base_replies(model, tokenizer, fingerprint, conversations, bf16)
    return [Example(c + [{"role": "assistant", "content": a}], "(plain task input, base reply)", i + 1)
            for i, (c, a) in enumerate(zip(conversations, answers)) if a]


def add_replay(prep: Prepared, model, tokenizer, base, data_cfg: DataConfig, train_cfg: TrainConfig) -> None:
    """The untuned base's own answers, as `data_cfg.guard` of the training rows: half to general requests (with
    the user's shared system prompt first, if any), half to the task's inputs without their system prompt (all
    general ones when no row has a system prompt).

    Rows are ours, not the user's, so one over a --max-length the user set is simply not used.
    """
    n_task = len(prep.train_encoded)
    wanted = round(data_cfg.guard / (1 - data_cfg.guard) * n_task)
    bf16 = generation_bf16(train_cfg.bf16, device_of(model))
    plain = plain_examples(model, tokenizer, base.fingerprint(), prep.train_examples, wanted // 2, train_cfg.seed, bf16)
    # tailored's TASK_PROMPT is the switch between the task and the rest, so general rows go without it
    rows = general.replay_examples(model, tokenizer, base.fingerprint(), wanted - len(plain), train_cfg.seed, bf16,
                                   system=prep.own_system_prompt)
    encoded = [e for e in encode_many(tokenizer, [ex.messages for ex in rows + plain], stop_token_ids(tokenizer))
               if not isinstance(e, TemplateError) and e.trainable
               and (data_cfg.max_length is None or len(e.input_ids) <= data_cfg.max_length)]
    prep.train_encoded = prep.train_encoded + encoded
    prep.guard_rows = len(encoded)


def routed(task: str, method: str, data_cfg: DataConfig) -> bool:
    """Whether the run gets a router (models/router.py): a guarded LoRA run, where the base is there to switch to."""
    return guarded(task, method, data_cfg) and method == "lora" and data_cfg.route


def fit_router(prep: Prepared, embed=None) -> dict:
    """Fit the run's router on its training inputs against the guard's general requests and check it on its
    validation inputs; `prep.router` is set when the check passes. Returns what the check found."""
    found = router.fit_checked([ex.prompt for ex in prep.train_examples], [ex.prompt for ex in prep.valid_examples],
                               general.replay_prompts(), embed)
    prep.router = found[0]
    return found[1]
