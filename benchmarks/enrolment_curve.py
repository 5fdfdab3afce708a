"""Enrolment as a curve: k enrolled clips per unseen codec, and what the tracer then says about the rest.

    python benchmarks/enrolment_curve.py --model outputs/demo-M1 --hide-test        # validation codecs: choosing
    python benchmarks/enrolment_curve.py --model outputs/demo-M1 --out docs/enrolment_curve   # test codecs, once
    python benchmarks/enrolment_curve.py --model outputs/seeds/seed-*                # several models pooled

For the validation codecs (`val_codecs`, validation speakers) and the test codecs (`cosg_eval`, test speakers), each
codec is enrolled from k clips (k = 1, 5, 10, 20) of half of its speakers, every codec of the set at once under its
name and its true taxonomy, and the clips of its other speakers are traced as the pipeline traces them (whole clips,
fp32; `codectrace.enrolment`): generator identification (attributed to its own codec), taxonomy accuracy per task
(the answer a person reads, "unknown" counting as wrong; before enrolment beside it), and the clips of training codecs
and bona fide speech of the same speakers (`aux` validation, `cors_eval` test) attributed to an enrolled generator.
Each figure is the mean [min-max] over the models given (e.g. three seeds) and `--draws` random choices of the
enrolment speakers and clips for each.

The settings (the space clips are compared in: the identity head's embedding, or the clip's log-spectrum statistics
`codectrace.codec_identity`, each as it is or through a linear discriminant map of the training split's sources;
the maximum distance; whether a clip must also lie nearer to the generator than to the training data; whether the
enrolled classes answer for every head or only for those calling the clip unknown) are chosen on the validation
codecs at k = 10: the highest identification with at most 1% of known clips attributed, then the highest mean
taxonomy accuracy. `--hide-test` stops there; otherwise the test codecs are read once with them.
"""

from __future__ import annotations

