"""CodecFake-mini: the official CodecFake+ layout and protocols, built from the shipped codec zoo."""

import json
import shutil
from collections import Counter

import numpy as np
import pytest
import soundfile as sf

from codec_zoo.specs import codecs_of
from dataset_scripts.build_codecfake_mini import balanced_assignment, write_codecfake_mini
from dataset_scripts.protocols import (
    COSG_SYSTEMS_FILE,
    ProtocolError,
    read_config_rows,
    read_cosg_protocol,
    read_cosg_systems,
)
from modeling_codectrace.configuration_codectrace import TASK_LABELS

TRAINING, VALIDATION, TEST = (codecs_of(split) for split in ("train", "validation", "test"))


def word_recordings(folder, languages=("ca", "de", "fr"), words=7, rate=22050):
    """A stand-in for ktuberling-data: `<language>/<word>.wav`, noise bursts of 0.8 s at 22.05 kHz."""
    rng = np.random.default_rng(1)
    for language in languages:
        (folder / language).mkdir(parents=True)
        for k in range(words):
            sf.write(folder / language / f"word{k}.wav", 0.2 * rng.standard_normal(int(0.8 * rate)), rate)
    return folder


@pytest.fixture(scope="session")
def mini_root(tmp_path_factory):
    if shutil.which("espeak-ng") is None or shutil.which("festival") is None:
        pytest.skip("espeak-ng / festival not installed")
    work = tmp_path_factory.mktemp("mini")
    # 8 utterances: the fewest with which every training codec appears in a training protocol (CoRS needs it): a
    # split of three speakers then has 24 rows, which each sampling's cycle needs to reach the eighth codec of a VQ or
    # AUX class (3 classes x 8) and the twelfth of a DEC class (2 x 12)
    return write_codecfake_mini(work / "codecfake_mini", speakers=8, utterances=8, seed=0, jobs=2,
                                real_voices=word_recordings(work / "words"))


