"""CodecTraceForSourceTracing: heads per variant, loss, gradients, batching, initialisation."""

import pytest
import torch

import modeling_codectrace as mc
from codectrace.testing import tiny_config
from modeling_codectrace.configuration_codectrace import TASK_LABELS, VARIANTS
from modeling_codectrace.modeling_codectrace import BRANCH_NAMES, masked_mean_std


@pytest.mark.parametrize("variant", list(VARIANTS))
def test_each_variant_has_exactly_its_heads_with_label_sized_logits(tiny_model_factory, waveforms, variant):
    model = tiny_model_factory(variant)
    out = model(waveforms)
    for task in TASK_LABELS:
        logits = out.logits_for(task)
        if task in VARIANTS[variant]:
            assert logits.shape == (3, len(TASK_LABELS[task]))
            assert out.embeddings[task].shape == (3, 5 * model.config.gat_dims[1])
            assert hasattr(model, BRANCH_NAMES[task])
        else:
            assert logits is None
            assert not hasattr(model, BRANCH_NAMES[task])


def test_loss_is_absent_without_labels(tiny_model, waveforms):
    assert tiny_model(waveforms).loss is None


def test_loss_is_the_mean_of_class_weighted_task_losses(tiny_model, waveforms):
    labels = {"bin_labels": torch.tensor([0, 1, 0]), "dec_labels": torch.tensor([1, 0, 2])}
    out = tiny_model(waveforms, **labels)
    assert torch.isfinite(out.loss)
    expected = {}
    for task, key in (("bin", "bin_labels"), ("dec", "dec_labels")):
        weight = torch.tensor(tiny_model.config.class_weights[task])
        expected[task] = torch.nn.functional.cross_entropy(out.logits_for(task), labels[key], weight=weight)
        assert torch.allclose(out.task_losses[task], expected[task])
    # M1 has four tasks: each given task contributes a quarter (the official plain mean).
    assert torch.allclose(out.loss, (expected["bin"] + expected["dec"]) / 4)


def test_rows_labelled_minus_100_are_ignored(tiny_model, waveforms):
    full = tiny_model(waveforms, vq_labels=torch.tensor([1, -100, -100]))
    single = tiny_model(waveforms[:1], vq_labels=torch.tensor([1]))
    assert torch.allclose(full.task_losses["vq"], single.task_losses["vq"], atol=1e-5)


def test_all_rows_ignored_gives_a_zero_loss_not_nan(tiny_model, waveforms):
    out = tiny_model(waveforms, aux_labels=torch.full((3,), -100))
    assert out.loss.item() == 0.0


def test_labels_for_a_missing_head_are_refused(tiny_model_factory, waveforms):
    model = tiny_model_factory("S_BIN")
    with pytest.raises(ValueError, match="only has heads for"):
        model(waveforms, vq_labels=torch.tensor([0, 1, 2]))


def test_backward_reaches_heads_but_not_a_frozen_feature_encoder(tiny_model_factory, waveforms):
    model = tiny_model_factory().train()
    model.freeze_feature_encoder()
    out = model(waveforms, bin_labels=torch.tensor([0, 1, 1]), vq_labels=torch.tensor([1, 0, 3]))
    out.loss.backward()
    for name, parameter in model.named_parameters():
        if name.startswith("wav2vec2.feature_extractor"):
            assert parameter.grad is None, name
    assert model.binary_branch.out_layer.weight.grad.abs().sum() > 0
    assert model.trunk.LL.weight.grad.abs().sum() > 0
    assert model.wav2vec2.encoder.layers[0].attention.q_proj.weight.grad is not None


def test_freeze_backbone_leaves_only_aasist_trainable(tiny_model):
    tiny_model.freeze_backbone()
    trainable = {n.split(".")[0] for n, p in tiny_model.named_parameters() if p.requires_grad}
    assert "wav2vec2" not in trainable and "trunk" in trainable


