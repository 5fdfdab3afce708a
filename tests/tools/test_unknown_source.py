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
from codectrace.input_checks import UNFAMILIAR_AUDIO
from codectrace.testing import tiny_config
from codectrace.unknown_source import (
    ACCEPT_QUANTILE,
    FILE_NAME,
    SCORES,
    NearestNeighbourHead,
    ScoredSet,
    UnknownSourceScorer,
    evaluate_unknown_source,
    find_scorer,
    fit_mahalanobis,
    fit_nearest_neighbours,
    separation,
    unit_rows,
)
from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS

RATE = 16000


def _clusters(rng, rows=400, dim=8):
    labels = rng.integers(0, 3, rows)
    centres = 5.0 * np.eye(3, dim)
    return centres[labels] + rng.standard_normal((rows, dim)), labels


def test_points_near_a_training_class_are_close_and_points_far_from_all_are_far():
    rng = np.random.default_rng(0)
    embeddings, labels = _clusters(rng)
    head = fit_mahalanobis(embeddings, labels)
    near = head.distances(5.0 * np.eye(3, 8) + 0.1 * rng.standard_normal((3, 8)))
    far = head.distances(np.full((3, 8), 20.0))
    assert near.max() < 2.0 < 10.0 < far.min()


def test_the_knn_score_is_the_cosine_distance_to_the_kth_nearest_training_embedding():
    angles = np.radians([0, 10, 20, 30, 90])
    head = NearestNeighbourHead(unit_rows(np.stack([np.cos(angles), np.sin(angles)], axis=1)), neighbours=3)
    # From angle 0 the 3rd nearest training row lies at 20 degrees; length does not count, only direction.
    np.testing.assert_allclose(head.distances(np.array([[5.0, 0.0], [0.1, 0.0]])), 1 - np.cos(np.radians(20)),
                               rtol=1e-6)
    assert head.distances(np.array([[-1.0, 0.0]]))[0] > 1.5  # opposite every training row


def test_k_larger_than_the_training_rows_uses_the_farthest_row():
    head = NearestNeighbourHead(unit_rows(np.array([[1.0, 0.0], [0.0, 1.0]])), neighbours=10)
    np.testing.assert_allclose(head.distances(np.array([[1.0, 0.0]])), [1.0], atol=1e-6)


@pytest.mark.parametrize("score", SCORES)
def test_the_threshold_accepts_the_chosen_share_of_validation_clips(score):
    rng = np.random.default_rng(1)
    train, labels = _clusters(rng)
    validation, _ = _clusters(rng, rows=2000)
    scorer = UnknownSourceScorer.fit({"vq": train}, {"vq": labels}, {"vq": validation}, score)
    accepted = (scorer.scores({"vq": validation})["vq"] <= scorer.heads["vq"].threshold).mean()
    assert accepted == pytest.approx(ACCEPT_QUANTILE, abs=0.005)


def test_an_unknown_score_name_is_refused_with_the_accepted_ones():
    rng = np.random.default_rng(1)
    train, labels = _clusters(rng)
    with pytest.raises(ValueError, match="knn"):
        UnknownSourceScorer.fit({"vq": train}, {"vq": labels}, {"vq": train}, "cosine")


@pytest.mark.parametrize("score", SCORES)
def test_a_scorer_saves_and_loads_unchanged(tmp_path, score):
    rng = np.random.default_rng(2)
    train, labels = _clusters(rng)
    scorer = UnknownSourceScorer.fit({"vq": train, "dec": train}, {"vq": labels, "dec": labels},
                                     {"vq": train, "dec": train}, score)
    scorer.save(tmp_path)
    loaded = UnknownSourceScorer.load(tmp_path)
    assert list(loaded.heads) == ["vq", "dec"] and loaded.score == score
    probe = rng.standard_normal((5, 8))
    for task in ("vq", "dec"):
        np.testing.assert_array_equal(loaded.heads[task].distances(probe), scorer.heads[task].distances(probe))
        assert loaded.heads[task].threshold == scorer.heads[task].threshold
    assert UnknownSourceScorer.load(tmp_path / "nothing") is None


def test_heads_fitted_on_the_same_embeddings_are_one_head_and_are_scored_once(tmp_path):
    rng = np.random.default_rng(5)
    train, labels = _clusters(rng)
    other, _ = _clusters(rng)
    scorer = UnknownSourceScorer.fit({"vq": train, "aux": train, "dec": other}, {t: labels for t in TAXONOMY_TASKS},
                                     {"vq": train, "aux": train, "dec": other})
    assert scorer.heads["vq"] is scorer.heads["aux"] and scorer.heads["dec"] is not scorer.heads["vq"]
    scorer.save(tmp_path)
    loaded = UnknownSourceScorer.load(tmp_path)
    assert loaded.heads["vq"] is loaded.heads["aux"] and loaded.heads["dec"] is not loaded.heads["vq"]
    probe = rng.standard_normal((4, 8))
    scores = scorer.scores({"vq": probe, "aux": probe, "dec": probe})
    assert scores["vq"] is scores["aux"]  # one computation for the shared head and the very same array
    np.testing.assert_array_equal(scorer.scores({"aux": probe.copy()})["aux"], scores["vq"])


