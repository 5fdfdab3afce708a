"""Source-tracing metrics in plain numpy / scikit-learn.

- BIN: equal error rate by the ASVspoof DET-curve method (positive class = bona fide, score = P(bonafide)),
  the threshold at the EER, and ROC-AUC.
- VQ / AUX / DEC: accuracy, weighted F1 (the official code's number, REAL included), macro F1 and the
  confusion matrix.
"""

from __future__ import annotations

import numpy as np

from modeling_codectrace.configuration_codectrace import BONAFIDE_INDEX, TASK_LABELS


def compute_det_curve(
    bonafide_scores: np.ndarray, spoof_scores: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """False rejection and false acceptance rates at every threshold (the ASVspoof evaluation method).

    A trial is rejected when its score is <= the threshold. Returns (frr, far, thresholds), starting from a
    threshold below every score (frr 0, far 1). One deliberate difference from the ASVspoof script: tied scores
    form one DET point (a threshold cannot split them), so constant scores give an EER of 50%, not 100%.
    """
    scores = np.concatenate([bonafide_scores, spoof_scores])
    labels = np.concatenate([np.ones(bonafide_scores.size), np.zeros(spoof_scores.size)])
    order = np.argsort(scores, kind="mergesort")
    sorted_scores, labels = scores[order], labels[order]
    bonafide_at_or_below = np.cumsum(labels)
    spoof_above = spoof_scores.size - (np.arange(1, scores.size + 1) - bonafide_at_or_below)
    # Keep the last position of each distinct score only.
    last_of_value = np.append(sorted_scores[1:] != sorted_scores[:-1], True)
    frr = np.concatenate([[0.0], bonafide_at_or_below[last_of_value] / bonafide_scores.size])
    far = np.concatenate([[1.0], spoof_above[last_of_value] / spoof_scores.size])
    thresholds = np.concatenate([[sorted_scores[0] - 0.001], sorted_scores[last_of_value]])
    return frr, far, thresholds


def compute_eer(bonafide_scores, spoof_scores) -> tuple[float, float]:
    """EER and its threshold: the DET point where |FRR - FAR| is smallest, EER = the mean of the two there."""
    bonafide_scores = np.asarray(bonafide_scores, dtype=np.float64).ravel()
    spoof_scores = np.asarray(spoof_scores, dtype=np.float64).ravel()
    if bonafide_scores.size == 0 or spoof_scores.size == 0:
        raise ValueError("EER needs at least one bona fide and one spoof score.")
    frr, far, thresholds = compute_det_curve(bonafide_scores, spoof_scores)
    index = int(np.nanargmin(np.abs(frr - far)))
    return float((frr[index] + far[index]) / 2), float(thresholds[index])


def softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=-1, keepdims=True)


def binary_metrics(bonafide_probability, labels) -> dict[str, float]:
    """EER (%, and as a fraction), threshold at EER and ROC-AUC for BIN; labels: 1 = bona fide, 0 = spoof."""
    scores = np.asarray(bonafide_probability, dtype=np.float64).ravel()
    labels = np.asarray(labels).ravel()
    keep = labels != -100
    scores, labels = scores[keep], labels[keep]
    result = {"count": int(labels.size)}
    if (labels == 1).any() and (labels == 0).any():
        from sklearn.metrics import roc_auc_score  # here, not above: the pipeline imports `softmax` only

        eer, threshold = compute_eer(scores[labels == 1], scores[labels == 0])
        result.update(eer=eer, eer_threshold=threshold, roc_auc=float(roc_auc_score(labels, scores)))
    else:  # EER is undefined with one class only (e.g. a spoof-only subset)
        result.update(eer=float("nan"), eer_threshold=float("nan"), roc_auc=float("nan"))
    result["accuracy"] = float(((scores >= 0.5).astype(int) == labels).mean()) if labels.size else float("nan")
    return result


