"""How much do the demo model's results depend on the seed? Trains the demo preset once per seed and tabulates.

    python benchmarks/demo_seeds.py                          # seeds 1234 7 42, one run at a time
    python benchmarks/demo_seeds.py --seeds 1 2 3 4 --jobs 2 --out docs/demo_seeds.md

Held-out (out-of-domain) results from a single run are anecdotes: which unseen codecs a model gets right
changes with the seed. This runs `train.py --preset demo --seed S` for every seed (into
`<runs>/seed-S`; a finished run is reused, so an interrupted sweep continues), then writes a markdown table of
in-domain (CoRS) and held-out (CoSG-like) BIN EER and macro-F1 per seed with the mean and the worst seed, and
the held-out accuracy per codec. `--jobs 2` runs two seeds at once with one thread each. Extra arguments after
`--` go to train.py (e.g. `-- --num_train_epochs 30`). Needs the demo corpus (`python train.py` builds it).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from codectrace.files import write_text

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("vq", "aux", "dec")
HEADS = ("bin", *TASKS)
SETS = {"cors_eval": "in-domain", "cosg_eval": "held-out"}


def run_seed(seed: int, runs: Path, threads: int, extra: list[str]) -> Path | None:
    """Trains one seed unless its results exist; returns the run folder, or None when the run failed."""
    folder = runs / f"seed-{seed}"
    if (folder / "all_results.json").exists():
        return folder
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    command = [sys.executable, str(ROOT / "train.py"), "--preset", "demo", "--seed", str(seed),
               "--output_dir", str(folder), "--disable_tqdm", "true", *extra]
    start = time.perf_counter()
    with open(folder / "train.log", "w") as log:
        done = subprocess.run(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT)
    if done.returncode != 0:  # recorded; the other seeds go on
        print(f"seed {seed}: FAILED (exit {done.returncode}); see {folder / 'train.log'}", flush=True)
        return None
    print(f"seed {seed}: done in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def read_run(folder: Path) -> dict:
    results = json.loads((folder / "all_results.json").read_text())["eval"]
    row = {}
    for name, label in SETS.items():
        metrics = results[name]
        row[label] = {"bin_eer": 100 * metrics["bin"]["eer"], **{t: metrics[t]["f1_macro"] for t in TASKS}}
        row.setdefault("calibration", {})[label] = {
            t: (metrics[t].get("ece_uncalibrated", metrics[t]["ece"]), metrics[t]["ece"]) for t in HEADS}
    row["unknown_source"] = json.loads((folder / "all_results.json").read_text()).get("unknown_source")
    per_source = json.loads((folder / "eval" / "cosg_eval" / "metrics.json").read_text())["per_source"]
    row["per_codec"] = {codec: {t: values[t]["accuracy"] for t in TASKS}
                        for codec, values in per_source.items() if codec != "bonafide"}
    return row


def markdown(rows: dict[int, dict]) -> str:
    lines = ["| set | seed | BIN EER % | VQ macro-F1 | AUX macro-F1 | DEC macro-F1 |", "|---|---|---|---|---|---|"]
    for label in SETS.values():
        for seed, row in rows.items():
            r = row[label]
            lines.append(f"| {label} | {seed} | {r['bin_eer']:.2f} | {r['vq']:.3f} | {r['aux']:.3f} | {r['dec']:.3f} |")
        for summary, reduce in (("mean", lambda v: sum(v) / len(v)), ("worst seed", min)):
            values = {k: reduce([row[label][k] for row in rows.values()]) for k in TASKS}
            eer = (max if summary == "worst seed" else reduce)([row[label]["bin_eer"] for row in rows.values()])
            lines.append(f"| {label} | **{summary}** | {eer:.2f} | {values['vq']:.3f} | {values['aux']:.3f} | "
                         f"{values['dec']:.3f} |")
    lines += calibration_table(rows) + unknown_source_table(rows)
    codecs = sorted(next(iter(rows.values()))["per_codec"])
    lines += ["", "Held-out accuracy per codec (VQ / AUX / DEC), one column per seed:", "",
              "| held-out codec | " + " | ".join(f"seed {s}" for s in rows) + " |", "|---|" + "---|" * len(rows)]
    for codec in codecs:
        cells = [" / ".join(f"{row['per_codec'][codec][t]:.2f}" for t in TASKS) for row in rows.values()]
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def calibration_table(rows: dict[int, dict]) -> list[str]:
    """ECE (15 bins) per head before -> after temperature scaling: the mean over seeds and the worst seed after."""
    lines = ["", "Expected calibration error (15 bins), before -> after temperature scaling on the validation split: "
             "the mean over seeds [the worst seed after]:", "",
             "| set | " + " | ".join(h.upper() for h in HEADS) + " |", "|---|" + "---|" * len(HEADS)]
    for label in SETS.values():
        cells = []
        for head in HEADS:
            before, after = zip(*(row["calibration"][label][head] for row in rows.values()))
            cells.append(f"{sum(before) / len(before):.3f} -> {sum(after) / len(after):.3f} [{max(after):.3f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def unknown_source_table(rows: dict[int, dict]) -> list[str]:
    """Per taxonomy head: AUROC of held-out against in-domain spoof clips (the Mahalanobis score used, then max
    softmax and energy for comparison), and the share of correct in-domain answers turned unknown: mean [min-max]."""
    runs = [row["unknown_source"] for row in rows.values() if row.get("unknown_source")]
    if not runs:
        return []

    def spread(values) -> str:
        return f"{sum(values) / len(values):.3f} [{min(values):.3f}-{max(values):.3f}]"

    lines = ["", f"Unknown source, held-out against in-domain spoof clips, over {len(runs)} seeds: mean [min-max]:", "",
             "| head | AUROC Mahalanobis (used) | AUROC max softmax | AUROC energy | correct in-domain answers "
             "turned unknown | held-out clips called unknown |", "|---|---|---|---|---|---|"]
    for task in TASKS:
        cells = [spread([r[task]["mahalanobis"]["auroc"] for r in runs]),
                 spread([r[task]["max_softmax_probability"]["auroc"] for r in runs]),
                 spread([r[task]["energy"]["auroc"] for r in runs]),
                 spread([r[task]["correct_turned_unknown"] for r in runs]),
                 spread([r[task]["unseen_called_unknown"] for r in runs])]
        lines.append(f"| {task.upper()} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    extra = argv[argv.index("--") + 1 :] if "--" in argv else []
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[1234, 7, 42])
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "demo-seeds")
    parser.add_argument("--jobs", type=int, default=1, help="seeds trained at once")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        folders = list(pool.map(lambda s: run_seed(s, args.runs, threads, extra), args.seeds))
    finished = {seed: read_run(folder) for seed, folder in zip(args.seeds, folders) if folder is not None}
    if not finished:
        raise SystemExit("every seed failed; nothing to tabulate")
    failed = [seed for seed, folder in zip(args.seeds, folders) if folder is None]
    table = markdown(finished) + (f"\nFailed seeds (see their train.log): {failed}\n" if failed else "")
    print(table)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        write_text(args.out, table)


if __name__ == "__main__":
    main()
