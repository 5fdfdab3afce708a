import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import shutil  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

import modeling_codectrace as mc  # noqa: E402
from codectrace.testing import tiny_config  # noqa: E402

# Tests that need a program the set-up script installs are skipped, with the reason, where it is missing.
NEEDED_PROGRAMS = {
    "needs_synthesizers": (("espeak-ng", "festival"),
                           "espeak-ng / festival not installed (scripts/setup.sh installs them)"),
    "needs_chromium": (("chromium",), "Debian chromium not installed (scripts/setup.sh --test installs it)"),
}


def pytest_collection_modifyitems(config, items):
    for marker, (programs, reason) in NEEDED_PROGRAMS.items():
        if all(shutil.which(program) for program in programs):
            continue
        for item in items:
            if marker in item.keywords:
                item.add_marker(pytest.mark.skip(reason=reason))


@pytest.fixture
def tiny_model_factory():
    def make(variant: str = "M1", seed: int = 0, **overrides):
        torch.manual_seed(seed)
        return mc.CodecTraceForSourceTracing(tiny_config(variant, **overrides)).eval()

    return make


@pytest.fixture
def tiny_model(tiny_model_factory):
    return tiny_model_factory()


@pytest.fixture
def waveforms():
    generator = torch.Generator().manual_seed(1234)
    return 0.1 * torch.randn(3, 16000, generator=generator)


@pytest.fixture
def rng():
    return np.random.default_rng(0)


@pytest.fixture(scope="session")
def fixture_root(tmp_path_factory):
    """A tiny CodecFake+ release in the official layout (audio + protocol files)."""
    from dataset_scripts.fixture import write_fixture

    return write_fixture(tmp_path_factory.mktemp("codecfake_plus"), utterances=4, seed=0)


@pytest.fixture(scope="session")
def built(fixture_root, tmp_path_factory):
    """The fixture built into a Hugging Face dataset folder (every config)."""
    from dataset_scripts import build_codecfake_plus as builder

    out = tmp_path_factory.mktemp("built") / "codecfake_plus"
    builder.build(fixture_root, fixture_root / "protocols", out, shard_rows=10, num_proc=2, progress=False)
    return out


@pytest.fixture(scope="session")
def codecfake_mini(tmp_path_factory):
    """CodecFake-mini at its smallest (one utterance per speaker): the dataset folder, its release beside it."""
    from dataset_scripts.build_codecfake_mini import ensure_codecfake_mini

    root = tmp_path_factory.mktemp("codecfake_mini")
    return ensure_codecfake_mini(root / "release", root / "dataset", utterances=1)


@pytest.fixture(scope="session")
def tiny_m1_folder(tmp_path_factory):
    """A saved M1 model at the tiny shape with 1-s windows, random weights (seed 0); tests only read it."""
    import torch

    import modeling_codectrace as mc
    from codectrace.hub import save_model_folder
    from codectrace.testing import tiny_config

    torch.manual_seed(0)
    folder = tmp_path_factory.mktemp("tiny_m1")
    save_model_folder(mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000)).eval(),
                      mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    return folder


@pytest.fixture(scope="session")
def trained(built, tmp_path_factory):
    """A demo-preset run at the tiny shape, two epochs on the fixture: its output folder and `run`'s result."""
    from codectrace import training
    from codectrace.testing import tiny_demo_args

    output_dir = tmp_path_factory.mktemp("run") / "model"
    result = training.run(tiny_demo_args(built, output_dir, "--num_train_epochs", "2", "--augment", "rawboost5"))
    return output_dir, result


class RecordingApi:
    """Stands in for huggingface_hub.HfApi: records what would be created and uploaded."""

    def __init__(self):
        self.calls = []

    def create_repo(self, repo_id, **kwargs):
        self.calls.append(("create_repo", repo_id, kwargs))

    def upload_folder(self, **kwargs):
        self.calls.append(("upload_folder", kwargs))
        return f"https://huggingface.co/{kwargs['repo_id']}/commit/0"

    def add_space_variable(self, repo_id, key, value):
        self.calls.append(("add_space_variable", repo_id, key, value))


@pytest.fixture
def recording_api():
    return RecordingApi()
