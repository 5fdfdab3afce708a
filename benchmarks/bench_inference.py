"""Inference speed of CodecTrace at the paper's model size (random weights), ratios within one run.

    python benchmarks/bench_inference.py [--windows 64] [--repeats 3] [--size xlsr-300m] [--device cpu|cuda]
                                         [--dataset data/codecfake-mini/dataset] [--skip-long]

Part 1, XLS-R 300M shape, M1 heads, a fixed set of 4-s windows (the first window of the first `--windows` rows of
the corpus' `cors_eval` test split where `--dataset` is given and built, else synthetic voiced clips):
  (a) naive baseline: fp32, eager, batch 1, one window at a time (under torch.no_grad);
  each precision of `codectrace.precision` as the pipeline runs it (its copy of the model, input dtype, autocast),
  at batch 1 and at the device's default window batch; and the pipeline itself, (b) one `tracer(clip)` call per
  clip and (c) all clips through `tracer.trace_many` (what `codectrace trace` runs), windows batched across clips.
  Reports windows/s, real-time factor, speed-up over (a), achieved GFLOP/s next to a measured fp32 matmul peak,
  agreement with fp32 (same decision on every window and head, largest head-probability difference) and, on GPUs,
  peak memory. With `--device cuda` the same script runs on a GPU unchanged (the default is cuda where there is one).
Part 2, long audio (a small model, since the property is the pipeline's streaming, not the model's size):
  time of one 10-minute file against ten 1-minute files, and peak memory of 1-minute vs 60-minute files
  (each in a fresh process).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from transformers import pipeline

import codectrace  # noqa: F401  (registers the pipeline task)
import modeling_codectrace as mc
from codectrace.files import print_report, write_json
from codectrace.hub import save_model_folder
from codectrace.machine import cpu_summary
from codectrace.precision import (
    PRECISIONS,
    autocast,
    default_window_batch_size,
    input_dtype,
    model_for_inference,
    resolve_precision,
)
from codectrace.presets import BACKBONE_SIZES, backbone_config
from modeling_codectrace.configuration_codectrace import OFFICIAL_WINDOW
from modeling_codectrace.feature_extraction_codectrace import fit_to_length


def matmul_peak(device: torch.device, dtype=torch.float32, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype, device=device), torch.randn(n, n, dtype=dtype, device=device)
    a @ b
    synchronize(device)
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    synchronize(device)
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def flops_per_clip(model, chunk: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # (FlopCounterMode's module tracker needs autograd on)
        model(torch.zeros(1, chunk, device=model.device))
    return counter.get_total_flops()


def synthetic_clips(count: int, chunk: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(chunk) / 16000
    clips = []
    for _ in range(count):
        f0 = rng.uniform(90, 220)
        voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * (1 + np.sin(2 * np.pi * 3 * t))
        clips.append((0.1 * voiced + 0.02 * rng.standard_normal(chunk)).astype(np.float32))
    return clips


def corpus_windows(dataset: str, count: int, chunk: int) -> list[np.ndarray]:
    """The first window of the first `count` rows of the corpus' in-domain test set (the official window policy)."""
    from codectrace.audio import load_audio
    from codectrace.resolve import load_split

    rows = load_split(dataset, "cors_eval", "test", limit=count)
    return [fit_to_length(load_audio(row["audio"]), chunk).astype(np.float32) for row in rows]


def probabilities(model, outputs, rows: int) -> list[dict[str, np.ndarray]]:
    probs = {t: torch.softmax(outputs.logits_for(t).float(), -1).cpu().numpy() for t in model.config.tasks}
    return [{t: p[i] for t, p in probs.items()} for i in range(rows)]


def naive(model, clips) -> list[dict[str, np.ndarray]]:
    outputs = []
    with torch.no_grad():
        for clip in clips:
            outputs += probabilities(model, model(torch.from_numpy(clip)[None].to(model.device)), 1)
    return outputs


def at_precision(model, precision: str, device: torch.device, clips, batch: int) -> list[dict[str, np.ndarray]]:
    """Windows through `model` (already `model_for_inference`) the way the pipeline's model step runs them."""
    outputs = []
    for first in range(0, len(clips), batch):
        block = torch.from_numpy(np.stack(clips[first : first + batch])).to(device, input_dtype(precision, device))
        with torch.inference_mode(), autocast(precision, device):
            outputs += probabilities(model, model(input_values=block), block.shape[0])
    return outputs


def via_pipeline(tracer, clips, together: bool = False) -> list[dict[str, np.ndarray]]:
    """One call per clip, or (`together`) all clips through `trace_many`, windows of consecutive clips batched."""
    inputs = [{"array": clip, "sampling_rate": 16000} for clip in clips]
    results = list(tracer.trace_many(inputs)) if together else [tracer(clip) for clip in inputs]
    return [{t: np.array(list(r[t].values())) for t in tracer.model.config.tasks} for r in results]


