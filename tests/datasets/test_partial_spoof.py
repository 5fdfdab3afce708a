"""Partly spoofed recordings: bona fide speech with stretches replaced by a codec's re-synthesis of the same
stretch, the replaced ranges recorded, loadable with load_dataset."""

import json

import numpy as np
import pytest

from codectrace.audio import load_audio
from dataset_scripts.partial_spoof import pause_point, write_partial_spoof

RATE = 16000


def test_the_cut_at_a_pause_is_the_quietest_frame():
    audio = np.ones(16000, np.float32)
    audio[6400:6720] = 0.0  # 20 ms of silence at 0.4 s
    assert pause_point(audio, 0, 16000) == 6400


@pytest.fixture(scope="module")
def sets(codecfake_mini, tmp_path_factory):
    return write_partial_spoof(codecfake_mini.parent / "release", tmp_path_factory.mktemp("ps") / "sets", 2)


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_every_set_holds_partly_spoofed_and_bona_fide_recordings_with_their_ranges(sets):
    for name in ("training", "validation", "test"):
        rows = [json.loads(line) for line in (sets / name / "metadata.jsonl").read_text().splitlines()]
        assert sorted(r["label"] for r in rows) == ["bonafide", "bonafide", "partly_spoofed", "partly_spoofed"]
        for row in rows:
            assert (row["label"] == "bonafide") == (row["spoof_ranges"] == [])
            assert all(0 <= start < end <= row["duration_seconds"] for start, end in row["spoof_ranges"])
            assert len(load_audio(sets / name / row["file_name"])) == pytest.approx(row["duration_seconds"] * RATE,
                                                                                    abs=1)


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_the_sets_load_with_load_dataset_as_three_splits(sets):
    from datasets import load_dataset

    data = load_dataset("audiofolder", data_dir=str(sets))
    assert sorted(data) == ["test", "train", "validation"] and "spoof_ranges" in data["test"].column_names
