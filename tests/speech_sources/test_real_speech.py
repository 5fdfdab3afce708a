"""Real recorded voices for CodecFake-mini: one speaker per language folder, words joined into utterances."""

import json

import numpy as np
import pytest
import soundfile as sf

from speech_sources.real_speech import (
    KTUBERLING_SOUNDS,
    REAL_CORPORA,
    speaker_id,
    split_few_speakers,
    split_real_speakers,
    utterances_of,
    write_real_corpus,
)

KTUBERLING = REAL_CORPORA["ktuberling"]


def _words(folder, language, count, seconds=0.8, rate=44100, seed=0):
    (folder / language).mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    for k in range(count):
        sf.write(folder / language / f"w{k:02d}.wav", 0.2 * rng.standard_normal(int(seconds * rate)), rate)


def test_identical_files_in_two_folders_count_once(tmp_path):
    _words(tmp_path, "sr", 2)
    _words(tmp_path, "sr@latin", 2)  # the same bytes (same seed): a script variant of the same recordings
    _words(tmp_path, "de", 2, seed=1)
    found = KTUBERLING.speakers(tmp_path)
    assert sorted(found) == ["rde", "rsr"] and len(found["rsr"]) == 2


def test_a_missing_folder_names_the_package_to_install(tmp_path):
    with pytest.raises(FileNotFoundError, match="ktuberling-data"):
        KTUBERLING.speakers(tmp_path / "nowhere")


def test_speaker_ids_hold_only_letters_and_digits_after_an_r():
    assert speaker_id("sr@ijekavianlatin") == "rsrijekavianlatin" and speaker_id("nds") == "rnds"


def test_splits_are_speaker_disjoint_with_large_and_small_speakers_in_every_held_out_split():
    counts = {f"rbig{k}": 100 + k for k in range(9)} | {f"rsmall{k}": 12 for k in range(8)}
    splits = split_real_speakers(counts, seed=0)
    assert sorted(sum(splits.values(), [])) == sorted(counts)
    for split in ("validation", "test"):
        assert sum(s.startswith("rbig") for s in splits[split]) == 3
        assert sum(s.startswith("rsmall") for s in splits[split]) == 2
    assert split_real_speakers(counts, seed=0) == splits != split_real_speakers(counts, seed=1)


def test_three_speakers_are_the_fewest_that_fill_every_split():
    assert all(split_real_speakers({"ra": 5, "rb": 5, "rc": 5}, seed=0).values())
    with pytest.raises(ValueError, match="at least 3"):
        split_real_speakers({"ra": 5, "rb": 5}, seed=0)


def test_words_are_joined_into_utterances_of_at_least_three_seconds(tmp_path):
    _words(tmp_path, "ca", 9, seconds=0.8)
    utterances = utterances_of(KTUBERLING.speakers(tmp_path)["rca"], limit=5)
    assert len(utterances) == 2 and all(len(u) >= 3 * 16000 for u in utterances)  # 4 + 4 words; 1 left over
    assert len(utterances_of(KTUBERLING.speakers(tmp_path)["rca"], limit=1)) == 1


def test_a_speaker_with_too_few_words_still_gives_one_utterance(tmp_path):
    _words(tmp_path, "ga", 2, seconds=0.8)
    (only,) = utterances_of(KTUBERLING.speakers(tmp_path)["rga"], limit=5)
    assert len(only) == int(1.6 * 16000)


def test_the_corpus_is_peak_normalised_with_a_noise_floor_and_lists_its_splits(tmp_path):
    for k, language in enumerate(("ca", "de", "fr")):
        _words(tmp_path / "sounds", language, 5, seed=k)
    out = write_real_corpus(tmp_path / "corpus", utterances=3, seed=0, sounds=tmp_path / "sounds")
    meta = json.loads((out / "speakers.json").read_text())
    assert sorted(sum(meta["splits"].values(), [])) == ["rca", "rde", "rfr"]
    audio, rate = sf.read(out / "rca" / "rca_001.wav")
    assert rate == 16000 and abs(np.abs(audio).max() - 0.7) < 0.01
    assert not (tmp_path / "corpus.partial").exists()


@pytest.mark.skipif(not KTUBERLING_SOUNDS.is_dir(), reason="ktuberling-data not installed")
def test_ktuberling_data_gives_over_twenty_speakers_with_thirteen_large_ones():
    counts = {name: len(files) for name, files in KTUBERLING.speakers().items()}
    assert len(counts) >= 20 and sum(n >= 50 for n in counts.values()) >= 10


