"""Real recorded voices from Debian packages: `ktuberling-data` (CodecFake-mini's real speakers, one per language
folder) and the other corpora of `REAL_CORPORA` (Asterisk's voice prompts, gcin's Mandarin syllables, KLettres'
letters and syllables), each recorded on its own set-up, for measuring bona fide false alarms on real speech from
set-ups a model never heard.

`ktuberling-data` (installed by `scripts/setup.sh`) ships short recordings of single words (about 0.9 s each, 22 or
44 kHz) by native speakers of about 25 languages under `/usr/share/ktuberling/sounds/<language>/`. A language
folder is taken as one speaker; identical files in several folders (the Serbian script variants) count once.
The files are read where Debian installs them and never copied into the project.

Why words are concatenated rather than repeat-padded: a one-word clip fills less than half of the demo's 2-s
window, so the official repeat-padding would make most real clips "one word, repeated", a pattern no synthetic
speaker has; a tracer could then learn "repetition means bona fide". Consecutive words of one speaker are
joined into utterances of at least `MIN_UTTERANCE_SECONDS` instead, which look like the other speakers' speech
(several words with pauses) to the tracer and to every codec. Each utterance is peak-normalised to 0.7 and gets
the same -60 dBFS noise floor as the synthetic speakers (`mini_speech.as_recorded`), so that neither loudness nor
digital silence tells real from synthetic.

Speakers are split speaker-disjointly, with real speakers in every split: the large folders (>=
`LARGE_FOLDER_CLIPS` clips) and the small ones are each shuffled with the corpus seed and dealt out, so that the
held-out splits are not left with a few words each.
"""

from __future__ import annotations

import hashlib
import json
import re
import warnings
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from codectrace.audio import is_audio_file, load_audio
from codectrace.files import staged_folder, write_audio

from .mini_speech import as_recorded

KTUBERLING_SOUNDS = Path("/usr/share/ktuberling/sounds")
MIN_UTTERANCE_SECONDS = 3.0
LARGE_FOLDER_CLIPS = 50
# Held-out speakers per split among the large and among the small folders; the rest train.
HELD_OUT_SPEAKERS = {"large": {"validation": 3, "test": 3}, "small": {"validation": 2, "test": 2}}


def _distinct_files(root: Path, group_of: Callable[[Path], str | None], package: str) -> dict[str, list[Path]]:
    """Group -> the audio files under `root` that `group_of` (of the path relative to `root`) puts in it, each
    distinct file once (the first, in path order, keeps it); `group_of` returning None leaves a file out."""
    if not root.is_dir():
        raise FileNotFoundError(f"no real voices in {root}: install Debian's {package} (scripts/setup.sh does) or "
                                "pass a folder laid out as the package lays it out.")
    seen, groups = set(), defaultdict(list)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and is_audio_file(p)):
        group = group_of(path.relative_to(root))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if group is not None and digest not in seen:
            seen.add(digest)
            groups[group].append(path)
    return dict(groups)


def speaker_id(folder: str) -> str:
    """`sr@latin` -> `rsrlatin`: ids start with `r` (real) and hold only letters and digits (ids are `<spk>_<NNN>`)."""
    return "r" + re.sub(r"[^0-9a-z]", "", folder.lower())


def _asterisk_speaker(relative: Path) -> str | None:
    """`en_US_f_Allison/...` -> `aallison`: one speaker per voice talent (Allison recorded English and Spanish);
    the language links (`en`, `en_US`) and the `silence/` prompts are left out."""
    found = re.fullmatch(r"[a-z]{2}_[A-Z]{2}_[fm]_([A-Za-z]+)", relative.parts[0])
    return None if found is None or "silence" in relative.parts else "a" + found[1].lower()


def _klettres_speaker(relative: Path) -> str | None:
    """`fr/alpha/a.ogg` -> `kfr`: one speaker per language folder (its letters and syllables); the game's pictures and
    icons are left out."""
    return None if relative.parts[0] in ("icons", "pics") or len(relative.parts) < 3 else "k" + re.sub(
        r"[^0-9a-z]", "", relative.parts[0].lower())


