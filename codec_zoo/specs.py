"""The CodecFake-mini codec zoo: small codecs whose taxonomy classes we control, split three ways.

- **train** codecs re-synthesise the training corpus (like CoRS);
- **validation** codecs are never trained on; they re-synthesise the validation speakers and serve model
  selection, early stopping and whatever is fitted after training (thresholds, temperatures);
- **test** codecs are never trained on and never used to choose anything; they re-synthesise the test
  speakers and are reported (like CoSG).

Every class of every task (VQ mvq / svq / sq, AUX none / semantic / disentangle, DEC time / freq) has at least
three training codecs, one validation codec and one test codec. No pre-trained part is shared across the splits:
each split has its own encoder trunk (`SPLIT_TRUNK_SEEDS`) and its own time-domain decoder bodies
(`modules.TIME_BODIES`). Instances differ in seed, frame rate, code size, codebook sizes and decoder shape, so a
tracer has to learn classes, not one codec per class.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field

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
    split (`str`): `train`, `validation` or `test` (see the module docstring).
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
    split: str = "train"
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
    def heldout(self) -> bool:
        """Never trained on by the tracer (a validation or a test codec)."""
        return self.split != "train"

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

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> CodecSpec:
        data = dict(data)
        data["fsq_levels"] = tuple(data.get("fsq_levels", ()))
        data.pop("decoder_strides", None)  # stored by early files; now derived from the body
        if "heldout" in data:  # files written before the three-way split: held out meant validation
            data["split"] = "validation" if data.pop("heldout") else "train"
        return cls(**data)


SPLITS = ("train", "validation", "test")
# Each split's codecs start from an encoder trunk pre-trained for that split alone (seed of its pre-training).
SPLIT_TRUNK_SEEDS = {"train": 0, "validation": 1, "test": 2}
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
    # body "d" (ELU activations, strides 2-5-8): a third time-domain body among the training codecs
    CodecSpec("svq2048_dis_t50", "svq", "disentangle", "time", seed=16, head_stride=4, codebook_size=2048,
              decoder_body="d", decoder_channels=144, steps=TIME_STEPS, batch_size=6),
    CodecSpec("fsq5_t100", "sq", "none", "time", seed=17, fsq_levels=(8, 8, 5, 5, 5), decoder_body="d",
              decoder_channels=128, steps=TIME_STEPS, batch_size=6),
    # Added so that no training body or frame layout stands for one auxiliary class: until then every
    # time-domain training codec with semantic distillation was on body "c" and body "c" had no other class.
    CodecSpec("rvq4x256_sem_t50", "mvq", "semantic", "time", seed=41, head_stride=4, levels=4, codebook_size=256,
              decoder_body="d", decoder_channels=144, steps=TIME_STEPS, batch_size=6),
    CodecSpec("svq2048_t67", "svq", "none", "time", seed=42, head_stride=3, codebook_size=2048, decoder_body="c",
              decoder_channels=128, steps=TIME_STEPS, batch_size=6),
    CodecSpec("rvq5x256_dis_t100", "mvq", "disentangle", "time", seed=43, levels=5, codebook_size=256,
              decoder_body="c", decoder_channels=144, steps=TIME_STEPS, batch_size=6),
    CodecSpec("svq1024_sem_f100", "svq", "semantic", "freq", seed=44, codebook_size=1024, n_fft=560,
              steps=FREQ_STEPS),
    CodecSpec("fsq6_f50", "sq", "none", "freq", seed=45, head_stride=4, fsq_levels=(8, 8, 8, 5, 5, 5), n_fft=1024,
              istft_upsample=4, steps=FREQ_STEPS),
    # Added so that no body or inverse-STFT frame layout stands for one quantizer: until then body "a" had no
    # single-codebook codec and body "c" no scalar one, every frequency-domain multi-codebook codec upsampled its
    # frames 2x before the inverse STFT and every single-codebook one did not.
    CodecSpec("svq1024_dis_t100", "svq", "disentangle", "time", seed=46, codebook_size=1024, decoder_body="a",
              decoder_channels=144, steps=TIME_STEPS, batch_size=6),
    CodecSpec("fsq5_dis_t50", "sq", "disentangle", "time", seed=47, head_stride=4, fsq_levels=(8, 8, 5, 5, 5),
              decoder_body="c", decoder_channels=128, steps=TIME_STEPS, batch_size=6),
    CodecSpec("rvq4x512_sem_f100", "mvq", "semantic", "freq", seed=48, levels=4, codebook_size=512, n_fft=448,
              steps=FREQ_STEPS),
    CodecSpec("svq2048_sem_f67", "svq", "semantic", "freq", seed=49, head_stride=3, codebook_size=2048, n_fft=880,
              istft_upsample=2, decoder_channels=144, steps=FREQ_STEPS),
    CodecSpec("fsq5_dis_f100", "sq", "disentangle", "freq", seed=50, fsq_levels=(8, 8, 5, 5, 5), n_fft=600,
              istft_upsample=2, steps=FREQ_STEPS),
    # -- validation codecs (the four held-out codecs of the first zoo, retrained on the validation trunk) --
    CodecSpec("RVQ6DIS_T67", "mvq", "disentangle", "time", split="validation", seed=11, head_stride=3, levels=6,
              codebook_size=512, decoder_body="b", decoder_channels=136, steps=TIME_STEPS, batch_size=6),
    CodecSpec("SVQ4096_F100", "svq", "none", "freq", split="validation", seed=12, codebook_size=4096, n_fft=1024,
              decoder_blocks=4, steps=FREQ_STEPS),
    CodecSpec("FSQ5SEM_F100", "sq", "semantic", "freq", split="validation", seed=13, fsq_levels=(8, 8, 5, 5, 5),
              n_fft=400, istft_upsample=2, steps=FREQ_STEPS),
    CodecSpec("FSQ4_T100", "sq", "none", "time", split="validation", seed=14, fsq_levels=(8, 8, 5, 5),
              decoder_body="b", decoder_channels=152, steps=TIME_STEPS, batch_size=6),
    # four more (added after the third recipe round, whose choices rested on single validation codecs): every VQ
    # and AUX class now has >= 2 validation codecs, every DEC class 4; FFT sizes no other codec uses
    CodecSpec("RVQ4SEM_F67", "mvq", "semantic", "freq", split="validation", seed=31, head_stride=3, levels=4,
              codebook_size=512, n_fft=720, istft_upsample=2, decoder_channels=144, steps=FREQ_STEPS),
    CodecSpec("SVQ1024DIS_T100", "svq", "disentangle", "time", split="validation", seed=32, codebook_size=1024,
              decoder_body="b", decoder_channels=128, steps=TIME_STEPS, batch_size=6),
    CodecSpec("RVQ3DIS_F100", "mvq", "disentangle", "freq", split="validation", seed=33, levels=3,
              codebook_size=1024, n_fft=896, decoder_channels=144, steps=FREQ_STEPS),
    CodecSpec("SVQ2048SEM_T67", "svq", "semantic", "time", split="validation", seed=34, head_stride=3,
              codebook_size=2048, decoder_body="b", decoder_channels=136, steps=TIME_STEPS, batch_size=6),
    # -- test codecs (test trunk, body "e"; chosen before any result on them was seen, never tuned on) --
    CodecSpec("RVQ5SEM_T100", "mvq", "semantic", "time", split="test", seed=21, levels=5, codebook_size=512,
              decoder_body="e", decoder_channels=144, steps=TIME_STEPS, batch_size=6),
    CodecSpec("SVQ2048DIS_F50", "svq", "disentangle", "freq", split="test", seed=22, head_stride=4,
              codebook_size=2048, n_fft=768, istft_upsample=2, decoder_channels=128, steps=FREQ_STEPS),
    # ^ at the default width (160) its file was 2.59 MB, over the 2.5 MB limit
    CodecSpec("FSQ6_T67", "sq", "none", "time", split="test", seed=23, head_stride=3,
              fsq_levels=(8, 8, 5, 5, 5, 5), decoder_body="e", decoder_channels=160, steps=TIME_STEPS, batch_size=6),
    CodecSpec("RVQ3_F100", "mvq", "none", "freq", split="test", seed=24, levels=3, codebook_size=1024, n_fft=576,
              decoder_blocks=4, steps=FREQ_STEPS),
)

# How many codecs of each class each split needs (issue #15's three-way split).
MIN_CODECS_PER_CLASS = {"train": 3, "validation": 1, "test": 1}


def zoo_by_name() -> dict[str, CodecSpec]:
    return {spec.name: spec for spec in ZOO}


def codecs_of(split: str, zoo: tuple[CodecSpec, ...] = ZOO) -> list[CodecSpec]:
    """The zoo's codecs of one split, in zoo order."""
    if split not in SPLITS:
        raise ValueError(f"unknown codec split {split!r}; accepted: {', '.join(SPLITS)}.")
    return [spec for spec in zoo if spec.split == split]


