#!/usr/bin/env bash
# Sets up a fresh machine for codectrace: system packages (FFmpeg for audio decoding, speech
# synthesizers for the offline corpus, Chromium for browser tests) and a virtual environment in .venv
# with the pinned stack (see ../shared/ENVIRONMENT.md for why these versions).
# Usage: bash scripts/setup.sh [--test]   (--test also installs the test tools)
set -euo pipefail
cd "$(dirname "$0")/.."

extra=""
[ "${1:-}" = "--test" ] && extra="[test]"

# Real recorded voices (speech_sources.real_speech.REAL_CORPORA; read where installed): ktuberling-data (the demo
# corpus's real speakers), Asterisk's voice prompts, gcin's syllables and KLettres' letters (set-ups the demo never
# trains on)
real_voices=(ktuberling-data gcin-voice klettres-data asterisk-core-sounds-{en,es,fr,it,ru}-wav)
apt_packages=(ffmpeg espeak-ng festival festvox-kallpc16k sox "${real_voices[@]}")
[ -n "$extra" ] && apt_packages+=(chromium)
missing=()
for pkg in "${apt_packages[@]}"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if [ "${#missing[@]}" -gt 0 ]; then
    echo "[setup] apt-get install ${missing[*]}"
    SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${missing[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
    echo "[setup] creating .venv"
    python3 -m venv .venv
fi
# torch 2.14.1 + torchaudio 2.11.0 are CUDA builds (the only pair that works together here, also on CPU):
# the environment takes about 6.6 GiB. Say so up front rather than let pip fail half-way with ENOSPC.
needed_gib=7
if ! .venv/bin/python -c "import torch" >/dev/null 2>&1; then
    free_kib=$(df -Pk .venv | awk 'NR == 2 {print $4}')
    if [ "$free_kib" -lt $((needed_gib * 1024 * 1024)) ]; then
        echo "[setup] error: installing the environment needs about ${needed_gib} GiB of free disk in $(pwd)/.venv;" \
             "only $((free_kib / 1024 / 1024)) GiB are free there. Free some space and run this again." >&2
        exit 1
    fi
fi
echo "[setup] pip install (torch 2.14.1 + torchaudio 2.11.0 + torchcodec 0.17.0, then the project)"
quiet_pip() {  # this machine's pip config lists absent mirror folders: drop that noise, keep real messages
    .venv/bin/pip install -q --disable-pip-version-check --no-cache-dir "$@" 2> >(grep -v "is ignored: it is neither" >&2)
}
quiet_pip torch==2.14.1 torchaudio==2.11.0 torchcodec==0.17.0
quiet_pip -e ".${extra}"
echo "[setup] done: $(.venv/bin/python -c 'import torch, transformers, datasets; print("torch", torch.__version__, "transformers", transformers.__version__, "datasets", datasets.__version__)')"
