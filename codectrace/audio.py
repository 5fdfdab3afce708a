"""One `load_audio` for the whole project: decode, downmix to mono, resample to 16 kHz, validate.

Accepted inputs (nothing is ever fetched from a URL):
- a path (`str` or `os.PathLike`) to a local audio file;
- a binary file object (`open(path, "rb")`, `io.BytesIO`) or raw `bytes` of an encoded file;
- a numpy array or torch tensor of samples, with `sampling_rate=` (shape `(samples,)`, or
  `(channels, samples)` / `(samples, channels)`: the smaller dimension is taken as channels);
- a mapping `{"array" or "raw": samples, "sampling_rate": int}` (the `datasets` Audio format), or
  `{"bytes": ..., "path": ...}` (an undecoded `datasets` Audio value).
WAV/FLAC/OGG are decoded with soundfile; anything else (mp3, m4a, opus, webm, ...) through FFmpeg.
"""

from __future__ import annotations

import io
import os
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from modeling_codectrace.configuration_codectrace import SAMPLING_RATE

ACCEPTED_INPUTS = (
    "a local file path, a binary file object or bytes of an encoded audio file, a numpy array or torch "
    "tensor with sampling_rate=..., or a dict {'array' or 'raw': samples, 'sampling_rate': int} "
    "or {'bytes': ..., 'path': ...}"
)
SOUNDFILE_EXTENSIONS = {".wav", ".flac", ".ogg", ".oga", ".aiff", ".aif", ".au"}
AUDIO_EXTENSIONS = SOUNDFILE_EXTENSIONS | {".mp3", ".m4a", ".aac", ".opus", ".webm", ".mp4", ".wma", ".mka"}


@dataclass
class AudioInfo:
    """What `load_audio` changed on the way: the caller can count resampled or downmixed clips."""

    original_sampling_rate: int
    original_channels: int

    @property
    def resampled(self) -> bool:
        return self.original_sampling_rate != SAMPLING_RATE

    @property
    def downmixed(self) -> bool:
        return self.original_channels > 1


class AudioError(ValueError):
    """Audio that `load_audio` refuses. `str()` says the problem and what is accepted; `.problem` is the
    problem alone, for one-line reports (CLI rows, the Space)."""

    def __init__(self, problem: str):
        super().__init__(f"{problem}. load_audio accepts {ACCEPTED_INPUTS}.")
        self.problem = problem


def short_message(error: Exception) -> str:
    """The problem part of an error, without the list of accepted inputs."""
    return getattr(error, "problem", str(error))


def _refuse(problem: str) -> AudioError:
    return AudioError(problem)


def _to_float(samples: np.ndarray) -> np.ndarray:
    """Integer PCM -> float32 in [-1, 1); floats pass through as float32."""
    if np.issubdtype(samples.dtype, np.integer):
        info = np.iinfo(samples.dtype)
        if info.min == 0:  # unsigned (8-bit WAV): centre first
            samples = samples.astype(np.float64) - (info.max + 1) / 2
            return (samples / ((info.max + 1) / 2)).astype(np.float32)
        return (samples.astype(np.float64) / -float(info.min)).astype(np.float32)
    if np.issubdtype(samples.dtype, np.floating):
        return samples.astype(np.float32, copy=False)
    raise _refuse(f"audio samples must be numbers, got dtype {samples.dtype}")


def _channels_first(samples: np.ndarray) -> np.ndarray:
    """(samples,) or 2-D in either orientation -> (channels, samples)."""
    if samples.ndim == 1:
        return samples[None, :]
    if samples.ndim == 2:
        return samples if samples.shape[0] <= samples.shape[1] else samples.T
    raise _refuse(f"audio array must be 1-D or 2-D (channels x samples), got shape {samples.shape}")


def _decode_with_ffmpeg(data: bytes, label: str) -> tuple[np.ndarray, int]:
    if shutil.which("ffmpeg") is None:
        raise ValueError(f"{label}: not a WAV/FLAC/OGG file and FFmpeg is not installed to decode it.")
    command = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-i", "pipe:0",
               "-f", "f32le", "-acodec", "pcm_f32le", "-ac", "1", "-ar", str(SAMPLING_RATE), "pipe:1"]
    result = subprocess.run(command, input=data, capture_output=True, timeout=600)
    if result.returncode != 0 or not result.stdout:
        reason = result.stderr.decode(errors="replace").strip().splitlines()[-1:] or ["no audio stream"]
        raise _refuse(f"{label}: could not be decoded as audio ({reason[0]})")
    # FFmpeg already downmixed and resampled; report the original layout as unknown-but-converted.
    return np.frombuffer(result.stdout, dtype=np.float32).copy()[None, :], SAMPLING_RATE


def _decode_bytes(data: bytes, label: str) -> tuple[np.ndarray, int, int, int]:
    """Encoded bytes -> (channels-first float samples, rate, original rate, original channels)."""
    if not data:
        raise _refuse(f"{label}: is empty (0 bytes)")
    try:
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
        return samples.T, rate, rate, samples.shape[1]
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    probe = _probe_with_ffmpeg(data)
    samples, rate = _decode_with_ffmpeg(data, label)
    return samples, rate, probe[0] or rate, probe[1] or 1


def _probe_with_ffmpeg(data: bytes) -> tuple[int | None, int | None]:
    """Original sampling rate and channel count of an FFmpeg-only format (None when unknown)."""
    if shutil.which("ffprobe") is None:
        return None, None
    command = ["ffprobe", "-v", "error", "-select_streams", "a:0", "-show_entries",
               "stream=sample_rate,channels", "-of", "csv=p=0", "pipe:0"]
    try:
        result = subprocess.run(command, input=data, capture_output=True, timeout=60)
        rate, channels = result.stdout.decode().strip().split(",")[:2]
        return int(rate), int(channels)
    except (ValueError, subprocess.SubprocessError):
        return None, None


