"""What cutting leading and trailing silence (`trim_silence_db`) costs per clip, on the demo model, in one run.

    python benchmarks/bench_trimming.py [--model outputs/demo-M1] [--clips 40] [--repeats 5] [--long-seconds 120]

Traces the same inputs with trimming at the demo's level and with it off, each input both ways in turn in each
repeat (`timing_clips.paired_per_clip_seconds`): 3-s clips cut from the Space's examples, in memory; and one long
16 kHz WAV file, which the pipeline reads window by window and which trimming reads once more, block by block, to
find the span. The examples hold speech from end to end, so trimming removes next to nothing here: the ratio is its
cost, not the time saved on windows of silence it no longer traces.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from timing_clips import example_clips, paired_per_clip_seconds

from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary
from codectrace.presets import TRAINING_PRESETS

ROOT = Path(__file__).resolve().parents[1]
LEVEL = TRAINING_PRESETS["demo"]["trim_silence_db"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "outputs" / "demo-M1"))
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--long-seconds", type=float, default=120.0)
    args = parser.parse_args()

    trimmed = load_tracer(args.model, trim_silence_db=LEVEL)
    untrimmed = load_tracer(args.model, precision=trimmed.precision, trim_silence_db=False)
    clips = example_clips(args.clips)
    with tempfile.TemporaryDirectory() as folder:
        long_file = str(Path(folder) / "long.wav")
        copies = int(np.ceil(args.long_seconds * 16000 / sum(c.size for c in clips)))
        sf.write(long_file, np.tile(np.concatenate(clips), copies)[: int(args.long_seconds * 16000)], 16000)
        rows = {f"{args.clips} clips of 3 s, in memory": paired_per_clip_seconds(trimmed, untrimmed, clips,
                                                                                 args.repeats),
                f"a {args.long_seconds:g}-s 16 kHz WAV file": paired_per_clip_seconds(trimmed, untrimmed, [long_file],
                                                                                      args.repeats)}
    print(f"{cpu_summary()}, precision {trimmed.resolved_precision}, trim_silence_db {LEVEL:g} against off, median "
          f"of {args.repeats} repeats\n")
    print("| input | with trimming, s | without, s | ratio |\n|---|---|---|---|")
    for name, (with_, without) in rows.items():
        print(f"| {name} | {with_:.4f} | {without:.4f} | {with_ / without:.3f} |")


if __name__ == "__main__":
    main()
