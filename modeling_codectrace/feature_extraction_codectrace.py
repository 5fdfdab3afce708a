"""Waveform -> fixed-length model inputs, the official way (keep the first window, repeat short clips)."""

from __future__ import annotations

import numpy as np
import torch
from transformers import BatchFeature, Wav2Vec2FeatureExtractor

from .configuration_codectrace import OFFICIAL_WINDOW, SAMPLING_RATE


def fit_to_length(waveform: np.ndarray, length: int) -> np.ndarray:
    """Official crop/pad policy: keep the first `length` samples; tile a shorter clip until it fills them."""
    if waveform.shape[0] >= length:
        return waveform[:length]
    repeats = -(-length // waveform.shape[0])
    return np.tile(waveform, repeats)[:length]


class CodecTraceFeatureExtractor(Wav2Vec2FeatureExtractor):
    r"""
    Turns 16 kHz mono waveforms into `chunk_samples`-long model inputs (Wav2Vec2FeatureExtractor
    semantics). Longer clips keep their first `chunk_samples` samples and shorter ones are repeated
    until they fill the window, exactly as the official training and evaluation code does.

    Args:
        sampling_rate (`int`, *optional*, defaults to 16000):
            The only sampling rate accepted; resample beforehand (see `codectrace.audio.load_audio`).
        chunk_samples (`int`, *optional*, defaults to 64600):
            Length of one model input in samples.
        do_normalize (`bool`, *optional*, defaults to `False`):
            Zero-mean unit-variance normalisation per clip; off in the official recipe.
        feature_size, padding_value, return_attention_mask:
            As in [`Wav2Vec2FeatureExtractor`].
    """

    model_input_names = ["input_values"]

    def __init__(
        self,
        feature_size: int = 1,
        sampling_rate: int = SAMPLING_RATE,
        padding_value: float = 0.0,
        do_normalize: bool = False,
        return_attention_mask: bool = False,
        chunk_samples: int = OFFICIAL_WINDOW,
        **kwargs,
    ):
        super().__init__(
            feature_size=feature_size,
            sampling_rate=sampling_rate,
            padding_value=padding_value,
            do_normalize=do_normalize,
            return_attention_mask=return_attention_mask,
            **kwargs,
        )
        if chunk_samples <= 0:
            raise ValueError(f"chunk_samples must be positive, got {chunk_samples}.")
        self.chunk_samples = int(chunk_samples)

    def validate_waveform(self, waveform, index: int | None = None) -> np.ndarray:
        """Checks one clip and returns it as a float32 1-D array; raises `ValueError` saying what is wrong."""
        where = "" if index is None else f" (clip {index})"
        if isinstance(waveform, torch.Tensor):
            waveform = waveform.detach().cpu().numpy()
        if isinstance(waveform, (list, tuple)):
            waveform = np.asarray(waveform)
        if not isinstance(waveform, np.ndarray):
            raise ValueError(
                f"audio{where} must be a 1-D numpy array, torch tensor or list of floats; got "
                f"{type(waveform).__name__}."
            )
        if not (np.issubdtype(waveform.dtype, np.floating) or np.issubdtype(waveform.dtype, np.integer)):
            raise ValueError(f"audio{where} must hold numbers; got dtype {waveform.dtype}.")
        if waveform.ndim != 1:
            raise ValueError(
                f"audio{where} must be 1-D (mono samples); got shape {waveform.shape}. Downmix "
                "multi-channel audio first (e.g. with codectrace.audio.load_audio)."
            )
        if waveform.size == 0:
            raise ValueError(f"audio{where} is empty (0 samples).")
        waveform = waveform.astype(np.float32, copy=False)
        if not np.isfinite(waveform).all():
            raise ValueError(f"audio{where} contains NaN or Inf samples.")
        return waveform

    def __call__(
        self,
        raw_speech,
        sampling_rate: int | None = None,
        return_tensors: str | None = "pt",
        **kwargs,
    ) -> BatchFeature:
        """
        Args:
            raw_speech (`np.ndarray`, `torch.Tensor`, `list[float]` or a list of those):
                One clip or a batch of clips, 16 kHz mono.
            sampling_rate (`int`, *optional*):
                Sampling rate of `raw_speech`; must equal `self.sampling_rate` when given.
            return_tensors (`str`, *optional*, defaults to `"pt"`): `"pt"`, `"np"` or `None` (lists).

        Returns:
            [`BatchFeature`] with `input_values` of shape `(batch_size, chunk_samples)`.
        """
        if sampling_rate is not None and sampling_rate != self.sampling_rate:
            raise ValueError(
                f"audio is sampled at {sampling_rate} Hz but this model takes {self.sampling_rate} Hz; "
                "resample first (codectrace.audio.load_audio does it)."
            )
        is_batch = isinstance(raw_speech, (list, tuple)) and len(raw_speech) > 0 and not np.isscalar(raw_speech[0])
        if isinstance(raw_speech, np.ndarray | torch.Tensor) and raw_speech.ndim == 2:
            raise ValueError(
                f"got a 2-D array of shape {tuple(raw_speech.shape)}; pass a list of 1-D clips for a batch, "
                "and downmix multi-channel audio to mono."
            )
        clips = list(raw_speech) if is_batch else [raw_speech]
        windows = []
        for index, clip in enumerate(clips):
            waveform = self.validate_waveform(clip, index if is_batch else None)
            if self.do_normalize:
                waveform = (waveform - waveform.mean()) / np.sqrt(waveform.var() + 1e-7)
            windows.append(fit_to_length(waveform, self.chunk_samples))
        values = np.stack(windows).astype(np.float32)
        if return_tensors == "pt":
            data = {"input_values": torch.from_numpy(values)}
        elif return_tensors == "np":
            data = {"input_values": values}
        elif return_tensors is None:
            data = {"input_values": [v.tolist() for v in values]}
        else:
            raise ValueError(f"return_tensors must be 'pt', 'np' or None; got {return_tensors!r}.")
        return BatchFeature(data)
