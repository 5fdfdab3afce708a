"""Training on every spoofed version of an utterance that the corpus holds (`--spoof_versions resample`).

CodecFake+'s three training samplings (`aux`, `vq`, `dec`) pair each bona fide training utterance with one spoofed
version each, usually made by three different codecs. The paper trains on one sampling, so every codec is heard on
about a third of the utterances the corpus re-synthesised with it. `SpoofVersionSampler` draws, every epoch, one of
the versions per utterance: an epoch keeps one sampling's size and bona fide : spoof ratio, and over training every
codec is heard on all of its utterances.
"""

from __future__ import annotations

from collections import defaultdict

import numpy as np
from torch.utils.data import Sampler

from modeling_codectrace.configuration_codectrace import TASK_LABELS

from .data import TRAINING_SAMPLINGS
from .resolve import load_split

# --spoof_versions: `config` trains on the spoofed versions of --dataset_config's sampling (the paper); `resample`
# draws one of every sampling's versions per utterance and epoch.
SPOOF_VERSIONS = ("config", "resample")
_BONA_FIDE = TASK_LABELS["bin"].index("bonafide")


def load_every_sampling(dataset: str, revision: str | None = None, limit: int | None = None):
    """The training split of every sampling, concatenated in `TRAINING_SAMPLINGS` order (rows repeat: a bona fide
    utterance is in every sampling, and two samplings may pick the same spoofed version)."""
    from datasets import concatenate_datasets

    return concatenate_datasets([load_split(dataset, sampling, "train", revision, limit)
                                 for sampling in TRAINING_SAMPLINGS])


def utterance_of(utt_id: str, source: str) -> str:
    """The bona fide utterance a spoofed row re-synthesises: its id without the `_<source>` suffix (CodecFake-mini's
    naming); a row named otherwise is its own utterance."""
    suffix = f"_{source}"
    return utt_id[: -len(suffix)] if source and utt_id.endswith(suffix) else utt_id


def group_versions(utt_ids: list[str], sources: list[str], bins: list[int]) -> tuple[list[int], list[list[int]]]:
    """Row indices of the bona fide utterances (each utterance once) and, per re-synthesised utterance, the row
    indices of its spoofed versions (repeats kept, so that each sampling's version is equally likely)."""
    bona_fide, seen, versions = [], set(), defaultdict(list)
    for index, (utt_id, source, label) in enumerate(zip(utt_ids, sources, bins)):
        if label == _BONA_FIDE:
            if utt_id not in seen:
                seen.add(utt_id)
                bona_fide.append(index)
        else:
            versions[utterance_of(utt_id, source)].append(index)
    return bona_fide, list(versions.values())


class SpoofVersionSampler(Sampler[int]):
    """Every epoch: each bona fide row once and one spoofed version per utterance, drawn at random, in a random
    order. Deterministic given the seed and the epoch (the Trainer calls `set_epoch`), so every process of a
    multi-device run draws the same epoch.

    Args:
        bona_fide: row indices of the bona fide utterances.
        versions: per utterance, the row indices of its spoofed versions (non-empty lists).
        seed: base seed; each epoch's draw uses (seed, epoch).
    """

    def __init__(self, bona_fide: list[int], versions: list[list[int]], seed: int):
        if any(not group for group in versions):
            raise ValueError("every utterance needs at least one spoofed version.")
        self.bona_fide, self.versions, self.seed, self.epoch = list(bona_fide), versions, seed, 0

    @classmethod
    def from_dataset(cls, ds, seed: int) -> SpoofVersionSampler:
        """The sampler over a dataset's rows, grouped by their `utt_id`, `source` and `bin` columns."""
        return cls(*group_versions(list(ds["utt_id"]), list(ds["source"]), list(ds["bin"])), seed=seed)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.bona_fide) + len(self.versions)

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        drawn = [group[rng.integers(len(group))] for group in self.versions]
        rows = np.asarray(self.bona_fide + drawn)
        return iter(rows[rng.permutation(len(rows))].tolist())
