"""What enrolment costs: `codectrace enroll` of 10 clips, and tracing with enrolled generators against without.

    python benchmarks/bench_enrolment.py [--model outputs/demo-M1] [--clips 40] [--repeats 7]

1. Writes 10 clips of 3 s (pieces of the Space's examples) and times `codectrace enroll` on them in a fresh process,
   on a copy of the model folder: the whole command a person waits for, the part of it that is only Python
   importing torch and transformers (timed alone, in the same run), and the enrolment itself (run in this process).
2. Traces the same `--clips` clips with 4 generators enrolled (10 clips each) and with none, with the same loaded
   model, each clip both ways in turn in each repeat; reports the time per clip of each (its median over the
   repeats, averaged over the clips) and their ratio (the target: at most 1.1).
"""

from __future__ import annotations

import argparse
import copy
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
from timing_clips import example_clips, paired_per_clip_seconds

from codectrace.enrolment import EnrolmentStore
from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary

ROOT = Path(__file__).resolve().parents[1]


def command_seconds(command: list[str], repeats: int = 3) -> float:
    """The median wall time of `python <command>` in a fresh process."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        subprocess.run([sys.executable, *command], check=True, capture_output=True)
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def enroll_seconds(model: str, work: Path) -> tuple[float, float, float]:
    """The `codectrace enroll` command's time for 10 clips, the part of it that is Python importing torch,
    transformers and codectrace (the same in any command of the tool), and the enrolment itself (the same command
    run in this process, where they are imported: loading the model, embedding the clips, saving the store)."""
    from codectrace.cli import main as cli_main

    folder, clips = work / "model", work / "clips"
    shutil.copytree(model, folder, ignore=shutil.ignore_patterns("checkpoint-*", "eval"))
    clips.mkdir()
    for index, clip in enumerate(example_clips(10)):
        sf.write(clips / f"clip{index}.wav", clip, 16000)
    start_up = command_seconds(["-c", "import codectrace.cli, codectrace.hub, codectrace.tracing"])
    arguments = ["enroll", str(clips), "--model", str(folder), "--name", "Bench"]
    command = command_seconds(["-m", "codectrace.cli", *arguments])
    itself = []
    for _ in range(3):
        start = time.perf_counter()
        cli_main(arguments)
        itself.append(time.perf_counter() - start)
    return command, start_up, float(np.median(itself))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "outputs" / "demo-M1"))
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=7)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as work:
        command, start_up, itself = enroll_seconds(args.model, Path(work))
    bare = load_tracer(args.model)
    bare.enrolment = None
    enrolled = copy.copy(bare)  # the same model in memory: two loaded copies differ in speed by a few percent
    store = EnrolmentStore()
    store.adopt_space(enrolled.identity_space)
    rng = np.random.default_rng(0)
    dimension = len(bare(example_clips(1)[0], sampling_rate=16000, return_embedding=True)["embedding"])
    for name in ("A", "B", "C", "D"):
        store.add(name, rng.standard_normal((10, dimension)))
    enrolled.enrolment = store
    inputs = example_clips(args.clips)
    with_, without = paired_per_clip_seconds(enrolled, bare, inputs, args.repeats)
    print(f"{cpu_summary()}; precision {bare.resolved_precision}; {args.clips} clips of 3 s, each traced both ways "
          f"{args.repeats} times in turn (its median)")
    print(f"codectrace enroll, 10 clips of 3 s, median of 3: {command:.2f} s in all; {start_up:.2f} s of it is "
          f"importing torch, transformers and codectrace (timed alone); the enrolment itself (model loading, 10 clips, "
          f"saving; in this process, median of 3) {itself:.2f} s (the target: under 5 s)")
    print(f"tracing without enrolled generators: {1000 * without:.2f} ms per clip")
    print(f"with 4 generators enrolled:          {1000 * with_:.2f} ms per clip")
    print(f"ratio: {with_ / without:.3f} (the target: at most 1.1)")


if __name__ == "__main__":
    main()
