"""The model keeps transformers' own rules for a PreTrainedModel, in every head type and front end: every trainable
parameter trains, save/load round trips, batched equals one by one, bf16, gradient checkpointing, missing keys
initialised as `__init__` does, unknown keywords refused, eager attention equals SDPA."""

import pytest
import torch
from safetensors.torch import load_file, save_file

import modeling_codectrace as mc
from codectrace.presets import backbone_config
from codectrace.testing import tiny_config

# The shapes a user trains: the paper's (AASIST heads on the conv front end), and the CPU demo's (STFT phase front
# end, a learned mix of all layers, statistics pooling, learned task weights), plus the mixes in between, and the
# demo's with a frame-level spoof head.
SHAPES = {
    "paper": {},
    "paper_m2": {"variant": "M2"},
    "aasist_layer_mix": {"use_weighted_layer_sum": True},
    "demo": dict(backbone_config=backbone_config("stft-tiny"), feature_encoder="stft_phase", stft_n_fft=512,
                 stft_hop_length=160, stft_features=["phase_deviation", "weighted_phase_deviation"],
                 head_type="stats_pooling", use_weighted_layer_sum=True, task_weighting="uncertainty"),
}
SHAPES["demo_frame_head"] = {**SHAPES["demo"], "frame_head": True}


def build(shape: str, seed: int = 0) -> mc.CodecTraceForSourceTracing:
    torch.manual_seed(seed)
    return mc.CodecTraceForSourceTracing(tiny_config(**SHAPES[shape]))


def all_labels(model, batch: int, samples: int = 16000) -> dict:
    """Labels of every head the model has (with a frame head, of every frame of `samples`-long inputs)."""
    generator = torch.Generator().manual_seed(0)
    labels = {f"{task}_labels": torch.randint(0, len(mc.TASK_LABELS[task]), (batch,), generator=generator)
              for task in model.config.tasks}
    if model.config.frame_head:
        frames, _, _ = model.config.frame_layout(samples)
        labels["frame_labels"] = torch.randint(0, 2, (batch, frames), generator=generator)
    return labels


