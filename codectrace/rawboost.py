"""RawBoost data augmentation (Tak et al., ICASSP 2022), "algo 5" of the official recipe:
linear and non-linear convolutive noise (LnL) followed by impulsive signal-dependent noise (ISD).

Follows the algorithm of the W2V2-AASIST training scripts that the CodecFake+ authors use: each of the `n_bands`
band filters is a Hamming-window FIR *band-stop* (notch) filter (`scipy.signal.firwin` with its default
`pass_zero=True`), the cascade is scaled to a random peak gain, each order's filtering is delay-compensated so
the orders stay aligned, and a clip is rescaled only when its peak exceeds 1. Random draws come from a
`numpy.random.Generator` (reproducible and worker-safe) instead of numpy's global state.

One deliberate difference, switchable: the official `filterFIR` cuts `(L + 1) / 2` samples of delay from a
linear-phase filter of odd length `L`, whose delay is `(L - 1) / 2`, so its output comes one sample early. Here
the delay is removed exactly (an impulse stays where it was); `RawBoostConfig(official_delay_offset=True)`
reproduces the one-sample advance.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import signal

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE


@dataclass(frozen=True)
class RawBoostConfig:
    """RawBoost ranges, official defaults (the names of the official arguments in brackets). Gains in dB,
    frequencies and bandwidths in Hz."""

    n_bands: int = 5  # [nBands] notch filters cascaded into one FIR filter
    min_freq: float = 20.0  # [minF] centre frequency range
    max_freq: float = 8000.0  # [maxF]
    min_bandwidth: float = 100.0  # [minBW]
    max_bandwidth: float = 1000.0  # [maxBW]
    min_coefficients: int = 10  # [minCoeff] filter length range (made odd)
    max_coefficients: int = 100  # [maxCoeff]
    min_gain: float = 0.0  # [minG] gain of the linear term
    max_gain: float = 0.0  # [maxG]
    min_bias_nonlinear: float = 5.0  # [minBiasLinNonLin] how much lower the non-linear terms' gains are
    max_bias_nonlinear: float = 20.0  # [maxBiasLinNonLin]
    nonlinear_order: int = 5  # [N_f] terms x, x^2, ..., x^N_f
    impulse_percent: float = 10.0  # [P] at most this % of samples get impulsive noise
    impulse_gain_sd: float = 2.0  # [g_sd]
    sampling_rate: int = SAMPLING_RATE
    official_delay_offset: bool = False  # True: the official one-sample advance (see the module docstring)

    def __post_init__(self):
        nyquist = self.sampling_rate / 2
        if not 0 <= self.min_freq <= self.max_freq <= nyquist:
            raise ValueError(f"RawBoost centre frequencies must satisfy 0 <= min_freq <= max_freq <= {nyquist:g} "
                             f"(half the sampling rate), got {self.min_freq} and {self.max_freq}.")
        if not 0 < self.min_bandwidth <= self.max_bandwidth:
            raise ValueError(f"RawBoost bandwidths must satisfy 0 < min_bandwidth <= max_bandwidth, got "
                             f"{self.min_bandwidth} and {self.max_bandwidth}.")
        if not 2 <= self.min_coefficients <= self.max_coefficients:
            raise ValueError(f"RawBoost filter lengths must satisfy 2 <= min_coefficients <= max_coefficients, got "
                             f"{self.min_coefficients} and {self.max_coefficients}.")
        if self.nonlinear_order < 1 or self.n_bands < 1:
            raise ValueError(f"RawBoost needs nonlinear_order >= 1 and n_bands >= 1, got {self.nonlinear_order} "
                             f"and {self.n_bands}.")


def normalise_if_clipping(x: np.ndarray) -> np.ndarray:
    """Rescales to peak 1 only when the peak exceeds 1 (the official `normWav(x, 0)`)."""
    peak = np.abs(x).max(initial=0.0)
    return x / peak if peak > 1 else x


def notch_band(centre: float, bandwidth: float, length: int, sampling_rate: int) -> np.ndarray:
    """One band of the official design: a Hamming-window FIR band-stop filter around `centre`.

    The band edges are clamped inside (0, Nyquist) as the official code does; `length` is made odd (a band-stop
    filter passes Nyquist, which an even-length linear-phase filter cannot)."""
    nyquist = sampling_rate / 2
    low, high = centre - bandwidth / 2, centre + bandwidth / 2
    low = 1e-3 if low <= 0 else low
    high = nyquist - 1e-3 if high >= nyquist else high
    length += 1 - length % 2
    return signal.firwin(length, [low, high], window="hamming", fs=sampling_rate)  # pass_zero=True: band-stop


def scale_to_peak_gain(taps: np.ndarray, gain_db: float, sampling_rate: int) -> np.ndarray:
    """Scales a filter so that its largest magnitude response is `gain_db` (the official normalisation)."""
    _, response = signal.freqz(taps, 1, fs=sampling_rate)
    return 10 ** (gain_db / 20) * taps / np.abs(response).max()


def random_notch_filter(rng: np.random.Generator, cfg: RawBoostConfig, min_gain: float, max_gain: float):
    """The official `genNotchCoeffs`: `n_bands` random notch bands cascaded, scaled to a random peak gain."""
    taps = np.array([1.0])
    for _ in range(cfg.n_bands):
        centre = rng.uniform(cfg.min_freq, cfg.max_freq)
        bandwidth = rng.uniform(cfg.min_bandwidth, cfg.max_bandwidth)
        length = int(rng.uniform(cfg.min_coefficients, cfg.max_coefficients))
        taps = np.convolve(notch_band(centre, bandwidth, length, cfg.sampling_rate), taps)
    gain = rng.uniform(min(min_gain, max_gain), max(min_gain, max_gain))
    return scale_to_peak_gain(taps, gain, cfg.sampling_rate)


def filter_without_delay(x: np.ndarray, taps: np.ndarray, official_offset: bool = False) -> np.ndarray:
    """FIR filtering with the linear-phase delay `(len(taps) - 1) / 2` removed, same length as `x`.

    The filtered signal is computed in full (zeros past the end, like the official padding), so the tail keeps
    the filter's response. `official_offset` cuts one sample more, as the official `filterFIR` does."""
    delay = (taps.size - 1) // 2 + (1 if official_offset else 0)
    full = signal.convolve(x, taps, mode="full")  # FFT or direct, whichever is faster; equals lfilter + padding
    return full[delay : delay + x.size]


