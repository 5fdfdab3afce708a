"""Configuration of the CodecTrace source-tracing model (Wav2Vec2 + AASIST, one graph head per task).

This module is the single source of truth for the taxonomy: task names, label names and their
official indices, and the paper's model variants. Everything else in the project imports them.
"""

from __future__ import annotations

import copy
import math

from transformers import PretrainedConfig, Wav2Vec2Config

# Task -> label names, in the official index order of the CodecFake+ source-tracing baseline.
TASK_LABELS: dict[str, tuple[str, ...]] = {
    "bin": ("spoof", "bonafide"),
    "vq": ("real", "mvq", "svq", "sq"),
    "aux": ("real", "none", "semantic", "disentangle"),
    "dec": ("real", "time", "freq"),
}
TASKS: tuple[str, ...] = tuple(TASK_LABELS)
BONAFIDE_INDEX = TASK_LABELS["bin"].index("bonafide")  # the BIN label of bona fide speech
SPOOF_INDEX = TASK_LABELS["bin"].index("spoof")  # and of spoofed speech
# The codec-taxonomy tasks (every task but bona fide vs spoof).
TAXONOMY_TASKS: tuple[str, ...] = tuple(task for task in TASKS if task != "bin")

# Human-readable descriptions, used by model cards, the CLI and the Space.
TASK_DESCRIPTIONS: dict[str, str] = {
    "bin": "bona fide vs spoof",
    "vq": "vector quantizer of the codec",
    "aux": "auxiliary training objective of the codec",
    "dec": "decoder domain of the codec",
}
LABEL_DESCRIPTIONS: dict[str, dict[str, str]] = {
    "bin": {
        "spoof": "generated or re-synthesised by a neural audio codec",
        "bonafide": "genuine human speech",
    },
    "vq": {
        "real": "genuine speech (no quantizer)",
        "mvq": "multi-codebook vector quantization (e.g. residual VQ, as in EnCodec or DAC)",
        "svq": "a single vector-quantization codebook (e.g. WavTokenizer, BigCodec)",
        "sq": "scalar quantization (e.g. FSQ, as in Stable Codec or SimpleSpeech)",
    },
    "aux": {
        "real": "genuine speech (no codec objective)",
        "none": "no auxiliary objective: reconstruction losses only",
        "semantic": "semantic distillation: codes also trained to carry phonetic content",
        "disentangle": "disentanglement: content and speaker/timbre kept in separate codes",
    },
    "dec": {
        "real": "genuine speech (no decoder)",
        "time": "time-domain decoder: upsampling convolutions straight to the waveform",
        "freq": "frequency-domain decoder: predicts a spectrum, then an inverse STFT (Vocos style)",
    },
}

# The sampling rate of every model input (CodecFake+ is 16 kHz); audio at other rates is resampled before.
SAMPLING_RATE = 16000
# The authors' window: each clip's first 64600 samples (about 4 s), repeat-padded when shorter.
OFFICIAL_WINDOW = 64600

# The paper's variants (Chen et al., Interspeech 2025): S_* single task, D_* BIN + one, M1 all, M2 no BIN.
VARIANTS: dict[str, tuple[str, ...]] = {
    "S_BIN": ("bin",),
    "S_VQ": ("vq",),
    "S_AUX": ("aux",),
    "S_DEC": ("dec",),
    "D_VQ": ("bin", "vq"),
    "D_AUX": ("bin", "aux"),
    "D_DEC": ("bin", "dec"),
    "M1": ("bin", "vq", "aux", "dec"),
    "M2": ("vq", "aux", "dec"),
}

# Classifier heads: the paper's AASIST graph branches, or statistics pooling + one linear layer per task.
HEAD_TYPES = ("aasist", "stats_pooling")

# Front ends of the backbone: Wav2Vec2's convolutional feature encoder, or a fixed STFT exposing phase.
FEATURE_ENCODERS = ("conv", "stft_phase")
STFT_FEATURES = ("log_power", "phase_deviation", "weighted_phase_deviation")

# Official weighted cross-entropy class weights (REAL / bona fide gets the small weight).
OFFICIAL_CLASS_WEIGHTS: dict[str, tuple[float, ...]] = {
    "bin": (0.1, 0.9),
    "vq": (0.1, 0.3, 0.3, 0.3),
    "aux": (0.1, 0.3, 0.3, 0.3),
    "dec": (0.1, 0.45, 0.45),
}


