"""Tracing many files: decoding and resampling in worker processes, overlapped with the model in this one.

Workers hand over decoded 16 kHz samples; a 16 kHz WAV or FLAC file longer than `STREAM_OVER_SECONDS` is handed over
as its path instead, so that the pipeline reads it window by window and memory stays bounded however long it is.
A file that fails (cannot be decoded, too long, too short) comes back as its one-line error; the others go on.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf
from torch.utils.data import DataLoader, Dataset

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE, TASK_LABELS

from .audio import load_audio, short_message
from .pipeline import CLIP_FAILURES as FAILURES

STREAM_OVER_SECONDS = 600.0


class AudioFiles(Dataset):
    """Item i: `(path, samples or path to stream or None, error or None)`."""

    def __init__(self, paths: list[Path], max_seconds: float | None = None):
        self.paths, self.max_seconds = paths, max_seconds

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int):
        path = self.paths[index]
        try:
            if self._streamable(path):
                return str(path), str(path), None
            return str(path), load_audio(str(path), max_seconds=self.max_seconds), None
        except FAILURES as error:
            return str(path), None, short_message(error)

    @staticmethod
    def _streamable(path: Path) -> bool:
        with contextlib.suppress(sf.LibsndfileError, RuntimeError, OSError):
            info = sf.info(str(path))
            return info.samplerate == SAMPLING_RATE and info.frames > STREAM_OVER_SECONDS * SAMPLING_RATE
        return False


def _as_is(item):
    return item


def trace_files(tracer, paths: list[Path], workers: int = 1, max_seconds: float | None = None,
                group_size: int | None = None, **call_arguments) -> Iterator[tuple[str, dict | None, str | None]]:
    """`(path, result, None)` or `(path, None, error)` per file, in order; `workers` decoding processes (0: decode
    here); windows of consecutive files share the model's batches, within groups of `group_size` files
    (`CodecSourceTracingPipeline.trace_many`). `call_arguments` go to the pipeline (`window_batch_size`, ...)."""
    loader = DataLoader(AudioFiles(paths, max_seconds), batch_size=None, num_workers=workers, collate_fn=_as_is,
                        prefetch_factor=4 if workers else None, persistent_workers=False)
    order: list[str] = []

    def audio_inputs():
        for path, audio, error in loader:
            order.append(path)
            if error is not None:
                yield DecodeFailure(error)
            elif isinstance(audio, str):
                yield audio  # streamed by the pipeline
            else:
                yield {"array": np.asarray(audio), "sampling_rate": SAMPLING_RATE}

    for index, outcome in enumerate(tracer.trace_many(audio_inputs(), group_size=group_size, max_seconds=max_seconds,
                                                            **call_arguments)):
        if isinstance(outcome, Exception):
            yield order[index], None, str(outcome) if isinstance(outcome, DecodeFailure) else short_message(outcome)
        else:
            yield order[index], outcome, None


class DecodeFailure(ValueError):
    """A file a worker could not read, in its place among the pipeline's inputs; its text is the one-line reason."""


def file_groups(files: list, size: int) -> list[list]:
    """Consecutive groups of `size` files: the unit of batching, of splitting among processes and of resuming, so
    that every run computes each file in the same batch (`trace_many`'s `group_size`)."""
    return [files[first : first + size] for first in range(0, len(files), size)]


def default_workers() -> int:
    """Decoding processes beside the model: one per four cores this process may use, at least one."""
    import os

    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return max(1, cores // 4)


SEGMENT_COLUMNS = ["contains_spoof", "contains_spoof_score", "segments"]


def result_columns(tasks, segments: bool = False) -> list[str]:
    """The columns of a trace row, in order (with `segments`, where in the file spoofed speech was found)."""
    columns = ["path", "status", "error", "spoof_score", "decision", "num_windows", "duration_seconds", "warnings",
               "generator", "generator_distance", "generator_score", *(SEGMENT_COLUMNS if segments else [])]
    columns += [f"{task}_{kind}" for task in tasks for kind in ("label", "unknown_score")]
    return columns + [f"{task}_{label}" for task in tasks for label in TASK_LABELS[task]]


def head_label(answer: dict) -> str:
    """A head's answer for people: its label, or `unknown` when the clip is not one of the kinds it knows (unless an
    enrolled generator's taxonomy answers for it)."""
    return "unknown" if answer["known"] is False and not answer.get("enrolled") else answer["label"]


def describe_generator(generator: dict | None) -> str:
    """The enrolled generator a clip is attributed to, for a line of text (empty where there is none)."""
    if not generator:
        return ""
    score = "" if generator.get("score") is None else f" (probability {generator['score']:.2f})"
    return f"  made by {generator['name']}{score}"


def result_row(path: str, result: dict, tasks) -> dict:
    """One file's pipeline result as a row of `result_columns`."""
    row = {"path": path, "status": "ok", "error": "", "warnings": "; ".join(result["warnings"]),
           **{k: result[k] for k in ("spoof_score", "decision", "num_windows", "duration_seconds")}}
    generator = result.get("generator")
    row.update({"generator": generator["name"] if generator else "",
                "generator_distance": generator["distance"] if generator else "",
                "generator_score": generator["score"] if generator and generator["score"] is not None else ""})
    if "segments" in result:
        row.update({"contains_spoof": result["contains_spoof"], "contains_spoof_score": result["contains_spoof_score"],
                    "segments": json.dumps(segment_cells(result["segments"]))})
    for task in tasks:
        row.update({f"{task}_{label}": p for label, p in result[task].items()})
        row.update({f"{task}_label": head_label(result["heads"][task]),
                    f"{task}_unknown_score": result["heads"][task]["unknown_score"]})
    return row


def segment_cells(segments: list[dict]) -> list[dict]:
    """Segments as a trace row holds them: seconds, spoof score and each taxonomy head's answer for people."""
    return [{"start_seconds": round(s["start_seconds"], 2), "end_seconds": round(s["end_seconds"], 2),
             "spoof_score": round(s["spoof_score"], 4),
             **{task: head_label(answer) for task, answer in s["heads"].items() if task != "bin"}}
            for s in segments]


def segments_line(segments: list[dict]) -> str:
    """`spoofed speech at 12.0-16.0 s (sq/none/freq)`, or that none was found."""
    if not segments:
        return "no spoofed stretch found"
    parts = [f"{s['start_seconds']:.1f}-{s['end_seconds']:.1f} s (" + "/".join(
        head_label(a) for t, a in s["heads"].items() if t != "bin") + ")" for s in segments]
    return "spoofed speech at " + ", ".join(parts)


def error_row(path: str, error: str) -> dict:
    return {"path": path, "status": "error", "error": error}

