"""Training windows: random crops that differ per worker and epoch, yet repeat exactly for a rerun with one seed."""

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, Dataset

from codectrace.data import WaveformTransform, collate


class _Clips(Dataset):
    """Eight 1-s clips of distinct ramps (so every window position is recognisable), windowed on access."""

    def __init__(self, transform: WaveformTransform):
        self.transform = transform
        self.clips = [np.linspace(k, k + 1, 16000, dtype=np.float32) for k in range(8)]

    def __len__(self):
        return len(self.clips)

    def __getitem__(self, index):
        batch = {"audio": [{"array": self.clips[index], "sampling_rate": 16000}], "bin": [index % 2]}
        return {key: values[0] for key, values in self.transform(batch).items()}


def _epochs(seed: int, workers: int, epochs: int = 2) -> list[torch.Tensor]:
    torch.manual_seed(seed)  # what the Trainer does before it builds its DataLoaders
    transform = WaveformTransform(("bin",), chunk_samples=4000, crop="random", augment="rawboost5", seed=1234)
    loader = DataLoader(_Clips(transform), batch_size=4, num_workers=workers, collate_fn=collate)
    return [torch.cat([batch["input_values"] for batch in loader]) for _ in range(epochs)]


@pytest.mark.parametrize("workers", [0, 1])
def test_a_rerun_with_the_same_seed_gives_the_same_windows(workers):
    first, second = _epochs(7, workers), _epochs(7, workers)
    for a, b in zip(first, second):
        assert torch.equal(a, b)


def test_windows_differ_between_epochs_and_seeds():
    epoch_1, epoch_2 = _epochs(7, workers=1)
    other_seed, _ = _epochs(8, workers=1)
    assert not torch.equal(epoch_1, epoch_2)
    assert not torch.equal(epoch_1, other_seed)


def test_a_random_window_is_a_contiguous_slice_of_its_clip():
    transform = WaveformTransform(("bin",), chunk_samples=4000, crop="random", seed=1234)
    clip = _Clips(transform).clips[3]
    window = transform.window({"array": clip, "sampling_rate": 16000})
    start = int(np.argmin(np.abs(clip - window[0])))
    assert window.shape == (4000,)
    np.testing.assert_array_equal(window, clip[start : start + 4000])
