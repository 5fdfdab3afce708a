"""Unknown-source scores compared on the validation codecs, to choose one (docs/trust.md states the rule).

    python -m research.unknown_source_scores --runs outputs/recipe-F              # validation figures only
    python -m research.unknown_source_scores --runs outputs/recipe-F --show-test  # after the choice: test too

For every trained demo run under `--runs` (`seed-*` folders) this embeds, once, the training split, the in-domain
validation split, the validation codecs and the test sets (cached in the run folder as
`unknown_source_embeddings.npz`), scores every candidate and prints a markdown table of AUROC, mean [min-max] over
runs, of spoof clips of unseen codecs against spoof clips of training codecs: validation codecs against in-domain
validation, and with `--show-test` test codecs (CoSG-like) against in-domain test (CoRS).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codectrace.metrics import mean_and_range
from codectrace.presets import DEMO_DATASET_DIR
from codectrace.resolve import load_split
from codectrace.unknown_source import (
    NearestNeighbourHead,
    fit_mahalanobis,
    fit_nearest_neighbours,
    logit_scores,
    separation,
    unit_rows,
)
from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS
from research.shared import labelled_embeddings

SPLITS = {"train": ("aux", "train"), "validation": ("aux", "validation"), "val_codecs": ("val_codecs", "validation"),
          "cors_eval": ("cors_eval", "test"), "cosg_eval": ("cosg_eval", "test")}
PAIRS = {"validation": ("validation", "val_codecs"), "test": ("cors_eval", "cosg_eval")}
SPOOF = 0


def embed_run(folder: Path, dataset: str) -> dict[str, dict[str, np.ndarray]]:
    """Per split: each head's embedding and logits (as trained, no calibration), labels and sources; cached."""
    cache = folder / "unknown_source_embeddings.npz"
    if cache.is_file():
        flat = np.load(cache, allow_pickle=False)
        return {split: {key.split("/", 1)[1]: flat[key] for key in flat.files if key.startswith(split + "/")}
                for split in SPLITS}
    from transformers import AutoModel

    import codectrace  # noqa: F401  (registers the model type)

    model = AutoModel.from_pretrained(folder)
    model.config.calibration_temperatures = None
    sets = {split: labelled_embeddings(model, load_split(dataset, config, part))
            for split, (config, part) in SPLITS.items()}
    np.savez(cache, **{f"{split}/{key}": value for split, values in sets.items() for key, value in values.items()})
    return sets


def candidate_scores(sets: dict, task: str) -> dict[str, dict[str, np.ndarray]]:
    """Candidate -> split -> score of every row (higher: less like the training codecs)."""
    train = sets["train"]
    heads = ("bin", *TAXONOMY_TASKS)
    codecs = {name: i for i, name in enumerate(sorted(set(train["source"].tolist())))}
    codec_ids = np.array([codecs[s] for s in train["source"]])
    fitted = {"mahalanobis": fit_mahalanobis(train[f"emb_{task}"], train[f"label_{task}"]),
              "mahalanobis_codec": fit_mahalanobis(train[f"emb_{task}"], codec_ids),
              "knn": fit_nearest_neighbours(train[f"emb_{task}"], train[f"label_{task}"]),
              "knn_all_heads": NearestNeighbourHead(unit_rows(np.concatenate([unit_rows(train[f"emb_{t}"])
                                                                              for t in heads], axis=1)))}
    scores = {name: {} for name in (*fitted, "max_softmax_probability", "energy")}
    for split, values in sets.items():
        joined = np.concatenate([unit_rows(values[f"emb_{t}"]) for t in heads], axis=1)
        for name, head in fitted.items():
            scores[name][split] = head.distances(joined if name == "knn_all_heads" else values[f"emb_{task}"])
        for kind, values_of_kind in logit_scores(values[f"logits_{task}"]).items():
            scores[kind][split] = values_of_kind
    return scores


def aurocs(sets: dict, pair: str) -> dict[str, dict[str, float]]:
    """Candidate -> head -> AUROC of unseen-codec spoof clips against training-codec spoof clips."""
    known, unseen = PAIRS[pair]
    result: dict[str, dict[str, float]] = {}
    for task in TAXONOMY_TASKS:
        for name, by_split in candidate_scores(sets, task).items():
            spoof = {s: sets[s]["label_bin"] == SPOOF for s in (known, unseen)}
            result.setdefault(name, {})[task] = separation(by_split[known][spoof[known]],
                                                           by_split[unseen][spoof[unseen]])["auroc"]
    return result


def table(per_run: list[dict[str, dict[str, float]]], title: str) -> str:
    lines = [f"{title}, over {len(per_run)} runs: mean [min-max]", "",
             "| score | " + " | ".join(t.upper() for t in TAXONOMY_TASKS) + " | mean of heads |",
             "|---|---|---|---|---|"]
    for name in per_run[0]:
        cells = [mean_and_range([run[name][t] for run in per_run]) for t in TAXONOMY_TASKS]
        mean = float(np.mean([run[name][t] for run in per_run for t in TAXONOMY_TASKS]))
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {mean:.3f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="folder of seed-* runs of the demo preset")
    parser.add_argument("--dataset", default=str(DEMO_DATASET_DIR))
    parser.add_argument("--show-test", action="store_true", help="also the test codecs (only after choosing)")
    args = parser.parse_args(argv)
    folders = sorted(p for p in args.runs.glob("seed-*") if (p / "config.json").is_file())
    if not folders:
        raise SystemExit(f"no finished seed-* runs under {args.runs}")
    from tqdm import tqdm

    sets = [embed_run(folder, args.dataset) for folder in tqdm(folders, desc="embedding runs")]
    print(table([aurocs(s, "validation") for s in sets], "AUROC, validation-codec against in-domain validation "
                "spoof clips"))
    if args.show_test:
        print()
        print(table([aurocs(s, "test") for s in sets], "AUROC, test-codec against in-domain test (CoRS) spoof clips"))


if __name__ == "__main__":
    main()
