"""Fine-tuning CodecTrace with the Hugging Face Trainer: arguments and presets, the model, the Trainer with the
official optimizer, metrics for model selection, evaluation after training, and the output folder (model, card,
results). `train.py` is its command line; `run(argv)` is the same from Python.
"""

from __future__ import annotations

import logging
import math
import os
from contextlib import nullcontext
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from transformers import (
    EarlyStoppingCallback,
    HfArgumentParser,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, get_last_checkpoint

import modeling_codectrace as mc
from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS

from .calibration import fit_temperatures
from .class_compactness import class_compactness_loss
from .codec_adversary import (
    ADVERSARY_OBJECTIVES,
    SOURCE_LABELS,
    CodecVocabulary,
    ConditionalCodecAdversary,
    average_gradients_across_processes,
    embedding_sizes,
    ramped_strength,
)
from .data import (
    AUGMENTATIONS,
    CROP_MODES,
    TRAINING_SAMPLINGS,
    WaveformTransform,
    collate,
    label_columns,
    training_sampling,
)
from .errors import check_writable_folder
from .evaluation import (
    EVAL_CONFIGS,
    labels_by_task,
    predict_logits,
    predict_sets,
    results_table,
    save_evaluations,
    split_logits,
)
from .files import write_json, write_text
from .hub import push_model_folder, save_model_folder
from .metrics import selection_score, task_metrics
from .model_card import render_model_card
from .presets import AASIST_SIZES, BACKBONE_SIZES, DEMO_DATASET_DIR, TRAINING_PRESETS, backbone_config
from .resolve import load_split, resolve_model
from .spoof_versions import SPOOF_VERSIONS, SpoofVersionSampler, load_every_sampling
from .unknown_source import (
    SCORES,
    UnknownSourceScorer,
    evaluate_unknown_source,
    fit_unknown_source,
    score_dataset,
    unknown_rows,
    unknown_source_table,
)
from .weight_averaging import WeightAveraging

logger = logging.getLogger("codectrace.train")

# What the official preset still does differently from the authors' code (docs/official_recipe.md says why).
OFFICIAL_DEVIATIONS = ("model selection on the validation split; clean validation audio; macro F1 beside weighted F1; "
                       "RawBoost's FIR delay removed exactly (theirs is one sample early)")


@dataclass
class ModelArguments:
    variant: str = field(default="M1", metadata={"help": "paper variant: S_BIN S_VQ S_AUX S_DEC D_VQ D_AUX D_DEC "
                                                           "M1 M2"})
    backbone: str | None = field(
        default=None, metadata={"help": "Wav2Vec2 checkpoint (hub id or folder) for the backbone, e.g. "
                                        "facebook/wav2vec2-xls-r-300m; without it the backbone starts random"})
    backbone_size: str = field(default="xlsr-300m", metadata={"help": f"random-backbone shape: {list(BACKBONE_SIZES)}"})
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "continue from a CodecTrace model (folder or hub id) instead"})
    model_revision: str | None = field(default=None, metadata={"help": "revision of --model_name_or_path"})
    aasist_size: str = field(default="official", metadata={"help": f"AASIST widths: {' | '.join(AASIST_SIZES)}"})
    head_type: str = field(default="aasist", metadata={"help": "aasist (the paper) | stats_pooling (frame mean/std "
                                                                "+ a linear layer per task; the CPU demo)"})
    use_weighted_layer_sum: bool = field(
        default=False, metadata={"help": "heads read a learned mix of all backbone layers (paper: the last layer)"})
    feature_encoder: str = field(
        default="conv", metadata={"help": "conv (the paper: Wav2Vec2's CNN) | stft_phase (fixed STFT features, see "
                                          "--stft_features, then one learned conv; needs a 2-conv backbone such as "
                                          "stft-tiny; the CPU demo)"})
    stft_features: list[str] = field(
        default_factory=lambda: ["log_power", "phase_deviation"],
        metadata={"help": "with --feature_encoder stft_phase, one or more of: log_power phase_deviation "
                          "weighted_phase_deviation"})
    stft_n_fft: int | None = field(
        default=None, metadata={"help": "with --feature_encoder stft_phase, the FFT size (default: the backbone "
                                        "size's first conv kernel)"})
    stft_hop_length: int | None = field(
        default=None, metadata={"help": "with --feature_encoder stft_phase, the hop in samples (default: the "
                                        "backbone size's first conv stride)"})
    stft_extra_n_fft: list[int] | None = field(
        default=None, metadata={"help": "with --feature_encoder stft_phase, further smaller FFT sizes read on the same "
                                        "frames (a multi-resolution front end; default: none)"})
    mask_time_prob: float = field(
        default=0.0, metadata={"help": "SpecAugment during training: share of the backbone's frames masked (Wav2Vec2's "
                                       "mask_time_prob, spans of mask_time_length frames; 0 = off, the paper)"})
    mask_feature_prob: float = field(
        default=0.0, metadata={"help": "SpecAugment during training: share of the backbone's feature channels masked "
                                       "(Wav2Vec2's mask_feature_prob; 0 = off, the paper)"})
    freeze_feature_encoder: bool = field(default=False, metadata={"help": "freeze the backbone's CNN"})
    freeze_backbone: bool = field(default=False, metadata={"help": "freeze the whole backbone"})
    task_weighting: str = field(default="fixed", metadata={"help": "fixed (official mean) | uncertainty (learned)"})
    chunk_samples: int = field(default=64600, metadata={"help": "window length in samples (official 64600)"})


