"""CodecFake+ builder: protocol parsing, the built folder, load_dataset, bad input, interruption, push."""

import io
import json
import os
import subprocess
import sys
import tarfile
import textwrap
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
from datasets import Audio
from datasets import load_dataset as _load_dataset

from dataset_scripts import build_codecfake_plus as builder
from dataset_scripts.protocols import (
    CONFIG_FILES,
    CONFIGS,
    OPTIONAL_CONFIGS,
    ProtocolError,
    read_config_rows,
    read_cosg_protocol,
)

CACHE_ROOT: Path | None = None  # under pytest's temporary folder, which pytest prunes (set by the fixture below)


@pytest.fixture(scope="module", autouse=True)
def _cache_root(tmp_path_factory):
    global CACHE_ROOT
    CACHE_ROOT = tmp_path_factory.mktemp("hf-caches")


def load_dataset(path, config, split=None):
    """load_dataset with a private cache, so that tests never share cached copies."""
    import tempfile

    return _load_dataset(path, config, split=split, cache_dir=tempfile.mkdtemp(prefix="hf-cache-", dir=CACHE_ROOT))


OFFICIAL = Path(__file__).resolve().parents[3] / "shared" / "codecfake_plus_protocol"


def _copy_fixture(fixture_root, tmp_path) -> Path:
    import shutil

    target = tmp_path / "release"
    shutil.copytree(fixture_root, target)
    return target


# -- protocols and stats ------------------------------------------------------------------------------


def test_stats_match_hand_computed_counts_on_the_fixture(fixture_root):
    stats = builder.protocol_stats(fixture_root / "protocols")
    # 3 train speakers x 4 utterances, each paired with one codec cycling through 7 codecs by AUX class.
    assert stats["aux"]["train"]["rows"] == 24
    assert stats["aux"]["train"]["bin"] == {"spoof": 12, "bonafide": 12}
    assert stats["aux"]["train"]["aux"] == {"real": 12, "none": 8, "semantic": 2, "disentangle": 2}
    assert stats["dec"]["train"]["dec"] == {"real": 12, "time": 6, "freq": 6}
    # 2 test speakers x 4 utterances x (bona fide + 7 codecs), of which 3 codecs are SVQ.
    assert stats["cors_eval"]["test"]["rows"] == 64
    assert stats["cors_eval"]["test"]["vq"] == {"real": 8, "mvq": 24, "svq": 24, "sq": 8}
    # 6 systems x 4 clips; 5 of them in CoSG_SEEN.
    assert stats["cosg_eval"]["test"]["rows"] == 24 and stats["cosg_seen"]["test"]["rows"] == 20
    assert stats["cosg_eval"]["test"]["aux"] == {"real": 12, "none": 6, "semantic": 2, "disentangle": 4}


@pytest.mark.skipif(not OFFICIAL.exists(), reason="official protocol files not beside the project")
def test_stats_equal_the_official_protocol_files():
    stats = builder.protocol_stats(OFFICIAL)
    train = stats["aux"]["train"]
    assert train["rows"] == 85930
    assert train["bin"] == {"spoof": 42965, "bonafide": 42965}
    assert (train["aux"]["none"], train["aux"]["semantic"], train["aux"]["disentangle"]) == (14322, 14321, 14322)
    assert stats["vq"]["train"]["vq"] == {"real": 42965, "mvq": 14322, "svq": 14322, "sq": 14321}
    assert stats["dec"]["train"]["dec"] == {"real": 42965, "time": 21483, "freq": 21482}
    assert (stats["aux"]["validation"]["rows"], stats["aux"]["test"]["rows"]) == (1470, 1510)
    assert stats["cors_eval"]["test"]["rows"] == 23405
    assert stats["cors_eval"]["test"]["bin"] == {"spoof": 22650, "bonafide": 755}  # `spoofs` counted as spoof
    assert stats["cosg_eval"]["test"]["rows"] == 1797
    assert stats["cosg_eval"]["test"]["bin"] == {"spoof": 931, "bonafide": 866}
    assert stats["cosg_seen"]["test"]["rows"] == 577
    # Every row of every file is counted, no more, no less; CodecFake-mini's validation codecs are not in CodecFake+.
    assert "val_codecs" not in stats
    for config, splits in ((c, s) for c, s in CONFIG_FILES.items() if c not in OPTIONAL_CONFIGS):
        for split, name in splits.items():
            path = next(OFFICIAL.rglob(name))
            lines = [line for line in path.read_text().splitlines() if line.strip()]
            assert stats[config][split]["rows"] == len(lines), name


