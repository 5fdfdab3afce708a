"""Conversion between the authors' released W2V2-AASIST checkpoints (plain PyTorch state dicts with a fairseq
XLS-R under `ssl_model.model.`) and this project's format, both ways.

    codectrace convert-official M1_aux_bal.pth --out converted/M1 [--variant auto]

The backbone shape is inferred from the tensors; only the fairseq pre-training-only tensors (`quantizer`,
`project_q`, `final_proj`) are dropped; the load is strict (no missing, no unexpected keys).
"""

from __future__ import annotations

import pickle
import re
import zipfile
from pathlib import Path

import torch

from modeling_codectrace.configuration_codectrace import (
    VARIANTS,
    CodecTraceConfig,
    variant_of,
    xlsr_300m_backbone_config,
)
from modeling_codectrace.modeling_codectrace import BRANCH_NAMES, CodecTraceForSourceTracing

from .errors import ToolError

FAIRSEQ_PREFIX = "ssl_model.model."
PRETRAINING_ONLY = ("quantizer.", "project_q.", "final_proj.")
AASIST_TRUNK = ("LL.", "first_bn.", "first_bn1.", "encoder.", "attention.")
OFFICIAL_BRANCH_NAMES = {branch: task for task, branch in BRANCH_NAMES.items()}
_KNOWN_STRIDES = {10: 5, 3: 2, 2: 2}  # kernel -> stride in every wav2vec 2.0 / XLS-R feature encoder

# (official fairseq name, this project's name): `{n}` is a layer index, `{p}` weight or bias.
_BACKBONE_RULES: list[tuple[str, str]] = [
    ("feature_extractor.conv_layers.{n}.0.weight", "feature_extractor.conv_layers.{n}.conv.weight"),
    ("feature_extractor.conv_layers.{n}.0.bias", "feature_extractor.conv_layers.{n}.conv.bias"),
    ("feature_extractor.conv_layers.{n}.2.1.{p}", "feature_extractor.conv_layers.{n}.layer_norm.{p}"),
    ("post_extract_proj.{p}", "feature_projection.projection.{p}"),
    ("layer_norm.{p}", "feature_projection.layer_norm.{p}"),
    ("encoder.pos_conv.0.bias", "encoder.pos_conv_embed.conv.bias"),
    ("encoder.pos_conv.0.weight_g", "encoder.pos_conv_embed.conv.parametrizations.weight.original0"),
    ("encoder.pos_conv.0.weight_v", "encoder.pos_conv_embed.conv.parametrizations.weight.original1"),
    ("encoder.layers.{n}.self_attn.k_proj.{p}", "encoder.layers.{n}.attention.k_proj.{p}"),
    ("encoder.layers.{n}.self_attn.q_proj.{p}", "encoder.layers.{n}.attention.q_proj.{p}"),
    ("encoder.layers.{n}.self_attn.v_proj.{p}", "encoder.layers.{n}.attention.v_proj.{p}"),
    ("encoder.layers.{n}.self_attn.out_proj.{p}", "encoder.layers.{n}.attention.out_proj.{p}"),
    ("encoder.layers.{n}.self_attn_layer_norm.{p}", "encoder.layers.{n}.layer_norm.{p}"),
    ("encoder.layers.{n}.fc1.{p}", "encoder.layers.{n}.feed_forward.intermediate_dense.{p}"),
    ("encoder.layers.{n}.fc2.{p}", "encoder.layers.{n}.feed_forward.output_dense.{p}"),
    ("encoder.layers.{n}.final_layer_norm.{p}", "encoder.layers.{n}.final_layer_norm.{p}"),
    ("encoder.layer_norm.{p}", "encoder.layer_norm.{p}"),
    ("mask_emb", "masked_spec_embed"),
]


class ConversionError(ToolError):
    """The checkpoint is not an official W2V2-AASIST state dict, or does not map completely."""


PICKLE_PROTOCOL_MARK = b"\x80"  # the first byte of a pickle (torch's legacy, non-zip format)


def _is_torch_file(path: Path) -> bool:
    """Whether the file has the shape of something `torch.save` writes: a zip archive, or a raw pickle."""
    if zipfile.is_zipfile(path):
        return True
    with open(path, "rb") as handle:
        return handle.read(1) == PICKLE_PROTOCOL_MARK


def _pattern(template: str) -> re.Pattern:
    escaped = re.escape(template).replace(r"\{n\}", r"(?P<n>\d+)").replace(r"\{p\}", r"(?P<p>weight|bias)")
    return re.compile(f"^{escaped}$")


_FORWARD = [(_pattern(a), b) for a, b in _BACKBONE_RULES]
_REVERSE = [(_pattern(b), a) for a, b in _BACKBONE_RULES]


def _apply(rules, name: str) -> str | None:
    for pattern, template in rules:
        match = pattern.match(name)
        if match:
            return template.format(**match.groupdict())
    return None


