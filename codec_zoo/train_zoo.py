"""Trains the CodecFake-mini codec zoo once, resumably, and exports fp16 safetensors next to this file.

    python -m codec_zoo.train_zoo [--work zoo_work] [--jobs 2] [--codecs NAME ...]

Stages: (1) the codecs' training speech (speech.py); (2) one encoder trunk per codec split (train,
validation, test), pre-trained as a quantised auto-encoder with an inverse-STFT decoder; (3) the time-domain
decoder bodies, each pre-trained on its split's trunk features; (4) each codec, initialised from its split's
trunk (frozen) and body, trained end to end with its own head, quantizer, decoder and auxiliary objective.
Every stage checkpoints (write, then rename) and a rerun continues where it stopped; finished codecs are
skipped. CPU seconds are counted per codec and stored in each file's metadata (the budget is 5 CPU-hours for
the zoo).
"""

from __future__ import annotations

import argparse
import multiprocessing
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from codectrace.errors import ToolArgumentParser, run_tool
from codectrace.files import atomic_path

from .losses import ReconstructionLoss
from .modules import TIME_BODIES, BodyPretrainer, NeuralCodec
from .specs import SPLIT_TRUNK_SEEDS, ZOO, CodecSpec, codecs_of, coverage_problems, zoo_by_name
from .speech import LABEL_HOP, PHONES, Utterance, load_training_speech, write_training_speech
from .store import WEIGHTS_DIR, read_metadata, save_codec, weights_path

CROP = 16000
CHECKPOINT_EVERY = 100
BODY_STEPS = 1200


def trunk_spec(split: str) -> CodecSpec:
    """The auto-encoder that pre-trains a split's encoder trunk (the training split's keeps its first name)."""
    name = "shared_trunk" if split == "train" else f"trunk_{split}"
    return CodecSpec(name, "sq", "none", "freq", seed=SPLIT_TRUNK_SEEDS[split], fsq_levels=(8, 8, 8, 8, 8, 8),
                     steps=500)


def _suffix(split: str) -> str:
    return "" if split == "train" else f"_{split}"  # the first zoo's file names stay valid for its trunk