def xlsr_300m_backbone_config(**overrides) -> Wav2Vec2Config:
    """The XLS-R 300M shape, unmasked (the paper fine-tunes XLS-R without SpecAugment)."""
    settings = dict(
        hidden_size=1024,
        num_hidden_layers=24,
        num_attention_heads=16,
        intermediate_size=4096,
        hidden_act="gelu",
        do_stable_layer_norm=True,
        feat_extract_norm="layer",
        feat_extract_activation="gelu",
        conv_dim=(512,) * 7,
        conv_kernel=(10, 3, 3, 3, 3, 2, 2),
        conv_stride=(5, 2, 2, 2, 2, 2, 2),
        conv_bias=True,
        num_conv_pos_embeddings=128,
        num_conv_pos_embedding_groups=16,
        hidden_dropout=0.1,
        attention_dropout=0.1,
        activation_dropout=0.0,
        feat_proj_dropout=0.1,
        # Layer drop skips whole layers at random, which breaks DDP gradient bucketing; off by default.
        layerdrop=0.0,
        apply_spec_augment=False,
        mask_time_prob=0.0,
        mask_feature_prob=0.0,
    )
    settings.update(overrides)
    return Wav2Vec2Config(**settings)


# Config fields of options that lost on validation data and left the code (docs/research/removed.md), with the
# commit that still holds it. A saved config that names one with its "off" value loads as before.
REMOVED_FIELDS: dict[str, str] = {"stft_extra_n_fft": "095ffcc"}


def checked_trim_silence_db(value) -> float | None:
    """`trim_silence_db` as a number of dB under a clip's peak (a positive, finite number), or None: no trimming."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"trim_silence_db must be a positive number of dB under the clip's peak (e.g. 40), or None "
                         f"for no trimming; got {value!r}.")
    return float(value)


def _refuse_removed_fields(kwargs: dict) -> None:
    """Drops removed fields set to their "off" value (None or empty); refuses one that is on, naming the commit."""
    for name, commit in REMOVED_FIELDS.items():
        if kwargs.pop(name, None):
            raise ValueError(f"this model uses {name}, an option removed from codectrace after it lost on validation "
                             f"data; load it with the code of commit {commit} (docs/research/removed.md).")


def resolve_tasks(variant: str | None = None, tasks: list[str] | tuple[str, ...] | None = None) -> tuple[str, ...]:
    """Returns the task tuple (in canonical order) for a variant name or an explicit task list."""
    if variant is not None and tasks is not None:
        expected = VARIANTS.get(variant.upper())
        if expected is None or set(expected) != set(tasks):
            raise ValueError(f"variant {variant!r} and tasks {list(tasks)!r} disagree; give one of them.")
    if variant is not None:
        key = variant.upper()
        if key not in VARIANTS:
            raise ValueError(f"Unknown variant {variant!r}; accepted: {', '.join(VARIANTS)}.")
        return VARIANTS[key]
    if tasks is None:
        return VARIANTS["M1"]
    if isinstance(tasks, str):
        tasks = [t for t in tasks.replace(",", " ").split() if t]
    unknown = [t for t in tasks if t not in TASK_LABELS]
    if unknown or not tasks:
        raise ValueError(
            f"tasks must be a non-empty subset of {list(TASKS)}; got {list(tasks)!r}."
        )
    if len(set(tasks)) != len(tasks):
        raise ValueError(f"tasks must not repeat; got {list(tasks)!r}.")
    return tuple(t for t in TASKS if t in tasks)


def variant_of(tasks: tuple[str, ...]) -> str | None:
    """The paper's variant name for a task tuple, or None when it is not one of them."""
    for name, variant_tasks in VARIANTS.items():
        if set(variant_tasks) == set(tasks):
            return name
    return None


def _backbone(backbone_config: dict | Wav2Vec2Config | None) -> Wav2Vec2Config:
    if backbone_config is None:
        return xlsr_300m_backbone_config()
    if isinstance(backbone_config, dict):
        return Wav2Vec2Config(**{k: v for k, v in backbone_config.items() if k != "model_type"})
    if not isinstance(backbone_config, Wav2Vec2Config):
        raise ValueError(f"backbone_config must be a dict or a Wav2Vec2Config, got {type(backbone_config).__name__}.")
    return backbone_config


