"""Enrolled generators: a few clips of a generator the model never trained on, kept beside the model under a name
(and the generator's codec taxonomy where it is published), so that a traced clip can be answered "made by <name>".
The model's weights never change; `codectrace enroll` writes the store, the pipeline reads it.

Clips are compared in the model's codec identity (`codectrace.codec_identity`; without one, by the identity head's
embedding). A clip is attributed to the enrolled generator whose centroid (the normalised mean of its clips'
unit-length embeddings) is nearest by cosine distance, when that distance is at most the store's `max_distance` and
smaller than the clip's distance to the training data (to the nearest training source's centroid; without a codec
identity, the unknown-source score of the identity head): a clip that looks like a training codec stays with the
training codecs. Where a clip is attributed, the generator's enrolled classes replace the taxonomy heads' answers
(`EVERY_HEAD`; else only those of heads calling the clip unknown). The settings were chosen on the validation codecs
(docs/enrolment.md); the store keeps the ones it was written with.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import torch

from modeling_codectrace.configuration_codectrace import TASK_LABELS, TAXONOMY_TASKS

from .files import atomic_path
from .unknown_source import unit_rows

FILE_NAME = "enrolled_generators.safetensors"
FORMAT = "codectrace-enrolled-generators"
FORMAT_VERSION = 1
EMBEDDING_TASK = "vq"  # whose head embedding identifies a generator (docs/enrolment.md)
RAW_SPACE = "raw"  # no codec identity beside the model: clips are compared by the identity head's embedding
# Cosine distance to a centroid, at most, per kind of space (a codec identity's, or the head's own); chosen on the
# validation codecs (docs/enrolment.md).
MAX_DISTANCE = {"identity": 0.5, RAW_SPACE: 0.05}
NEARER_THAN_TRAINING = True  # and nearer to it than to the training data; chosen likewise
EVERY_HEAD = True  # an attributed clip's enrolled classes answer for every head, not only those calling it unknown
# The attribution score: the probability that an attributed clip was made by the generator named, a logistic function
# of `score_features`, fitted on the validation codecs' attributions (benchmarks/enrolment_curve.py) for codec
# identities; a store compared by the head's own embedding gives no score.
SCORE_BIAS = 3.839
SCORE_WEIGHTS = (-10.45, -3.619, 13.6)
NAME_PATTERN = re.compile(r"^[\w][\w .+-]{0,63}$")


def head_embeddings(tracer, audios) -> tuple[np.ndarray, list[dict]]:
    """Clips traced whole by the pipeline with no codec identity: their identity head's unit-length embeddings
    (rows, dim) and the pipeline's results. A clip that cannot be traced stops it (these are a dataset's rows)."""
    identity, tracer.codec_identity = tracer.codec_identity, None
    try:
        results = list(tracer.trace_many(audios, return_embedding=True))
    finally:
        tracer.codec_identity = identity
    failed = [r for r in results if isinstance(r, Exception)]
    if failed:
        raise ValueError(f"{len(failed)} clips could not be traced, e.g. {failed[0]}")
    return np.array([r["embedding"] for r in results], dtype=np.float32), results


def enrollable_embedding(result: dict) -> list[float]:
    """The embedding a pipeline result (`return_embedding=True`) enrols with; a clip too short to have one (under
    one spectrum frame, where the model has a codec identity) is refused."""
    if result.get("embedding") is None:
        from .codec_identity import FRAME

        raise ValueError(f"too short to tell which codec made it: at least {FRAME} samples "
                         f"({1000 * FRAME // 16000} ms at 16 kHz) are needed")
    return result["embedding"]


def enrollable_labels(task: str) -> tuple[str, ...]:
    """The classes a generator can be enrolled with for a taxonomy task (every class but `real`)."""
    return tuple(label for label in TASK_LABELS[task] if label != "real")


def check_taxonomy(taxonomy: dict[str, str]) -> dict[str, str]:
    for task, label in taxonomy.items():
        if task not in TAXONOMY_TASKS:
            raise ValueError(f"taxonomy task must be one of {list(TAXONOMY_TASKS)}, got {task!r}.")
        if label not in enrollable_labels(task):
            raise ValueError(f"--{task} must be one of {list(enrollable_labels(task))}, got {label!r}.")
    return dict(taxonomy)


@dataclass
class EnrolledGenerator:
    """One generator: its name, the unit-length embeddings of its enrolled clips (clips, dim) and its taxonomy
    (task -> class, only the tasks that are known)."""

    name: str
    embeddings: np.ndarray
    taxonomy: dict[str, str] = field(default_factory=dict)

    @cached_property  # a generator's clips never change: `EnrolmentStore.add` makes a new one
    def centroid(self) -> np.ndarray:
        return unit_rows(self.embeddings.mean(axis=0, keepdims=True))[0]


@dataclass
class Attribution:
    """A clip's nearest enrolled generator (`name`, None when no generator is near enough) and its distance."""

    name: str | None
    distance: float | None
    taxonomy: dict[str, str] = field(default_factory=dict)
    every_head: bool = EVERY_HEAD  # the enrolled classes answer for every head (else only for those calling it unknown)
    score: float | None = None  # the probability that the clip was made by the generator named (see SCORE_WEIGHTS)

    def as_answer(self) -> dict | None:
        if self.name is None:
            return None
        return {"name": self.name, "distance": self.distance, "score": self.score, "taxonomy": dict(self.taxonomy)}


