"""Tiny configurations for tests, examples and smoke runs (seconds on a CPU, no downloads)."""

from __future__ import annotations

from .configuration_codectrace import CodecTraceConfig, xlsr_300m_backbone_config


def tiny_backbone_config(**overrides):
    """A 2-layer, 32-wide Wav2Vec2 with the XLS-R layout (stable layer norm) and a 320x conv stride."""
    settings = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        conv_dim=(16, 16, 16, 16),
        conv_kernel=(10, 8, 4, 4),
        conv_stride=(5, 4, 4, 4),
        num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=2,
        hidden_dropout=0.0,
        attention_dropout=0.0,
        feat_proj_dropout=0.0,
    )
    settings.update(overrides)
    return xlsr_300m_backbone_config(**settings)


def tiny_config(variant: str = "M1", chunk_samples: int = 16000, **overrides) -> CodecTraceConfig:
    """A CodecTrace config small enough for unit tests: tiny backbone and a narrow AASIST."""
    settings = dict(
        backbone_config=tiny_backbone_config(),
        variant=variant,
        projection_dim=24,
        encoder_filters=[[1, 8], [8, 8], [8, 16], [16, 16], [16, 16], [16, 16]],
        gat_dims=[16, 8],
        chunk_samples=chunk_samples,
    )
    settings.update(overrides)
    return CodecTraceConfig(**settings)
