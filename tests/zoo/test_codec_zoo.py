"""The CodecFake-mini codec zoo: taxonomy coverage, architectures, shipped weights, quality, resumable training."""

import json
from collections import Counter
from dataclasses import replace

import numpy as np
import pytest
import torch

from codec_zoo import train_zoo
from codec_zoo.losses import log_mel_l1, mu_law_roundtrip
from codec_zoo.modules import TIME_BODIES, ISTFTDecoder, NeuralCodec, TimeDecoder
from codec_zoo.specs import CODEC_CLASSES, MIN_CODECS_PER_CLASS, SPLITS, ZOO, CodecSpec, codecs_of, coverage_problems
from codec_zoo.speech import PHONES, Utterance, phone_track
from codec_zoo.store import MAX_FILE_BYTES, load_codec, save_codec, shipped_codecs, weights_path


def test_every_class_has_three_training_one_validation_and_one_test_codec():
    assert coverage_problems() == [] and MIN_CODECS_PER_CLASS == {"train": 3, "validation": 1, "test": 1}
    for task, classes in CODEC_CLASSES.items():
        for split, needed in MIN_CODECS_PER_CLASS.items():
            counts = Counter(getattr(s, task) for s in codecs_of(split))
            assert all(counts[c] >= needed for c in classes), (task, split)


def test_coverage_check_reports_a_missing_test_class():
    without = tuple(s for s in ZOO if not (s.split == "test" and s.dec == "time"))
    assert any("dec=time: 0 test codecs" in p for p in coverage_problems(without))


def test_coverage_check_reports_a_body_borrowed_from_another_split():
    borrowed = tuple(replace(s, decoder_body="a") if s.split == "test" and s.dec == "time" else s for s in ZOO)
    assert any("not a test body" in p for p in coverage_problems(borrowed))


def test_files_of_the_first_zoo_read_held_out_as_validation():
    data = {**json.loads(ZOO[0].to_json()), "heldout": True}
    data.pop("split")
    assert CodecSpec.from_dict(data).split == "validation"


def test_instances_differ_in_seed_and_design():
    assert len({s.seed for s in ZOO}) == len(ZOO)
    designs = Counter((s.vq, s.aux, s.dec, s.head_stride, s.codebook_size, s.levels, s.fsq_levels, s.n_fft,
                       s.decoder_strides, s.decoder_channels) for s in ZOO)
    assert max(designs.values()) == 1
    assert len({s.frame_rate for s in ZOO}) >= 3


@pytest.mark.parametrize("spec", ZOO, ids=lambda s: s.name)
def test_architecture_follows_the_taxonomy(spec):
    model = NeuralCodec(spec, num_speakers=5, num_phones=len(PHONES))
    quantizer = type(model.quantizer.quantizer).__name__
    assert quantizer == {"mvq": "ResidualVQ", "svq": "VectorQuantize", "sq": "FSQ"}[spec.vq]
    assert isinstance(model.decoder, TimeDecoder if spec.dec == "time" else ISTFTDecoder)
    assert hasattr(model, "phone_head") == (spec.aux == "semantic")
    assert hasattr(model, "speaker_classifier") == (spec.aux == "disentangle")


def test_unknown_classes_are_refused_with_the_accepted_values():
    spec = ZOO[0]
    with pytest.raises(ValueError, match="accepted: mvq, svq, sq"):
        NeuralCodec(replace(spec, vq="lfq"))
    with pytest.raises(ValueError, match="accepted: time, freq"):
        NeuralCodec(replace(spec, dec="hybrid"))


def test_every_codec_ships_small_fp16_weights_that_resynthesise():
    assert shipped_codecs() == [s.name for s in ZOO]
    x = 0.1 * torch.randn(21337, generator=torch.Generator().manual_seed(0))
    for spec in ZOO:
        path = weights_path(spec.name)
        assert path.stat().st_size <= MAX_FILE_BYTES, spec.name
        codec = load_codec(spec.name)
        assert codec.spec == spec
        y = codec.resynthesize(x)
        assert y.shape == x.shape and torch.isfinite(y).all()
        if spec.dec == "time":  # tanh output; inverse-STFT output is clipped when written (build_codecfake_mini)
            assert y.abs().max() <= 1


