"""Every benchmark that the README, RESULTS.md or docs cite runs, as cited (`python benchmarks/NAME.py`), at a tiny
size: a benchmark that breaks (as bench_inference.py did when the pipeline's model step changed) fails here, not in
front of a reader. The figures themselves are measured at full size and written to benchmarks/RESULTS.md."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CITING = [ROOT / "README.md", ROOT / "benchmarks" / "RESULTS.md", *sorted((ROOT / "docs").glob("*.md"))]


def run(script: str, *args, timeout: int = 600) -> str:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, f"benchmarks/{script}.py", *map(str, args)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_every_cited_benchmark_has_a_smoke_run_here():
    cited = {name for doc in CITING for name in re.findall(r"benchmarks/(\w+)\.py", doc.read_text())}
    smoked = {name for name in re.findall(r'run\("(\w+)"', Path(__file__).read_text())}
    smoked |= {"demo_seeds"}  # tests/tools/test_train.py runs its main on finished runs
    assert cited and cited <= smoked, cited - smoked


@pytest.mark.slow
def test_bench_inference_runs(built):
    out = run("bench_inference", "--size", "tiny", "--windows", 2, "--repeats", 1, "--dataset", built,
              "--long-scale", 0.02)
    assert "(a) naive fp32 eager, batch 1" in out and "(b) pipeline, precision=auto" in out and "NO" not in out
    assert "ten 1-minute files" in out


@pytest.mark.slow
def test_bench_folder_runs(tmp_path):
    out = run("bench_folder", "--files", 3, "--seconds", 1, "--size", "tiny", "--out", tmp_path / "t.md")
    assert "| `codectrace trace` on the folder |" in (tmp_path / "t.md").read_text() and out


@pytest.mark.slow
def test_bench_processes_runs(trained, tmp_path):
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    for i in range(600):
        sf.write(tmp_path / f"c{i:03d}.wav", 0.1 * rng.standard_normal(4800), 16000)
    run("bench_processes", tmp_path, "--model", trained[0], "--out", tmp_path / "t.md")
    table = (tmp_path / "t.md").read_text()
    assert "| 2 processes (torchrun) |" in table and "NO" not in table


@pytest.mark.slow
def test_bench_dataset_build_runs():
    table = run("bench_dataset_build", "--utterances", 4, "--num-proc", 1, 2).splitlines()[-2:]
    assert [line.split()[0] for line in table] == ["1", "2"]


@pytest.mark.slow
def test_bench_training_runs(built):
    run("bench_training", "--sizes", "tiny", "--steps", 1, "--workers", 0, "--dataset", built)


@pytest.mark.slow
def test_bench_trust_overhead_runs(trained):
    assert "ratio" in run("bench_trust_overhead", "--model", trained[0], "--clips", 2, "--repeats", 1)


@pytest.mark.slow
def test_bench_ddp_runs(built, tmp_path):
    run("bench_ddp", "--presets", "official", "--steps", 3, "--dataset", built, "--out", tmp_path / "t.md")
    assert "| official |" in (tmp_path / "t.md").read_text()


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_whole_clip_runs(trained, codecfake_mini, tmp_path):
    import shutil

    shutil.copytree(trained[0], tmp_path / "runs" / "seed-1", ignore=shutil.ignore_patterns("checkpoint-*"))
    run("whole_clip", "--runs", tmp_path / "runs", "--dataset", codecfake_mini, "--hide-test", "--out",
        tmp_path / "t.md")
    assert (tmp_path / "t.md").read_text()


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_real_voice_false_alarms_runs(trained, codecfake_mini, tmp_path):
    from speech_sources.real_speech import KTUBERLING_SOUNDS

    if not Path(KTUBERLING_SOUNDS).is_dir():
        pytest.skip("ktuberling-data is not installed (scripts/setup.sh installs it)")
    run("real_voice_false_alarms", "--model", trained[0], "--dataset", codecfake_mini, "--release",
        codecfake_mini.parent / "release", "--per-speaker", 2, "--in-domain-spoof", 4, "--out", tmp_path / "t")
    assert "| ktuberling" in (tmp_path / "t.md").read_text() and (tmp_path / "t.json").is_file()
    summary = run("real_voice_false_alarms", "--summarise", tmp_path / "t.json", tmp_path / "t.json")
    assert "| ktuberling, heard in training |" in summary and "mean" in summary


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_enrolment_curve_runs(trained, codecfake_mini, tmp_path):
    run("enrolment_curve", "--model", trained[0], "--dataset", codecfake_mini, "--ks", 1, 2, "--draws", 1,
        "--per-source", 4, "--out", tmp_path / "curve")
    assert "| 2 |" in (tmp_path / "curve.md").read_text() and (tmp_path / "curve.png").is_file()


@pytest.mark.slow
def test_bench_enrolment_runs(trained):
    assert "ratio" in run("bench_enrolment", "--model", trained[0], "--clips", 2, "--repeats", 1)


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_real_voices_loco_runs(tmp_path):
    from codectrace.testing import TINY_PRESET_FLAGS
    from speech_sources.real_speech import REAL_CORPORA

    if not all(corpus.root.is_dir() for corpus in REAL_CORPORA.values()):
        pytest.skip("the real-voice corpora are not installed (scripts/setup.sh installs them)")
    out = run("real_voices_loco", "--leave-out", "gcin", "--seeds", 1, "--utterances", 1, "--per-speaker", 2,
              "--runs", tmp_path, "--out", tmp_path / "loco", "--", *TINY_PRESET_FLAGS["demo"], "--chunk_samples",
              16000, "--dataloader_num_workers", 0, "--num_train_epochs", 1, "--per_device_train_batch_size", 8)
    assert "| gcin | 1 |" in out and (tmp_path / "loco.json").is_file()


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_partial_spoof_segments_runs(trained, codecfake_mini, tmp_path):
    out = run("partial_spoof_segments", "--model", trained[0], "--release", codecfake_mini.parent / "release",
              "--sets", tmp_path / "sets", "--recordings", 2, "--hops", 1, 0.5, "--out", tmp_path / "segments")
    assert "Chosen on validation" in out and (tmp_path / "segments.png").is_file()


@pytest.mark.slow
@pytest.mark.needs_synthesizers
def test_silence_trimming_runs(trained, codecfake_mini, tmp_path):
    import shutil

    from speech_sources.real_speech import KTUBERLING_SOUNDS

    if not Path(KTUBERLING_SOUNDS).is_dir():
        pytest.skip("ktuberling-data is not installed (scripts/setup.sh installs it)")
    shutil.copytree(trained[0], tmp_path / "runs" / "seed-1", ignore=shutil.ignore_patterns("checkpoint-*"))
    run("silence_trimming", "--runs", tmp_path / "runs", "--levels", "off", "40", "--per-speaker", 1, "--dataset",
        codecfake_mini, "--release", codecfake_mini.parent / "release", "--out", tmp_path / "t")
    table = (tmp_path / "t.md").read_text()
    assert "| 40 | validation codecs |" in table and "Chosen by the rule" in table and (tmp_path / "t.json").is_file()


@pytest.mark.slow
def test_bench_trimming_runs(trained):
    out = run("bench_trimming", "--model", trained[0], "--clips", 2, "--repeats", 1, "--long-seconds", 5)
    assert "| a 5-s 16 kHz WAV file |" in out
