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

The settings (the space clips are compared in: the head's embedding or a linear discriminant map of the training
sources, `codectrace.enrolment.CodecIdentity`, fitted on the training split; the maximum distance; whether a clip
must also lie nearer to the generator than to the training data) are chosen on the validation codecs at k = 10: the
highest identification with at most 1% of known clips attributed. `--hide-test` stops there; otherwise the test
codecs are read once with them.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codectrace.enrolment import (
    FIT_CLIPS_PER_SOURCE,
    CodecIdentity,
    EnrolmentStore,
    corrected_heads,
    head_embeddings,
    per_source_sample,
)
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
TRAINING = ("aux", "train")  # what a codec identity is fitted on
KS = (1, 5, 10, 20)
CHOOSING_K = 10
MAX_KNOWN_ATTRIBUTED = 0.01
DISTANCES = (0.02, 0.05, 0.1, 0.15, 0.2, 0.25, 0.3, 0.4, 0.5, 0.7, 1.0)
# Spaces to compare clips in: the head's own embedding (nearer than the training data by the unknown-source score,
# or by the training sources' centroids), or linear discriminant analysis of the training sources.
SPACES = {"head": None, "head + training centroids": dict(discriminant=False),
          "LDA, 8 dimensions": dict(dimensions=8), "LDA, 16 dimensions": dict(dimensions=16),
          "LDA, all (sources - 1)": dict(dimensions=None)}


@dataclass
class Traced:
    """Rows as the pipeline answers them: their identity head's unit embeddings in the head's own space, per row its
    source, speaker, taxonomy labels and the pipeline's answer (head answers and distributions)."""

    embeddings: np.ndarray
    sources: np.ndarray
    speakers: np.ndarray
    labels: dict[str, np.ndarray]
    answers: list[dict]


def trace_rows(tracer, dataset, limit_per_source: int) -> Traced:
    dataset = dataset.select(per_source_sample(dataset["source"], limit_per_source))
    embeddings, results = head_embeddings(tracer, (row["audio"] for row in dataset.select_columns(["audio"])))
    labels = {t: np.array([TASK_LABELS[t][v] for v in dataset[t]]) for t in TAXONOMY_TASKS}
    answers = [{"heads": r["heads"], **{t: r[t] for t in TAXONOMY_TASKS}} for r in results]
    speakers = [speaker_of(*row) for row in zip(dataset["utt_id"], dataset["source"], dataset["speaker"])]
    return Traced(embeddings, np.asarray(dataset["source"]), np.asarray(speakers), labels, answers)


def speaker_of(utt_id: str, source: str, speaker: str) -> str:
    """The person speaking: CoSG-style configs (`cosg_eval`) name the system in `speaker`, and the speaker only in
    the utterance id (`FSQ6_T67/fsq6_t67_s23_025`)."""
    if speaker != source:
        return speaker
    name, prefix = utt_id.split("/")[-1], f"{source.lower()}_"
    return (name[len(prefix):] if name.startswith(prefix) else name).split("_")[0]


def only_spoof(dataset):
    """The spoofed rows (the unseen codecs' clips; their configs also hold the speakers' bona fide clips)."""
    spoof = dataset.features["bin"].str2int("spoof")
    return dataset.select(np.flatnonzero(np.asarray(dataset["bin"]) == spoof))


@dataclass(frozen=True)
class Setting:
    space: str
    max_distance: float
    nearer_than_training: bool


class Spaces:
    """Each space's codec identity (None: the head's own) and the mapped embeddings of each traced set."""

    def __init__(self, training: Traced, names):
        self.identities = {name: None if SPACES[name] is None else
                           CodecIdentity.fit(training.embeddings, training.sources, **SPACES[name]) for name in names}
        self._mapped: dict = {}

    def mapped(self, space: str, traced: Traced) -> np.ndarray:
        key = (space, id(traced))
        if key not in self._mapped:
            identity = self.identities[space]
            self._mapped[key] = traced.embeddings if identity is None else identity(traced.embeddings)
        return self._mapped[key]

    def training_distances(self, space: str, traced: Traced, rows: np.ndarray) -> np.ndarray:
        identity = self.identities[space]
        if identity is None:  # the head's unknown-source score, as the pipeline uses it without a codec identity
            return np.array([traced.answers[r]["heads"][TASK]["unknown_score"] for r in rows], dtype=float)
        return identity.training_distances(self.mapped(space, traced)[rows])


TASK = EnrolmentStore().task


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


def attribute(store: EnrolmentStore, spaces: Spaces, traced: Traced, rows: np.ndarray, setting: Setting) -> list:
    distances = store.distances(spaces.mapped(setting.space, traced)[rows])
    training = spaces.training_distances(setting.space, traced, rows)
    return [store.attribute(d, t) for d, t in zip(distances, training)]


def read_answer(answer: dict, attribution, task: str) -> str:
    """The label a person reads for a task after enrolment (`unknown` where the head says so)."""
    distributions = {t: answer[t] for t in TAXONOMY_TASKS}
    return head_label(corrected_heads(answer["heads"], distributions, attribution)[task])