def compare(reference, candidate) -> tuple[bool, float]:
    same, worst = True, 0.0
    for ref, cand in zip(reference, candidate):
        if "bin" in ref:
            same &= bool((ref["bin"][0] >= 0.5) == (cand["bin"][0] >= 0.5))
        for task in ref:
            same &= bool(ref[task].argmax() == cand[task].argmax())
            worst = max(worst, float(np.abs(ref[task] - cand[task]).max()))
    return same, worst


def candidates(device: torch.device, wanted=PRECISIONS) -> list[tuple[str, int]]:
    """(precision, batch) pairs to time: every precision the device runs (of those `wanted`), at batch 1 and the
    default batch."""
    batch = default_window_batch_size(device)
    usable = [p for p in PRECISIONS if p in wanted and p != "auto" and (device.type == "cuda" or p != "fp16")]
    if device.type == "cuda" and "int8" in usable:
        usable.remove("int8")  # dynamic int8 quantisation is a CPU path
    return [(p, b) for p in usable for b in dict.fromkeys((1, batch)) if (p, b) != ("fp32", 1)]  # that is (a)


def part_one(args) -> list[dict]:
    device = torch.device(args.device)
    torch.manual_seed(0)
    config = mc.CodecTraceConfig(backbone_config=backbone_config(args.size), variant="M1")
    model = mc.CodecTraceForSourceTracing(config).eval().to(device)
    chunk = config.chunk_samples
    clips = (corpus_windows(args.dataset, args.windows, chunk) if args.dataset
             else synthetic_clips(args.windows, chunk))
    flops = flops_per_clip(model, chunk)
    peak = matmul_peak(device)
    where = cpu_summary() if device.type == "cpu" else torch.cuda.get_device_name(device)
    header = (f"{where}; torch {torch.__version__}, {torch.get_num_threads()} threads\n"
              f"model: {args.size}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
              f"{flops / 1e9:.1f} GFLOP per {chunk}-sample window; {len(clips)} windows "
              f"({'cors_eval test, first window' if args.dataset else 'synthetic'}); "
              f"fp32 matmul peak {peak:.0f} GFLOP/s; "
              f"auto = {resolve_precision('auto', device)}")
    naive(model, clips[:1])  # warm-up
    rows = []

    def record(name, seconds, outputs, reference, memory=None):
        same, worst = compare(reference, outputs) if reference else (True, 0.0)
        rows.append({"path": name, "seconds": seconds, "windows_per_s": len(clips) / seconds,
                     "real_time_factor": seconds / (len(clips) * chunk / 16000),
                     "gflops_per_s": flops * len(clips) / seconds / 1e9, "same_decisions": same,
                     "max_prob_diff": worst, "peak_memory_mb": memory})

    def timed(run) -> tuple[float, list, float | None]:
        """The median time of `repeats` runs (this machine's speed drifts between runs), the outputs, the peak
        GPU memory (None on CPU)."""
        times, outputs = [], None
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        for _ in range(args.repeats):
            synchronize(device)
            start = time.perf_counter()
            outputs = run()
            synchronize(device)
            times.append(time.perf_counter() - start)
        memory = torch.cuda.max_memory_allocated(device) / 2**20 if device.type == "cuda" else None
        return float(np.median(times)), outputs, memory

    seconds, reference, memory = timed(lambda: naive(model, clips))
    record("(a) naive fp32 eager, batch 1", seconds, reference, None, memory)
    for precision, batch in candidates(device, args.precisions):
        start = time.perf_counter()
        fast = model_for_inference(model, precision, device)
        prepare = time.perf_counter() - start
        at_precision(fast, precision, device, clips[:1], 1)  # warm-up
        seconds, outputs, memory = timed(lambda f=fast, p=precision, b=batch: at_precision(f, p, device, clips, b))
        record(f"{precision}, batch {batch} (copy made in {prepare:.1f} s)", seconds, outputs, reference, memory)
    tracer = pipeline("codec-source-tracing", model=model, feature_extractor=mc.CodecTraceFeatureExtractor(),
                      device=device, precision="auto")
    via_pipeline(tracer, clips[:1])  # warm-up
    seconds, outputs, memory = timed(lambda: via_pipeline(tracer, clips))
    record(f"(b) pipeline, precision=auto [{tracer.resolved_precision}], one call per clip", seconds, outputs,
           reference, memory)
    via_pipeline(tracer, clips[:8], together=True)  # warm-up
    seconds, outputs, memory = timed(lambda: via_pipeline(tracer, clips, together=True))
    record(f"(c) pipeline, precision=auto [{tracer.resolved_precision}], `trace_many` (clips batched together)",
           seconds, outputs, reference, memory)
    print_report(header + "\n\n" + table(rows), args.table)
    return rows


