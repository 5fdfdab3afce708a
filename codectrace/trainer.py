"""The Trainer of a training run: the official optimizer, weight averaging, the codec adversary's loss and
gradients, the paper's dropping of the last incomplete training batch; early stopping and the metrics that model
selection reads."""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch
from transformers import EarlyStoppingCallback, Trainer, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .codec_adversary import (
    SOURCE_LABELS,
    ConditionalCodecAdversary,
    average_gradients_across_processes,
    ramped_strength,
)
from .evaluation import split_logits
from .metrics import selection_score, task_metrics
from .weight_averaging import WeightAveraging


class _ClearAdversaryGradients(TrainerCallback):
    """Clears the codec adversary's gradients after every optimizer step: the Trainer clears the model's only, and
    gradients left to add up over steps would make every step follow all the past ones."""

    def __init__(self, adversary: ConditionalCodecAdversary):
        self.adversary = adversary

    def on_step_end(self, args, state, control, **kwargs):
        self.adversary.zero_grad(set_to_none=True)


class CodecTraceTrainer(Trainer):
    """Trainer with the official optimizer (torch Adam whose weight decay is an L2 penalty, not AdamW) and optional
    weight averaging: given `weight_averaging`, evaluations and checkpoints read the averaged weights while the
    optimizer steps the model's own. Given `codec_adversary` (`--codec_adversary_weight`), its loss on the heads'
    embeddings joins the training loss, the optimizer steps its weights too, and checkpoints keep them
    (`codec_adversary.pt`); the saved model never holds it."""

    ADVERSARY_FILE = "codec_adversary.pt"

    def __init__(self, *args, weight_averaging: WeightAveraging | None = None,
                 codec_adversary: ConditionalCodecAdversary | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_averaging = weight_averaging
        self.codec_adversary = codec_adversary.to(self.args.device) if codec_adversary is not None else None
        self._adversary_losses: list[float] = []
        if weight_averaging is not None:
            self.add_callback(weight_averaging)
        if codec_adversary is not None:
            self.add_callback(_ClearAdversaryGradients(self.codec_adversary))

    def _averaged(self):
        return self.weight_averaging.averaged_weights(self.model) if self.weight_averaging else nullcontext()

    def evaluate(self, *args, **kwargs):
        with self._averaged():
            return super().evaluate(*args, **kwargs)

    def _save_checkpoint(self, model, trial):
        with self._averaged():
            super()._save_checkpoint(model, trial)
        if self.codec_adversary is not None and self.args.should_save:
            folder = Path(self._get_output_dir(trial=trial)) / f"{PREFIX_CHECKPOINT_DIR}-{self.state.global_step}"
            torch.save(self.codec_adversary.state_dict(), folder / self.ADVERSARY_FILE)

    def _load_from_checkpoint(self, resume_from_checkpoint, model=None):
        super()._load_from_checkpoint(resume_from_checkpoint, model)
        saved = Path(resume_from_checkpoint) / self.ADVERSARY_FILE
        if self.codec_adversary is not None and saved.is_file():
            self.codec_adversary.load_state_dict(torch.load(saved, map_location=self.args.device, weights_only=True))

    def create_optimizer(self, model=None):
        if self.optimizer is None and self.args.optimizer_recipe == "official_adam":
            parameters = [p for p in self.model.parameters() if p.requires_grad]
            self.optimizer = torch.optim.Adam(parameters, lr=self.args.learning_rate,
                                              weight_decay=self.args.weight_decay)
        else:
            super().create_optimizer(model) if model is not None else super().create_optimizer()
        if self.codec_adversary is not None and not any(group.get("codec_adversary")
                                                        for group in self.optimizer.param_groups):
            self.optimizer.add_param_group({"params": list(self.codec_adversary.parameters()),
                                            "codec_adversary": True})
        return self.optimizer

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        """The model's loss, plus, while training with a codec adversary, its loss on the heads' embeddings (whose
        gradient pushes the model to leave the adversary guessing which training codec of a class made a clip)."""
        inputs = dict(inputs)  # the caller's batch keeps its codec column
        sources = inputs.pop(SOURCE_LABELS, None)
        if not model.training or self.codec_adversary is None or sources is None:
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        progress = self.state.global_step / max(self.state.max_steps, 1)
        adversary_loss = self.codec_adversary(outputs.embeddings, sources,
                                              ramped_strength(self.args.codec_adversary_weight, progress))
        self._adversary_losses.append(adversary_loss.item())
        loss = loss + adversary_loss
        return (loss, outputs) if return_outputs else loss

    def log(self, logs, start_time=None):
        if "loss" in logs and self._adversary_losses:  # its mean since the last training log
            logs["codec_adversary_loss"] = round(float(np.mean(self._adversary_losses)), 4)
            self._adversary_losses.clear()
        super().log(logs, start_time)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """The Trainer's step; a codec adversary's gradients are then averaged over the processes of a distributed
        run (DDP does this only for the model)."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.codec_adversary is not None:
            average_gradients_across_processes(self.codec_adversary)
        return loss

    def get_train_dataloader(self):
        # The Trainer's own switch (dataloader_drop_last) would also drop evaluation rows; the paper drops only the
        # last incomplete training batch.
        switch = self.args.dataloader_drop_last
        self.args.dataloader_drop_last = switch or self.args.train_drop_last
        try:
            return super().get_train_dataloader()
        finally:
            self.args.dataloader_drop_last = switch


def early_stopping(training_args) -> list[EarlyStoppingCallback]:
    patience = training_args.early_stopping_patience
    return [EarlyStoppingCallback(early_stopping_patience=patience)] if patience else []


def make_compute_metrics(tasks, parts: dict[str, int] | None = None):
    """The Trainer's metrics. `parts`: the evaluation rows are these named parts in this order (name -> rows); the
    selection score is then the mean of the parts' selection scores (`--selection_mean_of_parts`), each reported
    as `selection_score_<name>`."""
    def compute_metrics(prediction) -> dict[str, float]:
        logits = split_logits(prediction.predictions, tasks)
        label_ids = prediction.label_ids
        if not isinstance(label_ids, (tuple, list)):
            label_ids = (label_ids,)
        per_task = {task: task_metrics(task, logits[task], labels) for task, labels in zip(tasks, label_ids)}
        out = {"selection_score": selection_score(per_task)}
        if parts:
            bounds = np.cumsum([0, *parts.values()])
            for name, start, end in zip(parts, bounds[:-1], bounds[1:]):
                out[f"selection_score_{name}"] = selection_score(
                    {task: task_metrics(task, logits[task][start:end], labels[start:end])
                     for task, labels in zip(tasks, label_ids)})
            out["selection_score"] = float(np.mean([out[f"selection_score_{name}"] for name in parts]))
        for task, m in per_task.items():
            if task == "bin":
                out.update(bin_eer=m["eer"], bin_roc_auc=m["roc_auc"])
            else:
                out.update({f"{task}_f1_macro": m["f1_macro"], f"{task}_f1_weighted": m["f1_weighted"]})
            out[f"{task}_accuracy"] = m["accuracy"]
        return {k: (float(v) if not (isinstance(v, float) and math.isnan(v)) else -1.0) for k, v in out.items()}

    return compute_metrics
