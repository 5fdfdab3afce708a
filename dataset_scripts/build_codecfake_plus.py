"""Build CodecFake+ into a Hugging Face dataset folder that plain `load_dataset(folder, config)` reads.

    python -m dataset_scripts.build_codecfake_plus stats --protocols PROTOCOL_DIR
    python -m dataset_scripts.build_codecfake_plus build --audio-root RELEASE_DIR --protocols PROTOCOL_DIR --out OUT
    python -m dataset_scripts.build_codecfake_plus build --archives all_data_16k.tar.xz SLMdemos_16k.tar.xz ...
    python -m dataset_scripts.build_codecfake_plus push --dataset-dir OUT --repo-id USER/codecfake-plus

Output: Parquet shards per config and split (audio embedded as bytes, 16 kHz mono), a dataset card
(README.md) whose `configs:` block maps configs to files, and `build_report.json`. The build writes into
`OUT.partial/` and renames it to `OUT` only when complete; finished shards survive an interruption and
are reused by the next run with the same inputs.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from collections import Counter
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import soundfile as sf
from datasets import Audio, ClassLabel, Features, Value
from tqdm.auto import tqdm

from codectrace.audio import load_audio
from codectrace.dataset_folder import REPORT_NAME, push_dataset_folder
from codectrace.errors import ToolArgumentParser, ToolError, run_tool
from codectrace.files import atomic_path, partial_path, replace_folder, write_json
from modeling_codectrace.configuration_codectrace import SAMPLING_RATE, TASK_LABELS

from .dataset_card import render_card
from .protocols import CONFIG_FILES, CONFIGS, ProtocolRow, class_counts, read_config_rows

BUILDER_VERSION = "1"
AUDIO_SUFFIXES = (".wav", ".flac")
AUDIO_DIRS = ("all_data_16k", "SLMdemos_16k")


def dataset_features() -> Features:
    """The columns of every config; ClassLabel names and indices are the model's."""
    return Features(
        {
            "audio": Audio(sampling_rate=SAMPLING_RATE),
            "utt_id": Value("string"),
            "speaker": Value("string"),
            "source": Value("string"),
            **{task: ClassLabel(names=list(names)) for task, names in TASK_LABELS.items()},
        }
    )


class BuildError(ToolError):
    """The build stopped; the message summarises why (missing or unreadable audio, bad protocol, ...)."""


# -- archives ---------------------------------------------------------------------------------------


def extract_archives(archives: list[Path], destination: Path) -> Path:
    """Safely extracts the official `.tar.xz` archives (no absolute paths, no `..`, no links)."""
    destination.mkdir(parents=True, exist_ok=True)
    for archive in archives:
        marker = destination / f".extracted-{archive.name}"
        if marker.exists() and marker.read_text() == _stat_key(archive):
            continue
        with tarfile.open(archive) as tar:
            for member in tar.getmembers():
                name = member.name
                if member.issym() or member.islnk():
                    raise BuildError(f"{archive}: refusing link member {name!r} (links are not extracted).")
                if name.startswith(("/", "\\")) or ".." in Path(name).parts:
                    raise BuildError(f"{archive}: refusing member {name!r} with an absolute or parent path.")
                if not (member.isfile() or member.isdir()):
                    raise BuildError(f"{archive}: refusing special member {name!r}.")
            tar.extractall(destination, filter="data")
        marker.write_text(_stat_key(archive))
    return locate_audio_root(destination)


def locate_audio_root(folder: Path) -> Path:
    """The folder holding `all_data_16k/` and/or `SLMdemos_16k/` (the folder itself or up to 2 levels down)."""
    candidates = [folder] + sorted(p for p in folder.glob("*") if p.is_dir()) + sorted(
        p for p in folder.glob("*/*") if p.is_dir()
    )
    for candidate in candidates:
        if any((candidate / name).is_dir() for name in AUDIO_DIRS):
            return candidate
    raise BuildError(f"no {' or '.join(AUDIO_DIRS)} folder found in {folder}.")


def _stat_key(path: Path) -> str:
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime_ns}"


# -- planning -----------------------------------------------------------------------------------------


