"""Does an unseen codec's class show in how the *training* codecs re-synthesise its clips? A probe with no fitted
parameter, and no tracer.

    python -m research.resynthesis_profile [--utterances 40] [--out docs/research/resynthesis_profile.md]

A neural codec is close to idempotent on its own output: re-synthesising a clip it made changes it less than
re-synthesising natural speech. If the codecs of one class (one quantizer kind, one auxiliary objective, one decoder
domain) share what they do to sound, a clip made by an *unseen* codec of class c should be changed least by the
training codecs of class c: a codec-agnostic cue that would not depend on any training codec's own signature.

For every clip (its first 2 s) and every training codec k: the log-mel L1 between the clip and its re-synthesis by k,
over k's mean L1 on the bona fide originals of the same speakers (so that a codec that is poor at everything does not
count as "changing less"), in log. Per task, the predicted class is the one whose training codecs give the lowest
mean; a training codec's own clips leave their own codec out (otherwise the probe would only find the codec itself).
Scored on the validation speakers: the training codecs' clips (a check that the rule can work at all) and the
validation codecs' clips (the question). No test speaker or test codec is read.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from codec_zoo.specs import CODEC_CLASSES, codecs_of, zoo_by_name
from codectrace.files import print_report
from codectrace.machine import cpu_summary
from dataset_scripts.protocols import codec_of

ROOT = Path(__file__).resolve().parents[1]

WINDOW = 32000
RELEASE = ROOT / "data" / "codecfake-mini" / "release"
UNSEEN_PROTOCOL = "training/dev_valcodecs.txt"  # validation speakers x validation codecs
IN_DOMAIN_PROTOCOL = "training/dev_mult_learn.txt"  # validation speakers x training codecs


def protocol_clips(path: Path, codecs: set[str], utterances: int) -> dict[str, list[str]]:
    """Per codec of `codecs`, the file ids of its clips in a protocol (the first `utterances` by id), and under
    `bonafide` the bona fide ids of the same utterances."""
    ids: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        speaker, file_id = line.split()[:2]
        codec = codec_of(file_id, speaker)
        if codec in codecs:
            ids.setdefault(codec, []).append(file_id)
    chosen = {codec: sorted(found)[:utterances] for codec, found in ids.items()}
    chosen["bonafide"] = sorted({file_id[: -len(codec) - 1] for codec, found in chosen.items() for file_id in found})
    return chosen


def read_windows(file_ids: list[str], audio_dir: Path):
    """The first 2 s of each clip (zero-padded), as a (clips, 32000) float tensor."""
    import torch

    from codectrace.audio import load_audio

    windows = np.zeros((len(file_ids), WINDOW), dtype=np.float32)
    for row, file_id in enumerate(file_ids):
        audio, info = load_audio(audio_dir / f"{file_id}.wav", return_info=True)
        if info.resampled:
            raise ValueError(f"{file_id}.wav is at {info.original_sampling_rate} Hz; the release is 16 kHz.")
        audio = audio[:WINDOW]
        windows[row, : len(audio)] = audio
    return torch.from_numpy(windows)


def resynthesis_errors(windows, codec_names: list[str], batch: int = 32) -> np.ndarray:
    """(clips, codecs) log-mel L1 between each clip and its re-synthesis by each training codec."""
    import torch
    from tqdm.auto import tqdm

    from codec_zoo.losses import log_mel_l1
    from codec_zoo.store import load_codec

    errors = np.zeros((len(windows), len(codec_names)))
    for column, name in enumerate(tqdm(codec_names, desc="re-synthesis by training codecs", unit="codec")):
        codec = load_codec(name)
        for start in range(0, len(windows), batch):
            chunk = windows[start : start + batch]
            with torch.inference_mode():
                remade = codec.resynthesize(chunk)
            for offset in range(len(chunk)):
                errors[start + offset, column] = log_mel_l1(remade[offset], chunk[offset])
    return errors


def predict(relative: np.ndarray, own: list[str | None], codec_names: list[str], task: str) -> list[str]:
    """Per clip, the class whose training codecs (its own codec left out) change it least on average."""
    zoo = zoo_by_name()
    classes = np.array([getattr(zoo[name], task) for name in codec_names])
    predictions = []
    for row, own_codec in enumerate(own):
        usable = np.array([name != own_codec for name in codec_names])
        means = {c: relative[row, usable & (classes == c)].mean() for c in CODEC_CLASSES[task]
                 if (usable & (classes == c)).any()}
        predictions.append(min(means, key=means.get))
    return predictions


def macro_f1(truth: list[str], predicted: list[str], classes: tuple[str, ...]) -> float:
    """Macro-F1 as the tracer's evaluation computes it (`codectrace.metrics`), so the figures compare."""
    from codectrace.metrics import multiclass_metrics

    return multiclass_metrics([classes.index(p) for p in predicted], [classes.index(t) for t in truth],
                              len(classes))["f1_macro"]


