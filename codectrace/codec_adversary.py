"""A conditional codec adversary (`--codec_adversary_weight`): within each taxonomy class, remove what tells one
training codec from another.

A tracer trained on a few codecs per class can learn each codec's own signature and name a class by the nearest
signature, which does not carry to a codec it never heard. Domain-adversarial training (Ganin et al., JMLR 2016)
removes what identifies the training domain from a representation; the conditional form (Li et al., "Deep domain
generalization via conditional invariant adversarial networks", ECCV 2018) removes it within each class only, so
that what separates the classes stays. Here the domains are the training codecs: for each taxonomy head (VQ, AUX,
DEC) a small classifier names the row's codec among the training codecs *of the row's class for that head*, learning
on the head's embedding with the tracer's gradient cut; the tracer learns, through the adversary's frozen weights,
to make its guess uniform over the class's codecs (the confusion objective of Tzeng et al., "Simultaneous deep
transfer across domains and tasks", ICCV 2015: the KL divergence from uniform, zero with a zero gradient once the
adversary is left guessing, and bounded below). DANN's reversed cross-entropy lost on validation data (it diverged:
docs/research/removed.md).

Bona fide rows and codecs alone in their class carry no such question and are left out. Training only: the
adversary never enters the saved model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modeling_codectrace.configuration_codectrace import BONAFIDE_INDEX, TAXONOMY_TASKS

SOURCE_LABELS = "source_labels"  # the batch column holding each row's codec index (-100: bona fide)


@dataclass(frozen=True)
class CodecVocabulary:
    """The training codecs, in a fixed order, and each one's class index per taxonomy task."""

    codecs: tuple[str, ...]
    classes: dict[str, tuple[int, ...]]

    @classmethod
    def from_rows(cls, rows) -> CodecVocabulary:
        """From a dataset with `source`, `bin` and taxonomy columns: every spoofed row's codec and its classes.
        Raises ValueError if the rows have no spoofed codec or give one codec two classes of a task."""
        tasks = [task for task in TAXONOMY_TASKS if task in rows.column_names]
        seen: dict[str, tuple[int, ...]] = {}
        columns = {name: rows[name] for name in ("source", "bin", *tasks)}
        for index, source in enumerate(columns["source"]):
            if columns["bin"][index] == BONAFIDE_INDEX:
                continue
            classes = tuple(columns[task][index] for task in tasks)
            if seen.setdefault(source, classes) != classes:
                raise ValueError(f"codec {source!r} has two taxonomy labels in the training rows ({seen[source]} and "
                                 f"{classes} for {tasks}); the codec adversary needs one class per codec and task.")
        if not seen:
            raise ValueError("the training rows hold no spoofed codec; the codec adversary needs at least one.")
        codecs = tuple(sorted(seen))
        return cls(codecs, {task: tuple(seen[codec][i] for codec in codecs) for i, task in enumerate(tasks)})

    def source_labels(self, sources, bin_labels) -> list[int]:
        """Per row, its codec's position in `codecs`, or -100 (ignored) for bona fide rows and unknown codecs."""
        position = {codec: index for index, codec in enumerate(self.codecs)}
        return [-100 if label == BONAFIDE_INDEX else position.get(source, -100)
                for source, label in zip(sources, bin_labels)]