@dataclass
class ShardTask:
    config: str
    split: str
    index: int
    count: int
    rows: list[ProtocolRow]
    files: list[str | None]  # absolute audio path per row (None: missing)
    fingerprint: str
    build_id: str = ""  # short fingerprint of the whole build, in file names (see `name`)

    @property
    def name(self) -> str:
        # The build id is also in the card's data-files patterns (see dataset_card.render_card).
        return f"{self.config}/{self.split}-{self.build_id}-{self.index:05d}-of-{self.count:05d}.parquet"


@dataclass
class BuildReport:
    fingerprint: str = ""
    rows: dict[str, dict[str, int]] = field(default_factory=dict)
    skipped: list[dict[str, str]] = field(default_factory=list)
    resampled: int = 0
    downmixed: int = 0
    reused_shards: int = 0
    built_shards: int = 0


def index_audio(audio_root: Path) -> dict[str, str]:
    """Relative stem (`all_data_16k/p225_001`) -> absolute path, for .wav and .flac files."""
    index: dict[str, str] = {}
    for top in AUDIO_DIRS:
        base = audio_root / top
        if not base.is_dir():
            continue
        for directory, _, files in os.walk(base):
            for name in files:
                stem, suffix = os.path.splitext(name)
                if suffix.lower() in AUDIO_SUFFIXES:
                    relative = os.path.relpath(os.path.join(directory, stem), audio_root).replace(os.sep, "/")
                    index.setdefault(relative, os.path.join(directory, name))
    return index


