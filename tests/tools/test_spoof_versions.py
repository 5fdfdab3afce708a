"""Drawing one spoofed version per utterance and epoch (codectrace.spoof_versions) on its own; its place in training
is tested in test_train.py."""

from collections import Counter

import pytest

from codectrace.spoof_versions import SpoofVersionSampler, group_versions, load_every_sampling, utterance_of

# Two utterances, each in three samplings: u1 spoofed by codecs a, b and a again (two samplings picked a), u2 by
# c, d, e. Bona fide rows repeat once per sampling, as in a concatenation of the samplings.
UTT_IDS = ["u1", "u1_a", "u2", "u2_c", "u1", "u1_b", "u2", "u2_d", "u1", "u1_a", "u2", "u2_e"]
SOURCES = ["bonafide", "a", "bonafide", "c", "bonafide", "b", "bonafide", "d", "bonafide", "a", "bonafide", "e"]
BINS = [1, 0] * 6  # TASK_LABELS["bin"]: 0 spoof, 1 bona fide


def test_a_spoofed_row_belongs_to_the_utterance_its_name_starts_with():
    assert utterance_of("s01_001_fsq5_dis_f100", "fsq5_dis_f100") == "s01_001"
    assert utterance_of("p225_001_Encodec_6b24k", "Encodec_6b24k") == "p225_001"
    assert utterance_of("LA_0042", "A07") == "LA_0042"  # named otherwise: its own utterance


def test_versions_are_grouped_by_utterance_with_each_bona_fide_utterance_once_and_repeats_kept():
    bona_fide, versions = group_versions(UTT_IDS, SOURCES, BINS)
    assert bona_fide == [0, 2]
    assert versions == [[1, 5, 9], [3, 7, 11]]


def test_an_epoch_holds_every_bona_fide_row_once_and_one_version_per_utterance():
    sampler = SpoofVersionSampler(*group_versions(UTT_IDS, SOURCES, BINS), seed=0)
    for epoch in range(5):
        sampler.set_epoch(epoch)
        rows = list(sampler)
        assert len(rows) == len(sampler) == 4
        assert sorted(r for r in rows if r in (0, 2)) == [0, 2]
        assert len({1, 5, 9} & set(rows)) == 1 and len({3, 7, 11} & set(rows)) == 1


def test_the_same_seed_and_epoch_draw_the_same_rows_and_other_epochs_draw_others():
    groups = [[3 * i, 3 * i + 1, 3 * i + 2] for i in range(20)]
    first, second = SpoofVersionSampler([], groups, seed=7), SpoofVersionSampler([], groups, seed=7)
    second.set_epoch(0)
    assert list(first) == list(second)
    second.set_epoch(1)
    assert list(first) != list(second)


def test_over_epochs_each_version_is_drawn_as_often_as_its_samplings_pick_it():
    sampler = SpoofVersionSampler([], [[1, 5, 9]], seed=0)
    counts = Counter()
    for epoch in range(3000):
        sampler.set_epoch(epoch)
        counts.update(sampler)
    assert all(abs(counts[row] / 3000 - 1 / 3) < 0.03 for row in (1, 5, 9))


def test_an_utterance_without_a_version_is_refused():
    with pytest.raises(ValueError, match="at least one spoofed version"):
        SpoofVersionSampler([0], [[1], []], seed=0)


def test_every_sampling_of_a_built_dataset_is_read_and_each_utterance_has_a_version_per_sampling(built):
    rows = load_every_sampling(str(built))
    bona_fide, versions = group_versions(list(rows["utt_id"]), list(rows["source"]), list(rows["bin"]))
    assert len(rows) == 3 * 2 * len(bona_fide)
    assert {len(group) for group in versions} == {3}
