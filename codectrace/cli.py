"""The `codectrace` command.

    codectrace trace PATH... --model FOLDER_OR_ID [--output results.csv|.jsonl] [--scores-dir DIR]
    codectrace convert-official CHECKPOINT.pth --out FOLDER [--variant auto|M1|...]
    codectrace evaluate --model FOLDER_OR_ID --dataset FOLDER_OR_ID [--configs cors_eval cosg_eval ...]
    codectrace publish --model-dir DIR --model-repo ID [--dataset-dir DIR --dataset-repo ID] [--space-repo ID]

Every expected failure ends with one line `error: <what>` on stderr and exit status 2 (see `errors.py`); `trace`
exits 1 when some inputs failed (each is reported in its row) and the rest were traced.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from contextlib import ExitStack, contextmanager
from pathlib import Path

from tqdm.auto import tqdm

from modeling_codectrace.configuration_codectrace import TASK_LABELS

from .audio import is_audio_file, short_message
from .errors import ToolArgumentParser, ToolError, check_writable_folder, run_tool
from .evaluation import score_line
from .files import atomic_path


def collect_audio_files(paths: list[str]) -> tuple[list[Path], list[tuple[str, str]]]:
    """Files as given, and audio files (by extension) found recursively in folders; plus missing paths."""
    files, problems = [], []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and is_audio_file(p))
            if not found:
                problems.append((raw, "folder holds no audio files"))
            files += found
        elif path.exists():
            files.append(path)
        else:
            problems.append((raw, "no such file or folder"))
    return files, problems


def _result_columns(tasks) -> list[str]:
    columns = ["path", "status", "error", "spoof_score", "decision", "num_windows", "duration_seconds", "warnings"]
    columns += [f"{task}_{kind}" for task in tasks for kind in ("label", "unknown_score")]
    return columns + [f"{task}_{label}" for task in tasks for label in TASK_LABELS[task]]


def head_label(answer: dict) -> str:
    """A head's answer for people: its label, or `unknown` when the clip is not one of the kinds it knows."""
    return "unknown" if answer["known"] is False else answer["label"]


RESULT_SUFFIXES = (".csv", ".jsonl")


def check_result_file(output: Path) -> None:
    if output.suffix not in RESULT_SUFFIXES:
        raise ValueError(f"--output must end in {' or '.join(RESULT_SUFFIXES)}, got {output.name!r}.")


@contextmanager
def writing(option: str, where: Path):
    """A failed write of an output (a full disk, a lost folder) names the output, not only the system's reason."""
    try:
        yield
    except OSError as error:
        raise ToolError(f"{option} {where}: cannot write ({error.strerror or error}).") from None


class ResultWriter:
    """CSV or JSONL rows written as they come, into `<output>.partial`, renamed when the run ends."""

    def __init__(self, output: Path | None, tasks):
        self.output = output
        self.columns = _result_columns(tasks)
        self.handle = None
        self.files = ExitStack()  # closing it closes the handle, then renames the partial file into place
        if output is not None:
            check_result_file(output)
            self.handle = self.files.enter_context(open(self.files.enter_context(atomic_path(output)), "w",
                                                        newline=""))
            if output.suffix == ".csv":
                self.csv = csv.DictWriter(self.handle, fieldnames=self.columns)
                self.csv.writeheader()

    def write(self, row: dict) -> None:
        if self.handle is None:
            return
        with writing("--output", self.output):
            if self.output.suffix == ".csv":
                self.csv.writerow({key: row.get(key, "") for key in self.columns})
            else:
                self.handle.write(json.dumps(row) + "\n")
            self.handle.flush()

    def close(self) -> None:
        with writing("--output", self.output):
            self.files.close()


class ScoreWriter:
    """Official score files: `scores_bin.txt` (`utt P(bonafide)`), `scores_<task>.txt` (`utt p0 p1 ...`). A model
    without a BIN head (M2) gets `scores_bin.txt` from its fused spoof score, as in evaluation."""

    def __init__(self, folder: Path | None, tasks):
        self.handles = {}
        self.folder = folder
        self.files = ExitStack()
        if folder is not None:
            for task in list(tasks) + ([] if "bin" in tasks else ["bin"]):
                partial = self.files.enter_context(atomic_path(folder / f"scores_{task}.txt"))
                self.handles[task] = self.files.enter_context(open(partial, "w"))

    @staticmethod
    def probabilities(task: str, result: dict) -> list[float]:
        if task in result:
            return [result[task][name] for name in TASK_LABELS[task]]
        return [result["spoof_score"], 1.0 - result["spoof_score"]]  # fused BIN, label order spoof, bonafide

    def write(self, utt: str, result: dict) -> None:
        with writing("--scores-dir", self.folder):
            for task, handle in self.handles.items():
                handle.write(score_line(task, utt, self.probabilities(task, result)))
                handle.flush()

    def close(self) -> None:
        with writing("--scores-dir", self.folder):
            self.files.close()


