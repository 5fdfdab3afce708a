"""What the tracer tells a person about the audio it was given: warnings when a verdict rests on little or poor
audio, and the refusal of audio too short to judge (rather than repeat-padding a few samples into a verdict)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE

MIN_SAMPLES = SAMPLING_RATE // 100  # 10 ms: anything shorter is refused
SHORT_SECONDS = 0.5  # below this a verdict rests on too little speech
SILENCE_RMS = 1e-3  # -60 dBFS over the whole clip: (near-)silence
CLIPPED_LEVEL = 0.999  # a sample at full scale
CLIPPED_SHARE = 0.01  # more than 1% of samples at full scale: heavy clipping
PADDED_SHARE = 0.5  # more than half of the model's window is repeat-padding
UNFAMILIAR_AUDIO = ("unfamiliar audio: this recording is unlike everything the model was trained on (its recording "
                    "set-up, channel or generator), so the bona fide / spoof verdict rests on audio it never learnt "
                    "to judge")


@dataclass
class AudioStats:
    """Running statistics of a clip, fed window by window (each sample counted once)."""

    samples: int = 0
    square_sum: float = 0.0
    clipped: int = 0
    covered_until: int = 0

    def add(self, start: int, window: np.ndarray) -> None:
        """Adds the samples of `window` (starting at sample `start`) that earlier windows did not cover."""
        new = window[max(self.covered_until - start, 0):].astype(np.float64)
        self.samples += new.size
        self.square_sum += float(np.square(new).sum())
        self.clipped += int((np.abs(new) >= CLIPPED_LEVEL).sum())
        self.covered_until = max(self.covered_until, start + window.size)

    @property
    def rms(self) -> float:
        return (self.square_sum / self.samples) ** 0.5 if self.samples else 0.0


def refuse_too_short(num_samples: int) -> None:
    if num_samples < MIN_SAMPLES:
        raise ValueError(f"the audio is only {num_samples} samples ({1000 * num_samples / SAMPLING_RATE:.1f} ms) "
                         f"long; at least {1000 * MIN_SAMPLES // SAMPLING_RATE} ms are needed to judge it")


def input_warnings(stats: AudioStats, chunk_samples: int) -> list[str]:
    """Plain-language warnings about the audio a verdict rests on; empty when there is nothing to say."""
    seconds = stats.samples / SAMPLING_RATE
    warnings = []
    if seconds < SHORT_SECONDS:
        warnings.append(f"short audio: {seconds:.2f} s (below {SHORT_SECONDS:g} s a verdict rests on very little "
                        "speech)")
    if stats.samples < PADDED_SHARE * chunk_samples:
        warnings.append(f"mostly repeat-padding: {seconds:.2f} s of audio were repeated to fill the model's "
                        f"{chunk_samples / SAMPLING_RATE:.2f}-s window")
    if stats.rms < SILENCE_RMS:
        warnings.append(f"(near-)silence: the level is {20 * np.log10(max(stats.rms, 1e-12)):.0f} dBFS; there may be "
                        "no speech to judge")
    clipped = stats.clipped / max(stats.samples, 1)
    if clipped > CLIPPED_SHARE:
        warnings.append(f"heavy clipping: {100 * clipped:.1f}% of samples at full scale (distortion the model was "
                        "not trained on)")
    return warnings