def linear_nonlinear_convolutive_noise(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig) -> np.ndarray:
    """LnL: the sum over k = 1..N_f of a random notch filter applied to x**k (the non-linear terms at lower gain),
    mean removed, rescaled only if its peak exceeds 1."""
    y = np.zeros(x.shape, dtype=np.float64)
    min_gain, max_gain = cfg.min_gain, cfg.max_gain
    for k in range(cfg.nonlinear_order):
        if k == 1:
            min_gain, max_gain = cfg.min_gain - cfg.min_bias_nonlinear, cfg.max_gain - cfg.max_bias_nonlinear
        taps = random_notch_filter(rng, cfg, min_gain, max_gain)
        y += filter_without_delay(np.power(x, k + 1), taps, cfg.official_delay_offset)
    return normalise_if_clipping(y - y.mean())


def impulsive_signal_dependent_noise(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig) -> np.ndarray:
    """ISD: noise proportional to the signal at a random share (up to P%) of the samples."""
    y = np.array(x, dtype=np.float64, copy=True)
    count = int(x.size * rng.uniform(0, cfg.impulse_percent) / 100)
    positions = rng.permutation(x.size)[:count]
    factors = (2 * rng.random(count) - 1) * (2 * rng.random(count) - 1)
    y[positions] = x[positions] + cfg.impulse_gain_sd * x[positions] * factors
    return normalise_if_clipping(y)


def rawboost_algo5(x: np.ndarray, rng: np.random.Generator, cfg: RawBoostConfig | None = None) -> np.ndarray:
    """RawBoost "algo 5": LnL convolutive noise, then ISD additive noise, on a whole clip. Returns float32."""
    cfg = cfg or RawBoostConfig()
    x = np.asarray(x, dtype=np.float64)
    if x.size == 0:
        return x.astype(np.float32)
    return impulsive_signal_dependent_noise(linear_nonlinear_convolutive_noise(x, rng, cfg), rng, cfg).astype(
        np.float32
    )
