"""Bona fide speech for CodecFake-mini (issue #8 groundwork): synthesizer speakers, determinism, splits."""

import json

import pytest
import soundfile as sf

from speech_sources.mini_speech import make_speakers, real_corpus_utterances, split_speakers, write_corpus


def test_speakers_are_distinct_settings_and_include_the_real_kal_voice():
    speakers = make_speakers(24, seed=0)
    assert len({(s.voice, s.pitch, s.rate, s.word_gap) for s in speakers}) == 24
    assert speakers[0].engine == "festival" and speakers[0].voice == "kal_diphone"
    assert make_speakers(24, seed=0) == speakers and make_speakers(24, seed=1) != speakers


def test_splits_are_speaker_disjoint():
    splits = split_speakers(make_speakers(24, seed=0))
    assert [len(splits[k]) for k in ("train", "validation", "test")] == [18, 3, 3]
    assert not set(splits["train"]) & (set(splits["validation"]) | set(splits["test"]))
    with pytest.raises(ValueError, match="cannot fill"):
        split_speakers(make_speakers(4, seed=0))


@pytest.mark.needs_synthesizers
def test_corpus_is_16k_mono_speech_and_deterministic(tmp_path):
    first = write_corpus(tmp_path / "a", speakers=4, utterances=1, seed=3, validation=1, test=1)
    second = write_corpus(tmp_path / "b", speakers=4, utterances=1, seed=3, validation=1, test=1)
    files = sorted(first.glob("*/*.wav"))
    assert len(files) == 4
    for path in files:
        info = sf.info(path)
        assert (info.samplerate, info.channels) == (16000, 1) and info.duration > 1.0
        assert path.read_bytes() == (second / path.relative_to(first)).read_bytes()
    meta = json.loads((first / "speakers.json").read_text())
    assert meta["splits"] == {"train": ["s01", "s02"], "validation": ["s03"], "test": ["s04"]}
    assert not (tmp_path / "a.partial").exists()


def test_a_real_corpus_folder_is_read_by_speaker(tmp_path):
    for speaker in ("p225", "p226"):
        (tmp_path / speaker).mkdir()
        sf.write(tmp_path / speaker / f"{speaker}_001.wav", [0.0] * 1600, 16000)
    (tmp_path / "notes").mkdir()
    assert set(real_corpus_utterances(tmp_path)) == {"p225", "p226"}
    with pytest.raises(ValueError, match="no <speaker>"):
        real_corpus_utterances(tmp_path / "notes")