def official_to_ours(state_dict: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Renames every official key; returns (new state dict, dropped pre-training-only keys)."""
    converted, dropped, unknown = {}, [], []
    for name, tensor in state_dict.items():
        if name.startswith(FAIRSEQ_PREFIX):
            inner = name[len(FAIRSEQ_PREFIX):]
            if inner.startswith(PRETRAINING_ONLY):
                dropped.append(name)
                continue
            target = _apply(_FORWARD, inner)
            if target is None:
                unknown.append(name)
                continue
            converted["wav2vec2." + target] = tensor
        elif name.startswith(AASIST_TRUNK):
            converted["trunk." + name] = tensor
        elif name.split(".", 1)[0] in OFFICIAL_BRANCH_NAMES:
            converted[name] = tensor
        else:
            unknown.append(name)
    if unknown:
        raise ConversionError(f"{len(unknown)} keys have no mapping, e.g. {unknown[:5]}.")
    return converted, dropped


def ours_to_official(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The reverse mapping: this project's state dict -> the official key layout."""
    official = {}
    for name, tensor in state_dict.items():
        if name.startswith("wav2vec2."):
            source = _apply(_REVERSE, name[len("wav2vec2."):])
            if source is None:
                raise ConversionError(f"no official name for {name!r}.")
            official[FAIRSEQ_PREFIX + source] = tensor
        elif name.startswith("trunk."):
            official[name[len("trunk."):]] = tensor
        elif name.split(".", 1)[0] in OFFICIAL_BRANCH_NAMES:
            official[name] = tensor
        else:
            raise ConversionError(f"no official name for {name!r} (not part of the official model).")
    return official


def load_official_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """Loads with `weights_only=True`; accepts a plain state dict (optionally under `state_dict`/`model`, or
    with DataParallel's `module.` prefix) and refuses anything else with a clear message."""
    path = Path(path)
    if not path.is_file():
        raise ConversionError(f"{path}: no such file.")
    if not _is_torch_file(path):
        raise ConversionError(f"{path}: not a PyTorch checkpoint (expected a .pth state dict saved by torch.save).")
    try:
        loaded = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError) as error:
        raise ConversionError(
            f"{path}: not loadable as a plain PyTorch state dict with weights_only=True (truncated, or it holds "
            "Python objects besides tensors, which are refused for safety); --verbose shows why.",
            detail=str(error)) from None
    if isinstance(loaded, dict) and len(loaded) == 1 and next(iter(loaded)) in ("state_dict", "model"):
        loaded = next(iter(loaded.values()))
    if not isinstance(loaded, dict) or not loaded or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in loaded.items()
    ):
        raise ConversionError(
            f"{path}: expected a state dict (a dict of parameter names to tensors), got {type(loaded).__name__}."
        )
    if all(k.startswith("module.") for k in loaded):
        loaded = {k[len("module."):]: v for k, v in loaded.items()}
    return dict(loaded)


