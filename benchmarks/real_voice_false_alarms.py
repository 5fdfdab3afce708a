"""How often does a model call real recorded human speech spoof, and does it say when it is on unfamiliar audio?

    python benchmarks/real_voice_false_alarms.py --model outputs/demo-M1 [--corpora ktuberling asterisk gcin]
        [--per-speaker 150] [--out docs/real_voices_seed1234]

Real voices: the corpora of `speech_sources.real_speech.REAL_CORPORA` (Debian packages that scripts/setup.sh
installs, read where installed, never copied): ktuberling (single words, ~23 languages), Asterisk (telephone voice
prompts, 4 voice talents, 8 kHz), gcin (Mandarin syllables, 2 speakers). Every clip is traced on its own, as a
person would upload it, with the pipeline's defaults (at most `--per-speaker` clips per speaker, a seeded sample); a
false alarm is a decision `spoof`. Speakers are grouped by their CodecFake-mini split where the model's corpus
holds them (ktuberling), else "never trained on" (the whole corpus was left out).

Per group: the share called spoof (and the worst speaker), and the share of false alarms and of correct verdicts
that carry the "unfamiliar audio" warning (the BIN head's unknown-source flag: audio unlike all the training audio).
Beside them, for comparison, CodecFake-mini's test split (bona fide and spoof clips of its synthetic and real test
speakers; a seeded sample of `--in-domain-spoof` of its spoof clips): its false alarms, misses and warned shares.

`--out PREFIX` writes PREFIX.md (the tables) and PREFIX.json (every figure); `--summarise A.json B.json ...` then
gives one table over seeds (`--out PREFIX` writes it to PREFIX.md).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from codectrace.files import print_report, write_json, write_text
from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary
from codectrace.precision import PRECISIONS
from codectrace.presets import DEMO_DATASET_DIR, DEMO_RELEASE_DIR
from codectrace.whole_clip import count_verdicts
from dataset_scripts.build_codecfake_mini import release_speakers
from speech_sources.real_speech import REAL_CORPORA

NEVER_TRAINED_ON = "never trained on (corpus left out)"


def sample(files: list[Path], limit: int | None, seed: int) -> list[Path]:
    if limit is None or len(files) <= limit:
        return files
    return sorted(files[i] for i in np.random.default_rng(seed).choice(len(files), limit, replace=False))


def group_row(corpus: str, group: str, speakers: dict[str, dict]) -> dict:
    """Totals of a group of speakers: share called spoof, worst speaker, warned shares of false alarms and of
    correct (bona fide) verdicts."""
    total = {k: sum(s[k] for s in speakers.values()) for k in ("clips", "spoof", "warned", "spoof_warned")}
    worst = max(speakers, key=lambda s: speakers[s]["spoof"] / max(speakers[s]["clips"], 1))
    correct = total["clips"] - total["spoof"]
    return {"corpus": corpus, "group": group, "speakers": len(speakers), **total,
            "false_alarm_rate": total["spoof"] / max(total["clips"], 1), "worst_speaker": worst,
            "worst_rate": speakers[worst]["spoof"] / max(speakers[worst]["clips"], 1),
            "false_alarms_warned": total["spoof_warned"] / total["spoof"] if total["spoof"] else None,
            "correct_warned": (total["warned"] - total["spoof_warned"]) / correct if correct else None}


def corpus_rows(tracer, name: str, split_of: dict[str, str], per_speaker: int | None, seed: int) -> tuple:
    """Per group of the corpus's speakers (their CodecFake-mini split, or never trained on) a row; per speaker the
    counts."""
    speakers = {}
    for speaker, files in tqdm(REAL_CORPORA[name].speakers().items(), desc=name, unit="speaker"):
        counts = count_verdicts(tracer, sample(files, per_speaker, seed), speaker)
        if counts["clips"]:
            speakers[speaker] = counts
    groups = {"train": "heard in training", "validation": "validation speakers, never trained on",
              "test": "test speakers, never trained on", None: NEVER_TRAINED_ON}
    rows = []
    for split, label in groups.items():
        members = {s: c for s, c in speakers.items() if split_of.get(s) == split}
        if members:
            rows.append(group_row(name, label, members))
    return rows, speakers


def in_domain_row(tracer, dataset: Path, spoof_clips: int, seed: int) -> dict:
    """CodecFake-mini's test split (cors_eval): false alarms and misses (on a seeded sample of `spoof_clips` spoof
    clips), and the warned share of correct verdicts."""
    from codectrace.resolve import load_split

    rows = load_split(str(dataset), "cors_eval", "test")
    bona = count_verdicts(tracer, [r["audio"] for r in rows if r["bin"] == 1], "in-domain bona fide")
    spoofed = [r["audio"] for r in rows if r["bin"] == 0]
    picked = np.random.default_rng(seed).permutation(len(spoofed))[:spoof_clips]
    spoof = count_verdicts(tracer, [spoofed[i] for i in sorted(picked)], "in-domain spoof")
    correct = bona["clips"] - bona["spoof"] + spoof["spoof"]
    correct_warned = bona["warned"] - bona["spoof_warned"] + spoof["spoof_warned"]
    return {"bona_fide": bona["clips"], "false_alarm_rate": bona["spoof"] / bona["clips"], "spoof": spoof["clips"],
            "miss_rate": 1 - spoof["spoof"] / spoof["clips"], "correct_warned": correct_warned / max(correct, 1)}


def share(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def tables(rows: list[dict], speakers: dict, in_domain: dict | None) -> str:
    lines = ["| corpus | speakers | clips | called spoof (worst speaker) | false alarms warned | correct verdicts "
             "warned |", "|---|---|---|---|---|---|"]
    lines += [f"| {r['corpus']}, {r['group']} | {r['speakers']} | {r['clips']} | {share(r['false_alarm_rate'])} "
              f"({r['worst_speaker']} {100 * r['worst_rate']:.0f}%) | {share(r['false_alarms_warned'])} | "
              f"{share(r['correct_warned'])} |" for r in rows]
    if in_domain:
        lines += ["", "| CodecFake-mini test split | bona fide clips | called spoof | spoof clips | missed | correct "
                  "verdicts warned |", "|---|---|---|---|---|---|",
                  f"| cors_eval test | {in_domain['bona_fide']} | {share(in_domain['false_alarm_rate'])} | "
                  f"{in_domain['spoof']} | {share(in_domain['miss_rate'])} | {share(in_domain['correct_warned'])} |"]
    lines += ["", "| corpus | speaker | clips | called spoof | warned |", "|---|---|---|---|---|"]
    lines += [f"| {corpus} | {name} | {c['clips']} | {share(c['spoof'] / c['clips'])} | "
              f"{share(c['warned'] / c['clips'])} |"
              for corpus, members in speakers.items() for name, c in sorted(members.items())]
    return "\n".join(lines) + "\n"


def seeds_table(reports: list[Path]) -> str:
    """Per corpus and group, over the runs' OUT.json (one per seed of a recipe): the share called spoof per run, its
    mean, and the mean share of false alarms warned."""
    runs = [json.loads(path.read_text()) for path in reports]
    lines = [f"Runs: {', '.join(str(r['model']) for r in runs)}; {runs[0]['cpu']}.", "",
             "| corpus, group | clips | called spoof, per run | mean | false alarms warned, mean |",
             "|---|---|---|---|---|"]
    for row in runs[0]["rows"]:
        same = [next(r for r in run["rows"] if (r["corpus"], r["group"]) == (row["corpus"], row["group"]))
                for run in runs]
        warned = [r["false_alarms_warned"] for r in same if r["false_alarms_warned"] is not None]
        lines.append(f"| {row['corpus']}, {row['group']} | {row['clips']} | "
                     + " / ".join(share(r["false_alarm_rate"]) for r in same)
                     + f" | **{share(float(np.mean([r['false_alarm_rate'] for r in same])))}** | "
                     + (share(float(np.mean(warned))) if warned else "-") + " |")
    in_domain = [run["in_domain"] for run in runs if run.get("in_domain")]
    if in_domain:
        lines += ["", "CodecFake-mini test split (cors_eval), per run: bona fide called spoof "
                  + " / ".join(share(d["false_alarm_rate"]) for d in in_domain) + "; spoof missed "
                  + " / ".join(share(d["miss_rate"]) for d in in_domain) + "."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="model folder or Hub id")
    parser.add_argument("--summarise", nargs="+", type=Path, metavar="OUT.json",
                        help="instead of tracing: one table over the OUT.json of several runs (seeds of a recipe)")
    parser.add_argument("--corpora", nargs="+", choices=list(REAL_CORPORA), default=list(REAL_CORPORA))
    parser.add_argument("--per-speaker", type=int, default=150, help="clips per speaker at most (a seeded sample)")
    parser.add_argument("--in-domain-spoof", type=int, default=600, help="spoof clips of the test split traced")
    parser.add_argument("--seed", type=int, default=0, help="of the samples")
    parser.add_argument("--dataset", type=Path, default=DEMO_DATASET_DIR, help="CodecFake-mini, for comparison")
    parser.add_argument("--release", type=Path, default=DEMO_RELEASE_DIR, help="its release (speaker splits)")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS))
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    args = parser.parse_args()
    if args.summarise:
        print_report(seeds_table(args.summarise), args.out.with_suffix(".md") if args.out else None)
        return
    if not args.model:
        parser.error("--model is needed (or --summarise)")
    tracer = load_tracer(args.model, precision=args.precision)
    split_of, _ = release_speakers(args.release)
    rows, speakers = [], {}
    for name in args.corpora:
        corpus_groups, speakers[name] = corpus_rows(tracer, name, split_of, args.per_speaker, args.seed)
        rows += corpus_groups
    in_domain = (in_domain_row(tracer, args.dataset, args.in_domain_spoof, args.seed)
                 if (args.dataset / "README.md").is_file() else None)
    table = tables(rows, speakers, in_domain)
    print(f"model: {args.model}, precision {tracer.resolved_precision}, {cpu_summary()}\n\n{table}")
    if args.out:
        write_text(args.out.with_suffix(".md"), table)
        write_json(args.out.with_suffix(".json"), {"model": str(args.model), "cpu": cpu_summary(), "rows": rows,
                                                   "speakers": speakers, "in_domain": in_domain})


if __name__ == "__main__":
    main()
