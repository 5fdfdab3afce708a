"""Building blocks of the CodecFake-mini codecs: encoder -> quantizer -> decoder, with auxiliary heads.

Each codec is small (about 1M parameters) and is built from a `CodecSpec` (see `specs.py`), so that the
taxonomy classes of the CodecFake+ paper are real architectural choices:

- VQ: `mvq` residual VQ (several codebooks), `svq` one codebook, `sq` finite scalar quantisation
  (all from vector-quantize-pytorch);
- DEC: `time` (transposed convolutions with Snake activations up to the waveform) or `freq` (predicts STFT
  magnitude and phase at the frame rate; inverse STFT, Vocos style);
- AUX: `none`; `semantic` (the first quantizer level also predicts the phone of each frame); `disentangle`
  (a global speaker code from the input's log-mel feeds the decoder, and a gradient-reversal speaker
  classifier on the content codes pushes speaker identity out of them).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
import torchaudio
from torch import nn

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE

ENCODER_HOP = 80  # the shared encoder trunk runs at 200 Hz; each codec's head divides further


class Snake(nn.Module):
    """x + sin^2(a x) / a with a learnt per-channel a: periodic inductive bias for waveform decoders."""

    def __init__(self, channels: int):
        super().__init__()
        self.alpha = nn.Parameter(torch.ones(1, channels, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        alpha = self.alpha.abs() + 1e-4
        return x + torch.sin(alpha * x).pow(2) / alpha


def _activation(kind: str, channels: int) -> nn.Module:
    if kind == "snake":
        return Snake(channels)
    if kind == "elu":
        return nn.ELU()
    raise ValueError(f"unknown activation {kind!r}; accepted: snake, elu.")


class ResidualUnit(nn.Module):
    def __init__(self, channels: int, dilation: int = 1, kernel_size: int = 7, activation: str = "elu"):
        super().__init__()
        self.block = nn.Sequential(
            _activation(activation, channels),
            nn.Conv1d(channels, channels, kernel_size, dilation=dilation, padding=dilation * (kernel_size - 1) // 2),
            _activation(activation, channels),
            nn.Conv1d(channels, channels, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


class EncoderTrunk(nn.Module):
    """Waveform (B, T) -> features (B, 96, T / 80): strided convolutions, SEANet style. Shared by the zoo.

    The first convolution already strides by 4 (a learnt filterbank), which keeps the trunk cheap on CPU.
    """

    strides = (4, 4, 5)
    widths = (32, 64, 96)

    def __init__(self):
        super().__init__()
        layers: list[nn.Module] = []
        width = 1
        for stride, nxt in zip(self.strides, self.widths):
            if width > 1:
                layers.append(nn.ELU())
            layers += [nn.Conv1d(width, nxt, 2 * stride, stride=stride, padding=stride // 2),
                       ResidualUnit(nxt, 1), ResidualUnit(nxt, 3)]
            width = nxt
        self.layers = nn.Sequential(*layers)
        self.out_channels = width

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        return self.layers(waveform.unsqueeze(1))


class EncoderHead(nn.Module):
    """Per-codec part of the encoder: a last stride (sets the frame rate) and a projection to the code size."""

    def __init__(self, in_channels: int, stride: int, code_dim: int):
        super().__init__()
        self.layers = nn.Sequential(
            nn.ELU(), nn.Conv1d(in_channels, in_channels, 2 * stride, stride=stride, padding=math.ceil(stride / 2)),
            ResidualUnit(in_channels, 1, 3), nn.ELU(), nn.Conv1d(in_channels, code_dim, 3, padding=1),
        )

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        return self.layers(features)


class Quantizer(nn.Module):
    """Wraps vector-quantize-pytorch; works on (B, D, N) and returns (quantized, first-level output, loss)."""

    def __init__(self, kind: str, code_dim: int, codebook_size: int = 1024, levels: int = 1,
                 fsq_levels: tuple[int, ...] = (8, 5, 5, 5), codebook_dim: int = 16):
        super().__init__()
        from vector_quantize_pytorch import FSQ, ResidualVQ, VectorQuantize

        self.kind = kind
        common = dict(decay=0.95, kmeans_init=True, kmeans_iters=4, threshold_ema_dead_code=2, commitment_weight=1.0)
        if kind == "mvq":
            self.quantizer = ResidualVQ(dim=code_dim, num_quantizers=levels, codebook_size=codebook_size,
                                        codebook_dim=codebook_dim, **common)
        elif kind == "svq":
            self.quantizer = VectorQuantize(dim=code_dim, codebook_size=codebook_size, codebook_dim=codebook_dim,
                                            **common)
        elif kind == "sq":
            self.quantizer = FSQ(levels=list(fsq_levels), dim=code_dim)
        else:
            raise ValueError(f"unknown quantizer {kind!r}; accepted: mvq, svq, sq.")

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        z = z.transpose(1, 2)
        if self.kind == "mvq":
            quantized, _, losses, all_codes = self.quantizer(z, return_all_codes=True)
            first, loss = self.quantizer.project_out(all_codes[0]), losses.mean()
        elif self.kind == "svq":
            quantized, _, loss = self.quantizer(z)
            first = quantized
        else:
            quantized, _ = self.quantizer(z)
            first, loss = quantized, z.new_zeros(())
        return quantized.transpose(1, 2), first.transpose(1, 2), loss


# Time-domain decoder bodies (200 Hz -> 16 kHz). Each is pre-trained once as an auto-encoder on its split's
# trunk features and then fine-tuned inside every codec that uses it. Bodies "a", "c" and "d" serve the training
# codecs (three bodies of other strides, widths and activations, so a tracer cannot take one body's traits for
# "time-domain"); "b" serves the validation codecs and "e" the test codecs, so no codec shares decoder weights
# across splits.
TIME_BODIES: dict[str, dict] = {
    "a": {"strides": (5, 4, 4), "channels": 128, "seed": 101, "split": "train", "activation": "snake"},
    "b": {"strides": (8, 5, 2), "channels": 112, "seed": 202, "split": "validation", "activation": "snake"},
    "c": {"strides": (4, 4, 5), "channels": 96, "seed": 303, "split": "train", "activation": "snake"},
    "d": {"strides": (2, 5, 8), "channels": 112, "seed": 404, "split": "train", "activation": "elu"},
    "e": {"strides": (10, 4, 2), "channels": 120, "seed": 505, "split": "test", "activation": "snake"},
}


class TimeDecoderBody(nn.Module):
    """(B, C, N) at 200 Hz -> waveform (B, 80 N): transposed convolutions with Snake (or ELU) activations.

    Channels halve at each upsampling; the last (full-rate) stage has one residual unit instead of two to keep
    training affordable on CPU.
    """

    def __init__(self, channels: int, strides: tuple[int, ...], activation: str = "snake"):
        super().__init__()
        layers: list[nn.Module] = []
        width = channels
        for index, stride in enumerate(strides):
            nxt = max(width // 2, 16)
            layers += [_activation(activation, width),
                       nn.ConvTranspose1d(width, nxt, 2 * stride, stride=stride, padding=stride // 2 + stride % 2,
                                          output_padding=stride % 2),
                       ResidualUnit(nxt, 1, activation=activation)]
            if index < len(strides) - 1:
                layers.append(ResidualUnit(nxt, 3, activation=activation))
            width = nxt
        layers += [_activation(activation, width), nn.Conv1d(width, 1, 7, padding=3), nn.Tanh()]
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x).squeeze(1)


def time_body(name: str) -> TimeDecoderBody:
    """A fresh (untrained) time-domain body as `TIME_BODIES[name]` describes it."""
    body = TIME_BODIES[name]
    return TimeDecoderBody(body["channels"], body["strides"], body.get("activation", "snake"))


class TimeDecoder(nn.Module):
    """Codes (B, D, N) -> waveform: a codec-specific head up to 200 Hz, then a (pre-trained) time-domain body."""

    def __init__(self, code_dim: int, head_stride: int, body: str, channels: int = 160):
        super().__init__()
        body_channels = TIME_BODIES[body]["channels"]
        layers: list[nn.Module] = [nn.Conv1d(code_dim, channels, 7, padding=3), Snake(channels)]
        if head_stride > 1:
            layers.append(nn.ConvTranspose1d(channels, body_channels, 2 * head_stride, stride=head_stride,
                                             padding=head_stride // 2 + head_stride % 2,
                                             output_padding=head_stride % 2))
        else:
            layers.append(nn.Conv1d(channels, body_channels, 3, padding=1))
        layers.append(ResidualUnit(body_channels, 1, activation="snake"))
        self.head = nn.Sequential(*layers)
        self.body = time_body(body)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        return self.body(self.head(codes))


class BodyPretrainer(nn.Module):
    """Auto-encoder used once per body: trunk features (200 Hz) -> adapter -> time-domain body -> waveform."""

    hop = ENCODER_HOP

    def __init__(self, body: str, trunk_channels: int = 96):
        super().__init__()
        channels = TIME_BODIES[body]["channels"]
        self.adapter = nn.Sequential(nn.Conv1d(trunk_channels, channels, 7, padding=3),
                                     ResidualUnit(channels, 1, activation="snake"))
        self.body = time_body(body)

    def forward(self, waveform: torch.Tensor, trunk_features: torch.Tensor, **_) -> dict[str, torch.Tensor]:
        audio = self.body(self.adapter(trunk_features))
        length = waveform.shape[-1]
        return {"audio": F.pad(audio, (0, max(0, length - audio.shape[-1])))[..., :length],
                "commit_loss": waveform.new_zeros(())}


class ISTFTDecoder(nn.Module):
    """Codes (B, D, N) -> STFT magnitude and phase per frame -> waveform by inverse STFT (Vocos style).

    `upsample` > 1 first raises the frame rate by a transposed convolution, so the STFT hop is
    `codec hop / upsample`.
    """

    def __init__(self, code_dim: int, hop: int, n_fft: int, channels: int = 256, blocks: int = 4, upsample: int = 1):
        super().__init__()
        layers: list[nn.Module] = [nn.Conv1d(code_dim, channels, 7, padding=3)]
        if upsample > 1:
            layers += [nn.ELU(), nn.ConvTranspose1d(channels, channels, 2 * upsample, stride=upsample,
                                                    padding=upsample // 2 + upsample % 2,
                                                    output_padding=upsample % 2)]
        layers += [ResidualUnit(channels, 3 ** (i % 3), 3) for i in range(blocks)]
        layers += [nn.ELU(), nn.Conv1d(channels, n_fft + 2, 1)]
        self.layers = nn.Sequential(*layers)
        self.hop, self.n_fft = hop // upsample, n_fft
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        out = self.layers(codes)
        log_magnitude, phase = out.chunk(2, dim=1)
        magnitude = torch.exp(log_magnitude.clamp(max=6.0))
        spectrum = torch.polar(magnitude, phase)
        frames = spectrum.shape[-1]
        return torch.istft(spectrum, self.n_fft, self.hop, window=self.window, center=True,
                           length=frames * self.hop)


class GradientReversal(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: float) -> torch.Tensor:
        ctx.weight = weight
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return -ctx.weight * grad, None


class SpeakerEncoder(nn.Module):
    """Log-mel of the input -> one global timbre vector per clip (mean over time)."""

    def __init__(self, dim: int = 64, n_mels: int = 64):
        super().__init__()
        self.mel = torchaudio.transforms.MelSpectrogram(SAMPLING_RATE, n_fft=1024, hop_length=256, n_mels=n_mels)
        self.net = nn.Sequential(nn.Conv1d(n_mels, 128, 5, padding=2), nn.ELU(), nn.Conv1d(128, 128, 5, padding=2),
                                 nn.ELU(), nn.Conv1d(128, dim, 1))

    def forward(self, waveform: torch.Tensor) -> torch.Tensor:
        features = torch.log(self.mel(waveform).clamp_min(1e-5))
        return self.net(features).mean(dim=-1)


class NeuralCodec(nn.Module):
    """One zoo codec. `forward` returns the re-synthesised waveform (same length) and the auxiliary tensors."""

    def __init__(self, spec, trunk: EncoderTrunk | None = None, num_speakers: int = 0, num_phones: int = 0):
        super().__init__()
        self.spec = spec
        self.trunk = trunk if trunk is not None else EncoderTrunk()
        self.head = EncoderHead(self.trunk.out_channels, spec.head_stride, spec.code_dim)
        self.quantizer = Quantizer(spec.vq, spec.code_dim, spec.codebook_size, spec.levels, tuple(spec.fsq_levels))
        self.hop = ENCODER_HOP * spec.head_stride
        if spec.dec == "time":
            if spec.decoder_body not in TIME_BODIES:
                raise ValueError(f"{spec.name}: unknown time-domain body {spec.decoder_body!r}; accepted: "
                                 f"{', '.join(TIME_BODIES)}.")
            self.decoder = TimeDecoder(spec.code_dim, spec.head_stride, spec.decoder_body, spec.decoder_channels)
        elif spec.dec == "freq":
            self.decoder = ISTFTDecoder(spec.code_dim, self.hop, spec.n_fft, spec.decoder_channels,
                                        spec.decoder_blocks, spec.istft_upsample)
        else:
            raise ValueError(f"unknown decoder {spec.dec!r}; accepted: time, freq.")
        if spec.aux == "semantic":
            self.phone_head = nn.Conv1d(spec.code_dim, max(num_phones, 1), 1)
        elif spec.aux == "disentangle":
            self.speaker_encoder = SpeakerEncoder(spec.code_dim)
            self.speaker_classifier = nn.Sequential(nn.Conv1d(spec.code_dim, 128, 1), nn.ELU(),
                                                    nn.Conv1d(128, max(num_speakers, 1), 1))
        elif spec.aux != "none":
            raise ValueError(f"unknown auxiliary objective {spec.aux!r}; accepted: none, semantic, disentangle.")

    def forward(self, waveform: torch.Tensor, reversal_weight: float = 1.0,
                trunk_features: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """`trunk_features` (B, 96, T / 80), when given, replace running the (frozen, shared) trunk."""
        length = waveform.shape[-1]
        padded = F.pad(waveform, (0, (-length) % self.hop))
        if trunk_features is None:
            trunk_features = self.trunk(padded)
        frames = padded.shape[-1] // ENCODER_HOP
        trunk_features = F.pad(trunk_features, (0, max(0, frames - trunk_features.shape[-1])))[..., :frames]
        z = self.head(trunk_features)
        quantized, first_level, commit_loss = self.quantizer(z)
        out = {"commit_loss": commit_loss}
        decoder_input = quantized
        if self.spec.aux == "semantic":
            out["phone_logits"] = self.phone_head(first_level)
        elif self.spec.aux == "disentangle":
            timbre = self.speaker_encoder(padded)
            decoder_input = quantized + timbre.unsqueeze(-1)
            reversed_codes = GradientReversal.apply(quantized, reversal_weight)
            out["speaker_logits"] = self.speaker_classifier(reversed_codes).mean(dim=-1)
        audio = self.decoder(decoder_input)
        out["audio"] = F.pad(audio, (0, max(0, length - audio.shape[-1])))[..., :length]
        return out

    @torch.inference_mode()
    def resynthesize(self, waveform: torch.Tensor) -> torch.Tensor:
        """(T,) or (B, T) float waveform at 16 kHz -> the codec's re-synthesis, same shape."""
        squeeze = waveform.ndim == 1
        batch = waveform.unsqueeze(0) if squeeze else waveform
        audio = self.forward(batch)["audio"]
        return audio.squeeze(0) if squeeze else audio