@dataclass
class DataArguments:
    dataset: str | None = field(
        default=None, metadata={"help": "built CodecFake+ folder or hub id; default: CodecFake-mini (built offline)"})
    dataset_config: str | None = field(
        default=None, metadata={"help": "training sampling: aux | vq | dec; default: the one the variant trains on "
                                        "in the paper (vq for S_VQ/D_VQ, dec for S_DEC/D_DEC, aux for the rest)"})
    dataset_revision: str | None = field(default=None)
    eval_configs: list[str] = field(default_factory=lambda: list(EVAL_CONFIGS),
                                    metadata={"help": "evaluation configs run after training"})
    crop: str = field(default="first", metadata={"help": f"training window: {CROP_MODES} (official: first)"})
    augment: str = field(default="rawboost5", metadata={"help": f"training augmentation: {AUGMENTATIONS}"})
    spoof_versions: str = field(
        default="config",
        metadata={"help": "config: train on the spoofed versions --dataset_config's sampling pairs with the bona fide "
                          "utterances (the paper) | resample: every epoch, one of the three samplings' versions per "
                          "utterance, drawn at random (same epoch size; every codec heard on all its utterances)"})
    selection_set: str = field(
        default="validation",
        metadata={"help": "what model selection and early stopping read (calibration: see --calibrate): validation "
                          "(the training config's validation split: validation speakers, training codecs; the paper) "
                          "| val_codecs (CodecFake-mini: validation speakers re-synthesised by validation codecs that "
                          "no training row uses, so selection sees generalisation) | validation+val_codecs (both; "
                          "the demo)"})
    selection_mean_of_parts: bool = field(
        default=False, metadata={"help": "with --selection_set validation+val_codecs, the selection score is the mean "
                                         "of the two kinds' selection scores (each counts the same, whatever its "
                                         "size) instead of the score of their rows pooled"})
    max_train_samples: int | None = field(default=None)
    max_eval_samples: int | None = field(default=None)
    demo_utterances: int = field(default=30, metadata={"help": "utterances per speaker of CodecFake-mini (demo)"})


@dataclass
class CodecTraceTrainingArguments(TrainingArguments):
    """TrainingArguments with the official recipe as defaults, plus the optimizer recipe switch."""

    output_dir: str = field(default="outputs/codectrace-M1")
    preset: str = field(default="official", metadata={"help": "official | demo (defaults; flags override)"})
    optimizer_recipe: str = field(
        default="official_adam",
        metadata={"help": "official_adam: torch Adam with L2 weight decay (the paper); trainer: --optim, e.g. "
                          "adamw_torch with --lr_scheduler_type cosine"})
    learning_rate: float = field(default=1e-6)
    # The official loop never clips gradients and drops the last incomplete training batch.
    max_grad_norm: float = field(default=0.0, metadata={"help": "gradient clipping norm; 0 = off (the paper)"})
    train_drop_last: bool = field(
        default=True, metadata={"help": "drop the last incomplete training batch (the paper); evaluation and "
                                        "prediction always see every row (unlike --dataloader_drop_last)"})
    weight_decay: float = field(default=1e-4)
    per_device_train_batch_size: int = field(default=8)
    per_device_eval_batch_size: int = field(default=8)
    num_train_epochs: float = field(default=20.0)
    seed: int = field(default=1234)
    lr_scheduler_type: str = field(default="constant")
    eval_strategy: str = field(default="epoch")
    save_strategy: str = field(default="epoch")
    logging_strategy: str = field(default="steps")
    logging_steps: float = field(default=20)
    load_best_model_at_end: bool = field(default=True)
    metric_for_best_model: str = field(
        default="selection_score",
        metadata={"help": "selection_score = mean over the model's tasks of (1 - BIN EER) and macro F1"})
    greater_is_better: bool = field(default=True)
    save_total_limit: int = field(default=2)
    # A resumed run keeps its early-stopping count, so it stops where an uninterrupted one would.
    restore_callback_states_from_checkpoint: bool = field(default=True)
    unknown_source: bool = field(
        default=False, metadata={"help": "after training, fit the unknown-source scorer (per taxonomy head, how far a "
                                         "clip's embedding is from the training data; threshold on the validation "
                                         "split, docs/trust.md) and save it beside the model. Off in the paper "
                                         "recipe"})
    unknown_source_score: str = field(
        default="knn", metadata={"help": "knn: cosine distance to the 10th nearest training embedding (chosen on the "
                                         "validation codecs); mahalanobis: distance to the nearest class mean",
                                 "choices": list(SCORES)})
    calibrate: bool = field(
        default=False, metadata={"help": "after training, fit one temperature per head on the validation split and "
                                         "store it in the model's config (calibrated probabilities; argmax, F1 and "
                                         "EER unchanged); with --unknown_source and validation codecs, also one for "
                                         "clips called unknown, fitted on the validation codecs. Off in the paper "
                                         "recipe"})
    early_stopping_patience: int | None = field(
        default=None,
        metadata={"help": "stop after this many evaluations without a better metric_for_best_model; 0 or unset: "
                          "train every epoch (the paper). The best checkpoint is the model either way; a resumed "
                          "run keeps its checkpoint's count and patience"})
    sam_rho: float = field(
        default=0.0, metadata={"help": "sharpness-aware minimisation (Foret et al., ICLR 2021): each step takes the "
                                       "gradient at weights moved by this radius up the loss; 0 = off (the paper). "
                                       "Two forward and backward passes per step"})
    weight_averaging_decay: float = field(
        default=0.0, metadata={"help": "keep an exponential moving average of the weights with this decay per step "
                                       "(e.g. 0.998, ~500 steps); evaluations, model selection, early stopping and "
                                       "the saved model read the average. 0 = off (the paper)"})
    codec_adversary_weight: float = field(
        default=0.0, metadata={"help": "conditional codec-adversarial training: per taxonomy head, an adversary names "
                                       "each spoofed row's training codec among the codecs of its class, and the "
                                       "tracer learns to hide which one it was (see --codec_adversary_objective) "
                                       "with this strength, ramped up over training as in DANN "
                                       "(docs/generalisation.md). Training only; the logged loss includes the "
                                       "adversary's, also logged alone as codec_adversary_loss; 0 = off (the paper)"})
    codec_adversary_objective: str = field(
        default="reversal", metadata={"help": "with --codec_adversary_weight, how the tracer learns to hide the codec: "
                                              "reversal (DANN: the adversary's loss, gradient reversed; unbounded) "
                                              "| confusion (make the frozen adversary's guess uniform over the "
                                              "class's codecs; bounded)",
                                      "choices": list(ADVERSARY_OBJECTIVES)})
    class_compactness_weight: float = field(
        default=0.0, metadata={"help": "per taxonomy head, add this weight times the batch's within-class over total "
                                       "scatter of the head's embeddings (Fisher's criterion: every clip of a class, "
                                       "whichever codec made it, near its class's centre; docs/generalisation.md). "
                                       "Training only; logged alone as class_compactness_loss; 0 = off (the paper)"})
    remove_unused_columns: bool = field(default=False)
    dataloader_num_workers: int = field(default=2)
    dataloader_pin_memory: bool = field(default=torch.cuda.is_available())
    resume: str = field(default="auto", metadata={"help": "auto: continue from the last checkpoint in output_dir"})


