"""Where in a recording: segments on partly spoofed recordings, per window hop and frame rule, chosen on validation.

    python benchmarks/partial_spoof_segments.py [--model outputs/demo-M1] [--hops 2 1 0.5] [--out docs/segments]

Builds CodecFake-mini's partly spoofed sets once (`dataset_scripts.partial_spoof`: 20-60 s recordings of one
speaker with 1-3 stretches of 0.5-5 s replaced by a codec's re-synthesis, and as many bona fide recordings; training
codecs and test codecs on the test speakers, validation codecs on the validation speakers) and traces every
recording at each `--hops` (seconds) with `return_windows`, then per frame rule (`codectrace.segments`):

- clip level: EER of `contains_spoof_score` (the highest frame score), partly spoofed against bona fide recordings;
- segments: precision, recall and F1 of the ranges found against the true ones at IoU >= 0.5 (a range found in a
  bona fide recording is a false one), and the median boundary error of the matched ranges;
- family: per task, the share of matched segments whose head label (as the pipeline answers a segment, from its own
  audio; as the head gives it, without the unknown flag)
  is the codec's class, beside the same heads on whole re-synthesised utterances of the same codecs and speakers;
- cost: windows traced per minute of audio as a multiple of non-overlapping windows (what the model computes; the
  wall time, also given, moves with whatever else the machine runs).

A model with a frame head is also measured with the `frames` rule at each of `SMOOTHINGS` (seconds of the moving
mean). The setting (hop, rule, smoothing) is chosen on the validation set only: the highest segment F1 among those
tracing at most 2x the windows of non-overlapping ones. The training- and test-codec sets are then read once, at
that setting (`--validation-only` stops before them: for comparing training recipes; `--product-setting` reads them
at the pipeline's setting, chosen on validation over seeds, instead of this model's own choice).
`--out OUT` writes OUT.md, OUT.json and OUT.png (the Space's timeline of the first recording of the training-codec
set with at least 2 s of spoofed speech, with its true ranges).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm

from codectrace.files import write_json, write_text
from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary
from codectrace.metrics import compute_eer, match_segments, segment_metrics
from codectrace.presets import DEMO_RELEASE_DIR
from codectrace.segments import (
    FRAME_RULE,
    SEGMENT_HOP,
    SMOOTH_SECONDS,
    WINDOW_RULES,
    WindowScores,
    find_segments,
    frame_head_scores,
)
from dataset_scripts.partial_spoof import ensure_partial_spoof, resynthesis_path, speaker_utterances
from modeling_codectrace.configuration_codectrace import SAMPLING_RATE, TASK_LABELS

TASKS = ("vq", "aux", "dec")
SPLITS = {"validation": "validation", "training": "train", "test": "test"}  # set -> AudioFolder split
MAX_COST = 2.0
# seconds, for the `frames` rule: up to about twice the shortest spoofed stretch (0.5 s)
SMOOTHINGS = (0.0, 0.1, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2)


def windows_of(result: dict, config) -> WindowScores:
    """A traced recording's windows (`return_windows`) as `find_segments` takes them (no unknown-source scores), with
    the frame head's scores where the model (`config`) has one."""
    windows, chunk = result["windows"], config.chunk_samples
    starts = np.array([round(w["start_seconds"] * SAMPLING_RATE) for w in windows])
    frames = np.array([w["frame_spoof_scores"] for w in windows]) if config.frame_head else None
    return WindowScores(starts, chunk, round(result["duration_seconds"] * SAMPLING_RATE),
                        np.array([w["spoof_score"] for w in windows]),
                        {t: np.array([[w[t][c] for c in TASK_LABELS[t]] for w in windows]) for t in TASKS}, {}, {},
                        frames, config.frame_layout(chunk) if config.frame_head else None)


def settings_of(config) -> list[dict]:
    """The segment settings (`find_segments` arguments) measured for a model: every window rule and, with a frame
    head, the `frames` rule at every smoothing."""
    settings = [{"rule": rule} for rule in WINDOW_RULES]
    if config.frame_head:
        settings += [{"rule": "frames", "smooth_seconds": smooth} for smooth in SMOOTHINGS]
    return settings


def setting_name(setting: dict) -> str:
    smooth = setting.get("smooth_seconds")
    return setting["rule"] if smooth is None else f"{setting['rule']} (smoothed {smooth:g} s)"


def trace_set(tracer, rows, hop: float) -> tuple[list[dict], dict[str, float]]:
    """Per recording its windows; and the cost: seconds spent tracing and windows per minute of audio."""
    traced, spent, audio = [], 0.0, 0.0
    for row in tqdm(rows, desc=f"hop {hop} s", unit="recording", leave=False):
        start = time.perf_counter()
        result = tracer(row["audio"]["path"], hop_seconds=hop, return_windows=True)
        spent += time.perf_counter() - start
        audio += result["duration_seconds"]
        traced.append(result)
    windows = sum(r["num_windows"] for r in traced)
    return traced, {"seconds": 60.0 * spent / audio, "windows": 60.0 * windows / audio, "audio_seconds": audio}


