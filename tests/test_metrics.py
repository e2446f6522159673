"""Metric values checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

from tailored.evaluation.metrics import exact_match, label_scores, match_label, rouge_l, token_f1


def test_exact_match_normalises_case_and_spaces():
    assert exact_match(["Hello  World", "x"], ["hello world", "y"]) == 50.0


def test_token_f1_by_hand():
    # pred "the cat sat", ref "the cat": overlap 2, precision 2/3, recall 1 → F1 = 0.8
    assert token_f1(["the cat sat"], ["the cat"]) == pytest.approx(80.0)
    # punctuation and case are ignored; no overlap gives 0
    assert token_f1(["The cat!", "dog"], ["the cat", "cat"]) == pytest.approx(50.0)


def test_rouge_l_by_hand():
    # LCS of "a b c d" and "a c d e" is "a c d" (3): P = R = 3/4 → F = 0.75
    assert rouge_l(["a b c d"], ["a c d e"]) == pytest.approx(75.0)


def test_label_matching_and_scores():
    labels = ["billing", "shipping", "technical"]
    assert match_label("Billing.", labels) == "billing"
    assert match_label("I think this is shipping, not billing", labels) == "shipping"
    assert match_label("no idea", labels) == "(none)"
    scores = label_scores(["billing", "shipping", "billing", "gibberish"],
                          ["billing", "shipping", "technical", "technical"], labels)
    assert scores["accuracy"] == pytest.approx(50.0)
    # per-class F1: billing 2/3 (P 1/2, R 1), shipping 1, technical 0 → macro (2/3 + 1 + 0) / 3
    assert scores["macro_f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    assert scores["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
