"""Does more training make a zoo codec's quantizer shape its sound? Three matched codecs trained on, measured.

    python -m research.zoo_learning_curve [--codecs rvq4x1024_f100 svq2048_f100 fsq4_f100] [--extra-steps 2100]
                                            [--out docs/research/zoo_learning_curve.md]

`zoo_class_traces.py` found that in the shipped zoo bitrate does not buy fidelity: multi-codebook codecs carry 3-4x
the bits of the others and re-synthesise no better, so the quantizer class leaves no trace a tracer could carry to
unseen codecs, and the codecs were still learning when their step budgets ended. This asks whether that is a matter
of training length: each named codec is trained `--extra-steps` more steps from its shipped weights
(`continue_codec` below: frozen trunk, fresh optimizer, the zoo's schedule over the extra steps), and
its held-out re-synthesis quality (log-mel L1 on the test speakers' speech with the corpus's noise floor, as
`codec_zoo.quality` measures it) is compared with the shipped codec's. The default trio shares everything a
taxonomy class does not need to change (training split, no auxiliary objective, frequency-domain decoder, 100 frames
per second) and differs in quantizer and so bitrate: if longer training lets bits buy fidelity, the multi-codebook
codec should pull ahead. The shipped weights and the corpus are not touched; the continued codecs stay in
`<work>/learning_curve`. Costs zoo CPU time (counted against #15's 5 CPU-hour zoo budget; printed).
"""

from __future__ import annotations

import argparse
import multiprocessing
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch

from codec_zoo.quality import held_out_speech, mean_log_mel_l1
from codec_zoo.specs import zoo_by_name
from codec_zoo.speech import Utterance, load_training_speech
from codec_zoo.store import load_codec, read_metadata, save_codec, weights_path
from codec_zoo.train_zoo import prepare_work, split_features, train_codec
from codectrace.files import atomic_path, print_report
from codectrace.machine import cpu_summary

ROOT = Path(__file__).resolve().parents[1]
MATCHED_TRIO = ("rvq4x1024_f100", "svq2048_f100", "fsq4_f100")


def continue_codec(weights: Path, extra_steps: int, utterances: list[Utterance], num_speakers: int,
                   features: list[torch.Tensor], out_work: Path) -> tuple[torch.nn.Module, dict]:
    """A shipped codec (its .safetensors file) trained `extra_steps` more steps: its own spec, its trunk frozen, a
    fresh optimizer and the zoo's schedule (warm-up, cosine) over the extra steps, on `utterances` and their trunk
    `features`. Checkpoints in `out_work/<name>` (resumable); the shipped file is not touched."""
    if extra_steps < 1:
        raise ValueError(f"extra_steps counts training steps (>= 1), got {extra_steps}.")
    model = load_codec(weights)
    return train_codec(replace(model.spec, steps=extra_steps), utterances, num_speakers, out_work,
                       model.trunk.state_dict(), features, model=model)

def _continue(job: tuple[str, int, str]) -> str:
    """Worker (one thread): trains one codec on and saves it as `<work>/learning_curve/<name>.safetensors`."""
    name, extra_steps, work = job
    torch.set_num_threads(1)
    out_work = Path(work) / "learning_curve"
    utterances, speakers = load_training_speech(Path(work) / "speech")
    features = split_features(Path(work), zoo_by_name()[name].split)
    model, record = continue_codec(weights_path(name), extra_steps, utterances, len(speakers), features, out_work)
    _, shipped = read_metadata(weights_path(name))
    save_codec(model, out_work / f"{name}.safetensors",
               {**shipped, "extra_steps": record["step"], "extra_cpu_seconds": round(record["cpu_seconds"], 1),
                "extra_loss_curve": record["losses"]})
    return name


