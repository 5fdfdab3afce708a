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
    """Median time per clip with and without a feature, after a warm-up, the two alternating in each repeat (so
    that drift in the machine's speed falls on both)."""
    per_clip_seconds(with_tracer, inputs[:4]), per_clip_seconds(without_tracer, inputs[:4])  # warm-up
    times = {"with": [], "without": []}
    for _ in range(repeats):
        times["without"].append(per_clip_seconds(without_tracer, inputs))
        times["with"].append(per_clip_seconds(with_tracer, inputs))
    return float(np.median(times["with"])), float(np.median(times["without"]))
