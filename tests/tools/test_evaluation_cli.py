"""`codectrace evaluate` as many processes and across a killed run: the same outputs as one uninterrupted process."""

import os
import subprocess
import sys

import pytest

import codectrace.evaluation_cli as evaluation_cli
from codectrace.cli import main as cli_main
from codectrace.testing import torchrun_command

SETS = ["val_codecs", "vq"]


def evaluate_args(model, dataset, output_dir, *extra) -> list[str]:
    return ["evaluate", "--model", str(model), "--dataset", str(dataset), "--configs", *SETS, "--split", "validation",
            "--output-dir", str(output_dir), "--block-rows", "3", *extra]


def outputs(output_dir) -> dict[str, str]:
    """Every text output of an evaluation (score files, metrics, tables) by its path below eval/."""
    folder = output_dir / "eval"
    return {str(p.relative_to(folder)): p.read_text() for p in sorted(folder.rglob("*"))
            if p.suffix in (".txt", ".json", ".md")}


@pytest.fixture(scope="module")
def reference(trained, built, tmp_path_factory):
    output_dir = tmp_path_factory.mktemp("reference")
    assert cli_main(evaluate_args(trained[0], built, output_dir)) == 0
    return outputs(output_dir)


def test_a_killed_evaluation_resumes_at_the_first_unfinished_block(trained, built, reference, tmp_path, monkeypatch):
    original = evaluation_cli.BlockPredictor.__call__
    calls = []

    def killed_at_the_third_block(self, rows):
        calls.append(len(rows))
        if len(calls) == 3:
            raise KeyboardInterrupt
        return original(self, rows)

    monkeypatch.setattr(evaluation_cli.BlockPredictor, "__call__", killed_at_the_third_block)
    with pytest.raises(KeyboardInterrupt):
        cli_main(evaluate_args(trained[0], built, tmp_path))
    assert not (tmp_path / "eval").exists() and (tmp_path / "eval.work").is_dir()
    monkeypatch.setattr(evaluation_cli.BlockPredictor, "__call__", original)
    assert cli_main(evaluate_args(trained[0], built, tmp_path)) == 0
    assert outputs(tmp_path) == reference and not (tmp_path / "eval.work").exists()


def test_two_processes_write_what_one_process_writes(trained, built, tmp_path):
    # Both with one thread per process, so that the predictions agree to the last bit.
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    one = subprocess.run([sys.executable, "-m", "codectrace.cli", *evaluate_args(trained[0], built, tmp_path / "one")],
                         capture_output=True, text=True, env=env, timeout=600)
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(torchrun_command("codectrace.cli", evaluate_args(trained[0], built, tmp_path / "two"),
                                          module=True), capture_output=True, text=True, env=env, timeout=600)
    assert two.returncode == 0, two.stderr[-2000:]
    assert outputs(tmp_path / "two") == outputs(tmp_path / "one")