def ramped_strength(weight: float, progress: float) -> float:
    """DANN's schedule: `weight * (2 / (1 + exp(-10 p)) - 1)` at training progress p in [0, 1], so the tracer is
    pushed weakly while the adversary is still a poor judge of codecs."""
    progress = min(max(progress, 0.0), 1.0)
    return weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class ConditionalCodecAdversary(nn.Module):
    """Per taxonomy task, a two-layer classifier over that head's embedding naming the row's training codec among
    the codecs of its class (the other codecs' logits are masked out).

    Args:
        vocabulary: the training codecs and their classes.
        embedding_sizes: per task, the size of the embedding the model's head classifies.
        hidden_size: width of each classifier's hidden layer.
    """

    def __init__(self, vocabulary: CodecVocabulary, embedding_sizes: dict[str, int], hidden_size: int = 64):
        super().__init__()
        self.vocabulary = vocabulary
        self.tasks = tuple(task for task in TAXONOMY_TASKS if task in embedding_sizes and task in vocabulary.classes)
        if not self.tasks:
            raise ValueError(f"the codec adversary needs at least one of the heads {TAXONOMY_TASKS}; the model's "
                             f"embeddings are {sorted(embedding_sizes)}.")
        codecs = len(vocabulary.codecs)
        self.classifiers = nn.ModuleDict({task: nn.Sequential(
            nn.Linear(embedding_sizes[task], hidden_size), nn.ReLU(), nn.Linear(hidden_size, codecs))
            for task in self.tasks})
        for task in self.tasks:  # same_class[i, j]: codecs i and j share task's class
            classes = torch.tensor(vocabulary.classes[task])
            self.register_buffer(f"same_class_{task}", classes[:, None] == classes[None, :], persistent=False)

    def forward(self, embeddings: dict[str, torch.Tensor], sources: torch.Tensor, strength: float) -> torch.Tensor:
        """The mean over tasks of the training loss, over the rows whose class holds more than one codec: the
        within-class codec cross-entropy on the embeddings with their gradient cut (the adversary learns), plus
        `strength` times the KL divergence of the uniform guess from the frozen adversary's (the tracer learns).
        Zero (with a graph) when no row qualifies."""
        losses = []
        for task in self.tasks:
            embedding = embeddings[task]
            sources = sources.to(embedding.device)
            spoofed = sources >= 0
            same_class = getattr(self, f"same_class_{task}")[sources[spoofed]]
            asked = same_class.sum(-1) > 1  # a codec alone in its class cannot be confused with another
            if not asked.any():
                continue
            rows, allowed, codecs = embedding[spoofed][asked], same_class[asked], sources[spoofed][asked]
            losses.append(self._codec_loss(task, rows.detach(), allowed, codecs)
                          + strength * self._confusion(task, rows, allowed))
        if not losses:
            return sum(embeddings[task].sum() for task in self.tasks) * 0.0
        return torch.stack(losses).mean()

    def _codec_loss(self, task: str, rows: torch.Tensor, allowed: torch.Tensor, codecs: torch.Tensor) -> torch.Tensor:
        logits = self.classifiers[task](rows).float()
        return F.cross_entropy(logits.masked_fill(~allowed, torch.finfo(logits.dtype).min), codecs)

    def _confusion(self, task: str, rows: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        """KL(uniform over the allowed codecs || the adversary's guess), through the adversary's frozen weights: its
        gradient reaches the rows only."""
        classifier = self.classifiers[task]
        frozen = {name: parameter.detach() for name, parameter in classifier.named_parameters()}
        logits = torch.func.functional_call(classifier, frozen, (rows,)).float()
        log_guess = torch.log_softmax(logits.masked_fill(~allowed, torch.finfo(logits.dtype).min), dim=-1)
        count = allowed.sum(-1)
        cross_entropy = -torch.where(allowed, log_guess, torch.zeros_like(log_guess)).sum(-1) / count
        return (cross_entropy - count.float().log()).mean()


def for_training(model, train_rows, weight: float) -> ConditionalCodecAdversary | None:
    """With `--codec_adversary_weight` (`weight` > 0), the adversary over the model's heads and the training rows'
    codecs; None when it is off."""
    if not weight:
        return None
    return ConditionalCodecAdversary(CodecVocabulary.from_rows(train_rows), embedding_sizes(model))


@torch.no_grad()
def embedding_sizes(model) -> dict[str, int]:
    """Per task, the size of the embedding the model's head classifies, read from one forward pass on silence."""
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        output = model(torch.zeros(2, model.min_input_samples, device=device))
    finally:
        model.train(was_training)
    return {task: values.shape[-1] for task, values in output.embeddings.items()}


def average_gradients_across_processes(module: nn.Module) -> None:
    """Averages the module's gradients over the processes of a distributed run (the Trainer's DDP wrapper does this
    for the model, not for a module it does not own); a no-op in a single process. A parameter that got a gradient
    on some processes only (a batch without spoofed rows of its class) counts zero on the others, so every process
    makes the same collective calls; one that got none anywhere keeps none. Averaging again after a further
    micro-batch of gradient accumulation keeps the result right: the mean is linear and the earlier part is already
    the same on every process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    parameters = list(module.parameters())
    if not parameters:
        return
    world = torch.distributed.get_world_size()
    has_gradient = torch.tensor([float(p.grad is not None) for p in parameters], device=parameters[0].device)
    torch.distributed.all_reduce(has_gradient)
    for parameter, processes in zip(parameters, has_gradient.tolist()):
        if processes == 0:
            continue
        if parameter.grad is None:
            parameter.grad = torch.zeros_like(parameter)
        torch.distributed.all_reduce(parameter.grad)
        parameter.grad.div_(world)