@dataclass
class EnrolmentStore:
    """The generators enrolled beside a model, with the settings they are matched with."""

    generators: dict[str, EnrolledGenerator] = field(default_factory=dict)
    task: str = EMBEDDING_TASK
    max_distance: float | None = None  # None: MAX_DISTANCE of the store's kind of space
    nearer_than_training: bool = NEARER_THAN_TRAINING
    every_head: bool = EVERY_HEAD
    space: str = RAW_SPACE  # where the embeddings live: the head's own (`raw`) or a `CodecIdentity`'s

    def adopt_space(self, space: str) -> None:
        """Refuses to compare clips embedded in another space than the enrolled ones (the model's codec identity
        changed since the generators were enrolled); a store with no generators takes the space."""
        if self.generators and space != self.space:
            raise ValueError(f"the enrolled generators were embedded in space {self.space!r}, the model now embeds "
                             f"in {space!r}: enrol them again (codectrace enroll --remove NAME, then enroll).")
        self.space = space

    def add(self, name: str, embeddings: np.ndarray, taxonomy: dict[str, str] | None = None) -> EnrolledGenerator:
        """Enrols clips (rows of the `task` head's embedding) under `name`; a name enrolled before gets the new clips
        added, when the taxonomy given agrees with the one it has."""
        if not isinstance(name, str) or not NAME_PATTERN.match(name):
            raise ValueError(f"generator name must be 1-64 letters, digits, spaces or '._+-', starting with a letter "
                             f"or digit; got {name!r}.")
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] == 0:
            raise ValueError(f"enrolment needs at least one clip's embedding, got an array of shape "
                             f"{embeddings.shape}.")
        if self.generators and embeddings.shape[1] != self.dimension:
            raise ValueError(f"embeddings of size {embeddings.shape[1]} do not match the store's {self.dimension}: was "
                             "the store written for another model?")
        taxonomy = check_taxonomy(taxonomy or {})
        previous = self.generators.get(name)
        if previous is not None:
            clash = {t: (previous.taxonomy[t], c) for t, c in taxonomy.items() if previous.taxonomy.get(t, c) != c}
            if clash:
                raise ValueError(f"{name!r} is enrolled with another taxonomy ({clash}); remove it first.")
            taxonomy = {**previous.taxonomy, **taxonomy}
            embeddings = np.concatenate([previous.embeddings, embeddings])
        self.generators[name] = EnrolledGenerator(name, unit_rows(embeddings), taxonomy)
        return self.generators[name]

    @property
    def distance_limit(self) -> float:
        """The largest distance at which a clip is attributed to a generator."""
        if self.max_distance is not None:
            return self.max_distance
        return MAX_DISTANCE[RAW_SPACE if self.space == RAW_SPACE else "identity"]

    def remove(self, name: str) -> None:
        if name not in self.generators:
            raise ValueError(f"no generator {name!r} is enrolled; enrolled: {sorted(self.generators) or 'none'}.")
        del self.generators[name]

    @property
    def dimension(self) -> int:
        return next(iter(self.generators.values())).embeddings.shape[1]

    def distances(self, embeddings: np.ndarray) -> np.ndarray:
        """(rows, dim) -> (rows, generators): cosine distance of each row to each generator's centroid."""
        if not self.generators:
            return np.zeros((len(embeddings), 0))
        centroids = np.stack([g.centroid for g in self.generators.values()])
        return 1.0 - unit_rows(embeddings) @ centroids.T

    def attribute(self, distances: np.ndarray, training_distance: float | None = None) -> Attribution:
        """One clip's attribution from its distances to the centroids (`distances` row) and, where the model has
        an unknown-source scorer, its distance to the training data (the same head's score)."""
        if distances.size == 0:
            return Attribution(None, None)
        nearest = int(np.argmin(distances))
        distance = float(distances[nearest])
        nearer_training = self.nearer_than_training and training_distance is not None and distance >= training_distance
        if distance > self.distance_limit or nearer_training:
            return Attribution(None, distance)
        generator = list(self.generators.values())[nearest]
        score = None
        if self.space != RAW_SPACE and training_distance is not None:
            score = float(attribution_score(score_features(distances, training_distance)))
        return Attribution(generator.name, distance, generator.taxonomy, self.every_head, score)

    def save(self, folder: str | Path) -> Path:
        """Writes `enrolled_generators.safetensors` into `folder` (complete or not at all)."""
        from safetensors.torch import save_file

        generators = list(self.generators.values())
        dimension = self.dimension if generators else 0
        embeddings = (np.concatenate([g.embeddings for g in generators]) if generators
                      else np.zeros((0, dimension), np.float32))
        metadata = {"format": FORMAT, "version": str(FORMAT_VERSION), "task": self.task, "space": self.space,
                    "max_distance": "" if self.max_distance is None else repr(self.max_distance),
                    "nearer_than_training": str(self.nearer_than_training), "every_head": str(self.every_head),
                    "generators": json.dumps([{"name": g.name, "clips": len(g.embeddings), "taxonomy": g.taxonomy}
                                              for g in generators])}
        path = Path(folder) / FILE_NAME
        with atomic_path(path) as partial:
            save_file({"embeddings": torch.from_numpy(np.ascontiguousarray(embeddings))}, str(partial), metadata)
        return path

    @classmethod
    def load(cls, folder: str | Path) -> EnrolmentStore | None:
        """The store saved in a model folder, or None when the folder has none."""
        from safetensors import safe_open

        path = Path(folder) / FILE_NAME
        if not path.is_file():
            return None
        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
            embeddings = handle.get_tensor("embeddings").numpy()
        if metadata.get("format") != FORMAT:
            raise ValueError(f"{path}: not a codectrace store of enrolled generators.")
        if int(metadata["version"]) > FORMAT_VERSION:
            raise ValueError(f"{path}: written by a newer codectrace (store version {metadata['version']}; this one "
                             f"reads up to {FORMAT_VERSION}); upgrade codectrace.")
        store = cls(task=metadata["task"], max_distance=float(metadata["max_distance"]) if metadata["max_distance"]
                    else None,
                    nearer_than_training=metadata.get("nearer_than_training", "True") == "True",
                    every_head=metadata.get("every_head", "False") == "True",
                    space=metadata.get("space", RAW_SPACE))
        first = 0
        for entry in json.loads(metadata["generators"]):
            rows = embeddings[first : first + entry["clips"]]
            first += entry["clips"]
            store.generators[entry["name"]] = EnrolledGenerator(entry["name"], rows, entry["taxonomy"])
        return store


