"""Model folders saved by earlier releases keep working: today's package loads them, with logits bit-identical to
those of the code each folder carries, and they still load from the folder alone with trust_remote_code."""

import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoFeatureExtractor, AutoModel

import modeling_codectrace as mc

ARCHIVE = Path(__file__).resolve().parents[1] / "fixtures" / "saved_models_0.1.0.tar.gz"
FOLDERS = ["m1_aasist_tiny", "m2_aasist_tiny", "demo_shape_tiny"]


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    root = tmp_path_factory.mktemp("saved_0.1.0")
    with tarfile.open(ARCHIVE) as archive:
        archive.extractall(root, filter="data")
    return root / "saved_models"


def _folder_class(folder: Path):
    """The model class of the code files a folder carries (what trust_remote_code runs where the package is absent)."""
    from transformers.dynamic_module_utils import get_class_from_dynamic_module

    auto_map = json.loads((folder / "config.json").read_text())["auto_map"]
    return get_class_from_dynamic_module(auto_map["AutoModel"], str(folder))


def _input(expected: dict) -> torch.Tensor:
    rng = np.random.default_rng(expected["input_seed"])
    return torch.from_numpy((expected["input_scale"] * rng.standard_normal(expected["input_shape"])).astype(np.float32))


@pytest.mark.parametrize("name", FOLDERS)
def test_todays_package_gives_the_logits_of_the_folders_own_code(saved, name):
    folder = saved / name
    expected = json.loads((folder / "expected_logits.json").read_text())
    ours = AutoModel.from_pretrained(folder)
    theirs = _folder_class(folder).from_pretrained(folder).eval()
    assert isinstance(ours, mc.CodecTraceForSourceTracing)
    assert type(theirs).__module__.startswith("transformers_modules")  # the code saved in the folder
    x = _input(expected)
    with torch.no_grad():
        out_ours, out_theirs = ours(x), theirs(x)
    assert set(expected["logits"]) == set(ours.config.tasks)
    for task, logits in expected["logits"].items():
        assert torch.equal(out_ours.logits_for(task), out_theirs.logits_for(task)), task
        np.testing.assert_allclose(out_ours.logits_for(task).numpy(), np.asarray(logits), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", FOLDERS)
def test_the_feature_extractor_of_an_old_folder_loads(saved, name):
    extractor = AutoFeatureExtractor.from_pretrained(saved / name)
    assert isinstance(extractor, mc.CodecTraceFeatureExtractor) and extractor.chunk_samples == 16000


def test_an_old_folder_resaved_today_carries_the_pipeline_hand_over_not_its_old_code(saved, tmp_path):
    from codectrace.hub import CUSTOM_PIPELINE, save_model_folder

    model = _folder_class(saved / "m1_aasist_tiny").from_pretrained(saved / "m1_aasist_tiny")
    save_model_folder(model, AutoFeatureExtractor.from_pretrained(saved / "m1_aasist_tiny"), tmp_path / "again")
    assert json.loads((tmp_path / "again" / "config.json").read_text())["custom_pipelines"] == CUSTOM_PIPELINE
    assert "codectrace.pipeline import" in (tmp_path / "again" / "pipeline_codectrace.py").read_text()
    assert not (tmp_path / "again" / "audio.py").exists()


@pytest.mark.parametrize("name", FOLDERS)
def test_a_folder_whose_config_names_a_removed_option_switched_off_loads_with_the_same_logits(saved, name, tmp_path):
    import shutil

    from modeling_codectrace.configuration_codectrace import REMOVED_FIELDS

    folder = tmp_path / name
    shutil.copytree(saved / name, folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, **dict.fromkeys(REMOVED_FIELDS)}))
    expected = json.loads((folder / "expected_logits.json").read_text())
    x = _input(expected)
    with torch.no_grad():
        before = AutoModel.from_pretrained(saved / name)(x)
        after = AutoModel.from_pretrained(folder)(x)
    for task in expected["logits"]:
        assert torch.equal(before.logits_for(task), after.logits_for(task)), task
