"""Seeded train/validation split that keeps exact duplicates on one side and stratifies labels."""

from __future__ import annotations

import json
import random
from collections import defaultdict

from tailored.data.formats import Example


def dedup_key(ex: Example) -> str:
    return json.dumps(ex.messages, sort_keys=True, ensure_ascii=False)


def valid_size(n: int, fraction: float) -> int:
    """10% by default, at least 1 and at most 200: enough to rank checkpoints, cheap to score."""
    return max(1, min(200, round(n * fraction)))


def split_train_valid(examples: list[Example], fraction: float, seed: int) -> tuple[list[Example], list[Example]]:
    """Hold out about `fraction` of the rows; identical rows always land on the same side."""
    if len(examples) < 2:
        return list(examples), []
    groups: dict[str, list[Example]] = defaultdict(list)
    for ex in examples:
        groups[dedup_key(ex)].append(ex)
    rng = random.Random(seed)
    keys = list(groups)
    rng.shuffle(keys)
    target = valid_size(len(examples), fraction)

    valid_keys: set[str] = set()
    if all(groups[k][0].label is not None for k in keys):
        # Stratify: each label gives its share, so rare classes appear in validation too.
        by_label: dict[str, list[str]] = defaultdict(list)
        for k in keys:
            by_label[groups[k][0].label].append(k)
        for label_keys in by_label.values():
            take = round(len(label_keys) * target / len(keys))
            if take == 0 and len(label_keys) >= 4:
                take = 1
            valid_keys.update(label_keys[:take])
    else:
        count = 0
        for k in keys:
            if count >= target:
                break
            valid_keys.add(k)
            count += len(groups[k])

    train = [ex for ex in examples if dedup_key(ex) not in valid_keys]
    valid = [ex for ex in examples if dedup_key(ex) in valid_keys]
    if not train:  # one huge duplicate group: better no validation than no training
        return list(examples), []
    return train, valid
