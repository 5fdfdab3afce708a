"""A built dataset folder: complete or refused, and uploaded whole (card, report, every shard) to a Hub dataset repo."""

from pathlib import Path

import pyarrow.parquet as pq
import pytest

from codectrace.dataset_folder import DatasetFolderError, push_dataset_folder


def test_push_uploads_the_complete_folder(built, recording_api):
    api = recording_api
    push_dataset_folder(built, "me/codecfake-plus", api=api)
    assert api.calls[0] == ("create_repo", "me/codecfake-plus", {"repo_type": "dataset", "private": False,
                                                                   "exist_ok": True})
    upload = api.calls[1][1]
    assert upload["repo_type"] == "dataset" and Path(upload["folder_path"]) == built
    patterns = set(upload["allow_patterns"])
    assert {"README.md", "build_report.json"} <= patterns
    assert patterns >= {str(p.relative_to(built)) for p in built.rglob("*.parquet")}
    for pattern in patterns:  # everything uploaded exists and the shards are valid Parquet
        assert (built / pattern).exists()
        if pattern.endswith(".parquet"):
            pq.read_metadata(built / pattern)


def test_push_refuses_an_unfinished_folder(tmp_path, recording_api):
    with pytest.raises(DatasetFolderError, match="not a finished build"):
        push_dataset_folder(tmp_path, "me/x", api=recording_api)
