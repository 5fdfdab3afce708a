"""codectrace publish: everything up to the upload is checked offline; the upload calls are recorded."""

import json
from pathlib import Path

import pytest
import torch
from datasets import load_dataset

import modeling_codectrace as mc
from codectrace import publish
from codectrace.hub import save_model_folder
from codectrace.model_card import render_model_card
from codectrace.testing import tiny_config

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("publish-model")
    torch.manual_seed(0)
    model = mc.CodecTraceForSourceTracing(tiny_config("D_DEC")).eval()
    save_model_folder(model, mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    (folder / "README.md").write_text(render_model_card(model.config, "tiny"))
    return folder


@pytest.mark.slow
def test_staged_space_model_and_dataset_are_complete_and_load(model_dir, built, tmp_path):
    plan = publish.prepare(model_dir, "me/tiny", built, "me/data", "me/space", stage_dir=tmp_path, project_dir=ROOT)
    space = plan.space_dir
    assert {p.name for p in space.iterdir()} >= {"app.py", "README.md", "requirements.txt", "examples"}
    assert len(list((space / "examples").glob("*.wav"))) == 2
    card = (space / "README.md").read_text()
    assert "sdk: gradio" in card and "- me/tiny" in card and "- me/data" in card and "app_file: app.py" in card
    wheel = next(space.glob("codectrace-*.whl"))
    assert f"./{wheel.name}" in (space / "requirements.txt").read_text()
    import zipfile

    names = zipfile.ZipFile(wheel).namelist()
    assert "codectrace/pipeline.py" in names and "dataset_scripts/fixture.py" in names
    assert set(plan.dataset_files) >= {"README.md", "build_report.json"}
    assert load_dataset(str(built), "cosg_eval", split="test", cache_dir=str(tmp_path / "c")).num_rows == 24


@pytest.mark.slow
def test_upload_sends_model_dataset_and_space_with_the_model_variable(
    model_dir, built, tmp_path, recording_api
):
    plan = publish.prepare(model_dir, "me/tiny", built, "me/data", "me/space", stage_dir=tmp_path, project_dir=ROOT)
    api = recording_api
    urls = publish.upload(plan, api=api)
    assert set(urls) == {"model", "dataset", "space"}
    kinds = [(c[0], c[1] if c[0] != "upload_folder" else c[1].get("repo_type", "model")) for c in api.calls]
    assert ("create_repo", "me/space") in kinds and ("add_space_variable", "me/space") in kinds
    space_repo = next(c for c in api.calls if c[0] == "create_repo" and c[1] == "me/space")
    assert space_repo[2]["space_sdk"] == "gradio"
    assert ("add_space_variable", "me/space", "CODECTRACE_MODEL", "me/tiny") in api.calls


def test_an_incomplete_model_folder_is_refused_before_any_upload(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "codectrace"}))
    with pytest.raises(publish.PublishError, match="missing"):
        publish.prepare(tmp_path, "me/x")


def test_a_space_outside_a_checkout_is_refused_before_any_upload(model_dir, tmp_path):
    with pytest.raises(publish.PublishError, match="not a checkout of the codectrace repository"):
        publish.prepare(model_dir, "me/tiny", space_repo="me/space", stage_dir=tmp_path, project_dir=tmp_path)


def test_stage_only_command_uploads_nothing(model_dir, tmp_path, capsys):
    from codectrace.cli import main

    assert main(["publish", "--model-dir", str(model_dir), "--model-repo", "me/tiny", "--stage-dir",
                 str(tmp_path)]) == 0
    assert '"model"' in capsys.readouterr().out
