"""CPU inference speed of CodecTrace at the paper's model size (random weights), ratios within one run.

    python benchmarks/bench_inference.py [--clips 16] [--repeats 3] [--size xlsr-300m] [--skip-long]

Part 1, XLS-R 300M shape, M1 heads, 16 clips of 64600 samples:
  (a) naive baseline: fp32, eager, batch 1, one clip at a time (under torch.no_grad);
  (b) the pipeline's default CPU path (`precision="auto"`), plus each candidate on its own.
  Reports clips/s, real-time factor, speed-up over (a), achieved GFLOP/s next to a measured fp32 matmul peak,
  and agreement with fp32 (same decision on every clip, largest head-probability difference).
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
from codectrace.files import write_json
from codectrace.hub import save_model_folder
from codectrace.pipeline import cpu_has_fast_bf16
from codectrace.presets import BACKBONE_SIZES, backbone_config
from modeling_codectrace.configuration_codectrace import OFFICIAL_WINDOW


def matmul_peak(dtype=torch.float32, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    a @ b
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - start) / 1e9


def flops_per_clip(model, chunk: int) -> float:
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:  # (FlopCounterMode's module tracker needs autograd on)
        model(torch.zeros(1, chunk))
    return counter.get_total_flops()


def make_clips(count: int, chunk: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    t = np.arange(chunk) / 16000
    clips = []
    for _ in range(count):
        f0 = rng.uniform(90, 220)
        voiced = sum(np.sin(2 * np.pi * k * f0 * t) / k for k in range(1, 8)) * (1 + np.sin(2 * np.pi * 3 * t))
        clips.append((0.1 * voiced + 0.02 * rng.standard_normal(chunk)).astype(np.float32))
    return clips


def naive(model, clips) -> list[dict[str, np.ndarray]]:
    outputs = []
    with torch.no_grad():
        for clip in clips:
            out = model(torch.from_numpy(clip)[None])
            outputs.append({t: torch.softmax(out.logits_for(t), -1)[0].numpy() for t in model.config.tasks})
    return outputs


def via_pipeline(tracer, clips, batch: int) -> list[dict[str, np.ndarray]]:
    # Each 4-s clip is one window, so batching happens across clips: feed batches of clips through the
    # pipeline's own model step (`_forward`, with its precision handling).
    outputs = []
    tasks = tracer.model.config.tasks
    for first in range(0, len(clips), batch):
        block = torch.from_numpy(np.stack(clips[first : first + batch]))
        result = tracer._forward({"input_values": block, "starts": [], "num_samples": 0, "audio_stats": None,
                                  "is_last": True})
        for i in range(block.shape[0]):
            outputs.append({t: result["probabilities"][t][i] for t in tasks})
    return outputs


def compare(reference, candidate) -> tuple[bool, float]:
    same, worst = True, 0.0
    for ref, cand in zip(reference, candidate):
        if "bin" in ref:
            same &= bool((ref["bin"][0] >= 0.5) == (cand["bin"][0] >= 0.5))
        for task in ref:
            same &= bool(ref[task].argmax() == cand[task].argmax())
            worst = max(worst, float(np.abs(ref[task] - cand[task]).max()))
    return same, worst


def part_one(args) -> list[dict]:
    torch.manual_seed(0)
    config = mc.CodecTraceConfig(backbone_config=backbone_config(args.size),
                                 variant="M1")
    model = mc.CodecTraceForSourceTracing(config).eval()
    chunk = config.chunk_samples
    clips = make_clips(args.clips, chunk)
    flops = flops_per_clip(model, chunk)
    peak = matmul_peak()
    print(f"model: {args.size}, {sum(p.numel() for p in model.parameters()) / 1e6:.1f} M parameters, "
          f"{flops / 1e9:.1f} GFLOP per {chunk}-sample clip; fp32 matmul peak {peak:.0f} GFLOP/s on "
          f"{torch.get_num_threads()} threads; native bf16: {cpu_has_fast_bf16()}")
    naive(model, clips[:1])  # warm-up

    rows = []

    def record(name, seconds, outputs, reference):
        same, worst = compare(reference, outputs) if reference else (True, 0.0)
        rows.append({"path": name, "seconds": seconds, "clips_per_s": len(clips) / seconds,
                     "real_time_factor": seconds / (len(clips) * chunk / 16000),
                     "gflops_per_s": flops * len(clips) / seconds / 1e9, "same_decisions": same,
                     "max_prob_diff": worst})

    def timed(run) -> tuple[float, list]:
        """The median time of `repeats` runs (this machine's speed drifts between runs), and the outputs."""
        times, outputs = [], None
        for _ in range(args.repeats):
            start = time.perf_counter()
            outputs = run()
            times.append(time.perf_counter() - start)
        return float(np.median(times)), outputs

    seconds, reference = timed(lambda: naive(model, clips))
    record("(a) naive fp32 eager, batch 1", seconds, reference, None)

    candidates = [("fp32, batch 8 (inference_mode)", "fp32", 8),
                  ("int8 dynamic Linear, batch 1", "int8", 1),
                  ("int8 dynamic Linear, batch 8", "int8", 8)]
    if cpu_has_fast_bf16():
        candidates.append(("bf16 autocast, batch 8", "bf16", 8))
    candidates.append(("(b) pipeline default (precision=auto), batch 8", "auto", 8))
    for name, precision, batch in candidates:
        tracer = pipeline("codec-source-tracing", model=model, feature_extractor=mc.CodecTraceFeatureExtractor(),
                          precision=precision)
        via_pipeline(tracer, clips[:1], 1)  # warm-up (and quantisation)
        seconds, outputs = timed(lambda: via_pipeline(tracer, clips, batch))  # noqa: B023 (called at once)
        record(f"{name} [{tracer.resolved_precision}]", seconds, outputs, reference)
    base = rows[0]["seconds"]
    print(f"\n{'path':<58} {'clips/s':>7} {'RTF':>6} {'speed-up':>8} {'GFLOP/s':>8} {'same':>5} {'max dp':>7}")
    for row in rows:
        print(f"{row['path']:<58} {row['clips_per_s']:>7.2f} {row['real_time_factor']:>6.3f} "
              f"{base / row['seconds']:>7.2f}x {row['gflops_per_s']:>8.1f} {str(row['same_decisions']):>5} "
              f"{row['max_prob_diff']:>7.4f}")
    return rows


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


def part_two(args) -> dict:
    # The test files take about 150 MB; they go with the folder when the measurement ends.
    with tempfile.TemporaryDirectory(prefix="codectrace-long-") as scratch:
        return long_audio(Path(scratch))


def long_audio(work: Path) -> dict:
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
            for _ in range(int(minutes * 60)):
                handle.write((0.1 * rng.standard_normal(16000)).astype(np.float32))
        return str(path)

    def run(files) -> tuple[float, float]:
        out = subprocess.run([sys.executable, "-c", CHILD, str(model_dir), *files], capture_output=True, text=True,
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
    result = {"ten_1min_files_s": ten_short, "one_10min_file_s": ten_long, "ratio": ten_long / ten_short,
              "peak_rss_1min_mb": rss_one, "peak_rss_60min_mb": rss_sixty, "rss_growth_mb": rss_sixty - rss_one}
    print(f"\nlong audio (small model, 64600-sample windows, batch 8):\n"
          f"  ten 1-minute files {ten_short:.1f} s, one 10-minute file {ten_long:.1f} s: ratio {result['ratio']:.2f} "
          f"(target <= 1.1)\n  peak RSS 1-minute file {rss_one:.0f} MB, 60-minute file {rss_sixty:.0f} MB: growth "
          f"{result['rss_growth_mb']:.0f} MB (target < 300 MB)")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--clips", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3, help="runs per path; the median time is reported")
    parser.add_argument("--size", default="xlsr-300m", choices=list(BACKBONE_SIZES))
    parser.add_argument("--skip-long", action="store_true", help="only part 1")
    parser.add_argument("--only-long", action="store_true", help="only part 2")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    results = {} if args.only_long else {"short": part_one(args)}
    if not args.skip_long:
        results["long"] = part_two(args)
    if args.json:
        write_json(args.json, results)


if __name__ == "__main__":
    main()
