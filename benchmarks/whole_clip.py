"""Whole clips, as the pipeline and the Space read them, against the official first window, over a recipe's seeds.

    python benchmarks/whole_clip.py --runs outputs/recipe-I --hide-test   # validation data only (choosing)
    python benchmarks/whole_clip.py --runs outputs/recipe-I --out docs/whole_clip.md   # test sets too (read once)

The training run reports the official window of each clip (its first `chunk_samples`); the pipeline reads every
window, gives a window called unknown its unseen-codec temperature and averages the windows' probabilities
(`codectrace.whole_clip`). For every `seed-*` run this scores each set the pipeline's way (fp32, so that only the
window policy differs), reads the run's own first-window figures, and prints mean [min-max] over seeds of both:
BIN EER, VQ / AUX / DEC macro-F1 and the selection score, and the share of held-out real speakers' bona fide clips
called spoof. `--hide-test` leaves out every set of test speakers or test codecs.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from codectrace.files import print_report
from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary
from codectrace.metrics import mean_and_range, selection_score
from codectrace.presets import DEMO_DATASET_DIR
from codectrace.resolve import load_split
from codectrace.whole_clip import trace_probabilities, whole_clip_metrics
from dataset_scripts.build_codecfake_mini import release_speakers

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("vq", "aux", "dec")
# run's eval folder name -> (label, config, split, holds test speakers or codecs)
SETS = {
    "in_domain_validation": ("in-domain validation", "aux", "validation", False),
    "val_codecs": ("validation codecs", "val_codecs", "validation", False),
    "cors_eval": ("in domain (CoRS)", "cors_eval", "test", True),
    "cosg_eval": ("test codecs", "cosg_eval", "test", True),
}


def figures(metrics: dict) -> dict[str, float]:
    """BIN EER (%), the taxonomy heads' macro-F1 and the selection score of one set's per-head metrics."""
    return {"bin_eer": 100 * metrics["bin"]["eer"], **{t: metrics[t]["f1_macro"] for t in TASKS},
            "selection_score": selection_score({h: metrics[h] for h in ("bin", *TASKS)})}


def real_false_alarms(spoof: np.ndarray, dataset, kinds: dict[str, str]) -> float:
    """% of the real speakers' bona fide clips whose spoof score is >= 0.5."""
    bonafide = dataset.features["bin"].str2int("bonafide")
    real = np.array([kinds.get(speaker) == "real" and label == bonafide
                     for speaker, label in zip(dataset["speaker"], dataset["bin"])])
    return float(100 * (spoof[real] >= 0.5).mean()) if real.any() else float("nan")


def score_seed(folder: Path, dataset: Path, names: list[str], kinds: dict[str, str]) -> dict:
    """Set name -> {"first window": figures, "whole clip": figures}, plus the real false alarms of CoRS."""
    tracer = load_tracer(str(folder), precision="fp32")
    row = {}
    for name in names:
        label, config, split, _ = SETS[name]
        data = load_split(str(dataset), config, split)
        probabilities, failures = trace_probabilities(tracer, data, f"{folder.name} {label}")
        if failures:
            print(f"{folder.name} {label}: {len(failures)} clips refused, first: {failures[0]}", flush=True)
        first = json.loads((folder / "eval" / name / "metrics.json").read_text())["overall"]
        row[label] = {"first window": figures(first), "whole clip": figures(whole_clip_metrics(probabilities, data))}
        if name == "cors_eval":
            row["real false alarms %"] = real_false_alarms(probabilities["bin"][:, 0], data, kinds)
    return row


def markdown(rows: dict[int, dict], seconds: float) -> str:
    seeds = list(rows)
    lines = [f"Over seeds {', '.join(map(str, seeds))}: mean [min-max]; scored on {cpu_summary()} "
             f"({seconds / 60:.1f} min). Exact figures differ between CPUs.", "",
             "| set | policy | BIN EER % | VQ macro-F1 | AUX macro-F1 | DEC macro-F1 | selection score |",
             "|---|---|---|---|---|---|---|"]
    labels = [label for label, value in rows[seeds[0]].items() if isinstance(value, dict)]
    for label in labels:
        for policy in ("first window", "whole clip"):
            cells = [mean_and_range([rows[s][label][policy][key] for s in seeds])
                     for key in ("bin_eer", *TASKS, "selection_score")]
            lines.append(f"| {label} | {policy} | " + " | ".join(cells) + " |")
    both = ("in-domain validation", "validation codecs")
    lines += ["", "Mean of the two validation selection scores (the rule that chooses recipes), per seed:", "",
              "| policy | " + " | ".join(f"seed {s}" for s in seeds) + " |", "|---|" + "---|" * len(seeds)]
    for policy in ("first window", "whole clip"):
        lines.append(f"| {policy} | " + " | ".join(
            f"{np.mean([rows[s][label][policy]['selection_score'] for label in both]):.4f}" for s in seeds) + " |")
    if "real false alarms %" in rows[seeds[0]]:
        lines += ["", "Held-out real speakers' bona fide clips called spoof, whole clip: "
                  + mean_and_range([rows[s]["real false alarms %"] for s in seeds]) + " %"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="a recipe's folder of seed-* runs")
    parser.add_argument("--dataset", type=Path, default=ROOT / DEMO_DATASET_DIR)
    parser.add_argument("--hide-test", action="store_true", help="validation sets only (choosing)")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    folders = sorted(args.runs.glob("seed-*"), key=lambda f: int(f.name.split("-")[1]))
    if not folders:
        raise SystemExit(f"no seed-* runs in {args.runs}")
    names = [name for name, (*_, test) in SETS.items() if not (test and args.hide_test)]
    _, kinds = release_speakers(args.dataset.parent / "release")
    start = time.perf_counter()
    rows = {int(f.name.split("-")[1]): score_seed(f, args.dataset, names, kinds) for f in folders}
    table = markdown(rows, time.perf_counter() - start)
    print_report(table, args.out)


if __name__ == "__main__":
    main()