def test_stats_command_prints_a_table(fixture_root, capsys):
    assert builder.main(["stats", "--protocols", str(fixture_root / "protocols")]) == 0
    out = capsys.readouterr().out
    assert "aux        train" in out and "bin: 12/12" in out


def test_cosg_rows_take_the_per_system_taxonomy(fixture_root):
    rows = {r.utt_id: r for r in read_cosg_protocol(fixture_root / "protocols/evaluation/CoSG_ALL.txt")}
    ns3 = rows["NS3/ns3_3"]
    assert ns3.source == "NS3" and ns3.labels == {"bin": 0, "vq": 1, "aux": 3, "dec": 1}
    assert rows["NS3/ns3_0"].labels == {"bin": 1, "vq": 0, "aux": 0, "dec": 0}
    assert rows["NS3/ns3_0"].source == "bonafide"


@pytest.mark.parametrize(
    ("file", "line", "message"),
    [
        ("training/train_mult_learn.txt", "p225 p225_009_Encodec_6b24k - Trad TIME MVQ spoof extra",
         r"train_mult_learn.txt:\d+: expected 7 columns"),
        ("training/train_mult_learn.txt", "p225 p225_009_x - Trad TIME MVQ fake", r":\d+: unknown label 'fake'"),
        ("training/train_mult_learn.txt", "p225 p225_009_x - Trad TIME BVQ spoof", r"unknown VQ value 'BVQ'"),
        ("training/train_mult_learn.txt", "p225 p225_009 - Trad TIME MVQ bonafide", r"bona fide row must be REAL"),
        ("evaluation/CoRS_ALL.txt", "p227 p227_001_madeup_codec - - spoof", r"unknown codec 'madeup_codec'"),
        ("evaluation/CoSG_ALL.txt", "NOSUCHTTS key_1 - spoof", r"unknown CoSG system 'NOSUCHTTS'"),
        ("evaluation/CoSG_ALL.txt", "VALLE key_1 spoof", r"CoSG_ALL.txt:\d+: expected 4 or 5 columns"),
        ("evaluation/CoSG_SEEN.txt", "VALLE key_1 - SQ spoof", r"VQ column says 'SQ'"),
    ],
)
def test_bad_protocol_lines_fail_with_file_and_line(fixture_root, tmp_path, file, line, message):
    release = _copy_fixture(fixture_root, tmp_path)
    path = release / "protocols" / file
    path.write_text(path.read_text() + line + "\n")
    with pytest.raises(ProtocolError, match=message):
        read_config_rows(release / "protocols")


def test_missing_protocol_file_names_what_to_download(tmp_path):
    with pytest.raises(ProtocolError, match="train_mult_learn.txt' not found"):
        read_config_rows(tmp_path, ("aux",))


# -- the built dataset ------------------------------------------------------------------------------------


