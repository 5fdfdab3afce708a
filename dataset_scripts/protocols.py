"""Parsing of the official CodecFake+ protocol files into rows with the model's label indices.

Formats (see the protocol README distributed with the official baseline):
- training `*_mult_learn*.txt`: `SPEAKER UTT_ID - AUX DEC VQ LABEL` (7 columns);
- `CoRS_ALL.txt`: `SPEAKER UTT_ID - - LABEL` (5 columns; taxonomy from the codec suffix of UTT_ID);
- `CoSG_ALL.txt`: `SYSTEM KEY - [-] LABEL` (4 or 5 columns; taxonomy per system);
- `CoSG_SEEN.txt`: `SYSTEM KEY - VQ LABEL` (5 columns).

Systems beyond the official 17 CoSG systems (e.g. CodecFake-mini's held-out codecs) are declared in an optional
`CoSG_systems.txt` beside the evaluation protocols: `SYSTEM AUX DEC VQ` per line, in protocol spelling.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from modeling_codectrace.configuration_codectrace import TASK_LABELS

# Official protocol spellings -> the model's label names.
PROTOCOL_CODES: dict[str, dict[str, str]] = {
    "aux": {"REAL": "real", "Trad": "none", "SEM": "semantic", "Disent": "disentangle"},
    "dec": {"REAL": "real", "TIME": "time", "FREQ": "freq"},
    "vq": {"REAL": "real", "MVQ": "mvq", "SVQ": "svq", "SQ": "sq"},
}
# The same table the other way round: label name -> protocol spelling.
LABEL_SPELLINGS: dict[str, dict[str, str]] = {
    task: {label: code for code, label in codes.items()} for task, codes in PROTOCOL_CODES.items()
}
# `spoofs` is a known typo on one CoRS_ALL row.
BIN_CODES: dict[str, str] = {"bonafide": "bonafide", "spoof": "spoof", "spoofs": "spoof"}

# CoSG systems -> (aux, dec, vq) in protocol spelling; the official code hard-codes this table.
COSG_SYSTEMS: dict[str, tuple[str, str, str]] = {
    **{s: ("Trad", "TIME", "MVQ") for s in
       ("ELLAV", "VALLE", "GPST", "UNIAUDIO", "TACOLM", "SPEECHX", "RALLE", "VIOLA", "NS2")},
    "CLAMTTS": ("Trad", "FREQ", "MVQ"),
    "MASKGCT": ("Trad", "FREQ", "MVQ"),
    "NS3": ("Disent", "TIME", "MVQ"),
    "USLM": ("SEM", "TIME", "MVQ"),
    "SIMPLESPEECH1": ("Trad", "TIME", "SQ"),
    "SIMPLESPEECH2": ("Trad", "TIME", "SQ"),
    "TI1G1R": ("Disent", "TIME", "SVQ"),
    "SINGLECODEC": ("Disent", "FREQ", "SVQ"),
}

TRAINING_SPLITS = {"train": "train", "validation": "dev", "test": "test"}
SAMPLING_SUFFIX = {"aux": "", "vq": "_bal_vq", "dec": "_bal_dec"}

# Config -> split -> protocol file name.
CONFIG_FILES: dict[str, dict[str, str]] = {
    **{
        config: {split: f"{prefix}_mult_learn{suffix}.txt" for split, prefix in TRAINING_SPLITS.items()}
        for config, suffix in SAMPLING_SUFFIX.items()
    },
    "cors_eval": {"test": "CoRS_ALL.txt"},
    "cosg_eval": {"test": "CoSG_ALL.txt"},
    "cosg_seen": {"test": "CoSG_SEEN.txt"},
    # CodecFake-mini only: the validation speakers re-synthesised by codecs no training row uses (model selection
    # on unseen codecs); CodecFake+ has no such split, so a protocol folder may lack it.
    "val_codecs": {"validation": "dev_valcodecs.txt"},
}
OPTIONAL_CONFIGS: tuple[str, ...] = ("val_codecs",)
CONFIGS: tuple[str, ...] = tuple(CONFIG_FILES)
TRAINING_FILES: tuple[str, ...] = tuple(name for c in SAMPLING_SUFFIX for name in CONFIG_FILES[c].values())

BONAFIDE_SOURCE = "bonafide"
COSG_SYSTEMS_FILE = "CoSG_systems.txt"


class ProtocolError(ValueError):
    """A protocol line or file that does not match the official formats."""


@dataclass(frozen=True)
class ProtocolRow:
    """One clip: identity, where its audio lives (relative, without extension) and its label indices."""

    utt_id: str
    speaker: str
    source: str
    audio_stem: str
    labels: dict[str, int] = field(hash=False)


def _label_indices(bin_name: str, aux: str, dec: str, vq: str) -> dict[str, int]:
    names = {"bin": bin_name, "vq": PROTOCOL_CODES["vq"][vq], "aux": PROTOCOL_CODES["aux"][aux],
             "dec": PROTOCOL_CODES["dec"][dec]}
    return {task: TASK_LABELS[task].index(name) for task, name in names.items()}


def _fields(path: Path, line_number: int, line: str, allowed: tuple[int, ...]) -> list[str]:
    parts = line.split()
    if len(parts) not in allowed:
        expected = " or ".join(map(str, allowed))
        raise ProtocolError(f"{path}:{line_number}: expected {expected} columns, got {len(parts)}: {line.strip()!r}")
    return parts


def _bin_label(path: Path, line_number: int, value: str) -> str:
    if value not in BIN_CODES:
        raise ProtocolError(
            f"{path}:{line_number}: unknown label {value!r}; expected one of {sorted(BIN_CODES)}."
        )
    return BIN_CODES[value]


def _check_code(path: Path, line_number: int, task: str, value: str) -> None:
    if value not in PROTOCOL_CODES[task]:
        raise ProtocolError(
            f"{path}:{line_number}: unknown {task.upper()} value {value!r}; expected one of "
            f"{sorted(PROTOCOL_CODES[task])}."
        )


def codec_of(utt_id: str, speaker: str) -> str | None:
    """`p260_075_Encodec_24b24k` -> `Encodec_24b24k`; a bona fide id (`p260_075`) -> None."""
    if not utt_id.startswith(speaker + "_"):
        return None
    number, _, codec = utt_id[len(speaker) + 1 :].partition("_")
    if not number.isdigit():
        return None
    return codec or None


def _lines(path: Path):
    with open(path, encoding="utf-8") as handle:
        for line_number, line in enumerate(handle, start=1):
            if line.strip():
                yield line_number, line


def read_training_protocol(path: str | Path) -> list[ProtocolRow]:
    """Reads a 7-column training protocol (`SPK UTT - AUX DEC VQ LABEL`)."""
    path = Path(path)
    rows = []
    for line_number, line in _lines(path):
        speaker, utt_id, _, aux, dec, vq, label = _fields(path, line_number, line, (7,))
        for task, value in (("aux", aux), ("dec", dec), ("vq", vq)):
            _check_code(path, line_number, task, value)
        bin_name = _bin_label(path, line_number, label)
        codec = codec_of(utt_id, speaker)
        is_real = (aux, dec, vq) == ("REAL", "REAL", "REAL")
        if bin_name == "bonafide" and not (is_real and codec is None):
            raise ProtocolError(
                f"{path}:{line_number}: a bona fide row must be REAL REAL REAL with an id like "
                f"{speaker}_001: {line.strip()!r}"
            )
        if bin_name == "spoof" and (codec is None or "REAL" in (aux, dec, vq)):
            raise ProtocolError(
                f"{path}:{line_number}: a spoof row needs a codec suffix on its id and no REAL taxonomy: "
                f"{line.strip()!r}"
            )
        rows.append(ProtocolRow(utt_id, speaker, codec or BONAFIDE_SOURCE, f"all_data_16k/{utt_id}",
                                _label_indices(bin_name, aux, dec, vq)))
    return rows


def codec_table(
    training_paths: list[str | Path], parsed: dict[Path, list[ProtocolRow]] | None = None
) -> dict[str, tuple[str, str, str]]:
    """Codec name -> (aux, dec, vq) in protocol spelling, as the training files define it.

    `parsed` may hold rows already read from some of the paths (they are not read twice).
    """
    table: dict[str, tuple[str, str, str]] = {}
    where: dict[str, Path] = {}
    for path in map(Path, training_paths):
        rows = parsed[path] if parsed and path in parsed else read_training_protocol(path)
        for row in rows:
            if row.source == BONAFIDE_SOURCE:
                continue
            taxonomy = tuple(LABEL_SPELLINGS[t][TASK_LABELS[t][row.labels[t]]] for t in ("aux", "dec", "vq"))
            if table.setdefault(row.source, taxonomy) != taxonomy:
                raise ProtocolError(
                    f"{path}: codec {row.source!r} is labelled {taxonomy} at {row.utt_id} but "
                    f"{table[row.source]} in {where[row.source]}."
                )
            where.setdefault(row.source, path)
    return table


def read_cors_protocol(path: str | Path, table: dict[str, tuple[str, str, str]]) -> list[ProtocolRow]:
    """Reads CoRS_ALL (`SPK UTT - - LABEL`); each codec's taxonomy comes from `table`."""
    path = Path(path)
    rows = []
    for line_number, line in _lines(path):
        speaker, utt_id, _, _, label = _fields(path, line_number, line, (5,))
        bin_name = _bin_label(path, line_number, label)
        codec = codec_of(utt_id, speaker)
        if bin_name == "bonafide":
            if codec is not None:
                raise ProtocolError(f"{path}:{line_number}: bona fide id {utt_id!r} carries a codec suffix.")
            taxonomy = ("REAL", "REAL", "REAL")
        else:
            if codec is None:
                raise ProtocolError(f"{path}:{line_number}: spoof id {utt_id!r} has no codec suffix.")
            if codec not in table:
                raise ProtocolError(
                    f"{path}:{line_number}: unknown codec {codec!r}; the training protocols define "
                    f"{len(table)} codecs: {', '.join(sorted(table))}."
                )
            taxonomy = table[codec]
        rows.append(ProtocolRow(utt_id, speaker, codec or BONAFIDE_SOURCE, f"all_data_16k/{utt_id}",
                                _label_indices(bin_name, *taxonomy)))
    return rows


