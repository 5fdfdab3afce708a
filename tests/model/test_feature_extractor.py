"""CodecTraceFeatureExtractor: the official crop/repeat policy and its refusals."""

import numpy as np
import pytest
import torch

from modeling_codectrace import CodecTraceFeatureExtractor
from modeling_codectrace.feature_extraction_codectrace import fit_to_length


@pytest.fixture
def extractor():
    return CodecTraceFeatureExtractor(chunk_samples=10)


def test_defaults_are_the_official_recipe():
    fe = CodecTraceFeatureExtractor()
    assert (fe.sampling_rate, fe.chunk_samples, fe.do_normalize) == (16000, 64600, False)


def test_longer_clips_keep_their_first_window(extractor):
    clip = np.arange(25, dtype=np.float32)
    out = extractor(clip, sampling_rate=16000)["input_values"]
    assert out.shape == (1, 10)
    assert out[0].tolist() == list(range(10))


def test_shorter_clips_are_repeated_until_they_fill_the_window(extractor):
    out = extractor(np.array([1.0, 2.0, 3.0]), sampling_rate=16000)["input_values"]
    assert out[0].tolist() == [1, 2, 3, 1, 2, 3, 1, 2, 3, 1]


def test_exact_length_is_unchanged():
    clip = np.random.default_rng(0).standard_normal(7).astype(np.float32)
    assert np.array_equal(fit_to_length(clip, 7), clip)


def test_a_batch_of_different_lengths_becomes_one_tensor(extractor):
    batch = [np.ones(3), torch.arange(20, dtype=torch.float32), [0.5] * 10]
    out = extractor(batch, sampling_rate=16000)["input_values"]
    assert isinstance(out, torch.Tensor) and out.shape == (3, 10) and out.dtype == torch.float32


def test_numpy_output_on_request(extractor):
    out = extractor(np.ones(4), return_tensors="np")["input_values"]
    assert isinstance(out, np.ndarray) and out.shape == (1, 10)


def test_normalisation_is_off_by_default_and_optional():
    clip = 5 + np.random.default_rng(1).standard_normal(20).astype(np.float32)
    raw = CodecTraceFeatureExtractor(chunk_samples=20)(clip)["input_values"][0].numpy()
    assert np.allclose(raw, clip)
    normed = CodecTraceFeatureExtractor(chunk_samples=20, do_normalize=True)(clip)["input_values"][0].numpy()
    assert abs(normed.mean()) < 1e-5 and abs(normed.std() - 1) < 1e-3


@pytest.mark.parametrize(
    ("audio", "kwargs", "message"),
    [
        (np.ones(100), {"sampling_rate": 44100}, "44100 Hz but this model takes 16000 Hz"),
        (np.array([], dtype=np.float32), {}, "empty"),
        (np.array([0.0, np.nan, 1.0]), {}, "NaN or Inf"),
        (np.array([0.0, np.inf]), {}, "NaN or Inf"),
        (np.ones((2, 100)), {}, "2-D array"),
        ([np.ones((100, 2))], {}, "must be 1-D"),
        ({"path": "x.wav"}, {}, "must be a 1-D numpy array"),
        (np.array(["x", "y"]), {}, "must hold numbers"),
    ],
)
def test_bad_input_is_refused_with_what_was_wrong(extractor, audio, kwargs, message):
    with pytest.raises(ValueError, match=message):
        extractor(audio, **kwargs)


def test_the_failing_clip_of_a_batch_is_named(extractor):
    with pytest.raises(ValueError, match=r"clip 1"):
        extractor([np.ones(5), np.array([np.nan])])


def test_round_trips_through_save_pretrained(tmp_path):
    fe = CodecTraceFeatureExtractor(chunk_samples=1234, do_normalize=True)
    fe.save_pretrained(tmp_path)
    loaded = CodecTraceFeatureExtractor.from_pretrained(tmp_path)
    assert (loaded.chunk_samples, loaded.do_normalize) == (1234, True)
