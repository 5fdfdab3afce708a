"""Class compactness (`--class_compactness_weight`): per taxonomy head, shrink the spread of each class's embeddings
relative to the spread of all of them.

The codec adversary asks a small classifier whether an embedding still says which training codec made a clip, and a
probe fitted after training still names it 95-97% of the time (docs/codec_identity_probe.md): the tracer learns to
fool its adversary, not to drop the information. This is the non-adversarial way to the same end. Fisher's
criterion, the within-class scatter over the total scatter of a batch's embeddings, is small only when every clip of
a class, whichever codec made it, sits near its class's centre; what tells one codec of a class from another is part
of the within-class scatter, so minimising the ratio removes it by construction, with no adversary to fool. It is
the multi-class relative of the one-class losses of anti-spoofing (OC-Softmax, Zhang et al., IEEE SPL 2021, which
compacts bona fide speech so that unseen attacks fall outside it) and of the same-class alignment across domains of
SelfReg (Kim et al., ICCV 2021). The ratio lies in [0, 1] and does not change when the embedding is scaled, so the
tracer cannot lower it by shrinking its embeddings. Training only: nothing enters the saved model.
"""

from __future__ import annotations

import torch

from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS


def within_class_scatter_ratio(embedding: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Sum of squared distances of the labelled rows to their class's mean over the sum to the mean of all labelled
    rows; rows labelled -100 are left out. Zero (with a graph) when fewer than two labelled rows differ.

    Args:
        embedding (`torch.FloatTensor` of shape `(batch_size, hidden_size)`): one head's embeddings.
        labels (`torch.LongTensor` of shape `(batch_size,)`): each row's class for that head.
    """
    labels = labels.to(embedding.device).view(-1)
    kept = labels >= 0
    rows, classes = embedding[kept].float(), labels[kept]
    if len(rows) < 2:
        return embedding.sum() * 0.0
    total = (rows - rows.mean(0)).pow(2).sum()
    within = sum((rows[classes == label] - rows[classes == label].mean(0)).pow(2).sum()
                 for label in classes.unique())
    return within / total.clamp_min(torch.finfo(total.dtype).tiny)  # identical rows: 0 / tiny = 0


def class_compactness_loss(embeddings: dict[str, torch.Tensor], labels: dict[str, torch.Tensor | None]) -> torch.Tensor:
    """The mean over the taxonomy heads that have both an embedding and labels of `within_class_scatter_ratio`.
    Raises ValueError if no head has both."""
    tasks = [task for task in TAXONOMY_TASKS if task in embeddings and labels.get(task) is not None]
    if not tasks:
        raise ValueError(f"class compactness needs the embedding and labels of at least one of the heads "
                         f"{TAXONOMY_TASKS}; got embeddings {sorted(embeddings)} and labels "
                         f"{sorted(task for task, value in labels.items() if value is not None)}.")
    return torch.stack([within_class_scatter_ratio(embeddings[task], labels[task]) for task in tasks]).mean()
