"""A tiny CodecFake+ in exactly the official layout and protocol formats, for tests and demos.

Audio is synthetic (harmonic "voices" plus noise), and each codec is imitated by a deterministic
transform whose traces depend on the codec's taxonomy classes, so a small model can learn them:
DEC shapes the spectrum (time-domain: smoothing; frequency-domain: frame-wise STFT masking), VQ sets the
amplitude quantisation, AUX adds a faint structured component. Nothing here resembles a real codec.

    python -m dataset_scripts.fixture OUT_DIR [--utterances 4] [--seed 0] [--archives]
"""

from __future__ import annotations

import argparse
import tarfile
from pathlib import Path

import numpy as np

from codectrace.files import write_audio
from modeling_codectrace.configuration_codectrace import SAMPLING_RATE

from .protocols import CONFIG_FILES, COSG_SYSTEMS, SAMPLING_SUFFIX, TRAINING_SPLITS

# Official codec names, chosen to cover every VQ / AUX / DEC class: name -> (aux, dec, vq).
FIXTURE_CODECS: dict[str, tuple[str, str, str]] = {
    "Encodec_6b24k": ("Trad", "TIME", "MVQ"),
    "vocos_encodec_6": ("Trad", "FREQ", "MVQ"),
    "bigcodec": ("Trad", "TIME", "SVQ"),
    "wavtokenizer_small_320_24k_4096": ("Trad", "FREQ", "SVQ"),
    "spectralcodecs": ("Trad", "FREQ", "SQ"),
    "SpeechTokenizer_hubert_avg": ("SEM", "TIME", "MVQ"),
    "ticodec_1g1r": ("Disent", "TIME", "SVQ"),
}
# Speakers per split, as in CodecFake+ (dev p226 + p229, test p227 + p228).
FIXTURE_SPEAKERS: dict[str, tuple[str, ...]] = {
    "train": ("p225", "p230", "p231"),
    "validation": ("p226", "p229"),
    "test": ("p227", "p228"),
}
FIXTURE_COSG = ("VALLE", "MASKGCT", "NS3", "USLM", "SIMPLESPEECH1", "TI1G1R")
COSG_SEEN_SYSTEMS = ("VALLE", "NS3", "USLM", "SIMPLESPEECH1", "TI1G1R")
_TAXONOMY_COLUMN = {"aux": 0, "dec": 1, "vq": 2}


