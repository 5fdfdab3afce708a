"""Saved into every model folder as `pipeline_codectrace.py`, the file its `custom_pipelines` entry names.

The `codec-source-tracing` pipeline needs audio decoding, which the model core leaves out, so it stays in the
codectrace package. With `trust_remote_code=True` this file hands over the package's pipeline where it is installed,
and otherwise says how to get it (transformers does not require imports made inside a `try` block).
"""

try:
    from codectrace.pipeline import CodecSourceTracingPipeline  # noqa: F401
except ImportError as error:
    raise ImportError(
        "the codec-source-tracing pipeline is the codectrace package's (it decodes audio and slides windows): "
        "install it from a checkout of its repository (pip install .), then `import codectrace`. From this model "
        "folder alone, AutoModel.from_pretrained(folder, trust_remote_code=True) and "
        "pipeline('audio-classification', model=folder, trust_remote_code=True) work."
    ) from error
