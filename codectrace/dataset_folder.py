"""The layout of a built dataset folder (what `dataset_scripts.build_codecfake_plus build` writes and `load_dataset`
reads): a dataset card `README.md` whose `configs:` block names the Parquet shards, one folder per config with
`<split>-<fingerprint>-<i>-of-<n>.parquet` shards, and `build_report.json` (rows per config and split, the
fingerprint). Checking that a folder is complete and uploading it to a Hub dataset repo live here."""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ToolError

REPORT_NAME = "build_report.json"


class DatasetFolderError(ToolError):
    """A folder that is not a finished build."""


def built_dataset_files(dataset_dir: str | Path) -> list[Path]:
    """Checks that a built folder is complete and returns its files (relative paths): card, report, every shard."""
    dataset_dir = Path(dataset_dir)
    report_path = dataset_dir / REPORT_NAME
    if not report_path.exists() or not (dataset_dir / "README.md").exists():
        raise DatasetFolderError(f"{dataset_dir} is not a finished build (no {REPORT_NAME} or README.md).")
    report = json.loads(report_path.read_text())
    files = [Path("README.md"), Path(REPORT_NAME)]
    for config, splits in report["rows"].items():
        for split in splits:
            shards = sorted((dataset_dir / config).glob(f"{split}-{report['fingerprint'][:8]}-*.parquet"))
            if not shards:
                raise DatasetFolderError(f"{dataset_dir}: no shards for {config}/{split}.")
            expected = int(shards[0].name.rsplit("-of-", 1)[1].split(".")[0])
            if len(shards) != expected:
                raise DatasetFolderError(f"{dataset_dir}: {config}/{split} has {len(shards)} of {expected} shards.")
            files += [s.relative_to(dataset_dir) for s in shards]
    return files


def push_dataset_folder(dataset_dir: str | Path, repo_id: str, private: bool = False, token: str | None = None,
                        revision: str | None = None, api=None) -> str:
    """Uploads a finished build (card, report, shards) to a Hub dataset repo; returns the commit URL."""
    from huggingface_hub import HfApi

    files = built_dataset_files(dataset_dir)
    api = api or HfApi(token=token)
    api.create_repo(repo_id, repo_type="dataset", private=private, exist_ok=True)
    commit = api.upload_folder(
        folder_path=str(dataset_dir), repo_id=repo_id, repo_type="dataset", revision=revision,
        allow_patterns=[str(f) for f in files], commit_message="Upload CodecFake+ built by codectrace",
    )
    return str(commit)
