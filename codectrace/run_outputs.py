"""A finished run's output folder: the model folder, the unknown-source scorer beside it, the model card with the
run's recipe and results, `all_results.json` and the results table."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

from .evaluation import results_table
from .files import write_json, write_text
from .hub import save_model_folder
from .model_card import render_model_card
from .presets import DEMO_DATASET_DIR
from .selection import SELECTION_SETS, averages_parts
from .unknown_source import NEIGHBOURS, unknown_source_table

# What the official preset still does differently from the authors' code (docs/official_recipe.md says why).
OFFICIAL_DEVIATIONS = ("model selection on the validation split; clean validation audio; macro F1 beside weighted F1; "
                       "RawBoost's FIR delay removed exactly (theirs is one sample early)")


# --unknown_source_score -> how cards name it.
UNKNOWN_SOURCE_SCORES = {"knn": f"cosine distance to the {NEIGHBOURS}th nearest training embedding",
                         "mahalanobis": "Mahalanobis distance to the nearest class mean"}


def _plain(value) -> str:
    """An option's value as the command line spells it (TrainingArguments turns some into enums)."""
    return str(getattr(value, "value", value))


def recipe_table(model_args, data_args, training_args, model, epochs_run: float | None = None) -> dict:
    optimizer = ("Adam (L2 weight decay), as the paper" if training_args.optimizer_recipe == "official_adam"
                 else f"{_plain(training_args.optim)}, {_plain(training_args.lr_scheduler_type)} schedule")
    return {
        "preset": training_args.preset,
        "variant": model.config.variant,
        "backbone": model_args.backbone or model_args.model_name_or_path or f"random init ({model_args.backbone_size})",
        "dataset": f"{data_args.dataset} (config `{data_args.dataset_config}`)",
        "window": f"{model.config.chunk_samples} samples, crop `{data_args.crop}`, repeat-padded",
        "augmentation": data_args.augment,
        "optimizer": optimizer,
        "learning rate / weight decay": f"{training_args.learning_rate:g} / {training_args.weight_decay:g}",
        "batch size x devices": f"{training_args.per_device_train_batch_size} x {training_args.world_size}" + (
            ", last incomplete batch dropped" if training_args.train_drop_last else ""),
        "codec adversary": (f"conditional, per taxonomy head, confusion objective, strength "
                            f"{training_args.codec_adversary_weight:g} (ramped)"
                            if training_args.codec_adversary_weight else "none (as the paper)"),
        "weight averaging": (f"moving average of the weights, decay {training_args.weight_averaging_decay:g} per "
                             "step; evaluated and saved" if training_args.weight_averaging_decay
                             else "none (as the paper)"),
        "gradient clipping": (f"max norm {training_args.max_grad_norm:g}" if training_args.max_grad_norm
                              else "none (as the paper)"),
        "epochs": f"{training_args.num_train_epochs:g}" + (
            f", early stopping after {training_args.early_stopping_patience} evaluations without improvement"
            if training_args.early_stopping_patience else "") + (
            f" (stopped after {epochs_run:g})" if epochs_run and epochs_run < training_args.num_train_epochs else ""),
        "seed": training_args.seed,
        "loss": f"class-weighted cross-entropy per task, {model.config.task_weighting} task weighting",
        "model selection": f"{training_args.metric_for_best_model} on {SELECTION_SETS[data_args.selection_set]}"
                           + (" (the mean of the two kinds' scores)" if averages_parts(data_args) else ""),
        "calibration": (("temperature scaling per head on the validation split" + (
            "; clips called unknown: a temperature per taxonomy head fitted on the validation codecs"
            if model.config.calibration_temperatures_unknown else "")) if training_args.calibrate
            else "none (as the paper)"),
        "unknown source": (f"{UNKNOWN_SOURCE_SCORES[training_args.unknown_source_score]} per taxonomy head, "
                           "threshold on the validation split" if training_args.unknown_source
                           else "none (as the paper)"),
        "precision": "bf16" if training_args.bf16 else "fp16" if training_args.fp16 else "fp32",
    } | ({"differs from the authors' code": OFFICIAL_DEVIATIONS} if training_args.preset == "official" else {})


def write_outputs(trainer, model, feature_extractor, model_args, data_args, training_args, train_metrics, results,
                  scorer=None, unknown: dict | None = None, identity=None):
    output_dir = Path(training_args.output_dir)
    save_model_folder(model, feature_extractor, output_dir)  # weights, config, extractor, code files
    if scorer is not None:
        scorer.save(output_dir)
    if identity is not None:  # where enrolled generators are compared (codectrace.codec_identity.CodecIdentity)
        identity.save(output_dir)
    variant = model.config.variant or "custom"
    table = results_table(variant, model.config.tasks, results) if results else None
    unknown = unknown or {}
    if table and unknown.get("test"):
        table += ("\n\nUnknown source, spoof clips of unseen codecs (CoSG) against those of training codecs (CoRS):\n\n"
                  + unknown_source_table(unknown["test"]))
    hub_id = training_args.hub_model_id or f"USER/{output_dir.name}"
    dataset_id = data_args.dataset if data_args.dataset != str(DEMO_DATASET_DIR) else "codecfake-mini"
    status = None
    if data_args.dataset == str(DEMO_DATASET_DIR):
        status = ("Demo model: trained from scratch on CodecFake-mini (synthesizer voices and real recorded words "
                  "of a few speakers, re-synthesised by the project's small neural codecs), for trying the tools. "
                  "It has never heard a public codec or a real speech generator; do not use it to judge real audio.")
    card = render_model_card(model.config, model_name=output_dir.name,
                             base_model=model_args.backbone if model_args.backbone else None, dataset_id=dataset_id,
                             recipe=recipe_table(model_args, data_args, training_args, model, trainer.state.epoch),
                             results=results,
                             results_markdown=table, status_note=status, repo_id=hub_id)
    write_text(output_dir / "model_card.md", card)
    write_text(output_dir / "README.md", card)
    summary = {"train": train_metrics, "eval": {name: r["overall"] for name, r in results.items()},
               "unknown_source": unknown.get("test"), "unknown_source_validation": unknown.get("validation"),
               "arguments": {"model": asdict(model_args), "data": asdict(data_args)}}
    write_json(output_dir / "all_results.json", summary)
    if table:
        write_text(output_dir / "eval" / "results.md", table + "\n")
    return table