class CodecTraceConfig(PretrainedConfig):
    r"""
    Configuration of [`CodecTraceForSourceTracing`]: a Wav2Vec2 backbone feeding a shared AASIST trunk
    and one AASIST heterogeneous graph-attention head per task.

    Args:
        backbone_config (`dict` or [`Wav2Vec2Config`], *optional*):
            Configuration of the Wav2Vec2 backbone. Defaults to the XLS-R 300M shape with SpecAugment off.
        variant (`str`, *optional*):
            One of the paper's variants (`S_BIN`, `S_VQ`, `S_AUX`, `S_DEC`, `D_VQ`, `D_AUX`, `D_DEC`,
            `M1`, `M2`). Sets `tasks`; give either this or `tasks`.
        tasks (`list[str]`, *optional*, defaults to `["bin", "vq", "aux", "dec"]`):
            Non-empty subset of `bin`, `vq`, `aux`, `dec`; one classification head each.
        projection_dim (`int`, *optional*, defaults to 128):
            Width of the linear projection from the backbone's hidden size into the AASIST trunk.
            The spectral graph has `projection_dim // 3` nodes.
        encoder_filters (`list[list[int]]`, *optional*):
            (in, out) channels of the six residual blocks of the trunk; defaults to
            `[[1, 32], [32, 32], [32, 64], [64, 64], [64, 64], [64, 64]]`.
        gat_dims (`list[int]`, *optional*, defaults to `[64, 32]`):
            Node widths of the graph attention layers and of the heterogeneous (HS-GAL) layers.
        pool_ratios (`list[float]`, *optional*, defaults to `[0.5, 0.5, 0.5, 0.5]`):
            Fraction of nodes kept by the graph pooling layers.
        temperatures (`list[float]`, *optional*, defaults to `[2.0, 2.0, 100.0, 100.0]`):
            Softmax temperatures of the spectral GAT, temporal GAT and the HS-GAL layers.
        class_weights (`dict[str, list[float]]`, *optional*):
            Per-task class weights of the cross-entropy loss. Defaults to the official ones.
        task_weights (`dict[str, float]`, *optional*):
            Fixed per-task loss weights. Default: the plain mean of the active task losses (official).
        task_weighting (`str`, *optional*, defaults to `"fixed"`):
            `"fixed"` uses `task_weights` (official: the plain mean). `"uncertainty"` learns one log-variance
            per task (Kendall et al., 2018): loss = mean over tasks of exp(-s_t) * L_t + s_t. Not in the paper.
        head_type (`str`, *optional*, defaults to `"aasist"`):
            `"aasist"`: the paper's shared AASIST trunk and one graph-attention branch per task. `"stats_pooling"`:
            the mean and standard deviation of the backbone features over frames, then one linear layer per task
            (not in the paper; the CPU demo uses it because AASIST learns too slowly from scratch there, see
            docs/codecfake_mini.md). The AASIST arguments above are ignored with it.
        use_weighted_layer_sum (`bool`, *optional*, defaults to `False`):
            Feed the heads a learned softmax-weighted sum of all backbone hidden states (the projected
            convolutional features and every transformer layer), as `Wav2Vec2ForSequenceClassification` can.
            Off in the paper, which uses the last layer.
        feature_encoder (`str`, *optional*, defaults to `"conv"`):
            `"conv"`: the backbone's own convolutional feature encoder (the paper's). `"stft_phase"`: a fixed
            STFT instead of its first convolution (see `stft_n_fft`, `stft_hop_length`, `stft_features`; Hann
            window), then one learned convolution (`conv_kernel[1]`, `conv_stride[1]`) to `conv_dim[-1]` channels;
            the backbone must have exactly two conv layers (e.g. `codectrace.presets.BACKBONE_SIZES["stft-tiny"]`).
            Not in the paper: the CPU demo uses it because the decoder domain of unseen codecs shows in the phase
            (docs/codecfake_mini.md).
        stft_features (`list[str]`, *optional*, defaults to `["log_power", "phase_deviation"]`):
            Which per-bin features the `stft_phase` encoder gives its convolution: a non-empty subset of
            `log_power`, `phase_deviation` (how far the phase moved from what a steady sinusoid at the bin's
            frequency would do) and `weighted_phase_deviation` (the deviation times the bin's share of the frame's
            energy, so that bins holding only noise, whose phase is random, count little). Ignored with
            `feature_encoder="conv"`.
        stft_n_fft (`int`, *optional*):
            FFT size of the `stft_phase` encoder; defaults to the backbone's first conv kernel (folders saved before
            this field existed). Written into `backbone_config.conv_kernel[0]`, from which Wav2Vec2 counts frames.
        stft_hop_length (`int`, *optional*):
            Hop of the `stft_phase` encoder; defaults to the backbone's first conv stride, and is written there.
        sampling_rate (`int`, *optional*, defaults to 16000):
            Sampling rate the model expects.
        chunk_samples (`int`, *optional*, defaults to 64600):
            Length of one model input window in samples (about 4 s; the official clip length).
        calibration_temperatures (`dict[str, float]`, *optional*):
            Per-head temperatures fitted after training on validation data (temperature scaling; not in the paper):
            the model's logits are divided by them, so probabilities are calibrated for every consumer while every
            argmax and the BIN ranking (hence EER) stay as trained. The loss uses the logits as trained. `None`:
            no calibration.
        frame_head (`bool`, *optional*, defaults to `False`):
            Add a frame-level spoof head: one linear layer over the heads' backbone features giving, for every
            backbone frame, logits `[spoof, bonafide]` (`frame_logits`), trained with `frame_labels` (a frame is
            spoof where its centre lies in spoofed speech). It says *where* in a window spoofed speech is, for
            segments of long, partly spoofed recordings (docs/segments.md). Not in the paper.
        frame_loss_weight (`float`, *optional*, defaults to 1.0):
            Weight of the frame head's class-weighted cross-entropy (the BIN class weights) added to the task loss.
        trim_silence_db (`float`, *optional*):
            Where the pipeline reads a clip, cut its leading and trailing stretches quieter than this many dB under
            the clip's peak first (`codectrace.silence`): long gated silence around real speech otherwise reads as
            spoof. The model itself never applies it (its windows are what it is given). `None` (the paper's, and
            every converted official checkpoint's): no trimming.
        calibration_temperatures_unknown (`dict[str, float]`, *optional*):
            Per taxonomy head, the temperature for clips that the unknown-source scorer saved beside the model
            (`unknown_source.safetensors`) calls unknown, fitted on codecs never trained on (the validation codecs):
            such clips are often classified wrong, so they need flatter probabilities than clips of known codecs.
            The model itself never applies it (it cannot tell unknown clips); consumers that score unknown sources
            (pipeline, evaluation) divide those clips' logits as trained by it instead of by
            `calibration_temperatures`. `None`: one temperature for every clip.
    """

    model_type = "codectrace"
    # Trainer.predict keeps only the logits.
    keys_to_ignore_at_inference = ["embeddings", "task_losses", "logits", "frame_logits"]
    sub_configs = {"backbone_config": Wav2Vec2Config}

    def __init__(
        self,
        backbone_config: dict | Wav2Vec2Config | None = None,
        variant: str | None = None,
        tasks: list[str] | None = None,
        projection_dim: int = 128,
        encoder_filters: list[list[int]] | None = None,
        gat_dims: list[int] | None = None,
        pool_ratios: list[float] | None = None,
        temperatures: list[float] | None = None,
        class_weights: dict[str, list[float]] | None = None,
        task_weights: dict[str, float] | None = None,
        task_weighting: str = "fixed",
        head_type: str = "aasist",
        use_weighted_layer_sum: bool = False,
        feature_encoder: str = "conv",
        stft_features: list[str] | None = None,
        stft_n_fft: int | None = None,
        stft_hop_length: int | None = None,
        sampling_rate: int = SAMPLING_RATE,
        chunk_samples: int = OFFICIAL_WINDOW,
        calibration_temperatures: dict[str, float] | None = None,
        calibration_temperatures_unknown: dict[str, float] | None = None,
        frame_head: bool = False,
        frame_loss_weight: float = 1.0,
        trim_silence_db: float | None = None,
        **kwargs,
    ):
        self.backbone_config = _backbone(backbone_config)
        self.tasks = list(resolve_tasks(variant, tasks))
        self.variant = variant_of(tuple(self.tasks))
        self._set_aasist(projection_dim, encoder_filters, gat_dims, pool_ratios, temperatures)
        self._set_loss(class_weights, task_weights, task_weighting)
        if head_type not in HEAD_TYPES:
            raise ValueError(f"head_type must be one of {list(HEAD_TYPES)}, got {head_type!r}.")
        self.head_type = head_type
        self.use_weighted_layer_sum = bool(use_weighted_layer_sum)
        self._set_front_end(feature_encoder, stft_features, stft_n_fft, stft_hop_length)
        if sampling_rate <= 0 or chunk_samples <= 0:
            raise ValueError("sampling_rate and chunk_samples must be positive.")
        self.sampling_rate = int(sampling_rate)
        self.chunk_samples = int(chunk_samples)
        self.calibration_temperatures = self._checked_temperatures("calibration_temperatures",
                                                                   calibration_temperatures)
        self.calibration_temperatures_unknown = self._checked_temperatures("calibration_temperatures_unknown",
                                                                           calibration_temperatures_unknown)

        self.frame_head = bool(frame_head)
        if not float(frame_loss_weight) >= 0:
            raise ValueError(f"frame_loss_weight must be a non-negative number, got {frame_loss_weight!r}.")
        self.frame_loss_weight = float(frame_loss_weight)
        self.trim_silence_db = checked_trim_silence_db(trim_silence_db)

        kwargs.pop("num_labels", None)
        _refuse_removed_fields(kwargs)
        if type(self).__module__.startswith("modeling_codectrace."):
            # A folder saved before 0.2 names its copy of the pipeline code; the installed package registers the
            # pipeline itself, and that pointer would make transformers insist on remote code.
            kwargs.pop("custom_pipelines", None)
        super().__init__(**kwargs)
        # The generic id2label describes the BIN head, for `audio-classification` pipelines.
        self.id2label = dict(enumerate(TASK_LABELS["bin"]))
        self.label2id = {name: i for i, name in self.id2label.items()}

    def _checked_temperatures(self, name: str, temperatures: dict[str, float] | None) -> dict[str, float] | None:
        """Per-head temperatures fitted after training (None: the logits as trained)."""
        if temperatures is None:
            return None
        if set(temperatures) - set(self.tasks) or any(not float(t) > 0 for t in temperatures.values()):
            raise ValueError(f"{name} must map some of this model's tasks {self.tasks} to positive temperatures, "
                             f"got {temperatures!r}.")
        return {task: float(t) for task, t in temperatures.items()}

    def _set_aasist(self, projection_dim, encoder_filters, gat_dims, pool_ratios, temperatures) -> None:
        """The AASIST trunk and branch shapes (the paper's widths by default)."""
        self.projection_dim = int(projection_dim)
        if self.projection_dim < 3:
            raise ValueError(f"projection_dim must be at least 3 (3x3 max-pool), got {projection_dim}.")
        self.encoder_filters = [list(f) for f in (encoder_filters or [[1, 32], [32, 32], [32, 64]] + [[64, 64]] * 3)]
        if self.encoder_filters[0][0] != 1 or any(
            a[1] != b[0] for a, b in zip(self.encoder_filters, self.encoder_filters[1:])
        ):
            raise ValueError(
                "encoder_filters must chain (each block's input channels = the previous block's output) "
                f"and start from 1 channel; got {self.encoder_filters}."
            )
        self.gat_dims = list(gat_dims or [64, 32])
        self.pool_ratios = list(pool_ratios or [0.5, 0.5, 0.5, 0.5])
        self.temperatures = list(temperatures or [2.0, 2.0, 100.0, 100.0])
        if len(self.gat_dims) != 2 or len(self.pool_ratios) != 4 or len(self.temperatures) != 4:
            raise ValueError("gat_dims needs 2 values, pool_ratios and temperatures 4 each.")

    def _set_loss(self, class_weights, task_weights, task_weighting) -> None:
        """Class weights per task (the official ones by default) and how the task losses are combined."""
        weights = {t: list(w) for t, w in OFFICIAL_CLASS_WEIGHTS.items()}
        for task, values in (class_weights or {}).items():
            if task not in TASK_LABELS or len(values) != len(TASK_LABELS[task]):
                raise ValueError(
                    f"class_weights[{task!r}] must have one weight per label {list(TASK_LABELS.get(task, ()))}; "
                    f"got {values!r}."
                )
            weights[task] = [float(v) for v in values]
        self.class_weights = weights
        if task_weights is not None:
            unknown = set(task_weights) - set(TASK_LABELS)
            if unknown:
                raise ValueError(f"task_weights has unknown tasks {sorted(unknown)}; accepted: {list(TASKS)}.")
            task_weights = {t: float(w) for t, w in task_weights.items()}
        self.task_weights = task_weights
        if task_weighting not in ("fixed", "uncertainty"):
            raise ValueError(f"task_weighting must be 'fixed' or 'uncertainty', got {task_weighting!r}.")
        self.task_weighting = task_weighting

    def _set_front_end(self, feature_encoder, stft_features, stft_n_fft, stft_hop_length) -> None:
        """The backbone's front end; the STFT one also sets the geometry of the backbone's first conv layer."""
        if feature_encoder not in FEATURE_ENCODERS:
            raise ValueError(f"feature_encoder must be one of {list(FEATURE_ENCODERS)}, got {feature_encoder!r}.")
        self.feature_encoder = feature_encoder
        stft_features = ["log_power", "phase_deviation"] if stft_features is None else list(stft_features)
        if not stft_features or not set(stft_features) <= set(STFT_FEATURES) or len(set(stft_features)) < len(
                stft_features):
            raise ValueError(
                f"stft_features must be a non-empty subset of {list(STFT_FEATURES)}, got {stft_features!r}.")
        self.stft_features = [f for f in STFT_FEATURES if f in stft_features]
        self.stft_n_fft = self.stft_hop_length = None
        if feature_encoder != "stft_phase":
            if stft_n_fft is not None or stft_hop_length is not None:
                raise ValueError("stft_n_fft and stft_hop_length apply to feature_encoder='stft_phase' only.")
            return
        backbone = self.backbone_config
        if len(backbone.conv_kernel) != 2:
            raise ValueError(
                "feature_encoder='stft_phase' needs a backbone with exactly two conv layers (the STFT, then one "
                "learned convolution), e.g. codectrace.presets.BACKBONE_SIZES['stft-tiny']; "
                f"got conv_kernel={backbone.conv_kernel}."
            )
        # Folders saved before these fields existed kept the STFT's size and hop in the first conv entry.
        self.stft_n_fft = int(stft_n_fft or backbone.conv_kernel[0])
        self.stft_hop_length = int(stft_hop_length or backbone.conv_stride[0])
        if not 0 < self.stft_hop_length <= self.stft_n_fft:
            raise ValueError(f"stft_hop_length must be in (0, stft_n_fft], got {self.stft_hop_length} with "
                             f"stft_n_fft {self.stft_n_fft}.")
        # Wav2Vec2 counts frames (for attention masks) from its conv geometry: the STFT stands in the first entry.
        if (backbone.conv_kernel[0], backbone.conv_stride[0]) != (self.stft_n_fft, self.stft_hop_length):
            self.backbone_config = backbone = copy.deepcopy(backbone)  # not the caller's object
            backbone.conv_kernel = [self.stft_n_fft, *backbone.conv_kernel[1:]]
            backbone.conv_stride = [self.stft_hop_length, *backbone.conv_stride[1:]]

    @property
    def label_names(self) -> dict[str, list[str]]:
        """Label names of every active task, in index order."""
        return {t: list(TASK_LABELS[t]) for t in self.tasks}

    @property
    def hidden_size(self) -> int:
        return self.backbone_config.hidden_size

    def frame_layout(self, num_samples: int) -> tuple[int, int, float]:
        """Where the backbone's frames of a `num_samples` input lie: their count, the hop between them in samples and
        the first one's centre (the middle of its receptive field). The feature encoder's convolutions, and the STFT
        standing in for the first of them, pad nothing, so frame `i` is centred on `first_centre + i * hop`."""
        backbone = self.backbone_config
        count, hop, field = int(num_samples), 1, 1
        for kernel, stride in zip(backbone.conv_kernel, backbone.conv_stride):
            count = max((count - kernel) // stride + 1, 0)
            field += (kernel - 1) * hop
            hop *= stride
        return count, hop, (field - 1) / 2

    def task_weight(self, task: str) -> float:
        """Weight of one task's loss; the official default is 1 / number of tasks (a plain mean)."""
        if self.task_weights is None:
            return 1.0 / len(self.tasks)
        return self.task_weights.get(task, 0.0)
