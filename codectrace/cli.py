"""The `codectrace` command.

    codectrace trace PATH... --model FOLDER_OR_ID [--output results.csv|.jsonl] [--scores-dir DIR] [--workers N]
    codectrace convert-official CHECKPOINT.pth --out FOLDER [--variant auto|M1|...]
    codectrace evaluate --model FOLDER_OR_ID --dataset FOLDER_OR_ID [--configs cors_eval cosg_eval ...]
    codectrace enroll CLIPS... --model FOLDER --name NAME [--vq mvq --aux none --dec time]   (or --remove, --list)
    codectrace publish --model-dir DIR --model-repo ID [--dataset-dir DIR --dataset-repo ID] [--space-repo ID]

Every expected failure ends with one line `error: <what>` on stderr and exit status 2 (see `errors.py`); `trace`
exits 1 when some inputs failed (each is reported in its row) and the rest were traced. `trace` and `evaluate`
run as one process or many (`torchrun`, `accelerate launch`, `srun`; see `sharded.py`) and resume where a killed
run stopped.
"""

from __future__ import annotations

import argparse
import csv
import json
import sys
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

from tqdm.auto import tqdm

from modeling_codectrace.configuration_codectrace import TASK_LABELS

from .audio import is_audio_file
from .errors import ToolArgumentParser, ToolError, check_writable_folder, run_tool
from .evaluation import score_line
from .files import atomic_path
from .precision import PRECISIONS, default_window_batch_size
from .sharded import Shard, WorkFolder, work_folder_for
from .silence import checked_trim_db
from .tracing import (
    default_workers,
    describe_generator,
    error_row,
    file_groups,
    head_label,
    result_columns,
    result_row,
    segments_line,
    trace_files,
)


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

    def __init__(self, output: Path | None, tasks, segments: bool = False):
        self.output = output
        self.columns = result_columns(tasks, segments)
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
    def probabilities(task: str, row: dict) -> list[float]:
        if f"{task}_{TASK_LABELS[task][0]}" in row:
            return [row[f"{task}_{name}"] for name in TASK_LABELS[task]]
        return [row["spoof_score"], 1.0 - row["spoof_score"]]  # fused BIN, label order spoof, bonafide

    def write(self, utt: str, row: dict) -> None:
        """One traced file's row (`tracing.result_row`)."""
        with writing("--scores-dir", self.folder):
            for task, handle in self.handles.items():
                handle.write(score_line(task, utt, self.probabilities(task, row)))

    def close(self) -> None:
        with writing("--scores-dir", self.folder):
            self.files.close()


@dataclass
class TracePlan:
    """What this process of a `trace` run does: its share of the inputs (whole groups of files, see
    `tracing.file_groups`), the files left to trace, and the work folder that records and merges (None: print)."""

    shard: Shard
    device: str | None
    batch: int
    keys: list[str]  # every input of the run, in order (missing paths first)
    problems: list[tuple[str, str]]  # this process's missing paths, with why
    files: list[Path]  # this process's files
    todo: list[Path]  # those not done by an earlier attempt
    work: WorkFolder | None
    records: dict

    @classmethod
    def make(cls, args, output: Path | None) -> TracePlan:
        import torch

        shard = Shard.from_environment()
        if shard.world_size > 1 and not (output or args.scores_dir):
            raise ToolError(f"{shard.world_size} processes need --output or --scores-dir to merge their results "
                            f"into.")
        files, problems = collect_audio_files(args.paths)
        keys = [raw for raw, _ in problems] + [str(path) for path in files]
        device = shard.device(args.device)
        batch = args.batch_size or default_window_batch_size(torch.device(device or "cpu"))
        groups = shard.take(file_groups(files, batch))
        # A process with nothing to do stays out of the work folder (it could come after the merge and leave one).
        mine = bool(groups or shard.take(problems))
        work = _trace_work_folder(args, output, keys, shard, batch) if mine else None
        records = work.records() if work else {}
        todo = [path for group in groups if not all(str(p) in records for p in group) for path in group]
        return cls(shard, device, batch, keys, shard.take(problems), [p for g in groups for p in g], todo, work,
                   records)

    def done_before(self) -> list[str]:
        return [str(path) for path in self.files if path not in set(self.todo)]

    def keep(self, key: str, row: dict) -> None:
        if self.work is not None:
            with writing("--output", self.work.folder):
                self.work.record(key, row)


def run_trace(args) -> int:
    from .hub import load_tracer

    output = Path(args.output) if args.output else None
    if output:  # outputs are checked before the model is loaded: no work is lost to a bad path
        check_result_file(output)
        check_writable_folder(output.parent, f"--output {args.output}")
    if args.scores_dir:
        check_writable_folder(args.scores_dir, "--scores-dir", create=True)
    plan = TracePlan.make(args, output)
    tracer = load_tracer(args.model, revision=args.revision, device=plan.device,
                         trust_remote_code=args.trust_remote_code, precision=args.precision)
    tasks = tracer.model.config.tasks
    failures = sum(plan.records[key]["status"] == "error" for key in plan.done_before())
    for raw, reason in plan.problems:
        failures += 1
        plan.keep(raw, error_row(raw, reason))
        print(f"error: {raw}: {reason}", file=sys.stderr)
    failures += _trace_todo(args, plan, tracer)
    if plan.work is not None:
        plan.work.merge_when_complete(plan.keys, lambda records: _write_trace_outputs(args, output, plan.keys,
                                                                                      records, tasks))
    total = len(plan.problems) + len(plan.files)
    print(f"traced {total - failures} of {total} inputs{_process_note(plan.shard, len(plan.done_before()))}; "
          f"{failures} failed.", file=sys.stderr)
    return 1 if failures else 0