def _gcin_speaker(relative: Path) -> str:
    """`<syllable>/3.ogg` -> `g3`: gcin ships each syllable by two speakers, one per file name."""
    return "g" + re.sub(r"[^0-9a-z]", "", relative.stem.lower())


@dataclass(frozen=True)
class RealCorpus:
    """A corpus of real recorded speech installed from Debian: where it lies, the packages that bring it, what it
    holds, and the speaker of each file (from its path under `root`; None leaves the file out)."""

    name: str
    root: Path
    packages: tuple[str, ...]
    holds: str
    speaker_of: Callable[[Path], str | None]

    def speakers(self, root: str | Path | None = None) -> dict[str, list[Path]]:
        """Speaker id -> the speaker's distinct audio files (read where installed, never copied)."""
        return _distinct_files(Path(root or self.root), self.speaker_of, " ".join(self.packages))


REAL_CORPORA = {corpus.name: corpus for corpus in (
    RealCorpus("ktuberling", KTUBERLING_SOUNDS, ("ktuberling-data",),
               "single words (~1 s), native speakers of ~23 languages, one set-up each; 22-44 kHz, some 8 kHz",
               lambda relative: speaker_id(relative.parts[0])),
    RealCorpus("asterisk", Path("/usr/share/asterisk/sounds"),
               tuple(f"asterisk-core-sounds-{lang}-wav" for lang in ("en", "es", "fr", "it", "ru")),
               "telephone voice prompts (phrases, digits, letters; ~1-4 s) by 4 voice talents in 5 languages; 8 kHz",
               _asterisk_speaker),
    RealCorpus("gcin", Path("/usr/share/gcin-voice/ogg"), ("gcin-voice",),
               "Mandarin syllables (~0.3-0.6 s), two speakers with their own set-ups; 44.1 kHz", _gcin_speaker),
    RealCorpus("klettres", Path("/usr/share/klettres"), ("klettres-data",),
               "spoken letters and syllables (~0.3-2 s) of 20 languages, one recorder each; 22-48 kHz",
               _klettres_speaker),
)}


