"""The CodecFake-mini codec zoo: 14 small codecs whose taxonomy classes we control.

Every class of every task (VQ mvq / svq / sq, AUX none / semantic / disentangle, DEC time / freq) has at least
two codecs among the training codecs (re-synthesise the corpus like CoRS) and at least one *different* codec
among the held-out codecs (the out-of-domain set, like CoSG). Instances differ in seed, frame rate, code size,
codebook sizes and decoder shape, so a tracer has to learn classes, not one codec per class.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

from dataset_scripts.protocols import LABEL_SPELLINGS
from modeling_codectrace.configuration_codectrace import TASK_LABELS

from .modules import ENCODER_HOP

# The codec classes of each taxonomy task (every label but `real`), in label order.
CODEC_CLASSES: dict[str, tuple[str, ...]] = {
    task: tuple(label for label in TASK_LABELS[task] if label != "real") for task in ("vq", "aux", "dec")
}


@dataclass(frozen=True)
class CodecSpec:
    """One codec of the zoo.

    name (`str`): the codec's name in file ids (`<speaker>_<NNN>_<name>`) or its held-out system folder.
    vq / aux / dec (`str`): the taxonomy classes (`mvq|svq|sq`, `none|semantic|disentangle`, `time|freq`).
    heldout (`bool`): True for the out-of-domain codecs (never seen in training).
    seed (`int`): initialisation and data-order seed.
    head_stride (`int`): last encoder stride; frame rate = 16000 / (80 * head_stride) Hz.
    code_dim (`int`): size of the latent the quantizer sees.
    codebook_size (`int`) / levels (`int`): VQ codebook entries and residual levels (mvq), entries (svq).
    fsq_levels (`tuple`): levels per dimension of the scalar quantizer (sq).
    decoder_body (`str`): the pre-trained time-domain body a time decoder starts from (`modules.TIME_BODIES`).
    decoder_channels / decoder_blocks (`int`): decoder (head) width and depth.
    n_fft / istft_upsample (`int`): inverse-STFT size and the frame-rate increase before it (freq decoders).
    steps (`int`): training steps (batch of `batch_size` one-second crops).
    noise_augment (`float`): when > 0, each crop gets a Gaussian noise floor of std uniform in [0, value] (input
        and target), with the trunk run live on it; used to fine-tune a codec that failed on noisy speech.
    """

    name: str
    vq: str
    aux: str
    dec: str
    heldout: bool = False
    seed: int = 0
    head_stride: int = 2
    code_dim: int = 64
    codebook_size: int = 1024
    levels: int = 1
    fsq_levels: tuple[int, ...] = (8, 5, 5, 5)
    decoder_body: str = ""
    decoder_channels: int = 160
    decoder_blocks: int = 3
    n_fft: int = 640
    istft_upsample: int = 1
    steps: int = 1200
    batch_size: int = 8
    learning_rate: float = 2e-3
    noise_augment: float = 0.0
    extra: dict = field(default_factory=dict, compare=False)

    @property
    def hop(self) -> int:
        return ENCODER_HOP * self.head_stride

    @property
    def decoder_strides(self) -> tuple[int, ...]:
        """Upsampling strides from the frame rate to 16 kHz (time-domain decoders; empty otherwise)."""
        from .modules import TIME_BODIES

        return (self.head_stride, *TIME_BODIES[self.decoder_body]["strides"]) if self.dec == "time" else ()

    @property
    def frame_rate(self) -> float:
        return 16000 / self.hop

    @property
    def bitrate(self) -> float:
        """Bits per second carried by the codes."""
        import math

        if self.vq == "sq":
            bits = sum(math.log2(level) for level in self.fsq_levels)
        else:
            bits = self.levels * math.log2(self.codebook_size)
        return bits * self.frame_rate

    def protocol_taxonomy(self) -> tuple[str, str, str]:
        """(AUX, DEC, VQ) in the official protocol spelling."""
        return (LABEL_SPELLINGS["aux"][self.aux], LABEL_SPELLINGS["dec"][self.dec], LABEL_SPELLINGS["vq"][self.vq])

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> CodecSpec:
        data = dict(data)
        data["fsq_levels"] = tuple(data.get("fsq_levels", ()))
        data.pop("decoder_strides", None)  # stored by early files; now derived from the body
        return cls(**data)


TIME_STEPS = 500
FREQ_STEPS = 700

ZOO: tuple[CodecSpec, ...] = (
    # -- training codecs (re-synthesise the corpus, like CoRS) --
    CodecSpec("rvq4x512_t100", "mvq", "none", "time", seed=1, levels=4, codebook_size=512,
              decoder_body="a", decoder_channels=160, steps=TIME_STEPS, batch_size=6),
    CodecSpec("svq4096_sem_t100", "svq", "semantic", "time", seed=2, codebook_size=4096,
              decoder_body="c", decoder_channels=128, steps=TIME_STEPS, batch_size=6),
    CodecSpec("fsq6_dis_t67", "sq", "disentangle", "time", seed=3, head_stride=3, fsq_levels=(8, 8, 8, 5, 5, 5),
              decoder_body="a", decoder_channels=144, steps=1300, batch_size=6, noise_augment=2e-3),
    # ^ 500 then 1000 clean steps still failed on speech with a noise floor; steps 1000-1300 add noise
    CodecSpec("rvq3x1024_sem_t67", "mvq", "semantic", "time", seed=15, head_stride=3, levels=3, codebook_size=1024,
              decoder_body="c", decoder_channels=144, steps=TIME_STEPS, batch_size=6),
    CodecSpec("rvq6x256_sem_f67", "mvq", "semantic", "freq", seed=4, head_stride=3, levels=6, codebook_size=256,
              n_fft=480, istft_upsample=2, steps=FREQ_STEPS),
    CodecSpec("rvq8x128_dis_f50", "mvq", "disentangle", "freq", seed=5, head_stride=4, levels=8, codebook_size=128,
              n_fft=640, istft_upsample=2, decoder_channels=144, steps=FREQ_STEPS),
    CodecSpec("svq2048_f100", "svq", "none", "freq", seed=6, codebook_size=2048, n_fft=640, steps=FREQ_STEPS),
    CodecSpec("svq4096_dis_f67", "svq", "disentangle", "freq", seed=7, head_stride=3, codebook_size=4096,
              n_fft=960, decoder_channels=144, steps=FREQ_STEPS),
    CodecSpec("fsq4_f100", "sq", "none", "freq", seed=8, fsq_levels=(8, 5, 5, 5), n_fft=512, decoder_blocks=3,
              steps=FREQ_STEPS),
    CodecSpec("fsq5_sem_f67", "sq", "semantic", "freq", seed=9, head_stride=3, fsq_levels=(7, 5, 5, 5, 5),
              n_fft=320, istft_upsample=3, steps=FREQ_STEPS),
    CodecSpec("rvq4x1024_f100", "mvq", "none", "freq", seed=10, levels=4, codebook_size=1024, n_fft=800,
              istft_upsample=2, decoder_channels=144, steps=FREQ_STEPS),
    # -- held-out codecs (the out-of-domain set, like CoSG) --
    CodecSpec("RVQ6DIS_T67", "mvq", "disentangle", "time", heldout=True, seed=11, head_stride=3, levels=6,
              codebook_size=512, decoder_body="b", decoder_channels=136, steps=TIME_STEPS, batch_size=6),
    CodecSpec("SVQ4096_F100", "svq", "none", "freq", heldout=True, seed=12, codebook_size=4096, n_fft=1024,
              decoder_blocks=4, steps=FREQ_STEPS),
    CodecSpec("FSQ5SEM_F100", "sq", "semantic", "freq", heldout=True, seed=13, fsq_levels=(8, 8, 5, 5, 5),
              n_fft=400, istft_upsample=2, steps=FREQ_STEPS),
    CodecSpec("FSQ4_T100", "sq", "none", "time", heldout=True, seed=14, fsq_levels=(8, 8, 5, 5),
              decoder_body="b", decoder_channels=152, steps=TIME_STEPS, batch_size=6),
)


def zoo_by_name() -> dict[str, CodecSpec]:
    return {spec.name: spec for spec in ZOO}


def coverage_problems(zoo: tuple[CodecSpec, ...] = ZOO) -> list[str]:
    """Every class needs >= 2 training codecs and >= 1 held-out codec; returns what is missing."""
    problems = []
    for task, classes in CODEC_CLASSES.items():
        for heldout, needed in ((False, 2), (True, 1)):
            counts = Counter(getattr(s, task) for s in zoo if s.heldout == heldout)
            problems += [f"{task}={name}: {counts[name]} {'held-out' if heldout else 'training'} codecs, need "
                         f"{needed}" for name in classes if counts[name] < needed]
    names = [s.name for s in zoo]
    problems += [f"duplicate codec name {n}" for n, c in Counter(names).items() if c > 1]
    return problems
