"""Work split across processes: who takes what, what a killed run keeps, and the one merge."""

import json

import pytest

from codectrace.errors import ToolError
from codectrace.sharded import Shard, WorkFolder


@pytest.mark.parametrize(("environ", "expected"), [
    ({}, Shard(0, 1, 0)),
    ({"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1"}, Shard(3, 4, 1)),
    ({"SLURM_PROCID": "5", "SLURM_NTASKS": "8", "SLURM_LOCALID": "1"}, Shard(5, 8, 1)),
    ({"RANK": "0", "WORLD_SIZE": "2", "SLURM_PROCID": "7", "SLURM_NTASKS": "9"}, Shard(0, 2, 0)),
])
def test_the_shard_comes_from_the_launchers_environment(environ, expected):
    assert Shard.from_environment(environ) == expected


def test_a_rank_outside_the_world_is_refused():
    with pytest.raises(ToolError, match="RANK=2 is not a rank of WORLD_SIZE=2"):
        Shard.from_environment({"RANK": "2", "WORLD_SIZE": "2"})


def test_the_ranks_take_every_item_once():
    items = list(range(23))
    taken = [item for rank in range(4) for item in Shard(rank, 4).take(items)]
    assert sorted(taken) == items


def test_records_survive_a_killed_process_and_a_cut_line(tmp_path):
    work = WorkFolder(tmp_path / "w", {"inputs": ["a", "b"]}, Shard())
    work.record("a", {"value": 1})
    (tmp_path / "w" / "part-00001-of-00002-1.jsonl").write_text('{"key": "b", "val')  # killed mid-line
    again = WorkFolder(tmp_path / "w", {"inputs": ["a", "b"]}, Shard())
    assert again.records() == {"a": {"key": "a", "value": 1}}


def test_a_work_folder_of_another_run_is_refused_naming_what_differs(tmp_path):
    WorkFolder(tmp_path / "w", {"inputs": ["a"], "model": "m1"}, Shard())
    with pytest.raises(ToolError, match="other model; rerun that command to resume it, or delete the folder"):
        WorkFolder(tmp_path / "w", {"inputs": ["a"], "model": "m2"}, Shard())


def test_the_merge_waits_for_every_item_then_happens_once(tmp_path):
    merged = []
    first = WorkFolder(tmp_path / "w", {"inputs": ["a", "b"]}, Shard(0, 2))
    second = WorkFolder(tmp_path / "w", {"inputs": ["a", "b"]}, Shard(1, 2))
    first.record("a", {"value": 1})
    assert not first.merge_when_complete(["a", "b"], merged.append)
    second.record("b", {"value": 2})
    assert second.merge_when_complete(["a", "b"], merged.append)
    assert not first.merge_when_complete(["a", "b"], merged.append)
    assert [sorted(m) for m in merged] == [["a", "b"]] and not (tmp_path / "w").exists()
    assert json.dumps(merged[0]["b"]) == '{"key": "b", "value": 2}'
