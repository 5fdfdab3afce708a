"""Partly spoofed training windows: one stretch of a codec's re-synthesis spliced into its bona fide original.

A spoof window in training is otherwise spoof from end to end, so a model learns to call a window spoof only when
most of it is; in a long recording with one short re-synthesised stretch (docs/segments.md) the windows that reach
the stretch are mostly bona fide, and the stretch is missed. With `--partial_spoof_rate r` (demo preset option,
issue #31), a spoof training window is, with probability r, the bona fide original of its utterance with one stretch
replaced by the same stretch of the codec's re-synthesis (the codecs keep time, so the two line up sample for
sample), labelled spoof for the BIN head ("this window contains spoofed speech") and left out of the taxonomy
heads' losses (they learn a codec's class from whole windows; learning it from short stretches cost the VQ head on
validation data, docs/research/partial_spoof_training.md). A bona fide window gets, with
the same probability, a stretch of another bona fide utterance of its speaker spliced in the same way, so that a
splice alone never means spoof (bona fide recordings are joined from utterances too).

`splice` is also what `dataset_scripts.partial_spoof` builds its evaluation recordings with.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from modeling_codectrace.configuration_codectrace import BONAFIDE_INDEX, SAMPLING_RATE
from modeling_codectrace.feature_extraction_codectrace import fit_to_length

FADE = int(0.005 * SAMPLING_RATE)  # 5-ms linear cross-fades at both ends of a spliced stretch
STRETCH_SECONDS = (0.2, 1.5)  # a spliced stretch inside a training window (at most the window)


def splice(target: np.ndarray, source: np.ndarray, start: int, end: int) -> None:
    """target[start:end] = source[start:end] in place, with linear cross-fades inside both ends."""
    ramp = np.linspace(0.0, 1.0, FADE, dtype=np.float32)
    piece = source[start:end].copy()
    fade = min(FADE, (end - start) // 2)
    piece[:fade] = target[start:start + fade] * (1 - ramp[:fade]) + piece[:fade] * ramp[:fade]
    piece[end - start - fade:] = (piece[end - start - fade:] * ramp[:fade][::-1]
                                  + target[end - fade:end] * (1 - ramp[:fade][::-1]))
    target[start:end] = piece


def spliced_window(base: np.ndarray, insert: np.ndarray, length: int, rng: np.random.Generator,
                   stretch_seconds: tuple[float, float] = STRETCH_SECONDS) -> tuple[np.ndarray, tuple[int, int]]:
    """A random `length`-sample window of `base` in which one stretch of `stretch_seconds` is replaced by the same
    samples of `insert` (the two are read at the same times; both repeat-padded where shorter than the window), and
    where in the window that stretch is: (start, end) samples."""
    usable = min(len(base), len(insert))
    start = int(rng.integers(0, max(usable - length, 0) + 1))
    window = fit_to_length(base[start:start + length], length).astype(np.float32, copy=True)
    other = fit_to_length(insert[start:start + length], length)
    stretch = min(int(rng.uniform(*stretch_seconds) * SAMPLING_RATE), length)
    at = int(rng.integers(0, length - stretch + 1))
    splice(window, other, at, at + stretch)
    return window, (at, at + stretch)


def original_id(utt_id: str, source: str) -> str:
    """The bona fide utterance a re-synthesis was made from: CodecFake+ names a re-synthesis `<original>_<codec>`
    (`p260_075_Encodec_24b24k`), its source column holding the codec."""
    suffix = f"_{source}"
    return utt_id[: -len(suffix)] if utt_id.endswith(suffix) else utt_id


@dataclass
class PartialSpoofing:
    """Where a training row's splice partner is: the bona fide original of a spoof row's utterance, or another bona
    fide utterance of a bona fide row's speaker. `audio` is the split's undecoded audio column, read on demand."""

    rate: float
    audio: object
    originals: dict[str, int]
    by_speaker: dict[str, list[int]]

    @classmethod
    def from_split(cls, split, rate: float) -> PartialSpoofing:
        """From a training split with `utt_id`, `source`, `speaker`, `bin` and `audio` columns."""
        if not 0.0 < rate <= 1.0:
            raise ValueError(f"partial_spoof_rate must be in (0, 1], got {rate}.")
        missing = {"utt_id", "source", "speaker", "bin", "audio"} - set(split.column_names)
        if missing:
            raise ValueError(f"partial spoofing needs the training split's columns {sorted(missing)}; a CodecFake+ or "
                             "CodecFake-mini split has them.")
        originals, by_speaker = {}, defaultdict(list)
        for row, (utt, speaker, label) in enumerate(zip(split["utt_id"], split["speaker"], split["bin"])):
            if label == BONAFIDE_INDEX:
                originals[utt] = row
                by_speaker[speaker].append(row)
        if not originals:
            raise ValueError("partial spoofing needs bona fide rows in the training split; it has none.")
        return cls(rate, split.select_columns(["audio"]), originals, dict(by_speaker))

    def partner(self, row: dict, rng: np.random.Generator):
        """The audio value to splice into this row's window (`row`: its `utt_id`, `source`, `speaker` and `bin`), or
        None: drawn with probability 1 - rate, or where the row has no partner (a spoof utterance without its
        original in the split, a speaker with one bona fide utterance)."""
        if rng.random() >= self.rate:
            return None
        if row["bin"] != BONAFIDE_INDEX:
            row = self.originals.get(original_id(row["utt_id"], row["source"]))
        else:
            others = [r for r in self.by_speaker.get(row["speaker"], []) if r != self.originals.get(row["utt_id"])]
            row = others[int(rng.integers(0, len(others)))] if others else None
        return None if row is None else self.audio[row]["audio"]
