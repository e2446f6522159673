"""Write the tutor example: a student's work on one course, at a stated unit → feedback (seeded, reproducible).

    python examples/make_tutor.py

STAT 110 at Fernhill College is an invented introductory statistics course with conventions of its own:
- the sample mean is x̄ ("x-bar") and is never called "the average"; the sample standard deviation is s;
- it speaks of "centre" and "spread", and calls z-scores "standard scores", written z = (x − x̄) / s;
- Unit 1 covers centre and spread (mean, median, range); Unit 3 adds standard scores and probability,
  so feedback to a Unit 1 student never uses standard deviations or standard scores;
- feedback opens with "Good work." or "Not quite.", shows the working in the course's notation, ends
  with "Final answer: …" where there is one, and then a "Next step".

Held-out rows carry `answer` (the final answer, or null for a question without one), `mentions` (the
course terms and notation the feedback should use) and `avoid` (words the course does not use, and
terms above the student's unit), which the evaluation scores beside ROUGE-L.
"""

from __future__ import annotations

import json
import random
from fractions import Fraction
from pathlib import Path

HERE = Path(__file__).parent
SYSTEM = "You are the STAT 110 tutor at Fernhill College. Give feedback in the course's terms and notation."
NEVER = ["average", "z-score"]  # the course says "mean" and "standard score"
ABOVE_UNIT_1 = ["standard deviation", "standard score", "variance"]


def fmt(x: float) -> str:
    return f"{x:.2f}".rstrip("0").rstrip(".")


def mean_task(rng: random.Random) -> dict:
    xs = [rng.randint(2, 20) for _ in range(rng.randint(4, 6))]
    right = sum(xs) / len(xs)
    wrong = sum(xs) / (len(xs) - 1)
    says = rng.choice([right, wrong])
    ok = abs(says - right) < 1e-9
    working = f"x̄ = Σx / n = {sum(xs)} / {len(xs)} = {fmt(right)}."
    why = "" if ok else f" You divided by {len(xs) - 1}; for x̄ we divide by n, the number of values, which is {len(xs)}."
    return {"unit": 1, "question": f"Find the sample mean of {', '.join(map(str, xs))}. I got {fmt(says)}.",
            "feedback": f"{'Good work.' if ok else 'Not quite.'}{why} {working} Final answer: x̄ = {fmt(right)}. "
                        "Next step: compare x̄ with the median to see whether the data are skewed.",
            "fact": fmt(right), "mentions": ["x̄", "n"]}


