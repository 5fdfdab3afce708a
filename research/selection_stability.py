"""How much a recipe choice rests on single validation codecs: the choosing rule recomputed with each validation
codec left out.

    python -m research.selection_stability outputs/recipe-F2 outputs/recipe-G outputs/recipe-H
    python -m research.selection_stability outputs/recipe-Fp outputs/recipe-I --dataset data/a data/b  # two corpora

For every recipe folder (its `seed-*` runs of the demo preset) this reads the score files of the two kinds of
validation data (`eval/in_domain_validation/`, `eval/val_codecs/`), recomputes the rule that chose the demo recipe
(docs/research/generalisation.md: the mean over seeds of the average of the two selection scores) on all validation
codecs and with each one left out (its re-syntheses dropped, bona fide rows kept), and prints a markdown table with the
winner of each variant. Validation data only; no test figure is read.

`--smoothed K` adds a second table from the runs' training logs: each recipe's best evaluation against its best mean
of K consecutive evaluations (mean over seeds), to see whether a choice rests on one lucky epoch of a noisy
trajectory (the rule takes each run's best epoch).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from transformers.trainer_utils import get_last_checkpoint

from codectrace.evaluation import read_score_files
from codectrace.metrics import probability_metrics, selection_score
from codectrace.presets import DEMO_DATASET_DIR
from dataset_scripts.protocols import codec_of
from research.shared import VALIDATION_DATA, validation_labels

HEADS = ("bin", "vq", "aux", "dec")


def score(ids: list[str], probabilities: dict[str, np.ndarray], labels: dict[str, dict[str, int]],
          keep: np.ndarray) -> float:
    """The selection score of the kept rows."""
    per_task = {head: probability_metrics(head, probabilities[head][keep],
                                          np.array([labels[head][u] for u, k in zip(ids, keep) if k]))
                for head in HEADS}
    return selection_score(per_task)


def rule_scores(runs: Path, labels: dict, codecs: list[str]) -> dict[str, float]:
    """Left-out codec ("none": all kept) -> the rule's value for one recipe (mean over its seeds)."""
    values: dict[str, list[float]] = {name: [] for name in ["none", *codecs]}
    for seed in sorted(p for p in runs.glob("seed-*") if (p / "all_results.json").is_file()):
        in_domain_ids, in_domain_probabilities = read_score_files(seed / "eval" / "in_domain_validation")
        in_domain = score(in_domain_ids, in_domain_probabilities, labels["in_domain_validation"],
                          np.ones(len(in_domain_ids), dtype=bool))
        ids, probabilities = read_score_files(seed / "eval" / "val_codecs")
        sources = [codec_of(u, u.split("_")[0]) for u in ids]
        for left_out in values:
            keep = np.array([source != left_out for source in sources])
            values[left_out].append((in_domain + score(ids, probabilities, labels["val_codecs"], keep)) / 2)
    return {name: float(np.mean(v)) for name, v in values.items()}


# Logged at every training-time evaluation when the selection score is the mean of the two kinds of validation data.
PART_SCORES = ("eval_selection_score_in_domain_validation", "eval_selection_score_val_codecs")


def evaluation_trajectory(run: Path) -> list[float]:
    """One run's selection score at each training-time evaluation, in order (the mean of the two kinds of
    validation data where both were logged, else the logged score), from its last checkpoint's trainer state."""
    last = get_last_checkpoint(run) if run.is_dir() else None
    if last is None:
        return []
    history = json.loads((Path(last) / "trainer_state.json").read_text())["log_history"]
    return [float(np.mean([h[p] for p in PART_SCORES])) if all(p in h for p in PART_SCORES)
            else float(h["eval_selection_score"]) for h in history if "eval_selection_score" in h]


def best_window_mean(trajectory: list[float], k: int) -> float:
    """The best mean of `k` consecutive evaluations (the mean of all when there are fewer)."""
    if len(trajectory) <= k:
        return float(np.mean(trajectory))
    return float(max(np.convolve(trajectory, np.ones(k) / k, mode="valid")))


def smoothed_table(recipes: list[Path], k: int) -> list[str]:
    lines = [f"| recipe | seeds | best evaluation | best mean of {k} consecutive evaluations |", "|---|---|---|---|"]
    for recipe in recipes:
        trajectories = [t for run in sorted(recipe.glob("seed-*")) if (t := evaluation_trajectory(run))]
        if not trajectories:
            lines.append(f"| {recipe.name} | 0 | no training logs | |")
            continue
        best = np.mean([max(t) for t in trajectories])
        smooth = np.mean([best_window_mean(t, k) for t in trajectories])
        lines.append(f"| {recipe.name} | {len(trajectories)} | {best:.4f} | {smooth:.4f} |")
    return lines


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("recipes", type=Path, nargs="+", help="folders of seed-* runs, one per recipe")
    parser.add_argument("--dataset", nargs="+", default=[str(DEMO_DATASET_DIR)],
                        help="the corpora the recipes trained on (labels are read from all of them; an utterance "
                             "id means the same clip in every CodecFake-mini build)")
    parser.add_argument("--smoothed", type=int, metavar="K",
                        help="also compare best evaluations with best means of K consecutive evaluations")
    args = parser.parse_args(argv)
    if args.smoothed is not None and args.smoothed < 1:
        parser.error(f"--smoothed counts evaluations (>= 1), got {args.smoothed}")
    labels = {name: {head: {} for head in HEADS} for name in VALIDATION_DATA}
    for dataset in args.dataset:
        for name, per_head in validation_labels(dataset, HEADS).items():
            for head, found in per_head.items():
                labels[name][head].update(found)
    codecs = sorted({c for u in labels["val_codecs"]["bin"] if (c := codec_of(u, u.split("_")[0])) is not None})
    table = {recipe.name: rule_scores(recipe, labels, codecs) for recipe in args.recipes}
    names = list(table)
    print("| validation codec left out | " + " | ".join(names) + " | chosen |")
    print("|---|" + "---|" * (len(names) + 1))
    for left_out in ["none", *codecs]:
        cells = [table[n][left_out] for n in names]
        print(f"| {left_out} | " + " | ".join(f"{c:.4f}" for c in cells) + f" | {names[int(np.argmax(cells))]} |")
    if args.smoothed:
        print("\n" + "\n".join(smoothed_table(args.recipes, args.smoothed)))


if __name__ == "__main__":
    main()