def infer_config(state_dict: dict[str, torch.Tensor], variant: str = "auto", **overrides) -> CodecTraceConfig:
    """Backbone and AASIST shapes from the tensors; the variant from the branches present."""
    present = sorted({k.split(".", 1)[0] for k in state_dict if k.split(".", 1)[0] in OFFICIAL_BRANCH_NAMES})
    tasks = [OFFICIAL_BRANCH_NAMES[b] for b in present]
    if not tasks:
        raise ConversionError(f"no task branch found (expected some of {list(OFFICIAL_BRANCH_NAMES)}).")
    detected = variant_of(tuple(tasks))
    if variant != "auto":
        if variant.upper() not in VARIANTS:
            raise ConversionError(f"unknown variant {variant!r}; accepted: auto, {', '.join(VARIANTS)}.")
        if set(VARIANTS[variant.upper()]) != set(tasks):
            raise ConversionError(f"--variant {variant} needs heads {VARIANTS[variant.upper()]} but the "
                                  f"checkpoint has {tasks}.")

    prefix = FAIRSEQ_PREFIX
    conv = sorted((int(m.group(1)), v) for k, v in state_dict.items()
                  if (m := re.match(rf"^{re.escape(prefix)}feature_extractor\.conv_layers\.(\d+)\.0\.weight$", k)))
    if not conv:
        raise ConversionError("no fairseq feature encoder found under 'ssl_model.model.'.")
    kernels = [int(w.shape[-1]) for _, w in conv]
    if "conv_stride" in overrides:
        strides = list(overrides.pop("conv_stride"))
    elif all(k in _KNOWN_STRIDES for k in kernels):
        strides = [_KNOWN_STRIDES[k] for k in kernels]
    else:
        raise ConversionError(f"cannot infer conv strides for kernels {kernels}; pass conv_stride.")
    layer_norm_layers = [n for n, _ in conv if f"{prefix}feature_extractor.conv_layers.{n}.2.1.weight" in state_dict]
    hidden = int(state_dict[f"{prefix}post_extract_proj.weight"].shape[0])
    layers = len({int(m.group(1)) for k in state_dict
                  if (m := re.match(rf"^{re.escape(prefix)}encoder\.layers\.(\d+)\.", k))})
    pos_conv = state_dict[f"{prefix}encoder.pos_conv.0.weight_v"]
    backbone = xlsr_300m_backbone_config(
        hidden_size=hidden,
        num_hidden_layers=layers,
        num_attention_heads=overrides.pop("num_attention_heads", max(hidden // 64, 1)),
        intermediate_size=int(state_dict[f"{prefix}encoder.layers.0.fc1.weight"].shape[0]),
        conv_dim=[int(w.shape[0]) for _, w in conv],
        conv_kernel=kernels,
        conv_stride=strides,
        conv_bias=f"{prefix}feature_extractor.conv_layers.0.0.bias" in state_dict,
        feat_extract_norm="layer" if len(layer_norm_layers) == len(conv) else "group",
        num_conv_pos_embeddings=int(pos_conv.shape[-1]),
        num_conv_pos_embedding_groups=hidden // int(pos_conv.shape[1]),
        do_stable_layer_norm=overrides.pop("do_stable_layer_norm", True),
        # Keeps `masked_spec_embed` (fairseq `mask_emb`) so the round trip is exact; SpecAugment stays off.
        mask_time_prob=0.05 if f"{prefix}mask_emb" in state_dict else 0.0,
    )
    blocks = len({k.split(".")[1] for k in state_dict if re.match(r"^encoder\.\d+\.0\.", k)})
    encoder_filters = [list(state_dict[f"encoder.{i}.0.conv1.weight"].shape[:2])[::-1] for i in range(blocks)]
    first = present[0]
    gat_dims = [int(state_dict[f"{first}.GAT_layer_S.att_proj.weight"].shape[0]),
                int(state_dict[f"{first}.HtrgGAT_layer_ST11.att_proj.weight"].shape[0])]
    projection_dim = int(state_dict["LL.weight"].shape[0])
    config = CodecTraceConfig(backbone_config=backbone, tasks=tasks, projection_dim=projection_dim,
                              encoder_filters=encoder_filters, gat_dims=gat_dims, **overrides)
    if config.variant != detected:
        raise ConversionError(f"inconsistent variant detection: {config.variant} vs {detected}.")
    return config


def convert_official_checkpoint(path: str | Path, variant: str = "auto", **config_overrides):
    """Official checkpoint -> (model with the weights loaded strictly, dropped keys)."""
    state_dict = load_official_checkpoint(path)
    config = infer_config(state_dict, variant, **config_overrides)
    converted, dropped = official_to_ours(state_dict)
    model = CodecTraceForSourceTracing(config)
    result = model.load_state_dict(converted, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise ConversionError(
            f"the checkpoint does not match the inferred model: missing {result.missing_keys[:5]}, "
            f"unexpected {result.unexpected_keys[:5]}."
        )
    return model.eval(), dropped


def write_converted_folder(path: str | Path, out: str | Path, variant: str = "auto") -> Path:
    """Converts and writes a ready folder: safetensors, config, feature extractor, code files, model card."""
    from modeling_codectrace.feature_extraction_codectrace import CodecTraceFeatureExtractor

    from .files import write_text
    from .hub import save_model_folder
    from .model_card import render_model_card

    model, dropped = convert_official_checkpoint(path, variant)
    extractor = CodecTraceFeatureExtractor(sampling_rate=model.config.sampling_rate,
                                           chunk_samples=model.config.chunk_samples)
    out = Path(out)
    save_model_folder(model, extractor, out)
    card = render_model_card(
        model.config, model_name=out.name, base_model="facebook/wav2vec2-xls-r-300m",
        source_note=(f"converted from the authors' released checkpoint `{Path(path).name}` "
                     "(Hugging Face repo CodecFake/CodecFake_Source_Tracing, model_checkpoints/Wav2Vec2_baseline) "
                     f"with `codectrace convert-official`; {len(dropped)} pre-training-only tensors dropped. "
                     "Weights and results are the authors'; cite their papers."),
        results_markdown="See the paper (Chen et al., Interspeech 2025) for this checkpoint's results.",
    )
    write_text(out / "README.md", card)
    write_text(out / "model_card.md", card)
    return out


def add_convert_parser(sub) -> None:
    parser = sub.add_parser("convert-official", help="convert an authors' .pth checkpoint into a model folder",
                            description=__doc__)
    parser.add_argument("checkpoint", help="official .pth state dict (e.g. M1_aux_bal.pth)")
    parser.add_argument("--out", required=True, help="output folder")
    parser.add_argument("--variant", default="auto", help="auto (from the branches present) or a variant name")
    parser.set_defaults(func=_run_convert)


def _run_convert(args) -> int:
    out = write_converted_folder(args.checkpoint, args.out, args.variant)
    print(f"converted {args.checkpoint} -> {out}")
    return 0


__all__ = [
    "ConversionError",
    "convert_official_checkpoint",
    "infer_config",
    "load_official_checkpoint",
    "official_to_ours",
    "ours_to_official",
    "write_converted_folder",
]
