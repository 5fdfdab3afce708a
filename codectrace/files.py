"""Writing so that nothing half-written ever looks complete: a file or folder is written under `<name>.partial`
and renamed into place only when it is complete (a failure removes the partial). Also the project's one WAV writer."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE

PARTIAL_SUFFIX = ".partial"


def partial_path(path: str | Path) -> Path:
    """Where `path` is written before it is complete: `<name>.partial` beside it."""
    path = Path(path)
    return path.with_name(path.name + PARTIAL_SUFFIX)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yields the partial path to write `path` to; on success it replaces `path`, on failure it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = partial_path(path)
    try:
        yield partial
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    os.replace(partial, path)


@contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """Yields an empty `<out>.partial` folder to write into; on success it replaces `out`, on failure it is removed."""
    out = Path(out)
    partial = partial_path(out)
    shutil.rmtree(partial, ignore_errors=True)  # a leftover of an interrupted run
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # never leave a half-written folder behind
        raise
    replace_folder(partial, out)


def replace_folder(new: str | Path, target: str | Path) -> None:
    """Moves a finished folder into place; an existing one is moved aside first, then removed, so that `target` is
    at every moment either the old folder or the new one."""
    new, target = Path(new), Path(target)
    if target.exists():
        old = target.with_name(target.name + ".old")
        shutil.rmtree(old, ignore_errors=True)
        os.replace(target, old)
        os.replace(new, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(new, target)


def write_text(path: str | Path, text: str) -> Path:
    with atomic_path(path) as partial:
        partial.write_text(text)
    return Path(path)


def print_report(text: str, out: str | Path | None = None) -> None:
    """A benchmark's table: printed, and written (atomically) to `out` when one is given."""
    print(text)
    if out:
        write_text(out, text)


def write_json(path: str | Path, data, indent: int = 2) -> Path:
    return write_text(path, json.dumps(data, indent=indent, default=str))


AUDIO_FORMATS = {".wav": "WAV", ".flac": "FLAC"}


def write_audio(path: str | Path, waveform, sampling_rate: int = SAMPLING_RATE) -> Path:
    """16-bit PCM WAV or FLAC (by the file's extension), samples clipped to [-1, 1]."""
    import soundfile as sf

    path = Path(path)
    if path.suffix.lower() not in AUDIO_FORMATS:
        raise ValueError(f"write_audio writes {' or '.join(AUDIO_FORMATS)} files, got {path.name!r}.")
    with atomic_path(path) as partial:
        sf.write(partial, np.clip(np.asarray(waveform, dtype=np.float64), -1.0, 1.0), sampling_rate,
                 subtype="PCM_16", format=AUDIO_FORMATS[path.suffix.lower()])
    return path