def score(relative: np.ndarray, clip_codecs: list[str], codec_names: list[str], leave_own_out: bool) -> dict:
    """Per task, macro-F1 over the clips and accuracy per codec."""
    zoo = zoo_by_name()
    own = clip_codecs if leave_own_out else [None] * len(clip_codecs)
    found = {}
    for task, classes in CODEC_CLASSES.items():
        truth = [getattr(zoo[codec], task) for codec in clip_codecs]
        predicted = predict(relative, own, codec_names, task)
        per_codec = {codec: float(np.mean([p == t for p, t, c in zip(predicted, truth, clip_codecs) if c == codec]))
                     for codec in dict.fromkeys(clip_codecs)}
        found[task] = {"macro_f1": macro_f1(truth, predicted, classes), "per_codec": per_codec}
    return found


def measure(utterances: int) -> dict[str, dict]:
    """The probe on the validation speakers' clips of the training codecs and of the validation codecs."""
    training = [spec.name for spec in codecs_of("train")]
    unseen = [spec.name for spec in codecs_of("validation")]
    seen_clips = protocol_clips(RELEASE / "protocols" / IN_DOMAIN_PROTOCOL, set(training), utterances)
    unseen_clips = protocol_clips(RELEASE / "protocols" / UNSEEN_PROTOCOL, set(unseen), utterances)
    bona_fide = sorted(set(seen_clips.pop("bonafide")) | set(unseen_clips.pop("bonafide")))
    groups = {"training codecs (own left out)": seen_clips, "validation codecs": unseen_clips}
    file_ids = bona_fide + [f for clips in groups.values() for found in clips.values() for f in found]
    errors = resynthesis_errors(read_windows(file_ids, RELEASE / "all_data_16k"), training)
    relative = np.log(errors[len(bona_fide) :] / errors[: len(bona_fide)].mean(axis=0))
    results, start = {}, 0
    for group, clips in groups.items():
        clip_codecs = [codec for codec, found in clips.items() for _ in found]
        rows = relative[start : start + len(clip_codecs)]
        results[group] = score(rows, clip_codecs, training, leave_own_out=group.startswith("training"))
        start += len(clip_codecs)
    return results


def markdown(results: dict[str, dict], utterances: int) -> str:
    lines = [f"Re-synthesis profile probe (no fitted parameter, no tracer): the first 2 s of up to {utterances} clips "
             f"per codec; measured on {cpu_summary()}.", "",
             "| clips | VQ macro-F1 | AUX macro-F1 | DEC macro-F1 |", "|---|---|---|---|"]
    for group, found in results.items():
        lines.append(f"| {group} | " + " | ".join(f"{found[t]['macro_f1']:.3f}" for t in CODEC_CLASSES) + " |")
    for group, found in results.items():
        lines += ["", f"Per codec, {group}: share of clips given the right class", "",
                  "| codec | VQ | AUX | DEC |", "|---|---|---|---|"]
        for codec in found["vq"]["per_codec"]:
            lines.append(f"| `{codec}` | " + " | ".join(f"{found[t]['per_codec'][codec]:.2f}" for t in CODEC_CLASSES)
                         + " |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--utterances", type=int, default=40,
                        help="clips per codec (default 40; a few clips decide each codec's answer by chance)")
    parser.add_argument("--out", type=Path, help="also write the tables to this markdown file")
    args = parser.parse_args()
    if args.utterances < 1:
        parser.error(f"--utterances is a number of clips per codec (>= 1), got {args.utterances}")
    if not (RELEASE / "protocols").is_dir():
        parser.error(f"no CodecFake-mini release at {RELEASE}; `python train.py` builds it first")
    text = markdown(measure(args.utterances), args.utterances)
    print_report(text, args.out)


if __name__ == "__main__":
    main()