def test_gradient_checkpointing_gives_the_same_gradients(tiny_model_factory, waveforms):
    grads = []
    for checkpointing in (False, True):
        model = tiny_model_factory()
        model.train()
        for module in model.modules():
            if isinstance(module, torch.nn.Dropout):
                module.p = 0.0
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.wav2vec2.encoder.gradient_checkpointing
        model(waveforms, bin_labels=torch.tensor([0, 1, 1])).loss.backward()
        grads.append(model.wav2vec2.encoder.layers[0].feed_forward.output_dense.weight.grad.clone())
    assert torch.allclose(grads[0], grads[1], atol=1e-6)


@pytest.mark.parametrize("seconds", [1.0, 1.37, 4.0375, 6.0])
def test_any_input_of_at_least_one_second_works(tiny_model, seconds):
    out = tiny_model(torch.randn(2, int(seconds * 16000)))
    assert torch.isfinite(out.bin_logits).all()


def test_too_short_input_is_refused_with_the_minimum(tiny_model):
    with pytest.raises(ValueError, match="at least"):
        tiny_model(torch.randn(1, tiny_model.min_input_samples - 1))
    tiny_model(torch.randn(1, tiny_model.min_input_samples))


def test_input_must_be_batch_by_samples(tiny_model):
    with pytest.raises(ValueError, match="batch_size, num_samples"):
        tiny_model(torch.randn(16000))


def test_batched_results_equal_one_by_one(tiny_model, waveforms):
    with torch.no_grad():
        batched = tiny_model(waveforms)
        for i in range(waveforms.size(0)):
            single = tiny_model(waveforms[i : i + 1])
            for task in tiny_model.config.tasks:
                assert torch.allclose(batched.logits_for(task)[i], single.logits_for(task)[0], atol=1e-5)


def test_every_parameter_is_initialised(tiny_model_factory):
    for seed in (0, 1):
        model = tiny_model_factory(seed=seed)
        for name, parameter in model.named_parameters():
            assert torch.isfinite(parameter).all(), name
            assert parameter.abs().max() < 1e3, name
    # The AASIST raw parameters follow the official init: standard normal positions and master nodes.
    branch = model.binary_branch
    assert 0.5 < branch.pos_S.std() < 1.5
    assert branch.GAT_layer_S.att_weight.abs().sum() > 0


def test_initialisation_is_deterministic_under_a_seed(tiny_model_factory):
    a, b = tiny_model_factory(seed=3), tiny_model_factory(seed=3)
    for (name, pa), (_, pb) in zip(a.named_parameters(), b.named_parameters()):
        assert torch.equal(pa, pb), name


def test_residual_block_conv1_reads_the_block_input_as_officially():
    block = mc.CodecTraceForSourceTracing(tiny_config()).trunk.encoder[1][0].train()
    x = torch.randn(2, 8, 5, 7)
    with torch.no_grad():
        block.bn1.weight.fill_(123.0)  # would change the output if bn1 fed conv1
        expected = block.conv2(block.selu(block.bn2(block.conv1(x)))) + x
        assert torch.allclose(block(x), expected, atol=1e-6)
    assert block.bn1.num_batches_tracked.item() == 1  # but bn1 still runs in training, as officially


def test_default_config_is_the_paper_model():
    config = mc.CodecTraceConfig()
    backbone = config.backbone_config
    assert (backbone.hidden_size, backbone.num_hidden_layers, backbone.num_attention_heads) == (1024, 24, 16)
    assert backbone.intermediate_size == 4096 and backbone.do_stable_layer_norm
    assert list(backbone.conv_kernel) == [10, 3, 3, 3, 3, 2, 2]
    assert list(backbone.conv_stride) == [5, 2, 2, 2, 2, 2, 2]
    assert list(backbone.conv_dim) == [512] * 7
    assert not backbone.apply_spec_augment
    assert config.tasks == ["bin", "vq", "aux", "dec"] and config.variant == "M1"
    assert config.projection_dim == 128 and config.gat_dims == [64, 32]
    assert config.encoder_filters == [[1, 32], [32, 32], [32, 64], [64, 64], [64, 64], [64, 64]]
    assert config.pool_ratios == [0.5] * 4 and config.temperatures == [2.0, 2.0, 100.0, 100.0]
    assert config.class_weights == {
        "bin": [0.1, 0.9],
        "vq": [0.1, 0.3, 0.3, 0.3],
        "aux": [0.1, 0.3, 0.3, 0.3],
        "dec": [0.1, 0.45, 0.45],
    }
    assert (config.sampling_rate, config.chunk_samples) == (16000, 64600)


