"""Unknown-source scoring: distances from the training classes, a threshold from validation data, and every consumer
(pipeline, CLI, Space) saying 'unknown' instead of a confident wrong class when a clip is far from them."""

import csv
import json

import numpy as np
import pytest
import torch
from transformers import pipeline

import codectrace  # noqa: F401  (registers the pipeline task)
import modeling_codectrace as mc
from codectrace.cli import main as cli_main
from codectrace.hub import load_tracer, save_model_folder
from codectrace.testing import tiny_config
from codectrace.unknown_source import ACCEPT_QUANTILE, HeadStatistics, UnknownSourceScorer, fit_head, separation

RATE = 16000


def _clusters(rng, rows=400, dim=8):
    labels = rng.integers(0, 3, rows)
    centres = 5.0 * np.eye(3, dim)
    return centres[labels] + rng.standard_normal((rows, dim)), labels


def test_points_near_a_training_class_are_close_and_points_far_from_all_are_far():
    rng = np.random.default_rng(0)
    embeddings, labels = _clusters(rng)
    head = fit_head(embeddings, labels)
    near = head.distances(5.0 * np.eye(3, 8) + 0.1 * rng.standard_normal((3, 8)))
    far = head.distances(np.full((3, 8), 20.0))
    assert near.max() < 2.0 < 10.0 < far.min()


def test_the_threshold_accepts_the_chosen_share_of_validation_clips():
    rng = np.random.default_rng(1)
    train, labels = _clusters(rng)
    validation, _ = _clusters(rng, rows=2000)
    scorer = UnknownSourceScorer.fit({"vq": train}, {"vq": labels}, {"vq": validation})
    accepted = (scorer.scores({"vq": validation})["vq"] <= scorer.heads["vq"].threshold).mean()
    assert accepted == pytest.approx(ACCEPT_QUANTILE, abs=0.005)


def test_a_scorer_saves_and_loads_unchanged(tmp_path):
    rng = np.random.default_rng(2)
    train, labels = _clusters(rng)
    scorer = UnknownSourceScorer.fit({"vq": train, "dec": train}, {"vq": labels, "dec": labels},
                                     {"vq": train, "dec": train})
    scorer.save(tmp_path)
    loaded = UnknownSourceScorer.load(tmp_path)
    assert list(loaded.heads) == ["vq", "dec"]
    for task in ("vq", "dec"):
        np.testing.assert_array_equal(loaded.heads[task].precision, scorer.heads[task].precision)
        assert loaded.heads[task].threshold == scorer.heads[task].threshold
    assert UnknownSourceScorer.load(tmp_path / "nothing") is None


def test_separation_is_perfect_for_scores_that_do_not_overlap():
    result = separation(np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0]))
    assert result == {"auroc": 1.0, "fpr_at_95_tpr": 0.0}
    assert separation(np.array([1.0, 2.0]), np.array([1.0, 2.0]))["auroc"] == 0.5


def test_one_class_is_not_enough_to_fit():
    with pytest.raises(ValueError, match="at least two classes"):
        fit_head(np.zeros((4, 2)), np.zeros(4, dtype=int))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    model = mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000, head_type="stats_pooling")).eval()
    save_model_folder(model, mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    return folder


def _scorer_with_threshold(model_dir, threshold: float) -> UnknownSourceScorer:
    hidden = mc.CodecTraceConfig.from_pretrained(model_dir).hidden_size
    head = HeadStatistics(means=np.zeros((2, 2 * hidden)), precision=np.eye(2 * hidden), threshold=threshold)
    return UnknownSourceScorer({"vq": head, "aux": head, "dec": head})


@pytest.mark.parametrize("threshold, known", [(1e9, True), (0.0, False)])
def test_the_pipeline_says_per_head_whether_the_clip_is_known(model_dir, threshold, known):
    tracer = pipeline("codec-source-tracing", model=str(model_dir), precision="fp32",
                      unknown_source=_scorer_with_threshold(model_dir, threshold))
    clip = (0.1 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)
    heads = tracer(clip, sampling_rate=RATE)["heads"]
    assert heads["bin"]["known"] is None and heads["bin"]["label"] in ("spoof", "bonafide")
    for task in ("vq", "aux", "dec"):
        assert heads[task]["known"] is known and heads[task]["unknown_score"] > 0
        assert heads[task]["probability"] == max(tracer(clip, sampling_rate=RATE)[task].values())


def test_a_model_folder_without_a_scorer_says_nothing_about_unknown(model_dir):
    heads = load_tracer(str(model_dir), precision="fp32")(np.zeros(RATE, np.float32) + 0.01, sampling_rate=RATE)
    assert all(answer["known"] is None and answer["unknown_score"] is None for answer in heads["heads"].values())


def test_the_cli_label_column_reads_unknown_for_a_clip_far_from_every_class(model_dir, tmp_path):
    import shutil

    import soundfile as sf

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    _scorer_with_threshold(model_dir, 0.0).save(folder)
    sf.write(tmp_path / "clip.wav", 0.1 * np.random.default_rng(0).standard_normal(RATE), RATE)
    assert cli_main(["trace", str(tmp_path / "clip.wav"), "--model", str(folder), "--precision", "fp32",
                     "--output", str(tmp_path / "rows.csv"), "--quiet"]) == 0
    row = next(csv.DictReader(open(tmp_path / "rows.csv")))
    assert row["vq_label"] == row["aux_label"] == row["dec_label"] == "unknown"
    assert row["bin_label"] in ("spoof", "bonafide") and float(row["vq_unknown_score"]) > 0
    assert json.loads((folder / "config.json").read_text())["model_type"] == "codectrace"
