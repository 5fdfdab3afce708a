"""codectrace: the tools around the CodecTrace model core (`modeling_codectrace`).

Audio loading, the `codec-source-tracing` pipeline, data and augmentation, metrics and evaluation, training,
presets, model cards, the Hub, checkpoint conversion, publishing and the `codectrace` command. Importing it
registers the model with the transformers Auto classes (through `modeling_codectrace`) and the pipeline task:

    import codectrace
    from transformers import pipeline
    tracer = pipeline("codec-source-tracing", model="outputs/demo-M1")
"""

from transformers import AutoModel
from transformers.pipelines import PIPELINE_REGISTRY

import modeling_codectrace  # noqa: F401  (registers the model type with the Auto classes)

from .pipeline import CodecSourceTracingPipeline

__version__ = modeling_codectrace.__version__

PIPELINE_REGISTRY.register_pipeline(
    "codec-source-tracing", pipeline_class=CodecSourceTracingPipeline, pt_model=AutoModel, type="audio"
)

__all__ = ["CodecSourceTracingPipeline"]
