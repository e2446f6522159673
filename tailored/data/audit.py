"""Warnings about data that parses but may train badly: repeats, contradictions, leakage, balance, PII.

Each finding names the lines involved so the user can go and look; none of them changes the data.
"""

from __future__ import annotations

import re
import string
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass, field

from tailored.data.formats import Example

MIN_EXAMPLES = 10  # below this, training is refused: there is nothing to learn from or to validate with
FEW_EXAMPLES = 50
MIN_PER_CLASS = 8
_PUNCT = str.maketrans("", "", string.punctuation)
EMAIL = re.compile(r"\b[\w.+-]+@[\w-]+\.[\w.-]+\b")
PHONE = re.compile(r"(?<!\w)(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)[\s.-]?)?\d{2,4}[\s.-]\d{3,4}[\s.-]\d{3,4}(?!\w)")
CARD = re.compile(r"(?<!\d)(?:\d[ -]?){13,19}(?!\d)")


@dataclass
class Finding:
    kind: str
    message: str
    lines: list[int] = field(default_factory=list)  # example lines, at most 10
    count: int = 0

    def __str__(self) -> str:
        where = f" (lines {', '.join(map(str, self.lines))}{', …' if self.count > len(self.lines) else ''})" \
            if self.lines else ""
        return f"{self.kind}: {self.message}{where}"

    def to_dict(self) -> dict:
        return asdict(self)


def normalise(text: str) -> str:
    return " ".join(text.lower().translate(_PUNCT).split())


def prompt_key(ex: Example) -> str:
    return " | ".join(normalise(m["content"]) for m in ex.prompt if m["role"] != "system")


def _finding(kind: str, message: str, lines: list[int]) -> Finding:
    return Finding(kind, message, sorted(lines)[:10], len(lines))


