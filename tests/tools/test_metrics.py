"""Metrics against hand-computed values, and the `evaluate` module that wraps them."""

from pathlib import Path

import evaluate
import numpy as np
import pytest

from codectrace.metrics import (
    binary_metrics,
    compute_eer,
    mean_and_range,
    multiclass_metrics,
    probability_metrics,
    selection_score,
    softmax,
    task_metrics,
)

METRIC_PATH = str(Path(__file__).resolve().parents[2] / "evaluate_metric" / "codectrace_source_tracing")


def test_eer_is_zero_when_scores_separate():
    eer, threshold = compute_eer([0.8, 0.9], [0.1, 0.2])
    assert eer == 0.0 and 0.2 <= threshold < 0.8


def test_eer_on_a_crafted_det_curve():
    # Sorted: .1s .2b .3s .4s .6b .65s .7b .8b. Above 0.4: one bona fide rejected (0.2), one spoof accepted (0.65).
    eer, threshold = compute_eer([0.2, 0.6, 0.7, 0.8], [0.1, 0.3, 0.4, 0.65])
    assert eer == pytest.approx(0.25) and threshold == pytest.approx(0.4)


def test_eer_is_half_when_scores_carry_no_information():
    eer, _ = compute_eer([0.5] * 10, [0.5] * 10)
    assert eer == pytest.approx(0.5)


def test_eer_needs_both_classes():
    with pytest.raises(ValueError, match="bona fide and one spoof"):
        compute_eer([], [0.1])


def test_binary_metrics_use_p_bonafide_and_ignore_minus_100():
    result = binary_metrics([0.9, 0.8, 0.1, 0.2, 0.5], [1, 1, 0, 0, -100])
    assert result["eer"] == 0.0 and result["roc_auc"] == 1.0 and result["count"] == 4


def test_multiclass_metrics_match_hand_computed_values():
    labels = [0, 0, 0, 1, 2, 2]
    predictions = [0, 0, 0, 0, 2, 1]
    result = multiclass_metrics(predictions, labels, 3)
    # Per-class F1: 6/7, 0, 2/3.
    assert result["accuracy"] == pytest.approx(4 / 6)
    assert result["f1_macro"] == pytest.approx((6 / 7 + 0 + 2 / 3) / 3)
    assert result["f1_weighted"] == pytest.approx((3 * 6 / 7 + 0 + 2 * 2 / 3) / 6)
    assert result["confusion_matrix"] == [[3, 0, 0], [1, 0, 0], [0, 1, 1]]


def test_task_metrics_take_argmax_of_logits():
    logits = np.array([[2.0, 0, 0, 0], [0, 3.0, 0, 0], [0, 0, 0, 1.0]])
    result = task_metrics("vq", logits, [0, 1, 2])
    assert result["accuracy"] == pytest.approx(2 / 3)


def test_selection_score_is_the_mean_of_one_minus_eer_and_macro_f1():
    assert selection_score({"bin": {"eer": 0.1}, "dec": {"f1_macro": 0.7}}) == pytest.approx(0.8)


def test_evaluate_module_loads_offline_and_returns_the_same_numbers():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((40, 4))
    labels = rng.integers(0, 4, 40)
    metric = evaluate.load(METRIC_PATH, "aux")
    result = metric.compute(predictions=logits.tolist(), references=labels.tolist())
    assert result == task_metrics("aux", logits, labels)
    bin_logits = rng.standard_normal((30, 2))
    bin_labels = rng.integers(0, 2, 30)
    bin_result = evaluate.load(METRIC_PATH, "bin").compute(predictions=bin_logits, references=bin_labels)
    assert bin_result["eer"] == pytest.approx(task_metrics("bin", bin_logits, bin_labels)["eer"])


def test_evaluate_module_refuses_an_unknown_task():
    with pytest.raises(ValueError, match="config name must be one of"):
        evaluate.load(METRIC_PATH, "speaker")


def test_probability_metrics_equal_the_metrics_of_the_logits_they_came_from():
    logits = np.array([[2.0, -1.0], [0.5, 0.7], [-3.0, 1.0], [0.1, 0.0]])
    labels = np.array([0, 1, 1, 0])
    expected = task_metrics("bin", logits, labels)
    got = probability_metrics("bin", softmax(logits), labels)
    assert got["eer"] == pytest.approx(expected["eer"]) and got["f1_macro"] == pytest.approx(expected["f1_macro"])


def test_mean_and_range_prints_mean_then_min_and_max():
    assert mean_and_range([0.5, 0.7, 0.9]) == "0.700 [0.500-0.900]"
    assert mean_and_range([1.0, 2.0], 1) == "1.5 [1.0-2.0]"
