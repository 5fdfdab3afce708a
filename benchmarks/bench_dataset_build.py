"""Dataset builder throughput: clips per second on a generated corpus, 1 process vs N processes.

    python benchmarks/bench_dataset_build.py [--utterances 60] [--num-proc 1 2]

Writes the fixture corpus (a few thousand clips in the official layout) once, then builds every config
with each worker count into a fresh folder and prints a table (ratios against 1 process, same run).
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

from codectrace.files import write_json
from dataset_scripts import build_codecfake_plus as builder
from dataset_scripts.fixture import write_fixture


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--utterances", type=int, default=60, help="utterances per speaker (60: ~3.5k rows)")
    parser.add_argument("--num-proc", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--shard-rows", type=int, default=250)
    parser.add_argument("--json", type=Path, help="also write the results as JSON")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="codectrace-bench-"))
    try:
        start = time.perf_counter()
        root = write_fixture(work / "release", utterances=args.utterances)
        files = sum(1 for _ in (root / "all_data_16k").iterdir()) + sum(1 for _ in root.glob("SLMdemos_16k/*/*"))
        print(f"generated {files} audio files in {time.perf_counter() - start:.1f} s")
        results = []
        for workers in args.num_proc:
            out = work / f"out-{workers}"
            start = time.perf_counter()
            report = builder.build(root, root / "protocols", out, num_proc=workers, shard_rows=args.shard_rows,
                                   progress=False)
            seconds = time.perf_counter() - start
            rows = sum(sum(s.values()) for s in report.rows.values())
            results.append({"num_proc": workers, "rows": rows, "seconds": seconds, "clips_per_s": rows / seconds})
            shutil.rmtree(out)
        base = results[0]["clips_per_s"]
        print(f"\n{'processes':>9} {'rows':>6} {'seconds':>8} {'clips/s':>8} {'vs first':>8}")
        for r in results:
            print(f"{r['num_proc']:>9} {r['rows']:>6} {r['seconds']:>8.2f} {r['clips_per_s']:>8.0f} "
                  f"{r['clips_per_s'] / base:>7.2f}x")
        if args.json:
            write_json(args.json, results)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
