"""`codectrace evaluate`: a trained model on built CodecFake+ configs (tables, per-source, scores, plots)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from .evaluation import EVAL_CONFIGS, results_table, run_evaluation_sets


def add_evaluate_parser(sub) -> None:
    parser = sub.add_parser("evaluate", help="evaluate a model on built CodecFake+ configs",
                            description="Evaluates in domain (cors_eval) and out of domain (cosg_eval, cosg_seen) "
                                        "with the official window policy; writes OUTPUT_DIR/eval/<config>/.")
    parser.add_argument("--model", required=True, help="model folder or hub id")
    parser.add_argument("--revision", help="model revision")
    parser.add_argument("--dataset", required=True, help="built CodecFake+ folder or hub dataset id")
    parser.add_argument("--configs", nargs="+", default=list(EVAL_CONFIGS), help="configs to evaluate")
    parser.add_argument("--split", default="test", help="split of each config (default test; e.g. validation)")
    parser.add_argument("--output-dir", required=True, help="where eval/<config>/ and results.md go")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N rows per config")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from transformers import Trainer, TrainingArguments

    from .data import collate
    from .errors import check_writable_folder
    from .files import write_text
    from .resolve import load_model, load_split, resolve_model

    # Cheap checks first, so that a bad reference fails before anything is loaded or generated.
    check_writable_folder(args.output_dir, "--output-dir", create=True)
    resolve_model(args.model, args.revision)

    sets = {config if args.split == "test" else f"{config}_{args.split}":
            load_split(args.dataset, config, args.split, limit=args.max_samples) for config in args.configs}
    model = load_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
    # The Trainer wants an output folder; nothing is saved in it, so it lives only as long as the evaluation.
    with tempfile.TemporaryDirectory(prefix="codectrace-eval-") as scratch:
        trainer = Trainer(
            model=model,
            args=TrainingArguments(output_dir=scratch, report_to="none",
                                   per_device_eval_batch_size=args.batch_size, remove_unused_columns=False,
                                   label_names=[f"{t}_labels" for t in model.config.tasks]),
            data_collator=collate,
        )
        results = run_evaluation_sets(trainer, model.config, sets, Path(args.output_dir),
                                      _unknown_rows(args, model, sets))
    table = results_table(model.config.variant or "custom", model.config.tasks, results)
    write_text(Path(args.output_dir) / "eval" / "results.md", table + "\n")
    print(table)
    return 0


def _unknown_rows(args, model, sets: dict) -> dict | None:
    """Where the model has an unknown-source scorer and a temperature for unknown clips, the rows of every set it
    calls unknown (they are scored with that temperature, as the pipeline scores them); else None."""
    from .unknown_source import find_scorer, score_dataset, unknown_rows

    if not getattr(model.config, "calibration_temperatures_unknown", None):
        return None
    scorer = find_scorer(args.model, args.revision)
    if scorer is None:
        return None
    return {name: unknown_rows(scorer, score_dataset(model, scorer, ds, model.config.chunk_samples))
            for name, ds in sets.items()}
