"""The guard against forgetting, on by default: the base's own general answers replayed in training.

Two parts, both needing no data from the user and no network:

- `add_replay` mixes the untuned base's own answers to bundled general requests into training, as
  `--guard` of the rows (`evaluation/general.py` answers and caches them);
- `data.prepare.give_task_prompt` (called by `pipeline.prepare_data` when `guarded`) gives rows that
  have no system prompt tailored's own, since the replayed rows have none either and a model that
  cannot tell the two apart answers a plain question in the task's form.

Validation and held-out rows stay task-only, so the scores still measure the task; the general
check (`evaluation/general.py`) measures what was kept.
"""

from __future__ import annotations

from tailored.config import DataConfig, TrainConfig
from tailored.data.encode import TemplateError, encode_many, stop_token_ids
from tailored.data.prepare import Prepared
from tailored.device import device_of, generation_bf16
from tailored.evaluation import general


def guarded(task: str, method: str, data_cfg: DataConfig) -> bool:
    """Whether training replays the guard's general rows (DPO needs none: its loss is measured against the base)."""
    return task == "generate" and method != "dpo" and data_cfg.guard > 0


def add_replay(prep: Prepared, model, tokenizer, base, data_cfg: DataConfig, train_cfg: TrainConfig) -> None:
    """The untuned base's own answers to general requests, as `data_cfg.guard` of the training rows.

    Rows are ours, not the user's, so one over a --max-length the user set is simply not used.
    """
    n_task = len(prep.train_encoded)
    wanted = round(data_cfg.guard / (1 - data_cfg.guard) * n_task)
    rows = general.replay_examples(model, tokenizer, base.fingerprint(), wanted, train_cfg.seed,
                                   generation_bf16(train_cfg.bf16, device_of(model)))
    encoded = [e for e in encode_many(tokenizer, [ex.messages for ex in rows], stop_token_ids(tokenizer))
               if not isinstance(e, TemplateError) and e.trainable
               and (data_cfg.max_length is None or len(e.input_ids) <= data_cfg.max_length)]
    prep.train_encoded = prep.train_encoded + encoded
    prep.guard_rows = len(encoded)
