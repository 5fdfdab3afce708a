"""How much a tracer's embedding says about *which* training codec made a clip, within each taxonomy class.

    python -m research.codec_identity_probe outputs/recipe-O outputs/recipe-S1 \
        [--out docs/research/codec_identity_probe.md]

The conditional codec adversary (`--codec_adversary_weight`) rests on one premise: the tracer keeps each training
codec's identity inside a class, and names an unseen codec's class by the training codec it sounds most like. This
measures the premise. For each run (`seed-*` folders under each recipe folder), the heads' embeddings of the
training split's spoofed rows fit one logistic-regression probe per taxonomy head and class (standardised features),
which names the codec among the training codecs of that class; it is scored on the in-domain validation split
(validation speakers, training codecs; no validation or test codec and no test speaker is read). Accuracy is
compared with chance (one over the class's codec count), as mean [min-max] over seeds per recipe. Beside it, the
quantity class compactness (a removed training option, docs/research/removed.md) minimised, read on the same
validation rows: per head, the within-class over total scatter of the embeddings (0: every class one point; 1: no
class structure).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from codectrace.files import print_report
from codectrace.machine import cpu_summary
from codectrace.metrics import mean_and_range
from codectrace.presets import DEMO_DATASET_DIR
from codectrace.resolve import load_split
from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS
from research.shared import labelled_embeddings

ROOT = Path(__file__).resolve().parents[1]
SPOOF = 0



def within_class_scatter_ratio(embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of squared distances of the labelled rows to their class's mean over the sum to the mean of all labelled
    rows (Fisher's criterion, what the removed class-compactness loss minimised); rows labelled -100 are left out.
    Zero when fewer than two labelled rows differ."""
    labels = labels.to(embedding.device).view(-1)
    kept = labels >= 0
    rows, classes = embedding[kept].float(), labels[kept]
    if len(rows) < 2:
        return embedding.sum() * 0.0
    total = (rows - rows.mean(0)).pow(2).sum()
    within = sum((rows[classes == label] - rows[classes == label].mean(0)).pow(2).sum()
                 for label in classes.unique())
    return within / total.clamp_min(torch.finfo(total.dtype).tiny)  # identical rows: 0 / tiny = 0

def embed(folder: Path, dataset: str) -> dict[str, dict[str, np.ndarray]]:
    """The `aux` config's training and in-domain validation splits as the run's model sees them (embeddings, labels
    and sources per row)."""
    from transformers import AutoModel

    import codectrace  # noqa: F401  (registers the model type)

    model = AutoModel.from_pretrained(folder)
    return {split: labelled_embeddings(model, load_split(dataset, "aux", split)) for split in ("train", "validation")}


def probe_accuracy(train: dict, held_out: dict, task: str) -> tuple[float, float]:
    """Accuracy of naming the codec within each class of `task` on held-out rows (classes with >= 2 codecs), and the
    chance level of the same rows."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    correct, chance, count = 0.0, 0.0, 0
    for label in np.unique(train[f"label_{task}"][train["label_bin"] == SPOOF]):
        fit_rows = (train["label_bin"] == SPOOF) & (train[f"label_{task}"] == label)
        codecs = np.unique(train["source"][fit_rows])
        test_rows = (held_out["label_bin"] == SPOOF) & np.isin(held_out["source"], codecs)
        if codecs.size < 2 or not test_rows.any():
            continue
        probe = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000))
        probe.fit(train[f"emb_{task}"][fit_rows], train["source"][fit_rows])
        correct += float((probe.predict(held_out[f"emb_{task}"][test_rows]) == held_out["source"][test_rows]).sum())
        chance += test_rows.sum() / codecs.size
        count += int(test_rows.sum())
    return correct / count, chance / count


def scatter_ratio(rows: dict, task: str) -> float:
    """Within-class over total scatter of every row's `task` embedding (bona fide rows in their own class)."""
    return within_class_scatter_ratio(torch.from_numpy(rows[f"emb_{task}"]),
                                      torch.from_numpy(rows[f"label_{task}"])).item()


def recipe_rows(recipe: Path, dataset: str) -> dict[str, list[tuple[float, float, float]]]:
    """Per head, (probe accuracy, chance, scatter ratio) of every seed of a recipe."""
    found: dict[str, list[tuple[float, float, float]]] = {task: [] for task in TAXONOMY_TASKS}
    for run in sorted(recipe.glob("seed-*")):
        if not (run / "config.json").is_file():
            continue
        splits = embed(run, dataset)
        train, held_out = splits["train"], splits["validation"]
        for task in TAXONOMY_TASKS:
            found[task].append((*probe_accuracy(train, held_out, task), scatter_ratio(held_out, task)))
    return found


def table(results: dict[str, dict[str, list[tuple[float, float, float]]]]) -> str:
    lines = ["| recipe | seeds | " + " | ".join(f"{task.upper()}: accuracy (chance) | {task.upper()}: scatter ratio"
                                                for task in TAXONOMY_TASKS) + " |",
             "|---|---|" + "---|---|" * len(TAXONOMY_TASKS)]
    for recipe, per_task in results.items():
        seeds = len(per_task[TAXONOMY_TASKS[0]])
        cells = [f"{mean_and_range([a for a, _, _ in per_task[t]])} ({np.mean([c for _, c, _ in per_task[t]]):.2f}) | "
                 f"{mean_and_range([r for _, _, r in per_task[t]])}" for t in TAXONOMY_TASKS]
        lines.append(f"| {recipe} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("recipes", nargs="+", type=Path, help="recipe folders holding seed-* runs")
    parser.add_argument("--dataset", default=str(ROOT / DEMO_DATASET_DIR))
    parser.add_argument("--out", type=Path, help="also write the table to this markdown file")
    args = parser.parse_args()
    missing = [str(recipe) for recipe in args.recipes if not any(recipe.glob("seed-*/config.json"))]
    if missing:
        parser.error(f"no finished run (seed-*/config.json) under {missing}")
    results = {recipe.name: recipe_rows(recipe, args.dataset) for recipe in args.recipes}
    text = (f"Within-class codec identification by a linear probe on the heads' embeddings (fit: training split, "
            f"scored: in-domain validation split) and within-class over total scatter of the validation rows' "
            f"embeddings, mean [min-max] over seeds; measured on {cpu_summary()}.\n\n"
            + table(results) + "\n")
    print_report(text, args.out)


if __name__ == "__main__":
    main()
