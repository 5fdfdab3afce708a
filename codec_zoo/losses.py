"""Reconstruction losses and the quality measure of the zoo (no adversarial training)."""

from __future__ import annotations

import torch
import torchaudio
from torch import nn


class LogMel(nn.Module):
    """Natural-log mel spectrogram (floor 1e-5); the quality measure uses n_fft 1024, hop 256, 80 mels."""

    def __init__(self, n_fft: int = 1024, hop: int = 256, n_mels: int = 80):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(16000, n_fft=n_fft, hop_length=hop, n_mels=n_mels,
                                                        power=1.0)

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return torch.log(self.mel(waveform).clamp_min(1e-5))


class ReconstructionLoss(nn.Module):
    """Multi-resolution log-mel L1 plus spectral convergence, averaged over resolutions."""

    def __init__(self, resolutions: tuple[tuple[int, int], ...] = ((256, 32), (512, 64), (1024, 80), (2048, 128))):
        super().__init__()
        self.mels = nn.ModuleList(LogMel(n_fft, n_fft // 4, n_mels) for n_fft, n_mels in resolutions)
        self.windows = [n_fft for n_fft, _ in resolutions]

    def forward(self, estimate: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        total = estimate.new_zeros(())
        for mel, n_fft in zip(self.mels, self.windows):
            total = total + (mel(estimate) - mel(target)).abs().mean()
            window = torch.hann_window(n_fft, device=target.device)
            est = torch.stft(estimate, n_fft, n_fft // 4, window=window, return_complex=True).abs()
            ref = torch.stft(target, n_fft, n_fft // 4, window=window, return_complex=True).abs()
            total = total + torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp_min(1e-7)
        return total / len(self.mels)


_QUALITY_MEL: LogMel | None = None


def log_mel_l1(estimate: torch.Tensor | object, target: torch.Tensor | object) -> float:
    """Mean |log-mel(estimate) - log-mel(target)| (n_fft 1024, hop 256, 80 mels): the zoo's quality measure."""
    global _QUALITY_MEL
    if _QUALITY_MEL is None:
        _QUALITY_MEL = LogMel()
    estimate, target = torch.as_tensor(estimate, dtype=torch.float32), torch.as_tensor(target, dtype=torch.float32)
    with torch.inference_mode():
        return float((_QUALITY_MEL(estimate) - _QUALITY_MEL(target)).abs().mean())


def mu_law_roundtrip(waveform, bits: int = 4):
    """Mu-law companding to `bits` bits and back: the quality bar a working codec must beat (4 bits)."""
    x = torch.as_tensor(waveform, dtype=torch.float32).clamp(-1, 1)
    mu = 2**bits - 1
    encoded = torch.sign(x) * torch.log1p(mu * x.abs()) / torch.log1p(torch.tensor(float(mu)))
    levels = torch.round((encoded + 1) / 2 * mu) / mu * 2 - 1
    return torch.sign(levels) * ((1 + mu) ** levels.abs() - 1) / mu