def parse_arguments(argv: list[str]) -> tuple[ModelArguments, DataArguments, CodecTraceTrainingArguments]:
    parser = HfArgumentParser((ModelArguments, DataArguments, CodecTraceTrainingArguments))
    preset = "demo" if not argv else "official"
    if "--preset" in argv:
        preset = argv[argv.index("--preset") + 1]
    for arg in argv:
        if arg.startswith("--preset="):
            preset = arg.split("=", 1)[1]
    if preset not in TRAINING_PRESETS:
        parser.error(f"--preset must be one of {list(TRAINING_PRESETS)}, got {preset!r}")
    parser.set_defaults(preset=preset, **TRAINING_PRESETS[preset])
    model_args, data_args, training_args = parser.parse_args_into_dataclasses(args=argv)
    _validate(model_args, data_args, parser)
    _validate_early_stopping(training_args, argv, parser)
    _validate_step_options(training_args, parser)
    training_args.label_names = label_columns(mc.CodecTraceConfig(variant=model_args.variant).tasks)
    return model_args, data_args, training_args


def _validate(model_args: ModelArguments, data_args: DataArguments, parser) -> None:
    if model_args.variant.upper() not in mc.VARIANTS:
        parser.error(f"--variant must be one of {list(mc.VARIANTS)}, got {model_args.variant!r}")
    model_args.variant = model_args.variant.upper()
    if model_args.backbone_size not in BACKBONE_SIZES:
        parser.error(f"--backbone_size must be one of {list(BACKBONE_SIZES)}")
    if model_args.aasist_size not in AASIST_SIZES:
        parser.error(f"--aasist_size must be one of {list(AASIST_SIZES)}")
    try:  # the model options are the config's: its own checks answer, as a usage error before anything is built
        mc.CodecTraceConfig(backbone_config=backbone_config(model_args.backbone_size), **config_options(model_args))
    except ValueError as error:
        parser.error(str(error))
    if not (0 <= model_args.mask_time_prob < 1 and 0 <= model_args.mask_feature_prob < 1):
        parser.error(f"--mask_time_prob and --mask_feature_prob must be in [0, 1), got {model_args.mask_time_prob} "
                     f"and {model_args.mask_feature_prob}")
    if data_args.crop not in CROP_MODES or data_args.augment not in AUGMENTATIONS:
        parser.error(f"--crop must be one of {CROP_MODES} and --augment one of {AUGMENTATIONS}")
    if data_args.spoof_versions not in SPOOF_VERSIONS:
        parser.error(f"--spoof_versions must be one of {list(SPOOF_VERSIONS)}, got {data_args.spoof_versions!r}")
    if data_args.selection_set not in SELECTION_SETS:
        parser.error(f"--selection_set must be one of {list(SELECTION_SETS)}, got {data_args.selection_set!r}")
    if data_args.dataset_config is None:
        data_args.dataset_config = training_sampling(model_args.variant)
    if data_args.dataset_config not in TRAINING_SAMPLINGS:
        parser.error(f"--dataset_config must be one of {list(TRAINING_SAMPLINGS)} (the training samplings), got "
                     f"{data_args.dataset_config!r}")


