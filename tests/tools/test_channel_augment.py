"""Channel augmentation: narrowband, lossy codecs, noise and level, the same for bona fide and spoof clips."""

import numpy as np
import pytest

from codectrace.channel_augment import ChannelConfig, add_noise, channel_augment, lossy, narrowband
from codectrace.data import WaveformTransform


def _speech_like(seconds=2.0, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(int(16000 * seconds)) / 16000
    voiced = sum(np.sin(2 * np.pi * 140 * k * t) / k for k in range(1, 40))
    return (0.3 * voiced * (0.6 + 0.4 * np.sin(2 * np.pi * 3 * t)) + 0.01 * rng.standard_normal(len(t))) / 3


def _band_energy(x, low, high):
    spectrum = np.abs(np.fft.rfft(x)) ** 2
    freqs = np.fft.rfftfreq(len(x), 1 / 16000)
    return spectrum[(freqs >= low) & (freqs < high)].sum() / spectrum.sum()


def test_narrowband_removes_what_lies_above_4_khz_and_keeps_the_length():
    x = np.random.default_rng(0).standard_normal(16000)
    y = narrowband(x)
    assert len(y) == len(x) and _band_energy(x, 4200, 8000) > 0.4 and _band_energy(y, 4200, 8000) < 0.01


@pytest.mark.parametrize("codec", ["mp3", "vorbis"])
def test_lossy_codecs_change_the_samples_but_keep_the_speech(codec):
    x = _speech_like()
    y = lossy(x, codec, 0.95)
    assert len(y) == len(x) and not np.allclose(x, y, atol=1e-3)
    assert np.corrcoef(x[2000:-2000], y[2000:-2000])[0, 1] > 0.9


def test_an_unknown_lossy_codec_or_level_is_refused_with_what_is_accepted():
    with pytest.raises(ValueError, match="accepted: mp3, vorbis"):
        lossy(np.zeros(1600), "aac", 0.5)
    with pytest.raises(ValueError, match=r"in \[0, 1\)"):
        lossy(np.zeros(1600), "mp3", 1.0)


def test_noise_is_added_at_the_requested_signal_to_noise_ratio():
    x = _speech_like()
    y = add_noise(x, 20.0, np.random.default_rng(0))
    snr = 10 * np.log10(np.mean(x**2) / np.mean((y - x) ** 2))
    assert abs(snr - 20.0) < 0.5


def test_every_augmented_clip_is_finite_same_length_and_under_full_scale():
    rng = np.random.default_rng(0)
    x = _speech_like()
    for _ in range(30):
        y = channel_augment(x, rng, ChannelConfig(probability=1.0))
        assert y.dtype == np.float32 and len(y) == len(x) and np.isfinite(y).all() and np.abs(y).max() < 1


def test_probability_zero_leaves_clips_untouched_and_a_seed_repeats_the_draws():
    x = _speech_like()
    assert channel_augment(x, np.random.default_rng(0), ChannelConfig(probability=0.0)) is x
    first = channel_augment(x, np.random.default_rng(5), ChannelConfig(probability=1.0))
    assert np.array_equal(first, channel_augment(x, np.random.default_rng(5), ChannelConfig(probability=1.0)))


def test_the_level_is_drawn_so_loudness_says_nothing_about_the_label():
    rng = np.random.default_rng(0)
    peaks = [np.abs(channel_augment(_speech_like(), rng, ChannelConfig(probability=1.0))).max() for _ in range(40)]
    assert min(peaks) < 0.3 and max(peaks) > 0.7


def test_the_training_transform_applies_it_to_the_window(tmp_path):
    import soundfile as sf

    path = tmp_path / "a.wav"
    sf.write(path, _speech_like(3.0), 16000)
    transform = WaveformTransform(("bin",), 16000, "first", "channel", seed=1,
                                  channel=ChannelConfig(probability=1.0, gain_db=(-30.0, -30.0)))
    window = transform({"audio": [{"path": str(path), "bytes": None}], "bin": [1]})["input_values"][0]
    assert len(window) == 16000 and abs(np.abs(window).max() - 10 ** (-30 / 20)) < 1e-4
