"""What only the research probes need from the product's data: the labels of a demo run's two kinds of validation
data, and a split's embeddings with their labels and sources."""

from __future__ import annotations

import numpy as np

from codectrace.evaluation import labels_by_task
from codectrace.resolve import load_split
from codectrace.unknown_source import embed_dataset
from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS

# A demo run's two kinds of validation data: its evaluation folder -> the (config, split) of the rows it scored.
VALIDATION_DATA = {"in_domain_validation": ("aux", "validation"), "val_codecs": ("val_codecs", "validation")}


def validation_labels(dataset: str, tasks) -> dict[str, dict[str, dict[str, int]]]:
    """Evaluation folder -> task -> utterance id -> label, for a demo run's two kinds of validation data
    (`VALIDATION_DATA`), read from the dataset the run trained on; the probes pair them with the run's score files."""
    labels = {}
    for name, (config, split) in VALIDATION_DATA.items():
        rows = load_split(dataset, config, split)
        labels[name] = {task: dict(zip(rows["utt_id"], rows[task])) for task in tasks}
    return labels


def labelled_embeddings(model, dataset) -> dict[str, np.ndarray]:
    """A dataset's rows as the model sees them (official windows), flat for the probes and their caches:
    `emb_<task>` and `logits_<task>` per head, `label_<task>` for BIN and the taxonomy heads, and `source`."""
    embeddings, logits = embed_dataset(model, dataset, model.config.chunk_samples)
    return {**{f"emb_{task}": values for task, values in embeddings.items()},
            **{f"logits_{task}": values for task, values in logits.items()},
            **{f"label_{task}": values for task, values in labels_by_task(dataset, ["bin", *TAXONOMY_TASKS]).items()},
            "source": np.asarray(dataset["source"])}
