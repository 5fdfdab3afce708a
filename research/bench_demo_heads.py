"""Which backbone front end and which heads learn CodecFake-mini's codec classes within a CPU budget?

    python -m research.bench_demo_heads                # 7 configurations x 150 s each, 2 threads
    python -m research.bench_demo_heads --only "filterbank-tiny + stats" stft   # the four stats-pooling front ends
    python -m research.bench_demo_heads --seconds 300 --out benchmarks/demo_heads.json

Each configuration is a `CodecTraceForSourceTracing` (M1) trained from scratch with the demo recipe (AdamW 1e-3,
batch 16, random 2-s windows of the `aux` training sampling) for the same wall-clock budget, then scored on the
validation split (first 2-s window). It reports steps per second and validation macro-F1 per task, so the demo
preset's choice (statistics-pooling heads on a weighted layer sum, over a small front end) is a measured one.
Validation holds the training codecs only: which front end carries the decoder domain over to *unseen* codecs is
measured by benchmarks/demo_seeds.py and research/decoder_domain_cues.py.
Needs the demo corpus: run `python train.py` once (or `python -m dataset_scripts.build_codecfake_mini`).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from sklearn.metrics import f1_score
from tqdm.auto import tqdm

import modeling_codectrace as mc
from codectrace.audio import load_audio
from codectrace.data import crop_window
from codectrace.files import write_json
from codectrace.presets import AASIST_SIZES, BACKBONE_SIZES, DEMO_DATASET_DIR, backbone_config
from modeling_codectrace.configuration_codectrace import xlsr_300m_backbone_config

# The second demo's backbone, which the product no longer offers: a learned 25-ms filterbank (400-tap conv, 10-ms
# hop) and a 2x conv to 50 Hz frames under a 2-layer, 32-wide transformer.
PROBE_SIZES = {
    "filterbank-tiny": dict(
        hidden_size=32, num_hidden_layers=2, num_attention_heads=2, intermediate_size=64,
        conv_dim=(128, 128), conv_kernel=(400, 2), conv_stride=(160, 2),
        num_conv_pos_embeddings=16, num_conv_pos_embedding_groups=2,
        hidden_dropout=0.0, attention_dropout=0.0, feat_proj_dropout=0.0,
    ),
}


def probe_backbone(name: str):
    return backbone_config(name) if name in BACKBONE_SIZES else xlsr_300m_backbone_config(**PROBE_SIZES[name])


TASKS = ("bin", "vq", "aux", "dec")
CONFIGURATIONS = {
    "small waveform conv + tiny AASIST (previous demo)": dict(backbone="small", head_type="aasist", wls=False),
    "filterbank-tiny + tiny AASIST": dict(backbone="filterbank-tiny", head_type="aasist", wls=False),
    "small waveform conv + stats pooling, layer sum": dict(backbone="small", head_type="stats_pooling", wls=True),
    "filterbank-tiny + stats pooling, layer sum (second demo)": dict(
        backbone="filterbank-tiny", head_type="stats_pooling", wls=True),
    "stft-tiny, log power + phase deviation + stats pooling, layer sum": dict(
        backbone="stft-tiny", head_type="stats_pooling", wls=True, stft_features=("log_power", "phase_deviation")),
    "stft-tiny, phase deviation + stats pooling, layer sum": dict(
        backbone="stft-tiny", head_type="stats_pooling", wls=True, stft_features=("phase_deviation",)),
    "stft-tiny, phase deviation + energy-weighted + stats pooling, layer sum (demo)": dict(
        backbone="stft-tiny", head_type="stats_pooling", wls=True,
        stft_features=("phase_deviation", "weighted_phase_deviation")),
}


def load_rows(dataset: str, config: str, split: str) -> tuple[list[np.ndarray], dict[str, np.ndarray]]:
    from codectrace.resolve import load_split

    rows = load_split(dataset, config, split, None, None)
    waveforms = [load_audio(a).astype(np.float32) for a in tqdm(rows["audio"], desc=f"decoding {split}")]
    return waveforms, {task: np.asarray(rows[task]) for task in TASKS}


def build(backbone: str, head_type: str, wls: bool, chunk: int,
          stft_features: tuple[str, ...] | None = None) -> mc.CodecTraceForSourceTracing:
    aasist = AASIST_SIZES["tiny"] if head_type == "aasist" else {}
    front_end = dict(feature_encoder="stft_phase", stft_features=list(stft_features)) if stft_features else {}
    config = mc.CodecTraceConfig(
        backbone_config=probe_backbone(backbone), variant="M1", chunk_samples=chunk,
        head_type=head_type, use_weighted_layer_sum=wls, **front_end, **aasist)
    return mc.CodecTraceForSourceTracing(config)


def validation_f1(model, inputs: torch.Tensor, labels: dict[str, np.ndarray]) -> dict[str, float]:
    model.eval()
    predictions = {task: [] for task in TASKS}
    with torch.inference_mode():
        for start in range(0, len(inputs), 32):
            output = model(inputs[start : start + 32])
            for task in TASKS:
                predictions[task].append(output.logits_for(task).argmax(-1).numpy())
    return {task: float(f1_score(labels[task], np.concatenate(predictions[task]), average="macro"))
            for task in TASKS}


def train_for(model, waveforms, labels, seconds: float, chunk: int, seed: int) -> int:
    rng = np.random.default_rng(seed)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=1e-2)
    steps, start = 0, time.perf_counter()
    with tqdm(total=round(seconds), desc="training (s)", leave=False) as bar:
        while time.perf_counter() - start < seconds:
            model.train()
            index = rng.choice(len(waveforms), 16, replace=False)
            batch = torch.from_numpy(np.stack([crop_window(waveforms[i], chunk, "random", rng) for i in index]))
            loss = model(batch, **{f"{t}_labels": torch.from_numpy(labels[t][index]) for t in TASKS}).loss
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            steps += 1
            bar.update(round(time.perf_counter() - start) - bar.n)
    return steps


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", default=str(DEMO_DATASET_DIR))
    parser.add_argument("--seconds", type=float, default=150.0, help="training budget per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=32000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None, help="also write the results as JSON")
    parser.add_argument("--only", nargs="+", metavar="TEXT",
                        help="run only the configurations whose name contains one of these texts")
    args = parser.parse_args(argv)
    chosen = {name: settings for name, settings in CONFIGURATIONS.items()
              if not args.only or any(text in name for text in args.only)}
    if not chosen:
        parser.error(f"--only matches none of: {'; '.join(CONFIGURATIONS)}")
    if not Path(args.dataset).exists():
        parser.error(f"{args.dataset} does not exist; build the demo corpus first (python train.py)")
    torch.set_num_threads(args.threads)

    train_waveforms, train_labels = load_rows(args.dataset, "aux", "train")
    val_waveforms, val_labels = load_rows(args.dataset, "aux", "validation")
    val_inputs = torch.from_numpy(np.stack([crop_window(w, args.chunk, "first") for w in val_waveforms]))

    results = []
    for name, settings in chosen.items():
        torch.manual_seed(args.seed)
        model = build(chunk=args.chunk, **settings)
        steps = train_for(model, train_waveforms, train_labels, args.seconds, args.chunk, args.seed)
        f1 = validation_f1(model, val_inputs, val_labels)
        results.append({"configuration": name, "parameters": sum(p.numel() for p in model.parameters()),
                        "steps": steps, "steps_per_s": steps / args.seconds, **{f"{t}_f1": f1[t] for t in TASKS}})
        print(f"{name}: {steps} steps, " + ", ".join(f"{t} {f1[t]:.3f}" for t in TASKS), flush=True)

    print(f"\nValidation macro-F1 after {args.seconds:g} s of training ({args.threads} threads), CodecFake-mini:\n")
    print("| configuration | parameters | steps/s | BIN | VQ | AUX | DEC |")
    print("|---|---|---|---|---|---|---|")
    for r in results:
        print(f"| {r['configuration']} | {r['parameters'] / 1e3:.0f} k | {r['steps_per_s']:.2f} | {r['bin_f1']:.3f} | "
              f"{r['vq_f1']:.3f} | {r['aux_f1']:.3f} | {r['dec_f1']:.3f} |")
    if args.out:
        write_json(args.out, {"seconds": args.seconds, "threads": args.threads, "results": results})


if __name__ == "__main__":
    main()
