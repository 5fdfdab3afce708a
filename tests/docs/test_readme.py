"""The README's usage example runs as printed and gives what its comment shows."""

import ast
import re
import shutil
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

import modeling_codectrace as mc
from codectrace.hub import save_model_folder
from codectrace.testing import tiny_config
from codectrace.unknown_source import NearestNeighbourHead, UnknownSourceScorer, unit_rows

README = Path(__file__).resolve().parents[2] / "README.md"


def pipeline_example() -> str:
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)
    return next(block for block in blocks if 'pipeline("codec-source-tracing"' in block)


def shown_keys(example: str) -> set[str]:
    """The result keys that the example's comment lines show."""
    comment = " ".join(line.split("#", 1)[1] for line in example.splitlines() if line.lstrip().startswith("#"))
    return set(re.findall(r"'(\w+)':", comment))


def run_example(example: str, namespace: dict):
    tree = ast.parse(example)
    *body, last = tree.body
    exec(compile(ast.Module(body, type_ignores=[]), "README", "exec"), namespace)
    return eval(compile(ast.Expression(last.value), "README", "eval"), namespace)


def test_the_readme_pipeline_example_gives_the_unknown_source_answer_it_shows(tmp_path, monkeypatch):
    torch.manual_seed(0)
    folder = tmp_path / "outputs" / "demo-M1"
    config = tiny_config("M1", chunk_samples=16000, head_type="stats_pooling")
    save_model_folder(mc.CodecTraceForSourceTracing(config).eval(),
                      mc.CodecTraceFeatureExtractor(chunk_samples=16000), folder)
    # A scorer whose threshold calls every clip unknown, saved where training saves it: beside the model.
    reference = unit_rows(np.random.default_rng(3).standard_normal((20, 2 * config.hidden_size)))
    head = NearestNeighbourHead(reference, neighbours=5, threshold=0.0)
    UnknownSourceScorer({"vq": head, "aux": head, "dec": head}).save(folder)
    sf.write(tmp_path / "clip.wav", 0.1 * np.random.default_rng(0).standard_normal(40000), 16000)
    monkeypatch.chdir(tmp_path)
    example = pipeline_example()
    result = run_example(example, {})
    assert shown_keys(example) <= set(result) | set(result["vq"]) | set(result["heads"]["vq"])
    assert {"spoof_score", "decision", "heads", "known", "unknown_score"} <= shown_keys(example)
    assert result["heads"]["vq"]["known"] is False and result["heads"]["bin"]["known"] is None
    shutil.rmtree(folder)


def test_the_readme_is_a_users_page_with_its_first_example_early():
    text = README.read_text()
    assert len(text) <= 8000
    assert text.index("```python") < 3000
