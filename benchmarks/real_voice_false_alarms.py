"""How often does a model call real recorded human speech spoof? Bona fide false alarms on real voices.

    python benchmarks/real_voice_false_alarms.py --model outputs/demo-M1 [--out docs/real_voice_false_alarms.md]

Real voices: Debian's `ktuberling-data` (scripts/setup.sh installs it): short recordings of single words by native
speakers, one folder per language (one voice each), read from `/usr/share/ktuberling/sounds` (GPL KDE data: read
where installed, never copied into the project; identical files in several folders counted once,
`speech_sources.real_speech`). Every word is traced on its own, as a person would upload it, with the pipeline's
defaults; a false alarm is a decision `spoof` (spoof score >= 0.5). CodecFake-mini trains on some of these
speakers (their words joined into longer utterances): the table gives each split of speakers apart, so the
figure that counts is the one of speakers the model never heard (validation and test). Beside them, for
comparison, the bona fide clips of CodecFake-mini's synthetic test speakers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from tqdm.auto import tqdm

from codectrace.files import write_text
from codectrace.hub import load_tracer
from codectrace.precision import PRECISIONS
from codectrace.presets import DEMO_DATASET_DIR, DEMO_RELEASE_DIR
from dataset_scripts.build_codecfake_mini import release_speakers
from speech_sources.real_speech import KTUBERLING_SOUNDS, real_voice_files, speaker_id


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


def synthetic_test_speakers(dataset: Path, kinds: dict[str, str]) -> list:
    """Bona fide clips of CodecFake-mini's synthetic test speakers, as undecoded audio values."""
    from codectrace.resolve import load_split

    rows = load_split(str(dataset), "cors_eval", "test")
    return [row["audio"] for row in rows if row["bin"] == 1 and kinds.get(row["speaker"], "synthetic") == "synthetic"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="model folder or Hub id")
    parser.add_argument("--sounds", type=Path, default=KTUBERLING_SOUNDS)
    parser.add_argument("--dataset", type=Path, default=DEMO_DATASET_DIR, help="CodecFake-mini, for comparison")
    parser.add_argument("--release", type=Path, default=DEMO_RELEASE_DIR, help="its release (speaker splits)")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS))
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args()
    tracer = load_tracer(args.model, precision=args.precision)
    split_of, kinds = release_speakers(args.release)
    per_speaker = {}
    for folder, clips in tqdm(real_voice_files(args.sounds).items(), desc="real voices", unit="speaker"):
        spoof, traced, warned = false_alarms(tracer, clips, folder)
        if traced:
            per_speaker[speaker_id(folder)] = (spoof, traced, warned)
    lines = ["| voices | speakers | words | called spoof | words with a warning |", "|---|---|---|---|---|"]
    for split, what in (("train", "heard in training"), ("validation", "validation speakers, never trained on"),
                        ("test", "test speakers, never trained on"), (None, "not in the corpus")):
        group = {s: v for s, v in per_speaker.items() if split_of.get(s) == split}
        if group:
            spoof, traced, warned = (sum(v[k] for v in group.values()) for k in range(3))
            worst = max(group, key=lambda s: group[s][0] / group[s][1])
            lines.append(f"| real, {what} | {len(group)} | {traced} | {100 * spoof / traced:.1f}% (worst {worst} "
                         f"{100 * group[worst][0] / group[worst][1]:.0f}%) | {100 * warned / traced:.1f}% |")
    if (args.dataset / "README.md").is_file():
        spoof, traced, warned = false_alarms(tracer, synthetic_test_speakers(args.dataset, kinds), "synthetic")
        lines.append(f"| synthetic (CodecFake-mini test speakers) | - | {traced} | {100 * spoof / traced:.1f}% | "
                     f"{100 * warned / traced:.1f}% |")
    lines += ["", "| real speaker | split | words | called spoof |", "|---|---|---|---|"]
    lines += [f"| {name} | {split_of.get(name, '-')} | {v[1]} | {100 * v[0] / v[1]:.0f}% |"
              for name, v in sorted(per_speaker.items())]
    table = "\n".join(lines) + "\n"
    print(f"model: {args.model}, precision {tracer.resolved_precision}\n\n{table}")
    if args.out:
        write_text(args.out, table)


if __name__ == "__main__":
    main()
