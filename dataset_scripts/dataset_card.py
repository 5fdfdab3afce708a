"""The dataset card (README.md with the `configs:` YAML) of a built CodecFake+ folder."""

from __future__ import annotations

import yaml
from datasets import Features

from codectrace.model_card import CITATION
from modeling_codectrace.configuration_codectrace import TASK_LABELS

from .protocols import CONFIG_FILES

CONFIG_DESCRIPTIONS = {
    "aux": "training protocols `*_mult_learn.txt` (AUX-balanced sampling of the spoofed clips)",
    "vq": "training protocols `*_mult_learn_bal_vq.txt` (VQ-balanced sampling)",
    "dec": "training protocols `*_mult_learn_bal_dec.txt` (DEC-balanced sampling)",
    "cors_eval": "`CoRS_ALL.txt`: in-domain evaluation, test speakers re-synthesised by the CoRS codecs",
    "cosg_eval": "`CoSG_ALL.txt`: out-of-domain evaluation, samples of 17 codec-based speech generators",
    "cosg_seen": "`CoSG_SEEN.txt`: the 14-system CoSG subset used for the seen-taxonomy analysis",
    "val_codecs": "`dev_valcodecs.txt` (CodecFake-mini only): validation speakers re-synthesised by the validation "
                  "codecs, which no training row uses; for model selection on unseen codecs",
}


class _NoAliasDumper(yaml.SafeDumper):
    """Writes repeated blocks in full: Hub YAML readers do not all follow anchors."""

    def ignore_aliases(self, data) -> bool:
        return True


def card_metadata(rows: dict[str, dict[str, int]], features: Features, pretty_name: str, build_id: str) -> dict:
    feature_list = []
    for name, feature in features.items():
        entry = {"name": name}
        if hasattr(feature, "names"):
            entry["dtype"] = {"class_label": {"names": {str(i): n for i, n in enumerate(feature.names)}}}
        elif type(feature).__name__ == "Audio":
            entry["dtype"] = {"audio": {"sampling_rate": feature.sampling_rate}}
        else:
            entry["dtype"] = feature.dtype
        feature_list.append(entry)
    return {
        "pretty_name": pretty_name,
        "language": ["en"],
        "license": "other",
        "license_name": "codecfake-plus",
        "task_categories": ["audio-classification"],
        "tags": ["audio-deepfake-detection", "anti-spoofing", "source-tracing", "neural-audio-codec", "codecfake"],
        "configs": [
            {
                "config_name": config,
                "data_files": [{"split": split, "path": f"{config}/{split}-{build_id}-*.parquet"} for split in splits],
                **({"default": True} if i == 0 else {}),
            }
            for i, (config, splits) in enumerate(rows.items())
        ],
        "dataset_info": [
            {"config_name": config, "features": feature_list}
            for config in rows
        ],
    }


def render_card(
    rows: dict[str, dict[str, int]],
    counts: dict[str, dict[str, dict[str, dict[str, int]]]],
    features: Features,
    build_id: str,
    pretty_name: str = "CodecFake+ (source tracing)",
    intro: str | None = None,
    sources: str | None = None,
) -> str:
    """README.md text: YAML (configs, features) + counts per split and class + sources + citation.

    `build_id` is part of every data-files pattern: `datasets` caches a local folder under a hash of its
    patterns, so a rebuilt folder must change them or it would be served the earlier build from cache.
    """
    metadata = yaml.dump(
        card_metadata(rows, features, pretty_name, build_id), Dumper=_NoAliasDumper, sort_keys=False,
        allow_unicode=True,
    )
    parts = [f"---\n{metadata}---\n", f"# {pretty_name}\n"]
    parts.append(
        intro
        or "CodecFake+ built for codec-based deepfake **source tracing** by "
        "[codectrace](https://github.com/): every clip carries the bona fide/spoof label and the taxonomy of the "
        "neural audio codec behind it (vector quantizer, auxiliary objective, decoder domain), following "
        "Chen et al., Interspeech 2025. Built from the official release and protocol files, with no remote code:\n\n"
        "```python\nfrom datasets import load_dataset\n"
        "ds = load_dataset(\"PATH_OR_REPO_ID\", \"aux\", split=\"train\")\n```\n"
    )
    parts.append("\n## Configs\n\n| config | splits | from |\n|---|---|---|\n")
    for config, splits in rows.items():
        description = CONFIG_DESCRIPTIONS.get(config, "")
        files = ", ".join(f"`{name}`" for name in CONFIG_FILES.get(config, {}).values())
        parts.append(f"| `{config}` | {', '.join(f'{s} ({n})' for s, n in splits.items())} | "
                     f"{description or files} |\n")
    parts.append(
        "\n## Columns\n\n"
        "- `audio`: 16 kHz mono (clips not at 16 kHz or not mono were resampled / downmixed at build time);\n"
        "- `utt_id`: the protocol's utterance id (`SYSTEM/KEY` for CoSG clips);\n"
        "- `speaker`: speaker id (VCTK in CodecFake+); for CoSG clips the generator system (the protocol names none);\n"
        "- `source`: codec name (CoRS), generator system (CoSG spoofs) or `bonafide`;\n"
    )
    for task, names in TASK_LABELS.items():
        parts.append(f"- `{task}`: ClassLabel " + ", ".join(f"{i} = `{n}`" for i, n in enumerate(names)) + ";\n")
    parts.append("\nLabel indices are the official ones of the source-tracing baseline and the model's.\n")
    parts.append("\n## Counts per split and class\n\n")
    parts.append("| config | split | rows | " + " | ".join(f"{t} ({'/'.join(n)})" for t, n in TASK_LABELS.items())
                 + " |\n|---|---|---|" + "---|" * len(TASK_LABELS) + "\n")
    for config, splits in counts.items():
        for split, per_task in splits.items():
            cells = " | ".join("/".join(str(per_task[t][n]) for n in names) for t, names in TASK_LABELS.items())
            parts.append(f"| {config} | {split} | {rows[config][split]} | {cells} |\n")
    parts.append(
        "\n## Sources and licence\n\n" + (sources or
        "Bona fide speech is from VCTK (CC BY 4.0); the spoofed clips are re-syntheses by 31 open neural audio codecs "
        "(CoRS) and samples from 17 codec-based speech generators' demo pages (CoSG), released by the CodecFake+ "
        "authors. Check the CodecFake+ release for its licence and terms of use before redistributing; this card "
        "marks the licence `other` for that reason. Intended for research on deepfake detection and source tracing.\n")
        + "\n## Citation\n\n" + CITATION + "\n"
    )
    return "".join(parts)