def test_a_head_shared_by_several_tasks_is_stored_once(tmp_path):
    from safetensors.torch import load_file

    rng = np.random.default_rng(6)
    train, labels = _clusters(rng)
    scorer = UnknownSourceScorer.fit({t: train for t in TAXONOMY_TASKS}, {t: labels for t in TAXONOMY_TASKS},
                                     {t: train for t in TAXONOMY_TASKS})
    path = scorer.save(tmp_path)
    assert [name for name in load_file(str(path)) if name.endswith(".reference")] == ["vq.reference"]
    loaded = UnknownSourceScorer.load(tmp_path)
    assert list(loaded.heads) == list(TAXONOMY_TASKS)
    assert loaded.heads["vq"] is loaded.heads["aux"] is loaded.heads["dec"]


def test_a_scorer_saved_before_the_knn_score_loads_as_mahalanobis(tmp_path):
    from safetensors.torch import save_file

    save_file({"vq.means": torch.zeros(2, 3, dtype=torch.float64), "vq.precision": torch.eye(3, dtype=torch.float64),
               "vq.threshold": torch.tensor([1.0], dtype=torch.float64)}, str(tmp_path / FILE_NAME),
              metadata={"score": "mahalanobis, nearest class, shared covariance"})
    loaded = UnknownSourceScorer.load(tmp_path)
    assert loaded.score == "mahalanobis"
    np.testing.assert_allclose(loaded.scores({"vq": np.array([[3.0, 4.0, 0.0]])})["vq"], [5.0])


def test_separation_is_perfect_for_scores_that_do_not_overlap():
    result = separation(np.array([0.1, 0.2, 0.3]), np.array([1.0, 2.0]))
    assert result == {"auroc": 1.0, "fpr_at_95_tpr": 0.0}
    assert separation(np.array([1.0, 2.0]), np.array([1.0, 2.0]))["auroc"] == 0.5


def test_the_bin_head_is_fitted_too_when_its_embeddings_are_given():
    rng = np.random.default_rng(1)
    train, labels = _clusters(rng)
    validation, _ = _clusters(rng, rows=500)
    scorer = UnknownSourceScorer.fit({"bin": train, "vq": train}, {"bin": labels % 2, "vq": labels},
                                     {"bin": validation, "vq": validation})
    assert list(scorer.heads) == ["bin", "vq"] and scorer.known("bin", 0.0) and not scorer.known("bin", 9.0)


def test_the_unseen_codec_measurement_reads_the_taxonomy_heads_only():
    head = NearestNeighbourHead(unit_rows(np.eye(2)), neighbours=1, threshold=0.5)
    scored = ScoredSet({"bin": np.array([0.1, 0.9]), "vq": np.array([0.1, 0.9])},
                       {"bin": np.zeros((2, 2)), "vq": np.zeros((2, 4))},
                       {"bin": np.array([0, 0]), "vq": np.array([1, 2])})
    assert list(evaluate_unknown_source(UnknownSourceScorer({"bin": head, "vq": head}), scored, scored)) == ["vq"]