def load_audio(
    audio,
    sampling_rate: int | None = None,
    *,
    target_sampling_rate: int = SAMPLING_RATE,
    min_seconds: float | None = None,
    max_seconds: float | None = None,
    return_info: bool = False,
) -> np.ndarray | tuple[np.ndarray, AudioInfo]:
    """
    Decodes and normalises audio to a float32 mono waveform at `target_sampling_rate` (16 kHz).

    Args:
        audio: see the module docstring for every accepted form.
        sampling_rate (`int`, *optional*): required with arrays and tensors; refused with files.
        min_seconds, max_seconds (`float`, *optional*): refuse clips shorter / longer than this.
        return_info (`bool`, *optional*, defaults to `False`): also return an [`AudioInfo`].

    Raises:
        `ValueError` naming the problem (missing file, not audio, empty, NaN/Inf, too short, too long,
        wrong type) and listing what is accepted; a missing file is a `ValueError` too.
    """
    if isinstance(audio, Mapping) and ("array" in audio or "raw" in audio):
        array = audio["array"] if "array" in audio else audio["raw"]
        return load_audio(array, audio.get("sampling_rate", sampling_rate), target_sampling_rate=target_sampling_rate,
                          min_seconds=min_seconds, max_seconds=max_seconds, return_info=return_info)
    audio, label = _encoded_or_samples(audio, sampling_rate)
    if isinstance(audio, bytes):
        samples, rate, original_rate, channels = _decode_bytes(audio, str(label))
    else:
        samples = _channels_first(_to_float(np.asarray(audio)))
        rate = original_rate = int(sampling_rate)
        channels = samples.shape[0]
    _check_samples(samples, rate, label)
    mono = _mono_at(samples, rate, target_sampling_rate)
    seconds = mono.shape[0] / target_sampling_rate
    if min_seconds is not None and seconds < min_seconds:
        raise _refuse(f"{label}: is {seconds:.3f} s long, shorter than the minimum of {min_seconds:g} s")
    if max_seconds is not None and seconds > max_seconds:
        raise _refuse(f"{label}: is {seconds:.1f} s long, longer than the maximum of {max_seconds:g} s")
    if return_info:
        return mono, AudioInfo(original_sampling_rate=original_rate, original_channels=channels)
    return mono


def _encoded_or_samples(audio, sampling_rate: int | None) -> tuple[bytes | np.ndarray, str]:
    """Any accepted input (but a mapping of samples) -> the encoded file's bytes, or the samples as an array (whose
    `sampling_rate` must be given); and a label naming the input in errors."""
    if isinstance(audio, Mapping):
        if audio.get("bytes") is not None:
            audio = audio["bytes"]
        elif audio.get("path"):
            audio = audio["path"]
        else:
            raise _refuse(f"dict has keys {sorted(audio)} but none of 'array', 'raw', 'bytes', 'path'")
    if isinstance(audio, str) and audio.split("://", 1)[0].lower() in {"http", "https", "ftp", "s3", "gs", "hf"}:
        raise _refuse(f"{audio!r} looks like a URL; download it first (URLs are never fetched implicitly)")
    if isinstance(audio, (str, os.PathLike)):
        path = Path(audio)
        if not path.exists():
            raise _refuse(f"{path}: no such file")
        if path.is_dir():
            raise _refuse(f"{path}: is a folder, not an audio file")
        if sampling_rate is not None:
            raise _refuse(f"sampling_rate={sampling_rate} was given with a file; the file's own rate is used")
        return path.read_bytes(), str(path)
    if hasattr(audio, "read"):
        label = getattr(audio, "name", "file object")
        data = audio.read()
        if isinstance(data, str):
            raise _refuse(f"{label}: was opened in text mode; open it with 'rb'")
        return data, label
    if isinstance(audio, (bytes, bytearray, memoryview)):
        return bytes(audio), "audio"
    if isinstance(audio, (np.ndarray, torch.Tensor, list, tuple)):
        if sampling_rate is None:
            raise _refuse("an array or tensor needs its sampling_rate")
        return (audio.detach().cpu().numpy() if isinstance(audio, torch.Tensor) else np.asarray(audio)), "audio"
    raise _refuse(f"got {type(audio).__name__}")


def _check_samples(samples: np.ndarray, rate: int, label: str) -> None:
    if rate <= 0:
        raise _refuse(f"{label}: sampling rate must be positive, got {rate}")
    if samples.size == 0 or samples.shape[-1] == 0:
        raise _refuse(f"{label}: contains no samples")
    if not np.isfinite(samples).all():
        raise _refuse(f"{label}: contains NaN or Inf samples")


def _mono_at(samples: np.ndarray, rate: int, target_sampling_rate: int) -> np.ndarray:
    """(channels, samples) -> float32 mono (the mean of the channels) at `target_sampling_rate`."""
    mono = samples.mean(axis=0) if samples.shape[0] > 1 else samples[0]
    if rate != target_sampling_rate:
        mono = AF.resample(torch.from_numpy(np.ascontiguousarray(mono)), rate, target_sampling_rate).numpy()
    return np.ascontiguousarray(mono, dtype=np.float32)


def is_audio_file(path: str | os.PathLike) -> bool:
    """Whether a path has one of the audio extensions the CLI and folder scans pick up."""
    return Path(path).suffix.lower() in AUDIO_EXTENSIONS