def test_paper_sized_model_has_the_official_checkpoint_layout():
    with torch.device("meta"):
        model = mc.CodecTraceForSourceTracing(mc.CodecTraceConfig(variant="S_BIN"))
    names = set(model.state_dict())
    assert "binary_branch.pos_S" in names and model.binary_branch.pos_S.shape == (1, 42, 64)
    assert "trunk.encoder.0.0.conv1.weight" in names and "trunk.encoder.0.0.bn1.weight" not in names
    assert "trunk.encoder.1.0.bn1.weight" in names  # a buffer: its output is discarded (see ResidualBlock)
    assert "trunk.encoder.2.0.conv_downsample.weight" in names
    assert model.binary_branch.out_layer.weight.shape == (2, 160)
    backbone = sum(p.numel() for n, p in model.named_parameters() if n.startswith("wav2vec2."))
    assert 300e6 < backbone < 320e6


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"variant": "M3"}, "Unknown variant"),
        ({"tasks": []}, "non-empty subset"),
        ({"tasks": ["bin", "speaker"]}, "non-empty subset"),
        ({"variant": "M1", "tasks": ["bin"]}, "disagree"),
        ({"class_weights": {"vq": [1.0, 2.0]}}, "one weight per label"),
        ({"encoder_filters": [[1, 8], [16, 16]]}, "chain"),
        ({"head_type": "mlp"}, "head_type must be one of"),
    ],
)
def test_bad_config_values_are_refused_clearly(kwargs, message):
    with pytest.raises(ValueError, match=message):
        mc.CodecTraceConfig(**kwargs)


def test_tasks_are_canonically_ordered_and_named_by_variant():
    config = mc.CodecTraceConfig(tasks=["dec", "bin"])
    assert config.tasks == ["bin", "dec"] and config.variant == "D_DEC"
    assert config.label_names == {"bin": ["spoof", "bonafide"], "dec": ["real", "time", "freq"]}


def test_custom_task_weights_replace_the_mean(tiny_model_factory, waveforms):
    model = tiny_model_factory("D_VQ", task_weights={"bin": 1.0, "vq": 0.0})
    out = model(waveforms, bin_labels=torch.tensor([0, 1, 1]), vq_labels=torch.tensor([0, 1, 2]))
    assert torch.allclose(out.loss, out.task_losses["bin"])


def test_uncertainty_task_weighting_learns_one_log_variance_per_task(tiny_model_factory, waveforms):
    model = tiny_model_factory("D_AUX", task_weighting="uncertainty").train()
    assert torch.equal(model.task_log_vars.detach(), torch.zeros(2))
    out = model(waveforms, bin_labels=torch.tensor([0, 1, 1]), aux_labels=torch.tensor([1, 0, 2]))
    # With zero log-variances the loss is the plain mean, as officially.
    assert torch.allclose(out.loss, (out.task_losses["bin"] + out.task_losses["aux"]) / 2)
    out.loss.backward()
    assert model.task_log_vars.grad is not None and model.task_log_vars.grad.abs().sum() > 0


# -- options beside the paper: statistics-pooling heads, weighted layer sum ---------------------------------


def test_the_paper_heads_and_last_layer_are_the_default():
    config = mc.CodecTraceConfig()
    assert config.head_type == "aasist" and config.use_weighted_layer_sum is False


