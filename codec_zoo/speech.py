"""Speech the zoo's codecs learn from: a multi-speaker corpus plus festival utterances with phone timings.

The codecs never see the CodecFake-mini corpus itself (a different seed gives other sentences and speaker
settings), as CodecFake+'s codecs were trained on other corpora than VCTK. Phone labels exist only for
festival's kal voice (espeak-ng prints phonemes without timing), so the semantic objective trains on those.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codectrace.files import staged_folder
from speech_sources import mini_speech

# Festival's radio phone set (kal voice); anything else maps to the last index.
PHONES = ("pau", "aa", "ae", "ah", "ao", "aw", "ax", "axr", "ay", "b", "ch", "d", "dh", "eh", "el", "em", "en", "er",
          "ey", "f", "g", "hh", "ih", "iy", "jh", "k", "l", "m", "n", "ng", "ow", "oy", "p", "r", "s", "sh", "t", "th",
          "uh", "uw", "v", "w", "y", "z", "zh", "other")
LABEL_HOP = 80  # phone labels are stored at 200 Hz; codec frames pick the label at their centre
TRAINING_SEED = 100


@dataclass
class Utterance:
    audio: np.ndarray  # float32, 16 kHz
    speaker: int
    phones: np.ndarray | None = None  # int64 per LABEL_HOP samples, or None


def festival_with_phones(text: str, stretch: float, wav_path: Path, segs_path: Path) -> None:
    """Synthesises `text` with festival's kal voice, writing the audio and the phone end times."""
    with tempfile.TemporaryDirectory() as work:
        scheme = Path(work) / "say.scm"
        scheme.write_text(f"(voice_kal_diphone)\n(Parameter.set 'Duration_Stretch {stretch})\n"
                          f'(set! u (SynthText "{text.replace(chr(34), "")}"))\n'
                          f'(utt.save.segs u "{segs_path}")\n(utt.save.wave u "{wav_path}" \'riff)\n')
        run = subprocess.run(["festival", "-b", str(scheme)], capture_output=True, text=True, timeout=120)
    if run.returncode != 0 or not wav_path.exists():
        raise RuntimeError(f"festival failed: {run.stderr.strip()[:200]}")


def phone_track(segs_path: Path, num_samples: int) -> np.ndarray:
    """Festival segment file (`end_time 100 phone` lines) -> phone index per LABEL_HOP samples."""
    ends, names = [], []
    for line in segs_path.read_text().splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0] != "#":
            ends.append(float(parts[0]))
            names.append(parts[2])
    centres = (np.arange(-(-num_samples // LABEL_HOP)) * LABEL_HOP + LABEL_HOP / 2) / 16000
    index = np.minimum(np.searchsorted(np.asarray(ends), centres), len(names) - 1)
    lookup = {p: i for i, p in enumerate(PHONES)}
    return np.asarray([lookup.get(names[i], len(PHONES) - 1) for i in index], dtype=np.int64)


def write_training_speech(out: str | Path, speakers: int = 24, utterances: int = 16, phone_utterances: int = 80,
                          seed: int = TRAINING_SEED) -> Path:
    """Writes OUT/corpus (mini_speech layout) and OUT/phones (festival wav + segs); partial folder renamed."""
    with staged_folder(out) as partial:
        mini_speech.write_corpus(partial / "corpus", speakers, utterances, seed, validation=0, test=0)
        rng = np.random.default_rng(seed + 7)
        phones = partial / "phones"
        phones.mkdir()
        for number, text in enumerate(mini_speech.sentences(rng, phone_utterances)):
            stretch = round(float(rng.uniform(0.85, 1.25)), 2)
            wav, segs = phones / f"kal_{number:03d}.wav", phones / f"kal_{number:03d}.segs"
            festival_with_phones(text, stretch, wav, segs)
    return Path(out)


def load_training_speech(folder: str | Path) -> tuple[list[Utterance], list[str]]:
    """Utterances of the training speech and the speaker names (festival's kal voice is one speaker)."""
    from codectrace.audio import load_audio

    folder = Path(folder)
    meta = json.loads((folder / "corpus" / "speakers.json").read_text())
    festival = [s["speaker_id"] for s in meta["speakers"] if s["engine"] == "festival"]
    names = [s["speaker_id"] for s in meta["speakers"]]
    found = []
    for index, name in enumerate(names):
        for path in sorted((folder / "corpus" / name).glob("*.wav")):
            found.append(Utterance(load_audio(path).astype(np.float32), index))
    kal = names.index(festival[0]) if festival else len(names)
    for wav in sorted((folder / "phones").glob("*.wav")):
        audio = load_audio(wav)
        peak = float(np.abs(audio).max()) or 1.0
        audio = (0.7 * audio / peak).astype(np.float32)
        found.append(Utterance(audio, kal, phone_track(wav.with_suffix(".segs"), len(audio))))
    return found, names


