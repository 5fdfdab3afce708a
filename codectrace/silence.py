"""Leading and trailing silence, cut before the pipeline windows a clip (where `config.trim_silence_db` asks for it).

Why: in anti-spoofing corpora the silences before and after the speech differ between bona fide and spoof clips,
and a model can learn to read them instead of the speech (known since ASVspoof 2019). A real recording from a
noise-gated set-up, a word between long stretches of near-digital silence, is then called spoof
(docs/real_voices.md). The rule: keep the samples from the first to the last one whose level is at least
`trim_db` under the clip's peak (the channels' mean, as the model reads it). Nothing is cut from a clip that is
silent throughout, nor from one whose kept part would be shorter than the pipeline accepts (`MIN_SAMPLES`).
"""

from __future__ import annotations

import numpy as np
import soundfile as sf

from modeling_codectrace.configuration_codectrace import checked_trim_silence_db

from .input_checks import MIN_SAMPLES

BLOCK_SAMPLES = 1 << 20  # what a file is read in to find its span (about 65 s at 16 kHz)


def checked_trim_db(value) -> float | None:
    """`value` as a trimming level in dB under the peak: the config's rule (`checked_trim_silence_db`), with False
    also meaning no trimming (a call's way to turn off the config's level)."""
    return None if value is False else checked_trim_silence_db(value)


def _kept(first: int, end: int, num_samples: int) -> tuple[int, int]:
    return (first, end) if end - first >= MIN_SAMPLES else (0, num_samples)


def speech_span(samples: np.ndarray, trim_db: float) -> tuple[int, int]:
    """[start, end) of the samples kept by the rule of this module (mono `samples`)."""
    level = np.abs(samples)
    peak = float(level.max()) if level.size else 0.0
    if not peak > 0:  # silent throughout (or NaN, which reading refuses)
        return 0, samples.size
    loud = np.flatnonzero(level >= peak * 10 ** (-trim_db / 20))
    return _kept(int(loud[0]), int(loud[-1]) + 1, samples.size)


def _mono_block(file: sf.SoundFile, start: int, length: int) -> np.ndarray:
    file.seek(start)
    block = file.read(length, dtype="float32", always_2d=True)
    return block.mean(axis=1) if block.shape[1] > 1 else block[:, 0]


def file_speech_span(file: sf.SoundFile, trim_db: float, block: int = BLOCK_SAMPLES) -> tuple[int, int]:
    """`speech_span` of an open sound file, read block by block (memory does not grow with duration): one pass for
    each block's peak, then the first and last blocks reaching the level are read again to find the exact samples."""
    peaks = np.array([np.abs(_mono_block(file, start, block)).max(initial=0.0)
                      for start in range(0, file.frames, block)])
    peak = float(peaks.max(initial=0.0))
    if not peak > 0:
        return 0, file.frames
    level = peak * 10 ** (-trim_db / 20)
    loud_blocks = np.flatnonzero(peaks >= level)
    first_block, last_block = int(loud_blocks[0]) * block, int(loud_blocks[-1]) * block
    first = first_block + int(np.flatnonzero(np.abs(_mono_block(file, first_block, block)) >= level)[0])
    end = last_block + int(np.flatnonzero(np.abs(_mono_block(file, last_block, block)) >= level)[-1]) + 1
    return _kept(first, end, file.frames)
