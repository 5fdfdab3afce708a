"""How the pipeline runs the model: precisions, the copies made for them, the feature encoder as matrix products."""

import pytest
import torch

import modeling_codectrace as mc
from codectrace import precision
from codectrace.precision import (
    MatmulConv1d,
    default_window_batch_size,
    model_for_inference,
    resolve_precision,
    with_matmul_feature_encoder,
)
from codectrace.testing import tiny_config

CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000)).eval()


@pytest.mark.parametrize(("kernel", "stride", "bias"), [(10, 5, False), (3, 2, True), (2, 2, False), (1, 1, True)])
def test_a_matmul_conv_computes_the_same_as_the_convolution(kernel, stride, bias):
    torch.manual_seed(0)
    conv = torch.nn.Conv1d(6, 5, kernel, stride=stride, bias=bias)
    hidden = torch.randn(3, 6, 57)
    torch.testing.assert_close(MatmulConv1d(conv)(hidden), conv(hidden), rtol=1e-5, atol=1e-5)


def test_only_plain_convolutions_are_replaced():
    assert MatmulConv1d.can_replace(torch.nn.Conv1d(2, 2, 3, stride=2))
    assert not MatmulConv1d.can_replace(torch.nn.Conv1d(2, 2, 3, padding=1))
    assert not MatmulConv1d.can_replace(torch.nn.Conv1d(2, 2, 3, groups=2))
    assert not MatmulConv1d.can_replace(torch.nn.Conv1d(2, 2, 3, dilation=2))


def test_the_matmul_feature_encoder_replaces_every_convolution_and_keeps_the_outputs(model):
    import copy

    fast = with_matmul_feature_encoder(copy.deepcopy(model))
    encoder = fast.wav2vec2.feature_extractor
    assert not any(isinstance(m, torch.nn.Conv1d) for m in encoder.modules())
    assert any(isinstance(m, MatmulConv1d) for m in encoder.modules())
    assert fast.state_dict().keys() == model.state_dict().keys()
    values = torch.randn(2, 16000) * 0.1
    with torch.no_grad():
        for task in model.config.tasks:
            torch.testing.assert_close(fast(values).logits_for(task), model(values).logits_for(task),
                                       rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("name", ["bf16", "int8"])
def test_the_fast_cpu_copies_keep_the_callers_model_and_its_decisions(model, name):
    before = {k: v.clone() for k, v in model.state_dict().items()}
    fast = model_for_inference(model, name, CPU)
    assert fast is not model
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    values = torch.randn(4, 16000) * 0.1
    with torch.inference_mode():
        reference = model(values)
        candidate = fast(values.to(precision.input_dtype(name, CPU)))
    for task in model.config.tasks:
        probs = torch.softmax(candidate.logits_for(task).float(), -1)
        assert (probs - torch.softmax(reference.logits_for(task), -1)).abs().max() < 0.02


def test_fp32_runs_the_callers_model_itself(model):
    assert model_for_inference(model, "fp32", CPU) is model


def test_fp16_is_refused_on_cpu_with_what_runs_there(model):
    with pytest.raises(ValueError, match="GPUs only.*'bf16', 'int8' or 'fp32'"):
        model_for_inference(model, "fp16", CPU)


def test_an_unknown_precision_is_refused_naming_the_accepted_ones():
    with pytest.raises(ValueError, match="precision must be one of"):
        resolve_precision("int4", CPU)


@pytest.mark.parametrize(("flags", "engines", "expected"), [
    ({"avx2", "avx512_bf16", "amx_bf16"}, ["x86"], "bf16"),
    ({"avx2", "avx512_vnni", "avx512_bf16"}, ["x86", "fbgemm"], "int8"),
    ({"avx2"}, ["fbgemm"], "int8"),
    ({"avx512_bf16"}, [], "bf16"),
    ({"avx2"}, [], "fp32"),
])
def test_auto_on_cpu_picks_the_fastest_measured_path(monkeypatch, flags, engines, expected):
    monkeypatch.setattr(precision, "cpu_info", lambda: ("x", flags))
    monkeypatch.setattr(precision, "cpu_has_int8_engine", lambda: bool({"x86", "fbgemm"} & set(engines)))
    assert resolve_precision("auto", CPU) == expected


@pytest.mark.parametrize(("bf16_supported", "expected"), [(True, "bf16"), (False, "fp16")])
def test_auto_on_a_gpu_autocasts_to_half_precision(monkeypatch, bf16_supported, expected):
    monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda: bf16_supported)
    assert resolve_precision("auto", torch.device("cuda")) == expected


def test_gpu_window_batches_grow_with_the_gpus_memory(monkeypatch):
    class Properties:
        total_memory = 80 * 2**30

    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda device: Properties())
    assert default_window_batch_size(torch.device("cuda")) == 40
    Properties.total_memory = 8 * 2**30
    assert default_window_batch_size(torch.device("cuda")) == 8
    assert default_window_batch_size(CPU) == 8
