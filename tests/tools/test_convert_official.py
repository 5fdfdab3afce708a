"""Official W2V2-AASIST checkpoints <-> this format: key mapping, strict load, round trips, refusals."""

import pickle

import pytest
import torch
from transformers import AutoModel

from codectrace.cli import main as cli_main
from codectrace.convert_official import (
    ConversionError,
    convert_official_checkpoint,
    load_official_checkpoint,
    official_to_ours,
    ours_to_official,
)
from codectrace.presets import AASIST_SIZES
from codectrace.testing import tiny_config
from modeling_codectrace.configuration_codectrace import CodecTraceConfig, xlsr_300m_backbone_config
from modeling_codectrace.modeling_codectrace import CodecTraceForSourceTracing

# A tiny backbone whose conv kernels follow wav2vec 2.0 (10 / 3 / 2), so strides are inferable.
TINY_OFFICIAL_BACKBONE = dict(
    hidden_size=32, num_hidden_layers=2, num_attention_heads=1, intermediate_size=48, conv_dim=(16, 16, 16, 16),
    conv_kernel=(10, 3, 3, 2), conv_stride=(5, 2, 2, 2), num_conv_pos_embeddings=16,
    num_conv_pos_embedding_groups=2, mask_time_prob=0.05,
)


def official_state_dict(variant="M1", seed=0):
    """A synthetic official checkpoint: our model's tensors under the official names, plus pre-training extras."""
    torch.manual_seed(seed)
    config = CodecTraceConfig(backbone_config=xlsr_300m_backbone_config(**TINY_OFFICIAL_BACKBONE), variant=variant,
                              **AASIST_SIZES["tiny"])
    state = ours_to_official(CodecTraceForSourceTracing(config).state_dict())
    state["ssl_model.model.quantizer.vars"] = torch.randn(1, 8, 4)
    state["ssl_model.model.project_q.weight"] = torch.randn(4, 4)
    state["ssl_model.model.final_proj.weight"] = torch.randn(4, 32)
    return state


def test_hand_written_official_keys_land_where_expected():
    official = {
        "ssl_model.model.feature_extractor.conv_layers.3.0.weight": torch.ones(1),
        "ssl_model.model.feature_extractor.conv_layers.3.2.1.bias": torch.ones(2),
        "ssl_model.model.post_extract_proj.weight": torch.ones(3),
        "ssl_model.model.layer_norm.bias": torch.ones(4),
        "ssl_model.model.encoder.pos_conv.0.weight_g": torch.ones(5),
        "ssl_model.model.encoder.pos_conv.0.weight_v": torch.ones(6),
        "ssl_model.model.encoder.layers.11.self_attn.q_proj.weight": torch.ones(7),
        "ssl_model.model.encoder.layers.11.self_attn_layer_norm.weight": torch.ones(8),
        "ssl_model.model.encoder.layers.11.fc1.bias": torch.ones(9),
        "ssl_model.model.encoder.layers.11.fc2.weight": torch.ones(10),
        "ssl_model.model.encoder.layer_norm.weight": torch.ones(11),
        "ssl_model.model.mask_emb": torch.ones(12),
        "ssl_model.model.quantizer.weight_proj.weight": torch.ones(13),
        "LL.weight": torch.ones(14),
        "first_bn1.running_mean": torch.ones(15),
        "encoder.4.0.bn1.weight": torch.ones(16),
        "attention.2.weight": torch.ones(17),
        "multiclass_branch_qs.HtrgGAT_layer_ST12.att_weightM": torch.ones(18),
    }
    ours, dropped = official_to_ours(official)
    expected = {
        "wav2vec2.feature_extractor.conv_layers.3.conv.weight": 1,
        "wav2vec2.feature_extractor.conv_layers.3.layer_norm.bias": 2,
        "wav2vec2.feature_projection.projection.weight": 3,
        "wav2vec2.feature_projection.layer_norm.bias": 4,
        "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original0": 5,
        "wav2vec2.encoder.pos_conv_embed.conv.parametrizations.weight.original1": 6,
        "wav2vec2.encoder.layers.11.attention.q_proj.weight": 7,
        "wav2vec2.encoder.layers.11.layer_norm.weight": 8,
        "wav2vec2.encoder.layers.11.feed_forward.intermediate_dense.bias": 9,
        "wav2vec2.encoder.layers.11.feed_forward.output_dense.weight": 10,
        "wav2vec2.encoder.layer_norm.weight": 11,
        "wav2vec2.masked_spec_embed": 12,
        "trunk.LL.weight": 14,
        "trunk.first_bn1.running_mean": 15,
        "trunk.encoder.4.0.bn1.weight": 16,
        "trunk.attention.2.weight": 17,
        "multiclass_branch_qs.HtrgGAT_layer_ST12.att_weightM": 18,
    }
    assert {name: tensor.numel() for name, tensor in ours.items()} == expected
    assert dropped == ["ssl_model.model.quantizer.weight_proj.weight"]


