"""Slices, memorisation, looping answers and the gate, on hand-made rows with hand-computed answers."""

from __future__ import annotations

import pytest

from tailored.config import parse_floors
from tailored.evaluation import review
from tailored.evaluation.compare import score
from tailored.errors import TailoredError


def row(expected, tuned, segment="a", base="x", line=1):
    return {"line": line, "prompt": "p", "expected": expected, "base": base, "tuned": tuned,
            "extra": {"segment": segment}}


def test_slices_flag_only_judgeable_slices_far_below_overall():
    rows = [row("yes", "yes", "a") for _ in range(10)] + [row("yes", "no", "b") for _ in range(10)] + \
        [row("yes", "no", "c")]
    out = review.slices(rows, "segment", lambda p, r: score(p, r, None), "exact_match", 50.0, 10.0, 5)
    a, b, c = (out["slices"][k] for k in "abc")
    assert (a["rows"], a["tuned"]["exact_match"], a["flagged"]) == (10, 100.0, False)
    assert (b["tuned"]["exact_match"], b["flagged"], b["too_small"]) == (0.0, True, False)
    assert (c["rows"], c["flagged"], c["too_small"]) == (1, False, True)  # 0% but one row: not judged


def test_memorisation_counts_verbatim_near_and_wrong_copies():
    train = ["You can cancel any time in Settings then Billing then Cancel plan and keep every note you wrote",
             "Reset your password from the login page"]
    rows = [
        row("Reset your password from the login page", "reset your password from the login page"),  # verbatim, right
        row("Open Settings and pick Export", "Reset your password from the login page"),  # verbatim, wrong
        row("Something else entirely here", "Sure: you can cancel any time in Settings then Billing then Cancel "
                                            "plan and keep every note"),  # 12+ shared words, wrong
        row("Open the app", "Open the app"),  # original
    ]
    out = review.memorisation(rows, train)
    assert (out["verbatim"], out["near"], out["wrong_copies"]) == (2, 1, 2)
    assert out["verbatim_share"] == 50.0 and out["wrong_copy_share"] == 50.0
    assert out["warning"] and [e["verbatim"] for e in out["examples"]] == [True, False]


def test_looping_answers_are_counted_for_both_models_and_short_repeats_are_not_loops():
    rows = [row("x", "A tells B that A tells B that A tells B that", base="a fine summary", line=1),
            row("x", "hotel hotel hotel hotel hotel hotel", base="hotel hotel hotel hotel hotel hotel", line=2),
            row("x", "no no no", base="the the the the the", line=3)]  # 3 and 5 words: answers, not loops
    rep = review.repetition(rows)
    assert (rep["rows"], rep["tuned"], rep["base"]) == (3, 2, 1)
    assert [e["run"] for e in rep["examples"]] == ["a tells b that", "hotel"]
    assert rep["warning"].startswith("2 of 3 tuned answers repeat a phrase back to back (the base: 1)")
    assert review.loops("the the the the the the") == "the" and review.loops("no no no") is None
    assert review.repetition(rows[1:])["warning"] is None  # no more loops than the base had


def test_gate_fails_only_beyond_the_interval_and_under_floors():
    base, tuned = {"rouge_l": 50.0, "confusion": {}}, {"rouge_l": 45.0, "exact_match": 10.0}
    assert review.gate("rouge_l", base, tuned, {"rouge_l": (40.0, 52.0)}, True, {})["passed"]  # within noise
    worse = review.gate("rouge_l", base, tuned, {"rouge_l": (40.0, 48.0)}, True, {})
    assert not worse["passed"] and "worse than the base" in worse["failures"][0]
    assert review.gate("rouge_l", base, tuned, {"rouge_l": (40.0, 48.0)}, False, {})["passed"]
    floors = review.gate("rouge_l", base, tuned, {}, False, {"exact_match": 20.0, "nope": 1.0})
    assert len(floors["failures"]) == 2 and "under the floor 20" in floors["failures"][0]
    with pytest.raises(TailoredError):
        parse_floors(["rouge_l:5"])


def test_metric_override_changes_the_primary_and_refuses_unknown_names():
    from tailored.evaluation.compare import Comparison
    from tailored.evaluation.evidence import choose_primary

    c = Comparison("rouge_l", {"rouge_l": 10.0, "token_f1": 20.0}, {"rouge_l": 30.0, "token_f1": 25.0}, [], 8, 1.0)
    choose_primary(c, "token_f1")
    assert c.primary == "token_f1" and c.gain == 5.0
    with pytest.raises(TailoredError, match="use one of rouge_l, token_f1"):
        choose_primary(c, "bleu")


def test_verdict_is_judged_on_the_interval_in_plain_words():
    base = {"rouge_l": 50.0}
    better = review.verdict("rouge_l", base, {"rouge_l": 60.0}, {"rouge_l": (52.0, 68.0)})
    assert better["word"] == "better" and better["text"].startswith("Better than the base model: rouge_l 50.0 → 60.0")
    unclear = review.verdict("rouge_l", base, {"rouge_l": 55.0}, {"rouge_l": (49.0, 61.0)})
    assert unclear["word"] == "no clear change" and "within what chance alone" in unclear["text"]
    worse = review.verdict("accuracy", {"accuracy": 62.5}, {"accuracy": 41.2}, {"accuracy": (36.0, 46.0)},
                           "TF-IDF + logistic regression")
    assert worse["word"] == "worse"
    assert worse["text"].startswith("Worse than the TF-IDF + logistic regression baseline: accuracy 62.5 → 41.2")


def test_knowledge_gap_counts_answers_resting_on_words_never_seen():
    train = ["Reset your password under Settings, then Account.", "Plans cost 8 dollars a month."]
    rows = [  # 1: every content word is in training or its own question; 2 and 3: two or more unseen; 4: one
        {"line": 1, "prompt": "How do I reset my password?", "expected": "Under Settings, then Account.", "tuned": ""},
        {"line": 2, "prompt": "Who founded the company?", "expected": "Maria Lindqvist founded it in 2011.", "tuned": ""},
        {"line": 3, "prompt": "Where is the office?", "expected": "In Tampere, on Hämeenkatu street.", "tuned": ""},
        {"line": 4, "prompt": "What does the plan cost?", "expected": "8 dollars a month, billed.", "tuned": ""},  # one unseen
    ]
    gap = review.knowledge_gap(rows, train)
    assert (gap["gap_rows"], gap["share"], gap["flagged"]) == (2, 50.0, True)
    assert [e["line"] for e in gap["examples"]] == [2, 3]
    assert gap["examples"][0]["unseen"] == ["2011", "lindqvist", "maria"]  # "founded" is in its own question
    assert review.knowledge_gap(rows[:1], train)["gap_rows"] == 0

    worse = review.verdict("rouge_l", {"rouge_l": 20.0}, {"rouge_l": 12.0}, {"rouge_l": (9.0, 15.0)}, "base", gap)
    assert worse["word"] == "worse" and worse["knowledge_gap"] and "knowledge gap" in worse["text"]
    assert "not a training failure" in worse["text"] and "check the data" not in worse["text"]
    plain = review.verdict("rouge_l", {"rouge_l": 20.0}, {"rouge_l": 12.0}, {"rouge_l": (9.0, 15.0)}, "base",
                           review.knowledge_gap(rows[:1], train))
    assert not plain["knowledge_gap"] and "check the data" in plain["text"]