def _validate_step_options(training_args: CodecTraceTrainingArguments, parser) -> None:
    try:  # the averaging's own check answers, as a usage error before anything is built
        WeightAveraging(training_args.weight_averaging_decay)
    except ValueError as error:
        parser.error(f"--{error}")
    if training_args.codec_adversary_weight < 0:
        parser.error(f"--codec_adversary_weight is a strength (0 = off), got {training_args.codec_adversary_weight}")
    if training_args.class_compactness_weight < 0:
        parser.error(f"--class_compactness_weight is a weight (0 = off), got {training_args.class_compactness_weight}")
    if training_args.sam_rho < 0:
        parser.error(f"--sam_rho is a radius (0 = off), got {training_args.sam_rho}")
    if training_args.sam_rho and (training_args.gradient_accumulation_steps > 1 or training_args.fp16):
        parser.error("--sam_rho works with one batch per optimizer step and without fp16 loss scaling: drop "
                     "--gradient_accumulation_steps or --fp16 (bf16 is fine)")


def _validate_early_stopping(training_args: CodecTraceTrainingArguments, argv: list[str], parser) -> None:
    """Early stopping needs best-model selection; a preset's patience gives way when evaluation is switched off."""
    patience = training_args.early_stopping_patience
    if not patience:
        return
    if patience < 0:
        parser.error(f"--early_stopping_patience counts evaluations (0 = off), got {patience}")
    if training_args.eval_strategy != "no" and training_args.load_best_model_at_end:
        return
    if any(arg.split("=", 1)[0] == "--early_stopping_patience" for arg in argv):
        parser.error("--early_stopping_patience needs evaluation (--eval_strategy epoch or steps) with "
                     "--load_best_model_at_end True")
    training_args.early_stopping_patience = None  # the preset's default, without evaluation to stop on


# -- data ------------------------------------------------------------------------------------------------


def with_windows(ds, tasks, chunk_samples: int, crop: str = "first", augment: str = "none", seed: int = 1234,
                 codecs: CodecVocabulary | None = None):
    """Decodes and windows rows on access (in DataLoader workers); augmentation only where asked; with `codecs`,
    each row's codec index for the codec adversary."""
    return ds.with_transform(WaveformTransform(tuple(tasks), chunk_samples, crop, augment, seed, codecs=codecs))


# -- model -----------------------------------------------------------------------------------------------


def config_options(model_args: ModelArguments) -> dict:
    """The `CodecTraceConfig` arguments that the model options set (all but the backbone)."""
    front_end = {}
    if model_args.feature_encoder == "stft_phase":
        front_end = dict(stft_n_fft=model_args.stft_n_fft, stft_hop_length=model_args.stft_hop_length,
                         stft_extra_n_fft=model_args.stft_extra_n_fft)
    return dict(variant=model_args.variant, chunk_samples=model_args.chunk_samples,
                task_weighting=model_args.task_weighting, head_type=model_args.head_type,
                use_weighted_layer_sum=model_args.use_weighted_layer_sum, feature_encoder=model_args.feature_encoder,
                stft_features=model_args.stft_features, **front_end, **AASIST_SIZES[model_args.aasist_size])


def spec_augment(model_args: ModelArguments) -> dict:
    """Backbone config changes that switch Wav2Vec2's SpecAugment on (training mode only); empty when it is off."""
    if model_args.mask_time_prob <= 0 and model_args.mask_feature_prob <= 0:
        return {}
    return dict(apply_spec_augment=True, mask_time_prob=model_args.mask_time_prob,
                mask_feature_prob=model_args.mask_feature_prob)


def build_model(model_args: ModelArguments) -> mc.CodecTraceForSourceTracing:
    common = config_options(model_args)
    if model_args.model_name_or_path:
        model = mc.CodecTraceForSourceTracing.from_pretrained(
            resolve_model(model_args.model_name_or_path, model_args.model_revision), revision=model_args.model_revision)
        if model.config.variant != model_args.variant:
            logger.warning("continuing a %s model; --variant %s is ignored", model.config.variant, model_args.variant)
    elif model_args.backbone:
        model = mc.CodecTraceForSourceTracing.from_backbone(model_args.backbone, backbone_overrides=spec_augment(
            model_args), **common)
    else:
        model = mc.CodecTraceForSourceTracing(mc.CodecTraceConfig(
            backbone_config=backbone_config(model_args.backbone_size, **spec_augment(model_args)), **common))
    if model_args.freeze_backbone:
        model.freeze_backbone()
    elif model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model


# -- trainer ---------------------------------------------------------------------------------------------


class _ClearAdversaryGradients(TrainerCallback):
    """Clears the codec adversary's gradients after every optimizer step: the Trainer clears the model's only, and
    gradients left to add up over steps would make every step follow all the past ones."""

    def __init__(self, adversary: ConditionalCodecAdversary):
        self.adversary = adversary

    def on_step_end(self, args, state, control, **kwargs):
        self.adversary.zero_grad(set_to_none=True)


