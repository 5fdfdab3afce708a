"""The codec-source-tracing pipeline (windows, aggregation, conversions) and the `codectrace trace` command."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from transformers import pipeline

import modeling_codectrace as mc
from codectrace import CodecSourceTracingPipeline
from codectrace.cli import main as cli_main
from codectrace.hub import load_tracer, save_model_folder
from codectrace.pipeline import window_starts
from codectrace.silence import speech_span
from codectrace.testing import tiny_config


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    model = mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000)).eval()
    folder = tmp_path_factory.mktemp("model")
    save_model_folder(model, mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    return folder


@pytest.fixture(scope="module")
def tracer(model_dir):
    return load_tracer(str(model_dir), precision="fp32")  # exact comparisons with the fp32 model below


@pytest.fixture
def speechlike():
    rng = np.random.default_rng(0)
    t = np.arange(int(2.3 * 16000)) / 16000
    return (0.3 * np.sin(2 * np.pi * 180 * t) * (1 + np.sin(2 * np.pi * 3 * t)) + 0.02 * rng.standard_normal(t.size)
            ).astype(np.float32)


def test_window_starts_cover_the_clip_and_end_aligned():
    assert window_starts(100, 40, 40) == [0, 40, 60]
    assert window_starts(120, 40, 40) == [0, 40, 80]
    assert window_starts(30, 40, 40) == [0]
    assert window_starts(100, 40, 20) == [0, 20, 40, 60]


def test_pipeline_output_has_score_decision_and_each_head(tracer, speechlike):
    result = tracer(speechlike, sampling_rate=16000)
    assert set(result) >= {"spoof_score", "decision", "num_windows", "duration_seconds", "bin", "vq", "aux", "dec"}
    assert result["decision"] in ("spoof", "bonafide") and 0 <= result["spoof_score"] <= 1
    assert result["spoof_score"] == pytest.approx(result["bin"]["spoof"])
    assert sum(result["vq"].values()) == pytest.approx(1, abs=1e-5)
    assert result["num_windows"] == 3 and result["duration_seconds"] == pytest.approx(2.3)


def test_long_audio_aggregation_equals_a_manual_loop(tracer, model_dir, speechlike):
    result = tracer(speechlike, sampling_rate=16000, return_windows=True, hop_seconds=0.5, window_batch_size=2)
    model = mc.CodecTraceForSourceTracing.from_pretrained(model_dir)
    starts = window_starts(speechlike.size, 16000, 8000)
    probabilities = []
    with torch.no_grad():
        for start in starts:
            logits = model(torch.from_numpy(speechlike[start : start + 16000])[None]).bin_logits
            probabilities.append(torch.softmax(logits, -1)[0, 0].item())
    assert [w["start_seconds"] for w in result["windows"]] == [s / 16000 for s in starts]
    assert [w["spoof_score"] for w in result["windows"]] == pytest.approx(probabilities, abs=1e-5)
    assert result["spoof_score"] == pytest.approx(np.mean(probabilities), abs=1e-5)


def test_short_audio_is_repeat_padded_like_training(tracer, model_dir):
    clip = np.random.default_rng(1).standard_normal(7000).astype(np.float32) * 0.1
    result = tracer(clip, sampling_rate=16000)
    extractor = mc.CodecTraceFeatureExtractor(chunk_samples=16000)
    model = mc.CodecTraceForSourceTracing.from_pretrained(model_dir)
    with torch.no_grad():
        expected = torch.softmax(model(**extractor(clip)).bin_logits, -1)[0, 0].item()
    assert result["num_windows"] == 1 and result["spoof_score"] == pytest.approx(expected, abs=1e-5)


def test_stereo_44k_and_8k_files_match_their_16k_mono_version(tracer, tmp_path, speechlike):
    sf.write(tmp_path / "mono16.wav", speechlike, 16000, subtype="FLOAT")
    reference = tracer(str(tmp_path / "mono16.wav"))
    for rate in (44100, 8000):
        resampled = AF.resample(torch.from_numpy(speechlike), 16000, rate).numpy()
        sf.write(tmp_path / f"s{rate}.wav", np.stack([resampled, resampled], axis=1), rate, subtype="FLOAT")
        other = tracer(str(tmp_path / f"s{rate}.wav"))
        assert other["decision"] == reference["decision"]
        tolerance = 0.05 if rate == 8000 else 0.02  # 8 kHz loses everything above 4 kHz
        assert other["spoof_score"] == pytest.approx(reference["spoof_score"], abs=tolerance)


def test_streamed_file_and_in_memory_array_agree(tracer, tmp_path, speechlike):
    sf.write(tmp_path / "a.wav", speechlike, 16000, subtype="FLOAT")
    from_file = tracer(str(tmp_path / "a.wav"), hop_seconds=0.7)
    from_array = tracer(speechlike, sampling_rate=16000, hop_seconds=0.7)
    assert from_file["spoof_score"] == pytest.approx(from_array["spoof_score"], abs=1e-6)


def test_the_default_cpu_path_keeps_decisions_and_probabilities_of_fp32(model_dir, tracer, speechlike):
    default = load_tracer(str(model_dir))
    assert default.resolved_precision in ("int8", "bf16", "fp32")
    fast = default(speechlike, sampling_rate=16000)
    exact = tracer(speechlike, sampling_rate=16000)
    assert fast["decision"] == exact["decision"]
    for task in ("bin", "vq", "aux", "dec"):
        for label, probability in exact[task].items():
            assert fast[task][label] == pytest.approx(probability, abs=0.02)


def test_saving_never_writes_a_quantised_model(model_dir):
    from safetensors.torch import load_file

    tensors = load_file(model_dir / "model.safetensors")
    assert all(t.dtype == torch.float32 for t in tensors.values() if t.is_floating_point())


def test_pipeline_task_resolves_by_name_after_install_without_a_remote_code_prompt(model_dir, speechlike,
                                                                                  monkeypatch):
    def no_prompt(*args):
        raise AssertionError("transformers asked whether to run remote code")

    monkeypatch.setattr("builtins.input", no_prompt)
    tracer = pipeline("codec-source-tracing", model=str(model_dir))
    assert isinstance(tracer, CodecSourceTracingPipeline)
    assert tracer(speechlike, sampling_rate=16000)["decision"] in ("spoof", "bonafide")


def test_audio_classification_pipeline_uses_the_bin_head(model_dir, tracer, speechlike):
    classifier = pipeline("audio-classification", model=str(model_dir), trust_remote_code=True)  # fp32
    scores = {row["label"]: row["score"] for row in classifier(speechlike[:16000])}
    assert set(scores) == {"spoof", "bonafide"}
    assert scores["spoof"] == pytest.approx(tracer(speechlike[:16000], sampling_rate=16000)["spoof_score"], abs=1e-4)


def test_pipeline_refuses_bad_audio_clearly(tracer, tmp_path):
    (tmp_path / "notes.txt").write_text("not audio")
    with pytest.raises(ValueError, match="could not be decoded as audio"):
        tracer(str(tmp_path / "notes.txt"))
    with pytest.raises(ValueError, match="longer than the maximum"):
        tracer(np.zeros(48000, dtype=np.float32), sampling_rate=16000, max_seconds=2)


def _write_folder(tmp_path, speechlike):
    folder = tmp_path / "clips"
    (folder / "sub").mkdir(parents=True)
    sf.write(folder / "a.wav", speechlike, 16000)
    sf.write(folder / "sub" / "b.flac", speechlike[:20000], 16000)
    (folder / "corrupt.wav").write_bytes(b"RIFF....WAVEfmt garbage")
    (folder / "readme.txt").write_text("ignored: not an audio extension")
    return folder


@pytest.mark.parametrize("suffix", ["csv", "jsonl"])
def test_cli_on_a_folder_with_a_corrupt_file(model_dir, tmp_path, speechlike, suffix, capsys):
    folder = _write_folder(tmp_path, speechlike)
    output = tmp_path / f"results.{suffix}"
    status = cli_main(["trace", str(folder), "--model", str(model_dir), "--output", str(output),
                       "--scores-dir", str(tmp_path / "scores"), "--quiet"])
    assert status == 1
    if suffix == "csv":
        rows = list(csv.DictReader(open(output)))
    else:
        rows = [json.loads(line) for line in output.read_text().splitlines()]
    by_name = {row["path"].split("/")[-1]: row for row in rows}
    assert set(by_name) == {"a.wav", "b.flac", "corrupt.wav"}
    assert by_name["a.wav"]["status"] == "ok" and float(by_name["a.wav"]["spoof_score"]) >= 0
    assert int(by_name["a.wav"]["num_windows"]) == 3 and "vq_mvq" in by_name["a.wav"]
    assert by_name["corrupt.wav"]["status"] == "error" and "decoded" in by_name["corrupt.wav"]["error"]
    assert not (tmp_path / f"results.{suffix}.partial").exists()
    assert "1 failed" in capsys.readouterr().err


def test_cli_score_files_follow_the_official_format(model_dir, tmp_path, speechlike):
    folder = _write_folder(tmp_path, speechlike)
    cli_main(["trace", str(folder / "a.wav"), str(folder / "sub"), "--model", str(model_dir), "--scores-dir",
              str(tmp_path / "scores"), "--quiet"])
    bin_rows = [line.split() for line in (tmp_path / "scores" / "scores_bin.txt").read_text().splitlines()]
    vq_rows = [line.split() for line in (tmp_path / "scores" / "scores_vq.txt").read_text().splitlines()]
    dec_rows = [line.split() for line in (tmp_path / "scores" / "scores_dec.txt").read_text().splitlines()]
    assert [r[0] for r in bin_rows] == ["a", "b"] and all(len(r) == 2 for r in bin_rows)
    assert all(len(r) == 5 for r in vq_rows) and all(len(r) == 4 for r in dec_rows)


def test_cli_succeeds_when_every_file_works(model_dir, tmp_path, speechlike):
    sf.write(tmp_path / "ok.wav", speechlike, 16000)
    assert cli_main(["trace", str(tmp_path / "ok.wav"), "--model", str(model_dir), "--quiet"]) == 0


def test_cli_help_documents_every_subcommand(capsys):
    with pytest.raises(SystemExit):
        cli_main(["--help"])
    out = capsys.readouterr().out
    assert "trace" in out and "convert-official" in out and "evaluate" in out


@pytest.mark.slow
def test_a_folder_alone_serves_audio_classification_and_names_the_package_for_the_tracer(model_dir, tmp_path):
    """Where neither package is installed, the folder's own code (the model core) serves transformers' built-in
    audio-classification pipeline (the BIN head); the codec-source-tracing task is this package's, and asking the
    folder for it says so."""
    import os
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["modeling_codectrace"] = None
        sys.modules["codectrace"] = None
        import numpy as np
        from transformers import pipeline
        clip = (np.random.default_rng(0).standard_normal(20000) * 0.1).astype("float32")
        classifier = pipeline("audio-classification", model={str(model_dir)!r}, trust_remote_code=True)
        assert type(classifier.model).__module__.startswith("transformers_modules"), type(classifier.model)
        labels = {{row["label"] for row in classifier(clip)}}
        assert labels == {{"spoof", "bonafide"}}, labels
        try:
            pipeline("codec-source-tracing", model={str(model_dir)!r}, trust_remote_code=True)
        except ImportError as error:
            assert "codectrace package" in str(error) and "pip install ." in str(error), error
        else:
            raise AssertionError("the tracer loaded without its package")
        print("REMOTE-PIPELINE-OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env.update(HF_HOME=str(tmp_path / "hf"), HF_HUB_OFFLINE="1")
    result = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE-PIPELINE-OK" in result.stdout
    assert not (model_dir / "audio.py").exists()  # no audio I/O travels with the model


def test_with_the_package_installed_remote_code_hands_over_its_pipeline(model_dir, speechlike):
    tracer = pipeline("codec-source-tracing", model=str(model_dir), trust_remote_code=True, precision="fp32")
    assert isinstance(tracer, CodecSourceTracingPipeline)
    assert tracer(speechlike, sampling_rate=16000)["decision"] in ("spoof", "bonafide")


def test_trace_many_gives_each_clips_own_result_in_order_and_passes_failures_through(tracer, speechlike):
    clips = [speechlike[:8000], speechlike, ValueError("could not be read"), np.full(4000, np.nan, np.float32),
             speechlike[:30000]]
    inputs = [c if isinstance(c, Exception) else {"array": c, "sampling_rate": 16000} for c in clips]
    results = list(tracer.trace_many(inputs, window_batch_size=3, hop_seconds=0.5))
    assert len(results) == 5 and results[2] is inputs[2] and isinstance(results[3], ValueError)
    for clip, result in zip(clips, results):
        if not isinstance(clip, Exception) and not np.isnan(clip).any():
            alone = tracer(clip, sampling_rate=16000, window_batch_size=3, hop_seconds=0.5)
            assert result["num_windows"] == alone["num_windows"]
            assert result["spoof_score"] == pytest.approx(alone["spoof_score"], abs=1e-5)
            for task in ("vq", "aux", "dec"):
                assert result[task] == pytest.approx(alone[task], abs=1e-5)


def test_trace_many_fills_batches_across_clips_and_never_exceeds_them(tracer, speechlike, monkeypatch):
    sizes = []
    step = tracer._model_step

    def counted(values):
        sizes.append(values.shape[0])
        return step(values)

    monkeypatch.setattr(tracer, "_model_step", counted)
    clips = [{"array": speechlike[:16000], "sampling_rate": 16000} for _ in range(7)]
    assert len(list(tracer.trace_many(clips, window_batch_size=3))) == 7
    assert sizes == [3, 3, 1]


def test_trace_many_batches_only_within_groups_when_asked(tracer, speechlike, monkeypatch):
    sizes = []
    step = tracer._model_step
    monkeypatch.setattr(tracer, "_model_step", lambda values: sizes.append(values.shape[0]) or step(values))
    clips = [{"array": speechlike[:16000], "sampling_rate": 16000} for _ in range(5)]
    assert len(list(tracer.trace_many(clips, window_batch_size=3, group_size=2))) == 5
    assert sizes == [2, 2, 1]


def test_trace_many_takes_the_arguments_given_at_construction(model_dir, speechlike):
    constructed = load_tracer(str(model_dir), precision="fp32", hop_seconds=0.5)
    many = next(constructed.trace_many([{"array": speechlike, "sampling_rate": 16000}]))
    assert many["num_windows"] == constructed(speechlike, sampling_rate=16000)["num_windows"] == 4


def test_an_unknown_argument_is_refused_with_the_accepted_ones(tracer, speechlike):
    with pytest.raises(ValueError, match=r"unknown argument\(s\) \['hop_second'\].*hop_seconds"):
        tracer(speechlike, sampling_rate=16000, hop_second=0.5)


# -- leading and trailing silence ------------------------------------------------------------------------------------

@pytest.fixture
def in_silence(speechlike):
    """The speech-like clip between 1 s of digital silence before it and 0.5 s after."""
    return np.concatenate([np.zeros(16000), speechlike, np.zeros(8000)]).astype(np.float32)


def test_trimming_traces_only_the_span_and_says_which(tracer, in_silence, speechlike):
    result = tracer(in_silence, sampling_rate=16000, trim_silence_db=40)
    start, end = (round(s * 16000) for s in result["analysed_seconds"])
    alone = tracer(in_silence[start:end], sampling_rate=16000)
    assert 16000 <= start < 16100 and 16000 + speechlike.size - 100 < end <= 16000 + speechlike.size
    assert result["spoof_score"] == pytest.approx(alone["spoof_score"], abs=1e-6)
    assert result["duration_seconds"] == pytest.approx(in_silence.size / 16000)


def test_without_trimming_the_whole_recording_is_analysed(tracer, in_silence):
    result = tracer(in_silence, sampling_rate=16000)
    assert result["analysed_seconds"] == [0.0, pytest.approx(in_silence.size / 16000)]


def test_times_of_a_trimmed_clip_are_those_of_the_recording(tracer, in_silence):
    result = tracer(in_silence, sampling_rate=16000, trim_silence_db=40, return_windows=True, return_segments=True,
                    threshold=0.0)  # every frame spoof: one segment over the whole analysed span
    start, end = result["analysed_seconds"]
    assert result["windows"][0]["start_seconds"] == pytest.approx(start)
    assert result["windows"][-1]["end_seconds"] == pytest.approx(end)
    assert [(s["start_seconds"], s["end_seconds"]) for s in result["segments"]] == [
        (pytest.approx(start), pytest.approx(end))]


def test_a_streamed_file_is_trimmed_like_the_array(tracer, in_silence, tmp_path):
    path = tmp_path / "in_silence.wav"
    sf.write(path, in_silence, 16000, subtype="FLOAT")
    streamed = tracer(str(path), trim_silence_db=40)
    in_memory = tracer(in_silence, sampling_rate=16000, trim_silence_db=40)
    assert streamed["analysed_seconds"] == pytest.approx(in_memory["analysed_seconds"])
    assert streamed["spoof_score"] == pytest.approx(in_memory["spoof_score"], abs=1e-6)


def test_the_models_config_sets_the_default_and_false_turns_it_off(tracer, in_silence, monkeypatch):
    monkeypatch.setattr(tracer.model.config, "trim_silence_db", 40.0)
    assert tracer(in_silence, sampling_rate=16000)["analysed_seconds"][0] >= 1.0
    assert tracer(in_silence, sampling_rate=16000, trim_silence_db=False)["analysed_seconds"][0] == 0.0


def test_a_bad_trimming_level_is_refused(tracer, in_silence):
    with pytest.raises(ValueError, match="trim_silence_db must be a positive number"):
        tracer(in_silence, sampling_rate=16000, trim_silence_db=-40)


def test_cli_trims_silence_when_asked_and_refuses_a_bad_level(model_dir, tmp_path, in_silence, capsys):
    span = slice(*speech_span(in_silence, 40))
    rows = {}
    for name, audio, extra in (("in_silence", in_silence, ["--trim-silence-db", "40"]), ("span", in_silence[span], [])):
        sf.write(tmp_path / f"{name}.wav", audio, 16000, subtype="FLOAT")
        out = tmp_path / f"{name}.jsonl"
        assert cli_main(["trace", str(tmp_path / f"{name}.wav"), "--model", str(model_dir), "--quiet", "--precision",
                         "fp32", "--output", str(out), *extra]) == 0
        rows[name] = json.loads(out.read_text())
    assert rows["in_silence"]["spoof_score"] == pytest.approx(rows["span"]["spoof_score"], abs=1e-6)
    with pytest.raises(SystemExit):
        cli_main(["trace", str(tmp_path / "span.wav"), "--model", str(model_dir), "--trim-silence-db", "-3"])
    assert "positive number of dB (e.g. 40) or `off`" in capsys.readouterr().err
