"""How the project's command-line tools fail: every expected failure (a bad option value, a model, dataset, file or
folder that is not there or not readable, no room for the outputs) ends with one line `error: <what>` on stderr
and exit status 2. Anything else is a bug: its traceback is printed, never swallowed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

EXIT_USAGE = 2


class ToolError(ValueError):
    """An expected failure with a one-line message; `detail` (e.g. a library's long explanation) is printed only
    with `--verbose`."""

    def __init__(self, message: str, detail: str | None = None):
        super().__init__(message)
        self.detail = detail


def one_line(error: BaseException) -> str:
    """The error as one line: an OSError as `<file>: <reason>`, an AudioError's problem alone, anything else its
    message with line breaks folded."""
    if isinstance(error, OSError) and error.strerror:
        where = error.filename if error.filename is not None else ""
        return f"{where}: {error.strerror}" if where else error.strerror
    message = getattr(error, "problem", None) or str(error) or type(error).__name__
    return " ".join(message.split())


class ToolArgumentParser(argparse.ArgumentParser):
    """An ArgumentParser whose usage errors are one line, `error: <what> (see '<prog> --help')`, exit status 2."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see '{self.prog} --help')\n")


def check_writable_folder(folder: str | Path, option: str, create: bool = False) -> Path:
    """Refuses, before any work is done, an output folder that does not exist (unless `create`) or cannot be written."""
    folder = Path(folder)
    try:
        if create:
            folder.mkdir(parents=True, exist_ok=True)
        elif not folder.is_dir():
            raise ToolError(f"{option}: the folder {folder} does not exist; create it first.")
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".codectrace-write-test-"):
            pass
    except OSError as error:
        raise ToolError(f"{option}: cannot write in {folder} ({error.strerror or error}).") from None
    return folder


def run_tool(body: Callable[[], int | None], verbose: bool = False) -> int:
    """Runs a command's body; expected failures (ValueError, OSError) become `error: <one line>` and status 2."""
    try:
        return body() or 0
    except (ValueError, OSError) as error:
        print(f"error: {one_line(error)}", file=sys.stderr)
        detail = getattr(error, "detail", None)
        if verbose and detail:
            print(detail, file=sys.stderr)
        return EXIT_USAGE
