"""What the tracing-cost benchmarks share (imported by them as a sibling module; not a benchmark itself): clips cut
from the Space's examples, and the time per clip of tracing them."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import soundfile as sf

ROOT = Path(__file__).resolve().parents[1]


def example_clips(count: int, seconds: float = 3.0) -> list[np.ndarray]:
    """`count` clips of `seconds`, cut with half overlap from the Space's example clips, repeated as needed."""
    audio = [sf.read(path, dtype="float32")[0] for path in sorted((ROOT / "space" / "examples").glob("*.wav"))]
    pieces = [a[i : i + int(seconds * 16000)] for a in audio for i in range(0, len(a) - 16000, 8000)]
    return [pieces[i % len(pieces)] for i in range(count)]


def per_clip_seconds(tracer, inputs: list[np.ndarray]) -> float:
    """Mean wall time of tracing each input once."""
    start = time.perf_counter()
    for clip in inputs:
        tracer(clip, sampling_rate=16000)
    return (time.perf_counter() - start) / len(inputs)


def paired_per_clip_seconds(with_tracer, without_tracer, inputs: list[np.ndarray],
                            repeats: int) -> tuple[float, float]:
    """Time per clip with and without a feature, after a warm-up: each clip is traced both ways in turn (the order
    swapped every repeat, so that drift in the machine's speed falls on both alike), each clip's time is its median
    over the repeats, and the clips' times are averaged."""
    per_clip_seconds(with_tracer, inputs[:4]), per_clip_seconds(without_tracer, inputs[:4])  # warm-up
    times = {"with": np.zeros((repeats, len(inputs))), "without": np.zeros((repeats, len(inputs)))}
    for repeat in range(repeats):
        order = [("without", without_tracer), ("with", with_tracer)][:: 1 if repeat % 2 == 0 else -1]
        for index, clip in enumerate(inputs):
            for name, tracer in order:
                start = time.perf_counter()
                tracer(clip, sampling_rate=16000)
                times[name][repeat, index] = time.perf_counter() - start
    return float(np.median(times["with"], axis=0).mean()), float(np.median(times["without"], axis=0).mean())
