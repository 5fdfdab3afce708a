"""Tracing a folder against the model alone: does `codectrace trace` keep the model busy?

    python benchmarks/bench_folder.py [--files 1000] [--seconds 4] [--rate 44100] [--size xlsr-300m] [--workers N]
                                      [--device cpu|cuda]

Writes `--files` clips of `--seconds` at `--rate` (FLAC, so every file is decoded and resampled), then, in one run,
at the pipeline's default precision:
  model only: the same clips decoded beforehand, through `trace_many` (windows of consecutive clips batched);
  one call per clip: the same decoded clips, `tracer(clip)` each (what a loop over files used to do);
  folder: `codectrace trace FOLDER --output rows.csv` (decoding in worker processes, rows recorded as they come,
  merged at the end), its model loading timed apart and left out.
Model only and folder alternate `--repeats` times (median reported); then one call per clip once. Reports files/s
of each and the ratio to model only (the folder's target: at least 0.9).
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import modeling_codectrace as mc
from codectrace.audio import load_audio
from codectrace.cli import main as cli_main
from codectrace.files import print_report
from codectrace.hub import load_tracer, save_model_folder
from codectrace.machine import cpu_summary
from codectrace.presets import BACKBONE_SIZES, backbone_config
from codectrace.sharded import Shard
from codectrace.tracing import default_workers


def write_clips(folder: Path, count: int, seconds: float, rate: int) -> list[Path]:
    rng = np.random.default_rng(0)
    paths = []
    for i in range(count):
        t = np.arange(int(seconds * rate)) / rate
        voiced = np.sin(2 * np.pi * rng.uniform(90, 220) * t) * (1 + np.sin(2 * np.pi * 3 * t))
        path = folder / f"clip{i:05d}.flac"
        sf.write(path, 0.1 * voiced + 0.01 * rng.standard_normal(t.size), rate)
        paths.append(path)
    return paths


def measure(args, work: Path) -> dict:
    torch.manual_seed(0)
    config = mc.CodecTraceConfig(backbone_config=backbone_config(args.size), variant="M1")
    model_dir = save_model_folder(mc.CodecTraceForSourceTracing(config).eval(), mc.CodecTraceFeatureExtractor(),
                                  work / "model")
    folder = work / "clips"
    folder.mkdir()
    paths = write_clips(folder, args.files, args.seconds, args.rate)
    start = time.perf_counter()
    device = Shard().device(args.device)  # as `codectrace trace` picks it: the GPU where there is one
    tracer = load_tracer(str(model_dir), device=device)
    load_seconds = time.perf_counter() - start
    clips = [{"array": load_audio(str(path)), "sampling_rate": 16000} for path in paths]
    list(tracer.trace_many(clips[:8]))  # warm-up

    def model_only_run() -> float:
        start = time.perf_counter()
        list(tracer.trace_many(clips))
        return time.perf_counter() - start

    def folder_run() -> float:
        start = time.perf_counter()
        status = cli_main(["trace", str(folder), "--model", str(model_dir), "--output", str(work / "rows.csv"),
                           "--quiet", "--workers", str(args.workers), *(["--device", device] if device else [])])
        if status != 0:
            raise SystemExit(f"codectrace trace failed with status {status}")
        return time.perf_counter() - start - load_seconds

    times = {"model only": [], "folder": []}
    for _ in range(args.repeats):  # alternating, so that a drift of the machine's speed hits both alike
        times["model only"].append(model_only_run())
        times["folder"].append(folder_run())
    model_only, traced = (float(np.median(times[kind])) for kind in ("model only", "folder"))
    start = time.perf_counter()
    for clip in clips:
        tracer(clip)
    one_by_one = time.perf_counter() - start
    return {"model_only_files_per_s": args.files / model_only, "one_by_one_files_per_s": args.files / one_by_one,
            "folder_files_per_s": args.files / traced, "one_by_one_ratio": model_only / one_by_one,
            "ratio": model_only / traced, "load_seconds": load_seconds, "precision": tracer.resolved_precision}


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rate", type=int, default=44100, help="sampling rate of the files (16000: no resampling)")
    parser.add_argument("--size", default="xlsr-300m", choices=list(BACKBONE_SIZES))
    parser.add_argument("--workers", type=int, default=default_workers(), help="decoding processes of the folder run")
    parser.add_argument("--device", default=None, help="default: the GPU where there is one, else cpu")
    parser.add_argument("--repeats", type=int, default=2, help="alternating runs of each; the median is reported")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="codectrace-folder-") as scratch:
        result = measure(args, Path(scratch))
    table = (f"{cpu_summary()}; torch {torch.__version__}; model {args.size} at {result['precision']}; "
             f"{args.files} files of {args.seconds:g} s, FLAC at {args.rate} Hz; {args.workers} decoding worker(s); "
             f"model loading {result['load_seconds']:.1f} s, left out; median of {args.repeats} alternating runs\n\n"
             "| run | files/s | vs model only |\n|---|---|---|\n"
             f"| model only (decoded beforehand, `trace_many`) | {result['model_only_files_per_s']:.2f} | 1.00 |\n"
             f"| one pipeline call per decoded clip | {result['one_by_one_files_per_s']:.2f} | "
             f"{result['one_by_one_ratio']:.2f} |\n"
             f"| `codectrace trace` on the folder | {result['folder_files_per_s']:.2f} | {result['ratio']:.2f} |")
    print_report(table, args.out)


if __name__ == "__main__":
    main()