def compare(names: list[str], work: Path, speech: list[np.ndarray]) -> list[dict]:
    """Per codec: its taxonomy, bitrate, steps and held-out log-mel L1 before and after the extra training."""
    rows = []
    for name in names:
        spec = zoo_by_name()[name]
        continued = work / "learning_curve" / f"{name}.safetensors"
        _, record = read_metadata(continued)
        rows.append({"codec": name, "vq": spec.vq, "aux": spec.aux, "dec": spec.dec, "bitrate": round(spec.bitrate),
                     "steps": record["steps"], "extra_steps": record["extra_steps"],
                     "extra_cpu_minutes": record["extra_cpu_seconds"] / 60,
                     "before": mean_log_mel_l1(load_codec(name), speech),
                     "after": mean_log_mel_l1(load_codec(continued), speech),
                     "loss_curve": record["loss_curve"], "extra_loss_curve": record["extra_loss_curve"]})
    return rows


def markdown(rows: list[dict], utterances: int) -> str:
    lines = [f"Held-out log-mel L1 (test speakers, {utterances} utterances each, with the corpus's noise floor; lower "
             f"is better) of each codec as shipped and after more training; trained on {cpu_summary()}, one thread "
             "per codec.", "",
             "| codec | VQ | AUX | DEC | bitrate (bps) | steps shipped | extra steps | extra CPU min | log-mel L1 "
             "shipped | after | change |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['codec']} | {r['vq']} | {r['aux']} | {r['dec']} | {r['bitrate']} | {r['steps']} | "
                     f"{r['extra_steps']} | {r['extra_cpu_minutes']:.1f} | {r['before']:.3f} | {r['after']:.3f} | "
                     f"{r['after'] - r['before']:+.3f} |")
    total = sum(r["extra_cpu_minutes"] for r in rows)
    lines += ["", f"Zoo CPU time spent here: {total:.1f} CPU-min.", "",
              "![training loss of each codec, shipped steps then the extra ones](zoo_learning_curve.png)"]
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    """Training loss against step: the shipped run, then the extra steps after it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4))
    for r in rows:
        steps, losses = zip(*(r["loss_curve"] + [[r["steps"] + s, v] for s, v in r["extra_loss_curve"]]))
        axis.plot(steps, losses, label=f"{r['codec']} ({r['vq']}, {r['bitrate']} bps)")
        axis.axvline(r["steps"], color="grey", linestyle=":", linewidth=0.8)
    axis.set_xlabel("training step (dotted: where the shipped codec stopped)")
    axis.set_ylabel("training loss (mean of 100 steps)")
    axis.legend(fontsize=8)
    figure.tight_layout()
    with atomic_path(path) as partial:
        figure.savefig(partial, dpi=90, format="png")
    plt.close(figure)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--codecs", nargs="+", default=list(MATCHED_TRIO), help="shipped zoo codecs to train on")
    parser.add_argument("--extra-steps", type=int, default=2100, help="more training steps per codec")
    parser.add_argument("--work", type=Path, default=ROOT / "zoo_work",
                        help="the zoo's work folder (its training speech and trunk features, made if missing)")
    parser.add_argument("--jobs", type=int, default=2, help="codecs trained at once (one thread each)")
    parser.add_argument("--utterances", type=int, default=8, help="held-out utterances per test speaker")
    parser.add_argument("--out", type=Path, help="also write the table (and the loss plot beside it)")
    args = parser.parse_args(argv)
    unknown = sorted(set(args.codecs) - set(zoo_by_name()))
    if unknown:
        parser.error(f"unknown codec(s) {unknown}; the zoo has: {', '.join(zoo_by_name())}")
    if args.extra_steps < 1 or args.jobs < 1 or args.utterances < 1:
        parser.error("--extra-steps, --jobs and --utterances count steps, processes and utterances (>= 1 each)")
    prepare_work(args.work, sorted({zoo_by_name()[name].split for name in args.codecs}))
    jobs = [(name, args.extra_steps, str(args.work)) for name in args.codecs]
    with multiprocessing.get_context("spawn").Pool(min(args.jobs, len(jobs))) as pool:
        for done in pool.imap_unordered(_continue, jobs):
            print(f"trained on: {done}", flush=True)
    rows = compare(args.codecs, args.work, held_out_speech(args.utterances))
    print_report(markdown(rows, args.utterances), args.out)
    if args.out:
        plot(rows, args.out.with_suffix(".png"))


if __name__ == "__main__":
    main()
