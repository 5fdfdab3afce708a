"""load_audio: every accepted input form, conversions, and each refusal with its message."""

import io
import subprocess

import numpy as np
import pytest
import soundfile as sf
import torch

from codectrace.audio import load_audio


@pytest.fixture
def tone():
    t = np.arange(16000) / 16000
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)


def test_a_path_a_file_object_bytes_and_dicts_give_the_same_samples(tmp_path, tone):
    path = tmp_path / "tone.wav"
    sf.write(path, tone, 16000, subtype="FLOAT")
    reference = load_audio(path)
    assert np.allclose(reference, tone, atol=1e-6)
    with open(path, "rb") as handle:
        assert np.array_equal(load_audio(handle), reference)
    assert np.array_equal(load_audio(path.read_bytes()), reference)
    assert np.array_equal(load_audio(str(path)), reference)
    assert np.array_equal(load_audio({"bytes": path.read_bytes(), "path": "tone.wav"}), reference)
    assert np.array_equal(load_audio({"path": str(path), "bytes": None}), reference)


def test_arrays_and_tensors_need_their_sampling_rate(tone):
    assert np.array_equal(load_audio(tone, 16000), tone)
    assert np.array_equal(load_audio(torch.from_numpy(tone), sampling_rate=16000), tone)
    assert np.array_equal(load_audio({"array": tone, "sampling_rate": 16000}), tone)
    assert np.array_equal(load_audio({"raw": tone, "sampling_rate": 16000}), tone)
    with pytest.raises(ValueError, match="needs its sampling_rate"):
        load_audio(tone)


def test_integer_pcm_becomes_float_in_unit_range():
    pcm = np.array([0, 16384, -32768, 32767], dtype=np.int16)
    out = load_audio(pcm, 16000)
    assert out.dtype == np.float32 and np.allclose(out, [0, 0.5, -1, 32767 / 32768])


def test_stereo_is_downmixed_in_either_orientation(tone):
    stereo = np.stack([tone, np.zeros_like(tone)])
    assert np.allclose(load_audio(stereo, 16000), tone / 2)
    assert np.allclose(load_audio(stereo.T, 16000), tone / 2)


def test_other_rates_are_resampled_to_16k(tmp_path):
    t = np.arange(44100) / 44100
    sf.write(tmp_path / "x.wav", 0.3 * np.sin(2 * np.pi * 440 * t), 44100)
    out, info = load_audio(tmp_path / "x.wav", return_info=True)
    assert out.shape == (16000,) and info.resampled and info.original_sampling_rate == 44100


def test_formats_beyond_soundfile_go_through_ffmpeg(tmp_path, tone):
    sf.write(tmp_path / "x.wav", tone, 16000)
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", "-i", str(tmp_path / "x.wav"), str(tmp_path / "x.mp3")],
                   check=True)
    out = load_audio(tmp_path / "x.mp3")
    assert abs(out.shape[0] - 16000) < 1200 and np.abs(out).max() > 0.1


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p / "missing.wav", "no such file"),
        (lambda p: p, "is a folder"),
        (lambda p: (p / "text.wav").write_text("hello") and p / "text.wav", "could not be decoded as audio"),
        (lambda p: (p / "empty.wav").write_bytes(b"") or p / "empty.wav", "empty"),
        (lambda p: "https://example.com/a.wav", "looks like a URL"),
        (lambda p: 42, "got int"),
    ],
)
def test_bad_inputs_are_refused_with_the_problem_and_what_is_accepted(tmp_path, make, message):
    with pytest.raises(ValueError, match=message) as error:
        load_audio(make(tmp_path))
    assert "load_audio accepts" in str(error.value)


def test_nan_empty_short_and_long_audio_are_refused(tone):
    with pytest.raises(ValueError, match="NaN or Inf"):
        load_audio(np.array([0.0, np.nan]), 16000)
    with pytest.raises(ValueError, match="no samples"):
        load_audio(np.array([], dtype=np.float32), 16000)
    with pytest.raises(ValueError, match="shorter than the minimum of 2 s"):
        load_audio(tone, 16000, min_seconds=2)
    with pytest.raises(ValueError, match="longer than the maximum of 0.5 s"):
        load_audio(tone, 16000, max_seconds=0.5)


def test_text_mode_files_are_refused(tmp_path):
    (tmp_path / "a.wav").write_text("x")
    with open(tmp_path / "a.wav") as handle, pytest.raises(ValueError, match="text mode"):
        load_audio(handle)


def test_a_file_path_with_an_explicit_rate_is_refused(tmp_path, tone):
    buffer = io.BytesIO()
    sf.write(buffer, tone, 16000, format="WAV")
    (tmp_path / "a.wav").write_bytes(buffer.getvalue())
    with pytest.raises(ValueError, match="file's own rate"):
        load_audio(tmp_path / "a.wav", sampling_rate=8000)
