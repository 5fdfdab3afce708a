"""Work split across processes and machines, resumable, merged once: what `codectrace trace` and `codectrace evaluate`
share.

Every process (started by `torchrun`, `accelerate launch`, `srun` or by hand with RANK and WORLD_SIZE) takes the items
whose index modulo the world size is its rank, skips those already done by any earlier attempt, and records each
item as it finishes in its own part file inside a work folder beside the output. The process that finds every item
done merges the parts into the output (under a file lock, so exactly one does) and removes the work folder. Nothing
needs a process group: a rank that dies loses at most the item it was on, and the same command resumes.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from .errors import ToolError

MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Shard:
    """This process's place among the processes of one run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @classmethod
    def from_environment(cls, environ=os.environ) -> Shard:
        """RANK / WORLD_SIZE / LOCAL_RANK (torchrun, accelerate launch), else Slurm's SLURM_PROCID / SLURM_NTASKS /
        SLURM_LOCALID (srun), else one process."""
        for rank, world, local in (("RANK", "WORLD_SIZE", "LOCAL_RANK"),
                                   ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID")):
            if rank in environ and world in environ:
                shard = cls(int(environ[rank]), int(environ[world]), int(environ.get(local, 0)))
                if not 0 <= shard.rank < shard.world_size:
                    raise ToolError(f"{rank}={shard.rank} is not a rank of {world}={shard.world_size} processes.")
                return shard
        return cls()

    def take(self, items: list) -> list:
        """This process's items: every `world_size`-th, from its rank (no gaps, no duplicates across ranks)."""
        return items[self.rank :: self.world_size]

    def device(self, requested: str | None) -> str | None:
        """The device asked for, else this process's GPU where there are GPUs (one per local rank), else None."""
        import torch

        if requested is None and torch.cuda.is_available():
            return f"cuda:{self.local_rank % torch.cuda.device_count()}"
        return requested


class WorkFolder:
    """`<output>.work/`: the run's manifest (what it computes; a resumed run must match it) and the part files of
    every process and attempt (JSON lines, one per finished item, each with its `key`)."""

    def __init__(self, folder: Path, manifest: dict, shard: Shard):
        self.folder, self.shard = Path(folder), shard
        self.folder.mkdir(parents=True, exist_ok=True)
        self._claim(manifest)
        self._part = None

    def _claim(self, manifest: dict) -> None:
        path = self.folder / MANIFEST
        with self.lock():
            if path.exists():
                found = json.loads(path.read_text())
                if found != manifest:
                    changed = sorted(k for k in set(found) | set(manifest) if found.get(k) != manifest.get(k))
                    raise ToolError(f"{self.folder} holds an interrupted run with other {', '.join(changed)}; rerun "
                                    f"that command to resume it, or delete the folder to start again.")
            else:
                path.write_text(json.dumps(manifest, indent=1))

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """An exclusive lock among the processes of this run (released if a process dies)."""
        with open(self.folder / ".lock", "w") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    def records(self) -> dict[str, dict]:
        """Every finished item of every attempt, by key (a line cut short by a killed process is skipped)."""
        found = {}
        for part in sorted(self.folder.glob("part-*.jsonl")):
            for line in part.read_text().splitlines():
                with contextlib.suppress(json.JSONDecodeError):
                    record = json.loads(line)
                    found[record["key"]] = record
        return found

    def record(self, key: str, record: dict) -> None:
        """Appends one finished item to this process's part file (flushed: a killed run keeps it)."""
        if self._part is None:
            name = f"part-{self.shard.rank:05d}-of-{self.shard.world_size:05d}-{time.time_ns()}.jsonl"
            self._part = open(self.folder / name, "a")
        self._part.write(json.dumps({"key": key, **record}) + "\n")
        self._part.flush()

    def close(self) -> None:
        if self._part is not None:
            self._part.close()
            self._part = None

    def merge_when_complete(self, keys: list[str], merge) -> bool:
        """If every key has a record, calls `merge(records)` once among all processes and removes the folder; True
        if this process merged."""
        self.close()
        try:
            held = self.lock()
            held.__enter__()
        except FileNotFoundError:
            return False  # another process merged and removed the folder already
        try:
            if not (self.folder / MANIFEST).exists():
                return False  # another process merged already
            records = self.records()
            if any(key not in records for key in keys):
                return False  # other processes are still at work
            merge(records)
            (self.folder / MANIFEST).unlink()
        finally:
            held.__exit__(None, None, None)
        shutil.rmtree(self.folder, ignore_errors=True)
        return True


def work_folder_for(output: Path) -> Path:
    """Where the parts of a run writing `output` wait until they are merged."""
    return output.with_name(output.name + ".work")
