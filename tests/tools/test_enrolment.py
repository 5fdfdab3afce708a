"""Enrolled generators: a store of a few clips' embeddings per generator beside a model, the codec identity the clips
are compared in, the attribution of a clip to the nearest generator (or none), the enrolled taxonomy answering for the
heads, and the `codectrace enroll` command."""

import csv
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch
from transformers import pipeline

import codectrace  # noqa: F401  (registers the pipeline task)
import modeling_codectrace as mc
from codectrace.cli import main as cli_main
from codectrace.codec_identity import (
    FRAME,
    IDENTITY_FILE_NAME,
    CodecIdentity,
    SpectrumStatistics,
    find_identity,
    spectrum_features,
)
from codectrace.enrolment import (
    FILE_NAME,
    FORMAT_VERSION,
    MAX_DISTANCE,
    RAW_SPACE,
    Attribution,
    EnrolmentStore,
    corrected_heads,
    find_store,
)
from codectrace.files import partial_path
from codectrace.hub import save_model_folder
from codectrace.testing import tiny_config
from codectrace.unknown_source import NearestNeighbourHead, UnknownSourceScorer, unit_rows

RATE = 16000


def _store(max_distance=0.2) -> EnrolmentStore:
    store = EnrolmentStore(max_distance=max_distance)
    store.add("alpha", np.array([[1.0, 0.0, 0.0], [0.9, 0.1, 0.0]]), {"vq": "mvq"})
    store.add("beta", np.array([[0.0, 1.0, 0.0]]), {"vq": "sq", "dec": "freq"})
    return store


# -- the store -----------------------------------------------------------------------------------------------------

def test_a_clip_is_attributed_to_the_nearest_enrolled_generator():
    store = _store()
    attribution = store.attribute(store.distances(np.array([[0.1, 1.0, 0.0]]))[0])
    assert attribution.name == "beta" and attribution.taxonomy == {"vq": "sq", "dec": "freq"}
    assert attribution.distance == pytest.approx(1 - 1 / np.sqrt(1.01), abs=1e-6)  # float32 embeddings


def test_a_clip_farther_than_the_maximum_distance_from_every_generator_is_attributed_to_none():
    store = _store()
    attribution = store.attribute(store.distances(np.array([[0.0, 0.0, 1.0]]))[0])
    assert attribution.name is None and attribution.distance == pytest.approx(1.0)


def test_a_clip_nearer_to_the_training_data_than_to_a_generator_stays_with_the_training_codecs():
    store = _store()
    distances = store.distances(np.array([[0.0, 1.0, 0.05]]))[0]
    assert store.attribute(distances, training_distance=1.0).name == "beta"
    assert store.attribute(distances, training_distance=0.0005).name is None


def test_an_attribution_in_a_codec_identity_has_a_score_between_zero_and_one_and_in_the_heads_space_none():
    store = _store()
    assert store.attribute(store.distances(np.array([[0.0, 1.0, 0.0]]))[0], training_distance=0.5).score is None
    store.space = "identity-0123456789ab"
    attribution = store.attribute(store.distances(np.array([[0.0, 1.0, 0.0]]))[0], training_distance=0.5)
    assert 0.0 < attribution.score < 1.0 and attribution.as_answer()["score"] == attribution.score


def test_the_attribution_score_reads_the_distance_and_how_much_nearer_than_the_training_data_and_other_generators():
    from codectrace.enrolment import score_features

    np.testing.assert_allclose(score_features(np.array([0.5, 0.1, 0.3]), 0.4), [0.1, 0.3, 0.2])
    np.testing.assert_allclose(score_features(np.array([0.1]), 0.4), [0.1, 0.3, 1.9])


def test_enrolling_a_name_again_adds_its_clips():
    store = _store()
    store.add("beta", np.array([[0.0, 2.0, 0.0]]), {"vq": "sq"})
    assert len(store.generators["beta"].embeddings) == 2 and store.generators["beta"].taxonomy["dec"] == "freq"
    np.testing.assert_allclose(np.linalg.norm(store.generators["beta"].embeddings, axis=1), 1.0, rtol=1e-6)


def test_enrolling_a_name_again_with_another_taxonomy_is_refused():
    with pytest.raises(ValueError, match="'beta' is enrolled with another taxonomy"):
        _store().add("beta", np.ones((1, 3)), {"vq": "mvq"})


@pytest.mark.parametrize("taxonomy, message", [({"vq": "real"}, r"--vq must be one of \['mvq', 'svq', 'sq'\]"),
                                               ({"bin": "spoof"}, "taxonomy task must be one of")])
