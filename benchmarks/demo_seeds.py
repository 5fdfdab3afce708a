"""The demo recipe over seeds: in domain, on the validation codecs, on the test codecs, and on real voices.

    python benchmarks/demo_seeds.py                          # seeds 1234 7 42, one run at a time
    python benchmarks/demo_seeds.py --seeds 1 2 3 --jobs 2 --out docs/demo_seeds.md
    python benchmarks/demo_seeds.py --runs outputs/try-x --hide-test -- --augment none   # choosing a recipe

Results on unseen codecs from a single run are anecdotes: which unseen codecs a model gets right changes with the
seed. This runs `train.py --preset demo --seed S` for every seed (into `<runs>/seed-S`; a finished run is reused,
so an interrupted sweep continues), then writes markdown tables, mean [min-max] over seeds: BIN EER and macro-F1
in domain (CoRS), on the validation codecs (`val_codecs`, which model selection reads) and on the test codecs
(CoSG-like); bona fide false alarms (share of bona fide clips whose spoof score is >= 0.5) of the validation and
of the held-out test speakers, real and synthetic apart; the issue #15 targets; calibration and unknown-source
figures; and the test-codec accuracy per codec. `--hide-test` shows validation figures only (validation codecs
and speakers; no test speaker or codec), for comparing candidate recipes. `--jobs 2` runs two seeds at once
with one thread each. Extra arguments after `--` go to train.py (e.g. `-- --augment none`). Needs the demo
corpus (`python train.py` builds it).
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

from codectrace.files import print_report, write_json
from codectrace.machine import cpu_summary
from codectrace.metrics import mean_and_range, selection_score
from codectrace.presets import DEMO_DATASET_DIR
from codectrace.unknown_source import used_score
from dataset_scripts.build_codecfake_mini import release_speakers
from dataset_scripts.protocols import codec_of

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATASET = ROOT / DEMO_DATASET_DIR
TASKS = ("vq", "aux", "dec")
HEADS = ("bin", *TASKS)
SETS = {"cors_eval": "in-domain", "in_domain_validation": "in-domain validation", "val_codecs": "validation codecs",
        "cosg_eval": "test codecs"}
# Issue #15's targets: (what, key in a run's row, at least / at most, value).
TARGETS = (
    ("test codecs: VQ macro-F1", ("test codecs", "vq"), ">=", 0.70),
    ("test codecs: AUX macro-F1", ("test codecs", "aux"), ">=", 0.80),
    ("test codecs: DEC macro-F1", ("test codecs", "dec"), ">=", 0.90),
    ("test codecs: BIN EER %", ("test codecs", "bin_eer"), "<=", 2.0),
    ("false alarms, held-out real speakers %", ("false_alarms", "real"), "<=", 2.0),
    ("in domain: lowest macro-F1 of VQ / AUX / DEC", ("in-domain", "min_f1"), ">=", 0.95),
)

# Issue #17's targets, on in-domain test data (CoRS) and the test codecs.
TRUST_TARGETS = (
    *((f"in domain: {head.upper()} ECE after calibration", ("trust", f"ece_{head}"), "<=", 0.05 if head == "bin"
       else 0.10) for head in HEADS),
    *((f"test codecs: {task.upper()} unknown-source AUROC", ("trust", f"auroc_{task}"), ">=", 0.90)
      for task in TASKS),
    *((f"in domain: correct {task.upper()} answers turned unknown", ("trust", f"correct_unknown_{task}"), "<=", 0.05)
      for task in TASKS),
)


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
    seconds = time.perf_counter() - start
    write_json(folder / "timing.json", {"seconds": round(seconds, 1), "threads": threads, "extra": extra,
                                        "cpu": cpu_summary()})
    print(f"seed {seed}: done in {seconds:.0f} s", flush=True)
    return folder


def false_alarms(folder: Path, kinds: dict[str, str], eval_set: str = "cors_eval") -> dict[str, float]:
    """Per speaker kind, % of the bona fide clips of one evaluation set called spoof (spoof score >= 0.5): CoRS
    holds the test speakers' bona fide clips, `val_codecs` the validation speakers'."""
    called, total = {}, {}
    scores = folder / "eval" / eval_set / "scores_bin.txt"
    if not scores.is_file():
        return {}
    for line in scores.read_text().splitlines():
        utt, score = line.split()
        speaker = utt.split("_")[0]
        if codec_of(utt, speaker) is not None:  # a re-synthesis (<speaker>_<NNN>_<codec>), not bona fide
            continue
        kind = kinds.get(speaker, "synthetic")
        total[kind] = total.get(kind, 0) + 1
        called[kind] = called.get(kind, 0) + (1.0 - float(score) >= 0.5)
    return {kind: 100.0 * called[kind] / total[kind] for kind in total}


def read_run(folder: Path, kinds: dict[str, str]) -> dict:
    summary = json.loads((folder / "all_results.json").read_text())
    results = summary["eval"]
    row = {}
    for name, label in SETS.items():
        if name not in results:
            continue
        metrics = results[name]
        row[label] = {"bin_eer": 100 * metrics["bin"]["eer"], **{t: metrics[t]["f1_macro"] for t in TASKS}}
        row[label]["min_f1"] = min(row[label][t] for t in TASKS)
        row[label]["selection_score"] = selection_score(metrics)  # the Trainer's: what recipes are chosen by
        row.setdefault("calibration", {})[label] = {
            t: (metrics[t].get("ece_uncalibrated", metrics[t]["ece"]), metrics[t]["ece"]) for t in HEADS}
    row["false_alarms"] = false_alarms(folder, kinds)
    row["false_alarms_validation"] = false_alarms(folder, kinds, "val_codecs")
    row["unknown_source"] = summary.get("unknown_source")
    row["trust"] = trust_figures(row)
    row["unknown_source_validation"] = summary.get("unknown_source_validation")
    timing = folder / "timing.json"
    timed = json.loads(timing.read_text()) if timing.is_file() else {}
    row["minutes"] = timed["seconds"] / 60 if timed else None
    row["cpu"] = timed.get("cpu", "not recorded")
    per_source = json.loads((folder / "eval" / "cosg_eval" / "metrics.json").read_text())["per_source"]
    row["per_codec"] = {codec: {t: values[t]["accuracy"] for t in TASKS}
                        for codec, values in per_source.items() if codec != "bonafide"}
    return row


def markdown(rows: dict[int, dict], hide_test: bool = False) -> str:
    # choosing a recipe reads validation data only: the test speakers (CoRS, their false alarms) and codecs stay out
    shown = ["in-domain validation", "validation codecs"] if hide_test else list(SETS.values())
    labels = [label for label in shown if label in next(iter(rows.values()))]
    trained_on = "; ".join(sorted({row["cpu"] for row in rows.values()}))
    lines = [f"Over {len(rows)} seeds ({', '.join(map(str, rows))}): mean [min-max]. Trained on: {trained_on}; "
             f"tabulated on: {cpu_summary()}. Exact figures differ between CPUs.", "",
             "| set | BIN EER % | VQ macro-F1 | AUX macro-F1 | DEC macro-F1 | selection score |",
             "|---|---|---|---|---|---|"]
    for label in labels:
        cells = [mean_and_range([row[label]["bin_eer"] for row in rows.values()], 2)]
        cells += [mean_and_range([row[label][t] for row in rows.values()]) for t in (*TASKS, "selection_score")]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    groups = (("false_alarms_validation", "validation"), ("false_alarms", "held-out test"))
    for key, speakers in groups[:1] if hide_test else groups:
        kinds = sorted({kind for row in rows.values() for kind in row[key]})
        if not kinds:
            continue
        lines += ["", f"Bona fide false alarms (% of the {speakers} speakers' bona fide clips called spoof, threshold "
                  "0.5):", "", "| speakers | " + " | ".join(f"seed {s}" for s in rows) + " | mean [min-max] |",
                  "|---|" + "---|" * (len(rows) + 1)]
        for kind in kinds:
            values = [row[key].get(kind, float("nan")) for row in rows.values()]
            lines.append(f"| {kind} | " + " | ".join(f"{v:.1f}" for v in values) + f" | {mean_and_range(values, 1)} |")
    minutes = [row["minutes"] for row in rows.values() if row["minutes"] is not None]
    if minutes:
        lines += ["", f"Training + evaluation per seed (corpus already built): {mean_and_range(minutes, 1)} min."]
    lines += calibration_table(rows, labels) + unknown_source_table(rows, "validation")
    if not hide_test:  # these read the test speakers and codecs
        lines += (targets_table(rows) + unknown_source_table(rows, "test") + targets_table(rows, TRUST_TARGETS, 17)
                  + per_codec_table(rows))
    return "\n".join(lines) + "\n"


def trust_figures(row: dict) -> dict[str, float]:
    """What #17's targets read from a run: in-domain ECE after calibration, test-codec unknown-source AUROC and
    correct in-domain answers turned unknown."""
    figures = {f"ece_{head}": after for head, (_, after) in row.get("calibration", {}).get("in-domain", {}).items()}
    for task, entry in (row.get("unknown_source") or {}).items():
        figures.update({f"auroc_{task}": entry[used_score(entry)]["auroc"],
                        f"correct_unknown_{task}": entry["correct_turned_unknown"]})
    return figures


def targets_table(rows: dict[int, dict], targets=TARGETS, issue: int = 15) -> list[str]:
    lines = ["", f"Issue #{issue} targets (met when the mean is on the right side; the worst seed beside it):", "",
             "| target | mean [min-max] | met (mean) | met (every seed) |", "|---|---|---|---|"]
    for what, (group, key), side, bound in targets:
        if any(key not in row.get(group, {}) for row in rows.values()):
            continue
        values = [row[group][key] for row in rows.values()]
        met = [(v >= bound) if side == ">=" else (v <= bound) for v in [sum(values) / len(values), *values]]
        lines.append(f"| {what} {side} {bound:g} | {mean_and_range(values)} | {'yes' if met[0] else 'NO'} | "
                     f"{'yes' if all(met[1:]) else 'NO'} |")
    return lines


def per_codec_table(rows: dict[int, dict]) -> list[str]:
    codecs = sorted(next(iter(rows.values()))["per_codec"])
    lines = ["", "Test-codec accuracy per codec (VQ / AUX / DEC), one column per seed:", "",
             "| test codec | " + " | ".join(f"seed {s}" for s in rows) + " |", "|---|" + "---|" * len(rows)]
    for codec in codecs:
        cells = [" / ".join(f"{row['per_codec'][codec][t]:.2f}" for t in TASKS) for row in rows.values()]
        lines.append(f"| {codec} | " + " | ".join(cells) + " |")
    return lines


def calibration_table(rows: dict[int, dict], labels: list[str]) -> list[str]:
    """ECE (15 bins) per head before -> after temperature scaling: the mean over seeds and the worst seed after."""
    lines = ["", "Expected calibration error (15 bins), before -> after temperature scaling (the in-domain validation "
             "temperature, or for clips called unknown the validation-codec one): "
             "the mean over seeds [the worst seed after]:", "",
             "| set | " + " | ".join(h.upper() for h in HEADS) + " |", "|---|" + "---|" * len(HEADS)]
    for label in labels:
        cells = []
        for head in HEADS:
            before, after = zip(*(row["calibration"][label][head] for row in rows.values()))
            cells.append(f"{sum(before) / len(before):.3f} -> {sum(after) / len(after):.3f} [{max(after):.3f}]")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return lines


def unknown_source_table(rows: dict[int, dict], codecs: str) -> list[str]:
    """Per taxonomy head: AUROC of held-out against in-domain spoof clips (the score the scorer uses, then max
    softmax and energy for comparison), and the share of correct in-domain answers turned unknown: mean [min-max]."""
    key, against = (("unknown_source", "test-codec against in-domain (CoRS)") if codecs == "test" else
                    ("unknown_source_validation", "validation-codec against in-domain validation"))
    runs = [row[key] for row in rows.values() if row.get(key)]
    if not runs:
        return []
    used = sorted({used_score(r[task]) for r in runs for task in TASKS})
    lines = ["", f"Unknown source, {against} spoof clips, over {len(runs)} seeds: mean [min-max]:", "",
             f"| head | AUROC {' / '.join(used)} (used) | AUROC max softmax | AUROC energy | correct in-domain answers "
             "turned unknown | held-out clips called unknown |", "|---|---|---|---|---|---|"]
    for task in TASKS:
        cells = [mean_and_range([r[task][used_score(r[task])]["auroc"] for r in runs]),
                 mean_and_range([r[task]["max_softmax_probability"]["auroc"] for r in runs]),
                 mean_and_range([r[task]["energy"]["auroc"] for r in runs]),
                 mean_and_range([r[task]["correct_turned_unknown"] for r in runs]),
                 mean_and_range([r[task]["unseen_called_unknown"] for r in runs])]
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
    parser.add_argument("--hide-test", action="store_true", help="leave test-codec figures out (choosing a recipe)")
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET,
                        help="the built corpus the runs train on (default: the demo corpus, built if absent)")
    args = parser.parse_args(argv[: argv.index("--")] if "--" in argv else argv)
    if args.jobs < 1:
        parser.error("--jobs must be at least 1")
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    with ThreadPoolExecutor(args.jobs) as pool:
        # Another corpus goes to train.py too; the default one is left to train.py, which builds it when absent.
        corpus = [] if args.dataset == DEFAULT_DATASET else ["--dataset", str(args.dataset)]
        folders = list(pool.map(lambda s: run_seed(s, args.runs, threads, [*corpus, *extra]), args.seeds))
    _, kinds = release_speakers(args.dataset.parent / "release")  # the release beside the dataset
    finished = {seed: read_run(folder, kinds) for seed, folder in zip(args.seeds, folders) if folder is not None}
    if not finished:
        raise SystemExit("every seed failed; nothing to tabulate")
    failed = [seed for seed, folder in zip(args.seeds, folders) if folder is None]
    table = markdown(finished, args.hide_test) + (f"\nFailed seeds (see their train.log): {failed}\n" if failed else "")
    print_report(table, args.out)


if __name__ == "__main__":
    main()
