"""A training run, top to bottom: arguments -> data -> model -> trainer -> fit -> calibrate -> unknown source ->
evaluate -> write (-> push). `train.py` is its command line; `run(argv)` is the same from Python. Each step is a
function of the module that owns its concern: `arguments`, `selection`, `model_building`, `codec_adversary`,
`trainer`, `trust_fitting`, `evaluation`, `run_outputs`, `hub`."""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

from transformers import set_seed
from transformers.trainer_utils import get_last_checkpoint

import modeling_codectrace as mc

from . import codec_adversary
from .arguments import CodecTraceTrainingArguments, DataArguments, ModelArguments, parse_arguments
from .data import collate, label_columns, with_windows
from .errors import check_writable_folder
from .evaluation import predict_sets, save_evaluations
from .hub import push_model_folder
from .model_building import build_model
from .resolve import load_split
from .run_outputs import write_outputs
from .selection import evaluation_sets, selection_parts, selection_split, validation_sets
from .trainer import CodecTraceTrainer, early_stopping, make_compute_metrics
from .trust_fitting import calibrate, fit_and_measure_unknown_source
from .weight_averaging import WeightAveraging

logger = logging.getLogger("codectrace.train")


@dataclass
class RunData:
    """The rows a run reads: the training config's splits, the validation data by kind, and what selection reads."""

    train: object
    validation: object
    test: object
    validation_parts: dict
    selection: object


def load_run_data(data_args: DataArguments) -> RunData:
    """The train, validation and test splits of the training sampling (`--dataset_config`), and the validation data
    that model selection reads (`--selection_set`)."""
    train, validation, test = (
        load_split(data_args.dataset, data_args.dataset_config, split, data_args.dataset_revision, limit)
        for split, limit in (("train", data_args.max_train_samples), ("validation", data_args.max_eval_samples),
                             ("test", data_args.max_eval_samples)))
    parts = validation_sets(data_args, validation)
    return RunData(train, validation, test, parts, selection_split(data_args, parts))


def build_trainer(model, data: RunData, data_args: DataArguments, training_args: CodecTraceTrainingArguments,
                  callbacks=()) -> CodecTraceTrainer:
    """The Trainer over the model and the run's rows, with the weight averaging, codec adversary and early stopping
    the arguments ask for."""
    tasks, chunk = model.config.tasks, model.config.chunk_samples
    training_args.label_names = label_columns(tasks)
    feature_extractor = mc.CodecTraceFeatureExtractor(sampling_rate=model.config.sampling_rate, chunk_samples=chunk)
    logger.info("model %s: %.1f M parameters, tasks %s", model.config.variant,
                sum(p.numel() for p in model.parameters()) / 1e6, tasks)
    averaging = WeightAveraging(training_args.weight_averaging_decay) if training_args.weight_averaging_decay else None
    adversary = codec_adversary.for_training(model, data.train, training_args.codec_adversary_weight)
    if adversary is not None:
        logger.info("codec adversary: %d training codecs, heads %s", len(adversary.vocabulary.codecs), adversary.tasks)
    return CodecTraceTrainer(
        model=model,
        weight_averaging=averaging,
        codec_adversary=adversary,
        args=training_args,
        train_dataset=with_windows(data.train, tasks, chunk, data_args.crop, data_args.augment, training_args.seed,
                                   adversary.vocabulary if adversary else None, data_args.partial_spoof_rate,
                                   model.config.frame_layout(chunk) if model.config.frame_head else None,
                                   data_args.partial_spoof_bin_labels),
        eval_dataset=with_windows(data.selection, tasks, chunk),
        data_collator=collate,
        processing_class=feature_extractor,
        compute_metrics=make_compute_metrics(tasks, selection_parts(data_args, data.validation_parts)),
        callbacks=list(callbacks) + early_stopping(training_args),
    )