def tally(right: dict[str, list[bool]], segments: list[dict], row: dict) -> None:
    """Appends, per task, whether each segment's head label is the row's codec class."""
    for segment in segments:
        for task in TASKS:
            right[task].append(segment["heads"][task]["label"] == row[task])


def measure(tracer, traced: list[dict], rows, setting: dict) -> dict:
    """Clip-level EER, segment F1 and boundary error, and family accuracy of one traced set under one setting: of
    the segments' own audio as the pipeline answers them (`family`), and of the windows over them
    (`family_of_windows`)."""
    recordings, scores, own_windows = [], {"bonafide": [], "partly_spoofed": []}, 0
    right = {"own audio": {t: [] for t in TASKS}, "windows": {t: [] for t in TASKS}}
    for result, row in zip(traced, rows):
        segments, contains = find_segments(windows_of(result, tracer.model.config), **setting)
        own_windows += len(segments)  # the pipeline traces one window of each segment's own audio
        predicted = [(s["start_seconds"], s["end_seconds"]) for s in segments]
        truth = [tuple(r) for r in row["spoof_ranges"]]
        recordings.append((predicted, truth))
        scores[row["label"]].append(contains)
        matched = [segments[i] for i, _ in match_segments(predicted, truth)]
        tally(right["windows"], matched, row)
        tracer.answer_segments_from_their_audio(row["audio"]["path"], matched)
        tally(right["own audio"], matched, row)
    eer, _ = compute_eer(1.0 - np.array(scores["bonafide"]), 1.0 - np.array(scores["partly_spoofed"]))
    family = {way: {t: float(np.mean(v)) if v else float("nan") for t, v in tasks.items()}
              for way, tasks in right.items()}
    return {"clip_eer": 100 * eer, **segment_metrics(recordings), "family": family["own audio"],
            "family_of_windows": family["windows"], "own_audio_windows": own_windows}


def whole_clip_family(tracer, release: Path, rows) -> dict[str, float]:
    """The heads' accuracy on whole re-synthesised utterances of the set's codecs and speakers (2 per codec)."""
    meta = json.loads((release / "codecfake_mini.json").read_text())
    codecs = {c["name"]: c for c in meta["codecs"]}
    right = {t: [] for t in TASKS}
    pairs = sorted({(r["codec"], r["speaker"]) for r in rows if r["label"] == "partly_spoofed"})
    for codec, speaker in tqdm(pairs, desc="whole clips", unit="codec", leave=False):
        for utterance in speaker_utterances(release, speaker)[:2]:
            result = tracer(str(resynthesis_path(release, codecs[codec], utterance)))
            for task in TASKS:
                right[task].append(result["heads"][task]["label"] == codecs[codec][task])
    return {t: float(np.mean(v)) for t, v in right.items()}


def row_line(name: str, m: dict, cost: dict, base: dict, whole: dict | None = None) -> str:
    family = " / ".join(f"{m['family'][t]:.2f}" for t in TASKS)
    whole_cells = " / ".join(f"{whole[t]:.2f}" for t in TASKS) if whole else "-"
    return (f"| {name} | {m['clip_eer']:.2f} | {m['f1']:.3f} ({m['precision']:.2f} / {m['recall']:.2f}) | "
            f"{m['median_boundary_error']:.2f} | {family} | {whole_cells} | {cost['windows'] / base['windows']:.2f}x | "
            f"{cost['seconds']:.1f} |")