def plan_shards(
    rows_by_config: dict[str, dict[str, list[ProtocolRow]]], index: dict[str, str], shard_rows: int
) -> list[ShardTask]:
    tasks = []
    for config, splits in rows_by_config.items():
        for split, rows in splits.items():
            count = max(1, -(-len(rows) // shard_rows))
            for i in range(count):
                part = rows[i * shard_rows : (i + 1) * shard_rows]
                files = [index.get(row.audio_stem) for row in part]
                digest = hashlib.sha256(BUILDER_VERSION.encode())
                for row, path in zip(part, files):
                    stat = _stat_key(Path(path)) if path else "missing"
                    digest.update(f"{row.utt_id}|{row.speaker}|{row.source}|{sorted(row.labels.items())}|{path}|{stat}\n".encode())
                tasks.append(ShardTask(config, split, i, count, part, files, digest.hexdigest()[:16]))
    return tasks


# -- one shard (runs in a worker process) ------------------------------------------------------------


def _encode_row_audio(path: str) -> tuple[bytes, str, bool, bool]:
    """Original bytes when already 16 kHz mono; otherwise resampled/downmixed and stored as 16-bit FLAC."""
    data = Path(path).read_bytes()
    try:
        # Decode fully (catches truncated bodies); the samples are reused if they need converting.
        samples, rate = sf.read(io.BytesIO(data), dtype="float32", always_2d=True)
    except Exception as error:  # noqa: BLE001 - libsndfile raises several types
        raise ValueError(f"unreadable audio ({error})") from None
    if samples.shape[0] == 0:
        raise ValueError("audio contains no samples")
    channels = samples.shape[1]
    if rate == SAMPLING_RATE and channels == 1:
        return data, os.path.basename(path), False, False
    waveform = load_audio(samples.T, rate)
    buffer = io.BytesIO()
    sf.write(buffer, waveform, SAMPLING_RATE, format="FLAC", subtype="PCM_16")
    name = os.path.splitext(os.path.basename(path))[0] + ".flac"
    return buffer.getvalue(), name, rate != SAMPLING_RATE, channels > 1


def build_shard(task: ShardTask, partial_dir: str, allow_missing: bool, allow_corrupt: bool) -> dict:
    """Writes one Parquet shard (tmp file, then rename) and reports skipped / converted rows."""
    columns: dict[str, list] = {name: [] for name in dataset_features()}
    skipped, resampled, downmixed = [], 0, 0
    for row, path in zip(task.rows, task.files):
        if path is None:
            skipped.append({"utt_id": row.utt_id, "path": row.audio_stem + ".wav|.flac", "reason": "missing",
                            "config": task.config, "split": task.split})
            continue
        try:
            data, name, was_resampled, was_downmixed = _encode_row_audio(path)
        except (OSError, ValueError) as error:
            skipped.append({"utt_id": row.utt_id, "path": path, "reason": str(error),
                            "config": task.config, "split": task.split})
            continue
        resampled += was_resampled
        downmixed += was_downmixed
        columns["audio"].append({"bytes": data, "path": name})
        columns["utt_id"].append(row.utt_id)
        columns["speaker"].append(row.speaker)
        columns["source"].append(row.source)
        for task_name in TASK_LABELS:
            columns[task_name].append(row.labels[task_name])
    missing = sum(s["reason"] == "missing" for s in skipped)
    complete = (allow_missing or missing == 0) and (allow_corrupt or len(skipped) == missing)
    if complete:
        target = Path(partial_dir) / task.name
        target.parent.mkdir(parents=True, exist_ok=True)
        table = pa.Table.from_pydict(columns, schema=dataset_features().arrow_schema)
        with atomic_path(target) as partial:
            pq.write_table(table, partial, row_group_size=64)
        done = {"fingerprint": task.fingerprint, "rows": table.num_rows, "skipped": skipped,
                "resampled": resampled, "downmixed": downmixed}
        write_json(Path(partial_dir) / ".shards" / (task.name.replace("/", "__") + ".json"), done)
    return {"name": task.name, "complete": complete, "rows": len(task.rows) - len(skipped), "skipped": skipped,
            "resampled": resampled, "downmixed": downmixed}


def mini_card_text(audio_root: Path) -> dict:
    """Card title and introduction for a CodecFake-mini release (its `codecfake_mini.json` marks it)."""
    if not (audio_root / "codecfake_mini.json").is_file():
        return {}
    meta = json.loads((audio_root / "codecfake_mini.json").read_text())
    names = {split: ", ".join(c["name"] for c in meta["codecs"] if c.get("split") == split)
             for split in ("validation", "test")}
    return {"pretty_name": "CodecFake-mini (source tracing)", "intro": (
        "CodecFake-mini, an offline, taxonomy-controlled replica of CodecFake+ made by codectrace: bona fide speech "
        f"({meta['speech']}) re-synthesised by {len(meta['codecs'])} small neural audio codecs trained for it "
        f"(`codec_zoo`). Codecs are split three ways: training codecs (CoRS), validation codecs ({names['validation']};"
        f" config `val_codecs`, for model selection) and test codecs ({names['test']}), which form the "
        "out-of-domain set in place of CoSG. Same configs, columns and label indices as CodecFake+, plus "
        "`val_codecs`; no output of a public codec.\n"),
        "sources": ("Bona fide speech from the speech synthesizers espeak-ng (GPL-3.0) and festival with the kal "
                    "diphone voice, real recorded words from Debian's ktuberling-data (GPL, KDE), or the recordings "
                    "named in `codecfake_mini.json`; codecs and re-syntheses made by codectrace (Apache-2.0). For "
                    "research on deepfake detection and source tracing.\n")}


def _reusable(task: ShardTask, partial_dir: Path) -> dict | None:
    record = partial_dir / ".shards" / (task.name.replace("/", "__") + ".json")
    if not record.exists() or not (partial_dir / task.name).exists():
        return None
    done = json.loads(record.read_text())
    return done if done.get("fingerprint") == task.fingerprint else None


# -- the build ------------------------------------------------------------------------------------------


def _summary(problem: str, skipped: list[dict], hint: str) -> str:
    by_protocol = Counter(f"{s['config']}/{s['split']} ({CONFIG_FILES[s['config']][s['split']]})" for s in skipped)
    lines = [f"{len(skipped)} rows have {problem} audio:"]
    lines += [f"  {count} in {where}" for where, count in by_protocol.most_common()]
    lines += ["first ones:"] + [f"  {s['path']}: {s['reason']}" for s in skipped[:5]]
    lines.append(hint)
    return "\n".join(lines)


def build(
    audio_root: str | Path | None,
    protocol_dir: str | Path,
    output_dir: str | Path,
    configs: tuple[str, ...] = CONFIGS,
    archives: list[str | Path] | None = None,
    num_proc: int | None = None,
    shard_rows: int = 1000,
    allow_missing: bool = False,
    allow_corrupt: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> BuildReport:
    """Builds the dataset folder; returns what was done. Raises `BuildError` with a summary on bad audio."""
    output_dir = Path(output_dir)
    partial_dir = partial_path(output_dir)  # kept on failure: its finished shards are reused by the next run
    if archives:
        audio_root = extract_archives([Path(a) for a in archives], output_dir.with_name(output_dir.name + ".extracted"))
    if audio_root is None:
        raise BuildError("give --audio-root (the extracted release) or --archives (the .tar.xz files).")
    audio_root = locate_audio_root(Path(audio_root))

    rows_by_config = read_config_rows(protocol_dir, tuple(configs))
    tasks = plan_shards(rows_by_config, index_audio(audio_root), shard_rows)
    fingerprint = hashlib.sha256("".join(t.fingerprint for t in tasks).encode()).hexdigest()[:16]
    for task in tasks:
        task.build_id = fingerprint[:8]
    up_to_date = _previous_build(output_dir, fingerprint, overwrite)
    if up_to_date is not None:
        return up_to_date
    _refuse_missing_audio(tasks, audio_root, allow_missing)

    report = BuildReport(fingerprint=fingerprint)
    partial_dir.mkdir(parents=True, exist_ok=True)
    pending = []
    for task in tasks:
        done = _reusable(task, partial_dir)
        if done is None:
            pending.append(task)
        else:
            report.reused_shards += 1
            _add_shard(report, done)
    for result in _build_shards(pending, partial_dir, allow_missing, allow_corrupt, num_proc, progress):
        report.built_shards += result["complete"]
        _add_shard(report, result)
    corrupt = [s for s in report.skipped if s["reason"] != "missing"]
    if corrupt and not allow_corrupt:
        raise BuildError(_summary("unreadable", corrupt, "Fix or remove those files, or pass --allow-corrupt to "
                                  f"skip them. Finished shards are kept in {partial_dir} for the next run."))

    counts = _count_kept_rows(report, rows_by_config)
    card = render_card(report.rows, counts, dataset_features(), build_id=fingerprint[:8],
                       **mini_card_text(audio_root))
    (partial_dir / "README.md").write_text(card)
    write_json(partial_dir / REPORT_NAME, asdict(report))
    shutil.rmtree(partial_dir / ".shards", ignore_errors=True)
    replace_folder(partial_dir, output_dir)
    return report


def _previous_build(output_dir: Path, fingerprint: str, overwrite: bool) -> BuildReport | None:
    """The report of an existing build of the same inputs (nothing to do), else None; refuses to replace a build of
    other inputs without `overwrite`."""
    if not output_dir.exists():
        return None
    previous = output_dir / REPORT_NAME
    if previous.exists() and json.loads(previous.read_text()).get("fingerprint") == fingerprint:
        print(f"{output_dir} is up to date (same protocols and audio); nothing to do.")
        return BuildReport(**json.loads(previous.read_text()))
    if not overwrite:
        raise BuildError(f"{output_dir} exists and was built from other inputs or options; pass --overwrite to "
                         "replace it.")
    return None


def _refuse_missing_audio(tasks: list[ShardTask], audio_root: Path, allow_missing: bool) -> None:
    missing = [
        {"utt_id": row.utt_id, "path": row.audio_stem + ".wav|.flac", "reason": "missing",
         "config": task.config, "split": task.split}
        for task in tasks for row, path in zip(task.rows, task.files) if path is None
    ]
    if missing and not allow_missing:
        raise BuildError(_summary("missing", missing, f"audio root: {audio_root}. Pass --allow-missing to skip "
                                  "them (they are listed in build_report.json)."))


def _add_shard(report: BuildReport, shard: dict) -> None:
    report.skipped += shard["skipped"]
    report.resampled += shard["resampled"]
    report.downmixed += shard["downmixed"]


def _build_shards(pending: list[ShardTask], partial_dir: Path, allow_missing: bool, allow_corrupt: bool,
                  num_proc: int | None, progress: bool) -> list[dict]:
    """Builds the shards not yet finished, in worker processes when there are several, with a progress bar."""
    bar = tqdm(total=sum(len(t.rows) for t in pending), unit="clip", desc="building CodecFake+", disable=not progress)
    results = []
    workers = num_proc or min(os.cpu_count() or 1, 8)
    if workers <= 1 or len(pending) <= 1:
        for task in pending:
            results.append(build_shard(task, str(partial_dir), allow_missing, allow_corrupt))
            bar.update(len(task.rows))
    else:
        with ProcessPoolExecutor(max_workers=workers) as pool:
            futures = {pool.submit(build_shard, t, str(partial_dir), allow_missing, allow_corrupt): t for t in pending}
            for future in as_completed(futures):
                results.append(future.result())
                bar.update(len(futures[future].rows))
    bar.close()
    return results


def _count_kept_rows(report: BuildReport, rows_by_config: dict) -> dict[str, dict]:
    """Fills `report.rows` (rows kept per config and split) and returns the class counts of the kept rows."""
    skipped_ids: dict[tuple[str, str], set[str]] = {}
    for s in report.skipped:
        skipped_ids.setdefault((s["config"], s["split"]), set()).add(s["utt_id"])
    counts: dict[str, dict] = {}
    for config, splits in rows_by_config.items():
        report.rows[config], counts[config] = {}, {}
        for split, rows in splits.items():
            skipped = skipped_ids.get((config, split), set())
            kept = [r for r in rows if r.utt_id not in skipped]
            report.rows[config][split] = len(kept)
            counts[config][split] = class_counts(kept)
    return counts


# -- stats and push -------------------------------------------------------------------------------------


def protocol_stats(protocol_dir: str | Path, configs: tuple[str, ...] = CONFIGS) -> dict:
    """Config -> split -> {"rows": n, task: {label: count}}, from the protocol files alone."""
    rows_by_config = read_config_rows(protocol_dir, tuple(configs))
    return {
        config: {split: {"rows": len(rows), **class_counts(rows)} for split, rows in splits.items()}
        for config, splits in rows_by_config.items()
    }


def format_stats(stats: dict) -> str:
    lines = []
    header = f"{'config':<10} {'split':<11} {'rows':>7}  " + "  ".join(f"{t}: " + "/".join(TASK_LABELS[t])
                                                                      for t in TASK_LABELS)
    lines.append(header)
    lines.append("-" * len(header))
    for config, splits in stats.items():
        for split, entry in splits.items():
            cells = "  ".join(f"{t}: " + "/".join(str(entry[t][name]) for name in TASK_LABELS[t]) for t in TASK_LABELS)
            lines.append(f"{config:<10} {split:<11} {entry['rows']:>7}  {cells}")
    return "\n".join(lines)


# -- command line ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    stats = sub.add_parser("stats", help="row and class counts per config and split, from the protocols only")
    stats.add_argument("--protocols", required=True, type=Path, help="folder holding the official protocol files")
    stats.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    stats.add_argument("--json", type=Path, help="also write the counts as JSON")

    build_parser = sub.add_parser("build", help="build the dataset folder")
    build_parser.add_argument("--audio-root", type=Path, help="extracted release (holds all_data_16k/, SLMdemos_16k/)")
    build_parser.add_argument("--archives", nargs="+", type=Path, help="the official .tar.xz archives instead")
    build_parser.add_argument("--protocols", required=True, type=Path)
    build_parser.add_argument("--out", required=True, type=Path)
    build_parser.add_argument("--configs", nargs="+", default=list(CONFIGS), choices=CONFIGS)
    build_parser.add_argument("--num-proc", type=int, default=None, help="worker processes (default: CPUs, max 8)")
    build_parser.add_argument("--shard-rows", type=int, default=1000, help="rows per Parquet shard")
    build_parser.add_argument("--allow-missing", action="store_true", help="skip rows whose audio is missing")
    build_parser.add_argument("--allow-corrupt", action="store_true", help="skip rows whose audio is unreadable")
    build_parser.add_argument("--overwrite", action="store_true", help="replace an output built from other inputs")

    push = sub.add_parser("push", help="upload a built folder to a Hub dataset repo")
    push.add_argument("--dataset-dir", required=True, type=Path)
    push.add_argument("--repo-id", required=True)
    push.add_argument("--private", action="store_true")
    push.add_argument("--revision")

    args = parser.parse_args(argv)
    return run_tool(lambda: _run(args))


def _run(args) -> None:
    if args.command == "stats":
        result = protocol_stats(args.protocols, tuple(args.configs))
        print(format_stats(result))
        if args.json:
            write_json(args.json, result)
    elif args.command == "build":
        report = build(args.audio_root, args.protocols, args.out, tuple(args.configs), args.archives,
                       args.num_proc, args.shard_rows, args.allow_missing, args.allow_corrupt, args.overwrite)
        total = sum(sum(s.values()) for s in report.rows.values())
        print(f"built {args.out}: {total} rows; {len(report.skipped)} skipped, {report.resampled} resampled, "
              f"{report.downmixed} downmixed; shards built {report.built_shards}, reused {report.reused_shards}.")
    else:
        print(push_dataset_folder(args.dataset_dir, args.repo_id, private=args.private, revision=args.revision))


if __name__ == "__main__":
    sys.exit(main())
