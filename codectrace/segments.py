"""Where in a recording: the time ranges whose windows call the audio spoof, each with its taxonomy answers.

The pipeline scores windows, overlapping by `SEGMENT_HOP` of a window when segments are asked for; each short frame
of the recording gets the score of the windows that cover it, combined by `FRAME_RULE`; frames at or above the
threshold that touch form a segment. The demo recipe trains on partly spoofed windows (`codectrace.splicing`), so a
window says "contains spoofed speech"; `min` (a frame is spoof only when every window over it says so) then keeps a
stretch from spreading to the whole width of the windows that merely reach it. A segment's taxonomy answers are the
mean distributions of the windows lying mostly inside it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE, TASK_LABELS

FRAME_SECONDS = 0.1
# `min_centred`: `min`, then each edge that a bona fide window bounds moved to the middle of the interval where a
# model that calls a window spoof when any of it is spoofed puts the true edge (`centred_edges`).
FRAME_RULES = ("min", "mean", "min_centred")
# Chosen on the validation codecs' partly spoofed set for the demo recipe over three seeds (docs/segments.md): within
# twice the windows of no overlap, half-window hops with `min_centred` found the most segments (mean F1).
FRAME_RULE = "min_centred"
SEGMENT_HOP = 0.5  # of a window


@dataclass
class WindowScores:
    """What the pipeline knows of each window of one recording: start samples (windows,), the window length, the
    recording length, P(spoof) per window, per head its class distributions (windows, classes) and, where the
    model has an unknown-source scorer, per head its score (windows,) and threshold."""

    starts: np.ndarray
    chunk: int
    num_samples: int
    spoof: np.ndarray
    distributions: dict[str, np.ndarray]
    unknown_scores: dict[str, np.ndarray]
    thresholds: dict[str, float]


def frame_scores(windows: WindowScores, rule: str = FRAME_RULE, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """(frames,) the spoof score of each frame: `rule` over the windows covering the frame's centre."""
    if rule not in FRAME_RULES:
        raise ValueError(f"frame rule must be one of {list(FRAME_RULES)}, got {rule!r}.")
    rule = "min" if rule == "min_centred" else rule
    frame = int(round(frame_seconds * SAMPLING_RATE))
    centres = np.arange(frame // 2, max(windows.num_samples, 1), frame)
    starts = np.asarray(windows.starts)
    ends = np.minimum(starts + windows.chunk, max(windows.num_samples, 1))
    covers = (starts[None, :] <= centres[:, None]) & (centres[:, None] < ends[None, :])
    covers[~covers.any(axis=1), :] = True  # a frame past every window (none here) reads them all
    values = np.where(covers, np.asarray(windows.spoof)[None, :], np.nan)
    return np.nanmin(values, axis=1) if rule == "min" else np.nanmean(values, axis=1)


def spoof_ranges(scores: np.ndarray, threshold: float = 0.5,
                 frame_seconds: float = FRAME_SECONDS) -> list[tuple[float, float]]:
    """Touching frames scored at or above `threshold`, as (start, end) seconds."""
    above = np.concatenate([[False], np.asarray(scores) >= threshold, [False]])
    edges = np.flatnonzero(above[1:] != above[:-1])
    return [(float(a * frame_seconds), float(b * frame_seconds)) for a, b in zip(edges[::2], edges[1::2])]


def centred_edges(windows: WindowScores, start: float, end: float, threshold: float = 0.5) -> tuple[float, float]:
    """A `min` range [start, end) seconds reaches out to the bona fide windows around it, yet its true start can lie
    anywhere up to the end of the earliest spoof window over its first frame (its end, from the start of the latest
    spoof window over its last frame): each edge moves to the middle of that interval. Edges at the recording's
    start or end stay; a range too short to move keeps its place."""
    first = np.asarray(windows.starts) / SAMPLING_RATE
    duration = windows.num_samples / SAMPLING_RATE
    last = np.minimum(first + windows.chunk / SAMPLING_RATE, duration)
    spoof = np.asarray(windows.spoof) >= threshold
    new_start, new_end = start, end
    over_start = spoof & (first <= start) & (last > start)
    if start > 0 and over_start.any():
        new_start = (start + last[over_start].min()) / 2
    over_end = spoof & (first < end) & (last >= end)
    if end < duration and over_end.any():
        new_end = (end + first[over_end].max()) / 2
    return (new_start, new_end) if new_end - new_start >= FRAME_SECONDS else (start, end)


def segment_answers(windows: WindowScores, start: float, end: float) -> dict:
    """The taxonomy answers of the windows lying mostly inside [start, end) seconds (the most overlapping one
    when none does): per head its label, probability and whether the clip part is `known`."""
    first = np.asarray(windows.starts) / SAMPLING_RATE
    last = np.minimum(first + windows.chunk / SAMPLING_RATE, windows.num_samples / SAMPLING_RATE)
    overlap = np.clip(np.minimum(last, end) - np.maximum(first, start), 0, None)
    inside = overlap >= 0.5 * np.minimum(last - first, end - start)
    chosen = inside if inside.any() else overlap == overlap.max()
    answers = {}
    for task, values in windows.distributions.items():
        mean = values[chosen].mean(axis=0)
        label = TASK_LABELS[task][int(mean.argmax())]
        known = None
        if task in windows.unknown_scores:
            known = bool(windows.unknown_scores[task][chosen].mean() <= windows.thresholds[task])
        answers[task] = {"label": label, "probability": float(mean.max()), "known": known}
    return answers


def find_segments(windows: WindowScores, threshold: float = 0.5, rule: str = FRAME_RULE,
                  frame_seconds: float = FRAME_SECONDS) -> tuple[list[dict], float]:
    """The recording's spoofed segments (start and end seconds, mean frame spoof score, taxonomy answers) and its
    `contains_spoof_score` (the highest frame score: one confidently spoofed stretch is not averaged away)."""
    scores = frame_scores(windows, rule, frame_seconds)
    segments = []
    for start, end in spoof_ranges(scores, threshold, frame_seconds):
        frames = scores[int(round(start / frame_seconds)):int(round(end / frame_seconds))]
        end = min(end, windows.num_samples / SAMPLING_RATE)
        if rule == "min_centred":
            start, end = centred_edges(windows, start, end, threshold)
        segments.append({"start_seconds": start, "end_seconds": end, "spoof_score": float(frames.mean()),
                         "heads": segment_answers(windows, start, end)})
    return segments, float(scores.max()) if scores.size else 0.0
