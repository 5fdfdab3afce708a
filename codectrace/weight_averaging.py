"""An exponential moving average of a model's weights along training (`--weight_averaging_decay`).

Averaged weights sit in wider optima than the weights of any one step and tend to carry better to data unlike the
training data (Izmailov et al., UAI 2018; Cha et al., SWAD, NeurIPS 2021; Arpit et al., NeurIPS 2022). The
Trainer evaluates and saves the average (`CodecTraceTrainer`), so model selection, early stopping and the saved
model all see it, while the optimizer keeps stepping the raw weights.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
from torch import nn
from transformers import TrainerCallback


def warmed_up_decay(decay: float, updates: int) -> float:
    """The decay at the `updates`-th update: min(decay, (1 + t) / (10 + t)), so that the first updates follow the
    weights closely instead of averaging them with the initial ones."""
    return min(decay, (1.0 + updates) / (10.0 + updates))


class WeightAveraging(TrainerCallback):
    """Keeps the moving average of every floating-point parameter and buffer of the model it is given, updated after
    each optimizer step; `averaged_weights(model)` puts the average in the model for the duration of a block.

    decay (`float`): how much of the average is kept at each update, in [0, 1); 0.998 averages over ~500 steps.
    """

    def __init__(self, decay: float):
        if not 0.0 <= decay < 1.0:  # named as the training option, whose check this is too
            raise ValueError(f"weight_averaging_decay must be in [0, 1) (0 = off; 0.998 averages over ~500 steps), "
                             f"got {decay}")
        self.decay = decay
        self.updates = 0
        self.average: dict[str, torch.Tensor] | None = None
        self.training = False  # the average stands in for the weights only while training runs

    @staticmethod
    def _tracked(model: nn.Module) -> dict[str, torch.Tensor]:
        return {name: tensor for name, tensor in model.state_dict(keep_vars=True).items()
                if tensor.is_floating_point()}

    @classmethod
    @torch.no_grad()
    def _copy_into(cls, model: nn.Module, weights: dict[str, torch.Tensor]) -> None:
        """Copies `weights` into the model's tensors in place (the tensors, and optimizer state, stay the same)."""
        for name, tensor in cls._tracked(model).items():
            tensor.copy_(weights[name])

    def start(self, model: nn.Module) -> None:
        """Starts the average at the model's current weights."""
        self.average = {name: tensor.detach().clone() for name, tensor in self._tracked(model).items()}
        self.updates = 0
        self.training = True

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        if self.average is None:
            self.start(model)
            return
        decay = warmed_up_decay(self.decay, self.updates)
        for name, tensor in self._tracked(model).items():
            self.average[name].lerp_(tensor.detach(), 1.0 - decay)
        self.updates += 1

    @contextmanager
    def averaged_weights(self, model: nn.Module):
        """Within the block the model holds the averaged weights (in place, so optimizer state stays attached);
        afterwards its own weights are back, bit for bit. Does nothing outside training or before any update."""
        if not self.training or self.average is None:
            yield model
            return
        own = {name: tensor.detach().clone() for name, tensor in self._tracked(model).items()}
        self._copy_into(model, self.average)
        try:
            yield model
        finally:
            self._copy_into(model, own)

    # -- TrainerCallback ---------------------------------------------------------------------------

    def on_train_begin(self, args, state, control, model=None, **kwargs):
        # A resumed run starts the average at the checkpoint's weights, which are the average saved then.
        self.start(model)

    def on_step_end(self, args, state, control, model=None, **kwargs):
        self.update(model)

    def on_train_end(self, args, state, control, model=None, **kwargs):
        # With load_best_model_at_end the Trainer has already put the best saved (averaged) weights in the model;
        # otherwise the model ends with the average, as every evaluation and checkpoint saw it.
        if not (args.load_best_model_at_end and state.best_model_checkpoint) and self.average is not None:
            self._copy_into(model, self.average)
        self.training = False