def evaluate_and_write(trainer, model_args, data_args, training_args, data: RunData, train_metrics) -> tuple:
    """Every evaluation set scored, the unknown-source scorer fitted and measured where asked, and the output folder
    written (on the main process). Returns the results and the printed table."""
    tasks, config = trainer.model.config.tasks, trainer.model.config
    sets = evaluation_sets(data_args, data.test, data.validation_parts)
    predictions = predict_sets(trainer, tasks, config.chunk_samples, sets)
    if not trainer.is_world_process_zero():
        return {}, None
    scorer, unknown, rows = (fit_and_measure_unknown_source(trainer.model, data.train, data.validation, sets,
                                                            training_args.unknown_source_score)
                             if training_args.unknown_source else (None, {}, None))
    identity = codec_identity(data.train) if training_args.unknown_source else None
    results = save_evaluations(Path(training_args.output_dir), config, sets, predictions, rows)
    table = write_outputs(trainer, trainer.model, trainer.processing_class, model_args, data_args, training_args,
                          train_metrics, results, scorer, unknown, identity)
    print("\n" + (table or "no evaluation sets found") + "\n")
    print(f"model, card and results written to {training_args.output_dir}")
    return results, table


def codec_identity(train_split):
    """The space enrolled generators are compared in (docs/enrolment.md), fitted on the training split's sources; None
    where the split has a single source."""
    from .codec_identity import fit_codec_identity

    if len(set(train_split["source"])) < 2:
        return None
    return fit_codec_identity(train_split)


def train(model_args: ModelArguments, data_args: DataArguments, training_args: CodecTraceTrainingArguments,
          callbacks=()) -> dict:
    """Trains, evaluates on every evaluation set and writes the output folder (pushed to the Hub with
    `--push_to_hub`). `data_args.dataset` must name a built dataset. Returns the training metrics, the evaluation
    results, the results table and the Trainer."""
    if data_args.dataset is None:
        raise ValueError("no dataset: give --dataset (a built CodecFake+ folder or a Hub dataset id).")
    check_writable_folder(training_args.output_dir, "--output_dir", create=True)  # before anything is built
    if training_args.push_to_hub and not training_args.hub_model_id:
        raise ValueError("--push_to_hub needs --hub_model_id USER/NAME")
    set_seed(training_args.seed)
    # The finished folder is pushed at the end (push_model_folder); the Trainer must not push checkpoints.
    push, training_args.push_to_hub = training_args.push_to_hub, False
    data = load_run_data(data_args)
    trainer = build_trainer(build_model(model_args), data, data_args, training_args, callbacks)
    train_metrics = trainer.train(resume_from_checkpoint=_last_checkpoint(training_args)).metrics
    if training_args.calibrate:
        unseen = data.validation_parts.get("val_codecs") if training_args.unknown_source else None
        calibrate(trainer, trainer.model, data.validation, unseen)
    results, table = evaluate_and_write(trainer, model_args, data_args, training_args, data, train_metrics)
    if push and trainer.is_world_process_zero():
        url = push_model_folder(training_args.output_dir, training_args.hub_model_id, training_args.hub_token,
                                training_args.hub_private_repo, training_args.hub_revision)
        print(f"pushed to {url}")
    return {"train": train_metrics, "results": results, "table": table, "trainer": trainer}


def _last_checkpoint(training_args) -> str | None:
    if training_args.resume_from_checkpoint:
        return training_args.resume_from_checkpoint
    if training_args.resume == "auto" and os.path.isdir(training_args.output_dir):
        checkpoint = get_last_checkpoint(training_args.output_dir)
        if checkpoint:
            logger.info("resuming from %s", checkpoint)
        return checkpoint
    return None


def configure_logging(training_args) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        level=logging.INFO if training_args.should_log else logging.WARNING)


def run(argv: list[str], callbacks=()) -> dict:
    """`train.py` from Python, for a built dataset: parses `argv` (flags as on the command line) and trains."""
    model_args, data_args, training_args = parse_arguments(argv)
    configure_logging(training_args)
    return train(model_args, data_args, training_args, callbacks)