class CodecTraceTrainer(Trainer):
    """Trainer with the official optimizer (torch Adam whose weight decay is an L2 penalty, not AdamW), optional
    sharpness-aware steps, and optional weight averaging: given `weight_averaging`, evaluations and checkpoints
    read the averaged weights while the optimizer steps the model's own. Given `train_sampler`
    (`--spoof_versions resample`), training reads rows in its order instead of the Trainer's shuffle. Given
    `codec_adversary` (`--codec_adversary_weight`), its loss on the heads' embeddings joins the training loss, the
    optimizer steps its weights too, and checkpoints keep them (`codec_adversary.pt`); the saved model never holds
    it."""

    ADVERSARY_FILE = "codec_adversary.pt"

    def __init__(self, *args, weight_averaging: WeightAveraging | None = None,
                 train_sampler: SpoofVersionSampler | None = None,
                 codec_adversary: ConditionalCodecAdversary | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.weight_averaging = weight_averaging
        self.train_sampler = train_sampler
        self.codec_adversary = codec_adversary.to(self.args.device) if codec_adversary is not None else None
        self._logged_losses: dict[str, list[float]] = {"codec_adversary_loss": [], "class_compactness_loss": []}
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
        """The model's loss, plus, while training, the embedding terms asked for: a codec adversary's loss on the
        heads' embeddings (whose gradient, by the adversary's objective, pushes the model to hide the codec) and
        the weighted class compactness."""
        inputs = dict(inputs)  # SAM reads the same batch twice: the codec column must stay in it
        sources = inputs.pop(SOURCE_LABELS, None)
        adversary = self.codec_adversary is not None and sources is not None
        if not model.training or not (adversary or self.args.class_compactness_weight):
            return super().compute_loss(model, inputs, return_outputs, num_items_in_batch)
        loss, outputs = super().compute_loss(model, inputs, True, num_items_in_batch)
        if adversary:
            progress = self.state.global_step / max(self.state.max_steps, 1)
            loss = loss + self._logged("codec_adversary_loss", self.codec_adversary(
                outputs.embeddings, sources, ramped_strength(self.args.codec_adversary_weight, progress)))
        if self.args.class_compactness_weight:
            labels = {task: inputs.get(column) for task, column in zip(TAXONOMY_TASKS, label_columns(TAXONOMY_TASKS))}
            compactness = self._logged("class_compactness_loss", class_compactness_loss(outputs.embeddings, labels))
            loss = loss + self.args.class_compactness_weight * compactness
        return (loss, outputs) if return_outputs else loss

    def _logged(self, name: str, loss: torch.Tensor) -> torch.Tensor:
        self._logged_losses[name].append(loss.item())
        return loss

    def log(self, logs, start_time=None):
        if "loss" in logs:  # each extra term's mean since the last training log, unweighted
            for name, values in self._logged_losses.items():
                if values:
                    logs[name] = round(float(np.mean(values)), 4)
                    values.clear()
        super().log(logs, start_time)

    def training_step(self, model, inputs, num_items_in_batch=None):
        """With `--sam_rho`, sharpness-aware minimisation: the gradient at the weights, a step of length `sam_rho`
        along it, the gradient there (what the optimizer then applies), and the weights put back. Returns the loss
        at the weights themselves. A codec adversary's gradients are averaged over the processes of a distributed
        run (DDP does this only for the model)."""
        loss = super().training_step(model, inputs, num_items_in_batch)
        if self.args.sam_rho:
            moved = self._ascend(model, self.args.sam_rho)
            for module in (model, self.codec_adversary):
                if module is not None:
                    module.zero_grad(set_to_none=True)
            super().training_step(model, inputs, num_items_in_batch)
            with torch.no_grad():
                for parameter, step in moved:
                    parameter.sub_(step)
        if self.codec_adversary is not None:
            average_gradients_across_processes(self.codec_adversary)
        return loss

    @staticmethod
    def _ascend(model, radius: float) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Moves every parameter with a gradient by `radius` times the gradient's direction; returns the steps."""
        with torch.no_grad():
            parameters = [p for p in model.parameters() if p.grad is not None]
            if not parameters:
                return []
            norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(p.grad) for p in parameters]))
            steps = [(p, p.grad * (radius / (norm + 1e-12))) for p in parameters]
            for parameter, step in steps:
                parameter.add_(step)
        return steps

    def _get_train_sampler(self, train_dataset=None):
        return self.train_sampler if self.train_sampler is not None else super()._get_train_sampler(train_dataset)

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


# --selection_set -> how cards and tables name the data model selection reads.
SELECTION_SETS = {"validation": "the validation split (validation speakers, training codecs)",
                  "val_codecs": "the validation codecs (validation speakers, codecs never trained on)",
                  "validation+val_codecs": "the validation speakers with the training codecs and with the validation "
                                           "codecs together"}


def validation_sets(data_args, validation) -> dict:
    """The validation data by evaluation name: the training config's validation split (`in_domain_validation`) and,
    when `--selection_set` reads them, the validation codecs (`val_codecs`)."""
    if data_args.selection_set == "validation":
        return {"in_domain_validation": validation}
    try:
        unseen = load_split(data_args.dataset, "val_codecs", "validation", data_args.dataset_revision,
                            data_args.max_eval_samples)
    except ValueError:  # the training splits loaded, so the dataset lacks this config
        raise ValueError(f"--selection_set {data_args.selection_set} needs the dataset's 'val_codecs' config, which "
                         f"{data_args.dataset} lacks (CodecFake-mini has it; CodecFake+ has no validation codecs): "
                         "pass --selection_set validation for this dataset.") from None
    return {"in_domain_validation": validation, "val_codecs": unseen}


# The two kinds of validation data, in the order `selection_split` concatenates them (`selection_parts` relies on it).
BOTH_VALIDATION_KINDS = ("in_domain_validation", "val_codecs")


