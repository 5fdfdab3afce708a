"""Leave one real-speech corpus out: bona fide false alarms on a corpus whose recording set-ups the model never heard.

    python benchmarks/real_voices_loco.py [--leave-out ktuberling asterisk gcin] [--seeds 1234 7 42]
        [--runs outputs/real-voices-loco] [--out docs/real_voices_loco] [-- TRAIN.PY ARGUMENTS]

For each corpus of `speech_sources.real_speech.REAL_CORPORA` named by `--leave-out`: CodecFake-mini is built with
the real speakers of every *other* installed corpus (each split speaker-disjointly on its own, re-synthesised by the
codec zoo like the synthetic speakers; `<runs>/data/without-<corpus>/`), the demo recipe is trained on it for every
seed (`benchmarks/demo_seeds.py`, a finished run is reused), and `benchmarks/real_voice_false_alarms.py` traces
every corpus with each model. The table gives, per left-out corpus, mean [min-max] over seeds: the share of its
clips called spoof (never trained on), the share of false alarms and of correct verdicts carrying the "unfamiliar
audio" warning, and the false alarms on the test speakers of the corpora it trained on.

Builds and training take time: about 5 minutes per corpus build and 15 per seed on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from codectrace.files import write_json, write_text
from codectrace.machine import cpu_summary
from codectrace.metrics import mean_and_range
from dataset_scripts.build_codecfake_mini import ensure_codecfake_mini
from speech_sources.real_speech import REAL_CORPORA

ROOT = Path(__file__).resolve().parents[1]
NEVER = "never trained on (corpus left out)"
TEST_SPEAKERS = "test speakers, never trained on"


def trained_runs(corpus: str, args) -> list[Path]:
    """Builds the corpus without `corpus`, trains every seed on it and traces the real voices with each model;
    returns the seeds' result files (a seed whose training failed is left out)."""
    kept = {name: None for name in REAL_CORPORA if name != corpus and REAL_CORPORA[name].root.is_dir()}
    data = args.runs / "data" / f"without-{corpus}"
    dataset = ensure_codecfake_mini(data / "release", data / "dataset", args.utterances, real_voices=kept)
    models = args.runs / f"without-{corpus}"
    subprocess.run([sys.executable, str(ROOT / "benchmarks" / "demo_seeds.py"), "--seeds", *map(str, args.seeds),
                    "--runs", str(models), "--hide-test", "--", "--dataset", str(dataset), *args.train_args],
                   cwd=ROOT, check=False)  # a failed seed is reported by demo_seeds and left out here
    results = []
    for seed in args.seeds:
        model, out = models / f"seed-{seed}", models / f"seed-{seed}" / "real_voices"
        if not (model / "all_results.json").is_file():
            continue
        if not out.with_suffix(".json").is_file():
            subprocess.run([sys.executable, str(ROOT / "benchmarks" / "real_voice_false_alarms.py"), "--model",
                            str(model), "--dataset", str(dataset), "--release", str(data / "release"),
                            "--per-speaker", str(args.per_speaker), "--out", str(out)], cwd=ROOT, check=True)
        results.append(out.with_suffix(".json"))
    return results


def figures(result: dict, corpus: str) -> dict[str, float | None]:
    """From one model's real-voice results: the left-out corpus's figures and the in-corpus test speakers'."""
    rows = result["rows"]
    left_out = next(r for r in rows if r["corpus"] == corpus and r["group"] == NEVER)
    tested = [r for r in rows if r["corpus"] != corpus and r["group"] == TEST_SPEAKERS]
    clips = sum(r["clips"] for r in tested)
    return {"left_out": 100 * left_out["false_alarm_rate"], "worst": f"{left_out['worst_speaker']} "
            f"{100 * left_out['worst_rate']:.0f}%",
            "false_alarms_warned": left_out["false_alarms_warned"], "correct_warned": left_out["correct_warned"],
            "in_corpus_test": 100 * sum(r["spoof"] for r in tested) / clips if clips else None}


def cell(values: list, scale: float = 1.0, digits: int = 1) -> str:
    kept = [scale * v for v in values if v is not None]
    return mean_and_range(kept, digits) if kept else "-"


def table(per_corpus: dict[str, list[dict]]) -> str:
    lines = ["| corpus left out | seeds | its clips called spoof % | worst speaker per seed | its false alarms "
             "warned % | its correct verdicts warned % | test speakers of the trained corpora called spoof % |",
             "|---|---|---|---|---|---|---|"]
    for corpus, seeds in per_corpus.items():
        lines.append(f"| {corpus} | {len(seeds)} | {cell([s['left_out'] for s in seeds])} | "
                     f"{', '.join(s['worst'] for s in seeds)} | "
                     f"{cell([s['false_alarms_warned'] for s in seeds], 100)} | "
                     f"{cell([s['correct_warned'] for s in seeds], 100)} | "
                     f"{cell([s['in_corpus_test'] for s in seeds])} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--leave-out", nargs="+", choices=list(REAL_CORPORA), default=list(REAL_CORPORA))
    parser.add_argument("--seeds", nargs="+", type=int, default=[1234, 7, 42])
    parser.add_argument("--runs", type=Path, default=ROOT / "outputs" / "real-voices-loco")
    parser.add_argument("--per-speaker", type=int, default=150, help="real-voice clips traced per speaker at most")
    parser.add_argument("--utterances", type=int, default=30, help="per speaker in the corpus built (default 30)")
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    argv = sys.argv[1:]
    split = argv.index("--") if "--" in argv else len(argv)
    args = parser.parse_args(argv[:split])
    args.train_args = argv[split + 1:]
    per_corpus = {corpus: [figures(json.loads(path.read_text()), corpus) for path in trained_runs(corpus, args)]
                  for corpus in args.leave_out}
    text = f"{cpu_summary()}; seeds {', '.join(map(str, args.seeds))}; mean [min-max] over seeds\n\n" + table(
        per_corpus)
    print(text)
    if args.out:
        write_text(args.out.with_suffix(".md"), text)
        write_json(args.out.with_suffix(".json"), per_corpus)


if __name__ == "__main__":
    main()
