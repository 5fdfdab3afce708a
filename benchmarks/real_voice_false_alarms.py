"""How often does a model call real recorded human speech spoof? Bona fide false alarms on real voices.

    python benchmarks/real_voice_false_alarms.py --model outputs/demo-M1 [--out docs/real_voice_false_alarms.md]

Real voices: Debian's `ktuberling-data` (scripts/setup.sh installs it): short recordings of single words by native
speakers, one folder per language (most likely one voice each), read from `/usr/share/ktuberling/sounds` (GPL KDE
data: read where installed, never copied into the project). Identical files in several folders are counted once.
Every clip is traced with the pipeline's defaults; a false alarm is a decision `spoof` (spoof score >= 0.5).
Beside them, for comparison, the bona fide clips of CodecFake-mini's test speakers (synthesizer voices, which the
demo model was trained on), when the demo corpus is built.
"""

from __future__ import annotations

import argparse
import hashlib
from collections import defaultdict
from pathlib import Path

from tqdm.auto import tqdm

from codectrace.audio import is_audio_file
from codectrace.files import write_text
from codectrace.hub import load_tracer
from codectrace.presets import DEMO_DATASET_DIR

SOUNDS = Path("/usr/share/ktuberling/sounds")


def real_voices(sounds: Path) -> dict[str, list[Path]]:
    """Language folder -> its audio files, each distinct file once (the first folder, in name order, keeps it)."""
    seen, folders = set(), defaultdict(list)
    for path in sorted(p for p in sounds.rglob("*") if p.is_file() and is_audio_file(p)):
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest not in seen:
            seen.add(digest)
            folders[path.relative_to(sounds).parts[0]].append(path)
    return dict(folders)


def false_alarms(tracer, clips: list, desc: str) -> tuple[int, int, int]:
    """(clips called spoof, clips traced, clips with a warning); clips that cannot be read are left out."""
    spoof = traced = warned = 0
    for clip in tqdm(clips, desc=desc, unit="clip", leave=False):
        try:
            result = tracer(str(clip) if isinstance(clip, Path) else clip)
        except ValueError:
            continue
        traced += 1
        spoof += result["decision"] == "spoof"
        warned += bool(result["warnings"])
    return spoof, traced, warned


def synthetic_test_speakers(dataset: Path) -> list:
    """Bona fide clips of CodecFake-mini's test speakers, as undecoded audio values."""
    from codectrace.resolve import load_split

    rows = load_split(str(dataset), "cors_eval", "test")
    return [row["audio"] for row in rows if row["bin"] == 1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--sounds", type=Path, default=SOUNDS)
    parser.add_argument("--dataset", type=Path, default=DEMO_DATASET_DIR, help="CodecFake-mini, for comparison")
    parser.add_argument("--precision", default="auto", choices=["auto", "fp32", "bf16", "int8"])
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    if not args.sounds.is_dir():
        raise SystemExit(f"no real voices in {args.sounds}: install Debian's ktuberling-data (scripts/setup.sh does)")
    tracer = load_tracer(args.model, precision=args.precision)
    lines = ["| voices | speakers | clips | called spoof | clips with a warning |", "|---|---|---|---|---|"]
    per_speaker = []
    totals = [0, 0, 0]
    for speaker, clips in tqdm(real_voices(args.sounds).items(), desc="real voices", unit="speaker"):
        spoof, traced, warned = false_alarms(tracer, clips, speaker)
        if traced:
            per_speaker.append((speaker, spoof / traced, traced))
            totals = [totals[0] + spoof, totals[1] + traced, totals[2] + warned]
    worst = max(per_speaker, key=lambda s: s[1])
    lines.append(f"| real (ktuberling-data) | {len(per_speaker)} | {totals[1]} | {100 * totals[0] / totals[1]:.1f}% "
                 f"(per speaker: mean {100 * sum(s[1] for s in per_speaker) / len(per_speaker):.1f}%, worst "
                 f"{worst[0]} {100 * worst[1]:.0f}%) | {100 * totals[2] / totals[1]:.1f}% |")
    if (args.dataset / "README.md").is_file():
        spoof, traced, warned = false_alarms(tracer, synthetic_test_speakers(args.dataset), "synthetic")
        lines.append(f"| synthetic (CodecFake-mini test speakers) | 3 | {traced} | {100 * spoof / traced:.1f}% | "
                     f"{100 * warned / traced:.1f}% |")
    lines += ["", "| real speaker (language folder) | clips | called spoof |", "|---|---|---|"]
    lines += [f"| {name} | {count} | {100 * share:.0f}% |" for name, share, count in sorted(per_speaker)]
    table = "\n".join(lines) + "\n"
    print(f"model: {args.model}, precision {tracer.resolved_precision}\n\n{table}")
    if args.out:
        write_text(args.out, table)


if __name__ == "__main__":
    main()
