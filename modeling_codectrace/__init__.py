"""The CodecTrace model core: configuration, Wav2Vec2 + AASIST model, feature extractor.

These are the files that travel with a saved model (`trust_remote_code`), so they import only the standard
library, torch and transformers. Importing the package registers the `codectrace` model type with the transformers
Auto classes, so `AutoConfig`, `AutoModel` and `AutoFeatureExtractor` resolve it without remote code. Audio I/O, the
`codec-source-tracing` pipeline, training and evaluation live in the `codectrace` package.
"""

from transformers import AutoConfig, AutoFeatureExtractor, AutoModel, AutoModelForAudioClassification

from .configuration_codectrace import (
    FEATURE_ENCODERS,
    HEAD_TYPES,
    LABEL_DESCRIPTIONS,
    STFT_FEATURES,
    TASK_DESCRIPTIONS,
    TASK_LABELS,
    TASKS,
    VARIANTS,
    CodecTraceConfig,
)
from .feature_extraction_codectrace import CodecTraceFeatureExtractor
from .modeling_codectrace import (
    CodecTraceForSourceTracing,
    CodecTracePreTrainedModel,
    SourceTracingOutput,
    spoof_probability,
)

__version__ = "0.1.0"

AutoConfig.register("codectrace", CodecTraceConfig, exist_ok=True)
AutoModel.register(CodecTraceConfig, CodecTraceForSourceTracing, exist_ok=True)
AutoModelForAudioClassification.register(CodecTraceConfig, CodecTraceForSourceTracing, exist_ok=True)
AutoFeatureExtractor.register(CodecTraceConfig, CodecTraceFeatureExtractor, exist_ok=True)

# Saved folders carry the code files and an `auto_map`, so they load with trust_remote_code=True
# where this package is not installed.
CodecTraceConfig.register_for_auto_class()
CodecTraceForSourceTracing.register_for_auto_class("AutoModel")
CodecTraceFeatureExtractor.register_for_auto_class("AutoFeatureExtractor")

__all__ = [
    "FEATURE_ENCODERS",
    "STFT_FEATURES",
    "HEAD_TYPES",
    "LABEL_DESCRIPTIONS",
    "TASK_DESCRIPTIONS",
    "TASK_LABELS",
    "TASKS",
    "VARIANTS",
    "CodecTraceConfig",
    "CodecTraceFeatureExtractor",
    "CodecTraceForSourceTracing",
    "CodecTracePreTrainedModel",
    "SourceTracingOutput",
    "spoof_probability",
]
