"""Unknown-source scoring: for each taxonomy head, how far a clip's embedding lies from every class the head was
trained on, and a threshold that turns it into known / unknown (docs/trust.md says how this was chosen).

Score: the Mahalanobis distance of the head's embedding to the nearest class mean, with one covariance shared by the
classes (Lee et al., NeurIPS 2018), fitted on training-split embeddings; threshold: a quantile of the score on the
validation split. Saved beside a model as `unknown_source.safetensors`; a model folder without it is scored as
before (no known / unknown).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from modeling_codectrace.configuration_codectrace import TASK_LABELS

from .files import atomic_path

FILE_NAME = "unknown_source.safetensors"
TAXONOMY_HEADS = ("vq", "aux", "dec")
ACCEPT_QUANTILE = 0.975  # of validation (in-domain) clips called known
MAX_FIT_ROWS = 5000
RIDGE = 1e-6


@dataclass
class HeadStatistics:
    """One head's class means (classes, dim) over the rows of each class, shared precision (dim, dim), threshold."""

    means: np.ndarray
    precision: np.ndarray
    threshold: float = float("inf")

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """(rows, dim) -> (rows,): Mahalanobis distance to the nearest class mean."""
        differences = embeddings[:, None, :] - self.means[None, :, :]  # (rows, classes, dim)
        squared = ((differences @ self.precision) * differences).sum(axis=-1)
        return np.sqrt(np.maximum(squared.min(axis=1), 0.0))


def fit_head(embeddings: np.ndarray, labels: np.ndarray) -> HeadStatistics:
    """Class means and the shared within-class covariance (inverted, with a ridge) of one head's embeddings."""
    embeddings, labels = np.asarray(embeddings, dtype=np.float64), np.asarray(labels)
    keep = labels != -100
    embeddings, labels = embeddings[keep], labels[keep]
    classes = sorted(set(labels.tolist()))
    if len(classes) < 2:
        raise ValueError(f"unknown-source statistics need embeddings of at least two classes, got {classes}.")
    means = np.stack([embeddings[labels == c].mean(axis=0) for c in classes])
    centred = embeddings - means[np.searchsorted(classes, labels)]
    covariance = centred.T @ centred / max(len(labels) - len(classes), 1)
    covariance += RIDGE * max(float(np.trace(covariance)) / covariance.shape[0], 1e-12) * np.eye(covariance.shape[0])
    return HeadStatistics(means=means, precision=np.linalg.inv(covariance))


