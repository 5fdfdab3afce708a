"""CodecTrace: Wav2Vec2 + AASIST source tracing of codec-based deepfakes, as a transformers model."""

from __future__ import annotations

import inspect
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn
from transformers import PreTrainedModel, Wav2Vec2Model
from transformers import initialization as init
from transformers.utils import ModelOutput

from .aasist import (
    AasistHeads,
    AasistTrunk,
    GraphAttentionLayer,
    GraphBranch,
    HtrgGraphAttentionLayer,
    parameters_as_buffers,
)
from .configuration_codectrace import SPOOF_INDEX, TASK_LABELS, CodecTraceConfig, resolve_tasks
from .stft_phase import StftPhaseFeatureEncoder

# Attribute names of the task heads, as in the official checkpoints.
BRANCH_NAMES: dict[str, str] = {
    "bin": "binary_branch",
    "vq": "multiclass_branch_qs",
    "aux": "multiclass_branch_as",
    "dec": "multiclass_branch_ds",
}

# Models without a BIN head (M2, S_VQ, S_AUX, S_DEC) score spoofing by fusing their taxonomy heads, in this order.
SPOOF_FUSION_ORDER = ("aux", "dec", "vq")


def spoof_probability(probabilities):
    """P(spoof) per row from per-task class probabilities (numpy arrays or tensors of shape `(batch, classes)`,
    keyed by task).

    With a BIN head, its spoof probability. Without one, the CodecFake+ authors' fusion for M2: the geometric mean
    of the taxonomy heads' spoof probabilities `1 - P(real)`, `(a * d * q) ** (1/3)` with `a`, `d`, `q` those of
    AUX, DEC and VQ (a single-head model: its head's `1 - P(real)`). P(bona fide) is one minus this.
    """
    if "bin" in probabilities:
        return probabilities["bin"][:, SPOOF_INDEX]
    heads = [task for task in SPOOF_FUSION_ORDER if task in probabilities]
    if not heads:
        raise ValueError(f"no task to score spoofing from: expected some of {list(TASK_LABELS)}, got "
                         f"{list(probabilities)}.")
    product = 1.0
    for task in heads:
        product = product * (1.0 - probabilities[task][:, TASK_LABELS[task].index("real")])
    return product ** (1.0 / len(heads))


class StatsPoolingHead(nn.Module):
    """One task head of `head_type="stats_pooling"`: a linear layer over pooled (mean, std) features."""

    def __init__(self, hidden_size: int, num_classes: int):
        super().__init__()
        self.classifier = nn.Linear(2 * hidden_size, num_classes)

    def forward(self, pooled: torch.Tensor) -> torch.Tensor:
        return self.classifier(pooled)


def masked_mean_std(hidden: torch.Tensor, frame_mask: torch.Tensor | None) -> torch.Tensor:
    """(batch, frames, hidden) -> (batch, 2 * hidden): mean and (population) std over the unmasked frames."""
    if frame_mask is None:
        frame_mask = hidden.new_ones(hidden.shape[:2])
    weights = frame_mask.to(hidden.dtype).unsqueeze(-1)
    count = weights.sum(1).clamp_min(1.0)
    mean = (hidden * weights).sum(1) / count
    variance = (((hidden - mean.unsqueeze(1)) ** 2) * weights).sum(1) / count
    # The floor keeps the gradient finite where a feature is constant over the frames (e.g. a single frame).
    return torch.cat([mean, variance.clamp_min(1e-10).sqrt()], dim=-1)


class StatsPoolingHeads(nn.ModuleDict):
    """`head_type="stats_pooling"` behind the heads interface (see `CodecTraceForSourceTracing.task_heads`): the
    frame mean and standard deviation (padded frames left out), then one linear layer per task. Not in the paper."""

    min_frames = 1

    def __init__(self, config: CodecTraceConfig):
        super().__init__({task: StatsPoolingHead(config.hidden_size, len(TASK_LABELS[task])) for task in config.tasks})

    def forward(self, hidden: torch.Tensor, frame_mask: torch.Tensor | None = None):
        pooled = masked_mean_std(hidden, frame_mask)
        return {task: head(pooled) for task, head in self.items()}, {task: pooled for task in self}