import argparse
import itertools
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codectrace.codec_identity import FIT_CLIPS_PER_SOURCE, CodecIdentity, dataset_features, per_source_sample
from codectrace.enrolment import (
    SCORE_WEIGHTS,
    EnrolmentStore,
    attribution_score,
    corrected_heads,
    head_embeddings,
    score_features,
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
# Spaces to compare clips in: (features, codec identity fitted on them). The head's own embedding is nearer than the
# training data by its unknown-source score (what the pipeline does without a codec identity); the others by the
# training sources' centroids. `codectrace.codec_identity` is "spectrum, LDA".
SPACES = {"head": ("head", None), "head + training centroids": ("head", dict(discriminant=False)),
          "head, LDA": ("head", dict()), "spectrum": ("spectrum", dict(discriminant=False)),
          "spectrum, LDA": ("spectrum", dict()), "spectrum, LDA, 16 dimensions": ("spectrum", dict(dimensions=16))}


@dataclass
class Traced:
    """Rows as the pipeline answers them: their identity head's unit embeddings in the head's own space, their
    log-spectrum statistics, per row its source, speaker, taxonomy labels and the pipeline's answer (head answers and
    distributions)."""

    embeddings: np.ndarray
    spectra: np.ndarray
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
    return Traced(embeddings, dataset_features(dataset), np.asarray(dataset["source"]), np.asarray(speakers), labels,
                  answers)


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
    every_head: bool


class Spaces:
    """Each space's codec identity (None: the head's own) and the mapped embeddings of each traced set."""

    def __init__(self, training: Traced, names):
        self.identities = {name: None if SPACES[name][1] is None else
                           CodecIdentity.fit(features(training, SPACES[name][0]), training.sources, **SPACES[name][1])
                           for name in names}
        self._mapped: dict = {}

    def mapped(self, space: str, traced: Traced) -> np.ndarray:
        key = (space, id(traced))
        if key not in self._mapped:
            identity, rows = self.identities[space], features(traced, SPACES[space][0])
            self._mapped[key] = rows if identity is None else identity(rows)
        return self._mapped[key]

    def training_distances(self, space: str, traced: Traced, rows: np.ndarray) -> np.ndarray:
        identity = self.identities[space]
        if identity is None:  # the head's unknown-source score, as the pipeline uses it without a codec identity
            return np.array([traced.answers[r]["heads"][TASK]["unknown_score"] for r in rows], dtype=float)
        return identity.training_distances(self.mapped(space, traced)[rows])


TASK = EnrolmentStore().task


def features(traced: Traced, kind: str) -> np.ndarray:
    return traced.embeddings if kind == "head" else traced.spectra


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


def attribute(store: EnrolmentStore, spaces: Spaces, traced: Traced, rows: np.ndarray, setting: Setting,
              scored: list | None = None, truth=None) -> list:
    """Each row's attribution; with `scored`, appends (score features, whether right) of each attributed row, right
    meaning attributed to its own source (`truth`; None: every attribution is wrong)."""
    distances = store.distances(spaces.mapped(setting.space, traced)[rows])
    training = spaces.training_distances(setting.space, traced, rows)
    attributions = [store.attribute(d, t) for d, t in zip(distances, training)]
    if scored is not None:
        scored += [(score_features(d, t), truth is not None and a.name == truth[r])
                   for d, t, a, r in zip(distances, training, attributions, rows) if a.name is not None]
    return attributions


def read_answer(answer: dict, attribution, task: str) -> str:
    """The label a person reads for a task after enrolment (`unknown` where the head says so)."""
    distributions = {t: answer[t] for t in TAXONOMY_TASKS}
    return head_label(corrected_heads(answer["heads"], distributions, attribution)[task])


def one_draw(spaces: Spaces, unseen: Traced, known: Traced, setting: Setting, k: int, seed: int,
             scored: list | None = None) -> dict[str, float]:
    """The figures of one draw of enrolled clips; with `scored`, the attributed rows' score features and truth."""
    enrolled, evaluated = enrolment_draw(unseen, k, np.random.default_rng(seed))
    store = EnrolmentStore(max_distance=setting.max_distance, nearer_than_training=setting.nearer_than_training,
                           every_head=setting.every_head)
    for source, rows in enrolled.items():
        store.add(source, spaces.mapped(setting.space, unseen)[rows],
                  {t: unseen.labels[t][rows[0]] for t in TAXONOMY_TASKS})
    rows = np.flatnonzero(evaluated)
    attributions = attribute(store, spaces, unseen, rows, setting, scored, unseen.sources)
    figures = {"identification": float(np.mean([a.name == unseen.sources[r] for a, r in zip(attributions, rows)]))}
    for task in TAXONOMY_TASKS:
        figures[f"{task}_after"] = float(np.mean([read_answer(unseen.answers[r], a, task) == unseen.labels[task][r]
                                                  for a, r in zip(attributions, rows)]))
        figures[f"{task}_before"] = float(np.mean([head_label(unseen.answers[r]["heads"][task]) ==
                                                   unseen.labels[task][r] for r in rows]))
    known_attributions = attribute(store, spaces, known, np.arange(len(known.sources)), setting, scored)
    figures["known_attributed"] = float(np.mean([a.name is not None for a in known_attributions]))
    return figures


@dataclass
class Run:
    """One trained model's spaces and traced sets (set name -> (unseen codecs' rows, known rows))."""

    spaces: Spaces
    sets: dict[str, tuple[Traced, Traced]]


def curve(runs: list[Run], set_name: str, setting: Setting, ks, draws: int, scored: list | None = None) -> dict:
    """k -> figure -> its values over the models and the draws; with `scored`, every attributed clip's score
    features and whether it is right (`one_draw`)."""
    result = {}
    for k in ks:
        values = [one_draw(run.spaces, *run.sets[set_name], setting, k, seed, scored)
                  for run in runs for seed in range(draws)]
        result[k] = {name: [v[name] for v in values] for name in values[0]}
    return result


def choose(runs: list[Run], draws: int) -> tuple[Setting, list[tuple[Setting, dict]]]:
    """The setting with the highest mean identification at k = CHOOSING_K on the validation codecs among those
    attributing at most 1% of known clips (on average over the models and draws), then the highest mean taxonomy
    accuracy; every setting tried, with its figures."""
    tried = []
    for space, distance, nearer, every in itertools.product(SPACES, DISTANCES, (True, False), (False, True)):
        setting = Setting(space, distance, nearer, every)
        figures = curve(runs, "validation codecs", setting, [CHOOSING_K], draws)[CHOOSING_K]
        tried.append((setting, {name: float(np.mean(v)) for name, v in figures.items()}))
    return best(tried), tried


def as_arrays(scored: list) -> tuple[np.ndarray, np.ndarray]:
    """(rows, features) score features and (rows,) whether right, of attributions collected by `curve`."""
    features = np.array([f for f, _ in scored]).reshape(-1, len(SCORE_WEIGHTS))
    return features, np.array([r for _, r in scored], dtype=bool)


def fit_score(features: np.ndarray, right: np.ndarray) -> tuple[float, np.ndarray]:
    """A logistic regression of whether an attribution is right on its score features (nearly unregularised); a
    constant where the attributions are all right or all wrong (tiny runs)."""
    from sklearn.linear_model import LogisticRegression

    if len(np.unique(right)) < 2:
        share = np.clip(right.mean() if len(right) else 0.5, 0.01, 0.99)
        return float(np.log(share / (1 - share))), np.zeros(len(SCORE_WEIGHTS))
    model = LogisticRegression(C=1e4, max_iter=1000).fit(features, right)
    return float(model.intercept_[0]), model.coef_[0]


def reliability(probabilities: np.ndarray, right: np.ndarray, bins: int = 10) -> dict[str, float]:
    """How far the scores are from the share of right attributions: expected calibration error (equal-width bins)
    and Brier score, beside the mean score and the share right."""
    if len(right) == 0:
        return {"attributed": 0, "right": float("nan"), "mean_score": float("nan"), "ece": float("nan"),
                "brier": float("nan")}
    which = np.minimum((probabilities * bins).astype(int), bins - 1)
    error = sum(abs(probabilities[which == b].mean() - right[which == b].mean()) * (which == b).mean()
                for b in range(bins) if (which == b).any())
    return {"attributed": int(len(right)), "right": float(right.mean()), "mean_score": float(probabilities.mean()),
            "ece": float(error), "brier": float(np.mean(np.square(probabilities - right)))}


def score_section(scored: dict[str, list]) -> tuple[str, dict]:
    """The attribution score fitted on the validation codecs' attributions (set name -> what `curve` collected, every
    k) and its reliability on every set."""
    bias, weights = fit_score(*as_arrays(scored["validation codecs"]))
    lines = [f"Attribution score, fitted on the validation codecs' attributions (every k): bias {bias:.4g}, weights "
             f"{', '.join(f'{w:.4g}' for w in weights)} (`SCORE_BIAS`, `SCORE_WEIGHTS`).", "",
             "| set | attributed clips | right | mean score | expected calibration error | Brier |",
             "|---|---|---|---|---|---|"]
    figures = {}
    for name, attributions in scored.items():
        features, right = as_arrays(attributions)
        figures[name] = reliability(attribution_score(features, bias, weights), right)
        f = figures[name]
        lines.append(f"| {name} | {f['attributed']} | {f['right']:.3f} | {f['mean_score']:.3f} | {f['ece']:.3f} | "
                     f"{f['brier']:.4f} |")
    return "\n".join(lines), {"bias": bias, "weights": weights.tolist(), **figures}


def best(tried: list[tuple[Setting, dict]]) -> Setting:
    allowed = [t for t in tried if t[1]["known_attributed"] <= MAX_KNOWN_ATTRIBUTED] or tried
    return max(allowed, key=lambda t: (t[1]["identification"],
                                       np.mean([t[1][f"{task}_after"] for task in TAXONOMY_TASKS])))[0]


def best_per_space(tried: list[tuple[Setting, dict]]) -> str:
    """Per space, its best allowed setting's validation figures at k = CHOOSING_K (what the choice compared)."""
    lines = ["| space | max distance | nearer than training | every head | identification | "
             + " | ".join(f"{t.upper()} after" for t in TAXONOMY_TASKS) + " | known attributed |",
             "|---|---|---|---|---|---|" + "---|" * len(TAXONOMY_TASKS)]
    for space in dict.fromkeys(s.space for s, _ in tried):
        mine = [t for t in tried if t[0].space == space]
        setting = best(mine)
        figures = dict(mine)[setting]
        tasks = " | ".join(f"{figures[f'{t}_after']:.3f}" for t in TAXONOMY_TASKS)
        lines.append(f"| {space} | {setting.max_distance} | {setting.nearer_than_training} | {setting.every_head} | "
                     f"{figures['identification']:.3f} | {tasks} | {100 * figures['known_attributed']:.2f}% |")
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


def trace_run(model: str, dataset: str, sets, per_source: int) -> Run:
    tracer = load_tracer(model, precision="fp32")
    tracer.enrolment = None
    spaces = Spaces(trace_rows(tracer, load_split(dataset, *TRAINING), FIT_CLIPS_PER_SOURCE), SPACES)
    return Run(spaces, {name: (trace_rows(tracer, only_spoof(load_split(dataset, *SETS[name][0])), per_source),
                               trace_rows(tracer, load_split(dataset, *SETS[name][1]), per_source)) for name in sets})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", default=[str(ROOT / "outputs/demo-M1")],
                        help="one model folder, or several (e.g. the seeds of a recipe): every figure pools them")
    parser.add_argument("--dataset", default=str(DEMO_DATASET_DIR))
    parser.add_argument("--ks", type=int, nargs="+", default=list(KS))
    parser.add_argument("--draws", type=int, default=3, help="random choices of enrolment speakers and clips")
    parser.add_argument("--per-source", type=int, default=50, help="clips traced per codec (and bona fide source)")
    parser.add_argument("--hide-test", action="store_true", help="validation codecs only")
    parser.add_argument("--out", type=Path, help="write <out>.md, <out>.json and <out>.png")
    args = parser.parse_args()

    started = time.perf_counter()
    sets = [name for name in SETS if not (args.hide_test and name == "test codecs")]
    runs = [trace_run(model, args.dataset, sets, args.per_source) for model in args.model]
    setting, tried = choose(runs, args.draws)
    scored = {name: [] for name in sets}
    curves = {name: curve(runs, name, setting, args.ks, args.draws, scored[name]) for name in sets}
    report = [f"Enrolment curve of {', '.join(args.model)}: {cpu_summary()}; mean [min-max] over the models and "
              f"{args.draws} draws of the enrolment speakers and clips each; {time.perf_counter() - started:.0f} s.",
              "",
              f"Chosen on the validation codecs at k = {CHOOSING_K} (the highest identification with at most "
              f"{100 * MAX_KNOWN_ATTRIBUTED:g}% of known clips attributed): space *{setting.space}*, maximum distance "
              f"{setting.max_distance}, nearer than the training data: {setting.nearer_than_training}, enrolled "
              f"classes answer for every head: {setting.every_head}. The best "
              "setting of each space, validation codecs:", "", best_per_space(tried), ""]
    report += [curve_table(name, result) + "\n" for name, result in curves.items()]
    score_text, score = score_section(scored)
    report.append(score_text)
    print_report("\n".join(report), args.out.with_suffix(".md") if args.out else None)
    if args.out:
        write_json(args.out.with_suffix(".json"), {
            "setting": setting.__dict__, "curves": curves, "score": score,
            "tried_on_validation": [{**s.__dict__, **f} for s, f in tried]})
        print(f"plot: {plot_curves(curves, args.out)}")


if __name__ == "__main__":
    main()
