"""Turning dataset rows (undecoded audio + label columns) into model batches, for training and evaluation.

The same window policy is used in every split (official: the first `chunk_samples`, repeat-padded);
augmentation (RawBoost, the paper's; or the channel augmentation of `channel_augment`) applies to training rows
only.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch

from modeling_codectrace.configuration_codectrace import BONAFIDE_INDEX, OFFICIAL_WINDOW, SPOOF_INDEX, TASK_LABELS
from modeling_codectrace.feature_extraction_codectrace import fit_to_length

from .audio import load_audio
from .channel_augment import ChannelConfig, channel_augment
from .codec_adversary import SOURCE_LABELS, CodecVocabulary
from .rawboost import RawBoostConfig, rawboost_algo5
from .splicing import PartialSpoofing, spliced_window

CROP_MODES = ("first", "random")
# rawboost5: the paper's (on the whole utterance); channel: lossy codecs, narrowband, noise and level on the window,
# bona fide and spoof alike (docs/research/generalisation.md); none.
AUGMENTATIONS = ("rawboost5", "channel", "none")

# The training samplings of CodecFake+ (protocol files *_mult_learn.txt, *_bal_vq.txt, *_bal_dec.txt), and the one
# each paper variant trains on in the authors' README: VQ-balanced for S_VQ / D_VQ, DEC-balanced for S_DEC / D_DEC,
# AUX-balanced for the rest.
TRAINING_SAMPLINGS = ("aux", "vq", "dec")
VARIANT_SAMPLING = {"S_VQ": "vq", "D_VQ": "vq", "S_DEC": "dec", "D_DEC": "dec"}


def training_sampling(variant: str) -> str:
    """The CodecFake+ training sampling (dataset config) a paper variant trains on."""
    return VARIANT_SAMPLING.get(variant, "aux")


def crop_window(waveform: np.ndarray, length: int, mode: str, rng: np.random.Generator | None = None) -> np.ndarray:
    """`first`: the official policy (first window, repeat-padded); `random`: a random window of a longer clip."""
    if mode == "first" or waveform.shape[0] <= length:
        return fit_to_length(waveform, length)
    if mode != "random":
        raise ValueError(f"crop mode must be one of {CROP_MODES}, got {mode!r}.")
    start = int((rng or np.random.default_rng()).integers(0, waveform.shape[0] - length + 1))
    return waveform[start : start + length]


@dataclass
class WaveformTransform:
    """`datasets.set_transform` callable: decodes `audio`, cuts one window, optionally augments, adds labels.

    Args:
        tasks: the model's tasks; their label columns become `<task>_labels`.
        chunk_samples: window length in samples.
        crop: `first` (official) or `random`.
        augment: `rawboost5` (official), `channel` (`channel_augment`) or `none`; training rows only.
        seed: base seed; each worker process derives its own generator from it and its PyTorch seed.
        codecs: with the codec adversary, the training codecs (`CodecVocabulary`): rows also get `source_labels`,
            their codec's index (-100 for bona fide rows).
        partial: with `--partial_spoof_rate`, where each row's splice partner is (`codectrace.splicing`): a drawn
            share of windows are partly spoofed (spoof rows) or spliced from two bona fide utterances.
        frames: with a frame head, `config.frame_layout(chunk_samples)`: rows also get `frame_labels`, per frame
            spoof where its centre lies in spoofed speech (the spliced stretch of a partly spoofed window, all of a
            spoof one), else bona fide.
        spliced_bin_labels: whether a partly spoofed window also trains the BIN head as spoof (with `False` it
            trains the frame head only, and the BIN head learns from whole windows).
    """

    tasks: tuple[str, ...]
    chunk_samples: int = OFFICIAL_WINDOW
    crop: str = "first"
    augment: str = "none"
    seed: int = 1234
    rawboost: RawBoostConfig = field(default_factory=RawBoostConfig)
    channel: ChannelConfig = field(default_factory=ChannelConfig)
    codecs: CodecVocabulary | None = None
    partial: PartialSpoofing | None = None
    frames: tuple[int, int, float] | None = None
    spliced_bin_labels: bool = True

    def __post_init__(self):
        if self.crop not in CROP_MODES:
            raise ValueError(f"crop must be one of {CROP_MODES}, got {self.crop!r}.")
        if self.augment not in AUGMENTATIONS:
            raise ValueError(f"augment must be one of {AUGMENTATIONS}, got {self.augment!r}.")
        self._rng: np.random.Generator | None = None
        self._torch_seed: int | None = None

    def _generator(self) -> np.random.Generator:
        # Keyed on PyTorch's seed, which DataLoader workers draw per worker and epoch from the seeded main
        # process: windows differ between workers and epochs, yet a rerun with the same seed repeats them.
        # (The process id must not enter: it made every run different.)
        torch_seed = torch.initial_seed()
        if self._rng is None or self._torch_seed != torch_seed:
            self._rng = np.random.default_rng([self.seed, torch_seed % 2**32])
            self._torch_seed = torch_seed
        return self._rng

    def window(self, audio_value, partner=None, label: int = BONAFIDE_INDEX) -> np.ndarray:
        """One training (or evaluation) window; with a splice `partner` (`PartialSpoofing.partner`) a spliced one, at
        a random place whatever `crop` says, RawBoost then acting on the window."""
        return self._window_and_stretch(audio_value, partner, label)[0]

    def _window_and_stretch(self, audio_value, partner=None, label: int = BONAFIDE_INDEX):
        """The window and, for a spliced one, where its stretch from the partner is ((start, end) samples; else
        None)."""
        rng = self._generator()
        waveform = load_audio(audio_value)
        stretch = None
        if partner is not None:
            other = load_audio(partner)
            base, insert = (waveform, other) if label == BONAFIDE_INDEX else (other, waveform)
            window, stretch = spliced_window(base, insert, self.chunk_samples, rng)
            if self.augment == "rawboost5":
                window = rawboost_algo5(window, rng, self.rawboost)
        else:
            if self.augment == "rawboost5":  # on the whole utterance, before the window is cut (as the official code)
                waveform = rawboost_algo5(waveform, rng, self.rawboost)
            window = crop_window(waveform, self.chunk_samples, self.crop, rng)
        if self.augment == "channel":  # on the window: a channel acts on every part of a clip alike
            window = channel_augment(window, rng, self.channel)
        return window.astype(np.float32, copy=False), stretch

    def __call__(self, batch: dict) -> dict:
        partners = [self._partner(batch, row) for row in range(len(batch["audio"]))]
        made = [self._window_and_stretch(value, *partner) for value, partner in zip(batch["audio"], partners)]
        out = {"input_values": [window for window, _ in made]}
        # a partly spoofed window trains the BIN head only (or, without spliced_bin_labels, the frame head only):
        # with every head learning from it the VQ head lost on validation data
        # (docs/research/partial_spoof_training.md)
        unlabelled = [partner is not None and label != BONAFIDE_INDEX for partner, label in partners]
        for task in self.tasks:
            if task in batch:
                keep = "bin" if self.spliced_bin_labels else None
                out[f"{task}_labels"] = [-100 if skip and task != keep else value
                                         for skip, value in zip(unlabelled, batch[task])]
        if self.frames is not None and "bin" in batch:
            out["frame_labels"] = [self.frame_labels(label, stretch if skip else None)
                                   for label, (_, stretch), skip in zip(batch["bin"], made, unlabelled)]
        if self.codecs is not None:
            sources = self.codecs.source_labels(batch["source"], batch["bin"])
            out[SOURCE_LABELS] = [-100 if skip else value for skip, value in zip(unlabelled, sources)]
        return out

    def frame_labels(self, label: int, spoofed: tuple[int, int] | None) -> list[int]:
        """Per frame of a window, its BIN label: a partly spoofed window's frames are spoof where their centre lies in
        the `spoofed` (start, end) samples, every other window's frames carry the window's label."""
        count, hop, first = self.frames
        if spoofed is None:
            return [int(label)] * count
        centres = first + hop * np.arange(count)
        inside = (centres >= spoofed[0]) & (centres < spoofed[1])
        return np.where(inside, SPOOF_INDEX, BONAFIDE_INDEX).tolist()

    def _partner(self, batch: dict, row: int) -> tuple:
        if self.partial is None:
            return None, BONAFIDE_INDEX
        fields = {key: batch[key][row] for key in ("utt_id", "source", "speaker", "bin")}
        return self.partial.partner(fields, self._generator()), fields["bin"]


def collate(features: list[dict]) -> dict[str, torch.Tensor]:
    """Stacks equal-length windows and label columns (one label per row, or per frame) into tensors."""
    batch = {"input_values": torch.from_numpy(np.stack([np.asarray(f["input_values"]) for f in features]))}
    for key in features[0]:
        if key.endswith("_labels"):
            batch[key] = torch.tensor([f[key] for f in features], dtype=torch.long)
    return batch


def label_columns(tasks) -> list[str]:
    return [f"{task}_labels" for task in tasks if task in TASK_LABELS]


def with_windows(ds, tasks, chunk_samples: int, crop: str = "first", augment: str = "none", seed: int = 1234,
                 codecs=None, partial_spoof_rate: float = 0.0, frames: tuple[int, int, float] | None = None,
                 spliced_bin_labels: bool = True):
    """Decodes and windows rows on access (in DataLoader workers); augmentation only where asked; with `codecs` (a
    `CodecVocabulary`), each row's codec index for the codec adversary; with `partial_spoof_rate`, that share of
    windows spliced (`codectrace.splicing`); with `frames` (a frame head's `config.frame_layout`), frame labels."""
    partial = PartialSpoofing.from_split(ds, partial_spoof_rate) if partial_spoof_rate else None
    return ds.with_transform(WaveformTransform(tuple(tasks), chunk_samples, crop, augment, seed, codecs=codecs,
                                               partial=partial, frames=frames, spliced_bin_labels=spliced_bin_labels))
