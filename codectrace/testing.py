"""Tiny configurations for tests, examples and smoke runs (seconds on a CPU, no downloads). Only tests, examples and
benchmarks import this module; the tools and scripts build their models from `codectrace.presets`."""

from __future__ import annotations

from modeling_codectrace.configuration_codectrace import CodecTraceConfig

from .presets import AASIST_SIZES, backbone_config


def tiny_backbone_config(**overrides):
    """A 2-layer, 32-wide Wav2Vec2 with the XLS-R layout (stable layer norm) and a 320x conv stride."""
    return backbone_config("tiny", **overrides)


def tiny_config(variant: str = "M1", chunk_samples: int = 16000, **overrides) -> CodecTraceConfig:
    """A CodecTrace config small enough for unit tests: tiny backbone and a narrow AASIST."""
    settings = dict(backbone_config=tiny_backbone_config(), variant=variant, chunk_samples=chunk_samples,
                    **AASIST_SIZES["tiny"])
    settings.update(overrides)
    return CodecTraceConfig(**settings)