HEADER = ["| set / setting | clip EER % | segment F1 (precision / recall) | median boundary error s | family on "
          "segments VQ / AUX / DEC | whole clips VQ / AUX / DEC | windows (x no overlap) | s per audio minute |",
          "|---|---|---|---|---|---|---|---|"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="outputs/demo-M1")
    parser.add_argument("--release", type=Path, default=DEMO_RELEASE_DIR)
    parser.add_argument("--sets", type=Path, help="the partly spoofed sets (default: beside the release)")
    parser.add_argument("--recordings", type=int, default=20, help="partly spoofed ones per set, when built here")
    parser.add_argument("--hops", type=float, nargs="+", help="seconds (default: a window, half, a quarter)")
    parser.add_argument("--out", type=Path, help="write OUT.md and OUT.json")
    parser.add_argument("--product-setting", action="store_true",
                        help="read the training and test sets at the pipeline's setting (segments.SEGMENT_HOP and "
                             "FRAME_RULE, chosen over seeds) instead of this model's own validation choice")
    parser.add_argument("--validation-only", action="store_true",
                        help="stop after the validation set (for choosing a training recipe; no other set is read)")
    args = parser.parse_args()
    from datasets import Audio, load_dataset

    sets = ensure_partial_spoof(args.release, args.sets or args.release.parent / "partial_spoof", args.recordings)
    data = load_dataset("audiofolder", data_dir=str(sets)).cast_column("audio", Audio(decode=False))
    tracer = load_tracer(args.model)
    config = tracer.model.config
    chunk = config.chunk_samples
    hops = args.hops or [chunk / SAMPLING_RATE, chunk / SAMPLING_RATE / 2, chunk / SAMPLING_RATE / 4]
    traced = {hop: trace_set(tracer, data["validation"], hop) for hop in hops}
    base = traced[max(hops)][1]
    settings = settings_of(config)
    results = {(hop, i): measure(tracer, traced[hop][0], data["validation"], setting) for hop in hops
               for i, setting in enumerate(settings)}
    lines = [f"{cpu_summary()}; model {args.model}, precision {tracer.resolved_precision}, window "
             f"{chunk / SAMPLING_RATE:g} s", "", "Validation codecs (every setting; the choice reads only these):",
             "", *HEADER]
    lines += [row_line(f"hop {hop:g} s, {setting_name(settings[i])}", m, traced[hop][1], base)
              for (hop, i), m in results.items()]
    affordable = {key: m for key, m in results.items() if traced[key[0]][1]["windows"] / base["windows"] <= MAX_COST}
    product = product_setting(config)
    # ties go to the larger hop (cheaper), then to the product's default setting
    hop, index = max(affordable, key=lambda key: (affordable[key]["f1"], key[0], settings[key[1]] == product))
    setting = settings[index]
    lines += ["", f"Chosen on validation: hop {hop:g} s, {setting_name(setting)}."]
    if args.product_setting:
        hop, setting = SEGMENT_HOP * chunk / SAMPLING_RATE, product
        lines += [f"The pipeline's setting (chosen over seeds): hop {hop:g} s, {setting_name(setting)}."]
    at_setting = results.get((hop, settings.index(setting))) if setting in settings else None
    if at_setting:  # how the pipeline answers a segment was chosen on these (over seeds)
        lines += ["Family on the validation segments there (VQ / AUX / DEC): from their own audio " + " / ".join(
            f"{at_setting['family'][t]:.2f}" for t in TASKS) + ", from the windows over them " + " / ".join(
            f"{at_setting['family_of_windows'][t]:.2f}" for t in TASKS) + "."]
        cost = traced[hop][1]
        extra = 60.0 * at_setting["own_audio_windows"] / cost["audio_seconds"]
        total = (cost["windows"] + extra) / base["windows"]
        lines += [f"Cost there, with a window of each segment's own audio traced: {total:.2f}x the windows of no "
                  f"overlap ({extra / base['windows']:.2f}x of it the segments' own audio)."]
    pictured = None
    report = {"cpu": cpu_summary(),
              "chosen": {"hop": hop, **setting, "pipeline_setting": args.product_setting},
              "validation": {f"{h:g}/{setting_name(settings[i])}": {**m, "cost": traced[h][1]}
                             for (h, i), m in results.items()}}
    if not args.validation_only:
        lines += ["Read once at that setting:", "", *HEADER]
    for name in () if args.validation_only else ("training", "test"):
        rows = data[SPLITS[name]]
        found, cost = trace_set(tracer, rows, hop)
        report[name] = measure(tracer, found, rows, setting)
        report[name]["whole_clips"] = whole_clip_family(tracer, args.release, rows)
        report[name]["cost"] = cost
        lines.append(row_line(f"{name} codecs", report[name], cost, base, report[name]["whole_clips"]))
        pictured = pictured or picture_of(found, rows)
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text(args.out.with_suffix(".md"), text)
        write_json(args.out.with_suffix(".json"), report)
        if pictured:
            save_picture(args.out.with_suffix(".png"), *pictured, tracer, setting)


def picture_of(found: list[dict], rows) -> tuple[dict, dict]:
    """The first recording with at least 2 s of spoofed speech (else the first partly spoofed one)."""
    spoofed = [i for i in range(len(rows)) if rows[i]["label"] == "partly_spoofed"]
    seconds = {i: sum(end - start for start, end in rows[i]["spoof_ranges"]) for i in spoofed}
    index = next((i for i in spoofed if seconds[i] >= 2.0), spoofed[0])
    return found[index], rows[index]


def product_setting(config) -> dict:
    """What the pipeline uses for this model: `segments.default_rule` and the smoothing of `frames`."""
    rule = "frames" if config.frame_head else FRAME_RULE
    return {"rule": rule, "smooth_seconds": SMOOTH_SECONDS} if rule == "frames" else {"rule": rule}


def save_picture(path: Path, result: dict, row: dict, tracer, setting: dict) -> None:
    """The Space's timeline of one partly spoofed recording (segments answered as the pipeline answers them), with its
    true ranges."""
    from codectrace.timeline import timeline_figure

    windows = windows_of(result, tracer.model.config)
    segments, _ = find_segments(windows, **setting)
    tracer.answer_segments_from_their_audio(row["audio"]["path"], segments)
    frames = None
    if setting["rule"] == "frames":
        scores, step, first = frame_head_scores(windows, setting["smooth_seconds"])
        frames = {"start_seconds": first, "step_seconds": step, "scores": scores.tolist()}
    figure = timeline_figure(result["windows"], segments, row["spoof_ranges"], frames)
    figure.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