def one_draw(spaces: Spaces, unseen: Traced, known: Traced, setting: Setting, k: int, seed: int) -> dict[str, float]:
    enrolled, evaluated = enrolment_draw(unseen, k, np.random.default_rng(seed))
    store = EnrolmentStore(max_distance=setting.max_distance, nearer_than_training=setting.nearer_than_training)
    for source, rows in enrolled.items():
        store.add(source, spaces.mapped(setting.space, unseen)[rows],
                  {t: unseen.labels[t][rows[0]] for t in TAXONOMY_TASKS})
    rows = np.flatnonzero(evaluated)
    attributions = attribute(store, spaces, unseen, rows, setting)
    figures = {"identification": float(np.mean([a.name == unseen.sources[r] for a, r in zip(attributions, rows)]))}
    for task in TAXONOMY_TASKS:
        figures[f"{task}_after"] = float(np.mean([read_answer(unseen.answers[r], a, task) == unseen.labels[task][r]
                                                  for a, r in zip(attributions, rows)]))
        figures[f"{task}_before"] = float(np.mean([head_label(unseen.answers[r]["heads"][task]) ==
                                                   unseen.labels[task][r] for r in rows]))
    known_attributions = attribute(store, spaces, known, np.arange(len(known.sources)), setting)
    figures["known_attributed"] = float(np.mean([a.name is not None for a in known_attributions]))
    return figures


def curve(spaces: Spaces, unseen: Traced, known: Traced, setting: Setting, ks, draws: int) -> dict:
    """k -> figure -> its values over the draws."""
    result = {}
    for k in ks:
        values = [one_draw(spaces, unseen, known, setting, k, seed) for seed in range(draws)]
        result[k] = {name: [v[name] for v in values] for name in values[0]}
    return result


def choose(spaces: Spaces, unseen: Traced, known: Traced, draws: int) -> tuple[Setting, list[tuple[Setting, dict]]]:
    """The setting with the highest mean identification at k = CHOOSING_K among those attributing at most 1% of
    known clips (on average over the draws); every setting tried, with its figures."""
    tried = []
    for space, distance, nearer in itertools.product(spaces.identities, DISTANCES, (True, False)):
        setting = Setting(space, distance, nearer)
        figures = curve(spaces, unseen, known, setting, [CHOOSING_K], draws)[CHOOSING_K]
        tried.append((setting, {name: float(np.mean(v)) for name, v in figures.items()}))
    allowed = [t for t in tried if t[1]["known_attributed"] <= MAX_KNOWN_ATTRIBUTED] or tried
    return max(allowed, key=lambda t: t[1]["identification"])[0], tried


def best_per_space(tried: list[tuple[Setting, dict]]) -> str:
    """Per space, its best allowed setting's validation figures at k = CHOOSING_K (what the choice compared)."""
    lines = ["| space | max distance | nearer than training | identification | known attributed |",
             "|---|---|---|---|---|"]
    for space in dict.fromkeys(s.space for s, _ in tried):
        mine = [t for t in tried if t[0].space == space]
        allowed = [t for t in mine if t[1]["known_attributed"] <= MAX_KNOWN_ATTRIBUTED] or mine
        setting, figures = max(allowed, key=lambda t: t[1]["identification"])
        lines.append(f"| {space} | {setting.max_distance} | {setting.nearer_than_training} | "
                     f"{figures['identification']:.3f} | {100 * figures['known_attributed']:.2f}% |")
    return "\n".join(lines)


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
    parser.add_argument("--hide-test", action="store_true", help="validation codecs only")
    parser.add_argument("--save-identity", action="store_true",
                        help="write the chosen space's codec identity beside the model (codec_identity.safetensors)")
    parser.add_argument("--out", type=Path, help="write <out>.md, <out>.json and <out>.png")
    args = parser.parse_args()

    started = time.perf_counter()
    tracer = load_tracer(args.model, precision="fp32")
    tracer.enrolment = None
    training = trace_rows(tracer, load_split(args.dataset, *TRAINING), FIT_CLIPS_PER_SOURCE)
    spaces = Spaces(training, SPACES)
    traced = {name: [trace_rows(tracer, only_spoof(load_split(args.dataset, *unseen)), args.per_source),
                     trace_rows(tracer, load_split(args.dataset, *known), args.per_source)]
              for name, (unseen, known) in SETS.items() if not (args.hide_test and name == "test codecs")}
    setting, tried = choose(spaces, *traced["validation codecs"], args.draws)
    curves = {name: curve(spaces, unseen, known, setting, args.ks, args.draws)
              for name, (unseen, known) in traced.items()}
    report = [f"Enrolment curve of {args.model}: {cpu_summary()}; mean [min-max] over {args.draws} draws of the "
              f"enrolment speakers and clips; {time.perf_counter() - started:.0f} s.", "",
              f"Chosen on the validation codecs at k = {CHOOSING_K} (the highest identification with at most "
              f"{100 * MAX_KNOWN_ATTRIBUTED:g}% of known clips attributed): space *{setting.space}*, maximum distance "
              f"{setting.max_distance}, nearer than the training data: {setting.nearer_than_training}. The best "
              "setting of each space, validation codecs:", "", best_per_space(tried), ""]
    report += [curve_table(name, result) + "\n" for name, result in curves.items()]
    print_report("\n".join(report), args.out.with_suffix(".md") if args.out else None)
    if args.out:
        write_json(args.out.with_suffix(".json"), {
            "setting": setting.__dict__, "curves": curves,
            "tried_on_validation": [{**s.__dict__, **f} for s, f in tried]})
        print(f"plot: {plot_curves(curves, args.out)}")
    identity = spaces.identities[setting.space]
    if args.save_identity and identity is not None:
        print(f"codec identity written to {identity.save(args.model)}")


if __name__ == "__main__":
    main()
