"""A conditional codec adversary (`--codec_adversary_weight`): within each taxonomy class, remove what tells one
training codec from another.

A tracer trained on a few codecs per class can learn each codec's own signature and name a class by the nearest
signature, which does not carry to a codec it never heard. Domain-adversarial training (Ganin et al., JMLR 2016)
removes what identifies the training domain from a representation with a gradient-reversal layer; the conditional
form (Li et al., "Deep domain generalization via conditional invariant adversarial networks", ECCV 2018) removes it
within each class only, so that what separates the classes stays. Here the domains are the training codecs: for
each taxonomy head (VQ, AUX, DEC) a small classifier reads the head's embedding through a gradient reversal and
names the row's codec among the training codecs *of the row's class for that head*; it learns to tell them apart,
and the tracer learns to make them indistinguishable, by one of two objectives:

- `reversal` (DANN): the adversary's own loss, its gradient reversed into the tracer. The tracer maximises a
  cross-entropy, which has no upper bound (DANN's known instability);
- `confusion` (Tzeng et al., "Simultaneous deep transfer across domains and tasks", ICCV 2015): the adversary learns
  on the embedding with the tracer's gradient cut, and the tracer learns, through the adversary's frozen weights,
  to make its guess uniform over the class's codecs (the KL divergence from uniform: zero, with a zero gradient,
  once the adversary is left guessing; bounded below, so there is nothing to blow up).

Bona fide rows and codecs alone in their class carry no such question and are left out. Training only: the
adversary never enters the saved model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from modeling_codectrace.configuration_codectrace import TASK_LABELS, TAXONOMY_TASKS

ADVERSARY_OBJECTIVES = ("reversal", "confusion")
ADVERSARY_TASKS = TAXONOMY_TASKS  # BIN has no codec class to condition on
_BONA_FIDE = TASK_LABELS["bin"].index("bonafide")
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
        tasks = [task for task in ADVERSARY_TASKS if task in rows.column_names]
        seen: dict[str, tuple[int, ...]] = {}
        columns = {name: rows[name] for name in ("source", "bin", *tasks)}
        for index, source in enumerate(columns["source"]):
            if columns["bin"][index] == _BONA_FIDE:
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
        return [-100 if label == _BONA_FIDE else position.get(source, -100)
                for source, label in zip(sources, bin_labels)]


class _ReverseGradient(torch.autograd.Function):
    """Identity forward; the gradient times `-strength` backward."""

    @staticmethod
    def forward(ctx, values, strength: float):
        ctx.strength = strength
        return values.view_as(values)

    @staticmethod
    def backward(ctx, gradient):
        return -ctx.strength * gradient, None


def reverse_gradient(values: torch.Tensor, strength: float) -> torch.Tensor:
    return _ReverseGradient.apply(values, strength)


def ramped_strength(weight: float, progress: float) -> float:
    """DANN's schedule: `weight * (2 / (1 + exp(-10 p)) - 1)` at training progress p in [0, 1], so the reversed
    gradient is weak while the adversary is still a poor judge of codecs."""
    progress = min(max(progress, 0.0), 1.0)
    return weight * (2.0 / (1.0 + math.exp(-10.0 * progress)) - 1.0)


class ConditionalCodecAdversary(nn.Module):
    """Per taxonomy task, a two-layer classifier over that head's embedding naming the row's training codec among
    the codecs of its class (the other codecs' logits are masked out).

    Args:
        vocabulary: the training codecs and their classes.
        embedding_sizes: per task, the size of the embedding the model's head classifies.
        objective: how the tracer learns to hide the codec: `reversal` or `confusion` (see the module's docstring).
        hidden_size: width of each classifier's hidden layer.
    """

    def __init__(self, vocabulary: CodecVocabulary, embedding_sizes: dict[str, int], objective: str = "reversal",
                 hidden_size: int = 64):
        super().__init__()
        if objective not in ADVERSARY_OBJECTIVES:
            raise ValueError(f"codec adversary objective must be one of {list(ADVERSARY_OBJECTIVES)}, got "
                             f"{objective!r}.")
        self.objective = objective
        self.vocabulary = vocabulary
        self.tasks = tuple(task for task in ADVERSARY_TASKS if task in embedding_sizes and task in vocabulary.classes)
        if not self.tasks:
            raise ValueError(f"the codec adversary needs at least one of the heads {ADVERSARY_TASKS}; the model's "
                             f"embeddings are {sorted(embedding_sizes)}.")
        codecs = len(vocabulary.codecs)
        self.classifiers = nn.ModuleDict({task: nn.Sequential(
            nn.Linear(embedding_sizes[task], hidden_size), nn.ReLU(), nn.Linear(hidden_size, codecs))
            for task in self.tasks})
        for task in self.tasks:  # same_class[i, j]: codecs i and j share task's class
            classes = torch.tensor(vocabulary.classes[task])
            self.register_buffer(f"same_class_{task}", classes[:, None] == classes[None, :], persistent=False)

    def forward(self, embeddings: dict[str, torch.Tensor], sources: torch.Tensor, strength: float) -> torch.Tensor:
        """The mean over tasks of the training loss, over the rows whose class holds more than one codec: with
        `reversal`, the within-class codec cross-entropy, whose gradient reaches the embeddings reversed and scaled
        by `strength`; with `confusion`, that cross-entropy on the embeddings with their gradient cut, plus
        `strength` times the KL divergence of the uniform guess from the frozen adversary's. Zero (with a graph)
        when no row qualifies."""
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
            if self.objective == "reversal":
                losses.append(self._codec_loss(task, reverse_gradient(rows, strength), allowed, codecs))
            else:
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
    for the model, not for a module it does not own); a no-op in a single process. Averaging again after a further
    micro-batch of gradient accumulation keeps the result right: the mean is linear and the earlier part is already
    the same on every process."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return
    world = torch.distributed.get_world_size()
    for parameter in module.parameters():
        if parameter.grad is not None:
            torch.distributed.all_reduce(parameter.grad)
            parameter.grad.div_(world)
