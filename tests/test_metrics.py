"""Metric values checked against numbers worked out by hand."""

from __future__ import annotations

import pytest

import numpy as np

from tailored.evaluation.metrics import (
    PRIMARY,
    bootstrap,
    exact_match,
    json_scores,
    label_scores,
    match_label,
    rouge_l,
    task_kind,
    text_scores,
    token_f1,
)


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
    scores, intervals = label_scores(["billing", "shipping", "billing", "gibberish"],
                                     ["billing", "shipping", "technical", "technical"], labels)
    assert scores["accuracy"] == pytest.approx(50.0)
    # per-class F1: billing 2/3 (P 1/2, R 1), shipping 1, technical 0 → macro (2/3 + 1 + 0) / 3
    assert scores["macro_f1"] == pytest.approx(100 * (2 / 3 + 1) / 3)
    assert scores["confusion"]["matrix"] == [[1, 0, 0], [0, 1, 0], [1, 0, 0]]
    assert intervals["accuracy"][0] <= 50.0 <= intervals["accuracy"][1]


def test_json_extraction_by_hand():
    refs = ['{"a": 1, "b": "x"}', '{"a": 2, "b": "y"}', '{"a": 3, "b": "z"}']
    preds = ['{"a": 1, "b": "X "}',  # both fields right (strings ignore case and spacing)
             "not json at all",  # nothing parsed: 2 false negatives
             '```json\n{"a": 4, "b": "z", "c": 0}\n```']  # a wrong, b right, c extra
    values, intervals = json_scores(preds, refs)
    assert values["json_valid"] == pytest.approx(200 / 3)
    assert values["keys_match"] == pytest.approx(100 / 3)
    # TP 3 (a1, b1, b3); FP 2 (a3 wrong value, extra c); FN 3 (a2, b2, a3) → 2·3 / (6 + 2 + 3)
    assert values["field_f1"] == pytest.approx(100 * 6 / 11)
    # field a: TP 1, FP 1, FN 2 → 2/5; field b: TP 2, FP 0, FN 1 → 4/5; macro = 3/5
    assert values["field_macro_f1"] == pytest.approx(60.0)
    assert values["field_accuracy"] == {"a": pytest.approx(100 / 3), "b": pytest.approx(200 / 3)}
    assert list(values["field_accuracy"]) == ["a", "b"]  # most often wrong first
    low, high = intervals["field_f1"]
    assert low <= values["field_f1"] <= high


def test_nested_json_is_scored_per_leaf_path_with_lists_as_sets():
    refs = ['{"intent": "book", "slots": {"movie": "Up", "time": "7pm", "seats": ["a1", "a2"]}}',
            '{"intent": "cancel", "slots": {"movie": "Heat"}}']
    preds = ['{"intent": "book", "slots": {"movie": "up", "time": "8pm", "seats": ["a2", "a1", "a2"]}}',
             '{"intent": "cancel", "slots": {"movie": "Heat", "time": "9pm"}}']
    values, _ = json_scores(preds, refs)
    # row 1: intent, slots.movie (case), slots.seats (a set) right; slots.time wrong (FP and FN)
    # row 2: intent, slots.movie right; slots.time is not in the target (FP)
    # TP 5, FP 2, FN 1 → micro F1 = 10 / 13
    assert values["field_f1"] == pytest.approx(100 * 10 / 13)
    assert values["field_accuracy"] == {"slots.time": 0.0, "intent": 100.0, "slots.movie": 100.0,
                                        "slots.seats": 100.0}
    # per field: intent 2/2 → 1; slots.movie 1; slots.seats 1; slots.time TP 0, FP 2, FN 1 → 0; macro 3/4
    assert values["field_macro_f1"] == pytest.approx(75.0)
    assert values["keys_match"] == 50.0  # row 2's reply has a leaf the target lacks


def test_task_kind_and_primary_metric():
    assert task_kind(['{"a": 1}', '{"b": 2}'], None) == "json" and PRIMARY["json"] == "field_f1"
    assert task_kind(['{"a": 1}', "plain"], None) == "text"
    assert task_kind(["x"], ["x", "y"]) == "label"


def test_bootstrap_interval_is_pinned_and_sane():
    assert bootstrap(lambda idx: 7.0, 10) == (7.0, 7.0)
    data = np.array([0.0] * 20 + [100.0] * 30)  # mean 60
    low, high = bootstrap(lambda idx: float(data[idx].mean()), len(data), seed=0)
    assert low < 60.0 < high
    # Normal approximation: SE = sqrt(.6 · .4 / 50) · 100 ≈ 6.93, so the 95% interval is about ±13.6
    assert high - low == pytest.approx(2 * 1.96 * 6.93, abs=3.0)
    assert (low, high) == pytest.approx((46.0, 74.0))  # pinned for seed 0, 1000 resamples


