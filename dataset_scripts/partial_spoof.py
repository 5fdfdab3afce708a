"""Partly spoofed recordings from CodecFake-mini: real and synthetic bona fide speech with stretches replaced by a
codec's re-synthesis of the same stretch, and the ground-truth time ranges of what was replaced.

    python -m dataset_scripts.partial_spoof [--release data/codecfake-mini/release]
        [--out data/codecfake-mini/partial_spoof] [--recordings 20] [--seed 0]

For each codec set (`training` codecs on the test speakers, `validation` codecs on the validation speakers, `test`
codecs, never trained or chosen on, on the test speakers), `--recordings` partly spoofed and as many bona fide
recordings of 20-60 s: consecutive utterances of one speaker joined, and in the spoofed ones 1-3 stretches of
0.5-5 s (each cut either at a pause, where the speech is quietest, or at a random point, mid-word) replaced by the
same stretch of one codec's re-synthesis (the zoo's codecs keep time: the re-synthesis lines up with the utterance
sample for sample), joined with 5-ms cross-fades. Written as an AudioFolder per set (`<set>/metadata.jsonl`:
`file_name`, `label` (`bonafide` / `partly_spoofed`), `speaker`, `codec`, `vq`, `aux`, `dec`, `spoof_ranges` as
`[[start, end], ...]` seconds, `duration_seconds`), which `load_dataset("audiofolder", data_dir=...)` reads;
built in a partial folder, renamed when complete.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from codectrace.audio import load_audio
from codectrace.errors import ToolArgumentParser, run_tool
from codectrace.files import staged_folder, write_audio
from codectrace.splicing import FADE, splice
from modeling_codectrace.configuration_codectrace import SAMPLING_RATE

SETS = {"training": ("train", "test"), "validation": ("validation", "validation"), "test": ("test", "test")}
SECONDS = (20.0, 60.0)  # length of a recording
STRETCH_SECONDS = (0.5, 5.0)
STRETCHES = (1, 3)
FRAME = int(0.02 * SAMPLING_RATE)  # for finding the quietest point (a pause) in an utterance


def resynthesis_path(release: Path, codec: dict, utterance: str) -> Path:
    """Where the release keeps `utterance` re-synthesised by `codec`: beside the bona fide audio (training and
    validation codecs) or under SLMdemos_16k (test codecs, CoSG layout)."""
    if codec["split"] == "test":
        return release / "SLMdemos_16k" / codec["name"] / f"{codec['name'].lower()}_{utterance}.wav"
    return release / "all_data_16k" / f"{utterance}_{codec['name']}.wav"


def speaker_utterances(release: Path, speaker: str) -> list[str]:
    return sorted(p.stem for p in (release / "all_data_16k").glob(f"{speaker}_[0-9][0-9][0-9].wav"))


def pause_point(audio: np.ndarray, low: int, high: int) -> int:
    """The quietest 20-ms frame's start in [low, high) samples: most often a pause between words."""
    if high - low <= FRAME:
        return low
    frames = audio[low:high - (high - low) % FRAME].reshape(-1, FRAME)
    return low + int(np.argmin(np.square(frames).mean(axis=1))) * FRAME


def stretch_in(audio: np.ndarray, rng, mid_word: bool) -> tuple[int, int]:
    """A stretch of 0.5-5 s inside one utterance: starting at a pause or, `mid_word`, anywhere."""
    length = int(rng.uniform(*STRETCH_SECONDS) * SAMPLING_RATE)
    length = min(length, len(audio) - 2 * FADE)
    latest = len(audio) - length
    start = int(rng.integers(0, max(latest, 1))) if mid_word else pause_point(audio, 0, max(latest, FRAME + 1))
    return start, start + length


def recording(release: Path, speaker: str, codec: dict | None, rng) -> tuple[np.ndarray, list[list[float]]]:
    """One recording of 20-60 s from consecutive utterances of `speaker`; with a codec, 1-3 of its utterances each
    get one stretch replaced by the codec's re-synthesis. Returns the audio and the replaced ranges (seconds)."""
    names = speaker_utterances(release, speaker)
    wanted = rng.uniform(*SECONDS) * SAMPLING_RATE
    first = int(rng.integers(0, len(names)))
    parts, length = [], 0
    for name in (names[(first + k) % len(names)] for k in range(len(names))):
        parts.append((name, load_audio(release / "all_data_16k" / f"{name}.wav")))
        length += len(parts[-1][1])
        if length >= wanted:
            break
    offsets = np.cumsum([0] + [len(a) for _, a in parts])
    ranges = []
    if codec is not None:
        chosen = rng.choice(len(parts), size=min(int(rng.integers(STRETCHES[0], STRETCHES[1] + 1)), len(parts)),
                            replace=False)
        for k in sorted(chosen):
            name, audio = parts[k]
            start, end = stretch_in(audio, rng, mid_word=bool(rng.integers(0, 2)))
            splice(audio, load_audio(resynthesis_path(release, codec, name)), start, end)
            ranges.append([round(float(offsets[k] + edge) / SAMPLING_RATE, 4) for edge in (start, end)])
    return np.concatenate([a for _, a in parts]).astype(np.float32), ranges


def write_set(folder: Path, release: Path, meta: dict, name: str, count: int, rng) -> None:
    codec_split, speaker_split = SETS[name]
    codecs = [c for c in meta["codecs"] if c["split"] == codec_split]
    speakers = meta["splits"][speaker_split]
    folder.mkdir(parents=True)
    rows = []
    for index in range(2 * count):
        codec = codecs[index % len(codecs)] if index < count else None
        speaker = speakers[index % len(speakers)]
        audio, ranges = recording(release, speaker, codec, rng)
        file_name = f"{name}_{index:03d}.wav"
        write_audio(folder / file_name, audio)
        rows.append({"file_name": file_name, "label": "partly_spoofed" if codec else "bonafide", "speaker": speaker,
                     **{key: (codec or {}).get(key, "real") for key in ("vq", "aux", "dec")},
                     "codec": codec["name"] if codec else "bonafide", "spoof_ranges": ranges,
                     "duration_seconds": round(len(audio) / SAMPLING_RATE, 4)})
    (folder / "metadata.jsonl").write_text("".join(json.dumps(row) + "\n" for row in rows))


def write_partial_spoof(release: str | Path, out: str | Path, recordings: int = 20, seed: int = 0) -> Path:
    """Writes every set of `SETS` under `out` (see the module's text); complete or not at all."""
    from tqdm.auto import tqdm

    release = Path(release)
    meta = json.loads((release / "codecfake_mini.json").read_text())
    rng = np.random.default_rng(seed)
    with staged_folder(out) as partial:
        for name in tqdm(SETS, desc="partly spoofed sets", unit="set"):
            write_set(partial / name, release, meta, name, recordings, rng)
    return Path(out)


def ensure_partial_spoof(release: str | Path, out: str | Path, recordings: int = 20) -> Path:
    """The partly spoofed sets of a release, built on first use."""
    if not (Path(out) / "test" / "metadata.jsonl").is_file():
        write_partial_spoof(release, out, recordings)
    return Path(out)


def main(argv: list[str] | None = None) -> int:
    parser = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--release", type=Path, default=Path("data/codecfake-mini/release"))
    parser.add_argument("--out", type=Path, default=Path("data/codecfake-mini/partial_spoof"))
    parser.add_argument("--recordings", type=int, default=20, help="partly spoofed (and as many bona fide) per set")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    def body() -> None:
        print(f"written to {write_partial_spoof(args.release, args.out, args.recordings, args.seed)}")

    return run_tool(body)


if __name__ == "__main__":
    raise SystemExit(main())
