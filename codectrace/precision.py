"""How the pipeline runs the model: the precision (`auto`, `fp32`, `bf16`, `fp16`, `int8`), the copy of the model made
for it, and the window batch that suits the device. The caller's model object is never changed.

Measured with benchmarks/bench_inference.py at the XLS-R 300M shape (benchmarks/RESULTS.md): on CPUs with AMX a bf16
copy of the model whose convolutional feature encoder runs as matrix products is the fastest path; without AMX, int8
dynamic quantisation of the Linear layers (with the same feature encoder, in fp32); on GPUs, autocast.
"""

from __future__ import annotations

import contextlib
import copy
import warnings

import torch
from torch import nn

from .machine import cpu_info

PRECISIONS = ("auto", "fp32", "bf16", "fp16", "int8")


def cpu_has_fast_bf16() -> bool:
    """Whether this CPU computes bf16 matmuls natively (AVX-512 BF16 or AMX); else bf16 would be slower."""
    return bool({"avx512_bf16", "amx_bf16"} & cpu_info()[1])


def cpu_has_amx() -> bool:
    """Whether this CPU has AMX bf16 tiles (about 10x its fp32 matmul rate, measured with 2 cores)."""
    return "amx_bf16" in cpu_info()[1]


def cpu_has_int8_engine() -> bool:
    """Whether this PyTorch has its x86 int8 engine (fbgemm / x86) for dynamic quantisation."""
    return bool({"x86", "fbgemm"} & set(torch.backends.quantized.supported_engines))


def resolve_precision(precision: str, device: torch.device) -> str:
    """`auto` on CPU: `bf16` with AMX (5.4x the naive fp32 path on an Intel Xeon with AMX at batch 8, against 2.1x for
    int8), else `int8` wherever PyTorch has its x86 int8 engine (2.6x on an AMD EPYC with AVX-512 VNNI and bf16,
    against bf16 autocast's 2.2x; 1.4-1.6x on an AVX2-only AMD EPYC, where bf16 is emulated and runs at 0.15x), else
    `bf16` where the CPU has native bf16, else `fp32`. On CUDA: `bf16` where the GPU supports it, else `fp16`;
    elsewhere `fp32` (benchmarks/RESULTS.md)."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}.")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
    if device.type != "cpu":
        return "fp32"
    if cpu_has_amx():
        return "bf16"
    if cpu_has_int8_engine():
        return "int8"
    return "bf16" if cpu_has_fast_bf16() else "fp32"


def default_window_batch_size(device: torch.device) -> int:
    """Windows per forward pass: 8 on CPU (batch 8 and batch 1 differ by under 25% there); on a GPU one window per
    2 GiB of its memory, between 8 and 128 (a 4-s window of the XLS-R shape needs well under 100 MB in bf16)."""
    if device.type != "cuda":
        return 8
    gibibytes = torch.cuda.get_device_properties(device).total_memory / 2**30
    return int(min(128, max(8, gibibytes // 2)))


class MatmulConv1d(nn.Module):
    """A `Conv1d` (no padding, dilation or groups) computed as one matrix product over unfolded frames, with the
    same weight and bias. On CPU this runs the Wav2Vec2 feature encoder 1.6x (fp32) to 3x (bf16) faster than
    PyTorch's convolution, whose layout conversions cost more than the arithmetic."""

    def __init__(self, conv: nn.Conv1d):
        super().__init__()
        self.kernel_size, self.stride = conv.kernel_size[0], conv.stride[0]
        self.weight, self.bias = conv.weight, conv.bias

    @staticmethod
    def can_replace(module: nn.Module) -> bool:
        return (isinstance(module, nn.Conv1d) and module.groups == 1 and module.dilation == (1,)
                and module.padding in ((0,), "valid") and module.padding_mode == "zeros")

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        frames = hidden.unfold(2, self.kernel_size, self.stride)  # (batch, channels, time, kernel)
        batch, channels, time, kernel = frames.shape
        frames = frames.permute(0, 2, 1, 3).reshape(batch, time, channels * kernel)
        out = frames @ self.weight.reshape(self.weight.shape[0], -1).t()
        if self.bias is not None:
            out = out + self.bias
        return out.transpose(1, 2)


def with_matmul_feature_encoder(model: nn.Module) -> nn.Module:
    """Replaces, in place, every plain Conv1d of the backbone's feature encoder by a `MatmulConv1d`."""
    encoder = model.wav2vec2.feature_extractor
    for name, module in list(encoder.named_modules()):
        if MatmulConv1d.can_replace(module):
            parent_name, _, child = name.rpartition(".")
            setattr(encoder.get_submodule(parent_name) if parent_name else encoder, child, MatmulConv1d(module))
    return model


def quantize_linear_int8(model: nn.Module) -> nn.Module:
    """Dynamic int8 Linear layers (weights int8, activations quantised per batch), applied in place."""
    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch.ao.quantization deprecation notices
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8, inplace=True)


def model_for_inference(model: nn.Module, precision: str, device: torch.device) -> nn.Module:
    """The model to run at a resolved precision: the model itself for `fp32` and on GPUs (autocast does the rest,
    see `autocast`), else an eval-mode copy: `bf16` on CPU casts the copy to bf16, `int8` quantises its Linear
    layers, and both run the feature encoder as matrix products."""
    if precision == "fp32" or device.type != "cpu":
        return model
    if precision == "fp16":
        raise ValueError("precision 'fp16' runs on GPUs only; on CPU use 'bf16', 'int8' or 'fp32'.")
    fast = with_matmul_feature_encoder(copy.deepcopy(model).eval())
    return fast.to(torch.bfloat16) if precision == "bf16" else quantize_linear_int8(fast)


def input_dtype(precision: str, device: torch.device) -> torch.dtype:
    """What the model's input is cast to: bf16 for the CPU's bf16 copy, else fp32."""
    return torch.bfloat16 if precision == "bf16" and device.type == "cpu" else torch.float32


def autocast(precision: str, device: torch.device):
    """bf16 / fp16 autocast on GPUs; nothing on CPU, where the copy already has its precision."""
    if device.type != "cpu" and precision in ("bf16", "fp16"):
        return torch.autocast(device_type=device.type, dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()