@dataclass
class SourceTracingOutput(ModelOutput):
    """
    Output of [`CodecTraceForSourceTracing`].

    Args:
        loss (`torch.FloatTensor` of shape `()`, *optional*, returned when any task label is given):
            Weighted sum over tasks of the class-weighted cross-entropy (official weights: a plain mean).
        bin_logits (`torch.FloatTensor` of shape `(batch_size, 2)`, *optional*):
            Bona fide vs spoof logits, labels `[spoof, bonafide]`. `None` when the model has no BIN head.
        vq_logits (`torch.FloatTensor` of shape `(batch_size, 4)`, *optional*):
            Quantizer logits, labels `[real, mvq, svq, sq]`.
        aux_logits (`torch.FloatTensor` of shape `(batch_size, 4)`, *optional*):
            Auxiliary-objective logits, labels `[real, none, semantic, disentangle]`.
        dec_logits (`torch.FloatTensor` of shape `(batch_size, 3)`, *optional*):
            Decoder-domain logits, labels `[real, time, freq]`.
        embeddings (`dict[str, torch.FloatTensor]`, *optional*):
            Per head, the pooled embedding the head classifies: with AASIST heads the graph embedding of shape
            `(batch_size, 5 * gat_dims[1])` (before dropout); with `stats_pooling` the frame mean and standard
            deviation, `(batch_size, 2 * hidden_size)`, shared by all heads.
        task_losses (`dict[str, torch.FloatTensor]`, *optional*):
            Unweighted loss of every task whose labels were given (and, under `"frame"`, of the frame head).
        logits (`torch.FloatTensor` of shape `(batch_size, 2)`, *optional*):
            The same tensor as `bin_logits` (labels `config.id2label`), for generic `audio-classification`
            consumers such as the transformers pipeline.
        frame_logits (`torch.FloatTensor` of shape `(batch_size, frames, 2)`, *optional*):
            With `config.frame_head`, per backbone frame the logits `[spoof, bonafide]` of whether spoofed speech is
            there (`config.frame_layout` says where each frame lies). Not calibrated.
        hidden_states (`tuple(torch.FloatTensor)`, *optional*, returned with `output_hidden_states=True`):
            The backbone's hidden states, each of shape `(batch_size, frames, hidden_size)`: the projected
            features, then the output of every transformer layer (with the XLS-R layout, before the encoder's
            final layer norm, which only `last_hidden_state` passes through).
    """

    loss: torch.FloatTensor | None = None
    bin_logits: torch.FloatTensor | None = None
    vq_logits: torch.FloatTensor | None = None
    aux_logits: torch.FloatTensor | None = None
    dec_logits: torch.FloatTensor | None = None
    embeddings: dict[str, torch.FloatTensor] | None = None
    task_losses: dict[str, torch.FloatTensor] | None = None
    logits: torch.FloatTensor | None = None
    frame_logits: torch.FloatTensor | None = None
    hidden_states: tuple[torch.FloatTensor, ...] | None = None

    def logits_for(self, task: str) -> torch.FloatTensor | None:
        return getattr(self, f"{task}_logits")



