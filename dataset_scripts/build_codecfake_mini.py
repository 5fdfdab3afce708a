"""CodecFake-mini: bona fide speech re-synthesised by the codec zoo, in exactly the CodecFake+ layout.

    python -m dataset_scripts.build_codecfake_mini OUT_DIR [--speakers 24] [--utterances 30] [--seed 0]
        [--real-corpora ktuberling asterisk gcin] [--real-voices FOLDER | --no-real-voices]
        [--speech-dir FOLDER_OF_SPEAKER_FOLDERS] [--jobs 2]

Writes, like the official release:
- `all_data_16k/<spk>_<NNN>.wav` (bona fide) and `all_data_16k/<spk>_<NNN>_<codec>.wav` (training codecs, CoRS,
  and the validation codecs on the validation speakers);
- `SLMdemos_16k/<SYSTEM>/<key>.wav`: the *test* codecs (never trained on, never used to choose anything), as
  CoSG, with bona fide references;
- `protocols/training/{train,dev,test}_mult_learn{,_bal_vq,_bal_dec}.txt` (`SPK UTT - AUX DEC VQ LABEL`, one
  training-codec version per bona fide utterance, each sampling balanced over its task's classes);
- `protocols/training/dev_valcodecs.txt` (same format): every validation utterance, bona fide and re-synthesised
  by every *validation* codec; model selection, early stopping and post-training fits read it (CodecFake+ has
  no such split);
- `protocols/evaluation/CoRS_ALL.txt`, `CoSG_ALL.txt`, `CoSG_SEEN.txt`, and `CoSG_systems.txt` (the test
  systems' taxonomy, which the official code hard-codes for the real CoSG systems);
- `codecfake_mini.json`: the codecs (taxonomy and split), speakers (synthetic or real) and splits.

Bona fide speech: `mini_speech` (speech synthesizers; deterministic per seed) plus real recorded voices
(`real_speech`: by default Debian's ktuberling-data, one speaker per language; `--real-corpora` picks among the
installed corpora, each split speaker-disjointly on its own; `--no-real-voices` leaves them out); or, with
`--speech-dir`, only a folder of real recordings laid out as `<speaker>/<audio files>` (e.g. VCTK).
Re-synthesis never trains anything: the codecs' weights ship in `codec_zoo/weights/`.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import shutil
import warnings
from collections import defaultdict
from pathlib import Path

import numpy as np

from codec_zoo.specs import ZOO, CodecSpec, codecs_of
from codec_zoo.store import WEIGHTS_DIR, shipped_codecs
from codectrace.audio import load_audio
from codectrace.dataset_folder import REPORT_NAME
from codectrace.errors import ToolArgumentParser, run_tool
from codectrace.files import staged_folder, write_audio, write_json, write_text
from speech_sources.real_speech import KTUBERLING_SOUNDS, REAL_CORPORA

from .protocols import CONFIG_FILES, COSG_SYSTEMS_FILE, LABEL_SPELLINGS, SAMPLING_SUFFIX, TRAINING_SPLITS


def protocol_taxonomy(spec: CodecSpec) -> tuple[str, str, str]:
    """A zoo codec's (AUX, DEC, VQ) in the official protocol spelling."""
    return LABEL_SPELLINGS["aux"][spec.aux], LABEL_SPELLINGS["dec"][spec.dec], LABEL_SPELLINGS["vq"][spec.vq]

def _one_thread() -> None:
    """Pool initializer: each worker uses one thread (the workers already use every core between them)."""
    import torch

    torch.set_num_threads(1)


def _resynthesize_group(job: tuple[str, str, list[tuple[str, str]]]) -> tuple[str, list[str]]:
    """Worker: loads one codec and re-synthesises (source, destination) pairs; returns failures."""
    import torch

    from codec_zoo.store import load_codec

    name, weights_dir, pairs = job
    codec = load_codec(name, weights_dir)
    failures = []
    for source, destination in pairs:
        try:
            waveform = torch.from_numpy(load_audio(source).astype(np.float32))
            write_audio(destination, codec.resynthesize(waveform).numpy())
        except Exception as error:  # one bad file must not stop the corpus; it is reported
            failures.append(f"{source} -> {name}: {error}")
    return name, failures