@pytest.mark.parametrize("task", ["aux", "vq", "dec"])
def test_each_sampling_is_balanced_over_its_task_classes(task):
    picks = balanced_assignment(task, TRAINING, 60)
    counts = Counter(getattr(s, task) for s in picks)
    assert len(counts) == len({getattr(s, task) for s in TRAINING}) and len(set(counts.values())) == 1
    assert {s.name for s in picks} == {s.name for s in TRAINING}


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_layout_matches_codecfake_plus(mini_root):
    assert sorted(p.name for p in mini_root.iterdir()) == ["SLMdemos_16k", "all_data_16k", "codecfake_mini.json",
                                                          "protocols"]
    assert not mini_root.with_name(mini_root.name + ".partial").exists()
    assert sorted(p.name for p in (mini_root / "SLMdemos_16k").iterdir()) == sorted(s.name for s in TEST)
    info = sf.info(next((mini_root / "all_data_16k").glob("*.wav")))
    assert (info.samplerate, info.channels) == (16000, 1)


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_every_protocol_parses_and_every_row_has_its_audio(mini_root):
    rows = read_config_rows(mini_root / "protocols")
    for config, splits in rows.items():
        for split, items in splits.items():
            assert items, (config, split)
            for row in items:
                assert (mini_root / f"{row.audio_stem}.wav").is_file(), row


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_training_protocols_pair_each_bona_fide_with_one_training_codec(mini_root):
    rows = read_config_rows(mini_root / "protocols", ("aux",))["aux"]["train"]
    labels = Counter(TASK_LABELS["bin"][r.labels["bin"]] for r in rows)
    assert labels["bonafide"] == labels["spoof"] > 0
    assert {r.source for r in rows} - {"bonafide"} <= {s.name for s in TRAINING}


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_test_codecs_appear_only_in_the_out_of_domain_set(mini_root):
    text = "".join(p.read_text() for p in (mini_root / "protocols" / "training").glob("*.txt"))
    text += (mini_root / "protocols" / "evaluation" / "CoRS_ALL.txt").read_text()
    assert not any(s.name in text for s in TEST)
    cosg = read_config_rows(mini_root / "protocols", ("cosg_eval",))["cosg_eval"]["test"]
    by_system = {r.source: r.labels for r in cosg if r.source != "bonafide"}
    for spec in TEST:
        labels = by_system[spec.name]
        assert (TASK_LABELS["vq"][labels["vq"]], TASK_LABELS["aux"][labels["aux"]],
                TASK_LABELS["dec"][labels["dec"]]) == (spec.vq, spec.aux, spec.dec)
    assert {TASK_LABELS["bin"][r.labels["bin"]] for r in cosg} == {"bonafide", "spoof"}


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_validation_codecs_re_synthesise_every_validation_utterance_and_nothing_else(mini_root):
    meta = json.loads((mini_root / "codecfake_mini.json").read_text())
    rows = read_config_rows(mini_root / "protocols", ("val_codecs",))["val_codecs"]["validation"]
    bona_fide = [r for r in rows if r.source == "bonafide"]
    assert {r.speaker for r in rows} == set(meta["splits"]["validation"])
    assert Counter(r.source for r in rows if r.source != "bonafide") == {s.name: len(bona_fide) for s in VALIDATION}
    others = [p for p in (mini_root / "protocols").rglob("*.txt") if p.name != "dev_valcodecs.txt"]
    assert not any(s.name in p.read_text() for p in others for s in VALIDATION)


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_real_speakers_join_every_split_and_are_marked_real(mini_root):
    meta = json.loads((mini_root / "codecfake_mini.json").read_text())
    kinds = meta["speaker_kinds"]
    assert sorted(s for s, kind in kinds.items() if kind == "real") == ["rca", "rde", "rfr"]
    for split, speakers in meta["splits"].items():
        assert {kinds[s] for s in speakers} == {"synthetic", "real"}, split
    real = sf.info(next((mini_root / "all_data_16k").glob("rca_001.wav")))
    assert real.samplerate == 16000 and real.duration >= 3.0  # words joined into utterances


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_cors_holds_every_training_codec_for_every_test_utterance(mini_root):
    meta = json.loads((mini_root / "codecfake_mini.json").read_text())
    cors = read_config_rows(mini_root / "protocols", ("cors_eval",))["cors_eval"]["test"]
    bona_fide = [r for r in cors if r.source == "bonafide"]
    assert {r.speaker for r in cors} == set(meta["splits"]["test"])
    assert Counter(r.source for r in cors if r.source != "bonafide") == {s.name: len(bona_fide) for s in TRAINING}


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_resynthesis_changes_the_audio_but_keeps_its_length(mini_root):
    spoof = sorted((mini_root / "all_data_16k").glob("*_*_*.wav"))[0]  # <speaker>_<NNN>_<codec>
    bona_fide = "_".join(spoof.stem.split("_")[:2])
    original, _ = sf.read(mini_root / "all_data_16k" / f"{bona_fide}.wav")
    coded, _ = sf.read(spoof)
    assert len(coded) == len(original) and not np.allclose(coded, original, atol=1e-3)


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_the_dataset_builder_reads_codecfake_mini_unchanged(mini_root, tmp_path):
    from datasets import load_dataset

    from dataset_scripts import build_codecfake_plus as builder

    out = builder.build(mini_root, mini_root / "protocols", tmp_path / "built", shard_rows=50, progress=False)
    cosg = load_dataset(str(tmp_path / "built"), "cosg_eval", split="test")
    assert set(cosg["source"]) == {"bonafide"} | {s.name for s in TEST}
    assert len(load_dataset(str(tmp_path / "built"), "val_codecs", split="validation")) > 0
    card = (tmp_path / "built" / "README.md").read_text()
    assert "# CodecFake-mini (source tracing)" in card and "Bona fide speech is from VCTK" not in card
    assert out.rows["cosg_eval"]["test"] == len(cosg)