class CodecTracePreTrainedModel(PreTrainedModel):
    config_class = CodecTraceConfig
    base_model_prefix = "codectrace"
    main_input_name = "input_values"
    supports_gradient_checkpointing = True
    _supports_sdpa = True

    # The loss is a mean over the batch: the Trainer must not pass `num_items_in_batch` nor rescale the loss for it.
    accepts_loss_kwargs = False

    @classmethod
    def is_custom_code(cls) -> bool:
        """False: `_init_weights` writes only through transformers' guarded init functions (which leave loaded tensors
        alone), so `from_pretrained` may take the library's standard path. On its custom-code path transformers marks
        modules without parameters of their own as initialised, which skips the Wav2Vec2 backbone's own initialisation
        of its feature projection and positional convolution when their weights are missing from a checkpoint."""
        return False

    @torch.no_grad()
    def _init_weights(self, module: nn.Module) -> None:
        """AASIST parts get the official initialisation (PyTorch's defaults, `randn`, Xavier); the Wav2Vec2 backbone, a
        sub-model, its own. Every write goes through a guarded init function, so weights and BatchNorm statistics
        that a checkpoint loaded stay as loaded."""
        if isinstance(module, GraphBranch):
            # torch.randn in the official code.
            init.normal_(module.pos_S)
            init.normal_(module.master1)
            init.normal_(module.master2)
        elif isinstance(module, GraphAttentionLayer):
            init.xavier_normal_(module.att_weight)
        elif isinstance(module, HtrgGraphAttentionLayer):
            for weight in (module.att_weight11, module.att_weight22, module.att_weight12, module.att_weightM):
                init.xavier_normal_(weight)
        elif isinstance(module, (nn.Linear, nn.Conv2d)):
            module.reset_parameters()  # PyTorch's defaults, as in the official code (guarded while transformers inits)
        elif isinstance(module, (nn.BatchNorm1d, nn.BatchNorm2d)):
            # What BatchNorm's reset_parameters does, through guarded functions (its in-place zero_ is not guarded).
            init.ones_(module.weight)
            init.zeros_(module.bias)
            init.zeros_(module.running_mean)
            init.ones_(module.running_var)
            init.zeros_(module.num_batches_tracked)
        if isinstance(module, CodecTraceForSourceTracing):
            if hasattr(module, "task_log_vars"):
                init.zeros_(module.task_log_vars)
            if hasattr(module, "layer_weights"):
                init.zeros_(module.layer_weights)  # softmax of zeros: the plain mean of all layers


