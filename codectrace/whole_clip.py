"""Evaluation of whole clips through the `codec-source-tracing` pipeline: what a user of the Space or of
`codectrace trace` is told about each clip.

The training run and `codectrace evaluate` score the official window of each clip (its first `chunk_samples`,
repeat-padded), as the paper does. The pipeline reads every window of a clip (no overlap, the last one aligned to
the clip's end), gives a window called unknown its unseen-codec temperature, and averages the windows'
probabilities. This module scores a dataset the pipeline's way, so that both can be reported and compared.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from modeling_codectrace.configuration_codectrace import TASK_LABELS

from .evaluation import labels_by_task
from .input_checks import UNFAMILIAR_AUDIO
from .metrics import probability_metrics


def trace_probabilities(tracer, dataset, description: str = "whole clips",
                        unknown_scores: dict[str, np.ndarray] | None = None) -> tuple[dict[str, np.ndarray], list]:
    """Head -> (rows, classes) probabilities the pipeline gives each row's whole clip, classes in `TASK_LABELS`
    order (`bin` from the clip's spoof score), and the failures as (row, message). A clip the pipeline refuses
    (too short, unreadable) is recorded and left as a row of NaN; the others go on. The dataset's `audio` column
    must be undecoded (`{"bytes", "path"}`), as `codectrace.resolve.load_split` returns it. `unknown_scores`, where
    given, is filled with each taxonomy head's (rows,) unknown-source scores (NaN where refused or not scored)."""
    heads = ["bin", *(task for task in tracer.model.config.tasks if task != "bin")]
    rows = {head: np.full((len(dataset), len(TASK_LABELS[head])), np.nan) for head in heads}
    if unknown_scores is not None:
        unknown_scores.update({head: np.full(len(dataset), np.nan) for head in heads[1:]})
    failures = []
    # Row by row: the audio column is not read into memory as a whole.
    for index, row in enumerate(tqdm(dataset.select_columns(["audio"]), desc=description, leave=False)):
        try:
            result = tracer(row["audio"])
        except ValueError as error:
            failures.append((index, str(error)))
            continue
        answers = {"bin": {"spoof": result["spoof_score"], "bonafide": 1.0 - result["spoof_score"]},
                   **{head: result[head] for head in heads[1:]}}
        for head in heads:
            rows[head][index] = [answers[head][label] for label in TASK_LABELS[head]]
        if unknown_scores is not None:
            for head in heads[1:]:
                score = result["heads"][head]["unknown_score"]
                unknown_scores[head][index] = np.nan if score is None else score
    return rows, failures


def count_verdicts(tracer, clips: list, description: str = "clips") -> dict[str, int]:
    """Counts of the pipeline's verdicts over the clips it could trace: `clips`, `spoof` (decision spoof), `warned`
    (carrying the unfamiliar-audio warning) and `spoof_warned`. A clip is anything the pipeline reads (a path, an
    `{"array", "sampling_rate"}` mapping, ...); one it refuses (unreadable, too short) is left out of every count."""
    counts = dict.fromkeys(("clips", "spoof", "warned", "spoof_warned"), 0)
    for clip in tqdm(clips, desc=description, unit="clip", leave=False):
        try:
            result = tracer(str(clip) if isinstance(clip, Path) else clip)
        except ValueError:
            continue
        spoof, warned = result["decision"] == "spoof", UNFAMILIAR_AUDIO in result["warnings"]
        counts["clips"] += 1
        counts["spoof"] += spoof
        counts["warned"] += warned
        counts["spoof_warned"] += spoof and warned
    return counts


def whole_clip_metrics(probabilities: dict[str, np.ndarray], dataset) -> dict[str, dict]:
    """Head -> `task_metrics` of the pipeline's probabilities against the dataset's labels (rows the pipeline
    refused, NaN, left out)."""
    labels = labels_by_task(dataset, list(probabilities))
    metrics = {}
    for head, values in probabilities.items():
        scored = np.isfinite(values).all(axis=1)
        metrics[head] = probability_metrics(head, values[scored], labels[head][scored])
    return metrics
