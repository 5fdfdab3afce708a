"""Does a codec's quantizer class show in how it sounds? Bitrate and re-synthesis quality per class of the zoo.

    python -m research.zoo_class_traces [--quality docs/codec_zoo_quality.json] \
        [--out docs/research/zoo_class_traces.md]

A tracer that never saw a codec can only name its quantizer from what the quantizer does to the sound. For real
codecs the main audible effect is the bitrate: several residual codebooks carry several times the bits of one
codebook or of a scalar grid, and a codec trained to convergence spends them on fidelity. This reads the zoo's
measured quality (`codec_zoo/quality.py`: log-mel L1 against the source, lower is better; no audio is decoded
here) with every codec's bitrate from its specification and reports, per class of each taxonomy task, the spread
of both, the rank correlation of bitrate with quality over all codecs, and a Kruskal-Wallis test of whether the
classes' qualities differ. Specifications and quality only: no tracer, no test-codec prediction is read.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from codec_zoo.specs import CODEC_CLASSES, zoo_by_name
from codec_zoo.store import read_metadata, weights_path
from codectrace.files import write_text

ROOT = Path(__file__).resolve().parents[1]


def codec_rows(quality: dict) -> list[dict]:
    """One row per zoo codec with a measured quality: its classes, bitrate and log-mel L1."""
    zoo = zoo_by_name()
    return [{"name": name, "vq": zoo[name].vq, "aux": zoo[name].aux, "dec": zoo[name].dec,
             "bitrate": zoo[name].bitrate, "l1": measured["log_mel_l1"]}
            for name, measured in quality.items() if name in zoo]


def class_table(rows: list[dict]) -> list[str]:
    from scipy.stats import kruskal

    lines = ["| task | class | codecs | bitrate (bps) min-max | log-mel L1 median [min-max] | classes' L1 differ "
             "(Kruskal-Wallis p) |", "|---|---|---|---|---|---|"]
    for task, classes in CODEC_CLASSES.items():
        groups = {c: [r for r in rows if r[task] == c] for c in classes}
        p = kruskal(*[[r["l1"] for r in g] for g in groups.values()]).pvalue
        for i, (c, group) in enumerate(groups.items()):
            l1, bits = np.array([r["l1"] for r in group]), np.array([r["bitrate"] for r in group])
            lines.append(f"| {task.upper() if i == 0 else ''} | {c} | {len(group)} | {bits.min():.0f}-{bits.max():.0f} "
                         f"| {np.median(l1):.3f} [{l1.min():.3f}-{l1.max():.3f}] | {f'{p:.2f}' if i == 0 else ''} |")
    return lines


def still_falling(name: str) -> float | None:
    """How much a shipped codec's training loss fell over its last 100 steps (%), from its file's record."""
    path = weights_path(name)
    if not path.is_file():
        return None
    curve = [loss for _, loss in read_metadata(path)[1].get("loss_curve", [])]
    return 100 * (curve[-2] - curve[-1]) / curve[-2] if len(curve) >= 2 else None


def report(rows: list[dict]) -> str:
    from scipy.stats import spearmanr

    rho = spearmanr([r["bitrate"] for r in rows], [r["l1"] for r in rows])
    falling = [f for f in (still_falling(r["name"]) for r in rows) if f is not None]
    return "\n".join([
        f"Zoo codecs with a measured quality: {len(rows)} (training, validation and test splits).",
        "",
        *class_table(rows),
        "",
        f"Rank correlation of bitrate with log-mel L1 over all codecs: Spearman rho {rho.statistic:+.2f} "
        f"(p {rho.pvalue:.2f}); a codec that turned bits into fidelity would give a clearly negative rho.",
        *([""] + [f"Training loss over each shipped codec's last 100 steps: fell by {np.median(falling):.1f}% "
                  f"(median; {min(falling):.1f} to {max(falling):.1f}%, {len(falling)} codecs): the codecs were "
                  "still learning when their step budgets ended."] if falling else []),
    ])


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quality", type=Path, default=ROOT / "docs" / "codec_zoo_quality.json")
    parser.add_argument("--out", type=Path, help="also write the report here (markdown)")
    args = parser.parse_args(argv)
    if not args.quality.is_file():
        parser.error(f"no quality file {args.quality}: run `python -m codec_zoo.quality --out docs` first")
    text = report(codec_rows(json.loads(args.quality.read_text())))
    print(text)
    if args.out:
        write_text(args.out, "# Bitrate and re-synthesis quality per class of the codec zoo\n\nWritten by "
                             "`python -m research.zoo_class_traces --out docs/research/zoo_class_traces.md` "
                             "(analysis in "
                             "[generalisation.md](generalisation.md)).\n\n" + text + "\n")


if __name__ == "__main__":
    main()
