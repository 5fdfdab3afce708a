"""The STFT phase front end (`feature_encoder="stft_phase"`, not in the paper): a fixed STFT exposing each bin's
phase-advance deviation, in place of the first convolution of Wav2Vec2's feature encoder. The CPU demo uses it
because the decoder domain of unseen codecs shows in the phase (docs/codecfake_mini.md)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def stft_phase_features(input_values: torch.Tensor, n_fft: int, hop: int, features) -> torch.Tensor:
    """The fixed features of `StftPhaseFeatureEncoder` (see there), also for probes outside the model.

    (batch, samples) -> (batch, len(features) * (n_fft // 2 + 1), frames), in the order `features` lists them.
    """
    with torch.no_grad():
        window = torch.hann_window(n_fft, device=input_values.device, dtype=torch.float32)
        spectrum = torch.stft(input_values.float(), n_fft, hop, window=window, center=False,
                              return_complex=True)  # (batch, bins, frames)
        parts = {}
        if "log_power" in features:
            parts["log_power"] = 0.1 * torch.log(spectrum.real**2 + spectrum.imag**2 + 1e-8)
        if "phase_deviation" in features or "weighted_phase_deviation" in features:
            bins = torch.arange(spectrum.shape[1], device=spectrum.device)
            phase_step = -2 * torch.pi * bins * hop / n_fft  # a steady sinusoid's advance per hop
            steady = torch.polar(torch.ones_like(phase_step, dtype=torch.float32), phase_step.float())
            advance = spectrum[..., 1:] * spectrum[..., :-1].conj() * steady[:, None]
            deviation = advance.angle().abs() / torch.pi
            parts["phase_deviation"] = F.pad(deviation, (1, 0))
            if "weighted_phase_deviation" in features:
                energy = advance.abs()  # |S_t| |S_t-1|; relative to the frame's mean bin
                share = energy / (energy.mean(dim=1, keepdim=True) + 1e-12)
                parts["weighted_phase_deviation"] = F.pad(deviation * share, (1, 0))
        return torch.cat([parts[name] for name in features], dim=1).to(input_values.dtype)


class StftPhaseFeatureEncoder(nn.Module):
    """`feature_encoder="stft_phase"`: the backbone's feature encoder with a fixed STFT as its first layer.

    Waveform (batch, samples) -> (batch, conv_dim[-1], frames): Hann-window STFT (`config.stft_n_fft`,
    `config.stft_hop_length`, no centring, so the frame count is that of the convolution it replaces) -> per bin, as
    `features` lists them, `log_power` = `0.1 * log(power + 1e-8)` and `phase_deviation` = `|angle(S_t *
    conj(S_t-1) * exp(-2j pi k hop / n_fft))| / pi` in [0, 1] (0 in the first frame) and
    `weighted_phase_deviation` = that deviation times `|S_t S_t-1|` over its mean across the frame's bins ->
    one learned convolution -> GELU. The STFT features are computed without gradient (nothing in them is learned).
    """

    def __init__(self, config):
        super().__init__()
        backbone_config = config.backbone_config
        self.n_fft, self.hop = config.stft_n_fft, config.stft_hop_length
        self.features = tuple(config.stft_features)
        self.projection = nn.Conv1d(len(self.features) * (self.n_fft // 2 + 1), backbone_config.conv_dim[-1],
                                    backbone_config.conv_kernel[1],
                                    stride=backbone_config.conv_stride[1], bias=backbone_config.conv_bias)

    def _freeze_parameters(self) -> None:  # Wav2Vec2Model.freeze_feature_encoder calls this
        for parameter in self.parameters():
            parameter.requires_grad = False

    def stft_features(self, input_values: torch.Tensor) -> torch.Tensor:
        """(batch, samples) -> (batch, len(features) * (n_fft // 2 + 1), frames), features in `self.features` order."""
        return stft_phase_features(input_values, self.n_fft, self.hop, self.features)

    def forward(self, input_values: torch.Tensor) -> torch.Tensor:
        return F.gelu(self.projection(self.stft_features(input_values)))
