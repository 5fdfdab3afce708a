"""`codectrace enroll`: add a generator's clips to the store beside a model, remove one, or list them.

    codectrace enroll clips/ --model FOLDER --name NAME [--vq mvq --aux none --dec time]
    codectrace enroll --model FOLDER --remove NAME
    codectrace enroll --model FOLDER --list
    codectrace enroll --model FOLDER --fit-identity DATASET
"""

from __future__ import annotations

import sys
from pathlib import Path

from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS

from .enrolment import FILE_NAME, EnrolmentStore, enrollable_embedding, enrollable_labels
from .errors import ToolError
from .precision import PRECISIONS

IDENTITY_SPLIT = ("aux", "train")  # (config, split) of a built dataset whose sources a codec identity tells apart


def add_enroll_parser(sub) -> None:
    parser = sub.add_parser(
        "enroll", help="enrol a new generator from a few clips (or --remove / --list)",
        description=f"Adds the clips' embeddings under a generator's name to {FILE_NAME} in the model folder; the "
                    "pipeline, `codectrace trace` and the Space then attribute clips to it. The model's weights "
                    "never change.")
    parser.add_argument("paths", nargs="*", help="audio files or folders of the generator's clips")
    parser.add_argument("--model", required=True, help="model folder (the store is written into it)")
    parser.add_argument("--name", help="the generator's name, e.g. 'VALL-E X'")
    for task in TAXONOMY_TASKS:
        parser.add_argument(f"--{task}", choices=list(enrollable_labels(task)),
                            help=f"its {task.upper()} class, where published")
    parser.add_argument("--remove", metavar="NAME", help="take an enrolled generator out of the store")
    parser.add_argument("--list", action="store_true", help="print the enrolled generators")
    parser.add_argument("--fit-identity", metavar="DATASET",
                        help="fit the codec identity clips are compared in on a built dataset's training split (what "
                             "train.py writes; for a model folder without one, or with one of an older codectrace)")
    parser.add_argument("--device", default=None, help="cpu, cuda or cuda:N (default: cpu)")
    parser.add_argument("--precision", default="auto", choices=list(PRECISIONS))
    parser.add_argument("--workers", type=int, default=0, help="processes decoding the clips (default 0)")
    parser.set_defaults(func=run_enroll)


def run_enroll(args) -> int:
    from .resolve import check_model_folder

    if not Path(args.model).is_dir():
        raise ToolError(f"--model {args.model}: enrolment writes beside the model, so it needs a local model folder "
                        "(download a Hub model with `huggingface-cli download` first).")
    folder = check_model_folder(args.model)
    actions = [bool(args.paths or args.name), bool(args.remove), bool(args.list), bool(args.fit_identity)]
    if sum(actions) != 1:
        raise ToolError("give clips with --name to enrol, or --remove NAME, or --list, or --fit-identity DATASET "
                        "(one of them).")
    if args.fit_identity:
        return _fit_identity(args.fit_identity, folder)
    store = EnrolmentStore.load(folder) or EnrolmentStore()
    if args.list:
        print(describe(store))
        return 0
    if args.remove:
        store.remove(args.remove)
        store.save(folder)
        print(f"removed {args.remove!r}; {len(store.generators)} generator(s) enrolled.", file=sys.stderr)
        return 0
    return _enrol(args, folder, store)


def _enrol(args, folder: Path, store: EnrolmentStore) -> int:
    import numpy as np

    from .cli import collect_audio_files
    from .hub import load_tracer
    from .tracing import trace_files

    if not args.name:
        raise ToolError("--name is needed to enrol clips (the generator's name).")
    if not args.paths:
        raise ToolError("no clips given: name the generator's audio files or folders.")
    taxonomy = {task: getattr(args, task) for task in TAXONOMY_TASKS if getattr(args, task)}
    files, problems = collect_audio_files(args.paths)
    for raw, reason in problems:
        print(f"error: {raw}: {reason}", file=sys.stderr)
    tracer = load_tracer(str(folder), device=args.device, precision=args.precision)
    store.adopt_space(tracer.identity_space)
    tracer.enrolment = store  # the identity head is the store's
    embeddings, near_training = [], 0
    for path, result, error in trace_files(tracer, files, workers=args.workers, return_embedding=True):
        if error is None:
            try:
                embedding = enrollable_embedding(result)
            except ValueError as problem:
                error = f"{path}: {problem}"
        if error is not None:
            print(f"error: {error}", file=sys.stderr)
            continue
        embeddings.append(embedding)
        near_training += result["heads"].get(store.task, {}).get("known") is True
    if not embeddings:
        raise ToolError(f"no clip of {args.name!r} could be read; nothing was enrolled.")
    generator = store.add(args.name, np.array(embeddings), taxonomy)
    path = store.save(folder)
    print(f"enrolled {len(embeddings)} clip(s) of {args.name!r} ({len(generator.embeddings)} in all) into {path}; "
          f"{len(store.generators)} generator(s) enrolled.", file=sys.stderr)
    if tracer.codec_identity is not None:  # the rule itself: the clips it would not name this generator for
        near_training = sum(tracer.attribution(np.array(e), {}).name != args.name for e in embeddings)
    if near_training:
        print(f"note: {near_training} of the clips lie close to the training codecs; clips like them are reported "
              "as those codecs, not as this generator.", file=sys.stderr)
    failures = len(problems) + len(files) - len(embeddings)
    return 1 if failures else 0


def _fit_identity(dataset: str, folder: Path) -> int:
    from .codec_identity import fit_codec_identity
    from .resolve import load_split

    identity = fit_codec_identity(load_split(dataset, *IDENTITY_SPLIT))
    path = identity.save(folder)
    print(f"codec identity of {len(identity.sources)} training sources written to {path}; generators enrolled "
          "before must be enrolled again.", file=sys.stderr)
    return 0


def describe(store: EnrolmentStore) -> str:
    """The enrolled generators as a table (or a line saying there are none)."""
    if not store.generators:
        return "no generators enrolled."
    lines = ["| generator | clips | " + " | ".join(t.upper() for t in TAXONOMY_TASKS) + " |",
             "|---|---|" + "---|" * len(TAXONOMY_TASKS)]
    for generator in store.generators.values():
        classes = " | ".join(generator.taxonomy.get(t, "?") for t in TAXONOMY_TASKS)
        lines.append(f"| {generator.name} | {len(generator.embeddings)} | {classes} |")
    return "\n".join(lines)