@pytest.mark.parametrize("fit", [fit_mahalanobis, fit_nearest_neighbours])
def test_one_class_is_not_enough_to_fit(fit):
    with pytest.raises(ValueError, match="at least two classes"):
        fit(np.zeros((4, 2)), np.zeros(4, dtype=int))


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    model = mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000, head_type="stats_pooling")).eval()
    save_model_folder(model, mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    return folder


def _scorer_with_threshold(model_dir, threshold: float) -> UnknownSourceScorer:
    hidden = mc.CodecTraceConfig.from_pretrained(model_dir).hidden_size
    reference = unit_rows(np.random.default_rng(3).standard_normal((20, 2 * hidden)))
    head = NearestNeighbourHead(reference, neighbours=5, threshold=threshold)
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


@pytest.mark.parametrize("threshold, warned", [(1e9, False), (0.0, True)])
def test_a_clip_far_from_all_the_training_audio_gets_the_unfamiliar_audio_warning(model_dir, threshold, warned):
    scorer = _scorer_with_threshold(model_dir, 1e9)
    scorer.heads["bin"] = NearestNeighbourHead(scorer.heads["vq"].reference, neighbours=5, threshold=threshold)
    tracer = pipeline("codec-source-tracing", model=str(model_dir), precision="fp32", unknown_source=scorer)
    clip = (0.1 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)
    result = tracer(clip, sampling_rate=RATE)
    assert (UNFAMILIAR_AUDIO in result["warnings"]) is warned and result["heads"]["bin"]["known"] is not warned
    assert result["heads"]["vq"]["known"] is True  # the codec heads answer for themselves


def test_a_scorer_without_a_bin_head_never_warns_of_unfamiliar_audio(model_dir):
    tracer = pipeline("codec-source-tracing", model=str(model_dir), precision="fp32",
                      unknown_source=_scorer_with_threshold(model_dir, 0.0))
    assert UNFAMILIAR_AUDIO not in tracer(np.full(2 * RATE, 0.05, np.float32), sampling_rate=RATE)["warnings"]


def test_a_clip_called_unknown_gets_the_unknown_temperature_and_its_spoof_score_stays(model_dir):
    model = mc.CodecTraceForSourceTracing.from_pretrained(model_dir).eval()
    model.config.calibration_temperatures = {"vq": 0.5, "aux": 0.5, "dec": 0.5}
    clip = (0.1 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)
    answers = {}
    for unknown_temperature in (None, 50.0):
        model.config.calibration_temperatures_unknown = unknown_temperature and {"vq": unknown_temperature}
        tracer = pipeline("codec-source-tracing", model=model, precision="fp32",
                          feature_extractor=mc.CodecTraceFeatureExtractor(chunk_samples=16000),
                          unknown_source=_scorer_with_threshold(model_dir, 0.0))
        answers[unknown_temperature] = tracer(clip, sampling_rate=RATE)
    sharp, flat = answers[None], answers[50.0]
    assert flat["heads"]["vq"]["probability"] < sharp["heads"]["vq"]["probability"]
    assert max(flat["vq"].values()) - min(flat["vq"].values()) < 0.05  # divided by 50: nearly uniform
    assert flat["heads"]["vq"]["label"] == sharp["heads"]["vq"]["label"]
    assert flat["aux"] == sharp["aux"] and flat["spoof_score"] == sharp["spoof_score"]


def test_a_model_folder_without_a_scorer_says_nothing_about_unknown(model_dir):
    heads = load_tracer(str(model_dir), precision="fp32")(np.zeros(RATE, np.float32) + 0.01, sampling_rate=RATE)
    assert all(answer["known"] is None and answer["unknown_score"] is None for answer in heads["heads"].values())


@pytest.fixture(scope="module")
def folder_with_scorer(model_dir, tmp_path_factory):
    import shutil

    folder = tmp_path_factory.mktemp("with_scorer") / "model"
    shutil.copytree(model_dir, folder)
    _scorer_with_threshold(model_dir, 0.0).save(folder)
    return folder


def _known_flags(tracer) -> dict:
    clip = (0.1 * np.random.default_rng(0).standard_normal(2 * RATE)).astype(np.float32)
    return {task: answer["known"] for task, answer in tracer(clip, sampling_rate=RATE)["heads"].items()}


def test_the_pipeline_finds_the_scorer_saved_beside_a_model_folder(folder_with_scorer):
    tracer = pipeline("codec-source-tracing", model=str(folder_with_scorer), precision="fp32")
    assert _known_flags(tracer) == {"bin": None, "vq": False, "aux": False, "dec": False}


def test_the_pipeline_finds_the_scorer_of_a_model_object_loaded_from_a_folder(folder_with_scorer):
    model = mc.CodecTraceForSourceTracing.from_pretrained(folder_with_scorer)
    tracer = pipeline("codec-source-tracing", model=model, precision="fp32",
                      feature_extractor=mc.CodecTraceFeatureExtractor(chunk_samples=16000))
    assert _known_flags(tracer)["vq"] is False


@pytest.mark.parametrize("off", [None, False])
def test_the_scorer_beside_a_model_can_be_turned_off(folder_with_scorer, off):
    tracer = pipeline("codec-source-tracing", model=str(folder_with_scorer), precision="fp32", unknown_source=off)
    assert set(_known_flags(tracer).values()) == {None}


def test_anything_else_as_the_scorer_is_refused_naming_what_is_accepted(model_dir):
    with pytest.raises(ValueError, match="unknown_source must be 'auto', None, False or an UnknownSourceScorer"):
        pipeline("codec-source-tracing", model=str(model_dir), precision="fp32", unknown_source="yes")


def test_a_hub_id_without_a_cached_scorer_gives_none_offline():
    assert find_scorer("nobody/not-a-model") is None and find_scorer("") is None


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