def table(rows: list[dict]) -> str:
    base = rows[0]["seconds"]
    lines = ["| path | windows/s | RTF | speed-up | GFLOP/s | same decisions | max prob. diff | peak memory |",
             "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        memory = "" if row["peak_memory_mb"] is None else f"{row['peak_memory_mb']:.0f} MB"
        lines.append(f"| {row['path']} | {row['windows_per_s']:.2f} | {row['real_time_factor']:.3f} | "
                     f"{base / row['seconds']:.2f}x | {row['gflops_per_s']:.1f} | "
                     f"{'yes' if row['same_decisions'] else 'NO'} | {row['max_prob_diff']:.4f} | {memory} |")
    return "\n".join(lines)


CHILD = """
import resource, sys, time
from codectrace.hub import load_tracer
tracer = load_tracer(sys.argv[1])
files = sys.argv[2:]
start = time.perf_counter()
for f in files:
    tracer(f, window_batch_size=8)
print(time.perf_counter() - start, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""

# `codectrace trace` on the files; its decoding worker's peak counts too (the larger of the two).
CLI_CHILD = """
import resource, sys, tempfile, time
from codectrace.cli import main
start = time.perf_counter()
with tempfile.TemporaryDirectory() as out:
    main(["trace", *sys.argv[2:], "--model", sys.argv[1], "--output", out + "/rows.csv", "--quiet"])
peak = max(resource.getrusage(kind).ru_maxrss for kind in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
print(time.perf_counter() - start, peak)
"""


def part_two(args) -> dict:
    # The test files take about 150 MB; they go with the folder when the measurement ends.
    with tempfile.TemporaryDirectory(prefix="codectrace-long-") as scratch:
        return long_audio(Path(scratch), args.long_scale)


def long_audio(work: Path, scale: float = 1.0) -> dict:
    """Ten 1-minute files against one 10-minute file (time), and a 1-minute against a 60-minute file (memory)."""
    import soundfile as sf

    torch.manual_seed(0)
    config = mc.CodecTraceConfig(backbone_config=backbone_config("small"),
                                 variant="M1", chunk_samples=OFFICIAL_WINDOW)
    model_dir = work / "model"
    save_model_folder(mc.CodecTraceForSourceTracing(config).eval(), mc.CodecTraceFeatureExtractor(),
                             model_dir)
    rng = np.random.default_rng(0)

    def write(name: str, minutes: float) -> str:
        path = work / name
        with sf.SoundFile(path, "w", 16000, 1, subtype="PCM_16") as handle:
            for _ in range(max(1, int(minutes * scale * 60))):
                handle.write((0.1 * rng.standard_normal(16000)).astype(np.float32))
        return str(path)

    def run(files, child: str = CHILD) -> tuple[float, float]:
        out = subprocess.run([sys.executable, "-c", child, str(model_dir), *files], capture_output=True, text=True,
                             check=True, env=dict(os.environ, HF_HUB_OFFLINE="1"))
        seconds, rss_kb = out.stdout.strip().splitlines()[-1].split()
        return float(seconds), int(rss_kb) / 1024

    one = [write(f"one_{i}.wav", 1) for i in range(10)]
    ten = write("ten.wav", 10)
    sixty = write("sixty.wav", 60)
    ten_short, _ = run(one)
    ten_long, _ = run([ten])
    _, rss_one = run(one[:1])
    _, rss_sixty = run([sixty])
    _, cli_one = run(one[:1], CLI_CHILD)
    _, cli_sixty = run([sixty], CLI_CHILD)
    result = {"ten_1min_files_s": ten_short, "one_10min_file_s": ten_long, "ratio": ten_long / ten_short,
              "peak_rss_1min_mb": rss_one, "peak_rss_60min_mb": rss_sixty, "rss_growth_mb": rss_sixty - rss_one,
              "trace_peak_rss_1min_mb": cli_one, "trace_peak_rss_60min_mb": cli_sixty,
              "trace_rss_growth_mb": cli_sixty - cli_one}
    print(f"\nlong audio (small model, 64600-sample windows, batch 8):\n"
          f"  ten 1-minute files {ten_short:.1f} s, one 10-minute file {ten_long:.1f} s: ratio {result['ratio']:.2f} "
          f"(target <= 1.1)\n  peak RSS 1-minute file {rss_one:.0f} MB, 60-minute file {rss_sixty:.0f} MB: growth "
          f"{result['rss_growth_mb']:.0f} MB (target < 300 MB)\n  codectrace trace: peak RSS 1-minute file "
          f"{cli_one:.0f} MB, 60-minute file {cli_sixty:.0f} MB: growth {cli_sixty - cli_one:.0f} MB")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--windows", type=int, default=64)
    parser.add_argument("--dataset", help="built corpus to take the windows from (default: synthetic clips)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--table", type=Path, help="also write part 1's table (markdown) here")
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; the median time is reported")
    parser.add_argument("--size", default="xlsr-300m", choices=list(BACKBONE_SIZES))
    parser.add_argument("--precisions", nargs="+", default=list(PRECISIONS[1:]), choices=PRECISIONS[1:],
                        help="precisions to time beside the naive path and the pipeline (default: all)")
    parser.add_argument("--skip-long", action="store_true", help="only part 1")
    parser.add_argument("--only-long", action="store_true", help="only part 2")
    parser.add_argument("--long-scale", type=float, default=1.0,
                        help="scale part 2's durations (the tests' smoke run uses a small fraction)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {} if args.only_long else {"short": part_one(args)}
    if not args.skip_long:
        results["long"] = part_two(args)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
