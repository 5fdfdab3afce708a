"""The zoo's shipped weights: fp16 safetensors with the codec's spec and training record in the metadata."""

from __future__ import annotations

import json
from pathlib import Path

from codectrace.files import atomic_path

from .modules import NeuralCodec
from .specs import ZOO, CodecSpec

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MAX_FILE_BYTES = 2_500_000


def weights_path(name: str, weights_dir: str | Path = WEIGHTS_DIR) -> Path:
    """Where a zoo codec's shipped weights live."""
    return Path(weights_dir) / f"{name}.safetensors"


def save_codec(model: NeuralCodec, path: str | Path, record: dict) -> Path:
    """Writes the codec's floating-point tensors as fp16 (others unchanged), then renames into place."""
    from safetensors.torch import save_file

    path = Path(path)
    tensors = {key: (value.half() if value.is_floating_point() else value).contiguous()
               for key, value in model.state_dict().items()}
    metadata = {"spec": model.spec.to_json(), "record": json.dumps(record)}
    with atomic_path(path) as partial:
        save_file(tensors, str(partial), metadata=metadata)
    return path


def read_metadata(path: str | Path) -> tuple[CodecSpec, dict]:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata()
    return CodecSpec.from_dict(json.loads(meta["spec"])), json.loads(meta["record"])


def load_codec(name_or_path: str | Path, weights_dir: str | Path = WEIGHTS_DIR) -> NeuralCodec:
    """A shipped codec by name (or a .safetensors path), in eval mode with fp32 weights."""
    from safetensors.torch import load_file

    path = Path(name_or_path)
    if path.suffix != ".safetensors":
        path = weights_path(str(name_or_path), weights_dir)
    if not path.is_file():
        raise FileNotFoundError(f"no codec weights at {path}; train them with "
                                "`python -m codec_zoo.train_zoo` (known codecs: "
                                f"{', '.join(s.name for s in ZOO)}).")
    spec, record = read_metadata(path)
    model = NeuralCodec(spec, num_speakers=record["num_speakers"], num_phones=record["num_phones"])
    state = {key: value.float() if value.is_floating_point() else value for key, value in load_file(str(path)).items()}
    model.load_state_dict(state)
    return model.eval()


def shipped_codecs(weights_dir: str | Path = WEIGHTS_DIR) -> list[str]:
    """Names of the zoo codecs whose weights are present, in zoo order."""
    return [s.name for s in ZOO if weights_path(s.name, weights_dir).is_file()]
