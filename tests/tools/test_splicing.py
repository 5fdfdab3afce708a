"""Partly spoofed training windows: a stretch of a spoof utterance spliced into its bona fide original, labelled as
the spoof; bona fide windows spliced from two bona fide utterances; official training untouched."""

import numpy as np
import pytest
from datasets import Dataset

from codectrace.data import WaveformTransform
from codectrace.splicing import FADE, PartialSpoofing, original_id, splice, spliced_window

RATE = 16000


def test_a_splice_takes_the_source_inside_the_range_and_leaves_the_rest():
    target, source = np.zeros(2000, np.float32), np.ones(2000, np.float32)
    splice(target, source, 500, 1500)
    assert target[:500].sum() == 0 and target[1500:].sum() == 0
    assert np.all(target[500 + FADE:1500 - FADE] == 1.0) and 0 < target[500 + FADE // 2] < 1  # cross-faded ends


def test_a_spliced_window_is_the_base_with_one_stretch_of_the_insert_at_the_same_times():
    base = np.linspace(0, 1, 3 * RATE, dtype=np.float32)
    insert = -base  # the same times, told apart by sign
    window, (at, end) = spliced_window(base, insert, RATE, np.random.default_rng(0), stretch_seconds=(0.3, 0.3))
    inside = np.flatnonzero(window < 0)
    assert np.all(np.diff(inside) == 1)  # one stretch
    # where the splice says it is (the sign turns half-way through each cross-fade)
    assert abs(at - inside[0]) <= FADE // 2 and abs(end - inside[-1] - 1) <= FADE // 2
    assert len(inside) == pytest.approx(0.3 * RATE, abs=2 * FADE)
    start = int(np.argmin(np.abs(base - window[0])))
    same_times = base[start:start + RATE]
    first, last = inside[0] + FADE, inside[-1] - FADE
    np.testing.assert_allclose(window[first:last], -same_times[first:last], atol=1e-6)
    np.testing.assert_allclose(window[:inside[0] - FADE], same_times[:inside[0] - FADE], atol=1e-6)


def test_the_original_of_a_resynthesis_is_its_id_without_the_codec():
    assert original_id("p260_075_Encodec_24b24k", "Encodec_24b24k") == "p260_075"
    assert original_id("s01_001", "bonafide") == "s01_001"


def _split() -> Dataset:
    def clip(value):
        return {"array": np.full(RATE, value, np.float32), "sampling_rate": RATE}

    rows = [("s1_001", "bonafide", "s1", 1, 0.1), ("s1_002", "bonafide", "s1", 1, 0.2),
            ("s1_001_rvq", "rvq", "s1", 0, 0.9), ("s2_001", "bonafide", "s2", 1, 0.3)]
    return Dataset.from_dict({"utt_id": [r[0] for r in rows], "source": [r[1] for r in rows],
                              "speaker": [r[2] for r in rows], "bin": [r[3] for r in rows],
                              "audio": [clip(r[4]) for r in rows]})


def _row(split, index):
    return {key: split[index][key] for key in ("utt_id", "source", "speaker", "bin")}


def test_a_spoof_row_is_spliced_into_its_own_original():
    split = _split()
    partial = PartialSpoofing.from_split(split, rate=1.0)
    assert partial.partner(_row(split, 2), np.random.default_rng(0))["array"][0] == pytest.approx(0.1)


def test_a_bona_fide_row_takes_another_utterance_of_its_speaker_or_none():
    split = _split()
    partial = PartialSpoofing.from_split(split, rate=1.0)
    assert partial.partner(_row(split, 0), np.random.default_rng(0))["array"][0] == pytest.approx(0.2)
    assert partial.partner(_row(split, 3), np.random.default_rng(0)) is None  # s2 has one utterance


def test_the_rate_is_the_share_of_rows_given_a_partner():
    split = _split()
    partial = PartialSpoofing.from_split(split, rate=0.3)
    rng = np.random.default_rng(0)
    share = np.mean([partial.partner(_row(split, 2), rng) is not None for _ in range(2000)])
    assert share == pytest.approx(0.3, abs=0.04)


def test_a_partly_spoofed_training_window_mixes_both_and_is_labelled_spoof():
    split = _split()
    transform = WaveformTransform(("bin",), chunk_samples=RATE // 2, crop="random", seed=1,
                                  partial=PartialSpoofing.from_split(split, rate=1.0))
    out = transform(split[2:3])
    window = out["input_values"][0]
    assert np.isclose(window, 0.1).any() and np.isclose(window, 0.9).any()  # original and re-synthesis
    assert out["bin_labels"] == [0]


@pytest.mark.parametrize("rate, message", [(0.0, "in \\(0, 1\\]"), (1.5, "in \\(0, 1\\]")])
def test_a_rate_outside_0_1_is_refused(rate, message):
    with pytest.raises(ValueError, match=message):
        PartialSpoofing.from_split(_split(), rate)


def test_a_split_without_the_needed_columns_is_refused_with_their_names():
    with pytest.raises(ValueError, match="utt_id"):
        PartialSpoofing.from_split(_split().remove_columns("utt_id"), 1.0)


def test_a_partly_spoofed_window_trains_the_bin_head_only():
    split = _split()
    transform = WaveformTransform(("bin", "vq"), chunk_samples=RATE // 2, crop="random", seed=1,
                                  partial=PartialSpoofing.from_split(split, rate=1.0))
    batch = {**split[0:3], "vq": [0, 0, 2]}
    out = transform(batch)
    assert out["bin_labels"] == [1, 1, 0] and out["vq_labels"] == [0, 0, -100]  # bona fide rows keep theirs


FRAMES = (24, 320, 335.5)  # frame_layout of a half-second window: 24 frames, 20 ms apart


def _resynthesised_frames(window) -> np.ndarray:
    """Whether each frame's centre lies in the stretch of re-synthesis (0.9) in the original (0.1) of the `_split`
    clips: the samples holding some of it, and one more at each end (where the cross-fades are still at zero)."""
    holding = np.flatnonzero(np.asarray(window) > 0.1 + 1e-4)
    centres = FRAMES[2] + FRAMES[1] * np.arange(FRAMES[0])
    if not holding.size:
        return np.zeros(FRAMES[0], bool)
    return (centres >= holding[0] - 1) & (centres < holding[-1] + 2)


def test_frame_labels_mark_spoof_the_frames_centred_in_the_spliced_stretch():
    split = _split()
    transform = WaveformTransform(("bin",), chunk_samples=RATE // 2, crop="random", seed=1, frames=FRAMES,
                                  partial=PartialSpoofing.from_split(split, rate=1.0))
    out = transform(split.select([2] * 8)[:])  # the spoof row, eight windows
    labels = np.array(out["frame_labels"])
    assert labels.shape == (8, 24) and ((labels == 0).any(axis=1) & (labels == 1).any(axis=1)).any()
    for window, row in zip(out["input_values"], labels):
        assert np.array_equal(row == 0, _resynthesised_frames(window))  # spoof (0) exactly where the re-synthesis is


def test_whole_windows_give_every_frame_their_label():
    split = _split()
    transform = WaveformTransform(("bin",), chunk_samples=RATE // 2, crop="random", seed=1, frames=FRAMES)
    out = transform(split[0:4])
    assert out["frame_labels"] == [[1] * 24, [1] * 24, [0] * 24, [1] * 24]


def test_without_spliced_bin_labels_a_partly_spoofed_window_trains_the_frame_head_only():
    split = _split()
    transform = WaveformTransform(("bin",), chunk_samples=RATE // 2, crop="random", seed=1, frames=FRAMES,
                                  partial=PartialSpoofing.from_split(split, rate=1.0), spliced_bin_labels=False)
    out = transform(split.select([0, 1, 2])[:])
    assert out["bin_labels"] == [1, 1, -100]  # bona fide rows (spliced from two bona fide utterances) keep theirs
    assert np.array_equal(np.array(out["frame_labels"][2]) == 0, _resynthesised_frames(out["input_values"][2]))
