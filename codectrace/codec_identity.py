"""Where enrolled generators and traced clips are compared: a clip's *codec identity*.

A neural codec leaves a fingerprint on the long-term spectrum of what it re-synthesises (its band limit, the tilt and
ripple of its decoder, its noise floor, the harmonics of its frame rate). A clip's identity features are the mean and
the standard deviation over time of its log power spectrum (512-sample frames every 20 ms at 16 kHz), the mean taken
relative to its own average so that the clip's level does not count. Linear discriminant analysis of the training
split's sources (every training codec and bona fide speech) keeps the directions of those features that tell codecs
apart, the classic back-end of speaker verification; each training source's centroid there is kept too, so that a
clip is attributed to an enrolled generator only when it lies nearer to it than to every training source.

These features and this map were chosen on the validation codecs over the heads' embeddings and their linear
discriminant maps (docs/enrolment.md, docs/research/codec_identity_spectrum.md). They do not depend on the model's
weights: the identity is fitted from audio alone, in seconds.
"""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from .files import atomic_path
from .unknown_source import unit_rows

IDENTITY_FILE_NAME = "codec_identity.safetensors"
IDENTITY_FORMAT = "codectrace-codec-identity"
IDENTITY_VERSION = 2  # 1: a map of the identity head's embedding (replaced, docs/research/removed.md)
FEATURES = "log-spectrum-statistics"
FRAME = 512  # samples per spectrum frame (32 ms at 16 kHz)
FRAME_HOP = 320  # 20 ms
BINS = FRAME // 2 + 1
POWER_FLOOR = 1e-10  # digital silence: -100 dB, not minus infinity
FIT_CLIPS_PER_SOURCE = 100  # training clips per source that a codec identity is fitted on
_TAPER = torch.hann_window(FRAME, periodic=False)


class SpectrumStatistics:
    """Running per-bin sums of a clip's log power spectrum, fed window by window as the pipeline reads a clip (each
    sample once, however windows overlap): the features are those of the whole clip, whatever its windowing. Samples
    are gathered up to `BATCH_SAMPLES` before their frames are transformed: a short clip costs one pass."""

    BATCH_SAMPLES = 10 * 16000

    def __init__(self):
        self.frames = 0
        self.sum = torch.zeros(BINS, dtype=torch.float64)
        self.square_sum = torch.zeros(BINS, dtype=torch.float64)
        self._gathered: list[np.ndarray] = []  # samples whose frames are not transformed yet, in order
        self._covered_until = 0

    def add(self, start: int, window: np.ndarray) -> None:
        """Adds the samples of `window` (starting at sample `start`) that earlier windows did not cover."""
        if start > self._covered_until:  # a gap between windows: frames never straddle it
            self._transform(final=True)
        new = np.asarray(window, np.float32)[max(self._covered_until - start, 0):]
        self._covered_until = max(self._covered_until, start + len(window))
        self._gathered.append(new)
        if sum(map(len, self._gathered)) >= self.BATCH_SAMPLES:
            self._transform()

    def _transform(self, final: bool = False) -> None:
        """Adds the frames of the gathered samples to the sums; keeps the samples of an incomplete last frame unless
        `final` (a gap or the clip's end follows)."""
        samples = np.concatenate([np.zeros(0, np.float32), *self._gathered])
        count = (len(samples) - FRAME) // FRAME_HOP + 1 if len(samples) >= FRAME else 0
        if count:  # torch's float32 FFT: a fifth of numpy's (float64) time on a small CPU
            frames = torch.from_numpy(samples).unfold(0, FRAME, FRAME_HOP)[:count] * _TAPER
            spectrum = torch.fft.rfft(frames, dim=1)
            log_power = (spectrum.real.square() + spectrum.imag.square()).add_(POWER_FLOOR).log_()
            self.frames += count
            self.sum += log_power.sum(dim=0)
            self.square_sum += log_power.square_().sum(dim=0)
        self._gathered = [] if final else [samples[count * FRAME_HOP:]]

    def features(self) -> np.ndarray | None:
        """(2 * bins,): the level-relative mean and the standard deviation per bin; None for a clip shorter than
        one frame."""
        self._transform(final=True)
        if self.frames == 0:
            return None
        mean = self.sum.numpy() / self.frames
        std = np.sqrt(np.maximum(self.square_sum.numpy() / self.frames - np.square(mean), 0.0))
        return np.concatenate([mean - mean.mean(), std]).astype(np.float32)


def spectrum_features(waveform: np.ndarray) -> np.ndarray | None:
    """A whole clip's identity features (a 16-kHz mono waveform), as the pipeline computes them window by window."""
    statistics = SpectrumStatistics()
    statistics.add(0, waveform)
    return statistics.features()