class CodecTraceForSourceTracing(CodecTracePreTrainedModel):
    """
    Wav2Vec2 backbone (last hidden state) -> shared AASIST trunk -> one AASIST graph-attention branch
    per task -> logits, as in the paper. Tasks and label names come from the config (`config.tasks`,
    `config.label_names`); `config.use_weighted_layer_sum` feeds a learned mix of all backbone layers instead,
    and `config.head_type="stats_pooling"` replaces the AASIST parts by frame mean/std pooling and one linear
    layer per task.
    """

    def __init__(self, config: CodecTraceConfig):
        super().__init__(config)
        self.wav2vec2 = Wav2Vec2Model(config.backbone_config)
        if config.feature_encoder == "stft_phase":
            self.wav2vec2.feature_extractor = StftPhaseFeatureEncoder(config)
        if config.use_weighted_layer_sum:
            # Softmax weights over the projected conv features and every transformer layer.
            self.layer_weights = nn.Parameter(torch.zeros(config.backbone_config.num_hidden_layers + 1))
            if config.backbone_config.do_stable_layer_norm:
                # The mix reads the layers' outputs; the encoder's final layer norm only makes `last_hidden_state`,
                # which nothing reads then: no gradient can reach it, so its weights are kept as buffers.
                parameters_as_buffers(self.wav2vec2.encoder.layer_norm)
        if config.head_type == "aasist":
            # Registered under the official checkpoints' names (trunk, binary_branch, ...); `task_heads` views them.
            self.trunk = AasistTrunk(config.hidden_size, config.projection_dim, config.encoder_filters)
            for task in config.tasks:
                self.add_module(BRANCH_NAMES[task], GraphBranch(
                    channels=config.encoder_filters[-1][-1],
                    spectral_nodes=config.projection_dim // 3,
                    gat_dims=config.gat_dims,
                    pool_ratios=config.pool_ratios,
                    temperatures=config.temperatures,
                    num_classes=len(TASK_LABELS[task]),
                ))
        else:
            self.heads = StatsPoolingHeads(config)
        if config.frame_head:
            self.frame_head = nn.Linear(config.hidden_size, len(TASK_LABELS["bin"]))
        if config.task_weighting == "uncertainty":
            # One learned log-variance per task, in config.tasks order.
            self.task_log_vars = nn.Parameter(torch.zeros(len(config.tasks)))
        self.post_init()

    # -- construction helpers ---------------------------------------------------------------

    @classmethod
    def from_backbone(
        cls,
        backbone_name_or_path: str,
        variant: str | None = None,
        tasks: list[str] | None = None,
        backbone_overrides: dict | None = None,
        **config_kwargs,
    ) -> CodecTraceForSourceTracing:
        """
        A new model whose backbone weights come from a Wav2Vec2 checkpoint (hub id or folder, e.g.
        `facebook/wav2vec2-xls-r-300m`); the AASIST trunk and heads are freshly initialised.

        Args:
            backbone_name_or_path (`str`): Wav2Vec2 checkpoint to take the backbone from.
            variant (`str`, *optional*): paper variant (`M1`, `S_BIN`, ...); or give `tasks`.
            tasks (`list[str]`, *optional*): subset of `bin`, `vq`, `aux`, `dec`.
            backbone_overrides (`dict`, *optional*): backbone config changes (e.g. `layerdrop`).
            config_kwargs: further [`CodecTraceConfig`] arguments.
        """
        overrides = {"apply_spec_augment": False, "mask_time_prob": 0.0, "layerdrop": 0.0}
        overrides.update(backbone_overrides or {})
        backbone = Wav2Vec2Model.from_pretrained(backbone_name_or_path, **overrides)
        backbone_config = backbone.config.to_dict()
        config = CodecTraceConfig(
            backbone_config=backbone_config, tasks=list(resolve_tasks(variant, tasks)), **config_kwargs
        )
        model = cls(config)
        model.wav2vec2.load_state_dict(backbone.state_dict())
        return model

    def save_pretrained(self, save_directory, *args, **kwargs):
        # Also resolvable by AutoModelForAudioClassification (the BIN head) with trust_remote_code.
        auto_map = dict(getattr(self.config, "auto_map", None) or {})
        auto_map.setdefault("AutoModelForAudioClassification", "modeling_codectrace.CodecTraceForSourceTracing")
        self.config.auto_map = auto_map
        return super().save_pretrained(save_directory, *args, **kwargs)

    def freeze_feature_encoder(self) -> None:
        """Stops gradients into the convolutional feature encoder of the backbone."""
        self.wav2vec2.freeze_feature_encoder()

    def freeze_backbone(self) -> None:
        """Stops gradients into the whole Wav2Vec2 backbone (only the heads, and layer weights if any, train)."""
        for parameter in self.wav2vec2.parameters():
            parameter.requires_grad = False

    def branch(self, task: str) -> GraphBranch:
        if self.config.head_type != "aasist":
            raise ValueError(
                f"branch() is the AASIST graph branch; this model's head_type is {self.config.head_type!r}."
            )
        return getattr(self, BRANCH_NAMES[task])

    def task_heads(self) -> AasistHeads | StatsPoolingHeads:
        """The model's heads behind one interface: `heads(hidden, frame_mask) -> (logits, embeddings)`, each a dict
        by task, from backbone features of shape `(batch, frames, hidden)`; `heads.min_frames` is the fewest frames
        they take. Built from the registered modules on each call (nothing is stored twice)."""
        if self.config.head_type == "aasist":
            return AasistHeads(self.trunk, {task: self.branch(task) for task in self.config.tasks})
        return self.heads

    @property
    def min_input_samples(self) -> int:
        """Shortest input giving the backbone frames the heads need (3 for AASIST's 3x3 max-pool, else 1)."""
        backbone = self.config.backbone_config
        samples = self.task_heads().min_frames
        for kernel, stride in reversed(list(zip(backbone.conv_kernel, backbone.conv_stride))):
            samples = (samples - 1) * stride + kernel
        return samples

    # -- forward ----------------------------------------------------------------------------

    def forward(
        self,
        input_values: torch.Tensor,
        attention_mask: torch.Tensor | None = None,
        bin_labels: torch.Tensor | None = None,
        vq_labels: torch.Tensor | None = None,
        aux_labels: torch.Tensor | None = None,
        dec_labels: torch.Tensor | None = None,
        frame_labels: torch.Tensor | None = None,
        output_hidden_states: bool | None = None,
        return_dict: bool | None = None,
        **unexpected,
    ) -> SourceTracingOutput | tuple:
        r"""
        Args:
            input_values (`torch.FloatTensor` of shape `(batch_size, num_samples)`):
                16 kHz waveforms, usually fixed windows of `config.chunk_samples` made by
                [`CodecTraceFeatureExtractor`]. Any length of at least `min_input_samples` works.
            attention_mask (`torch.LongTensor` of shape `(batch_size, num_samples)`, *optional*):
                Passed to the backbone. The AASIST trunk pools over all frames, so prefer equal-length
                windows (the official recipe) over padding.
            bin_labels, vq_labels, aux_labels, dec_labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
                Class indices per task (see `config.label_names`); `-100` ignores a row for that task.
                The loss is computed only when at least one is given. There is no single `labels` argument: each
                task has its own column.
            frame_labels (`torch.LongTensor` of shape `(batch_size, frames)`, *optional*):
                With `config.frame_head`: per backbone frame, 0 (spoof) where its centre lies in spoofed speech, else
                1 (bona fide); `-100` ignores a frame. `config.frame_layout(num_samples)` gives the frame count.
            output_hidden_states (`bool`, *optional*, defaults to `config.output_hidden_states`):
                Also return the backbone's hidden states (`hidden_states`), e.g. to probe its layers.
            return_dict (`bool`, *optional*, defaults to `config.return_dict`):
                A [`SourceTracingOutput`] (default) or a plain tuple of its non-`None` fields.

        Any other keyword raises a `TypeError` naming the accepted ones (a misspelt label would otherwise silently
        give no loss).
        """
        if unexpected:
            raise TypeError(self._unexpected_arguments_message(unexpected))
        labels = {"bin": bin_labels, "vq": vq_labels, "aux": aux_labels, "dec": dec_labels}
        self._check_inputs(input_values, {**labels, "frame": frame_labels})
        return_dict = return_dict if return_dict is not None else self.config.return_dict
        if output_hidden_states is None:
            output_hidden_states = self.config.output_hidden_states
        hidden, frame_mask, backbone_states = self._backbone_features(input_values, attention_mask,
                                                                      output_hidden_states)
        logits, embeddings = self.task_heads()(hidden, frame_mask)
        frame_logits = self.frame_head(hidden) if self.config.frame_head else None
        task_losses = self._task_losses(logits, labels)  # on the logits as trained
        loss = self._combined_loss(task_losses) if task_losses else None
        if frame_labels is not None:
            task_losses["frame"] = self._frame_loss(frame_logits, frame_labels, frame_mask)
            loss = self.config.frame_loss_weight * task_losses["frame"] + (0.0 if loss is None else loss)
        logits = self._calibrated(logits)
        output = SourceTracingOutput(
            loss=loss,
            bin_logits=logits.get("bin"),
            vq_logits=logits.get("vq"),
            aux_logits=logits.get("aux"),
            dec_logits=logits.get("dec"),
            embeddings=embeddings,
            task_losses=task_losses or None,
            logits=logits.get("bin"),
            frame_logits=frame_logits,
            hidden_states=backbone_states if output_hidden_states else None,
        )
        return output if return_dict else output.to_tuple()

    def _unexpected_arguments_message(self, unexpected: dict) -> str:
        accepted = [name for name in inspect.signature(type(self).forward).parameters
                    if name not in ("self", "unexpected")]
        message = (f"{type(self).__name__}.forward() got unexpected keyword argument(s) {sorted(unexpected)}; "
                   f"accepted: {', '.join(accepted)}.")
        if "labels" in unexpected:
            message += (" There is no single `labels`: give each task's class indices as "
                        f"{', '.join(f'{task}_labels=' for task in self.config.tasks)} (this model's tasks).")
        return message

    def _check_inputs(self, input_values: torch.Tensor, labels: dict) -> None:
        if input_values.dim() != 2:
            raise ValueError(
                f"input_values must have shape (batch_size, num_samples); got {tuple(input_values.shape)}."
            )
        if input_values.size(-1) < self.min_input_samples:
            raise ValueError(
                f"input is {input_values.size(-1)} samples long; the model needs at least "
                f"{self.min_input_samples} samples ({self.min_input_samples / self.config.sampling_rate:.3f} s)."
            )
        stray = [t for t, value in labels.items()
                 if value is not None and t not in self.config.tasks and t != "frame"]
        if labels.get("frame") is not None and not self.config.frame_head:
            raise ValueError("frame_labels given but this model has no frame head (config.frame_head is False).")
        if stray:
            raise ValueError(
                f"labels given for task(s) {stray} but this model only has heads for {self.config.tasks}."
            )

    def _backbone_features(self, input_values, attention_mask, output_hidden_states: bool = False):
        """(batch, frames, hidden) features for the heads (the last layer, or the learned mix of all layers), the
        frame mask of padded input (None without an attention mask), and the backbone's hidden states (None unless
        asked for or mixed)."""
        output = self.wav2vec2(
            input_values, attention_mask=attention_mask,
            output_hidden_states=output_hidden_states or self.config.use_weighted_layer_sum,
        )
        if self.config.use_weighted_layer_sum:
            stacked = torch.stack(output.hidden_states, dim=0)
            weights = F.softmax(self.layer_weights, dim=0).to(stacked.dtype)
            hidden = (stacked * weights.view(-1, 1, 1, 1)).sum(dim=0)
        else:
            hidden = output.last_hidden_state
        frame_mask = None
        if attention_mask is not None:
            frame_mask = self.wav2vec2._get_feature_vector_attention_mask(hidden.shape[1], attention_mask)
        return hidden, frame_mask, output.hidden_states

    def _calibrated(self, logits: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """Logits divided by each head's calibration temperature (`config.calibration_temperatures`), if any."""
        temperatures = self.config.calibration_temperatures or {}
        return {task: values / temperatures[task] if task in temperatures else values
                for task, values in logits.items()}

    def _task_losses(self, logits: dict, labels: dict) -> dict[str, torch.Tensor]:
        """Class-weighted cross-entropy of every task whose labels were given (-100 rows ignored)."""
        task_losses = {}
        for task in self.config.tasks:
            if labels[task] is None:
                continue
            target = labels[task].to(logits[task].device).long().view(-1)
            if (target == -100).all():
                # Every row ignored: a zero that keeps the graph (cross-entropy would return NaN).
                task_losses[task] = logits[task].sum() * 0.0
            else:
                task_losses[task] = F.cross_entropy(
                    logits[task].float(),
                    target,
                    weight=torch.tensor(self.config.class_weights[task], device=logits[task].device),
                    ignore_index=-100,
                )
        return task_losses

    def _frame_loss(self, frame_logits: torch.Tensor, frame_labels: torch.Tensor,
                    frame_mask: torch.Tensor | None) -> torch.Tensor:
        """The frame head's cross-entropy with the BIN class weights, over labelled (and unpadded) frames."""
        target = frame_labels.to(frame_logits.device).long()
        if target.shape != frame_logits.shape[:2]:
            raise ValueError(f"frame_labels must have shape (batch_size, frames) = {tuple(frame_logits.shape[:2])} "
                             f"for this input (config.frame_layout gives the frames); got {tuple(target.shape)}.")
        if frame_mask is not None:
            target = target.masked_fill(~frame_mask.bool(), -100)
        if (target == -100).all():
            return frame_logits.sum() * 0.0
        return F.cross_entropy(frame_logits.float().flatten(0, 1), target.flatten(),
                               weight=torch.tensor(self.config.class_weights["bin"], device=frame_logits.device),
                               ignore_index=-100)

    def _combined_loss(self, task_losses: dict[str, torch.Tensor]) -> torch.Tensor:
        """Fixed task weights (official: the plain mean), or learned uncertainty weighting."""
        if self.config.task_weighting == "uncertainty":
            log_vars = {t: self.task_log_vars[i] for i, t in enumerate(self.config.tasks)}
            loss = sum(torch.exp(-log_vars[t]) * task_losses[t] + log_vars[t] for t in task_losses)
            return loss / len(self.config.tasks)
        return sum(self.config.task_weight(t) * task_losses[t] for t in task_losses)