def test_text_scores_include_chrf_by_hand():
    # chrF (beta 2, character 1- to 6-grams, whitespace dropped) of "ab" against "abc":
    # unigrams P 2/2, R 2/3; bigrams P 1/1, R 1/2; no trigrams in "ab", so two orders count.
    # P = 1, R = (2/3 + 1/2) / 2 = 7/12, F2 = 5 P R / (4 P + R) = 7/11. The second row is identical: 100.
    values, intervals = text_scores(["ab", "abc"], ["abc", "abc"])
    assert values["chrf"] == pytest.approx(100 * (7 / 11 + 1) / 2)
    assert intervals["chrf"] == pytest.approx((700 / 11, 100.0))
    assert values["exact_match"] == 50.0


def test_tool_calls_are_scored_on_name_json_and_arguments():
    from tailored.data.tools import call_text
    from tailored.evaluation.compare import score

    ref = call_text("get_weather", {"city": "Oslo", "unit": "C"})
    refs = [ref, ref, ref, "It is sunny."]
    preds = [call_text("get_weather", {"city": "Oslo", "unit": "C"}),  # right: F1 100
             call_text("get_weather", {"city": "Bergen", "unit": "C"}),  # 1 of 2 arguments: F1 50
             "<tool_call>{get_weather(city=Oslo)}</tool_call>",  # attempted, invalid JSON
             "It is sunny."]
    values, intervals = score(preds, refs, None)
    assert values["tool_name_accuracy"] == pytest.approx(200 / 3)  # the third call has no readable name
    assert values["tool_arguments_valid"] == pytest.approx(200 / 3)
    assert values["argument_f1"] == pytest.approx((100 + 50 + 0) / 3)  # only rows that expect a call count
    assert "rouge_l" in values and intervals["argument_f1"][0] <= values["argument_f1"] <= intervals["argument_f1"][1]
    only_calls, _ = score(preds[:3], refs[:3], None)
    from tailored.evaluation.metrics import PRIMARY, task_kind
    assert task_kind(refs[:3], None) == "tool" and PRIMARY["tool"] == "argument_f1" and task_kind(refs, None) == "text"
    assert only_calls["argument_f1"] == pytest.approx(50.0)


def test_rubric_checks_by_hand():
    from tailored.evaluation.metrics import rubric_scores

    preds = ["Sale time. 20% off tents until 3 May. See you out there.",
             "Don't miss our amazing deal on tents!",
             "The mean is 4.5, written x̄ in this course."]
    extras = [{"mentions": ["20%", "tents", "3 May"], "avoid": ["amazing", "don't miss"]},
              {"mentions": ["20%", "tents", "3 May"], "avoid": ["amazing", "don't miss"]},
              {"fact": "4.5", "mentions": ["x̄", ["sample mean", "mean"]], "avoid": None}]
    values, intervals = rubric_scores(preds, extras)
    assert values["mentions"] == pytest.approx((100 + 100 / 3 + 100) / 3)  # 3 of 3, 1 of 3, 2 of 2
    assert values["avoids"] == 50.0  # judged on the two rows that list words to avoid; the second uses both
    assert values["fact_recall"] == 100.0 and intervals["fact_recall"] == (100.0, 100.0)  # one row carries a fact
    assert rubric_scores(["anything"], [{"label": "x"}]) == ({}, {})  # no rubric fields: no rubric metrics


def test_final_answer_is_the_number_a_reply_ends_on_not_one_it_repeats():
    from fractions import Fraction

    from tailored.evaluation.metrics import final_answer, rubric_scores

    assert final_answer("Not quite. z = (40 − 46) / 12 = -0.5. Final answer: z = -0.5. Next step: 2 s.") == Fraction(-1, 2)
    assert final_answer("P(A) = 4 / 52. Final answer: P(A) = 1/13.") == Fraction(1, 13)
    assert final_answer("You said 15.67, and the mean is 11.75") == Fraction(47, 4)  # no marker: the last number
    assert final_answer("No idea.") is None
    replies = ["I got 11.75, you say. That is right.",  # echoes the student's (right) answer, then ends on it
               "You said 11.75. Final answer: x̄ = 12.",  # repeats it, but ends on another number
               "Final answer: x̄ = 11.75. Next step: compare with the median of 5 values."]
    values, _ = rubric_scores(replies, [{"answer": "11.75"}] * 3)
    assert values["final_answer"] == pytest.approx(200 / 3)  # rows 1 and 3