def coverage_problems(zoo: tuple[CodecSpec, ...] = ZOO) -> list[str]:
    """What the zoo lacks for the three-way split (`MIN_CODECS_PER_CLASS` per class and split; time-domain
    bodies never shared across splits; >= 3 bodies among the training codecs); empty when nothing."""
    from .modules import TIME_BODIES

    problems = [f"{s.name}: unknown split {s.split!r}" for s in zoo if s.split not in SPLITS]
    for task, classes in CODEC_CLASSES.items():
        for split, needed in MIN_CODECS_PER_CLASS.items():
            counts = Counter(getattr(s, task) for s in zoo if s.split == split)
            problems += [f"{task}={name}: {counts[name]} {split} codecs, need {needed}"
                         for name in classes if counts[name] < needed]
    for spec in (s for s in zoo if s.dec == "time"):
        if TIME_BODIES.get(spec.decoder_body, {}).get("split") != spec.split:
            problems.append(f"{spec.name}: a {spec.split} codec on body {spec.decoder_body!r}, which is not a "
                            f"{spec.split} body")
    training_bodies = {s.decoder_body for s in zoo if s.dec == "time" and s.split == "train"}
    if len(training_bodies) < 3:
        problems.append(f"training time-domain codecs use {len(training_bodies)} bodies, need 3")
    names = [s.name for s in zoo]
    problems += [f"duplicate codec name {n}" for n, c in Counter(names).items() if c > 1]
    return problems
