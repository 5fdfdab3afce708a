"""Folders that appear complete or not at all: built under `<name>.partial`, renamed when done."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def staged_folder(out: str | Path) -> Iterator[Path]:
    """Yields an empty `<out>.partial` folder to write into; on success it replaces `out`, on failure it is removed."""
    out = Path(out)
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)  # a leftover of an interrupted run
    partial.mkdir(parents=True)
    try:
        yield partial
    except BaseException:
        shutil.rmtree(partial, ignore_errors=True)  # never leave a half-written folder behind
        raise
    if out.exists():
        shutil.rmtree(out)
    os.replace(partial, out)