def averages_parts(data_args) -> bool:
    """Whether the selection score is the mean of both kinds of validation data (`--selection_mean_of_parts`)."""
    return data_args.selection_mean_of_parts and data_args.selection_set == "validation+val_codecs"


def selection_parts(data_args, parts: dict) -> dict[str, int] | None:
    """When `averages_parts`, the two kinds of validation data's row counts, in `selection_split` order."""
    if not averages_parts(data_args):
        return None
    return {name: len(parts[name]) for name in BOTH_VALIDATION_KINDS}


def selection_split(data_args, parts: dict):
    """The rows model selection and early stopping read (`--selection_set`), from `validation_sets`."""
    if data_args.selection_set == "validation+val_codecs":
        from datasets import concatenate_datasets

        return concatenate_datasets([parts[name] for name in BOTH_VALIDATION_KINDS])
    return parts["val_codecs" if data_args.selection_set == "val_codecs" else "in_domain_validation"]


def evaluation_sets(data_args, test_split, validation_parts: dict) -> dict:
    """Test split of the training config, every evaluation config that the dataset has, then, when selection reads
    validation codecs, each kind of validation data apart (`validation_sets`): reported, so that choices made on
    validation data can be read back without the test sets."""
    sets = {f"{data_args.dataset_config}_test": test_split}
    for config in data_args.eval_configs:
        try:
            sets[config] = load_split(data_args.dataset, config, "test", data_args.dataset_revision,
                                      data_args.max_eval_samples)
        except ValueError as error:  # a dataset without that evaluation config
            logger.warning("skipping %s: %s", config, error)
    if data_args.selection_set != "validation":
        sets.update(validation_parts)
    return sets


def unknown_source(model, train_split, validation, sets: dict, score: str) -> tuple[UnknownSourceScorer, dict, dict]:
    """Fits the unknown-source scorer (training and validation splits), scores every evaluation set once, and
    measures the scorer where the dataset allows: `test` on CoSG (unseen codecs) against CoRS (training codecs),
    `validation` on the validation codecs against the validation split (the figures a choice of score may read).
    Returns the scorer, the measurements and, per evaluation set, the rows called unknown."""
    chunk = model.config.chunk_samples
    scorer = fit_unknown_source(model, train_split, validation, chunk, score)
    scored = {name: score_dataset(model, scorer, ds, chunk) for name, ds in sets.items()}
    measured = {}
    if {"cors_eval", "cosg_eval"} <= set(scored):
        measured["test"] = evaluate_unknown_source(scorer, scored["cors_eval"], scored["cosg_eval"])
    if {"in_domain_validation", "val_codecs"} <= set(scored):
        measured["validation"] = evaluate_unknown_source(scorer, scored["in_domain_validation"], scored["val_codecs"])
    return scorer, measured, {name: unknown_rows(scorer, s) for name, s in scored.items()}


def calibrate(trainer, model, validation, unseen=None) -> None:
    """Fits one temperature per head on the validation split's logits as trained and stores them in the model's
    config (`calibration_temperatures`), so every consumer of the saved model gets calibrated probabilities; given
    validation codecs (`unseen`), also one per taxonomy head on those (`calibration_temperatures_unknown`), for
    the clips that the unknown-source scorer calls unknown."""
    config, tasks, chunk = model.config, model.config.tasks, model.config.chunk_samples
    config.calibration_temperatures = config.calibration_temperatures_unknown = None  # logits as trained
    logits = predict_logits(trainer, validation, tasks, chunk, "calibration")
    unseen_logits = None if unseen is None else predict_logits(trainer, unseen, tasks, chunk, "calibration_unknown")
    config.calibration_temperatures = fit_temperatures(logits, labels_by_task(validation, tasks))
    logger.info("calibration temperatures (validation split): %s", config.calibration_temperatures)
    if unseen_logits is not None:
        taxonomy = [t for t in tasks if t != "bin"]
        config.calibration_temperatures_unknown = fit_temperatures({t: unseen_logits[t] for t in taxonomy},
                                                                   labels_by_task(unseen, taxonomy))
        logger.info("calibration temperatures for unknown clips (validation codecs): %s",
                    config.calibration_temperatures_unknown)


# --unknown_source_score -> how cards name it.
UNKNOWN_SOURCE_SCORES = {"knn": "cosine distance to the 10th nearest training embedding",
                         "mahalanobis": "Mahalanobis distance to the nearest class mean"}


def _plain(value) -> str:
    """An option's value as the command line spells it (TrainingArguments turns some into enums)."""
    return str(getattr(value, "value", value))


