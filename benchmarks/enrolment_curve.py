"""Enrolment as a curve: k enrolled clips per unseen codec, and what the tracer then says about the rest.

    python benchmarks/enrolment_curve.py --model outputs/demo-M1 --hide-test        # validation codecs: choosing
    python benchmarks/enrolment_curve.py --model outputs/demo-M1 --out docs/enrolment_curve   # test codecs, once

For the validation codecs (`val_codecs`, validation speakers) and the test codecs (`cosg_eval`, test speakers), each
codec is enrolled from k clips (k = 1, 5, 10, 20) of half of its speakers, every codec of the set at once under its
name and its true taxonomy, and the clips of its other speakers are traced as the pipeline traces them (whole clips,
fp32; `codectrace.enrolment`): generator identification (attributed to its own codec), taxonomy accuracy per task
(the answer a person reads, "unknown" counting as wrong; before enrolment beside it), and the clips of training codecs
and bona fide speech of the same speakers (`aux` validation, `cors_eval` test) attributed to an enrolled generator.
Each figure is the mean [min-max] over `--draws` random choices of the enrolment speakers and clips.

The settings (the head whose embedding identifies, the maximum distance, whether a clip must also lie nearer to the
generator than to the training data) are chosen on the validation codecs at k = 10: the highest identification with
at most 1% of known clips attributed. `--hide-test` stops there; otherwise the test codecs are read once with them.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codectrace.enrolment import EnrolmentStore, corrected_heads
from codectrace.files import atomic_path, print_report, write_json
from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary
from codectrace.metrics import mean_and_range
from codectrace.presets import DEMO_DATASET_DIR
from codectrace.resolve import load_split
from codectrace.tracing import head_label
from modeling_codectrace.configuration_codectrace import TASK_LABELS, TAXONOMY_TASKS

ROOT = Path(__file__).resolve().parents[1]
# set -> ((config, split) of the unseen codecs, (config, split) of training codecs and bona fide, same speakers)
SETS = {"validation codecs": (("val_codecs", "validation"), ("aux", "validation")),
        "test codecs": (("cosg_eval", "test"), ("cors_eval", "test"))}
KS = (1, 5, 10, 20)
CHOOSING_K = 10
MAX_KNOWN_ATTRIBUTED = 0.01
DISTANCES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)


@dataclass
class Traced:
    """Rows as the pipeline answers them: per identity head their unit embeddings, per row its source, speaker,
    taxonomy labels, head answers and distributions (the answers' unknown flags and scores are the scorer's)."""

    embeddings: dict[str, np.ndarray]
    sources: np.ndarray
    speakers: np.ndarray
    labels: dict[str, np.ndarray]
    answers: list[dict]


def trace_rows(tracer, dataset, tasks, limit_per_source: int, seed: int = 0) -> Traced:
    """At most `limit_per_source` rows of each source (a seeded sample), traced once per identity head."""
    rng = np.random.default_rng(seed)
    sources = np.asarray(dataset["source"])
    keep = sorted(row for source in np.unique(sources)
                  for row in rng.permutation(np.flatnonzero(sources == source))[:limit_per_source])
    dataset = dataset.select(keep)
    embeddings, answers = {}, []
    for task in tasks:
        tracer.enrolment = EnrolmentStore(task=task)
        results = list(tracer.trace_many((row["audio"] for row in dataset.select_columns(["audio"])),
                                         return_embedding=True))
        failed = [r for r in results if isinstance(r, Exception)]
        if failed:
            raise ValueError(f"{len(failed)} clips could not be traced, e.g. {failed[0]}")
        embeddings[task] = np.array([r["embedding"] for r in results], dtype=np.float32)
        answers = answers or [{"heads": r["heads"], **{t: r[t] for t in TAXONOMY_TASKS}} for r in results]
    labels = {t: np.array([TASK_LABELS[t][v] for v in dataset[t]]) for t in TAXONOMY_TASKS}
    return Traced(embeddings, np.asarray(dataset["source"]), np.asarray(dataset["speaker"]), labels, answers)


@dataclass(frozen=True)
class Setting:
    task: str
    max_distance: float
    nearer_than_training: bool


def enrolment_draw(unseen: Traced, k: int, rng) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """Per unseen codec, the rows enrolled (k clips of a random half of its speakers), and the rows evaluated (its
    other speakers' clips)."""
    enrolled, evaluated = {}, np.zeros(len(unseen.sources), bool)
    for source in np.unique(unseen.sources):
        rows = np.flatnonzero(unseen.sources == source)
        speakers = rng.permutation(np.unique(unseen.speakers[rows]))
        enrol_speakers = speakers[: max(1, len(speakers) // 2)]
        candidates = rows[np.isin(unseen.speakers[rows], enrol_speakers)]
        enrolled[source] = rng.choice(candidates, size=min(k, len(candidates)), replace=False)
        evaluated[rows[~np.isin(unseen.speakers[rows], enrol_speakers)]] = True
    return enrolled, evaluated


def attribute(store: EnrolmentStore, traced: Traced, rows: np.ndarray, setting: Setting) -> list:
    distances = store.distances(traced.embeddings[setting.task][rows])
    scores = [traced.answers[r]["heads"][setting.task]["unknown_score"] for r in rows]
    return [store.attribute(d, s if setting.nearer_than_training else None) for d, s in zip(distances, scores)]


def read_answer(answer: dict, attribution, task: str) -> str:
    """The label a person reads for a task after enrolment (`unknown` where the head says so)."""
    distributions = {t: answer[t] for t in TAXONOMY_TASKS}
    return head_label(corrected_heads(answer["heads"], distributions, attribution)[task])


def one_draw(unseen: Traced, known: Traced, setting: Setting, k: int, seed: int) -> dict[str, float]:
    enrolled, evaluated = enrolment_draw(unseen, k, np.random.default_rng(seed))
    store = EnrolmentStore(task=setting.task, max_distance=setting.max_distance)
    for source, rows in enrolled.items():
        store.add(source, unseen.embeddings[setting.task][rows],
                  {t: unseen.labels[t][rows[0]] for t in TAXONOMY_TASKS})
    rows = np.flatnonzero(evaluated)
    attributions = attribute(store, unseen, rows, setting)
    figures = {"identification": float(np.mean([a.name == unseen.sources[r] for a, r in zip(attributions, rows)]))}
    for task in TAXONOMY_TASKS:
        figures[f"{task}_after"] = float(np.mean([read_answer(unseen.answers[r], a, task) == unseen.labels[task][r]
                                                  for a, r in zip(attributions, rows)]))
        figures[f"{task}_before"] = float(np.mean([head_label(unseen.answers[r]["heads"][task]) ==
                                                   unseen.labels[task][r] for r in rows]))
    known_attributions = attribute(store, known, np.arange(len(known.sources)), setting)
    figures["known_attributed"] = float(np.mean([a.name is not None for a in known_attributions]))
    return figures


def curve(unseen: Traced, known: Traced, setting: Setting, ks, draws: int) -> dict[int, dict[str, list[float]]]:
    """k -> figure -> its values over the draws."""
    result = {}
    for k in ks:
        values = [one_draw(unseen, known, setting, k, seed) for seed in range(draws)]
        result[k] = {name: [v[name] for v in values] for name in values[0]}
    return result


def choose(unseen: Traced, known: Traced, tasks, draws: int) -> tuple[Setting, list[tuple[Setting, dict]]]:
    """The setting with the highest mean identification at k = CHOOSING_K among those attributing at most 1% of
    known clips (on average over the draws); every setting tried, with its figures."""
    tried = []
    for task, distance, nearer in itertools.product(tasks, DISTANCES, (True, False)):
        setting = Setting(task, distance, nearer)
        figures = curve(unseen, known, setting, [CHOOSING_K], draws)[CHOOSING_K]
        tried.append((setting, {name: float(np.mean(v)) for name, v in figures.items()}))
    allowed = [t for t in tried if t[1]["known_attributed"] <= MAX_KNOWN_ATTRIBUTED] or tried
    return max(allowed, key=lambda t: t[1]["identification"])[0], tried


def curve_table(name: str, result: dict) -> str:
    lines = [f"**{name}**", "",
             "| k | generator identification | " + " | ".join(f"{t.upper()} accuracy (before)" for t in TAXONOMY_TASKS)
             + " | known clips attributed |", "|---|---|" + "---|" * (len(TAXONOMY_TASKS) + 1)]
    for k, figures in result.items():
        tasks = " | ".join(f"{mean_and_range(figures[f'{t}_after'])} ({np.mean(figures[f'{t}_before']):.3f})"
                           for t in TAXONOMY_TASKS)
        lines.append(f"| {k} | {mean_and_range(figures['identification'])} | {tasks} | "
                     f"{mean_and_range(100 * np.array(figures['known_attributed']), 2)}% |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, dict], out: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, 2, figsize=(9, 3.4))
    for name, result in curves.items():
        ks = list(result)
        axes[0].plot(ks, [np.mean(result[k]["identification"]) for k in ks], marker="o", label=name)
        for task, style in zip(TAXONOMY_TASKS, ("-", "--", ":")):
            axes[1].plot(ks, [np.mean(result[k][f"{task}_after"]) for k in ks], style, marker="o",
                         label=f"{task.upper()}, {name}")
    axes[0].set(xlabel="clips enrolled per generator (k)", ylabel="identification accuracy", ylim=(0, 1))
    axes[1].set(xlabel="clips enrolled per generator (k)", ylabel="taxonomy accuracy", ylim=(0, 1))
    for axis in axes:
        axis.set_xscale("log")
        axis.set_xticks(ks, [str(k) for k in ks])
        axis.grid(alpha=0.3)
        axis.legend(fontsize=7)
    figure.tight_layout()
    path = out.with_suffix(".png")
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=110, format="png")
    plt.close(figure)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "outputs/demo-M1"))
    parser.add_argument("--dataset", default=str(DEMO_DATASET_DIR))
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--draws", type=int, default=3, help="random choices of enrolment speakers and clips")
    parser.add_argument("--per-source", type=int, default=50, help="clips traced per codec (and bona fide source)")
    parser.add_argument("--tasks", nargs="+", default=list(TAXONOMY_TASKS), choices=TAXONOMY_TASKS,
                        help="identity heads to choose among")
    parser.add_argument("--hide-test", action="store_true", help="validation codecs only")
    parser.add_argument("--out", type=Path, help="write <out>.md, <out>.json and <out>.png")
    args = parser.parse_args()

    started = time.perf_counter()
    tracer = load_tracer(args.model, precision="fp32")
    traced = {}
    for name, pair in SETS.items():
        if args.hide_test and name == "test codecs":
            continue
        traced[name] = [trace_rows(tracer, load_split(args.dataset, config, split), args.tasks, args.per_source)
                        for config, split in pair]
    setting, tried = choose(*traced["validation codecs"], args.tasks, args.draws)
    curves = {name: curve(unseen, known, setting, args.ks, args.draws) for name, (unseen, known) in traced.items()}
    report = [f"Enrolment curve of {args.model}: {cpu_summary()}; {len(traced['validation codecs'][0].sources)} "
              f"validation-codec clips, mean [min-max] over {args.draws} draws; {time.perf_counter() - started:.0f} s.",
              "", f"Chosen on the validation codecs at k = {CHOOSING_K}: identity head `{setting.task}`, maximum "
              f"distance {setting.max_distance}, nearer than the training data: {setting.nearer_than_training}.", ""]
    report += [curve_table(name, result) + "\n" for name, result in curves.items()]
    print_report("\n".join(report), args.out.with_suffix(".md") if args.out else None)
    if args.out:
        write_json(args.out.with_suffix(".json"), {
            "setting": setting.__dict__, "curves": curves,
            "tried_on_validation": [{**s.__dict__, **f} for s, f in tried]})
        print(f"plot: {plot_curves(curves, args.out)}")


if __name__ == "__main__":
    main()