def test_stats_pooling_heads_replace_the_aasist_parts(tiny_model_factory, waveforms):
    model = tiny_model_factory(head_type="stats_pooling")
    names = {n for n, _ in model.named_parameters()}
    assert not any(n.startswith(("trunk.", "binary_branch.", "multiclass_branch")) for n in names)
    hidden = model.config.hidden_size
    output = model(waveforms)
    for task in model.config.tasks:
        assert output.logits_for(task).shape == (3, len(TASK_LABELS[task]))
        assert output.embeddings[task].shape == (3, 2 * hidden)
    with pytest.raises(ValueError, match="head_type is 'stats_pooling'"):
        model.branch("bin")


def test_stats_pooling_needs_only_one_backbone_frame(tiny_model_factory):
    aasist, pooled = tiny_model_factory(), tiny_model_factory(head_type="stats_pooling")
    assert pooled.min_input_samples < aasist.min_input_samples
    assert pooled(torch.zeros(1, pooled.min_input_samples)).vq_logits.shape == (1, 4)


def test_stats_pooling_ignores_padded_frames_given_an_attention_mask(tiny_model_factory, waveforms):
    model = tiny_model_factory(head_type="stats_pooling")
    mask = torch.ones(2, 16000, dtype=torch.long)
    mask[1, 9600:] = 0
    with torch.no_grad():
        padded = model(waveforms[:2], attention_mask=mask).dec_logits[1]
        alone = model(waveforms[1:2, :9600]).dec_logits[0]
    assert torch.allclose(padded, alone, atol=1e-5)


def test_weighted_layer_sum_starts_as_the_plain_mean_of_all_layers(tiny_model_factory, waveforms):
    model = tiny_model_factory(head_type="stats_pooling", use_weighted_layer_sum=True)
    layers = model.config.backbone_config.num_hidden_layers + 1
    assert torch.equal(model.layer_weights, torch.zeros(layers))
    with torch.no_grad():
        states = model.wav2vec2(waveforms, output_hidden_states=True).hidden_states
        expected = model.heads["vq"](masked_mean_std(torch.stack(states).mean(0), None))
        assert torch.allclose(model(waveforms).vq_logits, expected, atol=1e-5)


def test_layer_weights_are_learned(tiny_model_factory, waveforms):
    model = tiny_model_factory(use_weighted_layer_sum=True).train()
    model(waveforms, vq_labels=torch.tensor([0, 1, 2])).loss.backward()
    assert model.layer_weights.grad is not None and model.layer_weights.grad.abs().sum() > 0


def test_weighted_layer_sum_works_with_the_aasist_heads(tiny_model_factory, waveforms):
    model = tiny_model_factory(use_weighted_layer_sum=True)
    assert model.trunk is not None and model(waveforms).bin_logits.shape == (3, 2)


def test_stats_pooling_models_save_and_reload_with_their_options(tiny_model_factory, waveforms, tmp_path):
    model = tiny_model_factory(head_type="stats_pooling", use_weighted_layer_sum=True)
    with torch.no_grad():
        model.layer_weights.copy_(torch.tensor([0.5, -1.0, 2.0]))
    model.save_pretrained(tmp_path)
    reloaded = mc.CodecTraceForSourceTracing.from_pretrained(tmp_path)
    assert reloaded.config.head_type == "stats_pooling" and reloaded.config.use_weighted_layer_sum
    with torch.no_grad():
        assert torch.allclose(reloaded(waveforms).aux_logits, model(waveforms).aux_logits, atol=1e-6)


def test_the_model_card_names_the_heads_it_has():
    from codectrace.model_card import render_model_card

    paper = render_model_card(tiny_config(), model_name="m")
    pooled = render_model_card(tiny_config(head_type="stats_pooling", use_weighted_layer_sum=True), model_name="m")
    assert "shared AASIST trunk" in paper and "- aasist" in paper
    assert "statistics pooling + linear" in pooled and "learned mix of all backbone layers" in pooled
    assert "- aasist" not in pooled


def test_stats_pooling_gradients_stay_finite_on_a_single_frame(tiny_model_factory):
    model = tiny_model_factory(head_type="stats_pooling").train()
    model(torch.randn(2, model.min_input_samples), dec_labels=torch.tensor([1, 2])).loss.backward()
    for name, parameter in model.named_parameters():
        if parameter.grad is not None:
            assert torch.isfinite(parameter.grad).all(), name