SpeechFiles = dict[str, list[Path]]  # speaker -> utterance files
Splits = dict[str, list[str]]  # train / validation / test -> speakers


RealVoices = Path | dict[str, Path | None] | None  # a ktuberling folder, or corpus name -> folder (None: installed)


def real_corpora(real_voices: RealVoices) -> dict[str, Path | None]:
    """Corpus name -> folder of the real voices asked for (a bare folder is laid out as ktuberling-data)."""
    if real_voices is None:
        return {}
    return dict(real_voices) if isinstance(real_voices, dict) else {"ktuberling": Path(real_voices)}


def bona_fide_speech(work: Path, speakers: int, utterances: int, seed: int, speech_dir: Path | None,
                     real_voices: RealVoices = None) -> tuple[SpeechFiles, Splits, dict[str, str]]:
    """Speaker -> utterance files (at most `utterances` each), the train/validation/test speaker split, and each
    speaker's kind (`synthetic` or `real`)."""
    from speech_sources import mini_speech, real_speech

    if speech_dir is not None:
        files, splits = _speech_dir_corpus(speech_dir, utterances)
        return files, splits, {s: "real" for s in files}
    corpora = {"synthetic": mini_speech.write_corpus(work / "speech", speakers, utterances, seed)}
    if real_corpora(real_voices):
        corpora["real"] = real_speech.write_real_corpus(work / "real_speech", utterances, seed,
                                                        corpora=real_corpora(real_voices))
    files: SpeechFiles = {}
    splits: Splits = {"train": [], "validation": [], "test": []}
    kinds = {}
    for kind, corpus in corpora.items():
        meta = json.loads((corpus / "speakers.json").read_text())
        for split, names in meta["splits"].items():
            splits[split] += names
            for name in names:
                files[name] = sorted((corpus / name).glob("*.wav"))
                kinds[name] = kind
    return files, splits, kinds


def _speech_dir_corpus(speech_dir: Path, utterances: int) -> tuple[SpeechFiles, Splits]:
    from speech_sources import mini_speech

    found = mini_speech.real_corpus_utterances(speech_dir)
    bad = [s for s in found if "_" in s or not s.strip()]
    if bad:
        raise ValueError(f"speaker folder names must not contain '_' (ids are <speaker>_<NNN>): {bad[:5]}")
    names = sorted(found)
    if len(names) < 7:
        raise ValueError(f"{speech_dir} has {len(names)} speakers; CodecFake-mini needs at least 7 "
                         "(3 validation, 3 test, the rest training).")
    splits = {"train": names[:-6], "validation": names[-6:-3], "test": names[-3:]}
    return {s: found[s][:utterances] for s in names}, splits