def multiclass_metrics(predictions, labels, num_classes: int) -> dict:
    """Accuracy, weighted F1, macro F1 (over the classes present in labels or predictions) and confusion."""
    predictions = np.asarray(predictions).ravel()
    labels = np.asarray(labels).ravel()
    keep = labels != -100
    predictions, labels = predictions[keep], labels[keep]
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score

    if labels.size == 0:
        return {"count": 0, "accuracy": float("nan"), "f1_weighted": float("nan"), "f1_macro": float("nan"),
                "confusion_matrix": np.zeros((num_classes, num_classes), dtype=int).tolist()}
    return {
        "count": int(labels.size),
        "accuracy": float(accuracy_score(labels, predictions)),
        "f1_weighted": float(f1_score(labels, predictions, average="weighted", zero_division=0)),
        "f1_macro": float(f1_score(labels, predictions, average="macro", zero_division=0)),
        "confusion_matrix": confusion_matrix(labels, predictions, labels=list(range(num_classes))).tolist(),
    }


def task_metrics(task: str, logits, labels) -> dict:
    """Metrics of one task from its logits (batch, classes) and label indices (-100 = ignore)."""
    logits = np.asarray(logits)
    if task == "bin":
        probability = softmax(logits)[:, BONAFIDE_INDEX]
        result = binary_metrics(probability, labels)
        result.update(multiclass_metrics(logits.argmax(-1), labels, 2) | {"accuracy": result["accuracy"]})
        return result
    return multiclass_metrics(logits.argmax(-1), labels, len(TASK_LABELS[task]))


def probability_metrics(task: str, probabilities, labels) -> dict:
    """`task_metrics` from probabilities (score files, averaged windows): their logarithms stand in for logits, which
    keeps the argmax, the softmax and so the EER."""
    return task_metrics(task, np.log(np.maximum(np.asarray(probabilities), 1e-300)), labels)


def mean_and_range(values, digits: int = 3) -> str:
    """`mean [min-max]` of figures over seeds or runs, as the result tables print them."""
    return f"{np.mean(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def task_score(task: str, metrics: dict) -> float:
    """One number per task, higher is better: 1 - EER for BIN, macro F1 for the taxonomy tasks."""
    return 1.0 - metrics["eer"] if task == "bin" else metrics["f1_macro"]


def selection_score(per_task: dict[str, dict]) -> float:
    """Model-selection criterion: the mean of `task_score` over the model's tasks (NaN tasks skipped)."""
    scores = [task_score(t, m) for t, m in per_task.items()]
    scores = [s for s in scores if np.isfinite(s)]
    return float(np.mean(scores)) if scores else float("nan")


def interval_iou(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Intersection over union of two time ranges."""
    inter = max(0.0, min(a[1], b[1]) - max(a[0], b[0]))
    union = (a[1] - a[0]) + (b[1] - b[0]) - inter
    return inter / union if union > 0 else 0.0


def match_segments(predicted: list[tuple[float, float]], truth: list[tuple[float, float]],
                   min_iou: float = 0.5) -> list[tuple[int, int]]:
    """Pairs (predicted index, truth index), each used once, greedily by highest IoU, all at least `min_iou`."""
    pairs = sorted(((interval_iou(p, t), i, j) for i, p in enumerate(predicted) for j, t in enumerate(truth)),
                   reverse=True)
    used_p, used_t, matches = set(), set(), []
    for iou, i, j in pairs:
        if iou >= min_iou and i not in used_p and j not in used_t:
            used_p.add(i)
            used_t.add(j)
            matches.append((i, j))
    return matches


def segment_metrics(recordings: list[tuple[list, list]], min_iou: float = 0.5) -> dict[str, float]:
    """Over recordings given as (predicted ranges, true ranges): precision, recall and F1 of segments matched at
    IoU >= `min_iou`, and the median boundary error (seconds, both ends of every matched segment)."""
    predicted = sum(len(p) for p, _ in recordings)
    true = sum(len(t) for _, t in recordings)
    matched, errors = 0, []
    for p, t in recordings:
        for i, j in match_segments(p, t, min_iou):
            matched += 1
            errors += [abs(p[i][0] - t[j][0]), abs(p[i][1] - t[j][1])]
    precision = matched / predicted if predicted else 0.0
    recall = matched / true if true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "predicted": predicted, "true": true,
            "median_boundary_error": float(np.median(errors)) if errors else float("nan")}