def score_features(distances: np.ndarray, training_distance: float) -> np.ndarray:
    """What the attribution score reads of a clip: its cosine distance to the nearest enrolled generator, how much
    nearer it is to it than to the training data, and than to the second-nearest generator (2, the largest cosine
    distance, where only one is enrolled)."""
    ordered = np.sort(np.asarray(distances, dtype=np.float64))
    second = ordered[1] if len(ordered) > 1 else 2.0
    return np.array([ordered[0], training_distance - ordered[0], second - ordered[0]])


def attribution_score(features: np.ndarray, bias: float = SCORE_BIAS, weights=SCORE_WEIGHTS) -> np.ndarray:
    """The attribution score of `score_features` rows ((rows, 3) or (3,)): the logistic function of their weighted
    sum, with the weights fitted on the validation codecs unless others are given."""
    return 1.0 / (1.0 + np.exp(-(bias + np.asarray(features, dtype=np.float64) @ np.asarray(weights))))


def find_store(model_name_or_path: str | None, revision: str | None = None) -> EnrolmentStore | None:
    """The generators enrolled beside a model (in its folder, or its Hub repo); None when there are none."""
    from .resolve import folder_holding

    folder = folder_holding(model_name_or_path, FILE_NAME, revision)
    return None if folder is None else EnrolmentStore.load(folder)


def corrected_heads(heads: dict[str, dict], distributions: dict[str, dict[str, float]],
                    attribution: Attribution) -> dict[str, dict]:
    """The pipeline's head answers with the enrolled taxonomy in place of a head's answer where the clip is
    attributed to a generator and (unless the attribution answers for every head) that head calls the clip unknown
    (far from the training codecs); such a head's answer names the generator in `enrolled` and gives the head's own
    probability of the enrolled class."""
    corrected = {}
    for task, answer in heads.items():
        label = attribution.taxonomy.get(task)
        if attribution.name is not None and label is not None and (attribution.every_head
                                                                     or answer.get("known") is False):
            answer = {**answer, "label": label, "probability": distributions[task][label],
                      "enrolled": attribution.name}
        corrected[task] = answer
    return corrected