@pytest.mark.parametrize("variant", ["M1", "S_BIN", "D_DEC", "M2"])
def test_synthetic_checkpoints_convert_strictly_with_the_right_variant(tmp_path, variant):
    path = tmp_path / f"{variant}.pth"
    torch.save(official_state_dict(variant), path)
    model, dropped = convert_official_checkpoint(path)
    assert model.config.variant == variant
    assert len(dropped) == 3
    config = model.config
    assert (config.backbone_config.hidden_size, config.backbone_config.num_hidden_layers) == (32, 2)
    assert list(config.backbone_config.conv_stride) == [5, 2, 2, 2]
    assert config.projection_dim == 24 and config.gat_dims == [16, 8]


def test_every_tensor_is_copied_and_the_round_trip_is_the_identity(tmp_path):
    original = official_state_dict("M1", seed=3)
    path = tmp_path / "m1.pth"
    torch.save(original, path)
    model, dropped = convert_official_checkpoint(path)
    back = ours_to_official(model.state_dict())
    kept = {k: v for k, v in original.items() if k not in dropped}
    assert set(back) == set(kept)
    for name, tensor in kept.items():
        assert torch.equal(back[name], tensor), name


def test_converted_folder_gives_finite_identical_logits_after_reload(tmp_path):
    path = tmp_path / "m1.pth"
    torch.save(official_state_dict("M1"), path)
    assert cli_main(["convert-official", str(path), "--out", str(tmp_path / "out")]) == 0
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "modeling_codectrace.py",
                 "README.md"):
        assert (tmp_path / "out" / name).exists(), name
    assert "m1.pth" in (tmp_path / "out" / "README.md").read_text()
    x = torch.randn(2, 16000) * 0.1
    model, _ = convert_official_checkpoint(path)
    reloaded = AutoModel.from_pretrained(tmp_path / "out")
    with torch.no_grad():
        a, b = model(x), reloaded(x)
    for task in ("bin", "vq", "aux", "dec"):
        assert torch.isfinite(a.logits_for(task)).all()
        assert torch.equal(a.logits_for(task), b.logits_for(task))


def test_data_parallel_prefixes_are_accepted(tmp_path):
    path = tmp_path / "dp.pth"
    torch.save({f"module.{k}": v for k, v in official_state_dict("S_BIN").items()}, path)
    assert convert_official_checkpoint(path)[0].config.variant == "S_BIN"


class NotAStateDict:
    pass


def test_a_pickle_that_is_not_a_plain_state_dict_is_refused(tmp_path):
    path = tmp_path / "object.pth"
    with open(path, "wb") as handle:
        pickle.dump(NotAStateDict(), handle)
    with pytest.raises(ConversionError, match="weights_only=True"):
        load_official_checkpoint(path)


def test_a_dict_of_non_tensors_is_refused(tmp_path):
    path = tmp_path / "config.pth"
    torch.save({"lr": 1e-6, "epochs": 20}, path)
    with pytest.raises(ConversionError, match="expected a state dict"):
        load_official_checkpoint(path)


def test_unmapped_keys_are_refused_by_name(tmp_path):
    state = official_state_dict("S_BIN")
    state["mystery_head.weight"] = torch.ones(1)
    path = tmp_path / "x.pth"
    torch.save(state, path)
    with pytest.raises(ConversionError, match="mystery_head.weight"):
        convert_official_checkpoint(path)


def test_a_variant_that_disagrees_with_the_branches_is_refused(tmp_path):
    path = tmp_path / "sbin.pth"
    torch.save(official_state_dict("S_BIN"), path)
    with pytest.raises(ConversionError, match="needs heads"):
        convert_official_checkpoint(path, variant="M1")


def test_cli_reports_conversion_errors_with_exit_status_2(tmp_path, capsys):
    assert cli_main(["convert-official", str(tmp_path / "missing.pth"), "--out", str(tmp_path / "o")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_a_stats_pooling_model_has_no_official_form():
    model = CodecTraceForSourceTracing(tiny_config(head_type="stats_pooling"))
    with pytest.raises(ConversionError, match="not part of the official model"):
        ours_to_official(model.state_dict())


def test_a_model_with_the_stft_front_end_has_no_official_form():
    from codectrace.presets import backbone_config

    backbone = backbone_config("stft-tiny")
    model = CodecTraceForSourceTracing(tiny_config(backbone_config=backbone, feature_encoder="stft_phase"))
    with pytest.raises(ConversionError, match="feature_extractor.projection"):
        ours_to_official(model.state_dict())