def test_a_word_that_cannot_be_decoded_is_recorded_and_the_corpus_goes_on(tmp_path):
    for k, language in enumerate(("ca", "de", "fr")):
        _words(tmp_path / "sounds", language, 5, seed=k)
    (tmp_path / "sounds" / "de" / "w99.ogg").write_bytes(b"OggS, then nothing a decoder can read")
    with pytest.warns(UserWarning, match="1 word.* of rde .ktuberling. could not be read"):
        out = write_real_corpus(tmp_path / "corpus", utterances=3, seed=0, sounds=tmp_path / "sounds")
    speakers = {s["speaker_id"]: s for s in json.loads((out / "speakers.json").read_text())["speakers"]}
    assert len(speakers["rde"]["unreadable"]) == 1 and "w99.ogg" in speakers["rde"]["unreadable"][0]
    assert speakers["rde"]["utterances"] == 1 and speakers["rca"]["unreadable"] == []


def test_asterisk_prompts_are_grouped_by_voice_talent_without_the_language_links_or_silences(tmp_path):
    _words(tmp_path, "en_US_f_Allison", 2)
    _words(tmp_path, "es_MX_f_Allison", 2, seed=1)
    _words(tmp_path, "it_IT_m_Carlo/digits", 2, seed=2)
    _words(tmp_path, "it_IT_m_Carlo/silence", 2, seed=3)
    _words(tmp_path, "en", 2, seed=4)  # what Debian's language links point at, seen from here as a folder
    found = REAL_CORPORA["asterisk"].speakers(tmp_path)
    assert {name: len(files) for name, files in found.items()} == {"aallison": 4, "acarlo": 2}


def test_gcin_syllables_are_grouped_by_the_speaker_that_names_each_file(tmp_path):
    for k, syllable in enumerate(("ba1", "ma3")):
        (tmp_path / syllable).mkdir()
        for j, speaker in enumerate(("3", "5")):
            sf.write(tmp_path / syllable / f"{speaker}.wav", np.full(800, 0.1 * (1 + k + 2 * j)), 16000)
    found = REAL_CORPORA["gcin"].speakers(tmp_path)
    assert sorted(found) == ["g3", "g5"] and all(len(files) == 2 for files in found.values())


def test_klettres_recordings_are_grouped_by_language_folder_without_its_pictures(tmp_path):
    _words(tmp_path, "fr/alpha", 2)
    _words(tmp_path, "fr/syllab", 2, seed=1)
    _words(tmp_path, "pt_BR/alpha", 2, seed=2)
    _words(tmp_path, "pics", 2, seed=3)
    found = REAL_CORPORA["klettres"].speakers(tmp_path)
    assert {name: len(files) for name, files in found.items()} == {"kfr": 4, "kptbr": 2}


@pytest.mark.parametrize("name", sorted(REAL_CORPORA))
def test_a_corpus_that_is_not_installed_names_its_debian_packages(name, tmp_path):
    with pytest.raises(FileNotFoundError, match=REAL_CORPORA[name].packages[0]):
        REAL_CORPORA[name].speakers(tmp_path / "nowhere")


@pytest.mark.parametrize("name", sorted(REAL_CORPORA))
def test_every_installed_corpus_gives_at_least_two_speakers(name):
    if not REAL_CORPORA[name].root.is_dir():
        pytest.skip(f"{name} is not installed (scripts/setup.sh installs it)")
    assert len(REAL_CORPORA[name].speakers()) >= 2


def test_a_small_corpus_keeps_a_test_speaker_and_from_three_speakers_a_validation_one():
    two, four = split_few_speakers(["ga", "gb"], seed=0), split_few_speakers(["a", "b", "c", "d"], seed=0)
    assert len(two["train"]) == len(two["test"]) == 1 and two["validation"] == []
    assert (len(four["train"]), len(four["validation"]), len(four["test"])) == (2, 1, 1)
    assert sorted(sum(four.values(), [])) == ["a", "b", "c", "d"]


def test_several_corpora_are_split_each_on_its_own_and_their_speakers_say_which_corpus(tmp_path):
    for k, language in enumerate(("ca", "de", "fr")):
        _words(tmp_path / "ktuberling", language, 5, seed=k)
    for k, voice in enumerate(("en_US_f_Allison", "fr_CA_f_June")):
        _words(tmp_path / "asterisk", voice, 5, seconds=2.0, rate=8000, seed=10 + k)
    out = write_real_corpus(tmp_path / "corpus", utterances=2, seed=0,
                            corpora={"ktuberling": tmp_path / "ktuberling", "asterisk": tmp_path / "asterisk"})
    meta = json.loads((out / "speakers.json").read_text())
    corpus_of = {s["speaker_id"]: s["corpus"] for s in meta["speakers"]}
    assert corpus_of == {"rca": "ktuberling", "rde": "ktuberling", "rfr": "ktuberling", "aallison": "asterisk",
                         "ajune": "asterisk"}
    assert {corpus_of[s] for s in meta["splits"]["test"]} == {"ktuberling", "asterisk"}
