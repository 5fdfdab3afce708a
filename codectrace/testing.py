"""Tiny configurations for tests, examples and smoke runs (seconds on a CPU, no downloads). Only tests, examples and
benchmarks import this module; the tools and scripts build their models from `codectrace.presets`."""

from __future__ import annotations

from modeling_codectrace.configuration_codectrace import CodecTraceConfig

from .presets import AASIST_SIZES, backbone_config


def tiny_backbone_config(**overrides):
    """A 2-layer, 32-wide Wav2Vec2 with the XLS-R layout (stable layer norm) and a 320x conv stride."""
    return backbone_config("tiny", **overrides)


def tiny_config(variant: str = "M1", chunk_samples: int = 16000, **overrides) -> CodecTraceConfig:
    """A CodecTrace config small enough for unit tests: tiny backbone and a narrow AASIST."""
    settings = dict(backbone_config=tiny_backbone_config(), variant=variant, chunk_samples=chunk_samples,
                    **AASIST_SIZES["tiny"])
    settings.update(overrides)
    return CodecTraceConfig(**settings)


# `train.py` flags that shrink a preset's model to a tiny shape (seconds per step on a CPU); the recipe stays.
TINY_PRESET_FLAGS: dict[str, list[str]] = {
    "official": ["--backbone_size", "tiny", "--aasist_size", "tiny"],
    "demo": ["--backbone_size", "stft-tiny"],
}


def _tiny_run(preset: str, dataset, output_dir) -> list[str]:
    """What every tiny run of a preset shares: its tiny shape, the dataset, the output, 1-s windows, no data
    workers, no progress bars."""
    return ["--preset", preset, *TINY_PRESET_FLAGS[preset], "--dataset", str(dataset), "--output_dir", str(output_dir),
            "--chunk_samples", "16000", "--dataloader_num_workers", "0", "--disable_tqdm", "True"]


def tiny_preset_args(preset: str, dataset, output_dir, *extra: str) -> list[str]:
    """`train.py` arguments for a preset at a tiny shape on a built dataset: batch 4, no evaluation during training,
    one evaluation set at the end."""
    return [*_tiny_run(preset, dataset, output_dir), "--per_device_train_batch_size", "4", "--eval_strategy", "no",
            "--load_best_model_at_end", "False", "--eval_configs", "cosg_seen", *extra]


def free_port() -> int:
    """A TCP port on the loopback interface that nothing listens on now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def torchrun_command(script, args: list[str], processes: int = 2, module: bool = False) -> list[str]:
    """`torchrun --nproc_per_node N script args` (with `module`, `-m script`) on the loopback interface, with this
    Python."""
    import sys

    return [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_addr",
            "127.0.0.1", "--master_port", str(free_port()), *(["-m"] if module else []), str(script), *args]


def tiny_demo_args(dataset, output_dir, *extra: str) -> list[str]:
    """`train.py` arguments for the demo preset at its tiny shape on a built dataset, evaluating as the preset does
    (every epoch), batch 8, a log line per step."""
    return [*_tiny_run("demo", dataset, output_dir), "--per_device_train_batch_size", "8",
            "--per_device_eval_batch_size", "16", "--logging_steps", "1", *extra]
