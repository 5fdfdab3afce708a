"""Training throughput: model steps (clips/s, peak memory) next to the data pipeline that feeds them.

    python benchmarks/bench_training.py [--sizes tiny xlsr-300m] [--steps 3] [--workers 0 1 2]

Model: M1, random weights, one optimizer step per batch of 64600-sample clips (batch 8 for tiny, 2 for the
XLS-R shape on CPU), after one warm-up step; peak memory is the process's peak RSS growth on CPU or
`torch.cuda.max_memory_allocated` on a GPU. Data: decoding + official window + RawBoost algo 5 through a
DataLoader with N worker processes over the demo corpus; the pipeline must outrun the model step.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

import numpy as np
import torch

import modeling_codectrace as mc
from codectrace.data import WaveformTransform, collate
from codectrace.files import write_json
from codectrace.presets import BACKBONE_SIZES, backbone_config
from modeling_codectrace.configuration_codectrace import OFFICIAL_WINDOW


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def model_throughput(size: str, steps: int, batch: int, device: str) -> dict:
    torch.manual_seed(0)
    config = mc.CodecTraceConfig(backbone_config=backbone_config(size), variant="M1")
    model = mc.CodecTraceForSourceTracing(config).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-6, weight_decay=1e-4)
    x = 0.1 * torch.randn(batch, config.chunk_samples, device=device)
    labels = {f"{t}_labels": torch.randint(0, len(mc.TASK_LABELS[t]), (batch,), device=device) for t in config.tasks}
    before = peak_rss_mb()
    if device == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for step in range(steps + 1):
        start = time.perf_counter()
        model(x, **labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        if step:  # the first step warms up
            times.append(time.perf_counter() - start)
    seconds = float(np.median(times))
    memory = torch.cuda.max_memory_allocated() / 2**20 if device == "cuda" else peak_rss_mb() - before
    return {"size": size, "batch": batch, "step_s": seconds, "clips_per_s": batch / seconds, "peak_mb": memory,
            "parameters_m": sum(p.numel() for p in model.parameters()) / 1e6}


def data_throughput(dataset_dir: str, workers: int, batches: int, batch: int) -> dict:
    from datasets import Audio, load_dataset

    ds = load_dataset(dataset_dir, "aux", split="train").cast_column("audio", Audio(decode=False))
    ds = ds.with_transform(WaveformTransform(("bin", "vq", "aux", "dec"), OFFICIAL_WINDOW, "first", "rawboost5"))
    loader = torch.utils.data.DataLoader(ds, batch_size=batch, shuffle=True, num_workers=workers,
                                         collate_fn=collate, persistent_workers=False)
    iterator = iter(loader)
    next(iterator)  # start-up
    start = time.perf_counter()
    seen = 0
    for _ in range(batches):
        try:
            seen += next(iterator)["input_values"].shape[0]
        except StopIteration:
            iterator = iter(loader)
    seconds = time.perf_counter() - start
    return {"workers": workers, "clips_per_s": seen / seconds}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["tiny", "xlsr-300m"], choices=list(BACKBONE_SIZES))
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--workers", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--dataset", default=None, help="built dataset folder (default: build the demo corpus)")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()

    if args.dataset is None:
        from codectrace.presets import DEMO_DATASET_DIR, DEMO_RELEASE_DIR
        from dataset_scripts.build_codecfake_mini import ensure_codecfake_mini

        args.dataset = str(ensure_codecfake_mini(DEMO_RELEASE_DIR, DEMO_DATASET_DIR))
    data = [data_throughput(args.dataset, w, batches=8, batch=8) for w in args.workers]
    models = []
    for size in args.sizes:
        batch = 2 if size == "xlsr-300m" and args.device == "cpu" else 8
        models.append(model_throughput(size, args.steps, batch, args.device))

    print(f"device: {args.device}, torch threads: {torch.get_num_threads()}")
    print(f"\n{'model':<10} {'params':>8} {'batch':>5} {'s/step':>7} {'clips/s':>8} {'peak MB':>8}")
    for m in models:
        print(f"{m['size']:<10} {m['parameters_m']:>7.1f}M {m['batch']:>5} {m['step_s']:>7.2f} "
              f"{m['clips_per_s']:>8.2f} {m['peak_mb']:>8.0f}")
    print(f"\n{'data workers':<12} {'clips/s (decode + window + RawBoost)':>38}")
    for d in data:
        print(f"{d['workers']:<12} {d['clips_per_s']:>38.1f}")
    fastest_model = max(m["clips_per_s"] for m in models)
    best_data = max(d["clips_per_s"] for d in data)
    print(f"\ndata pipeline / fastest model step: {best_data / fastest_model:.1f}x "
          f"({'not' if best_data > fastest_model else 'IS'} the bottleneck)")
    if args.json:
        write_json(args.json, {"models": models, "data": data})


if __name__ == "__main__":
    main()
