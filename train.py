"""Fine-tune CodecTrace (Wav2Vec2 + AASIST) on CodecFake+ with the Hugging Face Trainer.

    python train.py                      # the demo job: builds CodecFake-mini if missing, trains, evaluates
    python train.py --preset official --dataset PATH_OR_HUB_ID --backbone facebook/wav2vec2-xls-r-300m
    torchrun --nproc_per_node 4 train.py --preset official ...   # many GPUs (DDP); or accelerate launch
    python train.py --help               # every option (model, data and TrainingArguments)

Presets fill defaults; any flag given on the command line wins. `official` is the paper's recipe (XLS-R 300M,
Adam lr 1e-6 with L2 weight decay 1e-4, batch 8, 20 epochs, seed 1234, first 64600 samples repeat-padded,
RawBoost algo 5 on training audio, class-weighted cross-entropy per task, the plain mean of the task losses).
`demo` (the default with no arguments) trains a small model from scratch on CodecFake-mini on CPU in minutes.

Writes to --output_dir: the best model (safetensors, config, feature extractor, code files), model_card.md and
README.md, all_results.json, eval/<set>/ (metrics, per-source tables, score files, confusion plots), and
checkpoints (a killed run resumes from the last one).
"""

from __future__ import annotations

import logging
import sys

from codectrace.errors import run_tool
from codectrace.presets import DEMO_DATASET_DIR, DEMO_RELEASE_DIR
from codectrace.training import configure_logging, parse_arguments, train
from dataset_scripts.build_codecfake_mini import ensure_codecfake_mini

logger = logging.getLogger("codectrace.train")


def main(argv: list[str]) -> dict:
    model_args, data_args, training_args = parse_arguments(argv)
    configure_logging(training_args)
    if not argv:
        logger.info("no arguments: running the demo preset (see python train.py --help)")
    if data_args.dataset is None:  # the demo: CodecFake-mini, built offline on the first run
        with training_args.main_process_first(desc="demo corpus"):
            data_args.dataset = str(ensure_codecfake_mini(DEMO_RELEASE_DIR, DEMO_DATASET_DIR,
                                                          data_args.demo_utterances))
    return train(model_args, data_args, training_args)


if __name__ == "__main__":
    # Bad data, a dataset or model that is not there, an output folder that cannot be written: one line, exit 2.
    sys.exit(run_tool(lambda: main(sys.argv[1:]) and None))