def test_every_config_and_split_loads_offline_in_a_fresh_hf_home(built, tmp_path):
    script = textwrap.dedent(
        f"""
        import json
        from datasets import load_dataset
        sizes = {{}}
        for config in {list(CONFIGS)!r}:
            for split, ds in load_dataset({str(built)!r}, config).items():
                sizes[config + "/" + split] = ds.num_rows
                assert ds.features["vq"].names == ["real", "mvq", "svq", "sq"]
        print(json.dumps(sizes))
        """
    )
    env = dict(os.environ, HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    sizes = json.loads(result.stdout.strip().splitlines()[-1])
    assert sizes["aux/train"] == 24 and sizes["aux/validation"] == 16 and sizes["cors_eval/test"] == 64
    assert set(sizes) == {f"{c}/{s}" for c, splits in CONFIG_FILES.items() for s in splits}


def test_labels_match_the_protocol_row_by_row(built, fixture_root):
    expected = read_config_rows(fixture_root / "protocols")
    for config in ("aux", "cors_eval", "cosg_eval"):
        for split, rows in expected[config].items():
            ds = load_dataset(str(built), config, split=split)
            got = {r["utt_id"]: r for r in ds.remove_columns("audio")}
            assert len(got) == len(rows)
            for row in rows:
                record = got[row.utt_id]
                assert (record["speaker"], record["source"]) == (row.speaker, row.source)
                assert {t: record[t] for t in row.labels} == row.labels


def test_audio_is_the_original_16k_clip(built, fixture_root):
    ds = load_dataset(str(built), "aux", split="train").cast_column("audio", Audio(decode=False))
    record = ds[0]
    original = next((fixture_root / "all_data_16k").glob(record["utt_id"] + ".*"))
    assert record["audio"]["bytes"] == original.read_bytes()
    samples, rate = sf.read(io.BytesIO(record["audio"]["bytes"]))
    assert rate == 16000 and samples.ndim == 1


def test_the_card_declares_configs_counts_and_citations(built):
    card = (built / "README.md").read_text()
    build_id = json.loads((built / "build_report.json").read_text())["fingerprint"][:8]
    assert "config_name: cosg_seen" in card and f"path: aux/train-{build_id}-*.parquet" in card
    assert "| aux | train | 24 | 12/12 |" in card
    assert "2505.12994" in card and "2506.07294" in card and "2501.08238" in card
    assert "VCTK" in card


def test_rerunning_with_the_same_inputs_does_nothing(built, fixture_root, capsys):
    before = {p: p.stat().st_mtime_ns for p in built.rglob("*.parquet")}
    builder.build(fixture_root, fixture_root / "protocols", built, shard_rows=10, num_proc=1, progress=False)
    assert "up to date" in capsys.readouterr().out
    assert before == {p: p.stat().st_mtime_ns for p in built.rglob("*.parquet")}


def test_a_rebuilt_folder_is_not_served_from_the_datasets_cache(fixture_root, tmp_path):
    release = _copy_fixture(fixture_root, tmp_path)
    out, cache = tmp_path / "out", tmp_path / "cache"
    builder.build(release, release / "protocols", out, configs=("aux",), num_proc=1, progress=False)
    first = _load_dataset(str(out), "aux", split="train", cache_dir=str(cache))
    assert "p225_001" in first["utt_id"]
    (release / "all_data_16k" / "p225_001.wav").unlink()
    builder.build(release, release / "protocols", out, configs=("aux",), num_proc=1, progress=False,
                  allow_missing=True, overwrite=True)
    second = _load_dataset(str(out), "aux", split="train", cache_dir=str(cache))
    assert "p225_001" not in second["utt_id"] and second.num_rows == 23


def test_different_inputs_need_overwrite(built, fixture_root):
    with pytest.raises(builder.BuildError, match="--overwrite"):
        builder.build(fixture_root, fixture_root / "protocols", built, shard_rows=7, progress=False)


# -- bad audio ------------------------------------------------------------------------------------------


def test_missing_audio_stops_with_a_summary(fixture_root, tmp_path):
    release = _copy_fixture(fixture_root, tmp_path)
    for path in (release / "all_data_16k").glob("p225_00[12].*"):
        path.unlink()
    with pytest.raises(builder.BuildError) as error:
        builder.build(release, release / "protocols", tmp_path / "out", configs=("aux",), progress=False)
    message = str(error.value)
    assert "rows have missing audio" in message and "train_mult_learn.txt" in message and "p225_00" in message
    assert "--allow-missing" in message
    assert not (tmp_path / "out").exists()


def test_allowed_missing_audio_is_skipped_and_reported(fixture_root, tmp_path):
    release = _copy_fixture(fixture_root, tmp_path)
    (release / "all_data_16k" / "p225_001.wav").unlink()
    report = builder.build(release, release / "protocols", tmp_path / "out", configs=("aux",),
                           allow_missing=True, num_proc=1, progress=False)
    assert report.rows["aux"]["train"] == 23
    saved = json.loads((tmp_path / "out" / "build_report.json").read_text())
    assert [s["utt_id"] for s in saved["skipped"]] == ["p225_001"]
    assert load_dataset(str(tmp_path / "out"), "aux", split="train").num_rows == 23


def test_corrupt_audio_stops_the_build_unless_allowed(fixture_root, tmp_path):
    release = _copy_fixture(fixture_root, tmp_path)
    victim = next((release / "all_data_16k").glob("p225_002.*"))
    victim.write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + os.urandom(100))
    with pytest.raises(builder.BuildError, match="unreadable audio"):
        builder.build(release, release / "protocols", tmp_path / "out", configs=("aux",), num_proc=1,
                      progress=False)
    assert not (tmp_path / "out").exists()
    report = builder.build(release, release / "protocols", tmp_path / "out", configs=("aux",), num_proc=1,
                           allow_corrupt=True, progress=False)
    assert [s["utt_id"] for s in report.skipped] == ["p225_002"]
    assert report.reused_shards > 0  # shards finished by the failed run were kept