def _frame_model(tiny_model_factory, **overrides):
    return tiny_model_factory(frame_head=True, **overrides)


def test_a_frame_head_scores_every_backbone_frame_as_spoof_or_bona_fide(tiny_model_factory, waveforms):
    model = _frame_model(tiny_model_factory)
    out = model(waveforms, output_hidden_states=True)
    frames, _, _ = model.config.frame_layout(waveforms.shape[1])
    assert frames == out.hidden_states[0].shape[1]
    assert out.frame_logits.shape == (3, frames, 2)
    assert tiny_model_factory()(waveforms).frame_logits is None  # off by default, as in the paper


def test_frame_layout_places_each_frame_at_the_middle_of_its_receptive_field():
    config = tiny_config()  # conv kernels (10, 8, 4, 4), strides (5, 4, 4, 4)
    frames, hop, first = config.frame_layout(16000)
    assert hop == 5 * 4 * 4 * 4
    assert first == (10 + 7 * 5 + 3 * 20 + 3 * 80 - 1) / 2  # receptive field 355 samples
    assert frames == ((((16000 - 10) // 5 + 1 - 8) // 4 + 1 - 4) // 4 + 1 - 4) // 4 + 1


def test_the_frame_loss_is_the_class_weighted_cross_entropy_of_its_frames(tiny_model_factory, waveforms):
    model = _frame_model(tiny_model_factory, frame_loss_weight=0.5)
    frames, _, _ = model.config.frame_layout(waveforms.shape[1])
    labels = torch.randint(0, 2, (3, frames), generator=torch.Generator().manual_seed(0))
    labels[0, :5] = -100
    out = model(waveforms, frame_labels=labels)
    weight = torch.tensor(model.config.class_weights["bin"])
    expected = torch.nn.functional.cross_entropy(out.frame_logits.flatten(0, 1), labels.flatten(), weight=weight,
                                                 ignore_index=-100)
    assert torch.allclose(out.task_losses["frame"], expected)
    assert torch.allclose(out.loss, 0.5 * expected)  # no task labels: the frame term alone
    with_bin = model(waveforms, frame_labels=labels, bin_labels=torch.tensor([0, 1, 0]))
    assert torch.allclose(with_bin.loss, 0.5 * expected + with_bin.task_losses["bin"] / 4)


def test_frame_labels_for_a_model_without_a_frame_head_are_refused(tiny_model, waveforms):
    with pytest.raises(ValueError, match="no frame head"):
        tiny_model(waveforms, frame_labels=torch.zeros(3, 10, dtype=torch.long))


def test_frame_labels_of_the_wrong_shape_are_refused_with_the_expected_one(tiny_model_factory, waveforms):
    model = _frame_model(tiny_model_factory)
    frames, _, _ = model.config.frame_layout(waveforms.shape[1])
    with pytest.raises(ValueError, match=rf"\(3, {frames}\).*got \(3, {frames + 1}\)"):
        model(waveforms, frame_labels=torch.zeros(3, frames + 1, dtype=torch.long))


def test_a_negative_frame_loss_weight_is_refused():
    with pytest.raises(ValueError, match="frame_loss_weight"):
        tiny_config(frame_head=True, frame_loss_weight=-1)


def test_silence_trimming_is_off_unless_the_config_asks_and_survives_saving(tmp_path):
    assert mc.CodecTraceConfig().trim_silence_db is None  # the paper's, and every converted checkpoint's
    tiny_config(trim_silence_db=40).save_pretrained(tmp_path)
    assert mc.CodecTraceConfig.from_pretrained(tmp_path).trim_silence_db == 40.0


@pytest.mark.parametrize("level", [0, -40, float("inf"), True])
def test_a_trimming_level_that_is_not_a_positive_number_is_refused(level):
    with pytest.raises(ValueError, match="trim_silence_db must be a positive number"):
        tiny_config(trim_silence_db=level)
