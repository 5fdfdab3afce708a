"""Are a recipe's errors on unseen codecs seed noise, or the same on every seed? The seeds' answers, averaged.

    python -m research.seed_ensemble outputs/recipe-S1p outputs/recipe-O [--out docs/research/seed_ensemble.md]

The answers of the demo tracer on an unseen codec move with the training seed, so one could hope that averaging
several seeds' models (a deep ensemble) fixes what one seed gets wrong. This measures it from the score files the runs
already wrote: for each recipe folder (its `seed-*` runs) and each of the two kinds of validation data, per taxonomy
head, the macro-F1 of each seed (mean [min-max]), that of the ensemble (the seeds' probabilities averaged, then the
most likely class), the share of spoofed clips on which every seed gives the same answer, and the share of those
answers that are right. Errors the seeds share are systematic, and no ensemble removes them. Validation data only;
no test figure is read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codectrace.evaluation import SET_NAMES, read_score_files
from codectrace.files import print_report
from codectrace.metrics import mean_and_range, probability_metrics
from codectrace.presets import DEMO_DATASET_DIR
from modeling_codectrace.configuration_codectrace import SPOOF_INDEX, TAXONOMY_TASKS
from research.shared import VALIDATION_DATA, validation_labels

ROOT = Path(__file__).resolve().parents[1]


def seed_runs(recipe: Path) -> list[Path]:
    """The recipe's finished runs (`seed-*` folders with an `eval` folder), in name order."""
    return sorted(run for run in recipe.glob("seed-*") if (run / "eval").is_dir())


def ensemble_figures(folders: list[Path], labels: dict[str, dict[str, int]]) -> dict[str, dict]:
    """Per taxonomy head, from one evaluation set's score folders (one per seed, at least two): `seeds` (each seed's
    macro-F1), `ensemble` (macro-F1 of the averaged probabilities), `agreed` (share of spoofed clips every seed
    answers alike) and `agreed_right` (share of those answers that are right; NaN when the seeds agree on none)."""
    if len(folders) < 2:
        raise ValueError(f"an ensemble needs the score files of at least two seeds; got {len(folders)}.")
    read = [read_score_files(folder, ("bin", *TAXONOMY_TASKS)) for folder in folders]
    ids = read[0][0]
    for folder, (other_ids, _) in zip(folders[1:], read[1:]):
        if other_ids != ids:
            raise ValueError(f"{folder} scores other utterances than {folders[0]}: seeds must be scored on one set.")
    spoofed = np.array([labels["bin"][utt] == SPOOF_INDEX for utt in ids])
    figures = {}
    for head in TAXONOMY_TASKS:
        truth = np.array([labels[head][utt] for utt in ids])
        per_seed = [probabilities[head] for _, probabilities in read]
        answers = np.stack([p.argmax(axis=1) for p in per_seed])
        agreed = spoofed & (answers == answers[0]).all(axis=0)
        figures[head] = {
            "seeds": [probability_metrics(head, p, truth)["f1_macro"] for p in per_seed],
            "ensemble": probability_metrics(head, np.mean(per_seed, axis=0), truth)["f1_macro"],
            "agreed": float(agreed.sum() / max(spoofed.sum(), 1)),
            "agreed_right": float((answers[0][agreed] == truth[agreed]).mean()) if agreed.any() else float("nan"),
        }
    return figures


def table(results: dict[str, dict[str, dict[str, dict]]]) -> str:
    """Markdown: a row per recipe, validation set and head."""
    lines = ["| recipe | set | head | seeds' macro-F1 | ensemble macro-F1 | spoofed clips all seeds answer alike "
             "| of those, right |", "|---|---|---|---|---|---|---|"]
    for recipe, per_set in results.items():
        for name, per_head in per_set.items():
            for head, f in per_head.items():
                lines.append(f"| {recipe} | {SET_NAMES[name]} | {head.upper()} | {mean_and_range(f['seeds'])} | "
                             f"{f['ensemble']:.3f} | {f['agreed']:.3f} | {f['agreed_right']:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", type=Path, help="recipe folders holding seed-* runs")
    parser.add_argument("--dataset", default=str(ROOT / DEMO_DATASET_DIR), help="the corpus the recipes trained on")
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args(argv)
    too_few = [f"{recipe} ({len(seed_runs(recipe))})" for recipe in args.recipes if len(seed_runs(recipe)) < 2]
    if too_few:
        parser.error(f"each recipe needs at least two evaluated seed-* runs; too few under {', '.join(too_few)}")
    labels = validation_labels(args.dataset, ("bin", *TAXONOMY_TASKS))
    try:
        results = {recipe.name: {name: ensemble_figures([run / "eval" / name for run in seed_runs(recipe)],
                                                        labels[name]) for name in VALIDATION_DATA}
                   for recipe in args.recipes}
    except ValueError as error:  # a run without these score files, or seeds scored on other clips
        parser.error(str(error))
    seeds = ", ".join(f"{recipe.name}: {len(seed_runs(recipe))}" for recipe in args.recipes)
    text = (f"Each seed's validation answers and the seeds' averaged probabilities (seeds per recipe: {seeds}), "
            "from the runs' score files (official first window); validation data only.\n\n"
            + table(results) + "\n")
    print_report(text, args.out)


if __name__ == "__main__":
    main()
