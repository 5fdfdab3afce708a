"""Loading a tracer (model + feature extractor + pipeline) and saving Hub-ready model folders."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from transformers import AutoFeatureExtractor, pipeline

from modeling_codectrace.feature_extraction_codectrace import CodecTraceFeatureExtractor

from .files import write_json
from .pipeline import CodecSourceTracingPipeline
from .resolve import load_model


def load_tracer(
    model_name_or_path: str,
    revision: str | None = None,
    device: str | int | None = None,
    trust_remote_code: bool = False,
    precision: str = "auto",
    **call_arguments,
) -> CodecSourceTracingPipeline:
    """The `codec-source-tracing` pipeline for a model folder or hub id (this package's code by default); a
    reference that does not resolve raises `ResolveError` with one line naming both possibilities. The pipeline
    finds the model's unknown-source scorer itself (`unknown_source="auto"`). `call_arguments` (e.g.
    `trim_silence_db=False`) become the pipeline's defaults for every call."""
    model = load_model(model_name_or_path, revision=revision, trust_remote_code=trust_remote_code)
    try:
        extractor = AutoFeatureExtractor.from_pretrained(model_name_or_path, revision=revision,
                                                         trust_remote_code=trust_remote_code)
    except OSError:  # a folder without preprocessor_config.json: derive it from the model config
        extractor = CodecTraceFeatureExtractor(sampling_rate=model.config.sampling_rate,
                                               chunk_samples=model.config.chunk_samples)
    return pipeline("codec-source-tracing", model=model, feature_extractor=extractor, device=device,
                    precision=precision, **call_arguments)


PIPELINE_FILE = "pipeline_codectrace.py"  # the name folders saved by 0.1.0 used for the pipeline's code
CUSTOM_PIPELINE = {"codec-source-tracing": {"impl": "pipeline_codectrace.CodecSourceTracingPipeline",
                                            "pt": ["AutoModel"], "type": "audio"}}


def save_model_folder(model, feature_extractor, folder: str | Path) -> Path:
    """Writes weights (safetensors), config (with `auto_map`), feature extractor and the model core's code files,
    so the folder loads with `AutoModel.from_pretrained(folder, trust_remote_code=True)` where this package is not
    installed. The `codec-source-tracing` pipeline is this package's: the folder carries only a hand-over file
    (`pipeline_handover.py`) that gives it where the package is installed and says how to get it elsewhere."""
    folder = Path(folder)
    if hasattr(model.config, "custom_pipelines"):  # loaded with remote code from an older folder
        del model.config.custom_pipelines
    model.save_pretrained(str(folder))
    feature_extractor.save_pretrained(str(folder))
    shutil.copyfile(Path(__file__).with_name("pipeline_handover.py"), folder / PIPELINE_FILE)
    config = json.loads((folder / "config.json").read_text())
    write_json(folder / "config.json", config | {"custom_pipelines": CUSTOM_PIPELINE})
    return folder


def push_model_folder(folder: str | Path, repo_id: str, token: str | None = None, private: bool | None = None,
                      revision: str | None = None, api=None) -> str:
    """Uploads a model folder (weights, config, feature extractor, code files, card, results), never its
    training checkpoints; returns the commit URL."""
    from huggingface_hub import HfApi

    api = api or HfApi(token=token)
    api.create_repo(repo_id, private=private, exist_ok=True)
    commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, revision=revision,
                               ignore_patterns=["checkpoint-*", "checkpoint-*/**", "runs/**", "*.tmp"],
                               commit_message="Upload CodecTrace model")
    return str(commit)
