"""`feature_encoder="stft_phase"`: a fixed STFT (log power + phase-advance deviation) in place of the first conv."""

import math

import pytest
import torch

import modeling_codectrace as mc
from codectrace.presets import backbone_config
from modeling_codectrace.stft_phase import StftPhaseFeatureEncoder


def _model(seed: int = 0, **overrides) -> mc.CodecTraceForSourceTracing:
    torch.manual_seed(seed)
    settings = dict(backbone_config=backbone_config("stft-tiny"),
                    feature_encoder="stft_phase", head_type="stats_pooling", use_weighted_layer_sum=True,
                    chunk_samples=16000)
    return mc.CodecTraceForSourceTracing(mc.CodecTraceConfig(**{**settings, **overrides})).eval()


def _tone(bin_index: float, samples: int = 16000, n_fft: int = 512) -> torch.Tensor:
    t = torch.arange(samples, dtype=torch.float64)
    return torch.sin(2 * math.pi * bin_index / n_fft * t).float()[None]


def test_it_replaces_the_conv_feature_encoder_and_keeps_the_50_hz_frame_count():
    model = _model()
    assert isinstance(model.wav2vec2.feature_extractor, StftPhaseFeatureEncoder)
    frames = model.wav2vec2(torch.zeros(1, 32000)).last_hidden_state.shape[1]
    expected = model.wav2vec2._get_feat_extract_output_lengths(torch.tensor(32000))
    assert frames == int(expected) == 98  # (32000 - 512) // 160 + 1 = 197 STFT frames -> (197 - 2) // 2 + 1


def test_its_size_and_hop_are_config_fields_that_set_the_backbones_frame_geometry():
    backbone = backbone_config("stft-tiny")
    model = _model(backbone_config=backbone, stft_n_fft=400, stft_hop_length=100)
    encoder = model.wav2vec2.feature_extractor
    assert (encoder.n_fft, encoder.hop) == (400, 100) and encoder.projection.in_channels == 2 * 201
    assert list(model.config.backbone_config.conv_kernel[:1]) == [400] and backbone.conv_kernel[0] == 512
    frames = model.wav2vec2(torch.zeros(1, 16000)).last_hidden_state.shape[1]
    assert frames == int(model.wav2vec2._get_feat_extract_output_lengths(torch.tensor(16000))) == 78


def test_without_the_fields_it_reads_the_backbones_first_conv_as_older_folders_did():
    config = _model().config
    assert (config.stft_n_fft, config.stft_hop_length) == (512, 160)


def test_stft_fields_are_refused_with_the_conv_front_end():
    with pytest.raises(ValueError, match="apply to feature_encoder=.stft_phase. only"):
        mc.CodecTraceConfig(stft_n_fft=512)


def test_a_steady_sinusoid_at_a_bin_centre_has_no_phase_deviation():
    features = _model().wav2vec2.feature_extractor.stft_features(_tone(40))
    bins = 257
    assert features.shape == (1, 2 * bins, 97)
    assert features[0, bins + 40, 1:].abs().max() < 1e-3
    assert features[0, 40].mean() > features[0, 100].mean() + 1.0  # the tone's bin holds the power


def test_noise_has_a_phase_deviation_far_from_a_steady_tone():
    encoder = _model().wav2vec2.feature_extractor
    noise = torch.randn(1, 16000, generator=torch.Generator().manual_seed(0))
    deviation = encoder.stft_features(noise)[0, 257:, 1:]
    assert 0.0 <= float(deviation.min()) and float(deviation.max()) <= 1.0
    assert float(deviation[1:-1].mean()) > 0.2 > float(encoder.stft_features(_tone(40))[0, 257 + 40, 1:].mean())


def test_padded_samples_are_ignored_given_an_attention_mask():
    model = _model()
    waveforms = 0.1 * torch.randn(2, 16000, generator=torch.Generator().manual_seed(1))
    mask = torch.ones(2, 16000, dtype=torch.long)
    mask[1, 9600:] = 0
    with torch.no_grad():
        padded = model(waveforms, attention_mask=mask).dec_logits[1]
        alone = model(waveforms[1:2, :9600]).dec_logits[0]
    assert torch.allclose(padded, alone, atol=1e-5)


def test_the_learned_projection_trains_and_freezes_with_the_feature_encoder():
    model = _model().train()
    waveforms = 0.1 * torch.randn(2, 16000)
    model(waveforms, dec_labels=torch.tensor([1, 2])).loss.backward()
    assert model.wav2vec2.feature_extractor.projection.weight.grad.abs().sum() > 0
    model.freeze_feature_encoder()
    assert not any(p.requires_grad for p in model.wav2vec2.feature_extractor.parameters())


