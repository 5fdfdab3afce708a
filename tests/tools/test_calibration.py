"""Temperature scaling per head: it recovers a known temperature, keeps every decision, lowers ECE where the model
is over-confident; ECE and Brier score as defined; the model applies the temperatures from its config; clips called
unknown get the temperature fitted on unseen codecs instead."""

import numpy as np
import pytest
import torch

from codectrace.calibration import (
    brier_score,
    calibration_metrics,
    expected_calibration_error,
    fit_temperature,
    row_temperatures,
    with_unknown_temperatures,
)
from codectrace.metrics import softmax
from codectrace.testing import tiny_config
from modeling_codectrace import CodecTraceForSourceTracing


def _sampled(temperature: float, rows: int = 20000, classes: int = 4, seed: int = 0):
    """Labels drawn from softmax(z), logits z * temperature: the right temperature to fit is `temperature`."""
    rng = np.random.default_rng(seed)
    z = 2.0 * rng.standard_normal((rows, classes))
    p = softmax(z)
    labels = np.array([rng.choice(classes, p=row) for row in p])
    return z * temperature, labels


@pytest.mark.parametrize("temperature", [0.5, 1.0, 3.0])
def test_the_fitted_temperature_is_the_one_that_made_the_logits(temperature):
    logits, labels = _sampled(temperature)
    assert fit_temperature(logits, labels) == pytest.approx(temperature, rel=0.05)


def test_calibration_lowers_the_error_of_an_over_confident_head_and_keeps_its_decisions():
    logits, labels = _sampled(3.0)
    fitted = fit_temperature(logits, labels)
    before, after = softmax(logits), softmax(logits / fitted)
    assert expected_calibration_error(after, labels) < 0.02 < 0.1 < expected_calibration_error(before, labels)
    assert brier_score(after, labels) < brier_score(before, labels)
    assert np.array_equal(before.argmax(1), after.argmax(1))


def test_ece_and_brier_are_zero_for_certain_right_answers_and_ignore_unlabelled_rows():
    probabilities = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    labels = np.array([0, 1, -100])
    assert expected_calibration_error(probabilities, labels) == 0.0 and brier_score(probabilities, labels) == 0.0
    assert expected_calibration_error(np.array([[0.9, 0.1]]), np.array([1])) == pytest.approx(0.9)
    assert brier_score(np.array([[0.9, 0.1]]), np.array([1])) == pytest.approx(0.81 + 0.81)


def test_the_model_divides_its_logits_by_the_configured_temperatures_and_trains_on_the_raw_ones():
    torch.manual_seed(0)
    plain = CodecTraceForSourceTracing(tiny_config("M1")).eval()
    calibrated = CodecTraceForSourceTracing(tiny_config("M1", calibration_temperatures={"vq": 2.0})).eval()
    calibrated.load_state_dict(plain.state_dict())
    x, labels = 0.1 * torch.randn(2, 16000), torch.tensor([1, 2])
    with torch.no_grad():
        a, b = plain(x, vq_labels=labels), calibrated(x, vq_labels=labels)
    assert torch.allclose(b.vq_logits, a.vq_logits / 2.0) and torch.equal(b.dec_logits, a.dec_logits)
    assert torch.equal(a.loss, b.loss)


@pytest.mark.parametrize("bad", [{"vq": 0.0}, {"vq": -1.0}, {"nope": 1.0}])
def test_impossible_temperatures_are_refused(bad):
    with pytest.raises(ValueError, match="calibration_temperatures"):
        tiny_config("M2", calibration_temperatures=bad)


@pytest.mark.parametrize("name", ["calibration_temperatures", "calibration_temperatures_unknown"])
def test_impossible_temperatures_name_the_field_that_is_wrong(name):
    with pytest.raises(ValueError, match=name):
        tiny_config("M2", **{name: {"vq": 0.0}})


def test_rows_called_unknown_end_up_divided_by_the_unknown_temperature_and_the_others_by_the_known_one():
    config = tiny_config("M1", calibration_temperatures={"vq": 2.0}, calibration_temperatures_unknown={"vq": 8.0})
    raw = np.array([[4.0, 0.0, 0.0, 0.0], [4.0, 0.0, 0.0, 0.0]])
    returned = {"vq": raw / 2.0, "dec": np.ones((2, 3))}  # what the model returns: divided by the known temperature
    rescaled = with_unknown_temperatures(config, returned, {"vq": np.array([False, True])})
    np.testing.assert_allclose(rescaled["vq"], [raw[0] / 2.0, raw[1] / 8.0])
    assert rescaled["dec"] is returned["dec"]  # no unknown temperature, no change
    np.testing.assert_allclose(row_temperatures(config, "vq", np.array([False, True])), [2.0, 8.0])
    assert row_temperatures(config, "dec", np.array([False, True])) is None


def test_a_model_without_an_unknown_temperature_treats_unknown_rows_as_the_others():
    config = tiny_config("M1", calibration_temperatures={"vq": 2.0})
    returned = {"vq": np.ones((2, 4))}
    assert with_unknown_temperatures(config, returned, {"vq": np.array([True, True])})["vq"].tolist() == \
        returned["vq"].tolist()
    assert row_temperatures(config, "vq", np.array([True, False])) == 2.0


def test_metrics_before_calibration_undo_each_rows_own_temperature():
    logits, labels = _sampled(3.0, rows=2000)
    per_row = np.where(np.arange(2000) % 2 == 0, 3.0, 1.5)
    metrics = calibration_metrics(logits / per_row[:, None], labels, per_row)
    assert metrics["ece_uncalibrated"] == pytest.approx(expected_calibration_error(softmax(logits), labels))
    assert metrics["temperature"] == [1.5, 3.0]
    assert calibration_metrics(logits / 3.0, labels, 3.0)["temperature"] == 3.0
