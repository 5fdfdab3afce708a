"""What in a real recording set-up makes the demo call it spoof? Interventions on KLettres' language folders.

    python -m research.unfamiliar_setups --model outputs/demo-M1 [MODEL ...] [--clips 30]
        [--out docs/research/unfamiliar_setups]

KLettres (spoken letters, one recording set-up per language) is the real-speech corpus the demo calls spoof most
often, and its false alarms sit in a few language folders. Per folder, a seeded sample of clips is traced as
recorded and after one change at a time, each undoing one property those folders share (measured on their files:
low-bitrate Ogg Vorbis, long stretches of near-digital silence, little energy above 4 kHz):

- `as recorded`;
- `trimmed`: leading and trailing stretches quieter than 40 dB under the clip's peak cut off;
- `noise floor`: white noise 60 dB under full scale added (the floor of a room and a microphone);
- `vorbis re-encoded`: Ogg Vorbis at its lowest quality at the file's own rate (what the suspect folders are),
  decoded back;
- `trimmed at 30 dB`: the same cut, 30 dB under the peak (what is left of a letter's quiet decay after the
  pipeline's own 50-dB cut goes too);
- `high-pass 100 Hz`, `high-pass 150 Hz`: a 4th-order Butterworth high-pass (rumble and the lowest voice band
  removed).

A change that moves a folder's share called spoof says the model reads that property; nothing here trains or
chooses anything. Writes PREFIX.md (a table) and PREFIX.json.
"""

from __future__ import annotations

import argparse
import io
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from codectrace.files import write_json, write_text
from codectrace.hub import load_tracer
from codectrace.machine import cpu_summary
from speech_sources.real_speech import REAL_CORPORA

FOLDERS = ("knds", "kuk", "kfr", "kde", "kit", "kcs", "kru", "kes")
TRIM_DB = 40.0
NOISE_FLOOR_DBFS = -60.0


def trimmed(x: np.ndarray, rate: int, trim_db: float = TRIM_DB) -> np.ndarray:
    loud = np.flatnonzero(np.abs(x) >= np.abs(x).max() * 10 ** (-trim_db / 20))
    return x[loud[0]:loud[-1] + 1] if len(loud) else x


def noise_floor(x: np.ndarray, rate: int) -> np.ndarray:
    rng = np.random.default_rng(len(x))
    return (x + 10 ** (NOISE_FLOOR_DBFS / 20) * rng.standard_normal(len(x))).astype(np.float32)


def vorbis_reencoded(x: np.ndarray, rate: int) -> np.ndarray:
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(x, -1, 1), rate, format="OGG", subtype="VORBIS", compression_level=1.0)
    buffer.seek(0)
    return sf.read(buffer, dtype="float32")[0]


def high_passed(cutoff_hz: float):
    def change(x: np.ndarray, rate: int) -> np.ndarray:
        from scipy.signal import butter, sosfilt

        return sosfilt(butter(4, cutoff_hz, "highpass", fs=rate, output="sos"), x).astype(np.float32)
    return change


CHANGES = {"as recorded": lambda x, rate: x, "trimmed": trimmed, "noise floor": noise_floor,
           "vorbis re-encoded": vorbis_reencoded, "trimmed at 30 dB": lambda x, rate: trimmed(x, rate, 30.0),
           "high-pass 100 Hz": high_passed(100.0), "high-pass 150 Hz": high_passed(150.0)}


def folder_rates(tracer, files: list[Path]) -> dict[str, float]:
    """Per change, the share of `files` called spoof."""
    spoof = dict.fromkeys(CHANGES, 0)
    for path in files:
        x, rate = sf.read(path, dtype="float32", always_2d=True)
        x = x.mean(axis=1)
        for name, change in CHANGES.items():
            spoof[name] += tracer(change(x, rate), sampling_rate=rate)["decision"] == "spoof"
    return {name: count / len(files) for name, count in spoof.items()}


def model_rates(model: str, clips: int) -> dict[str, dict[str, float]]:
    """Per folder, per change, the share of a seeded sample of `clips` clips that `model` calls spoof."""
    tracer = load_tracer(model)
    speakers = REAL_CORPORA["klettres"].speakers()
    rng = np.random.default_rng(0)
    rates = {}
    for folder in tqdm(FOLDERS, desc=f"folders ({model})"):
        files = speakers[folder]
        picked = sorted(rng.choice(len(files), min(clips, len(files)), replace=False))
        rates[folder] = folder_rates(tracer, [files[i] for i in picked])
    return rates


def markdown(rates: dict[str, dict], clips: int) -> str:
    lines = ["# KLettres' set-ups: what makes the demo call them spoof (`python -m research.unfamiliar_setups`)", "",
             "Each KLettres language folder's clips traced as recorded and after one change at a time (the probe's "
             "docstring says what each does); share called spoof. The reading is in "
             "[../real_voices.md](../real_voices.md#what-is-missing-issue-30-stays-open).", "",
             f"{cpu_summary()}; {clips} clips per folder (at most; a seeded sample). A model whose config trims "
             "silence (`trim_silence_db`) trims every changed clip too."]
    for model, per_folder in rates.items():
        lines += ["", f"Model `{model}`:", "", "| folder | " + " | ".join(CHANGES) + " |",
                  "|---" * (len(CHANGES) + 1) + "|"]
        lines += [f"| {folder} | " + " | ".join(f"{100 * r[c]:.0f}%" for c in CHANGES) + " |"
                  for folder, r in per_folder.items()]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", nargs="+", required=True)
    parser.add_argument("--clips", type=int, default=30, help="per folder, a seeded sample")
    parser.add_argument("--out", type=Path, default=Path("docs/research/unfamiliar_setups"))
    args = parser.parse_args()

    rates = {model: model_rates(model, args.clips) for model in args.model}
    text = markdown(rates, args.clips)
    write_text(args.out.with_suffix(".md"), text)
    write_json(args.out.with_suffix(".json"), {"models": args.model, "cpu": cpu_summary(), "rates": rates})
    print(text)


if __name__ == "__main__":
    main()
