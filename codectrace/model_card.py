"""Model cards for trained or converted CodecTrace models (the `model_card.md` template, filled)."""

from __future__ import annotations

import math

import yaml

from modeling_codectrace.configuration_codectrace import LABEL_DESCRIPTIONS, TASK_DESCRIPTIONS, TASK_LABELS

from .evaluation import eval_set_name

CITATION = """\
```bibtex
@inproceedings{chen2025codec,
  title     = {Codec-Based Deepfake Source Tracing via Neural Audio Codec Taxonomy},
  author    = {Chen, Xuanjun and Lin, I-Ming and Zhang, Lin and Du, Jiawei and Wu, Haibin and
               Lee, Hung-yi and Jang, Jyh-Shing Roger},
  booktitle = {Proc. Interspeech},
  year      = {2025},
  note      = {arXiv:2505.12994}
}
@article{chen2025towards,
  title   = {Towards Generalized Source Tracing for Codec-Based Deepfake Speech},
  author  = {Chen, Xuanjun and Lin, I-Ming and Zhang, Lin and Wu, Haibin and Lee, Hung-yi and
             Jang, Jyh-Shing Roger},
  journal = {arXiv preprint arXiv:2506.07294},
  year    = {2025}
}
@article{chen2025codecfakeplus,
  title   = {CodecFake+: A Large-Scale Neural Audio Codec-Based Deepfake Speech Dataset},
  author  = {Chen, Xuanjun and Du, Jiawei and Wu, Haibin and Zhang, Lin and Lin, I-Ming and
             Chiu, I-Hsiang and Ren, Wenze and Tseng, Yuan and Tsao, Yu and Jang, Jyh-Shing Roger and
             Lee, Hung-yi},
  journal = {arXiv preprint arXiv:2501.08238},
  year    = {2025}
}
```"""



def _finite(value) -> bool:
    return isinstance(value, (int, float)) and not math.isnan(value)


def model_index(model_name: str, dataset_id: str, results: dict[str, dict]) -> list[dict]:
    """`model-index` entries: BIN EER and task macro-F1 per evaluation set."""
    entries = []
    for set_name, result in results.items():
        metrics = []
        for task, m in result["overall"].items():
            if task == "bin" and _finite(m.get("eer")):
                metrics.append({"type": "eer", "name": "BIN EER (%)", "value": round(100 * m["eer"], 3)})
            elif task != "bin" and _finite(m.get("f1_macro")):
                metrics.append({"type": "f1", "name": f"{task.upper()} macro F1", "value": round(m["f1_macro"], 4)})
        config = set_name.removesuffix("_test")  # "aux_test": the test split of the training config "aux"
        name = eval_set_name(set_name)
        if metrics:
            entries.append({
                "task": {"type": "audio-classification", "name": "Codec-based deepfake source tracing"},
                "dataset": {"type": dataset_id, "name": name, "config": config, "split": "test"},
                "metrics": metrics,
            })
    return [{"name": model_name, "results": entries}] if entries else []


HEAD_NOTES = {
    "aasist": "AASIST graph attention (the paper's)",
    "stats_pooling": "statistics pooling + linear (not the paper's AASIST; it trains far faster from scratch on a CPU)",
}


def _stft_feature_names(config) -> str:
    names = {"log_power": "log power", "phase_deviation": "phase-advance deviation",
             "weighted_phase_deviation": "energy-weighted phase-advance deviation"}
    return " and ".join(names[f] for f in config.stft_features)


def _metadata(config, model_name: str, base_model, dataset_id, results: dict) -> dict:
    metadata = {
        "library_name": "transformers",
        "pipeline_tag": "audio-classification",
        "license": "apache-2.0",
        "language": ["en"],
        "tags": ["audio-deepfake-detection", "anti-spoofing", "source-tracing", "codecfake", "wav2vec2"]
        + (["aasist"] if config.head_type == "aasist" else []) + ["custom_code"],
        "metrics": ["eer", "f1"],
    }
    if base_model:
        metadata["base_model"] = base_model
    if dataset_id:
        metadata["datasets"] = [dataset_id]
    index = model_index(model_name, dataset_id or "codecfake-plus", results)
    if index:
        metadata["model-index"] = index
    return metadata


def _summary(config, source_note: str | None) -> list[str]:
    """What the model is: its design, variant, backbone, heads and input."""
    if config.head_type == "aasist":
        design = ("Wav2Vec2 (XLS-R layout) feeding a shared AASIST trunk and one AASIST graph-attention head per "
                  "task, as in")
    else:
        design = ("Wav2Vec2 (XLS-R layout) with frame mean/std pooling and one linear layer per task, after the "
                  "tasks of")
    backbone = config.backbone_config
    front_end = (f", the first a fixed STFT giving {_stft_feature_names(config)} per bin ({config.stft_n_fft}-point, "
                 f"hop {config.stft_hop_length}; `feature_encoder=\"stft_phase\"`, not the paper's)"
                 if config.feature_encoder == "stft_phase" else "")
    lines = [
        f"A **codec-based deepfake source tracer**: {design} *Codec-Based Deepfake Source Tracing via Neural Audio "
        "Codec Taxonomy* (Chen et al., Interspeech 2025). For one clip it says whether speech is bona fide or "
        "spoofed and, for spoofs, which *kind* of neural audio codec made it.",
        "",
        f"- Variant: **{config.variant or 'custom'}** (heads: {', '.join(t.upper() for t in config.tasks)})",
        f"- Backbone: {backbone.num_hidden_layers} layers, hidden size {backbone.hidden_size}, conv kernels "
        f"{list(backbone.conv_kernel)} strides {list(backbone.conv_stride)}{front_end}",
        f"- Heads: {HEAD_NOTES[config.head_type]}, reading "
        + ("a learned mix of all backbone layers" if config.use_weighted_layer_sum else "the last backbone layer"),
        f"- Input: {config.sampling_rate} Hz mono; one window of {config.chunk_samples} samples "
        f"({config.chunk_samples / config.sampling_rate:.2f} s)",
    ]
    return lines + ([f"- Source: {source_note}"] if source_note else []) + [""]