def split_real_speakers(clip_counts: dict[str, int], seed: int) -> dict[str, list[str]]:
    """Speaker-disjoint train / validation / test split of real speakers, each size class dealt out separately."""
    rng = np.random.default_rng(seed + 17)
    splits: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for size, held_out in HELD_OUT_SPEAKERS.items():
        names = sorted(s for s, n in clip_counts.items() if (n >= LARGE_FOLDER_CLIPS) == (size == "large"))
        order = [names[i] for i in rng.permutation(len(names))]
        wanted = {split: min(count, max(0, (len(order) - 1) // 2)) for split, count in held_out.items()}
        splits["validation"] += order[: wanted["validation"]]
        splits["test"] += order[wanted["validation"] : wanted["validation"] + wanted["test"]]
        splits["train"] += order[wanted["validation"] + wanted["test"] :]
    empty = [split for split, names in splits.items() if not names]
    if empty:
        raise ValueError(f"{len(clip_counts)} real speakers cannot fill every split (empty: {', '.join(empty)}); "
                         "need at least 3.")
    return {split: sorted(names) for split, names in splits.items()}


def utterances_of(files: list[Path], limit: int, min_seconds: float = MIN_UTTERANCE_SECONDS,
                  unreadable: list[str] | None = None) -> list[np.ndarray]:
    """A speaker's words joined, in file-name order, into at most `limit` utterances of >= `min_seconds` each
    (the last, shorter remainder is dropped unless it is the speaker's only utterance). A word that cannot be
    decoded is left out and, with `unreadable`, recorded there as `<file>: <why>`."""
    utterances, current, length = [], [], 0
    for path in files:
        try:
            word = load_audio(path)
        except ValueError as error:  # one bad file must not stop the corpus
            if unreadable is not None:
                unreadable.append(f"{path}: {error}")
            continue
        current.append(word)
        length += len(word)
        if length >= min_seconds * 16000:
            utterances.append(np.concatenate(current))
            current, length = [], 0
            if len(utterances) == limit:
                return utterances
    if current and not utterances:
        utterances.append(np.concatenate(current))
    return utterances


def split_few_speakers(names: list[str], seed: int) -> dict[str, list[str]]:
    """A corpus of 2-6 speakers: one test speaker, one validation speaker from 3 speakers on, the rest train."""
    if len(names) < 2:
        raise ValueError(f"a real corpus needs at least 2 speakers to hold one out for testing, got {names}.")
    order = [sorted(names)[i] for i in np.random.default_rng(seed + 17).permutation(len(names))]
    validation = order[1:2] if len(order) >= 3 else []
    return {"train": sorted(order[1 + len(validation):]), "validation": validation, "test": order[:1]}


def corpus_splits(speakers: dict[str, list[Path]], seed: int) -> dict[str, list[str]]:
    """Speaker-disjoint splits of one corpus: by clip counts (`split_real_speakers`) from 7 speakers on, else
    `split_few_speakers`."""
    if len(speakers) >= 7:
        return split_real_speakers({name: len(files) for name, files in speakers.items()}, seed)
    return split_few_speakers(list(speakers), seed)


def write_real_corpus(out: str | Path, utterances: int = 30, seed: int = 0, sounds: str | Path = KTUBERLING_SOUNDS,
                      corpora: dict[str, str | Path | None] | None = None) -> Path:
    """Writes OUT/<speaker>/<speaker>_<NNN>.wav and OUT/speakers.json (`splits`, and each speaker's corpus, source
    and word count), the layout of `mini_speech.write_corpus`; built in a partial folder, renamed when complete.
    `corpora`: corpus name -> its folder (None: where Debian installs it); default: ktuberling from `sounds`. Each
    corpus is split speaker-disjointly on its own, so every corpus keeps test speakers."""
    from tqdm.auto import tqdm

    corpora = {"ktuberling": sounds} if corpora is None else corpora
    found = {name: REAL_CORPORA[name].speakers(root) for name, root in corpora.items()}
    splits: dict[str, list[str]] = {"train": [], "validation": [], "test": []}
    for speakers in found.values():
        for split, names in corpus_splits(speakers, seed).items():
            splits[split] = sorted(splits[split] + names)
    described = []
    with staged_folder(out) as partial:
        for corpus, speakers in found.items():
            for speaker, files in tqdm(sorted(speakers.items()), desc=f"real voices: {corpus}", unit="speaker"):
                described.append(_write_speaker(partial, corpus, speaker, files, utterances))
        meta = {"source": {name: str(root or REAL_CORPORA[name].root) for name, root in corpora.items()},
                "seed": seed, "speakers": described, "splits": splits}
        (partial / "speakers.json").write_text(json.dumps(meta, indent=2))
    return Path(out)


def _write_speaker(partial: Path, corpus: str, speaker: str, files: list[Path], utterances: int) -> dict:
    """One speaker's utterances as recorded (peak-normalised, noise floor); what `speakers.json` says of them."""
    (partial / speaker).mkdir(parents=True)
    unreadable: list[str] = []
    made = utterances_of(files, utterances, unreadable=unreadable)
    for number, waveform in enumerate(made, start=1):
        write_audio(partial / speaker / f"{speaker}_{number:03d}.wav",
                    as_recorded(waveform, f"{speaker}_{number:03d}").astype(np.float32))
    if unreadable:
        warnings.warn(f"{len(unreadable)} word(s) of {speaker} ({corpus}) could not be read and were left out; "
                      f"first: {unreadable[0]}", stacklevel=3)
    return {"speaker_id": speaker, "engine": "recording", "corpus": corpus, "voice": f"{corpus} {speaker}",
            "words": len(files), "utterances": len(made), "unreadable": unreadable}
