"""Save/load both ways: Auto classes after install, and trust_remote_code where the package is absent."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoConfig, AutoFeatureExtractor, AutoModel

import modeling_codectrace as mc


def _save(model, folder):
    model.save_pretrained(folder)
    mc.CodecTraceFeatureExtractor(chunk_samples=model.config.chunk_samples).save_pretrained(folder)


def test_auto_classes_resolve_codectrace_without_remote_code(tiny_model, tmp_path):
    _save(tiny_model, tmp_path)
    assert isinstance(AutoConfig.from_pretrained(tmp_path), mc.CodecTraceConfig)
    assert isinstance(AutoModel.from_pretrained(tmp_path), mc.CodecTraceForSourceTracing)
    assert isinstance(AutoFeatureExtractor.from_pretrained(tmp_path), mc.CodecTraceFeatureExtractor)
    assert isinstance(AutoModel.from_config(mc.CodecTraceConfig(**tiny_model.config.to_dict())),
                      mc.CodecTraceForSourceTracing)


def test_saved_folder_has_safetensors_code_files_and_auto_map(tiny_model, tmp_path):
    _save(tiny_model, tmp_path)
    files = set(os.listdir(tmp_path))
    assert {"model.safetensors", "config.json", "preprocessor_config.json"} <= files
    assert {"configuration_codectrace.py", "modeling_codectrace.py", "aasist.py",
            "feature_extraction_codectrace.py"} <= files
    assert not any(f.endswith(".bin") for f in files)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["auto_map"]["AutoModel"] == "modeling_codectrace.CodecTraceForSourceTracing"
    assert config["model_type"] == "codectrace"
    assert "binary_branch.pos_S" in load_file(tmp_path / "model.safetensors")


def test_in_process_round_trip_gives_identical_logits(tiny_model, waveforms, tmp_path):
    _save(tiny_model, tmp_path)
    loaded = AutoModel.from_pretrained(tmp_path)
    assert not loaded.training
    with torch.no_grad():
        a, b = tiny_model(waveforms), loaded(waveforms)
    for task in tiny_model.config.tasks:
        assert torch.equal(a.logits_for(task), b.logits_for(task))


@pytest.mark.slow
def test_trust_remote_code_loads_in_a_process_without_the_package(tiny_model, waveforms, tmp_path):
    folder = tmp_path / "model"
    _save(tiny_model, folder)
    torch.save(waveforms, tmp_path / "x.pt")
    with torch.no_grad():
        expected = tiny_model(waveforms).aux_logits
    torch.save(expected, tmp_path / "expected.pt")
    script = textwrap.dedent(
        f"""
        import sys
        sys.modules["modeling_codectrace"] = None  # the package is not importable here
        import torch
        from transformers import AutoFeatureExtractor, AutoModel
        model = AutoModel.from_pretrained({str(folder)!r}, trust_remote_code=True)
        fe = AutoFeatureExtractor.from_pretrained({str(folder)!r}, trust_remote_code=True)
        assert type(model).__module__.startswith("transformers_modules"), type(model).__module__
        x = torch.load({str(tmp_path / "x.pt")!r})
        inputs = fe(list(x.numpy()), sampling_rate=16000)
        with torch.no_grad():
            got = model(**inputs).aux_logits
        assert torch.equal(got, torch.load({str(tmp_path / "expected.pt")!r})), (got,)
        print("REMOTE-OK")
        """
    )
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["HF_HOME"] = str(tmp_path / "hf_home")
    env["HF_HUB_OFFLINE"] = "1"
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "REMOTE-OK" in result.stdout


def test_from_backbone_takes_the_wav2vec2_weights(tmp_path):
    from transformers import Wav2Vec2Model

    from codectrace.testing import tiny_backbone_config

    torch.manual_seed(0)
    backbone = Wav2Vec2Model(tiny_backbone_config(apply_spec_augment=True, mask_time_prob=0.05))
    backbone.save_pretrained(tmp_path / "w2v2")
    model = mc.CodecTraceForSourceTracing.from_backbone(
        str(tmp_path / "w2v2"), variant="D_DEC", projection_dim=24,
        encoder_filters=[[1, 8], [8, 8], [8, 16], [16, 16], [16, 16], [16, 16]], gat_dims=[16, 8],
    )
    assert model.config.tasks == ["bin", "dec"]
    assert not model.config.backbone_config.apply_spec_augment  # the paper fine-tunes unmasked
    for name, value in backbone.state_dict().items():
        if name == "masked_spec_embed":  # only used by SpecAugment, which the model turns off
            assert name not in model.wav2vec2.state_dict()
            continue
        assert torch.equal(model.wav2vec2.state_dict()[name], value), name
