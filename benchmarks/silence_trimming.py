"""Choosing `trim_silence_db` (the pipeline cutting leading and trailing silence) on validation data only.

    python benchmarks/silence_trimming.py --runs outputs/demo-seeds [--levels off 30 40 50]
        [--out docs/research/silence_trimming]

For every `seed-*` model of a recipe and every trimming level, the pipeline traces (fp32, whole clips):
- CodecFake-mini's in-domain validation split and its validation codecs: BIN EER, VQ / AUX / DEC macro-F1, the
  selection score, and the unknown-source AUROC of the validation codecs' spoof clips against the in-domain
  validation spoof clips (the VQ head's score; the demo's heads share one embedding);
- ktuberling's validation speakers (real voices never trained on), as recorded and *gated*: the same words as a
  noise-gated set-up records them (`gated`: 20-ms frames quieter than `GATE_DB` under the clip's loudest frame set
  to zero, and `GATE_PAD_SECONDS` of digital silence before and after). Share called spoof.

No test speaker, test codec or other corpus is read. The rule that chooses (`choose`): the level with the fewest
gated validation clips called spoof, among those whose mean validation selection score is within `TOLERANCE` of no
trimming and whose ungated validation false alarms are no higher; ties go to the least trimming (the largest dB).
The gated set-up was modelled on what `research/unfamiliar_setups.py` measured on KLettres (docs/real_voices.md
says so). Writes PREFIX.md (tables) and PREFIX.json (every figure).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from codectrace.files import print_report, write_json
from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary
from codectrace.metrics import mean_and_range, selection_score
from codectrace.presets import DEMO_DATASET_DIR, DEMO_RELEASE_DIR
from codectrace.resolve import load_split
from codectrace.unknown_source import separation
from codectrace.whole_clip import count_verdicts, trace_probabilities, whole_clip_metrics
from dataset_scripts.build_codecfake_mini import release_speakers
from speech_sources.real_speech import REAL_CORPORA

ROOT = Path(__file__).resolve().parents[1]
TASKS = ("vq", "aux", "dec")
GATE_DB = 45.0
GATE_PAD_SECONDS = 0.8
GATE_FRAME_SECONDS = 0.02
TOLERANCE = 0.005  # of the selection score
VALIDATION_SETS = {"in-domain validation": ("aux", "validation"), "validation codecs": ("val_codecs", "validation")}


def gated(x: np.ndarray, rate: int) -> np.ndarray:
    """`x` as a noise-gated set-up records it: quiet frames zeroed, digital silence before and after."""
    frame = max(int(GATE_FRAME_SECONDS * rate), 1)
    frames = x[: len(x) // frame * frame].reshape(-1, frame)
    rms = np.sqrt(np.mean(np.square(frames, dtype=np.float64), axis=1))
    if rms.size and rms.max() > 0:
        frames = np.where((rms < rms.max() * 10 ** (-GATE_DB / 20))[:, None], 0.0, frames)
    pad = np.zeros(int(GATE_PAD_SECONDS * rate), dtype=np.float32)
    return np.concatenate([pad, frames.ravel().astype(np.float32), x[frames.size:], pad])


def validation_figures(tracer, sets: dict, level: str) -> dict:
    """Per validation set: BIN EER %, macro-F1s and selection score; the validation unknown-source AUROC."""
    figures, spoof_unknown = {}, {}
    for name, data in sets.items():
        unknown = {}
        probabilities, _ = trace_probabilities(tracer, data, f"{level} {name}", unknown_scores=unknown)
        metrics = whole_clip_metrics(probabilities, data)
        figures[name] = {"bin_eer": 100 * metrics["bin"]["eer"], **{t: metrics[t]["f1_macro"] for t in TASKS},
                         "selection_score": selection_score({h: metrics[h] for h in ("bin", *TASKS)})}
        spoof = np.asarray(data["bin"]) == data.features["bin"].str2int("spoof")
        spoof_unknown[name] = unknown["vq"][spoof & np.isfinite(unknown["vq"])]
    figures["unknown AUROC"] = separation(spoof_unknown["in-domain validation"],
                                          spoof_unknown["validation codecs"])["auroc"]
    return figures


def real_false_alarms(tracer, clips: list[tuple[np.ndarray, int]], description: str) -> float:
    """% of the clips called spoof (clips the pipeline refuses left out)."""
    counts = count_verdicts(tracer, [{"array": x, "sampling_rate": rate} for x, rate in clips], description)
    return 100 * counts["spoof"] / max(counts["clips"], 1)


def validation_voices(release: Path, per_speaker: int) -> list[tuple[np.ndarray, int]]:
    """ktuberling's validation speakers' clips (at most `per_speaker` each, a seeded sample), mono."""
    split_of, _ = release_speakers(release)
    clips, rng = [], np.random.default_rng(0)
    for speaker, files in sorted(REAL_CORPORA["ktuberling"].speakers().items()):
        if split_of.get(speaker) != "validation":
            continue
        for i in sorted(rng.permutation(len(files))[:per_speaker]):
            samples, rate = sf.read(files[i], dtype="float32", always_2d=True)
            clips.append((samples.mean(axis=1), rate))
    return clips


def level_value(level: str) -> float | bool:
    return False if level == "off" else float(level)


def score_seed(folder: Path, levels: list[str], sets: dict, voices: list) -> dict:
    gated_voices = [(gated(x, rate), rate) for x, rate in voices]
    row = {}
    for level in levels:
        tracer = load_tracer(str(folder), precision="fp32", trim_silence_db=level_value(level))
        figures = validation_figures(tracer, sets, level)
        figures["selection"] = float(np.mean([figures[name]["selection_score"] for name in VALIDATION_SETS]))
        figures["real validation voices %"] = real_false_alarms(tracer, voices, f"{level} voices")
        figures["gated validation voices %"] = real_false_alarms(tracer, gated_voices, f"{level} gated")
        row[level] = figures
    return row


def choose(rows: dict[int, dict], levels: list[str]) -> str:
    """The rule of the module docstring, on the means over seeds; `levels[0]` is `off`."""
    def mean(level: str, key: str) -> float:
        return float(np.mean([rows[seed][level][key] for seed in rows]))

    allowed = [level for level in levels
               if mean(level, "selection") >= mean("off", "selection") - TOLERANCE
               and mean(level, "real validation voices %") <= mean("off", "real validation voices %")]
    # least trimming first, so that a tie goes to it: off, then the largest dB
    allowed.sort(key=lambda level: -np.inf if level == "off" else -float(level))
    return min(allowed, key=lambda level: mean(level, "gated validation voices %"))


def markdown(rows: dict[int, dict], levels: list[str], chosen: str, seconds: float) -> str:
    seeds = list(rows)
    lines = [f"Seeds {', '.join(map(str, seeds))}: mean [min-max]; {cpu_summary()}, fp32 ({seconds / 60:.1f} min). "
             "Validation data only.", "",
             "| trim_silence_db | set | BIN EER % | VQ F1 | AUX F1 | DEC F1 | selection score |", "|---" * 7 + "|"]
    for level in levels:
        for name in VALIDATION_SETS:
            cells = [mean_and_range([rows[s][level][name][k] for s in seeds])
                     for k in ("bin_eer", *TASKS, "selection_score")]
            lines.append(f"| {level} | {name} | " + " | ".join(cells) + " |")
    lines += ["", "| trim_silence_db | unknown-source AUROC (validation codecs) | ktuberling validation speakers "
              "called spoof % | the same, gated % |", "|---|---|---|---|"]
    for level in levels:
        lines.append(f"| {level} | " + " | ".join(mean_and_range([rows[s][level][k] for s in seeds]) for k in (
            "unknown AUROC", "real validation voices %", "gated validation voices %")) + " |")
    lines += ["", f"Chosen by the rule (`choose`): **{chosen}**."]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=Path, required=True, help="a recipe's folder of seed-* runs")
    parser.add_argument("--levels", nargs="+", default=["off", "30", "40", "50"],
                        help="`off` first (the baseline), then dB under the peak")
    parser.add_argument("--per-speaker", type=int, default=30, help="ktuberling validation clips per speaker")
    parser.add_argument("--dataset", type=Path, default=ROOT / DEMO_DATASET_DIR)
    parser.add_argument("--release", type=Path, default=ROOT / DEMO_RELEASE_DIR)
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = parser.parse_args(argv)
    if args.levels[0] != "off":
        parser.error("--levels must start with `off`, the baseline the others are held to")
    folders = sorted(args.runs.glob("seed-*"), key=lambda f: int(f.name.split("-")[1]))
    if not folders:
        raise SystemExit(f"no seed-* runs in {args.runs}")
    sets = {name: load_split(str(args.dataset), *where) for name, where in VALIDATION_SETS.items()}
    voices = validation_voices(args.release, args.per_speaker)
    start = time.perf_counter()
    rows = {int(f.name.split("-")[1]): score_seed(f, args.levels, sets, voices) for f in folders}
    chosen = choose(rows, args.levels)
    table = markdown(rows, args.levels, chosen, time.perf_counter() - start)
    print_report(table, args.out.with_suffix(".md") if args.out else None)
    if args.out:
        write_json(args.out.with_suffix(".json"), {"cpu": cpu_summary(), "levels": args.levels, "chosen": chosen,
                                                   "rows": {str(s): r for s, r in rows.items()}})


if __name__ == "__main__":
    main()
