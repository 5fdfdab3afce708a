"""RawBoost data augmentation (Tak et al., ICASSP 2022), "algo 5" of the official recipe:
linear and non-linear convolutive noise (LnL) followed by impulsive signal-dependent noise (ISD).

Parameter defaults are the official ranges of the W2V2-AASIST training scripts.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal


@dataclass(frozen=True)
class RawBoostConfig:
    """RawBoost ranges (official defaults). Gains in dB, frequencies and bandwidths in Hz."""

    n_bands: int = 5  # notch filters per FIR filter
    min_freq: float = 20.0
    max_freq: float = 8000.0
    min_bandwidth: float = 100.0
    max_bandwidth: float = 1000.0
    min_coefficients: int = 10
    max_coefficients: int = 100
    min_gain: float = 0.0
    max_gain: float = 0.0
    min_bias_nonlinear: float = 5.0  # gain offset of the non-linear (higher-order) terms
    max_bias_nonlinear: float = 20.0
    nonlinear_order: int = 5  # N_f: terms x, x^2, ..., x^N_f
    impulse_percent: float = 10.0  # P: at most this % of samples get impulsive noise
    impulse_gain_sd: float = 2.0  # g_sd
    sampling_rate: int = 16000


def _peak_normalise(x: np.ndarray) -> np.ndarray:
    peak = np.abs(x).max()
    return x / peak if peak > 0 else x


def _notch_filter(rng: np.random.Generator, cfg: RawBoostConfig, min_gain: float, max_gain: float) -> np.ndarray:
    """A random FIR filter: a cascade of `n_bands` band filters, scaled to a random peak gain."""
    nyquist = cfg.sampling_rate / 2
    taps = np.array([1.0])
    for _ in range(cfg.n_bands):
        centre = rng.uniform(cfg.min_freq, cfg.max_freq)
        width = rng.uniform(cfg.min_bandwidth, cfg.max_bandwidth)
        order = int(rng.uniform(cfg.min_coefficients, cfg.max_coefficients))
        order += 1 - order % 2  # an odd length keeps the band-pass design valid
        low = min(max(centre - width / 2, 1e-3), nyquist - 1e-3)
        high = min(max(centre + width / 2, 1e-3), nyquist - 1e-3)
        if high - low < 1e-2:
            continue
        band = signal.firwin(order, [low, high], window="hamming", fs=cfg.sampling_rate, pass_zero=False)
        taps = np.convolve(band, taps)
    gain = rng.uniform(min(min_gain, max_gain), max(min_gain, max_gain))
    _, response = signal.freqz(taps, 1, fs=cfg.sampling_rate)
    return 10 ** (gain / 20) * taps / np.abs(response).max()


def linear_nonlinear_convolutive_noise(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig) -> np.ndarray:
    """Sum over k = 1..N_f of a random filter applied to x**k; higher orders get lower gains."""
    y = np.zeros_like(x, dtype=np.float64)
    min_gain, max_gain = cfg.min_gain, cfg.max_gain
    for k in range(cfg.nonlinear_order):
        if k == 1:
            min_gain, max_gain = cfg.min_gain - cfg.min_bias_nonlinear, cfg.max_gain - cfg.max_bias_nonlinear
        taps = _notch_filter(rng, cfg, min_gain, max_gain)
        y += signal.lfilter(taps, 1, np.power(x, k + 1))
    return _peak_normalise(y - y.mean())


def impulsive_signal_dependent_noise(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig) -> np.ndarray:
    """Adds noise proportional to the signal at a random ~P% of the samples."""
    y = np.array(x, dtype=np.float64, copy=True)
    count = int(x.size * rng.uniform(0, cfg.impulse_percent) / 100)
    positions = rng.permutation(x.size)[:count]
    factors = (2 * rng.random(count) - 1) * (2 * rng.random(count) - 1)
    y[positions] = x[positions] + cfg.impulse_gain_sd * x[positions] * factors
    return _peak_normalise(y)


def rawboost_algo5(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig | None = None) -> np.ndarray:
    """RawBoost "algo 5": LnL convolutive noise, then ISD additive noise. Returns float32."""
    cfg = cfg or RawBoostConfig()
    x = np.asarray(x, dtype=np.float64)
    return impulsive_signal_dependent_noise(linear_nonlinear_convolutive_noise(x, rng, cfg), rng, cfg).astype(
        np.float32
    )