def _labels(config) -> list[str]:
    lines = ["## Labels", ""]
    for task in config.tasks:
        lines.append(f"**{task.upper()}** ({TASK_DESCRIPTIONS[task]}):")
        lines += [f"- `{index}` `{name}`: {LABEL_DESCRIPTIONS[task][name]}" for index, name in
                  enumerate(TASK_LABELS[task])]
        lines.append("")
    return lines


def _how_to_use(config, repo_id: str) -> list[str]:
    seconds = config.chunk_samples / config.sampling_rate
    return [
        "## How to use",
        "",
        "The model alone, with transformers (its code files travel with it):",
        "",
        "```python",
        "from transformers import AutoFeatureExtractor, AutoModel",
        f'model = AutoModel.from_pretrained("{repo_id}", trust_remote_code=True, revision="main")',
        f'extractor = AutoFeatureExtractor.from_pretrained("{repo_id}", trust_remote_code=True, revision="main")',
        f"inputs = extractor(waveform_16k_mono, sampling_rate=16000)  # first {seconds:.2f} s, repeat-padded",
        "outputs = model(**inputs)  # outputs.bin_logits, outputs.vq_logits, ...",
        "```",
        "",
        "Any file and length (decoding, resampling, sliding windows, the mean of window probabilities) with the "
        "`codectrace` package, installed from a checkout of its repository (`pip install .`; it is not on PyPI):",
        "",
        "```python",
        "import codectrace  # registers the codec-source-tracing pipeline",
        "from transformers import pipeline",
        f'tracer = pipeline("codec-source-tracing", model="{repo_id}")',
        'tracer("clip.wav")  # {"spoof_score": ..., "decision": ..., "vq": {...}, ...}',
        "```",
        "",
        "## Intended use and out-of-scope use",
        "",
        "Research on deepfake detection and source tracing, triage of audio for human review, and teaching. "
        "**Not** for forensic or legal decisions on its own, for judging a person, or for content moderation "
        "without human review: scores are calibrated on the training data, not on your audio.",
        "",
    ]


def _evaluation(recipe: dict | None, results_markdown: str | None) -> list[str]:
    lines = []
    if recipe:
        lines += ["## Training recipe", "", "| setting | value |", "|---|---|"]
        lines += [f"| {key} | {value} |" for key, value in recipe.items()]
        lines.append("")
    lines += ["## Evaluation", "", results_markdown or "No evaluation results recorded for this model.", ""]
    return lines + [
        "BIN: equal error rate (bona fide positive, score P(bonafide); a model without a BIN head is scored by the "
        "authors' fusion of its taxonomy heads); VQ / AUX / DEC: macro and weighted F1 (REAL included), as in the "
        "paper's tables.",
        "",
    ]


def _limitations(config) -> list[str]:
    return [
        "## Limitations",
        "",
        f"- Only the first {config.chunk_samples / config.sampling_rate:.2f} s of a clip is scored by the model "
        "itself (the official recipe); the pipeline averages sliding windows over longer audio.",
        "- Codecs and generators unseen in training are traced much less reliably (the paper's CoSG results are far "
        "below its in-domain ones); treat VQ / AUX answers on out-of-domain audio as weak evidence.",
        "- Channel effects (telephony, lossy re-encoding, noise, reverberation) were not in the training data and "
        "shift the scores.",
        "",
    ]


def render_model_card(
    config,
    model_name: str,
    base_model: str | None = None,
    dataset_id: str | None = None,
    recipe: dict | None = None,
    results: dict[str, dict] | None = None,
    results_markdown: str | None = None,
    source_note: str | None = None,
    status_note: str | None = None,
    repo_id: str = "USER/MODEL",
) -> str:
    """Fills the model card: YAML metadata, what it is, labels, how to use it, intended use, recipe, results,
    limitations, citation."""
    metadata = _metadata(config, model_name, base_model, dataset_id, results or {})
    lines = ["---", yaml.safe_dump(metadata, sort_keys=False).strip(), "---", "", f"# {model_name}", ""]
    if status_note:
        lines += [f"> {status_note}", ""]
    lines += _summary(config, source_note) + _labels(config) + _how_to_use(config, repo_id)
    lines += _evaluation(recipe, results_markdown) + _limitations(config) + ["## Citation", "", CITATION, ""]
    return "\n".join(lines)


def training_summary(card: str) -> str | None:
    """One line on what a model was trained on, read from its card: the card's note on the model (a demo model says
    it was never trained on real speech), else its training recipe's dataset row; None when the card has neither."""
    body = card.split("\n---\n", 1)[-1]  # past the YAML header
    for line in body.splitlines():
        if line.startswith("> "):
            return line[2:].strip()
    for line in body.splitlines():
        if line.startswith("| dataset |"):
            return "trained on " + line.split("|")[2].strip()
    return None
