"""RawBoost "algo 5" as the official W2V2-AASIST scripts run it: notch filters, delay compensation, peak
normalisation only above 1, and applied to the whole utterance before the window is cut."""

import numpy as np
import pytest
import torch
from scipy import signal

from codectrace.data import WaveformTransform
from codectrace.rawboost import (
    RawBoostConfig,
    impulsive_signal_dependent_noise,
    linear_nonlinear_convolutive_noise,
    normalise_if_clipping,
    notch_band,
    random_notch_filter,
    rawboost_algo5,
    scale_to_peak_gain,
)

FS = 16000


def _speechlike(seconds: float = 2.0, seed: int = 0) -> np.ndarray:
    """Harmonics of a gliding 120-200 Hz voice up to 4 kHz (1/k amplitudes), syllable-rate envelope, a noise floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * FS)) / FS
    f0 = 160 + 40 * np.sin(2 * np.pi * 0.7 * t)
    phase = 2 * np.pi * np.cumsum(f0) / FS
    voice = sum(np.sin(k * phase) / k for k in range(1, int(4000 / 200) + 1))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * 4 * t))
    return (0.2 * envelope * voice + 0.005 * rng.standard_normal(t.size)).astype(np.float32)


def _official_notch_filter(draws, gain_db: float) -> np.ndarray:
    """The published `genNotchCoeffs` for given draws (centre, bandwidth, length): firwin's default pass_zero=True,
    odd lengths, band edges clamped into (0, fs/2), the cascade scaled so its peak response is `gain_db`."""
    taps = 1
    for centre, bandwidth, length in draws:
        length = length + 1 if length % 2 == 0 else length
        low, high = centre - bandwidth / 2, centre + bandwidth / 2
        low = 1 / 1000 if low <= 0 else low
        high = FS / 2 - 1 / 1000 if high >= FS / 2 else high
        taps = np.convolve(signal.firwin(length, [low, high], window="hamming", fs=FS, pass_zero=True), taps)
    _, response = signal.freqz(taps, 1, fs=FS)
    return 10 ** (gain_db / 20) * taps / np.abs(response).max()


def _replayed_draws(seed: int, cfg: RawBoostConfig):
    """The draws `random_notch_filter` makes from a generator with this seed, in its order."""
    rng = np.random.default_rng(seed)
    draws = [(rng.uniform(cfg.min_freq, cfg.max_freq), rng.uniform(cfg.min_bandwidth, cfg.max_bandwidth),
              int(rng.uniform(cfg.min_coefficients, cfg.max_coefficients))) for _ in range(cfg.n_bands)]
    return draws, rng.uniform(-6.0, -6.0)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_filter_is_the_official_notch_cascade(seed):
    cfg = RawBoostConfig()
    draws, gain = _replayed_draws(seed, cfg)
    ours = random_notch_filter(np.random.default_rng(seed), cfg, -6.0, -6.0)
    np.testing.assert_allclose(ours, _official_notch_filter(draws, gain), rtol=1e-12, atol=1e-15)
    assert ours.size % 2 == 1  # odd lengths cascade to an odd, linear-phase filter


def test_its_magnitude_response_has_notches_at_the_bands():
    taps = scale_to_peak_gain(np.convolve(notch_band(2000.0, 800.0, 99, FS), notch_band(6000.0, 800.0, 98, FS)),
                              0.0, FS)
    frequencies, response = signal.freqz(taps, 1, worN=8192, fs=FS)
    magnitude = np.abs(response)
    at = {f: magnitude[np.argmin(np.abs(frequencies - f))] for f in (2000, 6000, 500, 4000, 7800)}
    assert at[2000] < 0.05 and at[6000] < 0.05  # stopped
    assert min(at[500], at[4000], at[7800]) > 0.9  # passed (peak gain 0 dB)


def test_augmented_speech_stays_correlated_with_its_input():
    """The official algorithm keeps most of the signal (median correlation > 0.9); a band-pass cascade, the bug
    this replaced, keeps almost nothing of it."""
    clip = _speechlike()
    ours = [np.corrcoef(clip, rawboost_algo5(clip, np.random.default_rng(seed)))[0, 1] for seed in range(40)]
    assert np.median(ours) > 0.9

    def band_pass_cascade(rng):
        taps = 1
        for _ in range(5):
            centre, width, length = rng.uniform(20, 8000), rng.uniform(100, 1000), int(rng.uniform(10, 100)) | 1
            low, high = max(centre - width / 2, 1e-3), min(centre + width / 2, FS / 2 - 1e-3)
            taps = np.convolve(signal.firwin(length, [low, high], window="hamming", fs=FS, pass_zero=False), taps)
        return signal.lfilter(taps, 1, clip)

    band_passed = [abs(np.corrcoef(clip, band_pass_cascade(np.random.default_rng(s)))[0, 1]) for s in range(40)]
    assert np.median(band_passed) < 0.3


def test_a_clip_is_rescaled_only_when_its_peak_exceeds_one():
    quiet = 0.1 * _speechlike()
    assert np.abs(normalise_if_clipping(quiet)).max() == pytest.approx(np.abs(quiet).max())
    assert np.abs(normalise_if_clipping(3 * quiet / np.abs(quiet).max())).max() == pytest.approx(1.0)
    augmented = rawboost_algo5(quiet, np.random.default_rng(0))
    assert 0.05 < np.abs(augmented).max() < 0.5  # as loud as its input, not scaled up to 1
    loud = impulsive_signal_dependent_noise(np.full(1000, 0.9), np.random.default_rng(1),
                                            RawBoostConfig(impulse_percent=100))
    assert np.abs(loud).max() == pytest.approx(1.0)


@pytest.mark.parametrize("official_offset, expected_shift", [(False, 0), (True, -1)])
def test_an_impulse_through_lnl_comes_out_where_it_went_in(official_offset, expected_shift):
    """Delay compensation keeps every order aligned; the official slice is one sample early (kept as a switch)."""
    impulse = np.zeros(4001)
    impulse[2000] = 1.0
    cfg = RawBoostConfig(nonlinear_order=1, official_delay_offset=official_offset)
    for seed in range(5):
        out = linear_nonlinear_convolutive_noise(impulse, np.random.default_rng(seed), cfg)
        assert out.shape == impulse.shape
        assert int(np.argmax(np.abs(out))) == 2000 + expected_shift


def test_every_order_stays_aligned():
    """With N_f = 5 the impulse's powers are the impulse: all five filtered orders peak at the same sample."""
    impulse = np.zeros(3001)
    impulse[1500] = 1.0
    out = linear_nonlinear_convolutive_noise(impulse, np.random.default_rng(3), RawBoostConfig())
    assert int(np.argmax(np.abs(out))) == 1500


def test_rawboost_applies_to_the_whole_utterance_before_the_window_is_cut():
    clip = _speechlike(seconds=1.5)
    transform = WaveformTransform(("bin",), chunk_samples=8000, crop="first", augment="rawboost5", seed=1234)
    torch.manual_seed(5)
    window = transform.window({"array": clip, "sampling_rate": FS})
    rng = np.random.default_rng([1234, torch.initial_seed() % 2**32])  # the transform's generator, replayed
    np.testing.assert_allclose(window, rawboost_algo5(clip, rng)[:8000], rtol=1e-6, atol=1e-7)


def test_an_empty_clip_stays_empty():
    assert rawboost_algo5(np.zeros(0), np.random.default_rng(0)).shape == (0,)


@pytest.mark.parametrize("bad", [dict(max_freq=9000), dict(min_bandwidth=0), dict(min_coefficients=1),
                                 dict(nonlinear_order=0)])
def test_impossible_ranges_are_refused(bad):
    with pytest.raises(ValueError, match="RawBoost"):
        RawBoostConfig(**bad)