def test_it_saves_and_reloads_with_its_outputs(tmp_path):
    model = _model(seed=3)
    model.save_pretrained(tmp_path)
    reloaded = mc.CodecTraceForSourceTracing.from_pretrained(tmp_path)
    waveforms = 0.1 * torch.randn(2, 16000)
    assert reloaded.config.feature_encoder == "stft_phase"
    with torch.no_grad():
        assert torch.allclose(reloaded(waveforms).vq_logits, model(waveforms).vq_logits, atol=1e-6)


def test_the_projection_is_initialised_by_the_model():
    a, b = _model(seed=5), _model(seed=5)
    weight = a.wav2vec2.feature_extractor.projection.weight
    assert torch.equal(weight, b.wav2vec2.feature_extractor.projection.weight)
    assert torch.isfinite(weight).all() and 0 < float(weight.detach().abs().max()) < 1


def test_it_needs_a_backbone_with_two_conv_layers():
    with pytest.raises(ValueError, match="exactly two conv layers"):
        mc.CodecTraceConfig(feature_encoder="stft_phase")  # XLS-R has seven


def test_an_unknown_feature_encoder_is_refused():
    with pytest.raises(ValueError, match="feature_encoder must be one of"):
        mc.CodecTraceConfig(feature_encoder="mfcc")


def test_the_paper_model_keeps_the_conv_feature_encoder():
    assert mc.CodecTraceConfig().feature_encoder == "conv"


def test_the_model_card_says_the_front_end_is_an_stft():
    from codectrace.model_card import render_model_card

    card = render_model_card(_model().config, model_name="m")
    phase_only = render_model_card(_model(stft_features=["phase_deviation"]).config, model_name="m")
    assert "fixed STFT giving log power and phase-advance deviation per bin" in card
    assert "fixed STFT giving phase-advance deviation per bin" in phase_only
    assert "fixed STFT" not in render_model_card(mc.CodecTraceConfig(), model_name="m")


def test_the_encoder_can_read_the_phase_deviation_alone():
    model = _model(stft_features=["phase_deviation"])
    encoder = model.wav2vec2.feature_extractor
    both = _model().wav2vec2.feature_extractor.stft_features(_tone(40))
    alone = encoder.stft_features(_tone(40))
    assert encoder.projection.in_channels == 257 and torch.equal(alone, both[:, 257:])
    assert model(0.1 * torch.randn(1, 16000)).dec_logits.shape == (1, 3)


@pytest.mark.parametrize("features", [[], ["phase"], ["log_power", "log_power"]])
def test_stft_features_must_be_a_non_empty_subset_without_repeats(features):
    with pytest.raises(ValueError, match="stft_features must be a non-empty subset"):
        mc.CodecTraceConfig(feature_encoder="stft_phase", stft_features=features,
                            backbone_config=backbone_config("stft-tiny"))


@pytest.mark.parametrize("feature", mc.STFT_FEATURES)
def test_the_model_card_names_every_stft_feature(feature):
    from codectrace.model_card import render_model_card

    card = render_model_card(_model(stft_features=[feature]).config, model_name="m")
    assert "fixed STFT giving " in card and feature not in card  # a readable name, not the config spelling


def test_the_weighted_deviation_discounts_bins_that_hold_only_noise():
    model = _model(stft_features=["phase_deviation", "weighted_phase_deviation"])
    noise = 1e-3 * torch.randn(1, 16000, generator=torch.Generator().manual_seed(2))
    features = model.wav2vec2.feature_extractor.stft_features(_tone(40) + noise)[0, :, 1:]
    plain, weighted = features[:257], features[257:]
    quiet = torch.ones(257, dtype=torch.bool)
    quiet[36:45] = False  # the tone's main lobe
    assert float(weighted[40].abs().max()) < 1e-2  # the tone itself: steady phase
    assert float(weighted[quiet].mean()) < 0.01 * float(plain[quiet].mean())


def test_a_config_naming_the_removed_multi_resolution_field_switched_off_loads_as_before():
    config = mc.CodecTraceConfig(**{**_model().config.to_dict(), "stft_extra_n_fft": None})
    assert "stft_extra_n_fft" not in config.to_dict()


def test_a_config_using_the_removed_multi_resolution_field_is_refused_naming_the_commit_that_has_it():
    with pytest.raises(ValueError, match="uses stft_extra_n_fft, an option removed .* commit 095ffcc"):
        mc.CodecTraceConfig(**{**_model().config.to_dict(), "stft_extra_n_fft": [256]})