def repeats(examples: list[Example]) -> list[Finding]:
    """Exact duplicates, near-duplicates (same text after normalising) and contradictions."""
    exact: dict[tuple, list[int]] = defaultdict(list)
    near: dict[tuple, list[int]] = defaultdict(list)
    targets: dict[str, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
    reversed_pairs: list[int] = []
    pairs = {(prompt_key(ex), normalise(ex.target), normalise(ex.rejected)) for ex in examples if ex.rejected}
    for ex in examples:
        exact[tuple((m["role"], m["content"]) for m in ex.messages) + (ex.rejected,)].append(ex.line)
        near[(prompt_key(ex), normalise(ex.target), normalise(ex.rejected or ""))].append(ex.line)
        if ex.rejected is None:  # one prompt with several chosen replies is normal in preference data
            targets[prompt_key(ex)][normalise(ex.target)].append(ex.line)
        elif (prompt_key(ex), normalise(ex.rejected), normalise(ex.target)) in pairs:
            reversed_pairs.append(ex.line)
    findings = []
    dup_lines = [line for lines in exact.values() if len(lines) > 1 for line in lines[1:]]
    if dup_lines:
        findings.append(_finding("duplicate", f"{len(dup_lines)} rows repeat an earlier row exactly; repeats weigh "
                                              "those examples more — remove them unless that is intended", dup_lines))
    exact_sets = {tuple(v) for v in exact.values()}
    near_lines = [line for lines in near.values() if len(lines) > 1 and tuple(lines) not in exact_sets
                  for line in lines[1:]]
    if near_lines:
        findings.append(_finding("near-duplicate", f"{len(near_lines)} rows match another after ignoring case, "
                                                   "spacing and punctuation", near_lines))
    conflict = [line for by_target in targets.values() if len(by_target) > 1 for ls in by_target.values() for line in ls]
    if conflict:
        groups = sum(1 for by_target in targets.values() if len(by_target) > 1)
        findings.append(_finding("contradiction", f"{groups} inputs appear with different outputs ({len(conflict)} "
                                                  "rows); the model learns an average of them — keep one answer",
                                 conflict))
    if reversed_pairs:
        findings.append(_finding("contradiction", f"{len(reversed_pairs)} preference rows prefer A over B where "
                                                  "another row prefers B over A; they cancel out — keep one",
                                 reversed_pairs))
    return findings


def leakage(train: list[Example], other: list[Example], name: str) -> list[Finding]:
    seen = {prompt_key(ex) for ex in train}
    leaked = [ex.line for ex in other if prompt_key(ex) in seen]
    if not leaked:
        return []
    return [_finding("leakage", f"{len(leaked)} {name} rows have the same input as a training row; their scores "
                                "would measure memory, not skill — remove them from one side", leaked)]


def size_and_balance(examples: list[Example], labels: list[str] | None) -> list[Finding]:
    findings = []
    n = len(examples)
    if n < FEW_EXAMPLES:
        findings.append(Finding("few-examples", f"only {n} examples; with fewer than {FEW_EXAMPLES} the validation "
                                                "split is too small to pick a checkpoint reliably and gains are noisy "
                                                "— aim for 100+", count=n))
    if labels:
        counts = Counter(ex.label for ex in examples)
        rare = sorted(label for label in labels if counts[label] < MIN_PER_CLASS)
        if rare:
            findings.append(Finding("rare-class", f"{', '.join(f'{r} ({counts[r]})' for r in rare)} have fewer than "
                                                  f"{MIN_PER_CLASS} examples; the model will rarely predict them",
                                    count=len(rare)))
        top, low = max(counts.values()), min(counts.values())
        if low and top / low >= 5:
            findings.append(Finding("imbalance", f"the largest class has {top / low:.0f}× the examples of the "
                                                 "smallest; accuracy will flatter the model — look at macro-F1",
                                    count=len(counts)))
    return findings


def _luhn(digits: str) -> bool:
    total, double = 0, False
    for d in reversed(digits):
        k = int(d) * (2 if double else 1)
        total += k - 9 if k > 9 else k
        double = not double
    return total % 10 == 0


def personal_data(examples: list[Example]) -> list[Finding]:
    """Emails, phone numbers and card numbers (Luhn-valid) anywhere in the turns."""
    hits: dict[str, list[int]] = defaultdict(list)
    for ex in examples:
        text = "\n".join(m["content"] for m in ex.messages)
        if EMAIL.search(text):
            hits["email addresses"].append(ex.line)
        cards = [m.span() for m in CARD.finditer(text)
                 if 13 <= len(d := re.sub(r"\D", "", m.group())) <= 19 and _luhn(d)]
        if cards:
            hits["card-like numbers"].append(ex.line)
        # digit groups inside a card number look like a phone number too; count them once, as a card
        if any(not any(a < e and s < b for a, b in cards) for m in PHONE.finditer(text) for s, e in [m.span()]):
            hits["phone numbers"].append(ex.line)
    return [_finding("personal-data", f"{len(lines)} rows contain {what}; remove or mask them unless the model "
                                      "must produce them", lines) for what, lines in hits.items()]


def unknown_keys(examples: list[Example]) -> list[Finding]:
    """Turn keys we neither train on nor check: said once, with the lines, so nothing is ignored silently."""
    lines: dict[str, list[int]] = {}
    for ex in examples:
        for where in ex.unknown_keys:
            lines.setdefault(where.rsplit(".", 1)[1], []).append(ex.line)
    return [_finding("unknown-key", f"messages carry '{key}', which tailored does not use (known: role, content, "
                     "name, weight); it is left out of training", found) for key, found in sorted(lines.items())]


def audit(rows: list[Example], labels: list[str] | None, train: list[Example], valid: list[Example],
          heldout: list[Example] | None = None) -> list[Finding]:
    """Repeats, size and personal data over the whole file; leakage between the sides of the split."""
    findings = repeats(rows) + size_and_balance(rows, labels) + personal_data(rows) + unknown_keys(rows)
    findings += leakage(train, valid, "validation")
    if heldout:
        findings += leakage(rows, heldout, "held-out")
    return findings