def median_task(rng: random.Random) -> dict:
    xs = [rng.randint(1, 30) for _ in range(rng.choice([5, 7]))]
    ordered = sorted(xs)
    right = ordered[len(xs) // 2]
    says = rng.choice([right, xs[len(xs) // 2]])
    ok = says == right
    why = "" if ok else " You took the middle value before ordering the data."
    return {"unit": 1, "question": f"What is the median of {', '.join(map(str, xs))}? My answer is {says}.",
            "feedback": f"{'Good work.' if ok else 'Not quite.'}{why} Ordered: {', '.join(map(str, ordered))}. With "
                        f"n = {len(xs)} the median is value number {(len(xs) + 1) // 2}. Final answer: median = "
                        f"{right}. Next step: the median is a measure of centre that outliers barely move.",
            "fact": str(right), "mentions": ["median", "centre", ["ordered", "order"]]}


def range_task(rng: random.Random) -> dict:
    xs = [rng.randint(1, 60) for _ in range(rng.randint(5, 7))]
    right = max(xs) - min(xs)
    says = rng.choice([right, max(xs)])
    ok = says == right
    why = "" if ok else " The range is not the largest value; it is the distance from the smallest to the largest."
    return {"unit": 1, "question": f"Calculate the range of {', '.join(map(str, xs))}. I think it's {says}.",
            "feedback": f"{'Good work.' if ok else 'Not quite.'}{why} Range = max − min = {max(xs)} − {min(xs)} = "
                        f"{right}. Final answer: range = {right}. Next step: the range is the simplest measure of "
                        "spread, and one extreme value changes it.",
            "fact": str(right), "mentions": ["spread", ["max − min", "max - min"]]}


def standard_score_task(rng: random.Random) -> dict:
    mean, s = rng.randint(40, 80), rng.choice([4, 5, 8, 10, 12])
    x = mean + rng.choice([-2, -1, 1, 2, 3]) * s // rng.choice([1, 2])
    right = (x - mean) / s
    says = rng.choice([right, (x - mean) / (s * s), x - mean])
    ok = abs(says - right) < 1e-9
    why = "" if ok else " Divide the distance from x̄ by s, once."
    return {"unit": 3, "question": f"A score of {x}, where x̄ = {mean} and s = {s}. What is its standard score? "
                                   f"I got {fmt(says)}.",
            "feedback": f"{'Good work.' if ok else 'Not quite.'}{why} z = (x − x̄) / s = ({x} − {mean}) / {s} = "
                        f"{fmt(right)}. Final answer: z = {fmt(right)}. Next step: a standard score says how many "
                        "s the value lies from x̄.",
            "fact": fmt(right), "mentions": ["x̄", "standard score", "z ="]}


def probability_task(rng: random.Random) -> dict:
    favourable, total, thing = rng.choice([(1, 6, "rolling a 4 with one fair die"), (3, 6, "rolling an even number "
                                           "with one fair die"), (2, 6, "rolling more than 4 with one fair die"),
                                          (13, 52, "drawing a heart from a full deck"), (4, 52, "drawing an ace "
                                           "from a full deck"), (12, 52, "drawing a face card from a full deck")])
    right = Fraction(favourable, total)
    says = rng.choice([right, Fraction(favourable, total - favourable)])
    ok = says == right
    why = "" if ok else " You divided by the outcomes that are not in the event; divide by all outcomes."
    return {"unit": 3, "question": f"What is the probability of {thing}? I said {says}.",
            "feedback": f"{'Good work.' if ok else 'Not quite.'}{why} P(A) = favourable outcomes / all outcomes = "
                        f"{favourable} / {total} = {right}. Final answer: P(A) = {right}. Next step: check that "
                        "P(A) lies between 0 and 1.",
            "fact": str(right), "mentions": ["P(A)", "outcomes"]}


CONCEPTS = [
    (1, "Why is the median sometimes better than the mean?",
     "Good question. The median is a measure of centre that outliers barely move, while x̄ is pulled towards them. "
     "With skewed data, such as incomes, the median describes the centre better. Next step: find both for a data "
     "set with one very large value.", ["median", "centre", "x̄", "outliers"]),
    (1, "What does spread mean?",
     "Good question. Spread is how far the values lie from each other. In Unit 1 we measure it with the range, "
     "max − min. Next step: find the range of two data sets with the same x̄ and compare them.",
     ["spread", "range"]),
    (1, "Is the mean the same thing as the middle value?",
     "Not quite. The middle value of ordered data is the median; x̄ is Σx / n. Both describe the centre, but they "
     "differ when the data are skewed. Next step: find both for 2, 3, 3, 4, 18.", ["median", "x̄", "centre"]),
    (3, "What does a negative standard score mean?",
     "Good question. A negative standard score means the value lies below x̄: z = (x − x̄) / s is negative when x < "
     "x̄. Next step: find z for a value exactly at x̄.", ["standard score", "x̄", "z ="]),
    (3, "Why do we divide by s in a standard score?",
     "Good question. Dividing by s puts the distance from x̄ in units of spread, so scores from different tests can "
     "be compared. Next step: compare z for two tests with different s.", ["standard score", "spread", "x̄"]),
    (3, "Can a probability be bigger than 1?",
     "Not quite. P(A) = favourable outcomes / all outcomes, so it always lies between 0 and 1. Next step: check "
     "your last answer against that rule.", ["P(A)", "outcomes"]),
]
TASKS = [mean_task, median_task, range_task, standard_score_task, probability_task]


def as_row(unit: int, question: str, feedback: str, fact, mentions: list) -> dict:
    avoid = NEVER + (ABOVE_UNIT_1 if unit == 1 else [])
    return {"messages": [{"role": "system", "content": SYSTEM},
                         {"role": "user", "content": f"[Unit {unit}] {question}"},
                         {"role": "assistant", "content": feedback}],
            "unit": unit, "answer": fact, "mentions": mentions, "avoid": avoid}


def main() -> None:
    rng = random.Random(20261202)
    rows, seen = [], set()
    while len(rows) < 340:
        task = rng.choice(TASKS)(rng)
        if task["question"] not in seen:
            seen.add(task["question"])
            rows.append(as_row(task["unit"], task["question"], task["feedback"], task["fact"], task["mentions"]))
    concept_rows = [as_row(u, q, f, None, m) for u, q, f, m in CONCEPTS]
    # the concept questions train (a tutor must explain, not only compute); held-out rows are new computations
    train = rows[:300] + concept_rows
    rng.shuffle(train)
    heldout = rows[300:]
    for name, items, keep in (("tutor.jsonl", train, False), ("tutor.heldout.jsonl", heldout, True)):
        with open(HERE / name, "w", encoding="utf-8") as f:
            for r in items:
                out = r if keep else {"messages": r["messages"], "unit": r["unit"]}
                f.write(json.dumps(out, ensure_ascii=False) + "\n")
    print(f"{len(train)} training rows, {len(heldout)} held-out rows")


if __name__ == "__main__":
    main()
