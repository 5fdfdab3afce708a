"""Evaluation of a trained model on CodecFake+ configs: tables like the paper's, per-source breakdowns,
score files in the official format and confusion-matrix plots.
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from modeling_codectrace.configuration_codectrace import TASK_LABELS
from modeling_codectrace.modeling_codectrace import spoof_probability

from .calibration import (
    calibration_metrics,
    plot_reliability,
    row_temperatures,
    uncalibrated,
    with_unknown_temperatures,
)
from .files import atomic_path, write_json, write_text
from .metrics import binary_metrics, softmax, task_metrics

# The evaluation configs of a built CodecFake+ dataset (their test split) and how tables and cards name them.
EVAL_SETS = {
    "cors_eval": "in-domain (CoRS)",
    "cosg_eval": "out-of-domain (CoSG)",
    "cosg_seen": "out-of-domain (CoSG seen)",
}
EVAL_CONFIGS = tuple(EVAL_SETS)
# Validation data reported after training when model selection read validation codecs (`--selection_set`).
SET_NAMES = {**EVAL_SETS, "val_codecs": "validation codecs", "in_domain_validation": "in-domain validation"}


def eval_set_name(name: str) -> str:
    """Display name of an evaluation set; `<config>_test` is the test split of a training sampling."""
    if name in SET_NAMES:
        return SET_NAMES[name]
    if name.endswith("_validation"):
        return f"{name.removesuffix('_validation')} validation speakers (in-domain)"
    return f"{name.removesuffix('_test')} test speakers (in-domain)"


def bonafide_probability(logits: dict[str, np.ndarray]) -> np.ndarray:
    """P(bona fide) per row: the BIN head's, or for a model without one the authors' fusion of its taxonomy heads
    (`spoof_probability`)."""
    return 1.0 - spoof_probability({task: softmax(values) for task, values in logits.items()})


def evaluate_predictions(tasks, logits: dict[str, np.ndarray], labels: dict[str, np.ndarray], sources,
                         temperatures: dict[str, float | np.ndarray] | None = None,
                         fused_bonafide: np.ndarray | None = None) -> dict:
    """Overall and per-source metrics of every task. `sources`: one name per row (codec, system, bonafide).

    A model without a BIN head (M2) still gets BIN metrics when `labels` has a `bin` entry: EER and ROC-AUC of the
    fused bona fide score, as the CodecFake+ authors score M2 (`overall["bin"]["fused"]` is then True). Every head
    also gets its ECE and Brier score; given the temperatures the logits were divided by (per head one number, or
    one per row), also those before them. `fused_bonafide`: M2's fused score when it is not that of `logits` (see
    `save_evaluations`)."""
    sources = np.asarray(sources)
    result = {"overall": {}, "per_source": {}}
    for task in tasks:
        result["overall"][task] = task_metrics(task, logits[task], labels[task])
        result["overall"][task].update(calibration_metrics(logits[task], labels[task], (temperatures or {}).get(task)))
    if "bin" not in tasks and "bin" in labels:
        bonafide = bonafide_probability(logits) if fused_bonafide is None else fused_bonafide
        result["overall"]["bin"] = binary_metrics(bonafide, labels["bin"]) | {"fused": True}
    for source in sorted(set(sources.tolist())):
        rows = sources == source
        result["per_source"][source] = {"count": int(rows.sum())}
        for task in tasks:
            predictions = logits[task][rows].argmax(-1)
            truth = labels[task][rows]
            keep = truth != -100
            entry = {"accuracy": float((predictions[keep] == truth[keep]).mean()) if keep.any() else float("nan")}
            if task == "bin":
                entry["mean_p_bonafide"] = float(softmax(logits[task][rows])[:, 1].mean())
            entry["predicted"] = {name: int((predictions == i).sum()) for i, name in enumerate(TASK_LABELS[task])}
            result["per_source"][source][task] = entry
    return result


def score_line(task: str, utt: str, probabilities) -> str:
    """One line of an official score file, from the task's probabilities in label order:
    BIN `utt P(bonafide)`, taxonomy tasks `utt p0 p1 ...`. Full precision (`repr`): rounding makes ties that an
    EER script would merge."""
    if task == "bin":
        return f"{utt} {float(probabilities[TASK_LABELS['bin'].index('bonafide')])!r}\n"
    return f"{utt} " + " ".join(repr(float(p)) for p in probabilities) + "\n"


def write_score_files(folder: Path, utt_ids, logits: dict[str, np.ndarray],
                      fused_bonafide: np.ndarray | None = None) -> list[Path]:
    """Score files in the official layout (see `score_line`), one per task, from logits; a model without a BIN
    head also gets `scores_bin.txt` from its fused bona fide score (`bonafide_probability`, or `fused_bonafide`)."""
    folder.mkdir(parents=True, exist_ok=True)
    probabilities = {task: softmax(values) for task, values in logits.items()}
    if "bin" not in probabilities:
        bonafide = bonafide_probability(logits) if fused_bonafide is None else fused_bonafide
        probabilities["bin"] = np.stack([1.0 - bonafide, bonafide], axis=1)  # label order: spoof, bonafide
    written = []
    for task, rows in probabilities.items():
        path = write_text(folder / f"scores_{task}.txt",
                          "".join(score_line(task, utt, row) for utt, row in zip(utt_ids, rows)))
        written.append(path)
    return written


def read_score_files(folder: Path, tasks=tuple(TASK_LABELS)) -> tuple[list[str], dict[str, np.ndarray]]:
    """The inverse of `write_score_files`: utterance ids (file order) and per task the probabilities in label order
    (BIN's two columns rebuilt from the P(bona fide) it stores). Raises `ValueError` where a file is missing or its
    rows disagree with the other tasks' ids."""
    ids, probabilities = None, {}
    for task in tasks:
        path = Path(folder) / f"scores_{task}.txt"
        if not path.is_file():
            raise ValueError(f"{path} is missing: a folder of score files holds scores_<task>.txt for {list(tasks)}.")
        rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
        if ids is not None and [row[0] for row in rows] != ids:
            raise ValueError(f"{path} lists other utterances, or another order, than scores_{tasks[0]}.txt.")
        ids = [row[0] for row in rows]
        values = np.array([[float(v) for v in row[1:]] for row in rows])
        if task == "bin":
            columns = {"bonafide": values[:, 0], "spoof": 1.0 - values[:, 0]}
            values = np.stack([columns[name] for name in TASK_LABELS["bin"]], axis=1)
        probabilities[task] = values
    return ids, probabilities


def plot_confusion(matrix, names, title: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.asarray(matrix)
    figure, axis = plt.subplots(figsize=(1.2 + 0.9 * len(names), 1.0 + 0.8 * len(names)))
    normalised = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    axis.imshow(normalised, cmap="Blues", vmin=0, vmax=1)
    axis.set_xticks(range(len(names)), names, rotation=30)
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("true")
    for i in range(len(names)):
        for j in range(len(names)):
            colour = "white" if normalised[i, j] > 0.6 else "black"
            axis.text(j, i, str(matrix[i, j]), ha="center", va="center", color=colour, fontsize=8)
    axis.set_title(title, fontsize=9)
    figure.tight_layout()
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=110, format="png")
    plt.close(figure)


def _fmt(value: float, percent: bool = False) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * value:.2f}" if percent else f"{value:.3f}"


