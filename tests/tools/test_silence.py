"""Leading and trailing silence: the span the pipeline keeps (`codectrace.silence`)."""

import numpy as np
import pytest
import soundfile as sf

from codectrace.input_checks import MIN_SAMPLES
from codectrace.silence import checked_trim_db, file_speech_span, speech_span


@pytest.fixture
def word_in_gated_silence():
    """0.5 s of digital silence, 0.4 s of a tone, 0.3 s of -70 dB hiss (under a 40-dB cut), at 16 kHz."""
    rng = np.random.default_rng(0)
    tone = 0.5 * np.sin(2 * np.pi * 200 * np.arange(6400) / 16000)
    hiss = 10 ** (-70 / 20) * rng.standard_normal(4800)
    return np.concatenate([np.zeros(8000), tone, hiss]).astype(np.float32)


def loud_edges(x: np.ndarray, db: float) -> tuple[int, int]:
    loud = np.flatnonzero(np.abs(x) >= np.abs(x).max() * 10 ** (-db / 20))
    return loud[0], loud[-1] + 1


def test_the_span_runs_from_the_first_to_the_last_sample_within_the_level(word_in_gated_silence):
    start, end = speech_span(word_in_gated_silence, 40)
    assert (start, end) == loud_edges(word_in_gated_silence, 40)
    assert 8000 <= start < 8010 and 14390 < end <= 14400  # the tone, not the silence nor the hiss


def test_a_larger_level_keeps_the_quieter_hiss(word_in_gated_silence):
    assert speech_span(word_in_gated_silence, 80)[1] > 14400


def test_a_silent_clip_is_kept_whole():
    assert speech_span(np.zeros(16000, dtype=np.float32), 40) == (0, 16000)


def test_a_span_shorter_than_the_pipeline_accepts_is_not_cut():
    x = np.zeros(16000, dtype=np.float32)
    x[5000 : 5000 + MIN_SAMPLES - 1] = 0.5  # a click
    assert speech_span(x, 40) == (0, 16000)


@pytest.mark.parametrize("block", [1000, 4096, 1 << 20])
def test_a_file_read_in_blocks_gives_the_span_of_its_samples(word_in_gated_silence, tmp_path, block):
    path = tmp_path / "word.wav"
    sf.write(path, word_in_gated_silence, 16000, subtype="FLOAT")
    with sf.SoundFile(path) as file:
        assert file_speech_span(file, 40, block) == speech_span(word_in_gated_silence, 40)


def test_a_stereo_file_is_read_as_the_mean_of_its_channels(word_in_gated_silence, tmp_path):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([word_in_gated_silence, np.zeros_like(word_in_gated_silence)], axis=1), 16000,
             subtype="FLOAT")
    with sf.SoundFile(path) as file:
        assert file_speech_span(file, 40, 4096) == speech_span(word_in_gated_silence / 2, 40)


@pytest.mark.parametrize("value", [None, False])
def test_none_and_false_mean_no_trimming(value):
    assert checked_trim_db(value) is None


@pytest.mark.parametrize("value", [0, -10, float("nan"), float("inf"), True, "40"])
def test_a_level_that_is_not_a_positive_number_is_refused(value):
    with pytest.raises(ValueError, match="positive number of dB"):
        checked_trim_db(value)