def _voice(rng: np.random.Generator, seconds: float) -> np.ndarray:
    """A harmonic tone with a wandering pitch, syllable-like envelope and breath noise."""
    n = int(seconds * SAMPLING_RATE)
    t = np.arange(n) / SAMPLING_RATE
    f0 = rng.uniform(90, 240) * (1 + 0.08 * np.sin(2 * np.pi * rng.uniform(0.3, 1.5) * t))
    phase = 2 * np.pi * np.cumsum(f0) / SAMPLING_RATE
    signal = sum(np.sin(k * phase) / k for k in range(1, 12))
    envelope = 0.5 * (1 + np.sin(2 * np.pi * rng.uniform(2, 5) * t + rng.uniform(0, 6)))
    noise = 0.05 * rng.standard_normal(n)
    out = 0.25 * envelope * signal + noise
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def imitate_codec(waveform: np.ndarray, taxonomy: tuple[str, str, str], seed: int) -> np.ndarray:
    """Deterministic stand-in for a codec round trip; its traces depend on the taxonomy classes."""
    aux, dec, vq = taxonomy
    rng = np.random.default_rng(seed)
    x = waveform.astype(np.float64)
    if dec == "TIME":
        x = np.convolve(x, np.ones(4) / 4, mode="same")  # smoothing, as of an upsampling decoder
    else:
        hop = 256
        frames = -(-len(x) // hop)
        spectrum = np.fft.rfft(np.pad(x, (0, frames * hop - len(x))).reshape(frames, hop), axis=1)
        spectrum[:, spectrum.shape[1] // 2 :] *= 0.1  # band-limited frames, re-assembled per hop
        x = np.fft.irfft(spectrum, n=hop, axis=1).reshape(-1)[: len(waveform)]
    levels = {"MVQ": 128, "SVQ": 24, "SQ": 8}[vq]
    x = np.round(x * levels) / levels
    t = np.arange(len(x)) / SAMPLING_RATE
    if aux == "SEM":
        x = x + 0.02 * np.sin(2 * np.pi * 50 * t)
    elif aux == "Disent":
        x = x * (1 + 0.3 * np.sin(2 * np.pi * 7 * t))
    x = x + 0.002 * rng.standard_normal(len(x))
    return np.clip(x, -1, 1).astype(np.float32)


def _ordered_by(task: str) -> list[str]:
    return sorted(FIXTURE_CODECS, key=lambda c: (FIXTURE_CODECS[c][_TAXONOMY_COLUMN[task]], c))


def write_fixture(root: str | Path, utterances: int = 4, seed: int = 0, archives: bool = False) -> Path:
    """Writes `root/all_data_16k`, `root/SLMdemos_16k`, `root/protocols/{training,evaluation}`.

    Every utterance of every speaker is re-synthesised by every fixture codec (as CoRS is); the training
    protocols pair each bona fide utterance with one codec version, cycling through the codecs ordered by
    the sampling's class so that each sampling is balanced over its task. Files alternate .wav / .flac.
    With `archives`, the audio folders are also packed as `.tar.xz` like the official release.
    """
    root = Path(root)
    rng = np.random.default_rng(seed)
    training_dir = root / "protocols" / "training"
    evaluation_dir = root / "protocols" / "evaluation"
    training_dir.mkdir(parents=True, exist_ok=True)
    evaluation_dir.mkdir(parents=True, exist_ok=True)
    utterance_ids = _write_speech(root / "all_data_16k", utterances, rng, seed)
    _write_training_protocols(training_dir, utterance_ids)
    _write_cors(evaluation_dir, utterance_ids["test"])
    _write_cosg(root / "SLMdemos_16k", evaluation_dir, rng)
    if archives:
        for folder in ("all_data_16k", "SLMdemos_16k"):
            with tarfile.open(root / f"{folder}.tar.xz", "w:xz", preset=0) as tar:
                tar.add(root / folder, arcname=folder)
    return root


def _write_speech(audio_dir: Path, utterances: int, rng, seed: int) -> dict[str, list[tuple[str, str]]]:
    """Every speaker's bona fide utterances and each fixture codec's imitation of them; split -> (speaker, utt)."""
    counter = 0
    utterance_ids: dict[str, list[tuple[str, str]]] = {}
    for split, speakers in FIXTURE_SPEAKERS.items():
        utterance_ids[split] = []
        for speaker in speakers:
            for number in range(1, utterances + 1):
                utt = f"{speaker}_{number:03d}"
                voice = _voice(rng, rng.uniform(0.8, 2.6))
                write_audio(audio_dir / f"{utt}{'.wav' if counter % 2 == 0 else '.flac'}", voice)
                for j, (codec, taxonomy) in enumerate(FIXTURE_CODECS.items()):
                    spoof = imitate_codec(voice, taxonomy, seed * 1000 + counter * 10 + j)
                    write_audio(audio_dir / f"{utt}_{codec}{'.flac' if (counter + j) % 2 else '.wav'}", spoof)
                utterance_ids[split].append((speaker, utt))
                counter += 1
    return utterance_ids


def _write_training_protocols(training_dir: Path, utterance_ids: dict[str, list[tuple[str, str]]]) -> None:
    """The three samplings' train / validation / test protocols, and CodecFake-mini's selection split (validation
    speakers x validation codecs, here with the same imitations)."""
    for config, suffix in SAMPLING_SUFFIX.items():
        order = _ordered_by(config)
        for split, prefix in TRAINING_SPLITS.items():
            lines = []
            for k, (speaker, utt) in enumerate(utterance_ids[split]):
                codec = order[k % len(order)]
                aux, dec, vq = FIXTURE_CODECS[codec]
                lines.append(f"{speaker} {utt} - REAL REAL REAL bonafide")
                lines.append(f"{speaker} {utt}_{codec} - {aux} {dec} {vq} spoof")
            (training_dir / f"{prefix}_mult_learn{suffix}.txt").write_text("\n".join(lines) + "\n")
    validation_codecs = []
    for speaker, utt in utterance_ids["validation"]:
        validation_codecs.append(f"{speaker} {utt} - REAL REAL REAL bonafide")
        validation_codecs += [f"{speaker} {utt}_{codec} - {' '.join(taxonomy)} spoof"
                              for codec, taxonomy in FIXTURE_CODECS.items()]
    (training_dir / CONFIG_FILES["val_codecs"]["validation"]).write_text("\n".join(validation_codecs) + "\n")


def _write_cors(evaluation_dir: Path, test_utterances: list[tuple[str, str]]) -> None:
    cors = []
    for speaker, utt in test_utterances:
        cors.append(f"{speaker} {utt} - - bonafide")
        cors += [f"{speaker} {utt}_{codec} - - spoof" for codec in FIXTURE_CODECS]
    cors[1] = cors[1].replace(" spoof", " spoofs")  # the official file's known typo
    (evaluation_dir / "CoRS_ALL.txt").write_text("\n".join(cors) + "\n")


def _write_cosg(audio_dir: Path, evaluation_dir: Path, rng) -> None:
    """Two bona fide and two imitated clips per fixture CoSG system, and the CoSG_ALL / CoSG_SEEN protocols."""
    cosg_all, cosg_seen = [], []
    for s, system in enumerate(FIXTURE_COSG):
        aux, dec, vq = COSG_SYSTEMS[system]
        for k in range(4):
            label = "bonafide" if k < 2 else "spoof"
            key = f"{system.lower()}_{k}"
            voice = _voice(rng, rng.uniform(1.0, 3.0))
            if label == "spoof":
                voice = imitate_codec(voice, (aux, dec, vq), 7919 + 10 * s + k)
            write_audio(audio_dir / system / f"{key}{'.wav' if k % 2 else '.flac'}", voice)
            dash = " -" if (s + k) % 2 else ""  # CoSG_ALL mixes 4- and 5-column rows
            cosg_all.append(f"{system} {key} -{dash} {label}")
            if system in COSG_SEEN_SYSTEMS:
                cosg_seen.append(f"{system} {key} - {vq if label == 'spoof' else 'REAL'} {label}")
    (evaluation_dir / "CoSG_ALL.txt").write_text("\n".join(cosg_all) + "\n")
    (evaluation_dir / "CoSG_SEEN.txt").write_text("\n".join(cosg_seen) + "\n")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Write a tiny CodecFake+ fixture in the official layout.")
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--utterances", type=int, default=4, help="utterances per speaker (default 4)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--archives", action="store_true", help="also pack the audio as .tar.xz archives")
    args = parser.parse_args(argv)
    write_fixture(args.out_dir, args.utterances, args.seed, args.archives)
    print(f"fixture written to {args.out_dir}")


if __name__ == "__main__":
    main()
