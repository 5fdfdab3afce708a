"""What CPU a figure was measured on: the model name and the features that change speed and results (AVX2,
AVX-512, VNNI, bf16, AMX), read from /proc/cpuinfo (empty elsewhere)."""

from __future__ import annotations

import os

FEATURES = {"avx2": "AVX2", "avx512f": "AVX-512", "avx512_vnni": "VNNI", "avx512_bf16": "bf16", "amx_bf16": "AMX"}


def cpu_info(path: str = "/proc/cpuinfo") -> tuple[str, set[str]]:
    """The first processor's model name and flags; ("", set()) where the file cannot be read."""
    try:
        with open(path) as handle:
            text = handle.read()
    except OSError:
        return "", set()
    fields = dict(line.split(":", 1) for line in text.split("\n\n")[0].splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    return fields.get("model name", ""), set(fields.get("flags", "").split())


def cpu_summary(path: str = "/proc/cpuinfo") -> str:
    """E.g. `AMD EPYC (AVX2, AVX-512, VNNI, bf16), 2 cores` (the cores this process may use)."""
    name, flags = cpu_info(path)
    features = ", ".join(label for flag, label in FEATURES.items() if flag in flags)
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return f"{name or 'unknown CPU'}{f' ({features})' if features else ''}, {cores} cores"
