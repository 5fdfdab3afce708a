"""Scoring a dataset's whole clips the pipeline's way (`codectrace.whole_clip`)."""

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from datasets import Audio, ClassLabel, Dataset, Features, Value

import modeling_codectrace as mc
from codectrace.hub import load_tracer, save_model_folder
from codectrace.input_checks import UNFAMILIAR_AUDIO
from codectrace.testing import tiny_config
from codectrace.unknown_source import NearestNeighbourHead, UnknownSourceScorer, unit_rows
from codectrace.whole_clip import count_verdicts, trace_probabilities, whole_clip_metrics
from modeling_codectrace.configuration_codectrace import TASK_LABELS

RATE = 16000


@pytest.fixture(scope="module")
def tracer(tmp_path_factory):
    torch.manual_seed(0)
    model = mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=RATE)).eval()
    folder = tmp_path_factory.mktemp("model")
    save_model_folder(model, mc.CodecTraceFeatureExtractor(chunk_samples=RATE), folder)
    return load_tracer(str(folder), precision="fp32")


def wav_bytes(samples: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, samples, RATE, format="WAV")
    return buffer.getvalue()


def clips_dataset(durations: list[float]) -> Dataset:
    """Noise clips of the given durations (seconds), undecoded, labelled spoof / mvq / none / time."""
    rng = np.random.default_rng(0)
    audio = [{"bytes": wav_bytes((0.1 * rng.standard_normal(int(d * RATE))).astype(np.float32)), "path": None}
             for d in durations]
    features = Features({"audio": Audio(decode=False), **{task: ClassLabel(names=list(TASK_LABELS[task]))
                                                          for task in ("bin", "vq", "aux", "dec")},
                         "utt_id": Value("string")})
    return Dataset.from_dict({"audio": audio, "bin": [0] * len(durations), "vq": [1] * len(durations),
                              "aux": [1] * len(durations), "dec": [1] * len(durations),
                              "utt_id": [f"c{i}" for i in range(len(durations))]}, features=features)


def test_each_row_gets_the_pipelines_answer_for_its_whole_clip(tracer):
    data = clips_dataset([2.5, 1.0])
    probabilities, failures = trace_probabilities(tracer, data)
    assert failures == []
    for index, audio in enumerate(data["audio"]):
        result = tracer(audio)
        assert probabilities["bin"][index] == pytest.approx([result["spoof_score"], 1 - result["spoof_score"]])
        for task in ("vq", "aux", "dec"):
            assert probabilities[task][index] == pytest.approx([result[task][label] for label in TASK_LABELS[task]])
    assert tracer(data["audio"][0])["num_windows"] == 3  # the whole clip, not its first window


def test_a_clip_the_pipeline_refuses_is_recorded_and_the_others_are_scored(tracer):
    data = clips_dataset([1.5, 0.005, 1.2])
    probabilities, failures = trace_probabilities(tracer, data)
    assert [index for index, _ in failures] == [1] and "ms" in failures[0][1]
    assert np.isnan(probabilities["vq"][1]).all()
    assert np.isfinite(probabilities["vq"][[0, 2]]).all()


def test_metrics_leave_refused_clips_out(tracer):
    data = clips_dataset([1.5, 0.005, 1.2])
    probabilities, _ = trace_probabilities(tracer, data)
    metrics = whole_clip_metrics(probabilities, data)
    assert set(metrics) == {"bin", "vq", "aux", "dec"}
    assert metrics["vq"]["count"] == 2
    expected_accuracy = np.mean(probabilities["vq"][[0, 2]].argmax(axis=1) == 1)
    assert metrics["vq"]["accuracy"] == pytest.approx(expected_accuracy)


def test_unknown_scores_are_the_pipelines_and_nan_where_a_clip_is_refused(tracer, monkeypatch):
    with torch.inference_mode():
        size = tracer.model(input_values=torch.zeros(1, RATE)).embeddings["vq"].shape[-1]
    head = NearestNeighbourHead(unit_rows(np.random.default_rng(3).standard_normal((20, size))), 5, 0.0)
    monkeypatch.setattr(tracer, "unknown_source", UnknownSourceScorer({"vq": head, "aux": head, "dec": head}))
    data = clips_dataset([1.5, 0.005, 1.2])
    unknown = {}
    trace_probabilities(tracer, data, unknown_scores=unknown)
    assert set(unknown) == {"vq", "aux", "dec"} and np.isnan(unknown["vq"][1])
    for index in (0, 2):
        assert unknown["aux"][index] == pytest.approx(tracer(data["audio"][index])["heads"]["aux"]["unknown_score"])


def test_verdicts_are_counted_from_the_pipelines_answers_and_refused_clips_left_out(tracer):
    rng = np.random.default_rng(1)
    clips = [{"array": (0.1 * rng.standard_normal(int(d * RATE))).astype(np.float32), "sampling_rate": RATE}
             for d in (1.5, 0.005, 2.0, 1.1)]
    answers = [tracer(clip) for clip in (clips[0], clips[2], clips[3])]
    spoof = [a["decision"] == "spoof" for a in answers]
    warned = [UNFAMILIAR_AUDIO in a["warnings"] for a in answers]
    assert count_verdicts(tracer, clips) == {
        "clips": 3, "spoof": sum(spoof), "warned": sum(warned),
        "spoof_warned": sum(s and w for s, w in zip(spoof, warned))}
