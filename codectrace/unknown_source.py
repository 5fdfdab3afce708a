"""Unknown-source scoring: for each head, how far a clip's embedding lies from the training data, and a threshold
that turns it into known / unknown (docs/trust.md says how the score was chosen). For a taxonomy head "unknown"
means a codec unlike the training codecs; for the bona fide / spoof head (`bin`) it means audio unlike all the
training audio (a recording set-up, channel or generator never heard), on which the verdict itself rests.

Scores (`SCORES`): `knn` (the default, chosen on the validation codecs): the cosine distance of the head's
embedding to its k-th nearest training embedding (Sun et al., ICML 2022); `mahalanobis`: the Mahalanobis distance
to the nearest class mean with one covariance shared by the classes (Lee et al., NeurIPS 2018), the first choice,
kept so that folders saved with it load. Both are fitted on training-split embeddings; the threshold is a quantile
of the score on the validation split. Saved beside a model as `unknown_source.safetensors`; a model folder without
it is scored as before (no known / unknown).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from modeling_codectrace.configuration_codectrace import SPOOF_INDEX, TASK_LABELS, TAXONOMY_TASKS

from .files import atomic_path

FILE_NAME = "unknown_source.safetensors"
SCORES = ("knn", "mahalanobis")
ACCEPT_QUANTILE = 0.975  # of validation (in-domain) clips called known
MAX_FIT_ROWS = 5000
NEIGHBOURS = 10  # k of the knn score, fixed before it was measured (docs/trust.md)
RIDGE = 1e-6


def unit_rows(values: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length (a zero row stays zero)."""
    values = np.asarray(values, dtype=np.float32)
    return values / np.maximum(np.linalg.norm(values, axis=1, keepdims=True), 1e-12)


@dataclass
class NearestNeighbourHead:
    """One head's unit-length training embeddings (rows, dim), the k of the score and the threshold."""

    reference: np.ndarray
    neighbours: int = NEIGHBOURS
    threshold: float = float("inf")
    _columns: np.ndarray = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        self._columns = np.ascontiguousarray(self.reference.T)  # a contiguous matmul operand: ~9x faster per clip

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """(rows, dim) -> (rows,): cosine distance to the k-th nearest training embedding."""
        similarity = unit_rows(embeddings) @ self._columns
        kth = similarity.shape[1] - min(self.neighbours, similarity.shape[1])
        return (1.0 - np.partition(similarity, kth, axis=1)[:, kth]).astype(np.float64)


@dataclass
class MahalanobisHead:
    """One head's class means (classes, dim) over the rows of each class, shared precision (dim, dim), threshold."""

    means: np.ndarray
    precision: np.ndarray
    threshold: float = float("inf")

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """(rows, dim) -> (rows,): Mahalanobis distance to the nearest class mean."""
        differences = np.asarray(embeddings, dtype=np.float64)[:, None, :] - self.means[None, :, :]
        squared = ((differences @ self.precision) * differences).sum(axis=-1)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def _labelled_classes(embeddings: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray, list]:
    embeddings, labels = np.asarray(embeddings, dtype=np.float64), np.asarray(labels)
    keep = labels != -100
    embeddings, labels = embeddings[keep], labels[keep]
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        raise ValueError(f"unknown-source statistics need embeddings of at least two classes, got {classes}.")
    return embeddings, labels, classes


def _same_head(a, b) -> bool:
    """Whether two fitted heads hold the same statistics and threshold."""
    if type(a) is not type(b) or a.threshold != b.threshold:
        return False
    if isinstance(a, NearestNeighbourHead):
        return a.neighbours == b.neighbours and np.array_equal(a.reference, b.reference)
    return np.array_equal(a.means, b.means) and np.array_equal(a.precision, b.precision)


def fit_mahalanobis(embeddings: np.ndarray, labels: np.ndarray) -> MahalanobisHead:
    """Class means and the shared within-class covariance (inverted, with a ridge) of one head's embeddings."""
    embeddings, labels, classes = _labelled_classes(embeddings, labels)
    means = np.stack([embeddings[labels == c].mean(axis=0) for c in classes])
    centred = embeddings - means[np.searchsorted(classes, labels)]
    covariance = centred.T @ centred / max(len(labels) - len(classes), 1)
    covariance += RIDGE * max(float(np.trace(covariance)) / covariance.shape[0], 1e-12) * np.eye(covariance.shape[0])
    return MahalanobisHead(means=means, precision=np.linalg.inv(covariance))


