"""Tiny configurations for tests, examples and smoke runs (seconds on a CPU, no downloads)."""

from __future__ import annotations

from .configuration_codectrace import BACKBONE_SIZES, CodecTraceConfig, xlsr_300m_backbone_config

TINY_AASIST = dict(projection_dim=24, encoder_filters=[[1, 8], [8, 8], [8, 16], [16, 16], [16, 16], [16, 16]],
                   gat_dims=[16, 8])


def tiny_backbone_config(**overrides):
    """A 2-layer, 32-wide Wav2Vec2 with the XLS-R layout (stable layer norm) and a 320x conv stride."""
    return xlsr_300m_backbone_config(**{**BACKBONE_SIZES["tiny"], **overrides})


def tiny_config(variant: str = "M1", chunk_samples: int = 16000, **overrides) -> CodecTraceConfig:
    """A CodecTrace config small enough for unit tests: tiny backbone and a narrow AASIST."""
    settings = dict(backbone_config=tiny_backbone_config(), variant=variant, chunk_samples=chunk_samples, **TINY_AASIST)
    settings.update(overrides)
    return CodecTraceConfig(**settings)
