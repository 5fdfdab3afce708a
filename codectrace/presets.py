"""Named shapes and recipes: backbone sizes for training from scratch, AASIST widths, the `train.py` presets and
where the demo's data lives. The model core knows none of these; they only fill a `CodecTraceConfig`."""

from __future__ import annotations

from pathlib import Path

from transformers import Wav2Vec2Config

from modeling_codectrace.configuration_codectrace import xlsr_300m_backbone_config

# Backbone shapes for training from scratch (no pre-trained checkpoint): overrides of the XLS-R config.
BACKBONE_SIZES: dict[str, dict] = {
    "xlsr-300m": {},
    # A small waveform model: the long-audio figures of benchmarks/bench_inference.py.
    "small": dict(
        hidden_size=128, num_hidden_layers=4, num_attention_heads=4, intermediate_size=256,
        conv_dim=(64, 64, 64, 64), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=32, num_conv_pos_embedding_groups=4,
    ),
    # Tests, smoke runs and the official preset at a tiny shape.
    "tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(16, 16, 16, 16), conv_kernel=(10, 8, 4, 4), conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0,
    ),
    # For `feature_encoder="stft_phase"` (the CPU demo): a 512-point STFT at a 10-ms hop (the first conv entry, which
    # the config's stft_n_fft / stft_hop_length set), a learned 2x convolution to 50 Hz frames, then the same
    # 2-layer, 32-wide transformer.
    # docs/codecfake_mini.md: its phase features carry the decoder domain over to unseen codecs.
    "stft-tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(128, 128), conv_kernel=(512, 2), conv_stride=(160, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0,
    ),
}


# AASIST widths: the paper's (the config's defaults), and a narrow one for smoke tests and CPU runs.
AASIST_SIZES: dict[str, dict] = {
    "official": {},
    "tiny": dict(projection_dim=24, encoder_filters=[[1, 8], [8, 8], [8, 16], [16, 16], [16, 16], [16, 16]],
                 gat_dims=[16, 8]),
}

# CodecFake-mini, the demo's corpus: the release (audio + protocols) and the dataset built from it.
DEMO_RELEASE_DIR = Path("data/codecfake-mini/release")
DEMO_DATASET_DIR = Path("data/codecfake-mini/dataset")


def backbone_config(size: str, **overrides) -> Wav2Vec2Config:
    """The XLS-R layout at one of `BACKBONE_SIZES`, with optional overrides."""
    if size not in BACKBONE_SIZES:
        raise ValueError(f"backbone size must be one of {list(BACKBONE_SIZES)}, got {size!r}.")
    return xlsr_300m_backbone_config(**{**BACKBONE_SIZES[size], **overrides})


# `train.py --preset NAME` fills these defaults; flags given on the command line win. `official` is the dataclass
# defaults of `codectrace.training` (the authors' recipe, docs/official_recipe.md); `demo` trains a small model
# from scratch on CodecFake-mini on a CPU in minutes (docs/codecfake_mini.md).
TRAINING_PRESETS: dict[str, dict] = {
    "official": {},
    "demo": dict(
        backbone_size="stft-tiny", feature_encoder="stft_phase", stft_n_fft=512, stft_hop_length=160,
        stft_features=["phase_deviation", "weighted_phase_deviation"], head_type="stats_pooling",
        use_weighted_layer_sum=True, chunk_samples=32000,
        augment="channel", task_weighting="uncertainty", crop="random", output_dir="outputs/demo-M1",
        optimizer_recipe="trainer", optim="adamw_torch",
        learning_rate=1e-3, weight_decay=1e-2, lr_scheduler_type="cosine", warmup_steps=20,
        per_device_train_batch_size=16, per_device_eval_batch_size=32, num_train_epochs=60, logging_steps=20,
        early_stopping_patience=5, dataloader_num_workers=1, demo_utterances=30,
        max_grad_norm=1.0, train_drop_last=False,  # the Trainer's defaults, with which the demo was measured
        calibrate=True, unknown_source=True, selection_set="validation+val_codecs", selection_mean_of_parts=True,
        weight_averaging_decay=0.998, codec_adversary_weight=0.1, partial_spoof_rate=0.5,
        frame_head=True, partial_spoof_bin_labels=False, trim_silence_db=50.0,
        # augment, task_weighting, selection_set, selection_mean_of_parts, weight_averaging_decay and the codec
        # adversary: chosen on validation data over seeds (docs/research/generalisation.md); partial_spoof_rate on the
        # validation partly spoofed set and validation whole clips over seeds (docs/segments.md); the frame head, with
        # spliced windows training it alone, likewise (docs/research/frame_head.md); trim_silence_db on the validation
        # sets and ktuberling's gated validation speakers over seeds (docs/research/silence_trimming.md)
    ),
}

