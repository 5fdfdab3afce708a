"""What model selection reads (`--selection_set`) and what a run is evaluated on afterwards: the validation data
(the training config's validation split, and CodecFake-mini's validation codecs), the evaluation sets."""

from __future__ import annotations

import logging

from .resolve import load_split

logger = logging.getLogger("codectrace.train")


# --selection_set -> how cards and tables name the data model selection reads.
SELECTION_SETS = {"validation": "the validation split (validation speakers, training codecs)",
                  "val_codecs": "the validation codecs (validation speakers, codecs never trained on)",
                  "validation+val_codecs": "the validation speakers with the training codecs and with the validation "
                                           "codecs together"}


def validation_sets(data_args, validation) -> dict:
    """The validation data by evaluation name: the training config's validation split (`in_domain_validation`) and,
    when `--selection_set` reads them, the validation codecs (`val_codecs`)."""
    if data_args.selection_set == "validation":
        return {"in_domain_validation": validation}
    try:
        unseen = load_split(data_args.dataset, "val_codecs", "validation", data_args.dataset_revision,
                            data_args.max_eval_samples)
    except ValueError:  # the training splits loaded, so the dataset lacks this config
        raise ValueError(f"--selection_set {data_args.selection_set} needs the dataset's 'val_codecs' config, which "
                         f"{data_args.dataset} lacks (CodecFake-mini has it; CodecFake+ has no validation codecs): "
                         "pass --selection_set validation for this dataset.") from None
    return {"in_domain_validation": validation, "val_codecs": unseen}


# The two kinds of validation data, in the order `selection_split` concatenates them (`selection_parts` relies on it).
BOTH_VALIDATION_KINDS = ("in_domain_validation", "val_codecs")


def averages_parts(data_args) -> bool:
    """Whether the selection score is the mean of both kinds of validation data (`--selection_mean_of_parts`)."""
    return data_args.selection_mean_of_parts and data_args.selection_set == "validation+val_codecs"


def selection_parts(data_args, parts: dict) -> dict[str, int] | None:
    """When `averages_parts`, the two kinds of validation data's row counts, in `selection_split` order."""
    if not averages_parts(data_args):
        return None
    return {name: len(parts[name]) for name in BOTH_VALIDATION_KINDS}


def selection_split(data_args, parts: dict):
    """The rows model selection and early stopping read (`--selection_set`), from `validation_sets`."""
    if data_args.selection_set == "validation+val_codecs":
        from datasets import concatenate_datasets

        return concatenate_datasets([parts[name] for name in BOTH_VALIDATION_KINDS])
    return parts["val_codecs" if data_args.selection_set == "val_codecs" else "in_domain_validation"]


def evaluation_sets(data_args, test_split, validation_parts: dict) -> dict:
    """Test split of the training config, every evaluation config that the dataset has, then, when selection reads
    validation codecs, each kind of validation data apart (`validation_sets`): reported, so that choices made on
    validation data can be read back without the test sets."""
    sets = {f"{data_args.dataset_config}_test": test_split}
    for config in data_args.eval_configs:
        try:
            sets[config] = load_split(data_args.dataset, config, "test", data_args.dataset_revision,
                                      data_args.max_eval_samples)
        except ValueError as error:  # a dataset without that evaluation config
            logger.warning("skipping %s: %s", config, error)
    if data_args.selection_set != "validation":
        sets.update(validation_parts)
    return sets