def test_a_taxonomy_outside_the_codec_classes_is_refused_naming_the_accepted_ones(taxonomy, message):
    with pytest.raises(ValueError, match=message):
        EnrolmentStore().add("gamma", np.ones((1, 3)), taxonomy)


@pytest.mark.parametrize("name", ["", " lead", "a/b", "x" * 65])
def test_a_name_that_cannot_be_shown_or_stored_is_refused(name):
    with pytest.raises(ValueError, match="generator name must be"):
        EnrolmentStore().add(name, np.ones((1, 3)))


def test_embeddings_of_another_size_than_the_stores_are_refused():
    with pytest.raises(ValueError, match="do not match the store's 3"):
        _store().add("gamma", np.ones((1, 4)))


def test_removing_a_generator_that_is_not_enrolled_names_the_enrolled_ones():
    store = _store()
    store.remove("alpha")
    with pytest.raises(ValueError, match=r"no generator 'alpha' is enrolled; enrolled: \['beta'\]"):
        store.remove("alpha")


def test_a_store_saves_and_loads_unchanged(tmp_path):
    store = _store(max_distance=0.123)
    store.save(tmp_path)
    loaded = EnrolmentStore.load(tmp_path)
    assert loaded.max_distance == 0.123 and loaded.task == store.task and list(loaded.generators) == ["alpha", "beta"]
    for name, generator in store.generators.items():
        np.testing.assert_array_equal(loaded.generators[name].embeddings, generator.embeddings)
        assert loaded.generators[name].taxonomy == generator.taxonomy
    assert not partial_path(tmp_path / FILE_NAME).exists()


def test_a_store_from_a_newer_codectrace_is_refused_with_what_to_do(tmp_path):
    from safetensors.torch import load_file, save_file

    _store().save(tmp_path)
    path = tmp_path / FILE_NAME
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        metadata = handle.metadata()
    save_file(load_file(str(path)), str(path), {**metadata, "version": str(FORMAT_VERSION + 1)})
    with pytest.raises(ValueError, match="written by a newer codectrace.*upgrade"):
        EnrolmentStore.load(tmp_path)


def test_a_store_without_its_own_maximum_distance_uses_the_one_chosen_for_its_kind_of_space(tmp_path):
    store = EnrolmentStore()
    assert store.distance_limit == MAX_DISTANCE[RAW_SPACE]
    store.adopt_space("identity-0123456789ab")
    assert store.distance_limit == MAX_DISTANCE["identity"]
    store.save(tmp_path)
    assert EnrolmentStore.load(tmp_path).max_distance is None


def test_a_folder_without_a_store_has_no_enrolled_generators(tmp_path):
    assert EnrolmentStore.load(tmp_path) is None and find_store(str(tmp_path)) is None and find_store("") is None


# -- the codec identity ---------------------------------------------------------------------------------------------

def _noise(seed: int, seconds: float = 2.0, tilt: float = 0.0) -> np.ndarray:
    """White noise, or noise whose spectrum falls (tilt > 0) like a low-passed codec's output."""
    white = np.random.default_rng(seed).standard_normal(int(seconds * RATE))
    return (0.1 * (white + tilt * np.concatenate([[0.0], white[:-1]]))).astype(np.float32)


def test_the_identity_features_of_a_clip_fed_window_by_window_are_those_of_the_whole_clip():
    clip, window, hop = _noise(0, 23.3), 32000, 15000  # overlapping windows, the last one short; several batches
    statistics = SpectrumStatistics()
    for start in range(0, len(clip), hop):
        statistics.add(start, clip[start : start + window])
    np.testing.assert_allclose(statistics.features(), spectrum_features(clip), atol=1e-4)


def test_the_identity_features_do_not_depend_on_the_clips_level():
    clip = _noise(1)
    np.testing.assert_allclose(spectrum_features(0.05 * clip), spectrum_features(clip), atol=1e-3)