def read_cosg_systems(path: str | Path) -> dict[str, tuple[str, str, str]]:
    """Reads a `CoSG_systems.txt` (`SYSTEM AUX DEC VQ` per line) into system -> (aux, dec, vq)."""
    path = Path(path)
    table = {}
    for line_number, line in _lines(path):
        system, aux, dec, vq = _fields(path, line_number, line, (4,))
        for task, value in (("aux", aux), ("dec", dec), ("vq", vq)):
            _check_code(path, line_number, task, value)
            if value == "REAL":
                raise ProtocolError(f"{path}:{line_number}: a generator system cannot be REAL: {line.strip()!r}")
        table[system] = (aux, dec, vq)
    return table


def read_cosg_protocol(path: str | Path, seen: bool = False,
                       systems: dict[str, tuple[str, str, str]] | None = None) -> list[ProtocolRow]:
    """Reads CoSG_ALL (`SYS KEY - [-] LABEL`) or, with `seen`, CoSG_SEEN (`SYS KEY - VQ LABEL`).

    `systems` adds (or overrides) system taxonomies beyond the official table.
    """
    path = Path(path)
    known = {**COSG_SYSTEMS, **(systems or {})}
    rows = []
    for line_number, line in _lines(path):
        parts = _fields(path, line_number, line, (5,) if seen else (4, 5))
        system, key, label = parts[0], parts[1], parts[-1]
        if system not in known:
            raise ProtocolError(
                f"{path}:{line_number}: unknown CoSG system {system!r}; known: {', '.join(sorted(known))} "
                f"(declare others in {COSG_SYSTEMS_FILE})."
            )
        bin_name = _bin_label(path, line_number, label)
        taxonomy = known[system] if bin_name == "spoof" else ("REAL", "REAL", "REAL")
        if seen:
            _check_code(path, line_number, "vq", parts[3])
            if parts[3] != taxonomy[2]:
                raise ProtocolError(
                    f"{path}:{line_number}: VQ column says {parts[3]!r} but {system} {label} rows are {taxonomy[2]!r}."
                )
        source = system if bin_name == "spoof" else BONAFIDE_SOURCE
        rows.append(ProtocolRow(f"{system}/{key}", system, source, f"SLMdemos_16k/{system}/{key}",
                                _label_indices(bin_name, *taxonomy)))
    return rows