def test_missing_codec_weights_stop_the_build_before_anything_is_written(tmp_path):
    with pytest.raises(FileNotFoundError, match="codec weights missing"):
        write_codecfake_mini(tmp_path / "out", weights_dir=tmp_path)
    assert not (tmp_path / "out").exists()


def test_real_speech_folders_need_seven_speakers_without_underscores(tmp_path):
    for speaker in ("p225", "p_226"):
        (tmp_path / "speech" / speaker).mkdir(parents=True)
        sf.write(tmp_path / "speech" / speaker / "a.wav", np.zeros(16000), 16000)
    with pytest.raises(ValueError, match="must not contain '_'"):
        write_codecfake_mini(tmp_path / "out", speech_dir=tmp_path / "speech")
    shutil.rmtree(tmp_path / "speech" / "p_226")
    with pytest.raises(ValueError, match="at least 7"):
        write_codecfake_mini(tmp_path / "out", speech_dir=tmp_path / "speech")


def test_declared_cosg_systems_extend_the_official_table(tmp_path):
    declared = tmp_path / COSG_SYSTEMS_FILE
    declared.write_text("MYCODEC Disent FREQ SQ\n")
    protocol = tmp_path / "CoSG_ALL.txt"
    protocol.write_text("MYCODEC a - spoof\nMYCODEC b - - bonafide\n")
    with pytest.raises(ProtocolError, match=COSG_SYSTEMS_FILE):
        read_cosg_protocol(protocol)
    rows = read_cosg_protocol(protocol, systems=read_cosg_systems(declared))
    assert TASK_LABELS["dec"][rows[0].labels["dec"]] == "freq" and rows[1].source == "bonafide"


def test_a_declared_system_cannot_be_real_or_malformed(tmp_path):
    declared = tmp_path / COSG_SYSTEMS_FILE
    declared.write_text("X REAL TIME MVQ\n")
    with pytest.raises(ProtocolError, match="cannot be REAL"):
        read_cosg_systems(declared)
    declared.write_text("X Trad TIME\n")
    with pytest.raises(ProtocolError, match="expected 4 columns"):
        read_cosg_systems(declared)


@pytest.mark.slow
def test_a_folder_of_recordings_replaces_the_synthesizer_speech(tmp_path):
    rng = np.random.default_rng(0)
    for k in range(7):
        folder = tmp_path / "speech" / f"p{225 + k}"
        folder.mkdir(parents=True)
        stereo = 0.1 * rng.standard_normal((int(1.3 * 44100), 2))
        sf.write(folder / "take1.flac", stereo, 44100)
    with pytest.warns(UserWarning, match="appear in no training protocol"):  # 1 utterance: too few for CoRS
        root = write_codecfake_mini(tmp_path / "mini", utterances=1, speech_dir=tmp_path / "speech", jobs=1)
    meta = json.loads((root / "codecfake_mini.json").read_text())
    assert meta["splits"] == {"train": ["p225"], "validation": ["p226", "p227", "p228"],
                              "test": ["p229", "p230", "p231"]}
    info = sf.info(root / "all_data_16k" / "p229_001.wav")
    assert (info.samplerate, info.channels) == (16000, 1) and abs(info.duration - 1.3) < 0.01
    assert read_config_rows(root / "protocols", ("cosg_eval",))["cosg_eval"]["test"]


def test_a_release_made_with_another_zoo_is_recognised_as_stale(tmp_path):
    from codec_zoo.specs import ZOO
    from dataset_scripts.build_codecfake_mini import release_matches_zoo

    codecs = [{"name": s.name, "split": s.split} for s in ZOO]
    (tmp_path / "codecfake_mini.json").write_text(json.dumps({"codecs": codecs}))
    assert release_matches_zoo(tmp_path)
    first_zoo = [{"name": s.name, "heldout": s.split != "train"} for s in ZOO[:15]]  # before the three-way split
    (tmp_path / "codecfake_mini.json").write_text(json.dumps({"codecs": first_zoo}))
    assert not release_matches_zoo(tmp_path)
