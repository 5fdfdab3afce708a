"""Bona fide speech for CodecFake-mini: multi-speaker English from the speech synthesizers Debian packages.

A "speaker" is a fixed synthesizer setting: an espeak-ng voice and variant with its own pitch, word gap and
rate, or festival's kal diphone voice (recorded from a real speaker) at its own rate. Every speaker reads its
own deterministic selection of sentences; the same seed gives the same corpus. Speakers are split into
train / validation / test like VCTK in CodecFake+. A folder of real recordings can be used instead
(`real_corpus_utterances`).

    python -m speech_sources.mini_speech OUT_DIR [--speakers 24] [--utterances 20] [--seed 0]

Writes OUT_DIR/<speaker>/<speaker>_<NNN>.wav (16 kHz mono) and OUT_DIR/speakers.json.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import tempfile
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from codectrace.audio import load_audio
from codectrace.files import staged_folder, write_audio

ESPEAK_VOICES = ("en-gb", "en-us", "en-gb-scotland", "en-gb-x-gbclan", "en-gb-x-rp", "en-gb-x-gbcwmd", "en-029")
ESPEAK_VARIANTS = ("m1", "m2", "m3", "m4", "m5", "m6", "m7", "f1", "f2", "f3", "f4", "f5")

# Sentence parts, combined deterministically (written for this project).
SUBJECTS = ("The old harbour", "A quiet neighbour", "My younger cousin", "The river boat", "Every morning train",
            "That small bakery", "The village choir", "Our science teacher", "The wooden bridge", "A tired farmer",
            "The city library", "Her grey kitten", "The evening news", "A careful driver", "The mountain road")
VERBS = ("carried", "painted", "followed", "described", "repaired", "counted", "opened", "remembered", "watched",
         "measured", "collected", "explained", "visited", "ordered", "borrowed")
OBJECTS = ("seven green bottles", "a letter from Leeds", "the broken clock", "twelve fresh apples",
           "the muddy boots", "a map of the coast", "the yellow umbrella", "three paper boats",
           "the heavy suitcase", "a jar of honey", "the last chapter", "two silver coins", "the garden gate",
           "a bag of flour", "the winter coats")
ENDINGS = ("before the storm arrived.", "on a windy Thursday.", "while the kettle boiled.",
           "after the long meeting.", "near the old station.", "without saying a word.", "as the lights went out.",
           "during the school holidays.", "behind the red barn.", "at half past nine.")


@dataclass(frozen=True)
class Speaker:
    speaker_id: str
    engine: str  # "espeak-ng" or "festival"
    voice: str
    pitch: int = 50
    word_gap: int = 0  # extra pause between words, in units of 10 ms (espeak-ng -g)
    rate: int = 160  # words per minute (espeak) or duration stretch x100 (festival)


def sentences(rng: np.random.Generator, count: int) -> list[str]:
    return [f"{SUBJECTS[rng.integers(len(SUBJECTS))]} {VERBS[rng.integers(len(VERBS))]} "
            f"{OBJECTS[rng.integers(len(OBJECTS))]} {ENDINGS[rng.integers(len(ENDINGS))]}" for _ in range(count)]


def make_speakers(count: int, seed: int) -> list[Speaker]:
    """`count` distinct synthesizer settings: espeak-ng voice x variant with random prosody, plus festival kal."""
    if count < 2:
        raise ValueError(f"need at least 2 speakers, got {count}.")
    rng = np.random.default_rng(seed)
    combos = [(v, var) for var in ESPEAK_VARIANTS for v in ESPEAK_VOICES]
    order = rng.permutation(len(combos))
    speakers = [Speaker("s01", "festival", "kal_diphone", rate=int(rng.integers(90, 115)))]
    for i in range(count - 1):
        voice, variant = combos[order[i % len(combos)]]
        speakers.append(Speaker(f"s{i + 2:02d}", "espeak-ng", f"{voice}+{variant}", pitch=int(rng.integers(20, 80)),
                                word_gap=int(rng.integers(0, 4)), rate=int(rng.integers(135, 185))))
    return speakers


NOISE_FLOOR = 1e-3  # std of the added recording noise, about -60 dBFS


PEAK = 0.7


def as_recorded(waveform: np.ndarray, key: str, noise_floor: float = NOISE_FLOOR) -> np.ndarray:
    """Every bona fide utterance's level: peak set to `PEAK`, plus a Gaussian noise floor (std `noise_floor`)
    drawn deterministically from `key`, so that neither loudness nor digital silence tells one speaker kind from
    another."""
    peak = np.abs(waveform).max()
    waveform = (PEAK * waveform / peak) if peak > 0 else waveform
    if noise_floor > 0:
        rng = np.random.default_rng(zlib.crc32(key.encode()))
        waveform = waveform + noise_floor * rng.standard_normal(len(waveform))
    return waveform


def synthesize(speaker: Speaker, text: str, path: Path, noise_floor: float = NOISE_FLOOR) -> None:
    """Writes one utterance as 16 kHz mono WAV; raises RuntimeError when the synthesizer is missing or fails.

    The peak is set to 0.7 and a Gaussian noise floor (std `noise_floor`, deterministic per speaker and text)
    is added (`as_recorded`), as in any microphone recording: synthesizers write exact digital silence, which would
    let a tracer recognise bona fide speech by its zeros and would dominate log-mel distances.
    """
    with tempfile.TemporaryDirectory() as work:
        raw = Path(work) / "raw.wav"
        if speaker.engine == "espeak-ng":
            command = ["espeak-ng", "-v", speaker.voice, "-p", str(speaker.pitch), "-g", str(speaker.word_gap),
                       "-s", str(speaker.rate), "-w", str(raw), text]
            run = subprocess.run(command, capture_output=True, text=True, timeout=60)
        else:
            scheme = Path(work) / "say.scm"
            quoted = text.replace('"', "")
            scheme.write_text(f'(voice_{speaker.voice})\n(Parameter.set \'Duration_Stretch {speaker.rate / 100})\n'
                              f'(set! u (SynthText "{quoted}"))\n(utt.save.wave u "{raw}" \'riff)\n')
            run = subprocess.run(["festival", "-b", str(scheme)], capture_output=True, text=True, timeout=120)
        if run.returncode != 0 or not raw.exists() or raw.stat().st_size < 1000:
            raise RuntimeError(f"{speaker.engine} failed for {speaker.speaker_id}: {run.stderr.strip()[:200]}")
        write_audio(path, as_recorded(load_audio(raw), f"{speaker.speaker_id}|{text}", noise_floor))


def split_speakers(speakers: list[Speaker], validation: int = 3, test: int = 3) -> dict[str, list[str]]:
    """VCTK-style speaker-disjoint splits; the festival speaker (a real voice) always trains."""
    ids = [s.speaker_id for s in speakers]
    if len(ids) < validation + test + 1:
        raise ValueError(f"{len(ids)} speakers cannot fill {validation} validation and {test} test speakers.")
    first_test = len(ids) - test
    return {"train": ids[: first_test - validation], "validation": ids[first_test - validation : first_test],
            "test": ids[first_test:]}


def write_corpus(out: str | Path, speakers: int = 24, utterances: int = 20, seed: int = 0, validation: int = 3,
                 test: int = 3, noise_floor: float = NOISE_FLOOR) -> Path:
    """Writes the corpus into `out` (via a partial folder renamed at the end)."""
    missing = [tool for tool in ("espeak-ng", "festival") if shutil.which(tool) is None]
    if missing:
        raise RuntimeError(f"{', '.join(missing)} not installed; run scripts/setup.sh (apt-get install espeak-ng "
                           "festival festvox-kallpc16k).")
    out = Path(out)
    roster = make_speakers(speakers, seed)
    split_speakers(roster, validation, test)  # fail before synthesising anything
    rng = np.random.default_rng(seed + 1)
    from tqdm.auto import tqdm

    with staged_folder(out) as partial, tqdm(total=speakers * utterances, desc="synthesising speakers",
                                             unit="utt") as bar:
        for speaker in roster:
            folder = partial / speaker.speaker_id
            folder.mkdir(parents=True)
            for number, text in enumerate(sentences(rng, utterances), start=1):
                synthesize(speaker, text, folder / f"{speaker.speaker_id}_{number:03d}.wav", noise_floor)
                (folder / f"{speaker.speaker_id}_{number:03d}.txt").write_text(text + "\n")
                bar.update()
        meta = {"seed": seed, "noise_floor": noise_floor, "speakers": [asdict(s) for s in roster],
                "splits": split_speakers(roster, validation, test)}
        (partial / "speakers.json").write_text(json.dumps(meta, indent=2))
    return out


def real_corpus_utterances(folder: str | Path) -> dict[str, list[Path]]:
    """Speaker -> audio files of a folder of real recordings laid out as `<speaker>/<files>` (e.g. VCTK's wav48)."""
    from codectrace.audio import is_audio_file

    folder = Path(folder)
    found = {d.name: sorted(p for p in d.rglob("*") if p.is_file() and is_audio_file(p))
             for d in sorted(folder.iterdir()) if d.is_dir()}
    found = {speaker: files for speaker, files in found.items() if files}
    if not found:
        raise ValueError(f"{folder} holds no <speaker>/<audio files> folders.")
    return found


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--speakers", type=int, default=24)
    parser.add_argument("--utterances", type=int, default=20)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    write_corpus(args.out_dir, args.speakers, args.utterances, args.seed)
    print(f"corpus written to {args.out_dir}")


if __name__ == "__main__":
    main()
