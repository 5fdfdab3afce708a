"""Every entry point fails like a tool: a model, dataset, file or folder that is not there or not usable, or a bad
option value, ends with one line `error: <what>` naming the bad value on stderr, exit status 2, no traceback."""

import json
import os
import shutil
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import pytest
import torch

import modeling_codectrace as mc
from codec_zoo import train_zoo
from codectrace.cli import main as cli_main
from codectrace.errors import one_line
from codectrace.hub import save_model_folder
from codectrace.resolve import ResolveError, check_model_folder, load_split, resolve_model
from codectrace.testing import tiny_config
from dataset_scripts import build_codecfake_mini, build_codecfake_plus

ROOT = Path(__file__).resolve().parents[2]
UNWRITABLE = Path("/sys/codectrace-test")  # /sys refuses new files, even to root (CI runs as root)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    """A good model folder and broken copies of it: no config, another model type, no weights, truncated weights;
    a text file named like a checkpoint; a folder of audio to trace."""
    base = tmp_path_factory.mktemp("errors")
    torch.manual_seed(0)
    good = base / "model"
    save_model_folder(mc.CodecTraceForSourceTracing(tiny_config("M1")).eval(), mc.CodecTraceFeatureExtractor(), good)
    broken = {}
    for kind in ("no_config", "other_type", "no_weights", "truncated"):
        broken[kind] = base / kind
        shutil.copytree(good, broken[kind])
    (broken["no_config"] / "config.json").unlink()
    config = json.loads((good / "config.json").read_text())
    (broken["other_type"] / "config.json").write_text(json.dumps(config | {"model_type": "wav2vec2"}))
    (broken["no_weights"] / "model.safetensors").unlink()
    weights = (good / "model.safetensors").read_bytes()
    (broken["truncated"] / "model.safetensors").write_bytes(weights[: len(weights) // 2])
    (base / "README.pth").write_text("# not a checkpoint\n")
    clips = base / "clips"
    clips.mkdir()
    import numpy as np
    import soundfile as sf

    sf.write(clips / "a.wav", 0.1 * np.random.default_rng(0).standard_normal(16000), 16000)
    return {"base": base, "model": good, "clips": clips, **broken}


# (case id, argv template, text the one line must contain); {name} is filled from `folders` (and built, tmp).
CLI_CASES = [
    ("model-not-a-hub-id", "trace {clips} --model does/not/exist", "does/not/exist"),
    ("model-not-on-the-hub", "trace {clips} --model someone/missing-model", "someone/missing-model"),
    ("model-folder-without-config", "trace {clips} --model {no_config}", "has no config.json"),
    ("model-folder-of-another-type", "trace {clips} --model {other_type}", "not a CodecTrace model"),
    ("model-folder-without-weights", "trace {clips} --model {no_weights}", "has no weights"),
    ("model-weights-truncated", "trace {clips} --model {truncated}", "could not be loaded"),
    ("model-is-a-file", "trace {clips} --model {base}/README.pth", "is a file"),
    ("dataset-missing", "evaluate --model {model} --dataset /nonexistent --output-dir {tmp}/e", "/nonexistent"),
    ("dataset-config-missing", "evaluate --model {model} --dataset {built} --configs nope --output-dir {tmp}/e",
     "'nope'"),
    ("evaluate-model-missing", "evaluate --model /nonexistent/m --dataset {built} --output-dir {tmp}/e",
     "/nonexistent/m"),
    ("evaluate-output-unwritable", f"evaluate --model {{model}} --dataset {{built}} --output-dir {UNWRITABLE}",
     str(UNWRITABLE)),
    ("output-folder-missing", "trace {clips} --model {model} --output {tmp}/nope/rows.csv", "nope"),
    ("output-folder-unwritable", f"trace {{clips}} --model {{model}} --output {UNWRITABLE}/rows.csv",
     str(UNWRITABLE)),
    ("output-wrong-suffix", "trace {clips} --model {model} --output {tmp}/rows.txt", "rows.txt"),
    ("scores-dir-unwritable", f"trace {{clips}} --model {{model}} --scores-dir {UNWRITABLE}/s", str(UNWRITABLE)),
    ("checkpoint-not-torch", "convert-official {base}/README.pth --out {tmp}/c", "not a PyTorch checkpoint"),
    ("checkpoint-missing", "convert-official {tmp}/missing.pth --out {tmp}/c", "missing.pth"),
    ("bad-option-value", "trace {clips} --model {model} --batch-size many", "many"),
    ("bad-option-choice", "trace {clips} --model {model} --precision fp64", "fp64"),
    ("publish-model-missing", "publish --model-dir /nonexistent/m --model-repo me/x --stage-dir {tmp}/p",
     "/nonexistent/m"),
]


def _run_in_process(main, argv, capsys) -> tuple[int, str]:
    try:
        status = main(argv)
    except SystemExit as exit_:  # argparse usage errors
        status = exit_.code
    return status, capsys.readouterr().err


def _assert_one_line_error(status, stderr, names):
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert status == 2, stderr
    assert len(lines) == 1 and lines[0].startswith("error: "), stderr
    assert names in lines[0] and "Traceback" not in stderr


@pytest.mark.parametrize("case, template, names", CLI_CASES, ids=[case[0] for case in CLI_CASES])
def test_the_codectrace_command_fails_in_one_line(case, template, names, folders, built, tmp_path, capsys):
    if UNWRITABLE.parent == Path("/sys") and not Path("/sys").is_dir():
        pytest.skip("no /sys to stand for an unwritable folder")
    argv = template.format(**{k: str(v) for k, v in folders.items()}, built=built, tmp=tmp_path).split()
    _assert_one_line_error(*_run_in_process(cli_main, argv, capsys), names)


@pytest.mark.parametrize("option, partial", [("--output", "rows.csv.partial"),
                                             ("--scores-dir", "scores_bin.txt.partial")])
def test_a_full_disk_for_the_outputs_fails_in_one_line(option, partial, folders, tmp_path, capsys):
    """/dev/full answers every write with ENOSPC: the file the writer fills stands on it."""
    if not Path("/dev/full").exists():
        pytest.skip("no /dev/full to stand for a full disk")
    (tmp_path / partial).symlink_to("/dev/full")
    target = tmp_path / "rows.csv" if option == "--output" else tmp_path
    argv = ["trace", str(folders["clips"]), "--model", str(folders["model"]), option, str(target), "--quiet"]
    _assert_one_line_error(*_run_in_process(cli_main, argv, capsys), "No space left on device")


def test_verbose_adds_the_detail_of_an_error(folders, tmp_path, capsys):
    checkpoint = tmp_path / "objects.pth"
    torch.save({"weights": torch.zeros(1), "step": Fraction(1, 3)}, checkpoint)  # not allowed by weights_only
    status, stderr = _run_in_process(cli_main, ["--verbose", "convert-official", str(checkpoint), "--out",
                                                str(tmp_path / "c")], capsys)
    assert status == 2 and stderr.startswith("error: ") and "weights_only" in stderr
    assert len(stderr.strip().splitlines()) > 1  # the library's own explanation follows the one line


BUILDER_CASES = [
    (build_codecfake_plus.main, "stats --protocols /nonexistent/protocols", "/nonexistent/protocols"),
    (build_codecfake_plus.main, "build --audio-root /nonexistent/a --protocols /nonexistent/p --out {tmp}/o",
     "/nonexistent/a"),
    (build_codecfake_plus.main, "push --dataset-dir /nonexistent/d --repo-id me/x", "/nonexistent/d"),
    (build_codecfake_plus.main, "build --protocols p --out o --shard-rows lots", "lots"),
    (build_codecfake_mini.main, "{tmp}/mini --speech-dir /nonexistent/speech", "/nonexistent/speech"),
    (train_zoo.main, "--codecs no_such_codec --work {tmp}/zoo", "no_such_codec"),
]


@pytest.mark.parametrize("main, template, names", BUILDER_CASES,
                         ids=["stats-protocols", "build-audio", "push-folder", "bad-value", "mini-speech", "zoo"])
def test_the_dataset_builders_and_the_zoo_trainer_fail_in_one_line(main, template, names, tmp_path, capsys):
    argv = template.format(tmp=tmp_path).split()
    _assert_one_line_error(*_run_in_process(main, argv, capsys), names)


@pytest.mark.slow
def test_the_space_refuses_to_start_on_a_model_that_does_not_resolve(tmp_path):
    env = {**os.environ, "CODECTRACE_MODEL": "/nonexistent/model", "HF_HUB_OFFLINE": "1",
           "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONPATH": str(ROOT)}
    result = subprocess.run([sys.executable, str(ROOT / "space" / "app.py")], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=300)
    _assert_one_line_error(result.returncode, result.stderr, "CODECTRACE_MODEL=/nonexistent/model")


@pytest.mark.parametrize("reference", ["", "  "])
def test_an_empty_reference_is_refused_not_read_as_the_current_folder(reference):
    with pytest.raises(ResolveError, match="no model given"):
        resolve_model(reference)
    with pytest.raises(ResolveError, match="no dataset given"):
        load_split(reference, "aux", "train")


def test_a_resolvable_folder_passes_unchanged(folders):
    assert resolve_model(str(folders["model"])) == str(folders["model"])
    assert check_model_folder(folders["model"]) == folders["model"]


def test_a_missing_dataset_names_the_folder_and_the_hub(tmp_path):
    with pytest.raises(ResolveError, match="no folder .*nothing.*Hub dataset id could not be fetched"):
        load_split(str(tmp_path / "nothing"), "aux", "train")


def test_one_line_folds_messages_and_names_files():
    assert one_line(ValueError("first\n  second")) == "first second"
    assert one_line(FileNotFoundError(2, "No such file or directory", "/x/y")) == "/x/y: No such file or directory"