def test_audio_not_at_16k_mono_is_resampled_downmixed_and_counted(fixture_root, tmp_path):
    release = _copy_fixture(fixture_root, tmp_path)
    victim = next((release / "all_data_16k").glob("p225_003.*"))
    victim.unlink()
    t = np.arange(44100) / 44100
    stereo = np.stack([0.3 * np.sin(2 * np.pi * 440 * t), 0.1 * np.sin(2 * np.pi * 220 * t)], axis=1)
    sf.write(release / "all_data_16k" / "p225_003.wav", stereo, 44100)
    report = builder.build(release, release / "protocols", tmp_path / "out", configs=("aux",), num_proc=1,
                           progress=False)
    assert (report.resampled, report.downmixed) == (1, 1)
    ds = load_dataset(str(tmp_path / "out"), "aux", split="train").cast_column("audio", Audio(decode=False))
    record = next(r for r in ds if r["utt_id"] == "p225_003")
    samples, rate = sf.read(io.BytesIO(record["audio"]["bytes"]))
    assert rate == 16000 and samples.ndim == 1 and abs(len(samples) - 16000) <= 1


# -- interruption and archives ---------------------------------------------------------------------------


def test_an_interrupted_build_leaves_nothing_that_loads_and_resumes(fixture_root, tmp_path, monkeypatch):
    out = tmp_path / "out"
    real_build_shard = builder.build_shard
    calls = {"n": 0}

    def dying_build_shard(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return real_build_shard(*args, **kwargs)

    monkeypatch.setattr(builder, "build_shard", dying_build_shard)
    with pytest.raises(KeyboardInterrupt):
        builder.build(fixture_root, fixture_root / "protocols", out, shard_rows=10, num_proc=1, progress=False)
    assert not out.exists()
    partial = out.with_name("out.partial")
    assert partial.exists() and not (partial / "README.md").exists()
    with pytest.raises(Exception):  # noqa: B017 - any failure: it must not load as a dataset
        load_dataset(str(out), "aux")

    monkeypatch.setattr(builder, "build_shard", real_build_shard)
    report = builder.build(fixture_root, fixture_root / "protocols", out, shard_rows=10, num_proc=1, progress=False)
    assert report.reused_shards == 3 and not partial.exists()
    assert load_dataset(str(out), "aux", split="train").num_rows == 24


@pytest.mark.slow
def test_builds_from_the_tar_xz_archives(fixture_root, tmp_path):
    for folder in ("all_data_16k", "SLMdemos_16k"):
        with tarfile.open(tmp_path / f"{folder}.tar.xz", "w:xz", preset=0) as tar:
            tar.add(fixture_root / folder, arcname=f"CodecFake+/{folder}")
    out = tmp_path / "out"
    report = builder.build(None, fixture_root / "protocols", out, configs=("cosg_eval",),
                           archives=[tmp_path / "all_data_16k.tar.xz", tmp_path / "SLMdemos_16k.tar.xz"],
                           num_proc=1, progress=False)
    assert report.rows == {"cosg_eval": {"test": 24}}


@pytest.mark.parametrize("kind", ["traversal", "symlink"])
def test_unsafe_archive_members_are_refused(tmp_path, kind):
    archive = tmp_path / "bad.tar.xz"
    with tarfile.open(archive, "w:xz") as tar:
        info = tarfile.TarInfo("../escape.wav" if kind == "traversal" else "all_data_16k/link.wav")
        if kind == "symlink":
            info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
            tar.addfile(info)
        else:
            info.size = 4
            tar.addfile(info, io.BytesIO(b"data"))
    with pytest.raises(builder.BuildError, match="refusing"):
        builder.extract_archives([archive], tmp_path / "x")
    assert not (tmp_path / "escape.wav").exists()