def find_protocol_file(folder: str | Path, name: str) -> Path:
    """Finds an official protocol file in `folder`, its `training/` or `evaluation/` subfolder, or below."""
    folder = Path(folder)
    for candidate in (folder / name, folder / "training" / name, folder / "evaluation" / name,
                      folder / "metadata" / name):
        if candidate.is_file():
            return candidate
    matches = sorted(folder.rglob(name)) if folder.is_dir() else []
    if matches:
        return matches[0]
    raise ProtocolError(
        f"protocol file {name!r} not found in {folder} (looked in it, training/, evaluation/ and below). "
        "Download the official protocol files (w2v2_aasist_baseline/metadata of the CodecFake source-tracing "
        "repository) and pass their folder."
    )


def read_config_rows(
    protocol_dir: str | Path, configs: tuple[str, ...] = CONFIGS
) -> dict[str, dict[str, list[ProtocolRow]]]:
    """Config -> split -> rows, for the requested configs; an optional config (`OPTIONAL_CONFIGS`) whose protocol
    file the folder lacks is left out."""
    unknown = [c for c in configs if c not in CONFIG_FILES]
    if unknown:
        raise ValueError(f"unknown config(s) {unknown}; accepted: {', '.join(CONFIGS)}.")
    result: dict[str, dict[str, list[ProtocolRow]]] = {}
    parsed: dict[Path, list[ProtocolRow]] = {}
    for config in sorted(configs, key=lambda c: c == "cors_eval"):  # training files first, then reused
        result[config] = {}
        for split, name in CONFIG_FILES[config].items():
            try:
                path = find_protocol_file(protocol_dir, name)
            except ProtocolError:
                if config in OPTIONAL_CONFIGS:
                    continue
                raise
            if config in SAMPLING_SUFFIX or config == "val_codecs":
                rows = parsed[path] = read_training_protocol(path)
            elif config == "cors_eval":
                table = codec_table([find_protocol_file(protocol_dir, n) for n in TRAINING_FILES], parsed)
                rows = read_cors_protocol(path, table)
            else:
                declared = path.parent / COSG_SYSTEMS_FILE
                systems = read_cosg_systems(declared) if declared.is_file() else None
                rows = read_cosg_protocol(path, seen=config == "cosg_seen", systems=systems)
            result[config][split] = rows
    return {config: result[config] for config in configs if result[config]}


def class_counts(rows: list[ProtocolRow]) -> dict[str, dict[str, int]]:
    """Task -> label name -> count (every label listed, zeros included)."""
    counts = {task: Counter(row.labels[task] for row in rows) for task in TASK_LABELS}
    return {task: {name: counts[task].get(i, 0) for i, name in enumerate(names)} for task, names in TASK_LABELS.items()}