def test_the_identity_features_tell_a_spectral_tilt_apart():
    flat, tilted = spectrum_features(_noise(2)), spectrum_features(_noise(3, tilt=0.9))
    bins = len(flat) // 2
    assert tilted[bins // 8] - tilted[bins - 10] > flat[bins // 8] - flat[bins - 10] + 2.0


def test_a_clip_shorter_than_one_spectrum_frame_has_no_identity_features():
    assert spectrum_features(_noise(0)[: FRAME - 1]) is None and spectrum_features(_noise(0)[:FRAME]) is not None


def _sources(rng, per_source=60, dim=12):
    """Three sources told apart along the first two dimensions only; the others carry large shared noise."""
    centres = np.zeros((3, dim))
    centres[1, 0] = centres[2, 1] = 1.0
    noise = rng.standard_normal((3 * per_source, dim)) * np.r_[0.05, 0.05, np.full(dim - 2, 2.0)]
    names = np.repeat(["a", "b", "c"], per_source)
    return centres[np.repeat(np.arange(3), per_source)] + noise + 3.0 * np.eye(dim)[2], names


def test_the_discriminant_map_keeps_the_directions_that_tell_sources_apart(rng):
    embeddings, names = _sources(rng)
    identity = CodecIdentity.fit(embeddings, names)
    assert identity.projection.shape == (12, 2) and identity.sources == ["a", "b", "c"]
    mapped = identity(embeddings)
    nearest = np.argmax(mapped @ identity.centroids.T, axis=1)
    assert (np.array(identity.sources)[nearest] == names).mean() > 0.95
    raw = CodecIdentity.fit(embeddings, names, discriminant=False)
    assert (np.array(raw.sources)[np.argmax(raw(embeddings) @ raw.centroids.T, axis=1)] == names).mean() < 0.9


def test_a_clip_at_a_training_sources_centroid_is_at_distance_zero_from_the_training_data(rng):
    embeddings, names = _sources(rng)
    identity = CodecIdentity.fit(embeddings, names)
    np.testing.assert_allclose(identity.training_distances(identity.centroids), 0.0, atol=1e-5)


def test_a_codec_identity_needs_two_sources(rng):
    with pytest.raises(ValueError, match="at least two sources"):
        CodecIdentity.fit(rng.standard_normal((5, 4)), ["a"] * 5)


def test_a_codec_identity_saves_and_loads_unchanged(rng, tmp_path):
    identity = CodecIdentity.fit(*_sources(rng))
    identity.save(tmp_path)
    loaded = CodecIdentity.load(tmp_path)
    assert loaded.sources == identity.sources and loaded.space == identity.space
    np.testing.assert_array_equal(loaded.centroids, identity.centroids)
    assert CodecIdentity.load(tmp_path / "nothing") is None


def test_a_codec_identity_of_an_older_codectrace_is_set_aside_with_how_to_fit_it_again(rng, tmp_path):
    from safetensors.torch import load_file, save_file

    CodecIdentity.fit(*_sources(rng)).save(tmp_path)
    path = tmp_path / IDENTITY_FILE_NAME
    save_file(load_file(str(path)), str(path), {"format": "codectrace-codec-identity", "version": "1",
                                                "sources": '["a", "b", "c"]'})
    with pytest.warns(UserWarning, match="enroll --model FOLDER --fit-identity"):
        assert find_identity(str(tmp_path)) is None


def test_generators_enrolled_in_another_space_are_refused_with_what_to_do():
    store = _store()
    with pytest.raises(ValueError, match="enrol them again"):
        store.adopt_space("identity-0123456789ab")
    empty = EnrolmentStore()
    empty.adopt_space("identity-0123456789ab")
    assert empty.space == "identity-0123456789ab"


# -- the enrolled taxonomy in the heads' answers ------------------------------------------------------------------

def _heads(known):
    return {"bin": {"label": "spoof", "probability": 0.9, "known": None},
            "vq": {"label": "mvq", "probability": 0.6, "known": known},
            "dec": {"label": "time", "probability": 0.7, "known": known}}


DISTRIBUTIONS = {"bin": {"spoof": 0.9, "bonafide": 0.1}, "vq": {"real": 0.1, "mvq": 0.6, "svq": 0.2, "sq": 0.1},
                 "dec": {"real": 0.1, "time": 0.7, "freq": 0.2}}


def test_a_head_that_calls_an_attributed_clip_unknown_answers_with_the_enrolled_class():
    heads = corrected_heads(_heads(False), DISTRIBUTIONS, Attribution("beta", 0.1, {"vq": "sq"}, every_head=False))
    assert heads["vq"] == {"label": "sq", "probability": 0.1, "known": False, "enrolled": "beta"}
    assert heads["dec"] == _heads(False)["dec"]  # no enrolled DEC class: the head's own answer


def test_without_every_head_a_head_that_knows_the_clip_keeps_its_answer_even_when_the_clip_is_attributed():
    attribution = Attribution("beta", 0.1, {"vq": "sq"}, every_head=False)
    assert corrected_heads(_heads(True), DISTRIBUTIONS, attribution) == _heads(True)


def test_an_attribution_for_every_head_answers_with_the_enrolled_class_even_where_the_head_knows_the_clip():
    heads = corrected_heads(_heads(True), DISTRIBUTIONS, Attribution("beta", 0.1, {"vq": "sq"}, every_head=True))
    assert heads["vq"]["label"] == "sq" and heads["vq"]["enrolled"] == "beta"


# -- the pipeline and the command -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("model")
    model = mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000, head_type="stats_pooling")).eval()
    save_model_folder(model, mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    return folder


def _clip(seed: int, seconds: float = 2.0) -> np.ndarray:
    return (0.1 * np.random.default_rng(seed).standard_normal(int(seconds * RATE))).astype(np.float32)


def _all_unknown_scorer(model_dir) -> UnknownSourceScorer:
    hidden = mc.CodecTraceConfig.from_pretrained(model_dir).hidden_size
    head = NearestNeighbourHead(unit_rows(np.random.default_rng(3).standard_normal((20, 2 * hidden))), 5, 0.0)
    return UnknownSourceScorer({"vq": head, "aux": head, "dec": head})


def test_the_pipeline_attributes_a_clip_to_the_generator_enrolled_from_it(model_dir):
    tracer = pipeline("codec-source-tracing", model=str(model_dir), precision="fp32", unknown_source=None)
    embedding = tracer(_clip(0), sampling_rate=RATE, return_embedding=True)["embedding"]
    store = EnrolmentStore()
    store.add("gen-A", np.array([embedding]), {"vq": "sq"})
    tracer.enrolment = store
    generator = tracer(_clip(0), sampling_rate=RATE)["generator"]
    assert generator["name"] == "gen-A" and generator["distance"] == pytest.approx(0.0, abs=1e-5)


def test_with_a_codec_identity_beside_the_model_clips_are_compared_by_their_mapped_identity_features(model_dir,
                                                                                                    tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    clips = [_noise(seed, 3.3, tilt=0.9 * (seed % 2)) for seed in range(6)]
    identity = CodecIdentity.fit(np.array([spectrum_features(c) for c in clips]), ["a", "b"] * 3)
    identity.save(folder)
    tracer = pipeline("codec-source-tracing", model=str(folder), precision="fp32", unknown_source=None)
    assert tracer.identity_space == identity.space
    for hop in (None, 0.5):  # however the clip is windowed
        mapped = tracer(clips[0], sampling_rate=RATE, return_embedding=True, hop_seconds=hop)["embedding"]
        np.testing.assert_allclose(mapped, identity(spectrum_features(clips[0])[None])[0], atol=1e-4)


def test_identity_features_cost_nothing_unless_a_clip_is_compared_with_generators_or_its_embedding_is_asked(
        model_dir, tmp_path, monkeypatch):
    import codectrace.codec_identity as codec_identity

    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    clips = [_noise(seed, tilt=0.9 * (seed % 2)) for seed in range(4)]
    CodecIdentity.fit(np.array([spectrum_features(c) for c in clips]), ["a", "b"] * 2).save(folder)
    tracer = pipeline("codec-source-tracing", model=str(folder), precision="fp32", unknown_source=None)
    calls = []
    original = codec_identity.SpectrumStatistics.add
    monkeypatch.setattr(codec_identity.SpectrumStatistics, "add",
                        lambda self, *arguments: calls.append(1) or original(self, *arguments))
    tracer(clips[0], sampling_rate=RATE)
    assert calls == []
    tracer(clips[0], sampling_rate=RATE, return_embedding=True)
    assert calls


def test_without_enrolled_generators_the_answer_names_none(model_dir):
    tracer = pipeline("codec-source-tracing", model=str(model_dir), precision="fp32")
    assert tracer(_clip(0), sampling_rate=RATE)["generator"] is None


def test_anything_else_as_the_store_is_refused_naming_what_is_accepted(model_dir):
    with pytest.raises(ValueError, match="enrolment must be 'auto', None, False or an EnrolmentStore"):
        pipeline("codec-source-tracing", model=str(model_dir), precision="fp32", enrolment="yes")


@pytest.fixture
def folder_and_clips(model_dir, tmp_path):
    folder = tmp_path / "model"
    shutil.copytree(model_dir, folder)
    _all_unknown_scorer(model_dir).save(folder)
    clips = tmp_path / "clips"
    clips.mkdir()
    for seed in range(3):
        sf.write(clips / f"gen_{seed}.wav", _clip(seed), RATE)
    return folder, clips


def test_enroll_writes_the_store_and_trace_then_names_the_generator_and_its_classes(folder_and_clips, tmp_path):
    folder, clips = folder_and_clips
    assert cli_main(["enroll", str(clips), "--model", str(folder), "--name", "NewGen", "--vq", "sq",
                     "--dec", "freq", "--precision", "fp32"]) == 0
    assert list(EnrolmentStore.load(folder).generators) == ["NewGen"]
    assert cli_main(["trace", str(clips / "gen_0.wav"), "--model", str(folder), "--precision", "fp32",
                     "--output", str(tmp_path / "rows.csv"), "--quiet"]) == 0
    row = next(csv.DictReader(open(tmp_path / "rows.csv")))
    assert row["generator"] == "NewGen" and float(row["generator_distance"]) < 0.2
    assert (row["vq_label"], row["dec_label"], row["aux_label"]) == ("sq", "freq", "unknown")


def test_enroll_lists_and_removes_generators(folder_and_clips, capsys):
    folder, clips = folder_and_clips
    cli_main(["enroll", str(clips), "--model", str(folder), "--name", "NewGen", "--aux", "semantic",
              "--precision", "fp32"])
    capsys.readouterr()
    assert cli_main(["enroll", "--model", str(folder), "--list"]) == 0
    assert "| NewGen | 3 | ? | semantic | ? |" in capsys.readouterr().out
    assert cli_main(["enroll", "--model", str(folder), "--remove", "NewGen"]) == 0
    assert EnrolmentStore.load(folder).generators == {}


def test_enroll_notes_clips_that_lie_nearer_to_a_training_source_than_to_the_generator(folder_and_clips, tmp_path,
                                                                                     capsys):
    folder, _ = folder_and_clips
    sources = [_noise(seed, tilt=0.9 * (seed % 2)) for seed in range(10, 16)]
    CodecIdentity.fit(np.array([spectrum_features(c) for c in sources]), ["a", "b"] * 3).save(folder)
    clips = tmp_path / "like_a"
    clips.mkdir()
    for seed in range(3):  # white noise, like training source "a"
        sf.write(clips / f"clip{seed}.wav", _noise(20 + seed), RATE)
    assert cli_main(["enroll", str(clips), "--model", str(folder), "--name", "LikeA", "--precision", "fp32"]) == 0
    assert "note: 3 of the clips lie close to the training codecs" in capsys.readouterr().err


def test_enroll_refuses_a_clip_too_short_to_tell_its_codec_in_one_line_and_enrols_the_others(folder_and_clips, tmp_path,
                                                                                          capsys):
    folder, clips = folder_and_clips
    sources = [_noise(seed, tilt=0.9 * (seed % 2)) for seed in range(10, 16)]
    CodecIdentity.fit(np.array([spectrum_features(c) for c in sources]), ["a", "b"] * 3).save(folder)
    sf.write(clips / "tiny.wav", _noise(0)[: FRAME // 2], RATE)
    assert cli_main(["enroll", str(clips), "--model", str(folder), "--name", "Gen", "--precision", "fp32"]) == 1
    assert "tiny.wav: too short to tell which codec made it" in capsys.readouterr().err
    assert len(EnrolmentStore.load(folder).generators["Gen"].embeddings) == 3


def test_enroll_fits_the_codec_identity_on_a_built_datasets_training_split(folder_and_clips, built):
    folder, _ = folder_and_clips
    assert cli_main(["enroll", "--model", str(folder), "--fit-identity", str(built)]) == 0
    identity = CodecIdentity.load(folder)
    assert len(identity.sources) >= 2
    assert pipeline("codec-source-tracing", model=str(folder), precision="fp32").identity_space == identity.space


@pytest.mark.parametrize("arguments, message", [
    (["clips", "--model", "not-a-folder", "--name", "x"], "needs a local model folder"),
    (["--model", "MODEL"], "give clips with --name to enrol, or --remove NAME, or --list, or --fit-identity"),
    (["--model", "MODEL", "--fit-identity", "no-such-dataset"], "cannot load config 'aux' split 'train'"),
    (["CLIPS", "--model", "MODEL"], "--name is needed"),
    (["CLIPS", "--model", "MODEL", "--name", "x", "--vq", "real"], "invalid choice: 'real'"),
])
def test_enroll_refuses_what_it_cannot_do_in_one_line(folder_and_clips, capsys, arguments, message):
    folder, clips = folder_and_clips
    arguments = [str(folder) if a == "MODEL" else str(clips) if a == "CLIPS" else a for a in arguments]
    assert _status(["enroll", *arguments]) == 2
    assert message in capsys.readouterr().err


def _status(arguments) -> int:
    """The command's exit status, whether it returns it or argparse exits with it."""
    try:
        return cli_main(arguments)
    except SystemExit as exit_:
        return exit_.code
