"""`codectrace evaluate`: a trained model on built CodecFake+ configs (tables, per-source, scores, plots).

The rows of every set are cut into blocks of `--block-rows`; one process or many (`torchrun`, `accelerate launch`,
`srun`) predict the blocks (`sharded.Shard.take`), each block recorded as it finishes in `OUTPUT_DIR/eval.work/`, so a
killed run resumes at the first block it had not finished; the process that finds every block done writes the
outputs, exactly what one process would write.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from .evaluation import EVAL_CONFIGS, results_table

BLOCK_ROWS = 1024


def add_evaluate_parser(sub) -> None:
    parser = sub.add_parser("evaluate", help="evaluate a model on built CodecFake+ configs",
                            description="Evaluates in domain (cors_eval) and out of domain (cosg_eval, cosg_seen) "
                                        "with the official window policy; writes OUTPUT_DIR/eval/<config>/. Runs as "
                                        "one process or many (torchrun, accelerate launch, srun) and resumes a "
                                        "killed run.")
    parser.add_argument("--model", required=True, help="model folder or hub id")
    parser.add_argument("--revision", help="model revision")
    parser.add_argument("--dataset", required=True, help="built CodecFake+ folder or hub dataset id")
    parser.add_argument("--configs", nargs="+", default=list(EVAL_CONFIGS), help="configs to evaluate")
    parser.add_argument("--split", default="test", help="split of each config (default test; e.g. validation)")
    parser.add_argument("--output-dir", required=True, help="where eval/<config>/ and results.md go")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--max-samples", type=int, default=None, help="evaluate only the first N rows per config")
    parser.add_argument("--device", default=None,
                        help="cpu, cuda or cuda:N (default: the process's GPU where there are GPUs, else cpu)")
    parser.add_argument("--precision", default="fp32", choices=["fp32", "bf16", "fp16", "int8", "auto"],
                        help="fp32 (default) gives the reference figures; the others trade exactness for speed")
    parser.add_argument("--block-rows", type=int, default=BLOCK_ROWS,
                        help=f"rows per unit of work, of resuming and of splitting across processes "
                             f"(default {BLOCK_ROWS})")
    parser.add_argument("--workers", type=int, default=0, help="DataLoader processes decoding audio (default 0)")
    parser.add_argument("--trust-remote-code", action="store_true")
    parser.set_defaults(func=_run_evaluate)


def _run_evaluate(args) -> int:
    from .errors import ToolError, check_writable_folder
    from .resolve import load_model, load_split, resolve_model
    from .sharded import Shard, WorkFolder

    # Cheap checks first, so that a bad reference fails before anything is loaded or generated.
    check_writable_folder(args.output_dir, "--output-dir", create=True)
    if args.block_rows < 1:
        raise ToolError(f"--block-rows must be at least 1, got {args.block_rows}.")
    resolve_model(args.model, args.revision)
    shard = Shard.from_environment()
    sets = {config if args.split == "test" else f"{config}_{args.split}":
            load_split(args.dataset, config, args.split, limit=args.max_samples) for config in args.configs}
    blocks = [(name, start) for name, ds in sets.items() for start in range(0, len(ds), args.block_rows)]
    keys = [f"{name}:{start}" for name, start in blocks]
    manifest = {key: str(getattr(args, key)) for key in ("model", "revision", "dataset", "split", "max_samples",
                                                         "precision", "block_rows")} | {"blocks": keys}
    if not shard.take(blocks):
        return 0  # nothing for this process; staying out of the work folder, it cannot come after the merge
    work = WorkFolder(Path(args.output_dir) / "eval.work", manifest, shard)
    done = work.records()
    model = load_model(args.model, revision=args.revision, trust_remote_code=args.trust_remote_code)
    device = torch.device(shard.device(args.device) or "cpu")
    scorer = _scorer(args, model)
    predictor = BlockPredictor(model.to(device), scorer, args.precision, device, args.batch_size, args.workers)
    todo = [(name, start) for name, start in shard.take(blocks) if f"{name}:{start}" not in done]
    for name, start in tqdm(todo, desc="evaluating", unit="block"):
        rows = sets[name].select(range(start, min(start + args.block_rows, len(sets[name]))))
        work.record(f"{name}:{start}", predictor(rows))
    work.merge_when_complete(keys, lambda records: _write_outputs(args, model.config, scorer, sets, blocks, records))
    return 0


def _scorer(args, model):
    """The unknown-source scorer saved beside the model, where the model has a temperature for unknown clips."""
    from .unknown_source import find_scorer

    if not getattr(model.config, "calibration_temperatures_unknown", None):
        return None
    return find_scorer(args.model, args.revision)


class BlockPredictor:
    """Logits of every head and, with a scorer, unknown-source scores of a block of rows (official windows)."""

    def __init__(self, model, scorer, precision: str, device: torch.device, batch_size: int, workers: int):
        from .precision import model_for_inference, resolve_precision

        self.tasks, self.scorer, self.device = model.config.tasks, scorer, device
        self.chunk, self.batch_size, self.workers = model.config.chunk_samples, batch_size, workers
        self.precision = resolve_precision(precision, device)
        self.model = model_for_inference(model.eval(), self.precision, device)

    def __call__(self, rows) -> dict:
        from torch.utils.data import DataLoader

        from .data import WaveformTransform, collate
        from .precision import autocast, input_dtype

        windows = rows.with_transform(WaveformTransform(tuple(self.tasks), self.chunk))
        logits = {task: [] for task in self.tasks}
        embeddings = {task: [] for task in (self.scorer.heads if self.scorer else ())}
        for batch in DataLoader(windows, batch_size=self.batch_size, collate_fn=collate, num_workers=self.workers):
            values = batch["input_values"].to(self.device, input_dtype(self.precision, self.device))
            with torch.inference_mode(), autocast(self.precision, self.device):
                out = self.model(input_values=values)
            for task in self.tasks:
                logits[task].append(out.logits_for(task).float().cpu().numpy())
            for task in embeddings:
                embeddings[task].append(out.embeddings[task].float().cpu().numpy())
        record = {"logits": {task: np.concatenate(v).tolist() for task, v in logits.items()}}
        if self.scorer is not None:
            scores = self.scorer.scores({task: np.concatenate(v) for task, v in embeddings.items()})
            record["unknown_scores"] = {task: np.asarray(v).tolist() for task, v in scores.items()}
        return record


def _write_outputs(args, config, scorer, sets: dict, blocks: list, records: dict) -> None:
    """Joins the blocks of every set in row order and writes what `save_evaluations` writes, and the table."""
    from modeling_codectrace.configuration_codectrace import TASK_LABELS

    from .evaluation import save_evaluations
    from .files import write_text

    predictions, unknown = {}, {}
    for name in sets:
        parts = [records[f"{set_name}:{start}"] for set_name, start in blocks if set_name == name]
        predictions[name] = {task: np.asarray([row for p in parts for row in p["logits"][task]],
                                              dtype=np.float32).reshape(-1, len(TASK_LABELS[task]))
                             for task in config.tasks}
        if scorer is not None:
            unknown[name] = {task: np.asarray([s for p in parts for s in p["unknown_scores"][task]]) > head.threshold
                             for task, head in scorer.heads.items()}
    results = save_evaluations(Path(args.output_dir), config, sets, predictions, unknown or None)
    table = results_table(config.variant or "custom", config.tasks, results)
    write_text(Path(args.output_dir) / "eval" / "results.md", table + "\n")
    print(table)