@dataclass
class UnknownSourceScorer:
    """Per taxonomy head: distances from the training classes, and whether a clip is one of the kinds it knows."""

    heads: dict[str, HeadStatistics]

    @classmethod
    def fit(cls, train_embeddings: dict[str, np.ndarray], train_labels: dict[str, np.ndarray],
            validation_embeddings: dict[str, np.ndarray]) -> UnknownSourceScorer:
        """Statistics from the training split; each threshold is the ACCEPT_QUANTILE of the validation scores."""
        heads = {}
        for task in (t for t in TAXONOMY_HEADS if t in train_embeddings):
            head = fit_head(train_embeddings[task], train_labels[task])
            head.threshold = float(np.quantile(head.distances(validation_embeddings[task]), ACCEPT_QUANTILE))
            heads[task] = head
        return cls(heads)

    def scores(self, embeddings: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {task: head.distances(np.asarray(embeddings[task], dtype=np.float64))
                for task, head in self.heads.items() if task in embeddings}

    def known(self, task: str, score: float) -> bool:
        return bool(score <= self.heads[task].threshold)

    def save(self, folder: str | Path) -> Path:
        from safetensors.torch import save_file

        tensors = {}
        for task, head in self.heads.items():
            tensors[f"{task}.means"] = torch.tensor(head.means)  # copies: heads may share one array
            tensors[f"{task}.precision"] = torch.tensor(head.precision)
            tensors[f"{task}.threshold"] = torch.tensor([head.threshold], dtype=torch.float64)
        path = Path(folder) / FILE_NAME
        with atomic_path(path) as partial:
            save_file(tensors, str(partial), metadata={"score": "mahalanobis, nearest class, shared covariance"})
        return path

    @classmethod
    def load(cls, folder: str | Path) -> UnknownSourceScorer | None:
        """The scorer saved in a model folder, or None when the folder has none."""
        from safetensors.torch import load_file

        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return None
        tensors = load_file(str(path))
        tasks = sorted({name.split(".")[0] for name in tensors}, key=list(TASK_LABELS).index)
        return cls({task: HeadStatistics(tensors[f"{task}.means"].numpy(), tensors[f"{task}.precision"].numpy(),
                                         float(tensors[f"{task}.threshold"][0])) for task in tasks})


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


def fit_unknown_source(model, train, validation, chunk_samples: int) -> UnknownSourceScorer:
    """Fits the scorer of a trained model: statistics on (a sample of) the training split, thresholds on the
    validation split."""
    from .evaluation import labels_by_task

    tasks = [t for t in TAXONOMY_HEADS if t in model.config.tasks]
    if len(train) > MAX_FIT_ROWS:
        train = train.select(sorted(np.random.default_rng(0).choice(len(train), MAX_FIT_ROWS, replace=False)))
    train_embeddings, _ = embed_dataset(model, train, chunk_samples)
    validation_embeddings, _ = embed_dataset(model, validation, chunk_samples)
    return UnknownSourceScorer.fit({t: train_embeddings[t] for t in tasks}, labels_by_task(train, tasks),
                                   validation_embeddings)


def evaluate_unknown_source(model, scorer: UnknownSourceScorer, known, unseen, chunk_samples: int) -> dict:
    """Per taxonomy head, on spoof clips: how well the score separates clips of unseen codecs (`unseen`, e.g. CoSG)
    from clips of training codecs (`known`, e.g. CoRS), beside maximum softmax probability and energy (reported,
    not chosen); and the share of the known clips' correct answers that the threshold turns into unknown."""
    from scipy.special import logsumexp

    from .evaluation import labels_by_task
    from .metrics import softmax

    spoof = TASK_LABELS["bin"].index("spoof")
    sets = {}
    for name, ds in (("known", known), ("unseen", unseen)):
        ds = ds.select(np.flatnonzero(np.asarray(ds["bin"]) == spoof))  # only spoof clips are compared
        embeddings, logits = embed_dataset(model, ds, chunk_samples)
        scores, labels = scorer.scores(embeddings), labels_by_task(ds, list(scorer.heads))
        sets[name] = {t: (scores[t], logits[t], labels[t]) for t in scorer.heads}
    result = {}
    for task, head in scorer.heads.items():
        (known_scores, known_logits, known_labels), (unseen_scores, unseen_logits, _) = sets["known"][task], \
            sets["unseen"][task]
        correct = known_logits.argmax(1) == known_labels
        msp = {name: 1.0 - softmax(values).max(1) for name, values in (("known", known_logits),
                                                                      ("unseen", unseen_logits))}
        energy = {name: -logsumexp(values, axis=1) for name, values in (("known", known_logits),
                                                                         ("unseen", unseen_logits))}
        result[task] = {
            "mahalanobis": separation(known_scores, unseen_scores),
            "max_softmax_probability": separation(msp["known"], msp["unseen"]),
            "energy": separation(energy["known"], energy["unseen"]),
            "known_called_unknown": float((known_scores > head.threshold).mean()),
            "unseen_called_unknown": float((unseen_scores > head.threshold).mean()),
            "correct_turned_unknown": float((known_scores[correct] > head.threshold).mean()) if correct.any()
            else float("nan"),
        }
    return result


def unknown_source_table(result: dict) -> str:
    lines = ["| head | AUROC (Mahalanobis, the score used) | FPR at 95% TPR | AUROC max softmax | AUROC energy | "
             "training-codec clips called unknown | correct answers turned unknown | unseen-codec clips called "
             "unknown |", "|---|---|---|---|---|---|---|---|"]
    for task, r in result.items():
        lines.append(f"| {task.upper()} | {r['mahalanobis']['auroc']:.3f} | {r['mahalanobis']['fpr_at_95_tpr']:.3f} | "
                     f"{r['max_softmax_probability']['auroc']:.3f} | {r['energy']['auroc']:.3f} | "
                     f"{r['known_called_unknown']:.3f} | {r['correct_turned_unknown']:.3f} | "
                     f"{r['unseen_called_unknown']:.3f} |")
    return "\n".join(lines)
