"""`train.py`'s options: the model, data and training arguments (TrainingArguments with the authors' recipe as
defaults), the presets that fill them, and the checks that turn a bad value into a usage error before anything is
built. The full reference, with the preset that uses each switch: docs/training.md."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from transformers import HfArgumentParser, TrainingArguments

import modeling_codectrace as mc
from modeling_codectrace.configuration_codectrace import OFFICIAL_WINDOW

from .data import AUGMENTATIONS, CROP_MODES, TRAINING_SAMPLINGS, label_columns, training_sampling
from .evaluation import EVAL_CONFIGS
from .model_building import config_options
from .presets import AASIST_SIZES, BACKBONE_SIZES, TRAINING_PRESETS, backbone_config
from .selection import SELECTION_SETS
from .unknown_source import NEIGHBOURS, SCORES
from .weight_averaging import WeightAveraging


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
        default_factory=lambda: ["phase_deviation", "weighted_phase_deviation"],
        metadata={"help": "with --feature_encoder stft_phase, one or more of: log_power phase_deviation "
                          "weighted_phase_deviation"})
    stft_n_fft: int | None = field(
        default=None, metadata={"help": "with --feature_encoder stft_phase, the FFT size (default: the backbone "
                                        "size's first conv kernel)"})
    stft_hop_length: int | None = field(
        default=None, metadata={"help": "with --feature_encoder stft_phase, the hop in samples (default: the "
                                        "backbone size's first conv stride)"})
    freeze_feature_encoder: bool = field(default=False, metadata={"help": "freeze the backbone's CNN"})
    freeze_backbone: bool = field(default=False, metadata={"help": "freeze the whole backbone"})
    task_weighting: str = field(default="fixed", metadata={"help": "fixed (official mean) | uncertainty (learned)"})
    chunk_samples: int = field(default=OFFICIAL_WINDOW,
                               metadata={"help": f"window length in samples (official {OFFICIAL_WINDOW})"})
    frame_head: bool = field(
        default=False, metadata={"help": "add a frame-level spoof head (per backbone frame: is spoofed speech here?), "
                                         "trained with frame labels of the spliced windows of --partial_spoof_rate; "
                                         "where in a long recording the spoofed speech is (docs/segments.md). Not in "
                                         "the paper"})
    trim_silence_db: float | None = field(
        default=None, metadata={"help": "saved in the model's config: the pipeline cuts leading and trailing "
                                        "stretches this many dB under a clip's peak before tracing it "
                                        "(codectrace.silence; default: no trimming, as the paper). Training is "
                                        "unchanged"})


@dataclass
class DataArguments:
    dataset: str | None = field(
        default=None, metadata={"help": "built CodecFake+ folder or hub id; default: CodecFake-mini (built offline)"})
    dataset_config: str | None = field(
        default=None, metadata={"help": "training sampling: aux | vq | dec; default: the one the variant trains on "
                                        "in the paper (vq for S_VQ/D_VQ, dec for S_DEC/D_DEC, aux for the rest)"})
    dataset_revision: str | None = field(default=None, metadata={"help": "revision of a Hub --dataset"})
    eval_configs: list[str] = field(default_factory=lambda: list(EVAL_CONFIGS),
                                    metadata={"help": "evaluation configs run after training"})
    crop: str = field(default="first", metadata={"help": f"training window: {CROP_MODES} (official: first)"})
    augment: str = field(default="rawboost5", metadata={"help": f"training augmentation: {AUGMENTATIONS}"})
    partial_spoof_rate: float = field(
        default=0.0, metadata={"help": "share of training windows spliced: a spoof window becomes its bona fide "
                                       "original with one 0.2-1.5 s stretch of the codec's re-synthesis (BIN label "
                                       "spoof: it contains spoofed speech; the taxonomy heads skip it), a bona fide "
                                       "window gets a stretch of another bona fide utterance; for finding spoofed "
                                       "segments in long recordings (codectrace.splicing, docs/segments.md). 0 = off "
                                       "(the paper)"})
    partial_spoof_bin_labels: bool = field(
        default=True, metadata={"help": "with --partial_spoof_rate, a partly spoofed window also trains the BIN head "
                                        "as spoof; False: only the frame head (--frame_head) learns from it, the BIN "
                                        "head from whole windows"})
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
    max_train_samples: int | None = field(default=None, metadata={"help": "read at most this many training rows"})
    max_eval_samples: int | None = field(
        default=None, metadata={"help": "read at most this many rows of each validation and evaluation split"})
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
        default="knn", metadata={"help": f"knn: cosine distance to the {NEIGHBOURS}th nearest training embedding "
                                         "(chosen on the validation codecs); mahalanobis: distance to the nearest "
                                         "class mean",
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
    weight_averaging_decay: float = field(
        default=0.0, metadata={"help": "keep an exponential moving average of the weights with this decay per step "
                                       "(e.g. 0.998, ~500 steps); evaluations, model selection, early stopping and "
                                       "the saved model read the average. 0 = off (the paper)"})
    codec_adversary_weight: float = field(
        default=0.0, metadata={"help": "conditional codec-adversarial training: per taxonomy head, an adversary names "
                                       "each spoofed row's training codec among the codecs of its class, and the "
                                       "tracer learns to make the adversary's guess uniform over the class's codecs, "
                                       "with this strength, ramped up over training as in DANN "
                                       "(docs/research/generalisation.md). Training only; the logged loss includes the "
                                       "adversary's, also logged alone as codec_adversary_loss; 0 = off (the paper)"})
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
    if data_args.crop not in CROP_MODES or data_args.augment not in AUGMENTATIONS:
        parser.error(f"--crop must be one of {CROP_MODES} and --augment one of {AUGMENTATIONS}")
    if data_args.selection_set not in SELECTION_SETS:
        parser.error(f"--selection_set must be one of {list(SELECTION_SETS)}, got {data_args.selection_set!r}")
    if not 0.0 <= data_args.partial_spoof_rate <= 1.0:
        parser.error(f"--partial_spoof_rate is a share of training windows, 0 to 1 (0 = off), got "
                     f"{data_args.partial_spoof_rate}")
    if not data_args.partial_spoof_bin_labels and not model_args.frame_head:
        parser.error("--partial_spoof_bin_labels False needs --frame_head True: otherwise a partly spoofed window "
                     "trains no head at all")
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


def switch_reference() -> str:
    """The markdown table of docs/training.md: every option this project defines or gives its own default (the
    model, data and training arguments; TrainingArguments' other options keep transformers' defaults), what it does,
    its default (the `official` preset) and what the `demo` preset sets."""
    from dataclasses import MISSING, fields

    def default(item) -> str:
        if item.name == "dataloader_pin_memory":  # the one default that depends on the machine
            return "True where CUDA is available"
        value = item.default_factory() if item.default_factory is not MISSING else item.default
        return "none" if value is None else " ".join(map(str, value)) if isinstance(value, list) else str(value)

    def demo(name: str) -> str:
        value = TRAINING_PRESETS["demo"].get(name)
        return "" if value is None else " ".join(map(str, value)) if isinstance(value, list) else str(value)

    rows = ["| switch | what it does | default (`official`) | `demo` |", "|---|---|---|---|"]
    for group in (ModelArguments, DataArguments, CodecTraceTrainingArguments):
        own = group.__annotations__
        for item in fields(group):
            if item.name not in own or item.name in ("output_dir", "preset"):
                continue
            help_text = item.metadata.get("help", "a TrainingArguments option with this project's default")
            rows.append(f"| `--{item.name}` | {help_text.replace('|', '/')} | {default(item)} | {demo(item.name)} |")
    return "\n".join(rows) + "\n"