@dataclass
class CodecIdentity:
    """A linear map of identity features onto the directions that tell the training sources (codecs and bona fide
    speech) apart, linear discriminant analysis as speaker-verification back-ends use it for x-vectors (or no map,
    `discriminant=False`), and each training source's centroid there."""

    mean: np.ndarray  # (dim,)
    projection: np.ndarray  # (dim, out)
    centroids: np.ndarray  # (sources, out), unit length
    sources: list[str]

    @classmethod
    def fit(cls, features: np.ndarray, sources, dimensions: int | None = None, discriminant: bool = True,
            ridge: float = 1e-3) -> CodecIdentity:
        """From rows (n, dim) and their source names: the generalised eigenvectors of the between- and
        within-source scatter (the latter with a relative ridge), the `dimensions` strongest (default: sources - 1),
        and the sources' centroids in that space."""
        from scipy.linalg import eigh

        features, sources = unit_rows(features).astype(np.float64), np.asarray(sources)
        names = np.unique(sources)
        if len(names) < 2:
            raise ValueError(f"a codec identity needs rows of at least two sources, got {list(names)}.")
        mean = features.mean(axis=0)
        projection = np.eye(features.shape[1])
        if discriminant:
            means = np.stack([features[sources == n].mean(axis=0) for n in names])
            centred = features - means[np.searchsorted(names, sources)]
            within = centred.T @ centred / len(features)
            within += ridge * np.trace(within) / len(within) * np.eye(len(within))
            counts = np.array([(sources == n).sum() for n in names], dtype=np.float64)
            between = ((means - mean).T * counts) @ (means - mean) / len(features)
            values, vectors = eigh(between, within)
            keep = min(dimensions or len(names) - 1, len(names) - 1, features.shape[1])
            projection = vectors[:, np.argsort(values)[::-1][:keep]]
        else:
            mean = np.zeros_like(mean)
        identity = cls(mean.astype(np.float32), projection.astype(np.float32), np.zeros((0, 0), np.float32), [])
        mapped = identity(features)
        identity.centroids = unit_rows(np.stack([mapped[sources == n].mean(axis=0) for n in names]))
        identity.sources = names.tolist()
        return identity

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """(rows, dim) identity features -> (rows, out) unit-length rows of this space."""
        return unit_rows((unit_rows(features) - self.mean) @ self.projection)

    def training_distances(self, mapped: np.ndarray) -> np.ndarray:
        """(rows, out) mapped rows -> (rows,): cosine distance to the nearest training source's centroid."""
        return (1.0 - unit_rows(mapped) @ self.centroids.T).min(axis=1)

    @cached_property  # hashed once: the pipeline asks for every clip
    def space(self) -> str:
        """A name of this space, kept in a store of enrolled generators so that it is never read in another."""
        import hashlib

        digest = hashlib.sha1(self.projection.tobytes() + self.mean.tobytes()).hexdigest()[:12]
        return f"identity-{digest}"

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        tensors = {name: torch.from_numpy(np.ascontiguousarray(getattr(self, name)))
                   for name in ("mean", "projection", "centroids")}
        path = Path(folder) / IDENTITY_FILE_NAME
        with atomic_path(path) as partial:
            save_file(tensors, str(partial), {"format": IDENTITY_FORMAT, "version": str(IDENTITY_VERSION),
                                              "features": FEATURES, "sources": json.dumps(self.sources)})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> CodecIdentity | None:
        """The identity saved in `folder`; None where there is none, or one of an older codectrace (with a warning
        saying how to fit it again)."""
        from safetensors import safe_open

        path = Path(folder) / IDENTITY_FILE_NAME
        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("features") != FEATURES:
                warnings.warn(f"{path} maps the identity head's embedding (an older codectrace) and is not used: "
                              "generators are compared by that embedding until it is fitted again "
                              "(codectrace enroll --model FOLDER --fit-identity DATASET).", stacklevel=2)
                return None
            tensors = {name: handle.get_tensor(name).numpy() for name in ("mean", "projection", "centroids")}
        return cls(**tensors, sources=json.loads(metadata["sources"]))


def per_source_sample(sources, limit: int, seed: int = 0) -> list[int]:
    """Row indices of at most `limit` rows of each source (a seeded sample), in order."""
    rng, sources = np.random.default_rng(seed), np.asarray(sources)
    return sorted(int(row) for source in np.unique(sources)
                  for row in rng.permutation(np.flatnonzero(sources == source))[:limit])


def dataset_features(dataset) -> np.ndarray:
    """(rows, dim): the identity features of a dataset's clips (its `audio` column, decoded and resampled as the
    pipeline does)."""
    from tqdm.auto import tqdm

    from .audio import load_audio

    rows = []
    for row in tqdm(dataset.select_columns(["audio"]), desc="codec identity features", leave=False):
        features = spectrum_features(load_audio(row["audio"]))
        if features is None:
            raise ValueError(f"a clip of the dataset is shorter than {FRAME} samples; its codec cannot be told.")
        rows.append(features)
    return np.stack(rows)


def fit_codec_identity(train_split, per_source: int = FIT_CLIPS_PER_SOURCE) -> CodecIdentity:
    """A `CodecIdentity` from a training split's clips (at most `per_source` of each source)."""
    rows = train_split.select(per_source_sample(train_split["source"], per_source))
    return CodecIdentity.fit(dataset_features(rows), rows["source"])


def find_identity(model_name_or_path: str | None, revision: str | None = None) -> CodecIdentity | None:
    """The codec identity saved beside a model; None when there is none (clips are then compared as the identity
    head embeds them)."""
    from .resolve import folder_holding

    folder = folder_holding(model_name_or_path, IDENTITY_FILE_NAME, revision)
    return None if folder is None else CodecIdentity.load(folder)
