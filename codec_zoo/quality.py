"""Quality of every shipped codec on held-out speech: a table (markdown + JSON) and a spectrogram figure.

    python -m codec_zoo.quality [--out docs] [--utterances 8]

Held-out speech: the CodecFake-mini test speakers (seed 0 corpus; sentences and synthesizer settings the codecs
never trained on), with the corpus's -60 dBFS recording-noise floor (`mini_speech.NOISE_FLOOR`).
The measure is log-mel L1 (n_fft 1024, hop 256, 80 mels, natural log, floor 1e-5); a codec
"works" when it beats 4-bit mu-law companding of the same audio. 8-bit mu-law is shown for scale.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import torch

from codectrace.files import atomic_path, write_json, write_text

from .losses import log_mel_l1, mu_law_roundtrip
from .specs import ZOO
from .store import WEIGHTS_DIR, load_codec, read_metadata, weights_path


def held_out_speech(utterances: int = 8, seed: int = 0, noise_floor: float | None = None) -> list[np.ndarray]:
    """The test speakers' utterances of the seed-`seed` CodecFake-mini speech corpus (its noise floor by default)."""
    from codectrace.audio import load_audio
    from speech_sources import mini_speech

    with tempfile.TemporaryDirectory() as work:
        floor = mini_speech.NOISE_FLOOR if noise_floor is None else noise_floor
        corpus = mini_speech.write_corpus(Path(work) / "speech", 24, utterances, seed, noise_floor=floor)
        meta = json.loads((corpus / "speakers.json").read_text())
        return [load_audio(path).astype(np.float32) for speaker in meta["splits"]["test"]
                for path in sorted((corpus / speaker).glob("*.wav"))]


def mean_log_mel_l1(codec, speech: list[np.ndarray]) -> float:
    """The quality measure: mean log-mel L1 between each clip and the codec's re-synthesis of it."""
    with torch.inference_mode():
        return float(np.mean([log_mel_l1(codec.resynthesize(torch.from_numpy(x)), x) for x in speech]))


def measure(speech: list[np.ndarray], weights_dir: Path = WEIGHTS_DIR,
            clean_speech: list[np.ndarray] | None = None) -> dict:
    """Codec name -> quality and facts; plus the mu-law baselines. `clean_speech` adds `log_mel_l1_clean`."""
    results = {}
    for bits in (4, 8):
        results[f"mu-law {bits}-bit"] = {"log_mel_l1": float(np.mean([log_mel_l1(mu_law_roundtrip(x, bits), x)
                                                                       for x in speech]))}
        if clean_speech:
            results[f"mu-law {bits}-bit"]["log_mel_l1_clean"] = float(np.mean(
                [log_mel_l1(mu_law_roundtrip(x, bits), x) for x in clean_speech]))
    from tqdm.auto import tqdm

    for spec in tqdm(ZOO, desc="codec quality", unit="codec"):
        path = weights_path(spec.name, weights_dir)
        codec = load_codec(path)
        _, record = read_metadata(path)
        results[spec.name] = {
            "log_mel_l1": mean_log_mel_l1(codec, speech), "split": spec.split, "vq": spec.vq, "aux": spec.aux,
            "dec": spec.dec, "frame_rate": round(spec.frame_rate, 1), "bitrate": round(spec.bitrate),
            "parameters": sum(p.numel() for p in codec.parameters()), "file_bytes": path.stat().st_size,
            "steps": record["steps"], "cpu_minutes": round(record["cpu_seconds"] / 60, 1),
        }
        if clean_speech:
            results[spec.name]["log_mel_l1_clean"] = mean_log_mel_l1(codec, clean_speech)
    return results


def _clean(result: dict) -> str:
    return f"{result['log_mel_l1_clean']:.3f}" if "log_mel_l1_clean" in result else "-"


def markdown_table(results: dict) -> str:
    bar = results["mu-law 4-bit"]["log_mel_l1"]
    lines = ["| codec | set | VQ | AUX | DEC | frame rate (Hz) | bitrate (bps) | parameters | file (MB) | steps | "
             "CPU min | log-mel L1 | beats 4-bit mu-law | log-mel L1, no noise floor |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, r in results.items():
        if name.startswith("mu-law"):
            continue
        lines.append(f"| {name} | {r['split']} | {r['vq']} | {r['aux']} | {r['dec']} | "
                     f"{r['frame_rate']} | {r['bitrate']} | {r['parameters'] / 1e6:.2f} M | "
                     f"{r['file_bytes'] / 1e6:.2f} | {r['steps']} | {r['cpu_minutes']} | {r['log_mel_l1']:.3f} | "
                     f"{'yes' if r['log_mel_l1'] < bar else 'NO'} | {_clean(r)} |")
    for name in ("mu-law 4-bit", "mu-law 8-bit"):
        lines.append(f"| {name} (reference) | | | | | | | | | | | {results[name]['log_mel_l1']:.3f} | | "
                     f"{_clean(results[name])} |")
    return "\n".join(lines) + "\n"


def spectrogram_figure(speech: np.ndarray, path: Path, weights_dir: Path = WEIGHTS_DIR) -> Path:
    """Log-mel spectrograms of one held-out utterance: original, 4-bit mu-law and every codec."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from .losses import LogMel

    mel = LogMel()
    panels = [("original", speech), ("mu-law 4-bit", mu_law_roundtrip(speech, 4).numpy())]
    for spec in ZOO:
        codec = load_codec(spec.name, weights_dir)
        audio = codec.resynthesize(torch.from_numpy(speech)).numpy()
        where = "" if spec.split == "train" else f", {spec.split}"
        panels.append((f"{spec.name} ({spec.vq}/{spec.aux}/{spec.dec}{where})", audio))
    columns = 4
    rows = -(-len(panels) // columns)
    figure, axes = plt.subplots(rows, columns, figsize=(4 * columns, 2.4 * rows), sharex=True, sharey=True)
    for axis, (title, audio) in zip(axes.flat, panels):
        with torch.inference_mode():
            image = mel(torch.as_tensor(audio, dtype=torch.float32)).numpy()
        axis.imshow(image, origin="lower", aspect="auto", vmin=-11, vmax=3, cmap="magma")
        axis.set_title(title, fontsize=8)
    for axis in list(axes.flat)[len(panels):]:
        axis.axis("off")
    figure.supxlabel("frame (16 ms)")
    figure.supylabel("mel bin")
    figure.tight_layout()
    with atomic_path(path) as partial:
        # 60 dpi JPEG: the 32 panels of noisy spectrograms stay under 300 KB (docs images are kept small).
        figure.savefig(partial, dpi=60, format=path.suffix.lstrip("."), pil_kwargs={"quality": 80, "optimize": True})
    plt.close(figure)
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path("docs"))
    parser.add_argument("--utterances", type=int, default=8, help="per test speaker (3 speakers)")
    parser.add_argument("--weights-dir", type=Path, default=WEIGHTS_DIR, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    speech = held_out_speech(args.utterances)
    results = measure(speech, args.weights_dir, clean_speech=held_out_speech(args.utterances, noise_floor=0.0))
    args.out.mkdir(parents=True, exist_ok=True)
    write_json(args.out / "codec_zoo_quality.json", results)
    table = markdown_table(results)
    write_text(args.out / "codec_zoo_quality.md", table)
    spectrogram_figure(speech[0], args.out / "codec_zoo_spectrograms.jpg", args.weights_dir)
    print(table)


if __name__ == "__main__":
    main()