@pytest.mark.parametrize("shape", SHAPES)
def test_every_trainable_parameter_receives_a_gradient(shape, waveforms):
    model = build(shape).train()
    model(waveforms, **all_labels(model, len(waveforms))).loss.backward()
    starved = [name for name, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert starved == []


def test_the_discarded_batch_norms_keep_their_checkpoint_names_and_running_statistics(waveforms):
    model = build("paper").train()
    block = model.trunk.encoder[1][0]
    assert "trunk.encoder.1.0.bn1.weight" in model.state_dict()
    before = block.bn1.running_mean.clone()
    model(waveforms)
    assert not torch.equal(before, block.bn1.running_mean)


@pytest.mark.parametrize("shape", SHAPES)
def test_save_and_load_round_trip_through_safetensors(shape, waveforms, tmp_path):
    model = build(shape).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").is_file()
    loaded = mc.CodecTraceForSourceTracing.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        a, b = model(waveforms), loaded(waveforms)
    for task in model.config.tasks:
        assert torch.equal(a.logits_for(task), b.logits_for(task)), task
    assert (a.frame_logits is None) == (not model.config.frame_head)
    if model.config.frame_head:
        assert torch.equal(a.frame_logits, b.frame_logits)


@pytest.mark.parametrize("shape", SHAPES)
def test_batched_results_equal_one_by_one_in_every_shape(shape, waveforms):
    model = build(shape).eval()
    with torch.no_grad():
        batched = model(waveforms)
        single = [model(row[None]) for row in waveforms]
    for task in model.config.tasks:
        alone = torch.cat([out.logits_for(task) for out in single])
        assert torch.allclose(batched.logits_for(task), alone, atol=1e-5), task


@pytest.mark.parametrize("shape", ["paper", "demo"])
def test_a_bf16_load_runs_forward_and_backward(shape, waveforms, tmp_path):
    build(shape).save_pretrained(tmp_path)
    model = mc.CodecTraceForSourceTracing.from_pretrained(tmp_path, dtype=torch.bfloat16).train()
    assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
    out = model(waveforms.bfloat16(), **all_labels(model, len(waveforms)))
    out.loss.backward()
    assert torch.isfinite(out.loss)
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize("shape", ["paper", "demo", "demo_frame_head"])
def test_gradient_checkpointing_gives_the_same_loss_and_gradients(shape, waveforms):
    plain, checkpointed = build(shape).train(), build(shape).train()
    checkpointed.gradient_checkpointing_enable()
    losses = []
    for model in (plain, checkpointed):
        torch.manual_seed(1)  # the same dropout masks in both
        loss = model(waveforms, **all_labels(model, len(waveforms))).loss
        loss.backward()
        losses.append(loss)
    assert torch.allclose(losses[0], losses[1])
    for (name, a), (_, b) in zip(plain.named_parameters(), checkpointed.named_parameters()):
        if a.grad is not None:
            assert torch.allclose(a.grad, b.grad, atol=1e-5), name


def _spread(tensor: torch.Tensor) -> float:
    return float(tensor.detach().float().std())


def test_backbone_keys_missing_from_a_checkpoint_are_initialised_as_init_does(tmp_path):
    fresh = build("paper", seed=3)
    fresh.save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    dropped = [k for k in weights if k.startswith(("wav2vec2.feature_projection.", "wav2vec2.encoder.pos_conv_embed."))]
    save_file({k: v for k, v in weights.items() if k not in dropped}, tmp_path / "model.safetensors",
              metadata={"format": "pt"})
    loaded = mc.CodecTraceForSourceTracing.from_pretrained(tmp_path)
    reference = [build("paper", seed=seed) for seed in range(4)]
    for name in ("wav2vec2.feature_projection.projection.weight", "wav2vec2.feature_projection.projection.bias"):
        expected = [_spread(model.get_parameter(name)) for model in reference]
        assert min(expected) * 0.7 < _spread(loaded.get_parameter(name)) < max(expected) * 1.3, name
    # Wav2Vec2 starts its positional convolution's bias at zero.
    assert torch.count_nonzero(loaded.wav2vec2.encoder.pos_conv_embed.conv.bias) == 0
    kept = [k for k in weights if k not in dropped]
    state = loaded.state_dict()
    assert all(torch.equal(state[k], weights[k]) for k in kept)


def test_loaded_batch_norm_statistics_stay_loaded(tmp_path):
    model = build("paper")
    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, torch.nn.modules.batchnorm._BatchNorm):
                module.running_mean.uniform_(-1, 1)
                module.running_var.uniform_(0.5, 2)
    model.save_pretrained(tmp_path)
    loaded = mc.CodecTraceForSourceTracing.from_pretrained(tmp_path)
    for name, buffer in model.named_buffers():
        assert torch.equal(loaded.get_buffer(name), buffer), name


def test_an_unknown_keyword_is_refused_with_the_accepted_ones(tiny_model, waveforms):
    with pytest.raises(TypeError, match=r"\['bin_label'\]; accepted: input_values, attention_mask, bin_labels"):
        tiny_model(waveforms, bin_label=torch.tensor([0, 1, 0]))


def test_a_single_labels_argument_is_refused_naming_the_per_task_ones(tiny_model, waveforms):
    with pytest.raises(TypeError, match="bin_labels=, vq_labels=, aux_labels=, dec_labels="):
        tiny_model(waveforms, labels=torch.tensor([0, 1, 0]))


def test_the_trainer_passes_no_loss_keywords_to_the_model(tiny_model):
    assert tiny_model.accepts_loss_kwargs is False


@pytest.mark.parametrize("shape", ["paper", "demo"])
def test_hidden_states_are_returned_on_request(shape, waveforms):
    model = build(shape).eval()
    with torch.no_grad():
        out = model(waveforms, output_hidden_states=True)
        plain = model(waveforms)
    layers = model.config.backbone_config.num_hidden_layers
    assert len(out.hidden_states) == layers + 1
    assert out.hidden_states[-1].shape[:2] == (len(waveforms), out.hidden_states[0].shape[1])
    assert plain.hidden_states is None
    assert torch.equal(out.logits_for("bin"), plain.logits_for("bin"))


def test_eager_attention_equals_sdpa(waveforms, tmp_path):
    build("paper").save_pretrained(tmp_path)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = mc.CodecTraceForSourceTracing.from_pretrained(tmp_path, attn_implementation=implementation).eval()
        assert model.wav2vec2.config._attn_implementation == implementation
        with torch.no_grad():
            outputs[implementation] = model(waveforms)
    for task in ("bin", "vq", "aux", "dec"):
        assert torch.allclose(outputs["eager"].logits_for(task), outputs["sdpa"].logits_for(task), atol=1e-5), task
