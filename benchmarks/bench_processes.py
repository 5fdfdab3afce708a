"""Many processes and a killed run, at a real size: is the merged result the one-process result?

    python benchmarks/bench_processes.py --model outputs/demo-M1 FOLDER_OR_FILES... [--processes 2] [--out FILE.md]

Traces the inputs with `codectrace trace` three ways, each process with one thread (so that every run computes the
same floats): one process; `--processes` processes under `torchrun`; and one process killed (SIGKILL) once a third of
the files are recorded, then run again to resume. Reports each run's wall time and files/s and whether its rows file
is byte for byte the one-process file.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from codectrace.cli import collect_audio_files
from codectrace.files import print_report
from codectrace.machine import cpu_summary
from codectrace.sharded import work_folder_for
from codectrace.testing import torchrun_command

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}


def trace_command(args, output: Path) -> list[str]:
    return ["trace", *args.paths, "--model", args.model, "--output", str(output), "--quiet", "--precision",
            args.precision]


def timed(command: list[str]) -> float:
    start = time.perf_counter()
    done = subprocess.run(command, env=ENV, capture_output=True, text=True)
    if done.returncode not in (0, 1):  # 1: some inputs failed, which the rows record
        raise SystemExit(f"{' '.join(command[:6])} ... failed:\n{done.stderr[-3000:]}")
    return time.perf_counter() - start


def killed_then_resumed(args, output: Path, files: int) -> tuple[float, int]:
    """Seconds of both attempts together, and the rows recorded when the first was killed."""
    start = time.perf_counter()
    first = subprocess.Popen([sys.executable, "-m", "codectrace.cli", *trace_command(args, output)], env=ENV,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    work = work_folder_for(output)
    recorded = 0
    while first.poll() is None and recorded < files // 3:
        time.sleep(0.01)
        recorded = sum(p.read_text().count("\n") for p in work.glob("part-*.jsonl")) if work.is_dir() else 0
    if first.poll() is not None:
        raise SystemExit("the run finished before it could be killed; give more files")
    first.send_signal(signal.SIGKILL)
    first.wait()
    seconds = time.perf_counter() - start
    return seconds + timed([sys.executable, "-m", "codectrace.cli", *trace_command(args, output)]), recorded


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("paths", nargs="+")
    parser.add_argument("--model", required=True)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    files = len(collect_audio_files(args.paths)[0])
    with tempfile.TemporaryDirectory(prefix="codectrace-processes-") as scratch:
        work = Path(scratch)
        single = timed([sys.executable, "-m", "codectrace.cli", *trace_command(args, work / "one.csv")])
        several = timed(torchrun_command("codectrace.cli", trace_command(args, work / "many.csv"), args.processes,
                                         module=True))
        resumed, recorded = killed_then_resumed(args, work / "resumed.csv", files)
        reference = (work / "one.csv").read_bytes()
        same = {name: "yes" if (work / name).read_bytes() == reference else "NO"
                for name in ("many.csv", "resumed.csv")}
    rows = [("one process", single, "reference"),
            (f"{args.processes} processes (torchrun)", several, same["many.csv"]),
            (f"one process killed after {recorded} files, then resumed", resumed, same["resumed.csv"])]
    table = (f"{cpu_summary()}; {files} files; model {args.model} at {args.precision}; one thread per process\n\n"
             "| run | seconds (model loading included) | files/s | rows identical to one process |\n|---|---|---|---|\n"
             + "\n".join(f"| {name} | {seconds:.1f} | {files / seconds:.1f} | {verdict} |"
                         for name, seconds, verdict in rows))
    print_report(table, args.out)


if __name__ == "__main__":
    main()
