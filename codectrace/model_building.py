"""The model a training run starts from: a new one at a named shape, one on a pre-trained Wav2Vec2 backbone, or a
CodecTrace model to continue; then the freezing asked for."""

from __future__ import annotations

import logging

import modeling_codectrace as mc

from .presets import AASIST_SIZES, backbone_config
from .resolve import resolve_model

logger = logging.getLogger("codectrace.train")


def config_options(model_args) -> dict:
    """The `CodecTraceConfig` arguments that the model options set (all but the backbone)."""
    front_end = {}
    if model_args.feature_encoder == "stft_phase":
        front_end = dict(stft_n_fft=model_args.stft_n_fft, stft_hop_length=model_args.stft_hop_length)
    return dict(variant=model_args.variant, chunk_samples=model_args.chunk_samples,
                task_weighting=model_args.task_weighting, head_type=model_args.head_type,
                use_weighted_layer_sum=model_args.use_weighted_layer_sum, feature_encoder=model_args.feature_encoder,
                stft_features=model_args.stft_features, frame_head=model_args.frame_head,
                trim_silence_db=model_args.trim_silence_db, **front_end,
                **AASIST_SIZES[model_args.aasist_size])


def build_model(model_args) -> mc.CodecTraceForSourceTracing:
    common = config_options(model_args)
    if model_args.model_name_or_path:
        model = mc.CodecTraceForSourceTracing.from_pretrained(
            resolve_model(model_args.model_name_or_path, model_args.model_revision), revision=model_args.model_revision)
        if model.config.variant != model_args.variant:
            logger.warning("continuing a %s model; --variant %s is ignored", model.config.variant, model_args.variant)
    elif model_args.backbone:
        model = mc.CodecTraceForSourceTracing.from_backbone(model_args.backbone, **common)
    else:
        model = mc.CodecTraceForSourceTracing(mc.CodecTraceConfig(
            backbone_config=backbone_config(model_args.backbone_size), **common))
    if model_args.freeze_backbone:
        model.freeze_backbone()
    elif model_args.freeze_feature_encoder:
        model.freeze_feature_encoder()
    return model