def results_table(variant: str, tasks, results: dict[str, dict]) -> str:
    """Markdown table like the paper's: one row per evaluation set, BIN EER (%) and macro / weighted F1. A model
    without a BIN head gets the EER of its fused score (`evaluate_predictions`) where every set has one."""
    fused_bin = "bin" not in tasks and bool(results) and all("bin" in r["overall"] for r in results.values())
    columns = [t for t in TASK_LABELS if t in tasks or (t == "bin" and fused_bin)]
    header = ["set", "rows"] + [
        ("BIN EER % (fused heads)" if fused_bin else "BIN EER %") if t == "bin" else f"{t.upper()} F1 macro / weighted"
        for t in columns
    ]
    lines = [f"**{variant}**", "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for name, result in results.items():
        overall = result["overall"]
        count = next(iter(overall.values()))["count"]
        cells = [eval_set_name(name), str(count)]
        for task in columns:
            m = overall[task]
            cells.append(_fmt(m["eer"], percent=True) if task == "bin"
                         else f"{_fmt(m['f1_macro'])} / {_fmt(m['f1_weighted'])}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def per_source_table(tasks, result: dict) -> str:
    """Markdown table of accuracy per source (codec or CoSG system) and task."""
    ordered = [t for t in TASK_LABELS if t in tasks]
    lines = ["| source | rows | " + " | ".join(f"{t.upper()} acc" for t in ordered) + " |",
             "|---|---|" + "---|" * len(ordered)]
    for source, entry in result["per_source"].items():
        cells = " | ".join(_fmt(entry[t]["accuracy"]) for t in ordered)
        lines.append(f"| {source} | {entry['count']} | {cells} |")
    return "\n".join(lines)


def save_evaluation(folder: Path, name: str, tasks, utt_ids, logits, labels, sources,
                    temperatures: dict[str, float | np.ndarray] | None = None,
                    fused_bonafide: np.ndarray | None = None) -> dict:
    """Computes and writes everything for one evaluation set under `folder/name/`; returns the metrics."""
    target = folder / name
    result = evaluate_predictions(tasks, logits, labels, sources, temperatures, fused_bonafide)
    write_score_files(target, utt_ids, logits, fused_bonafide)
    for task in tasks:
        plot_confusion(result["overall"][task]["confusion_matrix"], TASK_LABELS[task],
                       f"{name} {task.upper()}", target / f"confusion_{task}.png")
        temperature = (temperatures or {}).get(task)
        curves = {"as trained" if temperature is None else "calibrated": (softmax(logits[task]), labels[task])}
        if temperature is not None:
            curves = {"before": (softmax(uncalibrated(logits[task], temperature)), labels[task]), **curves}
        plot_reliability(curves, f"{name} {task.upper()}", target / f"reliability_{task}.png")
    write_json(target / "metrics.json", result)
    write_text(target / "per_source.md", per_source_table(tasks, result) + "\n")
    return result


def split_logits(predictions, tasks) -> dict[str, np.ndarray]:
    """Trainer predictions (a tuple of logits in task order, or one array) -> task -> logits."""
    if isinstance(predictions, np.ndarray):
        predictions = (predictions,)
    predictions = [p for p in predictions if isinstance(p, np.ndarray) and p.ndim == 2]
    if len(predictions) != len(tasks):
        raise ValueError(f"expected {len(tasks)} logits arrays (one per task), got {len(predictions)}.")
    return dict(zip(tasks, predictions))


def labels_by_task(dataset, tasks) -> dict[str, np.ndarray]:
    """Task -> label indices of a dataset (-100 where the dataset has no column for the task)."""
    return {task: np.asarray(dataset[task]) if task in dataset.column_names else np.full(len(dataset), -100)
            for task in tasks}


def predict_logits(trainer, ds, tasks, chunk_samples: int, name: str = "eval") -> dict[str, np.ndarray]:
    """Task -> logits of every row of a dataset (undecoded audio), windowed by the official policy (first
    `chunk_samples`, repeat-padded), predicted by the trainer (one or many processes)."""
    from .data import WaveformTransform

    windows = ds.with_transform(WaveformTransform(tuple(tasks), chunk_samples))
    return split_logits(trainer.predict(windows, metric_key_prefix=name).predictions, tasks)


def predict_sets(trainer, tasks, chunk_samples: int, sets: dict) -> dict[str, dict[str, np.ndarray]]:
    """Set name -> task -> logits of every row, predicted by the trainer (every process takes part)."""
    return {name: predict_logits(trainer, ds, tasks, chunk_samples, name) for name, ds in sets.items()}


def save_evaluations(output_dir: Path, config, sets: dict, predictions: dict,
                     unknown_rows: dict[str, dict[str, np.ndarray]] | None = None) -> dict[str, dict]:
    """Writes metrics, tables, score files and plots of every predicted set under `output_dir/eval/<name>/`, with
    the model's calibration; where `unknown_rows` (set -> head -> rows the unknown-source scorer calls unknown) is
    given, those rows get the unknown temperature, as the pipeline gives them (`calibration_temperatures_unknown`);
    like the pipeline's spoof score, M2's fused bona fide score reads the heads as calibrated for known codecs."""
    results = {}
    for name, ds in sets.items():
        rows = (unknown_rows or {}).get(name, {})
        logits = with_unknown_temperatures(config, predictions[name], rows)
        fused = bonafide_probability(predictions[name]) if "bin" not in config.tasks and rows else None
        temperatures = {task: row_temperatures(config, task, rows.get(task)) for task in config.tasks}
        labelled = tuple(config.tasks) + (("bin",) if "bin" in ds.column_names and "bin" not in config.tasks else ())
        results[name] = save_evaluation(Path(output_dir) / "eval", name, config.tasks, ds["utt_id"], logits,
                                        labels_by_task(ds, labelled), ds["source"],
                                        {t: v for t, v in temperatures.items() if v is not None}, fused)
    return results


def run_evaluation_sets(trainer, config, sets: dict, output_dir: Path,
                        unknown_rows: dict[str, dict[str, np.ndarray]] | None = None) -> dict[str, dict]:
    """Predicts every dataset in `sets` (name -> dataset with undecoded audio), then, on the main process, writes
    what `save_evaluations` writes."""
    predictions = predict_sets(trainer, config.tasks, config.chunk_samples, sets)
    if not trainer.is_world_process_zero():
        return {}
    return save_evaluations(output_dir, config, sets, predictions, unknown_rows)