def balanced_assignment(task: str, codecs: list[CodecSpec], count: int) -> list[CodecSpec]:
    """`count` codecs cycling over the task's classes, then over the codecs of each class."""
    by_class: dict[str, list[CodecSpec]] = defaultdict(list)
    for spec in sorted(codecs, key=lambda s: s.name):
        by_class[getattr(spec, task)].append(spec)
    classes = sorted(by_class)
    return [by_class[classes[k % len(classes)]][(k // len(classes)) % len(by_class[classes[k % len(classes)]])]
            for k in range(count)]


def write_codecfake_mini(out: str | Path, speakers: int = 24, utterances: int = 30, seed: int = 0,
                         speech_dir: str | Path | None = None, jobs: int = 2,
                         weights_dir: str | Path = WEIGHTS_DIR,
                         real_voices: RealVoices = KTUBERLING_SOUNDS) -> Path:
    """Writes CodecFake-mini into `out` (built in `out.partial`, renamed when complete). `real_voices`: the real
    recorded speakers that join the synthetic ones: a folder of `<language>/<word recordings>` (default: Debian's
    ktuberling-data), or corpus name (`speech_sources.real_speech.REAL_CORPORA`) -> folder (None: where Debian
    installs it), each corpus split speaker-disjointly on its own; None for synthetic speakers only."""
    out = Path(out)
    weights_dir = Path(weights_dir)
    missing = sorted({s.name for s in ZOO} - set(shipped_codecs(weights_dir)))
    if missing:
        raise FileNotFoundError(f"codec weights missing in {weights_dir}: {', '.join(missing)}. They ship with the "
                                "project; retrain with `python -m codec_zoo.train_zoo`.")
    with staged_folder(out) as partial:
        _write_release(partial, speakers, utterances, seed, speech_dir, jobs, weights_dir, real_voices)
    return out


Rows = list[tuple[str, str, Path]]  # (speaker, utterance id, bona fide audio) per utterance of a split
Work = dict[str, dict[str, str]]  # codec -> {bona fide audio: where its re-synthesis goes}


def _write_release(partial: Path, speakers: int, utterances: int, seed: int, speech_dir: str | Path | None,
                   jobs: int, weights_dir: Path, real_voices: RealVoices) -> None:
    """The release in the official layout: bona fide audio, re-syntheses, protocol files, `codecfake_mini.json`."""
    files, splits, kinds = bona_fide_speech(partial / "_work", speakers, utterances, seed,
                                            Path(speech_dir) if speech_dir else None, real_voices)
    corpora = real_corpora(real_voices)
    audio_dir = partial / "all_data_16k"
    rows = _copy_bona_fide(files, splits, audio_dir)
    work: Work = defaultdict(dict)
    protocol_lines = _training_protocols(rows, audio_dir, work, utterances)
    protocol_lines[f"training/{CONFIG_FILES['val_codecs']['validation']}"] = _validation_codec_protocol(
        rows["validation"], audio_dir, work)
    protocol_lines["evaluation/CoRS_ALL.txt"] = _cors_protocol(rows["test"], audio_dir, work)
    protocol_lines.update(_cosg_protocols(rows["test"], partial / "SLMdemos_16k", work))
    _resynthesize_all(work, weights_dir, jobs)
    for name, lines in protocol_lines.items():
        write_text(partial / "protocols" / name, "\n".join(lines) + "\n")
    speech = str(speech_dir) if speech_dir else "mini_speech (espeak-ng + festival)" + (
        " + real voices (" + ", ".join(f"{n}: {r or REAL_CORPORA[n].root}" for n, r in corpora.items()) + ")"
        if corpora else "")
    meta = {
        "seed": seed, "speakers": speakers, "utterances_per_speaker": utterances, "speech": speech, "splits": splits,
        "speaker_kinds": kinds,
        "codecs": [{"name": s.name, "split": s.split, "vq": s.vq, "aux": s.aux, "dec": s.dec,
                    "frame_rate": round(s.frame_rate, 2), "bitrate": round(s.bitrate)} for s in ZOO],
    }
    write_json(partial / "codecfake_mini.json", meta)
    shutil.rmtree(partial / "_work", ignore_errors=True)


def _copy_bona_fide(files: dict[str, list[Path]], splits: dict[str, list[str]], audio_dir: Path) -> dict[str, Rows]:
    """Bona fide copies with official-style ids (`<speaker>_<NNN>`), per split."""
    rows: dict[str, Rows] = {}
    for split, split_speakers in splits.items():
        rows[split] = []
        for speaker in split_speakers:
            for number, source in enumerate(files[speaker], start=1):
                utt = f"{speaker}_{number:03d}"
                write_audio(audio_dir / f"{utt}.wav", load_audio(source))
                rows[split].append((speaker, utt, audio_dir / f"{utt}.wav"))
    return rows


def _training_protocols(rows: dict[str, Rows], audio_dir: Path, work: Work, utterances: int) -> dict[str, list]:
    """The three samplings' training/dev/test protocols: each bona fide row and its re-synthesis by the codec the
    balanced assignment gives it."""
    training = codecs_of("train")
    protocol_lines = {}
    for sampling, suffix in SAMPLING_SUFFIX.items():
        for split, prefix in TRAINING_SPLITS.items():
            lines = []
            for (speaker, utt, path), spec in zip(rows[split], balanced_assignment(sampling, training,
                                                                                    len(rows[split]))):
                aux, dec, vq = protocol_taxonomy(spec)
                lines += [f"{speaker} {utt} - REAL REAL REAL bonafide",
                          f"{speaker} {utt}_{spec.name} - {aux} {dec} {vq} spoof"]
                work[spec.name][str(path)] = str(audio_dir / f"{utt}_{spec.name}.wav")
            protocol_lines[f"training/{prefix}_mult_learn{suffix}.txt"] = lines
    unlabelled = sorted({s.name for s in training} - set(work))
    if unlabelled:  # CoRS takes each codec's taxonomy from the training protocols, as in CodecFake+
        warnings.warn(f"training codecs {unlabelled} appear in no training protocol of this small corpus "
                      f"({utterances} utterances per speaker), so the CoRS evaluation cannot label their rows; "
                      "use more utterances per speaker (8 suffice with 8 speakers and the shipped zoo).", stacklevel=4)
    return protocol_lines


def _validation_codec_protocol(validation_rows: Rows, audio_dir: Path, work: Work) -> list[str]:
    """Every validation utterance, bona fide and re-synthesised by every validation codec (training format)."""
    lines = []
    for speaker, utt, path in validation_rows:
        lines.append(f"{speaker} {utt} - REAL REAL REAL bonafide")
        for spec in codecs_of("validation"):
            aux, dec, vq = protocol_taxonomy(spec)
            lines.append(f"{speaker} {utt}_{spec.name} - {aux} {dec} {vq} spoof")
            work[spec.name][str(path)] = str(audio_dir / f"{utt}_{spec.name}.wav")
    return lines


def _cors_protocol(test_rows: Rows, audio_dir: Path, work: Work) -> list[str]:
    """CoRS: every test utterance, bona fide and re-synthesised by every training codec."""
    lines = []
    for speaker, utt, path in test_rows:
        lines.append(f"{speaker} {utt} - - bonafide")
        for spec in codecs_of("train"):
            lines.append(f"{speaker} {utt}_{spec.name} - - spoof")
            work[spec.name][str(path)] = str(audio_dir / f"{utt}_{spec.name}.wav")
    return lines


def _cosg_protocols(test_rows: Rows, demos: Path, work: Work) -> dict[str, list[str]]:
    """The test codecs as CoSG systems: every test utterance, plus a share of bona fide references each."""
    test_codecs = codecs_of("test")
    cosg, cosg_seen = [], []
    for index, spec in enumerate(test_codecs):
        vq = protocol_taxonomy(spec)[2]
        for k, (_, utt, path) in enumerate(test_rows):
            key = f"{spec.name.lower()}_{utt}"
            work[spec.name][str(path)] = str(demos / spec.name / f"{key}.wav")
            cosg.append(f"{spec.name} {key} - spoof")
            cosg_seen.append(f"{spec.name} {key} - {vq} spoof")
            if k % len(test_codecs) == index:
                reference = demos / spec.name / f"{key}_reference.wav"
                reference.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(path, reference)
                cosg.append(f"{spec.name} {key}_reference - bonafide")
                cosg_seen.append(f"{spec.name} {key}_reference - REAL bonafide")
    return {"evaluation/CoSG_ALL.txt": cosg, "evaluation/CoSG_SEEN.txt": cosg_seen,
            f"evaluation/{COSG_SYSTEMS_FILE}": [f"{s.name} {' '.join(protocol_taxonomy(s))}" for s in test_codecs]}


def _resynthesize_all(work: Work, weights_dir: Path, jobs: int) -> None:
    """Every re-synthesis, in parallel over codecs (chunks keep both workers busy to the end)."""
    from tqdm.auto import tqdm

    groups = []
    for name, pairs in work.items():
        items = sorted(pairs.items())
        step = max(1, -(-len(items) // 4))
        groups += [(name, str(weights_dir), items[i : i + step]) for i in range(0, len(items), step)]
    failures: list[str] = []
    pool = multiprocessing.get_context("spawn").Pool(jobs, initializer=_one_thread) if jobs > 1 else None
    try:
        results = pool.imap(_resynthesize_group, groups) if pool else map(_resynthesize_group, groups)
        with tqdm(total=sum(len(g[2]) for g in groups), desc="re-synthesising", unit="clip") as bar:
            for (_, failed), group in zip(results, groups):
                failures += failed
                bar.update(len(group[2]))
    finally:
        if pool:
            pool.close()
            pool.join()
    if failures:
        raise RuntimeError(f"{len(failures)} re-syntheses failed; first: {failures[0]}")


def ensure_codecfake_mini(release_dir: str | Path, dataset_dir: str | Path, utterances: int = 30,
                          real_voices: RealVoices = KTUBERLING_SOUNDS) -> Path:
    """Builds CodecFake-mini once (synthetic and real speakers, `real_voices` as `write_codecfake_mini` takes them,
    re-synthesised by the shipped codec zoo, then the Hugging Face dataset) and returns the dataset folder; a
    finished build is reused unless it was made with another zoo (other codecs or splits), which is rebuilt. Each
    step is complete or absent."""
    from . import build_codecfake_plus as builder

    release_dir, dataset_dir = Path(release_dir), Path(dataset_dir)
    if (release_dir / "protocols").exists() and not release_matches_zoo(release_dir):
        print(f"{release_dir} was built with another codec zoo; rebuilding CodecFake-mini", flush=True)
        shutil.rmtree(release_dir)
        shutil.rmtree(dataset_dir, ignore_errors=True)
    if not (dataset_dir / REPORT_NAME).exists():
        print(f"building CodecFake-mini in {dataset_dir} (first run only)", flush=True)
        if not (release_dir / "protocols").exists():
            write_codecfake_mini(release_dir, utterances=utterances, seed=0, real_voices=real_voices)
        builder.build(release_dir, release_dir / "protocols", dataset_dir, shard_rows=500, overwrite=True)
    return dataset_dir


def release_speakers(release_dir: str | Path) -> tuple[dict[str, str], dict[str, str]]:
    """Speaker -> split and speaker -> kind (`synthetic` or `real`) of a release, from its `codecfake_mini.json`;
    empty when the folder is not a CodecFake-mini release."""
    meta_path = Path(release_dir) / "codecfake_mini.json"
    if not meta_path.is_file():
        return {}, {}
    meta = json.loads(meta_path.read_text())
    split_of = {speaker: split for split, speakers in meta["splits"].items() for speaker in speakers}
    return split_of, meta.get("speaker_kinds", {})


def release_matches_zoo(release_dir: Path) -> bool:
    """Whether a release lists exactly the zoo's codecs, each in its split."""
    meta = release_dir / "codecfake_mini.json"
    if not meta.is_file():
        return False
    listed = {(c["name"], c.get("split")) for c in json.loads(meta.read_text())["codecs"]}
    return listed == {(s.name, s.split) for s in ZOO}


def main(argv: list[str] | None = None) -> int:
    parser = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--speakers", type=int, default=24, help="synthetic speakers (default 24)")
    parser.add_argument("--utterances", type=int, default=30, help="utterances per speaker (default 30)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--speech-dir", type=Path, help="real recordings as <speaker>/<audio files> instead")
    parser.add_argument("--real-corpora", nargs="+", choices=list(REAL_CORPORA), default=["ktuberling"],
                        help="real-speech corpora whose speakers join the synthetic ones (default: ktuberling)")
    parser.add_argument("--real-voices", type=Path, default=KTUBERLING_SOUNDS,
                        help="where ktuberling's <language>/<word recordings> lie (default: Debian's ktuberling-data)")
    parser.add_argument("--no-real-voices", action="store_true", help="synthetic speakers only")
    parser.add_argument("--jobs", type=int, default=2, help="re-synthesis processes (default 2)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    def body() -> None:
        voices = {name: args.real_voices if name == "ktuberling" else None for name in args.real_corpora}
        write_codecfake_mini(args.out_dir, args.speakers, args.utterances, args.seed, args.speech_dir, args.jobs,
                             args.weights_dir, None if args.no_real_voices else voices)
        print(f"CodecFake-mini written to {args.out_dir}")

    return run_tool(body)


if __name__ == "__main__":
    raise SystemExit(main())
