"""Which clip features tell a time-domain decoder from an inverse-STFT one, for decoders never seen in training?

    python -m research.decoder_domain_cues [--release data/codecfake-mini/release] \
        [--out docs/research/decoder_domain_cues.md]

A probe on CodecFake-mini, not a model: every re-synthesised clip (first 2 s) becomes one feature vector, and a
logistic regression learns DEC (time vs freq) from the training codecs' clips of the training speakers. Two
tests of transfer to an unseen decoder body:
- leave one body out: train with the time-domain codecs of one training body only (plus every inverse-STFT
  training codec), test on the time-domain codecs of the other training body (test speakers); no held-out
  codec is involved, so this is a fair way to choose features;
- held-out: train on every training codec, test on each held-out codec (their time-domain body is a third one).
Features (means over frames, per bin): the log power spectrum (512-point STFT, hop 160; also its std) and a
2048-point one; the phase-advance deviation and its energy-weighted form, the two per-frame features the demo
model's `stft_phase` encoder reads (`stft_features`).
"""

from __future__ import annotations

import argparse
import os
import re
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from codec_zoo.specs import ZOO
from codectrace.files import print_report

ROOT = Path(__file__).resolve().parents[1]

WINDOW = 32000
CODECS = {spec.name: spec for spec in ZOO}


def clip_features(path: str) -> dict[str, np.ndarray]:
    import torch

    from codectrace.audio import load_audio
    from modeling_codectrace import STFT_FEATURES
    from modeling_codectrace.stft_phase import stft_phase_features

    torch.set_num_threads(1)  # one clip per worker process
    x = load_audio(path)
    x = x[:WINDOW] if len(x) >= WINDOW else np.resize(x, WINDOW)  # repeat-pad like the model's windows
    wave = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))[None]
    # Exactly what the demo model's stft_phase encoder computes, each (bins, frames); statistics over frames.
    log_power, deviation, weighted = stft_phase_features(wave, 512, 160, STFT_FEATURES)[0].reshape(3, 257, -1).numpy()
    fine = stft_phase_features(wave, 2048, 512, ("log_power",))[0].numpy()
    return {
        "log power (mean, std)": np.concatenate([log_power.mean(-1), log_power.std(-1)]),
        "log power, 2048-point (mean)": fine.mean(-1),
        "phase deviation (mean)": deviation.mean(-1),
        "energy-weighted phase deviation (mean)": weighted.mean(-1),
        "both phase deviations (demo's features)": np.concatenate([deviation.mean(-1), weighted.mean(-1)]),
        "log power + both phase deviations": np.concatenate([log_power.mean(-1), log_power.std(-1),
                                                             deviation.mean(-1), weighted.mean(-1)]),
    }


def corpus_clips(release: Path) -> list[tuple[str, int, str]]:
    """(path, speaker number, codec) of every re-synthesised clip of the corpus."""
    clips = []
    for path in sorted((release / "all_data_16k").glob("*.wav")):
        match = re.fullmatch(r"s(\d+)_\d+_(.+)\.wav", path.name)
        if match and match.group(2) in CODECS:
            clips.append((str(path), int(match.group(1)), match.group(2)))
    for path in sorted((release / "SLMdemos_16k").glob("*/*.wav")):
        match = re.search(r"_s(\d+)_\d+$", path.stem)
        if match and path.parent.name in CODECS:
            clips.append((str(path), int(match.group(1)), path.parent.name))
    return clips


def probe(features: np.ndarray, clips, train_speakers: set[int], test_speakers: set[int]) -> dict[str, float]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    specs = [CODECS[c] for _, _, c in clips]
    speaker = np.array([s for _, s, _ in clips])
    is_time = np.array([s.dec == "time" for s in specs], dtype=int)
    body = np.array([s.decoder_body if s.dec == "time" else "" for s in specs])
    heldout = np.array([s.heldout for s in specs])
    training_rows = np.isin(speaker, list(train_speakers)) & ~heldout
    test_rows = np.isin(speaker, list(test_speakers))

    def fit(rows):
        classifier = make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=3000))
        return classifier.fit(features[rows], is_time[rows])

    scores = {}
    for left_out in sorted({b for b, h in zip(body, heldout) if b and not h}):
        model = fit(training_rows & (body != left_out))
        rows = test_rows & ~heldout & (body == left_out)
        scores[f"body {left_out} left out"] = float((model.predict(features[rows]) == 1).mean())
    model = fit(training_rows)
    names = np.array([c for _, _, c in clips])
    for name in sorted(n for n, s in CODECS.items() if s.heldout):
        rows = names == name
        scores[name] = float((model.predict(features[rows]) == is_time[rows]).mean())
    return scores


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", type=Path, default=ROOT / "data" / "codecfake-mini" / "release")
    parser.add_argument("--out", type=Path, help="also write the table here (markdown)")
    args = parser.parse_args(argv)
    clips = corpus_clips(args.release)
    if not clips:
        raise SystemExit(f"no CodecFake-mini clips under {args.release}; build it first (python train.py)")
    from tqdm.auto import tqdm

    with ProcessPoolExecutor(os.cpu_count() or 1) as pool:
        rows = list(tqdm(pool.map(clip_features, [c[0] for c in clips], chunksize=32), total=len(clips),
                         desc="clip features", unit="clip"))
    results = {name: probe(np.stack([r[name] for r in rows]), clips, set(range(1, 19)), {22, 23, 24})
               for name in rows[0]}
    columns = list(next(iter(results.values())))
    lines = ["DEC accuracy of a logistic-regression probe (time-domain clips called time; held-out: all their clips)",
             "", "| features | " + " | ".join(columns) + " |", "|---|" + "---|" * len(columns)]
    lines += [f"| {name} | " + " | ".join(f"{scores[c]:.2f}" for c in columns) + " |"
              for name, scores in results.items()]
    table = "\n".join(lines) + "\n"
    print_report(table, args.out)


if __name__ == "__main__":
    main()