def recipe_table(model_args, data_args, training_args, model, epochs_run: float | None = None) -> dict:
    optimizer = ("Adam (L2 weight decay), as the paper" if training_args.optimizer_recipe == "official_adam"
                 else f"{_plain(training_args.optim)}, {_plain(training_args.lr_scheduler_type)} schedule")
    return {
        "preset": training_args.preset,
        "variant": model.config.variant,
        "backbone": model_args.backbone or model_args.model_name_or_path or f"random init ({model_args.backbone_size})",
        "dataset": f"{data_args.dataset} (config `{data_args.dataset_config}`)",
        "spoofed versions": ("every sampling's, one per utterance drawn each epoch" if data_args.spoof_versions ==
                             "resample" else "those of the config's sampling (as the paper)"),
        "window": f"{model.config.chunk_samples} samples, crop `{data_args.crop}`, repeat-padded",
        "augmentation": data_args.augment,
        "optimizer": optimizer,
        "learning rate / weight decay": f"{training_args.learning_rate:g} / {training_args.weight_decay:g}",
        "batch size x devices": f"{training_args.per_device_train_batch_size} x {training_args.world_size}" + (
            ", last incomplete batch dropped" if training_args.train_drop_last else ""),
        "sharpness-aware minimisation": (f"radius {training_args.sam_rho:g}" if training_args.sam_rho
                                         else "none (as the paper)"),
        "codec adversary": (f"conditional, per taxonomy head, {training_args.codec_adversary_objective} objective, "
                            f"strength {training_args.codec_adversary_weight:g} (ramped)"
                            if training_args.codec_adversary_weight else "none (as the paper)"),
        "class compactness": (f"within-class over total scatter of each taxonomy head's embeddings, weight "
                              f"{training_args.class_compactness_weight:g}" if training_args.class_compactness_weight
                              else "none (as the paper)"),
        "weight averaging": (f"moving average of the weights, decay {training_args.weight_averaging_decay:g} per "
                             "step; evaluated and saved" if training_args.weight_averaging_decay
                             else "none (as the paper)"),
        "gradient clipping": (f"max norm {training_args.max_grad_norm:g}" if training_args.max_grad_norm
                              else "none (as the paper)"),
        "epochs": f"{training_args.num_train_epochs:g}" + (
            f", early stopping after {training_args.early_stopping_patience} evaluations without improvement"
            if training_args.early_stopping_patience else "") + (
            f" (stopped after {epochs_run:g})" if epochs_run and epochs_run < training_args.num_train_epochs else ""),
        "seed": training_args.seed,
        "loss": f"class-weighted cross-entropy per task, {model.config.task_weighting} task weighting",
        "model selection": f"{training_args.metric_for_best_model} on {SELECTION_SETS[data_args.selection_set]}"
                           + (" (the mean of the two kinds' scores)" if averages_parts(data_args) else ""),
        "calibration": (("temperature scaling per head on the validation split" + (
            "; clips called unknown: a temperature per taxonomy head fitted on the validation codecs"
            if model.config.calibration_temperatures_unknown else "")) if training_args.calibrate
            else "none (as the paper)"),
        "unknown source": (f"{UNKNOWN_SOURCE_SCORES[training_args.unknown_source_score]} per taxonomy head, "
                           "threshold on the validation split" if training_args.unknown_source
                           else "none (as the paper)"),
        "precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32",
    } | ({"differs from the authors' code": OFFICIAL_DEVIATIONS} if training_args.preset == "official" else {})


def write_outputs(trainer, model, feature_extractor, model_args, data_args, training_args, train_metrics, results,
                  scorer=None, unknown: dict | None = None):
    output_dir = Path(training_args.output_dir)
    save_model_folder(model, feature_extractor, output_dir)  # weights, config, extractor, code files
    if scorer is not None:
        scorer.save(output_dir)
    variant = model.config.variant or "custom"
    table = results_table(variant, model.config.tasks, results) if results else None
    unknown = unknown or {}
    if table and unknown.get("test"):
        table += ("\n\nUnknown source, spoof clips of unseen codecs (CoSG) against those of training codecs (CoRS):\n\n"
                  + unknown_source_table(unknown["test"]))
    hub_id = training_args.hub_model_id or f"USER/{output_dir.name}"
    dataset_id = data_args.dataset if data_args.dataset != str(DEMO_DATASET_DIR) else "codecfake-mini"
    status = None
    if data_args.dataset == str(DEMO_DATASET_DIR):
        status = ("Demo model: trained from scratch on CodecFake-mini (synthesizer voices and real recorded words "
                  "of a few speakers, re-synthesised by the project's small neural codecs), for trying the tools. "
                  "It has never heard a public codec or a real speech generator; do not use it to judge real audio.")
    card = render_model_card(model.config, model_name=output_dir.name,
                             base_model=model_args.backbone if model_args.backbone else None, dataset_id=dataset_id,
                             recipe=recipe_table(model_args, data_args, training_args, model, trainer.state.epoch),
                             results=results,
                             results_markdown=table, status_note=status, repo_id=hub_id)
    write_text(output_dir / "model_card.md", card)
    write_text(output_dir / "README.md", card)
    summary = {"train": train_metrics, "eval": {name: r["overall"] for name, r in results.items()},
               "unknown_source": unknown.get("test"), "unknown_source_validation": unknown.get("validation"),
               "arguments": {"model": asdict(model_args), "data": asdict(data_args)}}
    write_json(output_dir / "all_results.json", summary)
    if table:
        write_text(output_dir / "eval" / "results.md", table + "\n")
    return table


def configure_logging(training_args) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if training_args.should_log else logging.WARNING)


def training_rows(data_args, train_split, seed: int) -> tuple:
    """What training reads: `train_split` in a random order (the paper), or with `--spoof_versions resample` every
    sampling's training rows and the sampler that draws one spoofed version per utterance and epoch."""
    if data_args.spoof_versions == "config":
        return train_split, None
    rows = load_every_sampling(data_args.dataset, data_args.dataset_revision, data_args.max_train_samples)
    return rows, SpoofVersionSampler.from_dataset(rows, seed)


