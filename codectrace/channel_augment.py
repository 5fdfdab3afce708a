"""Channel augmentation: what happens to any recording on its way to a detector, applied to bona fide and spoof
training clips alike, so that compression, bandwidth, noise or loudness never mean "spoof" (or "bona fide").

Per clip, with probability `ChannelConfig.probability`, a chain of independent steps:
1. narrowband: resampled through 8 kHz and back (telephone bandwidth);
2. lossy compression: MP3 or Ogg Vorbis at a random compression level (about 19-50 kb/s MP3, 40-78 kb/s Vorbis
   at 16 kHz), encoded and decoded in memory by libsndfile (through `soundfile`; no subprocess);
3. additive white noise at a random signal-to-noise ratio;
4. a random level (peak gain); clips that would clip are scaled back under 1.

Opus is left out: libsndfile encodes it at 16 kHz about 5x slower than MP3 (94 against 20 ms per 3-s clip on the
development CPU), which would make data loading the bottleneck of CPU training.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import numpy as np

SAMPLING_RATE = 16000
LOSSY_FORMATS = {"mp3": ("MP3", "MPEG_LAYER_III"), "vorbis": ("OGG", "VORBIS")}


@dataclass(frozen=True)
class ChannelConfig:
    """Probabilities and ranges of `channel_augment`; each step is drawn independently."""

    probability: float = 0.7
    narrowband_probability: float = 0.25
    lossy_probability: float = 0.5
    noise_probability: float = 0.4
    noise_snr_db: tuple[float, float] = (10.0, 40.0)
    gain_db: tuple[float, float] = (-18.0, 0.0)


def narrowband(x: np.ndarray) -> np.ndarray:
    """Down to 8 kHz and back (polyphase filters), same length."""
    from scipy.signal import resample_poly

    y = resample_poly(resample_poly(x, 1, 2), 2, 1)
    return _same_length(y, len(x))


def lossy(x: np.ndarray, codec: str, compression_level: float) -> np.ndarray:
    """Encodes and decodes `x` with `codec` (`LOSSY_FORMATS`) at `compression_level` in [0, 1) (higher: smaller;
    libsndfile's MP3 encoder refuses 1.0)."""
    import soundfile

    if codec not in LOSSY_FORMATS:
        raise ValueError(f"unknown lossy codec {codec!r}; accepted: {', '.join(LOSSY_FORMATS)}.")
    if not 0.0 <= compression_level < 1.0:
        raise ValueError(f"compression_level must be in [0, 1), got {compression_level}.")
    container, subtype = LOSSY_FORMATS[codec]
    buffer = io.BytesIO()
    soundfile.write(buffer, np.clip(x, -1.0, 1.0), SAMPLING_RATE, format=container, subtype=subtype,
                    compression_level=float(compression_level))
    buffer.seek(0)
    decoded, _ = soundfile.read(buffer, dtype="float32")
    return _same_length(decoded, len(x))


def add_noise(x: np.ndarray, snr_db: float, rng: np.random.Generator) -> np.ndarray:
    power = float(np.mean(x.astype(np.float64) ** 2)) or 1e-10
    return x + np.sqrt(power / 10 ** (snr_db / 10)) * rng.standard_normal(len(x))


def channel_augment(x: np.ndarray, rng: np.random.Generator, cfg: ChannelConfig | None = None) -> np.ndarray:
    """One random channel for one clip (float waveform at 16 kHz): float32 of the same length, or the clip itself
    when this draw leaves it untouched."""
    cfg = cfg or ChannelConfig()
    if len(x) == 0 or rng.random() >= cfg.probability:
        return x
    y = np.asarray(x, dtype=np.float64)
    if rng.random() < cfg.narrowband_probability:
        y = narrowband(y)
    if rng.random() < cfg.lossy_probability:
        y = lossy(y, str(rng.choice(list(LOSSY_FORMATS))), rng.uniform(0.0, 0.95))
    if rng.random() < cfg.noise_probability:
        y = add_noise(y, rng.uniform(*cfg.noise_snr_db), rng)
    peak = float(np.abs(y).max()) or 1.0
    y = y / peak * min(10 ** (rng.uniform(*cfg.gain_db) / 20), 0.99)
    return y.astype(np.float32)


def _same_length(y: np.ndarray, length: int) -> np.ndarray:
    return y[:length] if len(y) >= length else np.pad(y, (0, length - len(y)))