def fit_nearest_neighbours(embeddings: np.ndarray, labels: np.ndarray) -> NearestNeighbourHead:
    """The unit-length embeddings of the labelled training rows (the same classes check as the Mahalanobis fit)."""
    embeddings, _, _ = _labelled_classes(embeddings, labels)
    return NearestNeighbourHead(reference=unit_rows(embeddings))


FITS = {"knn": fit_nearest_neighbours, "mahalanobis": fit_mahalanobis}


@dataclass
class UnknownSourceScorer:
    """Per head: distances from the training data, and whether a clip is one of the kinds it knows."""

    heads: dict[str, NearestNeighbourHead | MahalanobisHead]
    score: str = "knn"

    def __post_init__(self):
        # Heads fitted on the same embeddings (models whose heads read one pooled embedding) become one object,
        # so that `scores` computes their distances once.
        self.heads = dict(self.heads)  # the caller's dict stays as given
        unique: list = []
        for task, head in self.heads.items():
            same = next((u for u in unique if _same_head(u, head)), None)
            if same is None:
                unique.append(head)
            else:
                self.heads[task] = same

    @classmethod
    def fit(cls, train_embeddings: dict[str, np.ndarray], train_labels: dict[str, np.ndarray],
            validation_embeddings: dict[str, np.ndarray], score: str = "knn") -> UnknownSourceScorer:
        """Statistics from the training split; each threshold is the ACCEPT_QUANTILE of the validation scores."""
        if score not in SCORES:
            raise ValueError(f"unknown-source score must be one of {list(SCORES)}, got {score!r}.")
        heads = {}
        for task in (t for t in TASK_LABELS if t in train_embeddings):
            head = FITS[score](train_embeddings[task], train_labels[task])
            head.threshold = float(np.quantile(head.distances(validation_embeddings[task]), ACCEPT_QUANTILE))
            heads[task] = head
        return cls(heads, score)

    def scores(self, embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Per head, the distance of every row; a head object shared by several tasks, given the very same array
        for them, is computed once."""
        done: dict[tuple, np.ndarray] = {}
        result = {}
        for task, head in self.heads.items():
            if task in embeddings:
                values = np.asarray(embeddings[task])
                key = (id(head), values.__array_interface__["data"][0], values.shape, values.dtype.str)
                if key not in done:
                    done[key] = head.distances(values)
                result[task] = done[key]
        return result

    def known(self, task: str, score: float) -> bool:
        return bool(score <= self.heads[task].threshold)

    def save(self, folder: str | Path) -> Path:
        """Writes `unknown_source.safetensors`; a head shared by several tasks is stored once (the metadata's
        `shared` names, per later task, the task whose tensors it reuses)."""
        from safetensors.torch import save_file

        tensors, shared, stored = {}, {}, {}
        for task, head in self.heads.items():
            if id(head) in stored:
                shared[task] = stored[id(head)]
                continue
            stored[id(head)] = task
            if self.score == "knn":
                tensors[f"{task}.reference"] = torch.tensor(head.reference)
                tensors[f"{task}.neighbours"] = torch.tensor([head.neighbours])
            else:
                tensors[f"{task}.means"] = torch.tensor(head.means)
                tensors[f"{task}.precision"] = torch.tensor(head.precision)
            tensors[f"{task}.threshold"] = torch.tensor([head.threshold], dtype=torch.float64)
        path = Path(folder) / FILE_NAME
        with atomic_path(path) as partial:
            save_file(tensors, str(partial), metadata={"score": self.score, "shared": json.dumps(shared)})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> UnknownSourceScorer | None:
        """The scorer saved in a model folder, or None when the folder has none (files written before heads were
        stored once, or before the knn score, load too)."""
        from safetensors import safe_open
        from safetensors.torch import load_file

        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        with safe_open(str(path), framework="pt") as handle:
            shared = json.loads((handle.metadata() or {}).get("shared", "{}"))
        heads = {}
        for task in {name.split(".")[0] for name in tensors}:
            threshold = float(tensors[f"{task}.threshold"][0])
            if f"{task}.reference" in tensors:
                heads[task] = NearestNeighbourHead(tensors[f"{task}.reference"].numpy(),
                                                   int(tensors[f"{task}.neighbours"][0]), threshold)
            else:  # saved before the knn score (Mahalanobis only)
                heads[task] = MahalanobisHead(tensors[f"{task}.means"].numpy(), tensors[f"{task}.precision"].numpy(),
                                              threshold)
        heads.update({task: heads[source] for task, source in shared.items()})
        ordered = {task: heads[task] for task in sorted(heads, key=list(TASK_LABELS).index)}
        return cls(ordered, "knn" if isinstance(next(iter(ordered.values())), NearestNeighbourHead) else "mahalanobis")


def find_scorer(model_name_or_path: str | None, revision: str | None = None) -> UnknownSourceScorer | None:
    """The scorer saved beside a model (in its folder, or its Hub repo); None when there is none."""
    from .resolve import folder_holding

    folder = folder_holding(model_name_or_path, FILE_NAME, revision)
    return None if folder is None else UnknownSourceScorer.load(folder)


def embed_dataset(model, dataset, chunk_samples: int, batch_size: int = 32, limit: int | None = None,
                  seed: int = 0) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """Head embeddings and logits of a dataset's rows (official windows), at most `limit` rows (a seeded sample)."""
    from torch.utils.data import DataLoader

    from .data import WaveformTransform, collate

    if limit is not None and len(dataset) > limit:
        dataset = dataset.select(sorted(np.random.default_rng(seed).choice(len(dataset), limit, replace=False)))
    windows = dataset.with_transform(WaveformTransform(tuple(model.config.tasks), chunk_samples))
    embeddings: dict[str, list] = {t: [] for t in model.config.tasks}
    logits: dict[str, list] = {t: [] for t in model.config.tasks}
    was_training = model.training
    model.eval()
    with torch.no_grad():
        for batch in DataLoader(windows, batch_size=batch_size, collate_fn=collate):
            out = model(input_values=batch["input_values"].to(model.device))
            for task in model.config.tasks:
                embeddings[task].append(out.embeddings[task].float().cpu().numpy())
                logits[task].append(out.logits_for(task).float().cpu().numpy())
    model.train(was_training)
    return ({t: np.concatenate(v) for t, v in embeddings.items()}, {t: np.concatenate(v) for t, v in logits.items()})


def separation(known_scores: np.ndarray, unseen_scores: np.ndarray) -> dict[str, float]:
    """How well a score tells clips of unseen codecs (positives, higher score) from clips of training codecs: AUROC
    and the false-positive rate at 95% true-positive rate (the share of training-codec clips called unknown when 95%
    of unseen-codec clips are)."""
    from sklearn.metrics import roc_auc_score

    labels = np.concatenate([np.zeros(known_scores.size), np.ones(unseen_scores.size)])
    scores = np.concatenate([known_scores, unseen_scores])
    threshold = np.quantile(unseen_scores, 0.05)
    return {"auroc": float(roc_auc_score(labels, scores)), "fpr_at_95_tpr": float((known_scores >= threshold).mean())}


def fit_unknown_source(model, train, validation, chunk_samples: int, score: str = "knn") -> UnknownSourceScorer:
    """Fits the scorer of a trained model: statistics on (a sample of) the training split, thresholds on the
    validation split."""
    from .evaluation import labels_by_task

    tasks = [t for t in TASK_LABELS if t in model.config.tasks]
    if len(train) > MAX_FIT_ROWS:
        train = train.select(sorted(np.random.default_rng(0).choice(len(train), MAX_FIT_ROWS, replace=False)))
    train_embeddings, _ = embed_dataset(model, train, chunk_samples)
    validation_embeddings, _ = embed_dataset(model, validation, chunk_samples)
    return UnknownSourceScorer.fit({t: train_embeddings[t] for t in tasks}, labels_by_task(train, tasks),
                                   validation_embeddings, score)


@dataclass
class ScoredSet:
    """One dataset through the model once: per taxonomy head the unknown-source score of every row, per head the
    logits (as the model returns them) and the labels (with `bin` where the dataset has it)."""

    scores: dict[str, np.ndarray]
    logits: dict[str, np.ndarray]
    labels: dict[str, np.ndarray]


def score_dataset(model, scorer: UnknownSourceScorer, dataset, chunk_samples: int) -> ScoredSet:
    from .evaluation import labels_by_task

    embeddings, logits = embed_dataset(model, dataset, chunk_samples)
    return ScoredSet(scorer.scores(embeddings), logits, labels_by_task(dataset, ["bin", *model.config.tasks]))


def evaluate_unknown_source(scorer: UnknownSourceScorer, known: ScoredSet, unseen: ScoredSet) -> dict:
    """Per taxonomy head, on spoof clips: how well the score separates clips of unseen codecs (`unseen`, e.g. CoSG)
    from clips of training codecs (`known`, e.g. CoRS), beside maximum softmax probability and energy (reported,
    not chosen); and the share of the known clips' correct answers that the threshold turns into unknown."""
    rows = {"known": known.labels["bin"] == SPOOF_INDEX, "unseen": unseen.labels["bin"] == SPOOF_INDEX}
    result = {}
    for task, head in ((t, h) for t, h in scorer.heads.items() if t in TAXONOMY_TASKS):
        scores = {"known": known.scores[task][rows["known"]], "unseen": unseen.scores[task][rows["unseen"]]}
        logits = {"known": known.logits[task][rows["known"]], "unseen": unseen.logits[task][rows["unseen"]]}
        correct = logits["known"].argmax(1) == known.labels[task][rows["known"]]
        baselines = {name: logit_scores(values) for name, values in logits.items()}
        result[task] = {
            "score": scorer.score,
            scorer.score: separation(scores["known"], scores["unseen"]),
            **{kind: separation(baselines["known"][kind], baselines["unseen"][kind])
               for kind in ("max_softmax_probability", "energy")},
            "known_called_unknown": float((scores["known"] > head.threshold).mean()),
            "unseen_called_unknown": float((scores["unseen"] > head.threshold).mean()),
            "correct_turned_unknown": float((scores["known"][correct] > head.threshold).mean()) if correct.any()
            else float("nan"),
        }
    return result


def logit_scores(logits: np.ndarray) -> dict[str, np.ndarray]:
    """The logit-only out-of-distribution scores reported beside the scorer's (higher: less like training data):
    one minus the maximum softmax probability (Hendrycks and Gimpel 2017) and energy (Liu et al. 2020)."""
    from scipy.special import logsumexp

    from .metrics import softmax

    return {"max_softmax_probability": 1.0 - softmax(logits).max(axis=1), "energy": -logsumexp(logits, axis=1)}


def used_score(entry: dict) -> str:
    """The score a head's `evaluate_unknown_source` entry was measured with (saved before the knn score existed:
    Mahalanobis)."""
    return entry.get("score", "mahalanobis")


def unknown_source_table(result: dict) -> str:
    lines = ["| head | AUROC (the score used) | FPR at 95% TPR | AUROC max softmax | AUROC energy | "
             "training-codec clips called unknown | correct answers turned unknown | unseen-codec clips called "
             "unknown |", "|---|---|---|---|---|---|---|---|"]
    for task, r in result.items():
        used = r[used_score(r)]
        lines.append(f"| {task.upper()} | {used['auroc']:.3f} ({used_score(r)}) | {used['fpr_at_95_tpr']:.3f} | "
                     f"{r['max_softmax_probability']['auroc']:.3f} | {r['energy']['auroc']:.3f} | "
                     f"{r['known_called_unknown']:.3f} | {r['correct_turned_unknown']:.3f} | "
                     f"{r['unseen_called_unknown']:.3f} |")
    return "\n".join(lines)


def unknown_rows(scorer: UnknownSourceScorer, scored: ScoredSet) -> dict[str, np.ndarray]:
    """Per head, which rows of a scored set the scorer calls unknown."""
    return {task: scored.scores[task] > head.threshold for task, head in scorer.heads.items()}