def codec_adversary(model, train_rows, training_args) -> ConditionalCodecAdversary | None:
    """With `--codec_adversary_weight`, the adversary over the model's heads and the training rows' codecs."""
    if not training_args.codec_adversary_weight:
        return None
    adversary = ConditionalCodecAdversary(CodecVocabulary.from_rows(train_rows), embedding_sizes(model),
                                          training_args.codec_adversary_objective)
    logger.info("codec adversary: %d training codecs, heads %s", len(adversary.vocabulary.codecs), adversary.tasks)
    return adversary


def load_training_splits(data_args) -> tuple:
    """The train, validation and test splits of the training sampling (`--dataset_config`)."""
    return tuple(load_split(data_args.dataset, data_args.dataset_config, split, data_args.dataset_revision, limit)
                 for split, limit in (("train", data_args.max_train_samples),
                                      ("validation", data_args.max_eval_samples),
                                      ("test", data_args.max_eval_samples)))


def _last_checkpoint(training_args) -> str | None:
    if training_args.resume_from_checkpoint:
        return training_args.resume_from_checkpoint
    if training_args.resume == "auto" and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint:
            logger.info("resuming from %s", checkpoint)
        return checkpoint
    return None


def train(model_args: ModelArguments, data_args: DataArguments, training_args: CodecTraceTrainingArguments,
          callbacks=()) -> dict:
    """Trains, evaluates on every evaluation set and writes the output folder (pushed to the Hub with
    `--push_to_hub`). `data_args.dataset` must name a built dataset. Returns the training metrics, the evaluation
    results, the results table and the Trainer."""
    if data_args.dataset is None:
        raise ValueError("no dataset: give --dataset (a built CodecFake+ folder or a Hub dataset id).")
    check_writable_folder(training_args.output_dir, "--output_dir", create=True)  # before anything is built
    set_seed(training_args.seed)
    # The finished folder is pushed at the end (push_model_folder); the Trainer must not push checkpoints.
    push, training_args.push_to_hub = training_args.push_to_hub, False
    train_split, validation, test = load_training_splits(data_args)
    validation_parts = validation_sets(data_args, validation)
    selection = selection_split(data_args, validation_parts)

    model = build_model(model_args)
    tasks = model.config.tasks
    training_args.label_names = label_columns(tasks)
    feature_extractor = mc.CodecTraceFeatureExtractor(sampling_rate=model.config.sampling_rate,
                                                      chunk_samples=model.config.chunk_samples)
    logger.info("model %s: %.1f M parameters, tasks %s", model.config.variant,
                sum(p.numel() for p in model.parameters()) / 1e6, tasks)
    averaging = WeightAveraging(training_args.weight_averaging_decay) if training_args.weight_averaging_decay else None
    train_rows, sampler = training_rows(data_args, train_split, training_args.seed)
    adversary = codec_adversary(model, train_rows, training_args)
    trainer = CodecTraceTrainer(
        model=model,
        weight_averaging=averaging,
        train_sampler=sampler,
        codec_adversary=adversary,
        args=training_args,
        train_dataset=with_windows(train_rows, tasks, model.config.chunk_samples, data_args.crop, data_args.augment,
                                   training_args.seed, adversary.vocabulary if adversary else None),
        eval_dataset=with_windows(selection, tasks, model.config.chunk_samples),
        data_collator=collate,
        processing_class=feature_extractor,
        compute_metrics=make_compute_metrics(tasks, selection_parts(data_args, validation_parts)),
        callbacks=list(callbacks) + early_stopping(training_args),
    )
    train_metrics = trainer.train(resume_from_checkpoint=_last_checkpoint(training_args)).metrics
    if training_args.calibrate:
        unseen = validation_parts.get("val_codecs") if training_args.unknown_source else None
        calibrate(trainer, trainer.model, validation, unseen)
    sets = evaluation_sets(data_args, test, validation_parts)
    config = trainer.model.config
    predictions = predict_sets(trainer, tasks, config.chunk_samples, sets)
    results, table = {}, None
    if trainer.is_world_process_zero():
        scorer, unknown, rows = (unknown_source(trainer.model, train_split, validation, sets,
                                                training_args.unknown_source_score)
                                 if training_args.unknown_source else (None, {}, None))
        results = save_evaluations(Path(training_args.output_dir), config, sets, predictions, rows)
        table = write_outputs(trainer, trainer.model, feature_extractor, model_args, data_args, training_args,
                              train_metrics, results, scorer, unknown)
        print("\n" + (table or "no evaluation sets found") + "\n")
        print(f"model, card and results written to {training_args.output_dir}")
        if push:
            if not training_args.hub_model_id:
                raise ValueError("--push_to_hub needs --hub_model_id USER/NAME")
            url = push_model_folder(training_args.output_dir, training_args.hub_model_id, training_args.hub_token,
                                    training_args.hub_private_repo, training_args.hub_revision)
            print(f"pushed to {url}")
    return {"train": train_metrics, "results": results, "table": table, "trainer": trainer}


def run(argv: list[str], callbacks=()) -> dict:
    """`train.py` from Python, for a built dataset: parses `argv` (flags as on the command line) and trains."""
    model_args, data_args, training_args = parse_arguments(argv)
    configure_logging(training_args)
    return train(model_args, data_args, training_args, callbacks)