class CropSampler:
    """Random one-second crops (offsets on the 80-sample grid) with speaker and phone labels."""

    def __init__(self, utterances: list[Utterance], seed: int, features: list[torch.Tensor] | None = None):
        keep = [i for i, u in enumerate(utterances) if len(u.audio) > CROP]
        self.utterances = [utterances[i] for i in keep]
        self.features = {id(utterances[i]): features[i] for i in keep} if features is not None else None
        self.labelled = [u for u in self.utterances if u.phones is not None]
        self.rng = np.random.default_rng(seed)

    def batch(self, size: int, hop: int, labelled_share: float = 0.0):
        n_labelled = int(round(size * labelled_share)) if self.labelled else 0
        picks = [self.labelled[i] for i in self.rng.integers(len(self.labelled), size=n_labelled)] if n_labelled else []
        picks += [self.utterances[i] for i in self.rng.integers(len(self.utterances), size=size - n_labelled)]
        audio, speakers, phones, features = [], [], [], []
        frames = -(-CROP // hop)
        for utt in picks:
            start = int(self.rng.integers((len(utt.audio) - CROP) // LABEL_HOP + 1)) * LABEL_HOP
            audio.append(utt.audio[start : start + CROP])
            if self.features is not None:
                window = self.features[id(utt)][:, start // LABEL_HOP : (start + CROP) // LABEL_HOP]
                short = CROP // LABEL_HOP - window.shape[-1]  # the utterance's last frame may be cut short
                features.append(F.pad(window[None], (0, short), mode="replicate")[0] if short else window)
            speakers.append(utt.speaker)
            if utt.phones is None:
                phones.append(np.full(frames, -100, dtype=np.int64))
            else:
                centres = np.minimum((start + np.arange(frames) * hop + hop // 2) // LABEL_HOP, len(utt.phones) - 1)
                phones.append(utt.phones[centres])
        return (torch.from_numpy(np.stack(audio)), torch.as_tensor(speakers), torch.from_numpy(np.stack(phones)),
                torch.stack(features) if features else None)


def _atomic_save(obj, path: Path) -> None:
    with atomic_path(path) as partial:
        torch.save(obj, partial)


def trunk_features(trunk_state: dict, utterances: list[Utterance]) -> list[torch.Tensor]:
    """The frozen shared trunk's features of every whole utterance (computed once, reused by every codec)."""
    from .modules import EncoderTrunk

    trunk = EncoderTrunk().eval()
    trunk.load_state_dict(trunk_state)
    with torch.inference_mode():
        return [trunk(torch.from_numpy(u.audio)[None])[0].clone() for u in utterances]


def train_codec(spec: CodecSpec, utterances: list[Utterance], num_speakers: int, work: Path,
                trunk_state: dict | None = None, features: list[torch.Tensor] | None = None,
                body_state: dict | None = None, model: torch.nn.Module | None = None
                ) -> tuple[torch.nn.Module, dict]:
    """Trains one codec (resuming from work/<name>/checkpoint.pt); returns the model and its training record.

    With `trunk_state` the shared trunk is loaded and frozen, and `features` (its output on every utterance)
    stand in for running it. `body_state` initialises a time-domain decoder's body. `model` trains another
    module with the same loop (the body pre-training).
    """
    from tqdm.auto import tqdm

    folder = work / spec.name
    folder.mkdir(parents=True, exist_ok=True)
    checkpoint_path = folder / "checkpoint.pt"
    torch.manual_seed(spec.seed)
    model = _model_to_train(spec, num_speakers, trunk_state, body_state, model)
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=spec.learning_rate, betas=(0.8, 0.99), weight_decay=1e-4)
    schedule = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: min(1.0, (s + 1) / 50) * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * s / spec.steps))))
    sampler = CropSampler(utterances, spec.seed, features)
    state = {"model": model, "optimizer": optimizer, "schedule": schedule, "sampler": sampler}
    record = _resume(checkpoint_path, state)
    reconstruction = ReconstructionLoss()
    model.train()
    bar = tqdm(total=spec.steps, initial=record["step"], desc=spec.name, unit="step", mininterval=10)
    window_losses: list[float] = []
    clock = time.process_time()
    while record["step"] < spec.steps:
        loss = _codec_loss(spec, model, sampler, reconstruction, record["step"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 5.0)
        optimizer.step()
        schedule.step()
        window_losses.append(float(loss.detach()))
        record["step"] += 1
        bar.update()
        if record["step"] % CHECKPOINT_EVERY == 0 or record["step"] == spec.steps:
            now = time.process_time()
            record["cpu_seconds"] += now - clock
            clock = now
            record["losses"].append([record["step"], float(np.mean(window_losses))])
            window_losses = []
            bar.set_postfix(loss=f"{record['losses'][-1][1]:.3f}")
            _save_checkpoint(checkpoint_path, state, record)
    bar.close()
    model.eval()
    return model, record


def _model_to_train(spec: CodecSpec, num_speakers: int, trunk_state: dict | None, body_state: dict | None,
                    model: torch.nn.Module | None) -> torch.nn.Module:
    """A new codec of `spec` (or the given module), with a frozen pre-trained trunk and a pre-trained body if given."""
    if model is None:
        model = NeuralCodec(spec, num_speakers=num_speakers, num_phones=len(PHONES))
    if trunk_state is not None and hasattr(model, "trunk"):
        model.trunk.load_state_dict(trunk_state)
        model.trunk.requires_grad_(False)
    if body_state is not None:
        model.decoder.body.load_state_dict(body_state)
    return model


def _resume(checkpoint_path: Path, state: dict) -> dict:
    """Loads a checkpoint into the model, optimizer, schedule, sampler and torch RNG; returns its training record
    (a fresh one where there is no checkpoint)."""
    if not checkpoint_path.exists():
        return {"step": 0, "cpu_seconds": 0.0, "losses": []}
    saved = torch.load(checkpoint_path, weights_only=False)
    for name in ("model", "optimizer", "schedule"):
        state[name].load_state_dict(saved[name])
    state["sampler"].rng.bit_generator.state = saved["rng"]
    torch.set_rng_state(saved["torch_rng"])
    return saved["record"]


def _save_checkpoint(checkpoint_path: Path, state: dict, record: dict) -> None:
    _atomic_save({"model": state["model"].state_dict(), "optimizer": state["optimizer"].state_dict(),
                  "schedule": state["schedule"].state_dict(), "rng": state["sampler"].rng.bit_generator.state,
                  "torch_rng": torch.get_rng_state(), "record": record}, checkpoint_path)


def _codec_loss(spec: CodecSpec, model, sampler: CropSampler, reconstruction, step: int) -> torch.Tensor:
    """One batch's training loss: reconstruction and commitment, plus the phone and speaker objectives the codec's
    auxiliary class asks for."""
    audio, speakers, phones, features_batch = sampler.batch(spec.batch_size, model.hop,
                                                            0.5 if spec.aux == "semantic" else 0.0)
    if spec.noise_augment > 0:  # recording-noise floor; the trunk then runs on the noisy input itself
        levels = torch.from_numpy(sampler.rng.uniform(0, spec.noise_augment, (len(audio), 1))).float()
        audio = audio + levels * torch.from_numpy(sampler.rng.standard_normal(audio.shape)).float()
        features_batch = None
    out = model(audio, reversal_weight=min(1.0, step / (0.3 * spec.steps)), trunk_features=features_batch)
    loss = reconstruction(out["audio"], audio) + out["commit_loss"]
    if "phone_logits" in out:
        frames = min(out["phone_logits"].shape[-1], phones.shape[-1])
        loss = loss + 0.5 * F.cross_entropy(out["phone_logits"][..., :frames], phones[:, :frames],
                                            ignore_index=-100)
    if "speaker_logits" in out:
        loss = loss + 0.2 * F.cross_entropy(out["speaker_logits"], speakers)
    return loss


def scaled(spec: CodecSpec, steps_scale: float) -> CodecSpec:
    return spec if steps_scale == 1.0 else replace(spec, steps=max(2, int(spec.steps * steps_scale)))


def trained_trunk(work: Path, utterances: list[Utterance], num_speakers: int, steps_scale: float = 1.0,
                  split: str = "train", weights_dir: Path = WEIGHTS_DIR) -> dict:
    """A split's encoder trunk, pre-trained once, then read from work/trunk[_<split>].pt: {"trunk", "record"}.

    When the work folder is gone but a codec of the split ships, its (frozen, fp16-stored) trunk is taken from
    the weights instead of training a new one, so codecs added later share their split's trunk.
    """
    path = work / f"trunk{_suffix(split)}.pt"
    if not path.exists():
        shipped = [s for s in codecs_of(split) if weights_path(s.name, weights_dir).is_file()]
        if shipped and steps_scale == 1.0:
            state, record = _shipped_trunk(weights_path(shipped[0].name, weights_dir))
        else:
            model, record = train_codec(scaled(trunk_spec(split), steps_scale), utterances, num_speakers, work)
            state = model.trunk.state_dict()
        _atomic_save({"trunk": state, "record": record}, path)
    return torch.load(path, weights_only=False)


def _shipped_trunk(path: Path) -> tuple[dict, dict]:
    from safetensors.torch import load_file

    _, record = read_metadata(path)
    state = {key[len("trunk."):]: value.float() for key, value in load_file(str(path)).items()
             if key.startswith("trunk.")}
    return state, {"cpu_seconds": record.get("shared_trunk_cpu_seconds", 0.0), "step": 0, "losses": [],
                   "from_weights": path.name}


def split_features(work: Path, split: str) -> list[torch.Tensor]:
    return torch.load(work / f"trunk_features{_suffix(split)}.pt", weights_only=False)


def body_spec(body: str, steps_scale: float = 1.0) -> CodecSpec:
    return scaled(CodecSpec(f"time_body_{body}", "sq", "none", "time", seed=TIME_BODIES[body]["seed"],
                            steps=BODY_STEPS, batch_size=6), steps_scale)


def _train_body(args: tuple[str, str, float]) -> str:
    """Worker: pre-trains one time-domain body on the trunk's features; saves work/body_<name>.pt."""
    body, work, steps_scale = args
    torch.set_num_threads(1)
    work_path = Path(work)
    path = work_path / f"body_{body}.pt"
    if not path.exists():
        utterances, speakers = load_training_speech(work_path / "speech")
        features = split_features(work_path, TIME_BODIES[body]["split"])
        spec = body_spec(body, steps_scale)
        torch.manual_seed(spec.seed)
        model, record = train_codec(spec, utterances, len(speakers), work_path, features=features,
                                    model=BodyPretrainer(body))
        _atomic_save({"body": model.body.state_dict(), "record": record}, path)
    return body


def prepare_work(work: Path, splits, weights_dir: Path = WEIGHTS_DIR, steps_scale: float = 1.0) -> None:
    """What training a split's codecs needs in `work`, each made once: the zoo's training speech, and per split its
    trunk (trained, or taken from its shipped codecs) and that trunk's features of every utterance."""
    work.mkdir(parents=True, exist_ok=True)
    if not (work / "speech").exists():
        write_training_speech(work / "speech")
    if not splits:
        return
    utterances, speakers = load_training_speech(work / "speech")
    for split in splits:
        trunk = trained_trunk(work, utterances, len(speakers), steps_scale, split, Path(weights_dir))
        path = work / f"trunk_features{_suffix(split)}.pt"
        if not path.exists():
            _atomic_save(trunk_features(trunk["trunk"], utterances), path)


def _prepare_trunk(args: tuple[str, str, str, float]) -> str:
    """Worker: `prepare_work` for one split."""
    split, work, weights_dir, steps_scale = args
    torch.set_num_threads(1)
    prepare_work(Path(work), [split], Path(weights_dir), steps_scale)
    return f"{split} trunk ready"


def _train_one(args: tuple[str, str, str, float]) -> str:
    name, work, weights_dir, steps_scale = args
    if name.startswith("body:"):  # bodies and codecs share one pool so no core idles between the stages
        return "time body " + _train_body((name[len("body:"):], work, steps_scale))
    torch.set_num_threads(1)
    work_path = Path(work)
    utterances, speakers = load_training_speech(work_path / "speech")
    spec = scaled(zoo_by_name()[name], steps_scale)
    trunk = torch.load(work_path / f"trunk{_suffix(spec.split)}.pt", weights_only=False)
    features = split_features(work_path, spec.split)
    body = torch.load(work_path / f"body_{spec.decoder_body}.pt", weights_only=False) if spec.dec == "time" else None
    model, record = train_codec(spec, utterances, len(speakers), work_path, trunk["trunk"], features,
                                body["body"] if body else None)
    shared = {"shared_trunk_cpu_seconds": round(trunk["record"]["cpu_seconds"], 1), "trunk_split": spec.split}
    if body:
        shared[f"shared_body_{spec.decoder_body}_cpu_seconds"] = round(body["record"]["cpu_seconds"], 1)
    save_codec(model, weights_path(name, weights_dir),
               {"steps": record["step"], "cpu_seconds": round(record["cpu_seconds"], 1),
                "loss_curve": record["losses"], "num_speakers": len(speakers), "num_phones": len(PHONES), **shared})
    return "exported " + name


def main(argv: list[str] | None = None) -> int:
    parser = ToolArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work", type=Path, default=Path("zoo_work"), help="checkpoints and training speech")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR)
    parser.add_argument("--jobs", type=int, default=2, help="codecs trained at once (one thread each)")
    parser.add_argument("--codecs", nargs="*", help="train only these (default: every codec not yet exported)")
    parser.add_argument("--steps-scale", type=float, default=1.0, help="scale every codec's steps (smoke runs)")
    args = parser.parse_args(argv)
    return run_tool(lambda: train_zoo(args))


def train_zoo(args) -> None:
    """Trains and exports every requested codec not yet exported (the command's body)."""
    problems = coverage_problems()
    if problems:
        raise ValueError("the zoo does not cover the taxonomy: " + "; ".join(problems))
    names = args.codecs or [s.name for s in ZOO]
    unknown = sorted(set(names) - set(zoo_by_name()))
    if unknown:
        raise ValueError(f"unknown codec(s) {unknown}; the zoo has: {', '.join(zoo_by_name())}")
    args.weights_dir.mkdir(parents=True, exist_ok=True)
    prepare_work(args.work, [], args.weights_dir)  # the training speech, before the processes that share it
    todo = [n for n in names if not weights_path(n, args.weights_dir).exists()]
    print(f"{len(names) - len(todo)} codecs already exported; training {len(todo)}: {', '.join(todo)}")
    if not todo:
        return
    specs = [zoo_by_name()[n] for n in todo]
    common = (str(args.work), str(args.weights_dir), args.steps_scale)
    bodies = [f"body:{b}" for b in sorted({s.decoder_body for s in specs if s.dec == "time"})]
    stages = [
        (_prepare_trunk, sorted({s.split for s in specs})),
        # the bodies, and the frequency-domain codecs (which need none) while the last bodies finish
        (_train_one, bodies + [s.name for s in specs if s.dec != "time"]),
        (_train_one, [s.name for s in specs if s.dec == "time"]),  # each waits for its body
    ]
    for worker, names_of_stage in stages:
        _run_stage(worker, [(name, *common) for name in names_of_stage], args.jobs)


def _run_stage(worker, jobs: list[tuple], processes: int) -> None:
    """Runs one stage's jobs, in `processes` spawned processes (one thread each) or here when that is 1."""
    if processes <= 1:
        for job in jobs:
            print(worker(job), flush=True)
        return
    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        for done in pool.imap_unordered(worker, jobs):
            print(done, flush=True)


if __name__ == "__main__":
    raise SystemExit(main())
