"""Where in a recording: the time ranges called spoof, each with its taxonomy answers.

The pipeline scores windows, overlapping by `SEGMENT_HOP` of a window when segments are asked for. A model with a
frame head (`config.frame_head`) scores every backbone frame of each window: a frame of the recording gets the mean
of the windows' scores of it, smoothed over `SMOOTH_SECONDS` (rule `frames`). A model without one scores windows
only: each short frame of the recording then gets the score of the windows that cover it, combined by `FRAME_RULE`;
trained on partly spoofed windows (`codectrace.splicing`), a window says "contains spoofed speech", and `min` (a
frame is spoof only when every window over it says so) keeps a stretch from spreading to the whole width of the
windows that merely reach it. Frames at or above the threshold that touch form a segment. A segment's answers here
are those of the windows over it (`segment_answers`); the pipeline replaces them by those of the segment's own
audio.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE, TASK_LABELS

FRAME_SECONDS = 0.1
# `min_centred`: `min`, then each edge that a bona fide window bounds moved to the middle of the interval where a
# model that calls a window spoof when any of it is spoofed puts the true edge (`centred_edges`).
WINDOW_RULES = ("min", "mean", "min_centred")
# `frames`: the frame head's scores of each frame, averaged over the windows and smoothed (models with a frame head).
FRAME_RULES = (*WINDOW_RULES, "frames")
# Chosen on the validation codecs' partly spoofed set for the demo recipe over three seeds (docs/segments.md): within
# twice the windows of no overlap, half-window hops with `min_centred` found the most segments (mean F1). The rule of
# models without a frame head; those with one use `frames`.
FRAME_RULE = "min_centred"
SEGMENT_HOP = 0.5  # of a window
# Moving mean of the frame head's scores (a lone frame neither makes nor breaks a segment): chosen with the hop on the
# validation codecs' partly spoofed set for the demo recipe over three seeds (docs/research/frame_head.md).
SMOOTH_SECONDS = 0.8


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
    frame_spoof: np.ndarray | None = None  # with a frame head: P(spoof) per window and frame (windows, frames)
    frame_layout: tuple[int, int, float] | None = None  # its frames: `config.frame_layout(chunk)`


def default_rule(windows: WindowScores) -> str:
    """`frames` where the model has a frame head, else `FRAME_RULE`."""
    return "frames" if windows.frame_spoof is not None else FRAME_RULE


def frame_head_scores(windows: WindowScores, smooth_seconds: float = SMOOTH_SECONDS) -> tuple[np.ndarray, float,
                                                                                              float]:
    """The recording's frames as the frame head scores them: each frame (one backbone hop apart) the mean of the
    windows' scores of it, then a moving mean over `smooth_seconds`. Returns the scores, the seconds between frames
    and where the first frame starts (seconds; half a hop before its centre)."""
    if windows.frame_spoof is None:
        raise ValueError("the `frames` rule needs a model with a frame head (config.frame_head); this one has none.")
    count, hop, first = windows.frame_layout
    frames = max(int((windows.num_samples - 1 - first) // hop) + 1, 1)
    index = np.rint(np.asarray(windows.starts) / hop).astype(int)[:, None] + np.arange(count)[None, :]
    inside = index < frames  # frames of a repeat-padded window past the recording's end are padding
    sums, counts = np.zeros(frames), np.zeros(frames)
    np.add.at(sums, index[inside], np.asarray(windows.frame_spoof)[inside])
    np.add.at(counts, index[inside], 1)
    covered = counts > 0
    scores = np.interp(np.arange(frames), np.flatnonzero(covered), sums[covered] / counts[covered])
    width = max(int(round(smooth_seconds * SAMPLING_RATE / hop)), 1)
    if width > 1:
        kernel = np.ones(width)
        scores = np.convolve(scores, kernel, "same") / np.convolve(np.ones(frames), kernel, "same")
    return scores, hop / SAMPLING_RATE, max(first - hop / 2, 0.0) / SAMPLING_RATE

def frame_scores(windows: WindowScores, rule: str = FRAME_RULE, frame_seconds: float = FRAME_SECONDS) -> np.ndarray:
    """(frames,) the spoof score of each frame: `rule` (one of `WINDOW_RULES`) over the windows covering the frame's
    centre."""
    if rule not in WINDOW_RULES:
        raise ValueError(f"frame rule must be one of {list(WINDOW_RULES)}, got {rule!r}.")
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
    """The answers of the windows over [start, end) seconds, each weighted by its overlap, the taxonomy heads' `real`
    left out (the segment is spoofed speech: its family is a codec's): per head its label, probability and whether
    the clip part is `known`. The pipeline answers a segment from its own audio instead where it can
    (`CodecSourceTracingPipeline.answer_segments_from_their_audio`); on validation data these answers beat those of
    the windows lying mostly inside the segment (docs/research/frame_head.md)."""
    first = np.asarray(windows.starts) / SAMPLING_RATE
    last = np.minimum(first + windows.chunk / SAMPLING_RATE, windows.num_samples / SAMPLING_RATE)
    overlap = np.clip(np.minimum(last, end) - np.maximum(first, start), 0, None)
    weights = overlap if overlap.any() else (overlap == overlap.max()).astype(float)
    answers = {}
    for task, values in windows.distributions.items():
        mean = (values * weights[:, None]).sum(axis=0) / weights.sum()
        if task != "bin":
            mean = np.where(np.arange(len(mean)) == TASK_LABELS[task].index("real"), 0.0, mean)
            mean = mean / max(mean.sum(), 1e-12)
        label = TASK_LABELS[task][int(mean.argmax())]
        known = None
        if task in windows.unknown_scores:
            known = bool((windows.unknown_scores[task] * weights).sum() / weights.sum() <= windows.thresholds[task])
        answers[task] = {"label": label, "probability": float(mean.max()), "known": known}
    return answers


def find_segments(windows: WindowScores, threshold: float = 0.5, rule: str | None = None,
                  frame_seconds: float = FRAME_SECONDS, smooth_seconds: float = SMOOTH_SECONDS
                  ) -> tuple[list[dict], float]:
    """The recording's spoofed segments (start and end seconds, mean frame spoof score, taxonomy answers) and its
    `contains_spoof_score` (the highest frame score: one confidently spoofed stretch is not averaged away). `rule`:
    one of `FRAME_RULES`, by default `default_rule(windows)`; `frame_seconds` is the frame of the window rules,
    `smooth_seconds` the smoothing of `frames`."""
    rule = rule or default_rule(windows)
    if rule not in FRAME_RULES:
        raise ValueError(f"frame rule must be one of {list(FRAME_RULES)}, got {rule!r}.")
    offset = 0.0
    if rule == "frames":
        scores, frame_seconds, offset = frame_head_scores(windows, smooth_seconds)
    else:
        scores = frame_scores(windows, rule, frame_seconds)
    duration = windows.num_samples / SAMPLING_RATE
    segments = []
    for start, end in spoof_ranges(scores, threshold, frame_seconds):
        frames = scores[int(round(start / frame_seconds)):int(round(end / frame_seconds))]
        # a range reaching the first or last frame reaches the recording's start or end
        start = 0.0 if start == 0 else min(start + offset, duration)
        end = duration if end >= len(scores) * frame_seconds - 1e-9 else min(end + offset, duration)
        if rule == "min_centred":
            start, end = centred_edges(windows, start, end, threshold)
        segments.append({"start_seconds": start, "end_seconds": end, "spoof_score": float(frames.mean()),
                         "heads": segment_answers(windows, start, end)})
    return segments, float(scores.max()) if scores.size else 0.0