def run_trace(args) -> int:
    from .hub import load_tracer

    if args.output:  # outputs are checked before the model is loaded: no work is lost to a bad path
        check_result_file(Path(args.output))
        check_writable_folder(Path(args.output).parent, f"--output {args.output}")
    if args.scores_dir:
        check_writable_folder(args.scores_dir, "--scores-dir", create=True)
    files, problems = collect_audio_files(args.paths)
    tracer = load_tracer(args.model, revision=args.revision, device=args.device,
                         trust_remote_code=args.trust_remote_code, precision=args.precision)
    tasks = tracer.model.config.tasks
    rows = ResultWriter(Path(args.output) if args.output else None, tasks)
    scores = ScoreWriter(Path(args.scores_dir) if args.scores_dir else None, tasks)
    failures = 0
    for raw, reason in problems:
        failures += 1
        rows.write({"path": raw, "status": "error", "error": reason})
        print(f"error: {raw}: {reason}", file=sys.stderr)
    for path in tqdm(files, desc="tracing", unit="file", disable=args.quiet):
        try:
            result = tracer(str(path), window_batch_size=args.batch_size, hop_seconds=args.hop_seconds,
                            max_seconds=args.max_seconds)
        except (ValueError, RuntimeError, OSError) as error:
            failures += 1
            rows.write({"path": str(path), "status": "error", "error": short_message(error)})
            tqdm.write(f"error: {short_message(error)}", file=sys.stderr)
            continue
        row = {"path": str(path), "status": "ok", "error": "", "warnings": "; ".join(result["warnings"]),
               **{k: result[k] for k in ("spoof_score", "decision", "num_windows", "duration_seconds")}}
        for task in tasks:
            row.update({f"{task}_{label}": p for label, p in result[task].items()})
            row.update({f"{task}_label": head_label(result["heads"][task]),
                        f"{task}_unknown_score": result["heads"][task]["unknown_score"]})
        rows.write(row)
        scores.write(path.stem, result)
        if args.output is None:
            heads = "  ".join(f"{t}={head_label(result['heads'][t])}" for t in tasks if t != "bin")
            notes = "".join(f"\n  warning: {w}" for w in result["warnings"])
            tqdm.write(f"{path}: {result['decision']} (spoof score {result['spoof_score']:.3f})  {heads}{notes}")
    rows.close()
    scores.close()
    total = len(files) + len(problems)
    print(f"traced {total - failures} of {total} inputs; {failures} failed.", file=sys.stderr)
    return 1 if failures else 0


def build_parser() -> argparse.ArgumentParser:
    parser = ToolArgumentParser(
        prog="codectrace", description="Source tracing of codec-based audio deepfakes (CodecFake+ taxonomy).")
    parser.add_argument("--verbose", action="store_true", help="with an error, also print its full detail")
    sub = parser.add_subparsers(dest="command", required=True)

    trace = sub.add_parser("trace", help="score audio files and folders with a trained model",
                           description="Scores files (and folders, recursively, by audio extension). One row per "
                                       "file; a file that fails is reported and the run goes on; the exit status "
                                       "is 1 if any input failed.")
    trace.add_argument("paths", nargs="+", help="audio files or folders")
    trace.add_argument("--model", required=True, help="model folder or hub id")
    trace.add_argument("--revision", help="model revision (branch, tag or commit) on the Hub")
    trace.add_argument("--output", help="write rows to results.csv or results.jsonl (default: print)")
    trace.add_argument("--scores-dir", help="also write official score files (scores_bin.txt, scores_vq.txt, ...)")
    trace.add_argument("--batch-size", type=int, default=8, help="windows per forward pass (default 8)")
    trace.add_argument("--hop-seconds", type=float, help="hop between windows of long audio (default: one window)")
    trace.add_argument("--max-seconds", type=float, default=None, help="refuse longer files")
    trace.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu)")
    trace.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"],
                       help="auto: on CPU int8 dynamic quantisation (the fastest measured), bf16 or fp32 where int8 "
                            "is not available; fp32 on GPU")
    trace.add_argument("--trust-remote-code", action="store_true", help="use the model folder's code files")
    trace.add_argument("--quiet", action="store_true", help="no progress bar")
    trace.set_defaults(func=run_trace)

    from .convert_official import add_convert_parser
    from .evaluation_cli import add_evaluate_parser
    from .publish import add_publish_parser

    add_convert_parser(sub)
    add_evaluate_parser(sub)
    add_publish_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging as transformers_logging

    args = build_parser().parse_args(argv)
    transformers_logging.disable_progress_bar()  # the command shows its own progress; stderr stays for errors
    return run_tool(lambda: args.func(args), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