def test_saved_codec_reloads_with_the_same_output(tmp_path):
    spec = replace(ZOO[5], name="roundtrip")
    torch.manual_seed(0)
    model = NeuralCodec(spec, num_speakers=3, num_phones=len(PHONES)).eval()
    x = 0.1 * torch.randn(1, 8000)
    model(x)  # initialises the codebooks
    path = save_codec(model, tmp_path / "roundtrip.safetensors", {"num_speakers": 3, "num_phones": len(PHONES)})
    reloaded = load_codec(path)
    assert torch.allclose(reloaded.resynthesize(x), model.resynthesize(x), atol=0.02)


def test_missing_weights_name_the_training_command(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_zoo"):
        load_codec("rvq4x512_t100", tmp_path)


def test_quality_measure_is_zero_for_identity_and_orders_mu_law_depths():
    t = torch.arange(16000) / 16000
    x = 0.5 * torch.sin(2 * np.pi * 220 * t) * torch.sin(2 * np.pi * 3 * t)
    assert log_mel_l1(x, x) == 0
    assert log_mel_l1(mu_law_roundtrip(x, 8), x) < log_mel_l1(mu_law_roundtrip(x, 4), x)


def test_phone_track_labels_each_80_sample_step_with_the_covering_phone(tmp_path):
    segs = tmp_path / "a.segs"
    segs.write_text("#\n0.0100 100 pau\n0.0200 100 dh\n0.0300 100 xx\n")
    track = phone_track(segs, 480)  # 6 steps of 5 ms
    assert [PHONES[i] for i in track] == ["pau", "pau", "dh", "dh", "other", "other"]


def _toy_utterances(count: int = 6) -> list[Utterance]:
    rng = np.random.default_rng(0)
    return [Utterance((0.1 * rng.standard_normal(20000)).astype(np.float32), i % 3,
                      rng.integers(0, len(PHONES), 250) if i % 2 else None) for i in range(count)]


def test_interrupted_codec_training_resumes_to_the_same_weights(tmp_path, monkeypatch):
    spec = CodecSpec("toy", "mvq", "semantic", "freq", seed=3, levels=2, codebook_size=16, steps=4, batch_size=2,
                     decoder_channels=32, decoder_blocks=1)
    utterances = _toy_utterances()
    monkeypatch.setattr(train_zoo, "CHECKPOINT_EVERY", 2)
    straight, _ = train_zoo.train_codec(spec, utterances, 3, tmp_path / "straight")

    calls = {"n": 0}
    original = train_zoo.CropSampler.batch

    def dies_after_three(self, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 4:
            raise KeyboardInterrupt
        return original(self, *args, **kwargs)

    monkeypatch.setattr(train_zoo.CropSampler, "batch", dies_after_three)
    with pytest.raises(KeyboardInterrupt):
        train_zoo.train_codec(spec, utterances, 3, tmp_path / "resumed")
    monkeypatch.setattr(train_zoo.CropSampler, "batch", original)
    resumed, record = train_zoo.train_codec(spec, utterances, 3, tmp_path / "resumed")
    assert record["step"] == 4 and [s for s, _ in record["losses"]] == [2, 4]
    for key, value in straight.state_dict().items():
        assert torch.allclose(value.float(), resumed.state_dict()[key].float()), key


def test_frozen_trunk_is_not_trained_and_features_replace_it(tmp_path):
    spec = CodecSpec("toy", "sq", "none", "freq", seed=1, steps=2, batch_size=2, decoder_channels=32,
                     decoder_blocks=1)
    utterances = _toy_utterances()
    trunk = NeuralCodec(spec).trunk.state_dict()
    features = train_zoo.trunk_features(trunk, utterances)
    model, _ = train_zoo.train_codec(spec, utterances, 3, tmp_path, trunk, features)
    assert all(torch.equal(model.trunk.state_dict()[k], v) for k, v in trunk.items())
    x = torch.from_numpy(utterances[0].audio[None])
    with torch.inference_mode():
        direct = model(x)["audio"]
        via_features = model(x, trunk_features=features[0][None])["audio"]
    assert torch.allclose(direct, via_features, atol=1e-5)


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_every_shipped_codec_beats_4_bit_mu_law_on_held_out_speech():
    from codec_zoo.quality import held_out_speech, measure

    speech = held_out_speech(utterances=1)
    results = measure(speech)
    bar = results["mu-law 4-bit"]["log_mel_l1"]
    worse = {name: r["log_mel_l1"] for name, r in results.items() if not name.startswith("mu-law")
             and r["log_mel_l1"] >= bar}
    assert not worse, f"codecs no better than 4-bit mu-law ({bar:.3f}): {worse}"


def test_no_decoder_body_is_shared_across_splits():
    bodies = {split: {s.decoder_body for s in codecs_of(split) if s.dec == "time"} for split in SPLITS}
    assert all(bodies.values())
    assert not (bodies["train"] & bodies["validation"] or bodies["train"] & bodies["test"]
                or bodies["validation"] & bodies["test"])


def test_training_time_codecs_span_three_bodies_of_different_shapes():
    # one shared body would let a tracer learn that body's traits as "time-domain"
    bodies = Counter(s.decoder_body for s in codecs_of("train") if s.dec == "time")
    assert len(bodies) >= 3 and min(bodies.values()) >= 1, bodies
    shapes = {(TIME_BODIES[b]["strides"], TIME_BODIES[b]["channels"]) for b in bodies}
    assert len(shapes) == len(bodies) and len({TIME_BODIES[b]["activation"] for b in bodies}) >= 2


def test_training_frequency_codecs_use_several_fft_sizes_and_hops():
    freq = [s for s in codecs_of("train") if s.dec == "freq"]
    assert len({s.n_fft for s in freq}) >= 3 and len({s.hop // s.istft_upsample for s in freq}) >= 3


@pytest.mark.parametrize("split", ["validation", "test"])
def test_each_split_ships_its_own_encoder_trunk(split):
    from safetensors.torch import load_file

    def trunk(spec):
        return {k: v for k, v in load_file(str(weights_path(spec.name))).items()
                if k.startswith("trunk.")}

    training = trunk(codecs_of("train")[0])
    assert all(torch.equal(training[k], v) for k, v in trunk(codecs_of("train")[-1]).items())  # one per split
    for spec in codecs_of(split):
        assert not any(torch.equal(training[k], v) for k, v in trunk(spec).items() if v.numel() > 1), spec.name


def test_a_time_codec_starts_from_its_pretrained_body(tmp_path):
    from codec_zoo.modules import BodyPretrainer

    spec = replace(next(s for s in codecs_of("train") if s.dec == "time"), name="toy", steps=1, batch_size=1,
                   learning_rate=0.0)
    torch.manual_seed(5)
    body = BodyPretrainer(spec.decoder_body).body.state_dict()
    model, _ = train_zoo.train_codec(spec, _toy_utterances(), 3, tmp_path, body_state=body)
    assert all(torch.equal(model.decoder.body.state_dict()[k], v) for k, v in body.items())


def test_preparing_a_work_folder_takes_the_shipped_trunk_and_embeds_every_utterance_once(tmp_path, monkeypatch):
    utterances = _toy_utterances()
    (tmp_path / "speech").mkdir()  # the training speech is there: nothing is synthesised
    monkeypatch.setattr(train_zoo, "load_training_speech", lambda folder: (utterances, ["s0", "s1", "s2"]))
    train_zoo.prepare_work(tmp_path, ["test"])
    trunk = torch.load(tmp_path / "trunk_test.pt", weights_only=False)
    assert trunk["record"]["from_weights"] == weights_path(codecs_of("test")[0].name).name  # not trained anew
    features = train_zoo.split_features(tmp_path, "test")
    assert len(features) == len(utterances)
    written = (tmp_path / "trunk_features_test.pt").stat().st_mtime_ns
    train_zoo.prepare_work(tmp_path, ["test"])
    assert (tmp_path / "trunk_features_test.pt").stat().st_mtime_ns == written
