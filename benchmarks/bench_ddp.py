"""Two-process DDP training with gradient checkpointing: seconds per step without and with unused-parameter search.

    python benchmarks/bench_ddp.py [--presets official demo] [--steps 20] [--dataset PATH] [--out FILE.md]

Each preset at its tiny shape (`codectrace.testing.TINY_PRESET_FLAGS`), 1-s windows, batch 4 per process, on the
CPU with gloo (`torchrun --nproc_per_node 2 train.py ... --gradient_checkpointing True`). Under gradient
checkpointing the Trainer gives DDP `find_unused_parameters=False` (its default, `--ddp_find_unused_parameters`
unset); `True` makes DDP walk the autograd graph after every forward to find parameters without a gradient. Every
parameter of the model gets one, so both run; the table says what the search costs. The step time is the
Trainer's `train_runtime` over the steps (the first step's set-up included in both). Without `--dataset`, the test
fixture (a tiny CodecFake+ in the official layout) is built in a temporary folder.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from codectrace.files import print_report
from codectrace.machine import cpu_summary
from codectrace.testing import TINY_PRESET_FLAGS, tiny_preset_args, torchrun_command

ROOT = Path(__file__).resolve().parents[1]
SEARCH = {"off (the Trainer's choice)": "False", "on": "True"}


def build_fixture(folder: Path) -> Path:
    from dataset_scripts import build_codecfake_plus as builder
    from dataset_scripts.fixture import write_fixture

    release = write_fixture(folder / "release", utterances=4, seed=0)
    out = folder / "dataset"
    builder.build(release, release / "protocols", out, shard_rows=10, num_proc=1, progress=False)
    return out


def seconds_per_step(preset: str, dataset: Path, output_dir: Path, steps: int, search: str) -> float:
    args = tiny_preset_args(preset, dataset, output_dir, "--max_steps", str(steps), "--gradient_checkpointing",
                            "True", "--ddp_find_unused_parameters", search, "--use_cpu", "True", "--ddp_backend",
                            "gloo", "--save_strategy", "no", "--seed", "1234")
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    result = subprocess.run(torchrun_command(ROOT / "train.py", args), env=env, capture_output=True, text=True)
    if result.returncode != 0:
        raise SystemExit(f"{preset}, unused-parameter search {search}: train.py failed:\n{result.stderr[-3000:]}")
    train = json.loads((output_dir / "all_results.json").read_text())["train"]
    return float(train["train_runtime"]) / steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", nargs="+", default=list(TINY_PRESET_FLAGS), choices=list(TINY_PRESET_FLAGS))
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--dataset", type=Path, help="a built CodecFake+ dataset folder (default: the test fixture)")
    parser.add_argument("--out", help="also write the table to this file")
    args = parser.parse_args(argv)
    if args.steps < 3:
        parser.error("--steps must be at least 3 (DDP without unused-parameter search fails at step 2 if it fails)")
    with tempfile.TemporaryDirectory() as scratch:
        dataset = args.dataset or build_fixture(Path(scratch))
        rows = []
        for preset in args.presets:
            times = {label: seconds_per_step(preset, dataset, Path(scratch) / f"{preset}-{flag}", args.steps, flag)
                     for label, flag in SEARCH.items()}
            off, on = times.values()
            rows.append(f"| {preset} | {args.steps} | {off:.3f} | {on:.3f} | {on / off:.2f}x |")
    header = (f"CPU: {cpu_summary()}; 2 processes x 1 thread, gloo, gradient checkpointing on\n\n"
              "| preset (tiny shape) | steps | s/step, search off | s/step, search on | on / off |\n"
              "|---|---|---|---|---|")
    print_report("\n".join([header, *rows]), args.out)


if __name__ == "__main__":
    sys.exit(main())
