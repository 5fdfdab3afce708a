"""`codectrace trace` on many files: decoding workers, resuming a killed run, several processes merged into one."""

import os
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

import codectrace.cli as cli
from codectrace.errors import ToolError
from codectrace.testing import torchrun_command
from codectrace.tracing import AudioFiles

RATES = (16000, 44100, 8000)


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    """Nine clips at three sampling rates and one file that cannot be decoded."""
    folder = tmp_path_factory.mktemp("clips")
    rng = np.random.default_rng(0)
    for i in range(9):
        rate = RATES[i % 3]
        sf.write(folder / f"clip{i}.wav", (0.1 * rng.standard_normal(int(rate * (0.7 + 0.3 * i)))), rate)
    (folder / "broken.wav").write_bytes(b"RIFF....WAVEfmt nothing")
    return folder


def trace(tiny_m1_folder, folder, output, *extra) -> int:
    return cli.main(["trace", str(folder), "--model", str(tiny_m1_folder), "--output", str(output),
                     "--precision", "fp32", "--quiet", "--batch-size", "2", *extra])


@pytest.fixture(scope="module")
def reference(tiny_m1_folder, folder, tmp_path_factory):
    """One process, decoding in it."""
    output = tmp_path_factory.mktemp("reference") / "rows.jsonl"
    assert trace(tiny_m1_folder, folder, output, "--workers", "0") == 1  # the broken file fails
    return output.read_text()


def test_decoding_workers_give_the_same_rows(tiny_m1_folder, folder, reference, tmp_path):
    assert trace(tiny_m1_folder, folder, tmp_path / "rows.jsonl", "--workers", "2") == 1
    assert (tmp_path / "rows.jsonl").read_text() == reference


def test_a_worker_hands_over_long_16k_files_to_be_streamed(tmp_path, monkeypatch):
    import codectrace.tracing as tracing

    sf.write(tmp_path / "long.wav", np.zeros(32000), 16000)
    sf.write(tmp_path / "long44.wav", np.zeros(88200), 44100)
    monkeypatch.setattr(tracing, "STREAM_OVER_SECONDS", 1.0)
    files = AudioFiles([tmp_path / "long.wav", tmp_path / "long44.wav"])
    assert files[0] == (str(tmp_path / "long.wav"), str(tmp_path / "long.wav"), None)
    assert isinstance(files[1][1], np.ndarray) and files[1][1].shape == (32000,)


def test_a_killed_run_resumes_where_it_stopped(tiny_m1_folder, folder, reference, tmp_path, monkeypatch, capsys):
    original = cli.trace_files

    def killed_after_four(*args, **kwargs):
        for count, item in enumerate(original(*args, **kwargs)):
            if count == 4:
                raise KeyboardInterrupt
            yield item

    monkeypatch.setattr(cli, "trace_files", killed_after_four)
    output = tmp_path / "rows.jsonl"
    with pytest.raises(KeyboardInterrupt):
        trace(tiny_m1_folder, folder, output, "--workers", "0")
    assert not output.exists() and (tmp_path / "rows.jsonl.work").is_dir()
    monkeypatch.setattr(cli, "trace_files", original)
    capsys.readouterr()
    assert trace(tiny_m1_folder, folder, output, "--workers", "0") == 1
    assert "(4 done before, resumed)" in capsys.readouterr().err
    assert output.read_text() == reference and not (tmp_path / "rows.jsonl.work").exists()


def test_resuming_with_other_settings_is_refused(tiny_m1_folder, folder, tmp_path):
    (tmp_path / "rows.csv.work").mkdir()
    (tmp_path / "rows.csv.work" / "manifest.json").write_text('{"inputs": []}')
    with pytest.raises(ToolError, match="interrupted run with other"):
        cli.run_trace(cli.build_parser().parse_args(
            ["trace", str(folder), "--model", str(tiny_m1_folder), "--output", str(tmp_path / "rows.csv")]))


def test_several_processes_need_an_output_to_merge_into(tiny_m1_folder, folder, monkeypatch):
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ToolError, match="2 processes need --output or --scores-dir"):
        cli.run_trace(cli.build_parser().parse_args(["trace", str(folder), "--model", str(tiny_m1_folder)]))


def test_two_processes_merge_into_the_single_process_result(tiny_m1_folder, folder, tmp_path):
    # Both runs with one thread per process: results then agree to the last bit (thread counts change float sums).
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    arguments = ["trace", str(folder), "--model", str(tiny_m1_folder), "--precision", "fp32", "--quiet",
                 "--workers", "1",
                 "--batch-size", "2"]
    single = subprocess.run([sys.executable, "-m", "codectrace.cli", *arguments, "--output", str(tmp_path / "one.csv")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert "traced 9 of 10 inputs; 1 failed" in single.stderr, single.stderr[-2000:]
    command = torchrun_command("codectrace.cli", [*arguments, "--output", str(tmp_path / "two.csv")], module=True)
    double = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert "in process 0 of 2" in double.stderr and "in process 1 of 2" in double.stderr, double.stderr[-2000:]
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()


def test_accelerate_launch_splits_the_run_as_torchrun_does(tiny_m1_folder, folder, tmp_path):
    from codectrace.testing import free_port

    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    arguments = ["trace", str(folder), "--model", str(tiny_m1_folder), "--precision", "fp32", "--quiet",
                 "--workers", "0",
                 "--batch-size", "2"]
    single = subprocess.run([sys.executable, "-m", "codectrace.cli", *arguments, "--output", str(tmp_path / "one.csv")],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 1, single.stderr[-2000:]  # the broken file
    launch = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
              "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port",
              str(free_port()), "-m", "codectrace.cli", *arguments, "--output", str(tmp_path / "two.csv")]
    double = subprocess.run(launch, capture_output=True, text=True, env=env, timeout=300)
    assert "in process 1 of 2" in double.stderr, double.stderr[-2000:]
    assert (tmp_path / "two.csv").read_text() == (tmp_path / "one.csv").read_text()


def test_a_process_with_nothing_to_do_stays_out_of_the_work_folder(tiny_m1_folder, tmp_path, monkeypatch):
    sf.write(tmp_path / "only.wav", np.zeros(16000), 16000)
    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["trace", str(tmp_path / "only.wav"), "--model", str(tiny_m1_folder), "--output",
                     str(tmp_path / "rows.csv"), "--quiet"]) == 0
    assert not (tmp_path / "rows.csv.work").exists() and not (tmp_path / "rows.csv").exists()
