"""Every kind of bad input gets a result with a warning or a clear refusal, through the pipeline and the CLI."""

import csv

import numpy as np
import pytest
import soundfile as sf
from transformers import pipeline

import codectrace  # noqa: F401  (registers the pipeline task)
from codectrace.cli import main as cli_main
from codectrace.input_checks import AudioStats

RATE = 16000


@pytest.fixture(scope="module")
def tracer(tiny_m1_folder):
    return pipeline("codec-source-tracing", model=str(tiny_m1_folder), precision="fp32")


def _speechlike(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * RATE)) / RATE
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.float32)


def _write(path, samples) -> str:
    sf.write(path, samples, RATE, subtype="FLOAT")
    return str(path)


REFUSED = {  # kind -> (how to make the file, what the refusal says)
    "empty": (lambda p: _write(p, np.zeros(0, np.float32)), "contains no samples"),
    "one sample": (lambda p: _write(p, np.full(1, 0.1, np.float32)), "only 1 samples"),
    "a header with 2 ms of audio": (lambda p: _write(p, 0.1 * np.ones(32, np.float32)), "only 32 samples (2.0 ms)"),
    "NaN": (lambda p: _write(p, np.full(RATE, np.nan, np.float32)), "NaN or Inf"),
    "text named .wav": (lambda p: p.write_text("not audio at all") and str(p), "could not be decoded as audio"),
}
WARNED = {  # kind -> (samples, the start of the warning)
    "0.2 s": (_speechlike(0.2), "short audio: 0.20 s"),
    "3 s of digital silence": (np.zeros(3 * RATE, np.float32), "(near-)silence"),
    "clipped noise": (np.clip(3 * np.random.default_rng(0).standard_normal(2 * RATE), -1, 1).astype(np.float32),
                      "heavy clipping"),
}


@pytest.mark.parametrize("kind", REFUSED)
def test_unusable_audio_is_refused_with_what_was_wrong(kind, tracer, tmp_path):
    make, says = REFUSED[kind]
    with pytest.raises(ValueError, match=says.replace("(", r"\(").replace(")", r"\)")):
        tracer(make(tmp_path / "clip.wav"))


@pytest.mark.parametrize("kind", WARNED)
def test_poor_audio_gets_a_result_with_a_warning(kind, tracer, tmp_path):
    samples, warning = WARNED[kind]
    result = tracer(_write(tmp_path / "clip.wav", samples))
    assert result["decision"] in ("spoof", "bonafide")
    assert any(w.startswith(warning) for w in result["warnings"]), result["warnings"]


def test_a_window_of_mostly_padding_is_said(tracer):
    kinds = [w.split(":")[0] for w in tracer(_speechlike(0.45), sampling_rate=RATE)["warnings"]]  # a 1-s window
    assert kinds == ["short audio", "mostly repeat-padding"]
    assert tracer(_speechlike(0.6), sampling_rate=RATE)["warnings"] == []  # more audio than padding


def test_clean_speech_of_a_few_windows_gets_no_warning(tracer):
    assert tracer(_speechlike(2.5), sampling_rate=RATE, hop_seconds=0.5)["warnings"] == []


def test_overlapping_windows_count_each_sample_once():
    stats = AudioStats()
    clip = np.ones(100)
    for start in (0, 40, 60):  # windows of 40 samples, the last one aligned to the end
        stats.add(start, clip[start : start + 40])
    assert stats.samples == 100 and stats.clipped == 100


def test_the_cli_writes_the_warnings_in_a_column(tiny_m1_folder, tmp_path):
    _write(tmp_path / "silence.wav", np.zeros(2 * RATE, np.float32))
    assert cli_main(["trace", str(tmp_path / "silence.wav"), "--model", str(tiny_m1_folder), "--output",
                     str(tmp_path / "rows.csv"), "--quiet"]) == 0
    row = next(csv.DictReader(open(tmp_path / "rows.csv")))
    assert row["status"] == "ok" and row["warnings"].startswith("(near-)silence")
