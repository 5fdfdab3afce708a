"""What a user names as a model or a dataset: an existing folder, else a Hub id. One way for every consumer (the CLI,
train.py, the pipeline helpers, the Space), so a reference that does not resolve always fails with one line naming
both possibilities, never a library traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

from .errors import ToolError, one_line

WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin",
                "pytorch_model.bin.index.json")
DATASET_HINT = "Give a folder built by `python -m dataset_scripts.build_codecfake_plus build` or a Hub dataset id."


class ResolveError(ToolError):
    """A model or dataset reference that names neither a usable folder nor a Hub repository that can be fetched."""


def check_model_folder(folder: str | Path) -> Path:
    """Refuses a folder that does not hold a saved CodecTrace model, saying what is missing."""
    folder = Path(folder)
    config_path = folder / "config.json"
    if not config_path.is_file():
        raise ResolveError(f"model folder {folder} has no config.json: it is not a saved model (train.py, "
                           "`codectrace convert-official` and save_pretrained write one).")
    try:
        model_type = json.loads(config_path.read_text()).get("model_type")
    except (ValueError, AttributeError) as error:
        raise ResolveError(f"{config_path} is not a valid config file ({one_line(error)}).") from None
    if model_type != "codectrace":
        raise ResolveError(f"model folder {folder} holds a {model_type!r} model, not a CodecTrace model "
                           "(model_type 'codectrace').")
    if not any((folder / name).is_file() for name in WEIGHT_FILES):
        raise ResolveError(f"model folder {folder} has no weights ({' or '.join(WEIGHT_FILES[::2])}).")
    return folder


def _hub_problem(reference: str, kind: str, error: Exception) -> ResolveError:
    from huggingface_hub.errors import HFValidationError

    if isinstance(error, HFValidationError):
        return ResolveError(f"no folder {reference!r}, and it is not a valid Hub {kind} id (NAME or NAMESPACE/NAME).")
    return ResolveError(f"no folder {reference!r}, and the Hub {kind} id could not be fetched (offline, missing or "
                        f"private?): {one_line(error)}")


def resolve_model(reference: str, revision: str | None = None) -> str:
    """An existing folder must hold a CodecTrace model; anything else must be a Hub model id whose config can be
    fetched (or is cached, when offline). Returns the reference unchanged."""
    from huggingface_hub import hf_hub_download

    if not str(reference).strip():
        raise ResolveError("no model given: name a model folder or a Hub model id.")
    path = Path(reference).expanduser()
    if path.is_dir():
        return str(check_model_folder(path))
    if path.is_file():
        raise ResolveError(f"model {reference!r} is a file; give the model's folder (config.json and weights) or a "
                           "Hub id.")
    try:
        hf_hub_download(reference, "config.json", revision=revision)
    except (ValueError, OSError) as error:  # invalid id, not found, offline, gated, ... (all OSError or ValueError)
        raise _hub_problem(reference, "model", error) from None
    return reference


def folder_holding(model_name_or_path: str | None, file_name: str, revision: str | None = None) -> Path | None:
    """The folder holding a file saved beside a model: the model's own folder, or for a Hub id the cache folder the
    file is fetched into (offline: from the cache only); None when the reference is empty or the file cannot be
    had. Whether the file is there is the caller's to check."""
    if not model_name_or_path:
        return None
    if Path(model_name_or_path).is_dir():
        return Path(model_name_or_path)
    from huggingface_hub import hf_hub_download

    try:
        return Path(hf_hub_download(model_name_or_path, file_name, revision=revision)).parent
    except (ValueError, OSError):  # no such file in the repo, offline without it in the cache, not a valid id
        return None


def load_model(reference: str, revision: str | None = None, trust_remote_code: bool = False):
    """`AutoModel.from_pretrained` after `resolve_model`; a folder whose files cannot be read (e.g. truncated
    weights) is refused in one line."""
    from safetensors import SafetensorError
    from transformers import AutoModel

    resolved = resolve_model(reference, revision)
    try:
        return AutoModel.from_pretrained(resolved, revision=revision, trust_remote_code=trust_remote_code)
    except (OSError, ValueError, RuntimeError, SafetensorError) as error:
        raise ResolveError(f"model {reference!r} could not be loaded (truncated or corrupt files?): "
                           f"{one_line(error)}", detail=repr(error)) from None


def load_split(dataset: str, config: str, split: str, revision: str | None = None, limit: int | None = None):
    """One split of a built CodecFake+ (or CodecFake-mini) dataset, audio left undecoded, optionally the first
    `limit` rows. A folder that is not there and a Hub id that cannot be fetched are refused in one line."""
    from datasets import Audio, load_dataset

    if not str(dataset).strip():
        raise ResolveError(f"no dataset given. {DATASET_HINT}")
    try:
        ds = load_dataset(dataset, config, split=split, revision=revision)
    except (ValueError, OSError) as error:  # missing folder or config, offline, invalid id, ...
        where = (f"no folder {dataset!r}, and the Hub dataset id could not be fetched ({one_line(error)})"
                 if not Path(dataset).expanduser().is_dir() else one_line(error))
        raise ResolveError(f"cannot load config {config!r} split {split!r} of dataset {dataset!r}: {where}. "
                           f"{DATASET_HINT}") from None
    if limit is not None:
        ds = ds.select(range(min(limit, len(ds))))
    return ds.cast_column("audio", Audio(decode=False))
