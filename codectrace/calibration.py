"""Calibration: temperature scaling per head (Guo et al., ICML 2017), fitted after training on validation data and
stored in the model's config (`calibration_temperatures`; for clips the unknown-source scorer calls unknown,
`calibration_temperatures_unknown`, fitted on the validation codecs); and how well probabilities are calibrated:
expected calibration error over 15 confidence bins, Brier score, reliability diagrams.

Temperature scaling divides a head's logits by one positive number: every argmax and the BIN ranking stay as
trained (so accuracy, F1 and EER do not move); only how sure the probabilities are changes.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from .files import atomic_path
from .metrics import softmax

ECE_BINS = 15
TEMPERATURE_RANGE = (0.05, 20.0)


def _labelled(logits: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    labels = np.asarray(labels).ravel()
    keep = labels != -100
    return np.asarray(logits, dtype=np.float64)[keep], labels[keep].astype(int)


def negative_log_likelihood(logits: np.ndarray, labels: np.ndarray, temperature: float) -> float:
    scaled = logits / temperature
    shifted = scaled - scaled.max(axis=1, keepdims=True)
    log_probabilities = shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))
    return float(-log_probabilities[np.arange(labels.size), labels].mean())


def fit_temperature(logits, labels, iterations: int = 60) -> float:
    """The temperature minimising the negative log-likelihood of `labels` (-100 rows ignored): a golden-section
    search over log T in TEMPERATURE_RANGE (the NLL is convex in 1/T). 1.0 when there are no labelled rows."""
    logits, labels = _labelled(logits, labels)
    if labels.size == 0:
        return 1.0
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    ratio = (math.sqrt(5) - 1) / 2
    a, b = high - ratio * (high - low), low + ratio * (high - low)
    loss_a = negative_log_likelihood(logits, labels, math.exp(a))
    loss_b = negative_log_likelihood(logits, labels, math.exp(b))
    for _ in range(iterations):
        if loss_a < loss_b:
            high, b, loss_b = b, a, loss_a
            a = high - ratio * (high - low)
            loss_a = negative_log_likelihood(logits, labels, math.exp(a))
        else:
            low, a, loss_a = a, b, loss_b
            b = low + ratio * (high - low)
            loss_b = negative_log_likelihood(logits, labels, math.exp(b))
    return float(math.exp((low + high) / 2))


def fit_temperatures(logits: dict[str, np.ndarray], labels: dict[str, np.ndarray]) -> dict[str, float]:
    """One temperature per head, from uncalibrated validation logits and their labels."""
    return {task: fit_temperature(values, labels[task]) for task, values in logits.items() if task in labels}


def unknown_rescaling(config, task: str) -> float:
    """The factor that turns a head's logits as the model returns them (divided by `calibration_temperatures`)
    into logits divided by `calibration_temperatures_unknown`, for clips called unknown; 1.0 without one."""
    unknown = (getattr(config, "calibration_temperatures_unknown", None) or {}).get(task)
    if unknown is None:
        return 1.0
    return (config.calibration_temperatures or {}).get(task, 1.0) / unknown


def row_temperatures(config, task: str, unknown_rows: np.ndarray | None) -> float | np.ndarray | None:
    """The temperature each row's logits end up divided by: the head's calibration temperature, or per row the
    unknown one where `unknown_rows` is True (None for a model without calibration)."""
    known = (config.calibration_temperatures or {}).get(task)
    factor = unknown_rescaling(config, task)
    if unknown_rows is None or factor == 1.0:
        return known
    return np.where(unknown_rows, (known or 1.0) / factor, known or 1.0)


def with_unknown_temperatures(config, logits: dict[str, np.ndarray],
                              unknown_rows: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Logits as the model returns them, with the rows called unknown (per head, `unknown_rows`) rescaled to the
    unknown temperature; heads without an unknown temperature unchanged."""
    return {task: values * np.where(unknown_rows[task], unknown_rescaling(config, task), 1.0)[:, None]
            if task in unknown_rows else values for task, values in logits.items()}


def expected_calibration_error(probabilities, labels, bins: int = ECE_BINS) -> float:
    """Top-label ECE: over equal-width confidence bins, the row-weighted mean of |accuracy - mean confidence|."""
    probabilities, labels = _labelled(probabilities, labels)
    if labels.size == 0:
        return float("nan")
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    correct = (predicted == labels).astype(float)
    which = np.minimum((confidence * bins).astype(int), bins - 1)
    error = 0.0
    for b in range(bins):
        rows = which == b
        if rows.any():
            error += rows.mean() * abs(correct[rows].mean() - confidence[rows].mean())
    return float(error)


def brier_score(probabilities, labels) -> float:
    """Mean over rows of the squared distance between the probability vector and the one-hot label."""
    probabilities, labels = _labelled(probabilities, labels)
    if labels.size == 0:
        return float("nan")
    one_hot = np.eye(probabilities.shape[1])[labels]
    return float(((probabilities - one_hot) ** 2).sum(axis=1).mean())


def uncalibrated(logits: np.ndarray, temperature: float | np.ndarray) -> np.ndarray:
    """Logits as trained, from logits divided by a temperature (one number, or one per row)."""
    return np.asarray(logits, dtype=np.float64) * np.reshape(temperature, (-1, 1))


def calibration_metrics(logits, labels, temperature: float | np.ndarray | None) -> dict:
    """ECE and Brier score of (calibrated) logits; with the temperature they were divided by (one number, or one
    per row where clips called unknown got another), also those of the logits before it."""
    result = {"ece": expected_calibration_error(softmax(logits), labels), "brier": brier_score(softmax(logits), labels)}
    if temperature is not None:
        raw = softmax(uncalibrated(logits, temperature))
        used = sorted({float(t) for t in np.ravel(temperature)})
        result.update(ece_uncalibrated=expected_calibration_error(raw, labels),
                      brier_uncalibrated=brier_score(raw, labels), temperature=used[0] if len(used) == 1 else used)
    return result


def plot_reliability(curves: dict[str, tuple[np.ndarray, np.ndarray]], title: str, path: Path,
                     bins: int = ECE_BINS) -> None:
    """Reliability diagram: accuracy against mean confidence per bin, one line per curve (e.g. before / after)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(3.8, 3.6))
    axis.plot([0, 1], [0, 1], color="grey", linestyle="--", linewidth=1, label="perfectly calibrated")
    for name, (probabilities, labels) in curves.items():
        probabilities, labels = _labelled(probabilities, labels)
        confidence, correct = probabilities.max(axis=1), probabilities.argmax(axis=1) == labels
        which = np.minimum((confidence * bins).astype(int), bins - 1)
        used = [b for b in range(bins) if (which == b).any()]
        axis.plot([confidence[which == b].mean() for b in used], [correct[which == b].mean() for b in used],
                  marker="o", label=f"{name} (ECE {expected_calibration_error(probabilities, labels):.3f})")
    axis.set_xlim(0, 1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_title(title, fontsize=9)
    axis.legend(fontsize=7, loc="upper left")
    figure.tight_layout()
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=110, format="png")
    plt.close(figure)