def _trace_todo(args, plan: TracePlan, tracer) -> int:
    """Traces the plan's files left to do, recording (or, without outputs, printing) each; the failures."""
    failures, tasks = 0, tracer.model.config.tasks
    traced = trace_files(tracer, plan.todo, workers=args.workers, max_seconds=args.max_seconds,
                         group_size=plan.batch, window_batch_size=plan.batch, hop_seconds=args.hop_seconds,
                         return_segments=args.segments, trim_silence_db=args.trim_silence_db)
    for path, result, error in tqdm(traced, total=len(plan.todo), desc="tracing", unit="file", disable=args.quiet):
        if error is not None:
            failures += 1
            plan.keep(path, error_row(path, error))
            tqdm.write(f"error: {error}", file=sys.stderr)
            continue
        plan.keep(path, result_row(path, result, tasks))
        if plan.work is None:
            heads = "  ".join(f"{t}={head_label(result['heads'][t])}" for t in tasks if t != "bin")
            notes = "".join(f"\n  warning: {w}" for w in result["warnings"])
            made_by = describe_generator(result.get("generator"))
            where = f"\n  {segments_line(result['segments'])}" if args.segments else ""
            # a long recording with one spoofed stretch: its average says bona fide, its segments do not
            verdict = "contains spoofed speech" if args.segments and result["contains_spoof"] else result["decision"]
            tqdm.write(f"{path}: {verdict} (spoof score {result['spoof_score']:.3f})  {heads}{made_by}"
                       f"{where}{notes}")
    return failures


def _trim_level(text: str) -> float | bool:
    """`--trim-silence-db`: `off` or a positive number of dB."""
    if text.strip().lower() == "off":
        return False
    try:
        return checked_trim_db(float(text))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number of dB (e.g. 40) or `off`, got {text!r}") from None


def _trace_work_folder(args, output: Path | None, keys: list[str], shard: Shard, batch: int) -> WorkFolder | None:
    """Where rows wait until every process is done (resumable): beside --output, else in --scores-dir."""
    if not (output or args.scores_dir):
        return None
    where = work_folder_for(output) if output else Path(args.scores_dir) / "trace.work"
    manifest = {"inputs": keys, "model": args.model, "revision": args.revision, "precision": args.precision,
                "hop_seconds": args.hop_seconds, "max_seconds": args.max_seconds, "batch_size": batch,
                "segments": args.segments, "trim_silence_db": args.trim_silence_db,
                "output": str(output) if output else None, "scores_dir": args.scores_dir}
    return WorkFolder(where, manifest, shard)


def _process_note(shard: Shard, resumed: int) -> str:
    note = f" in process {shard.rank} of {shard.world_size}" if shard.world_size > 1 else ""
    return note + (f" ({resumed} done before, resumed)" if resumed else "")


def _write_trace_outputs(args, output: Path | None, keys: list[str], records: dict, tasks) -> None:
    """The merged result, in input order: the rows file and the official score files (of the files traced)."""
    rows = ResultWriter(output, tasks, args.segments)
    scores = ScoreWriter(Path(args.scores_dir) if args.scores_dir else None, tasks)
    for key in keys:
        row = {k: v for k, v in records[key].items() if k != "key"}
        rows.write(row)
        if row["status"] == "ok":
            scores.write(Path(key).stem, row)
    rows.close()
    scores.close()


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
    trace.add_argument("--batch-size", type=int, default=None,
                       help="windows per forward pass (default 8 on CPU, sized to the GPU's memory on a GPU)")
    trace.add_argument("--workers", type=int, default=default_workers(),
                       help="processes that decode and resample files while the model runs (default: one per four "
                            "cores, at least one; 0 decodes in the model's process)")
    trace.add_argument("--hop-seconds", type=float,
                       help="hop between windows of long audio (default: one window; with --segments half a window)")
    trace.add_argument("--segments", action="store_true",
                       help="also say where in each file spoofed speech is: columns contains_spoof, "
                            "contains_spoof_score and segments (JSON: start, end, spoof score, taxonomy per range), "
                            "from windows overlapping by half (docs/segments.md)")
    trace.add_argument("--trim-silence-db", type=_trim_level, default=None,
                       help="cut each file's leading and trailing stretches this many dB under its peak before "
                            "tracing, or `off` (default: the model's own setting, config.trim_silence_db)")
    trace.add_argument("--max-seconds", type=float, default=None, help="refuse longer files")
    trace.add_argument("--device", default=None,
                       help="cpu, cuda or cuda:N (default: the process's GPU where there are GPUs, else cpu)")
    trace.add_argument("--precision", default="auto", choices=list(PRECISIONS),
                       help="auto: the fastest measured path of the device (CPU: bf16 with AMX, else int8 dynamic "
                            "quantisation; GPU: bf16 autocast, fp16 where bf16 is not supported)")
    trace.add_argument("--trust-remote-code", action="store_true", help="use the model folder's code files")
    trace.add_argument("--quiet", action="store_true", help="no progress bar")
    trace.set_defaults(func=run_trace)

    from .convert_official import add_convert_parser
    from .enrolment_cli import add_enroll_parser
    from .evaluation_cli import add_evaluate_parser
    from .publish import add_publish_parser

    add_convert_parser(sub)
    add_evaluate_parser(sub)
    add_enroll_parser(sub)
    add_publish_parser(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from transformers.utils import logging as transformers_logging

    args = build_parser().parse_args(argv)
    transformers_logging.disable_progress_bar()  # the command shows its own progress; stderr stays for errors
    return run_tool(lambda: args.func(args), verbose=args.verbose)


if __name__ == "__main__":
    sys.exit(main())
