"""After training: the calibration temperatures and the unknown-source scorer, fitted on the run's training and
validation data and measured on its evaluation sets (docs/trust.md)."""

from __future__ import annotations

import logging

from .calibration import fit_temperatures
from .evaluation import labels_by_task, predict_logits
from .unknown_source import (
    UnknownSourceScorer,
    evaluate_unknown_source,
    fit_unknown_source,
    score_dataset,
    unknown_rows,
)

logger = logging.getLogger("codectrace.train")


def fit_and_measure_unknown_source(model, train_split, validation, sets: dict,
                                   score: str) -> tuple[UnknownSourceScorer, dict, dict]:
    """Fits the unknown-source scorer (training and validation splits), scores every evaluation set once, and
    measures the scorer where the dataset allows: `test` on CoSG (unseen codecs) against CoRS (training codecs),
    `validation` on the validation codecs against the validation split (the figures a choice of score may read).
    Returns the scorer, the measurements and, per evaluation set, the rows called unknown."""
    chunk = model.config.chunk_samples
    scorer = fit_unknown_source(model, train_split, validation, chunk, score)
    scored = {name: score_dataset(model, scorer, ds, chunk) for name, ds in sets.items()}
    measured = {}
    if {"cors_eval", "cosg_eval"} <= set(scored):
        measured["test"] = evaluate_unknown_source(scorer, scored["cors_eval"], scored["cosg_eval"])
    if {"in_domain_validation", "val_codecs"} <= set(scored):
        measured["validation"] = evaluate_unknown_source(scorer, scored["in_domain_validation"], scored["val_codecs"])
    return scorer, measured, {name: unknown_rows(scorer, s) for name, s in scored.items()}


def calibrate(trainer, model, validation, unseen=None) -> None:
    """Fits one temperature per head on the validation split's logits as trained and stores them in the model's
    config (`calibration_temperatures`), so every consumer of the saved model gets calibrated probabilities; given
    validation codecs (`unseen`), also one per taxonomy head on those (`calibration_temperatures_unknown`), for
    the clips that the unknown-source scorer calls unknown."""
    config, tasks, chunk = model.config, model.config.tasks, model.config.chunk_samples
    config.calibration_temperatures = config.calibration_temperatures_unknown = None  # logits as trained
    logits = predict_logits(trainer, validation, tasks, chunk, "calibration")
    unseen_logits = None if unseen is None else predict_logits(trainer, unseen, tasks, chunk, "calibration_unknown")
    config.calibration_temperatures = fit_temperatures(logits, labels_by_task(validation, tasks))
    logger.info("calibration temperatures (validation split): %s", config.calibration_temperatures)
    if unseen_logits is not None:
        taxonomy = [t for t in tasks if t != "bin"]
        config.calibration_temperatures_unknown = fit_temperatures({t: unseen_logits[t] for t in taxonomy},
                                                                   labels_by_task(unseen, taxonomy))
        logger.info("calibration temperatures for unknown clips (validation codecs): %s",
                    config.calibration_temperatures_unknown)
