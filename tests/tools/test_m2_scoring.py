"""M2 (no BIN head) is scored as the CodecFake+ authors score it: P(bona fide) = 1 - (a * d * q) ** (1/3), a, d, q the
spoof probabilities 1 - P(real) of AUX, DEC and VQ; in evaluation (EER, score files), the pipeline and the CLI.
Score files keep full precision."""

import numpy as np
import pytest
import torch
from transformers import pipeline

import modeling_codectrace as mc
from codectrace.cli import main as cli_main
from codectrace.evaluation import evaluate_predictions, results_table, score_line, write_score_files
from codectrace.hub import save_model_folder
from codectrace.metrics import compute_eer
from codectrace.testing import tiny_config

REAL = 0  # index of `real` in the VQ, AUX and DEC label lists


def _by_hand(p_real_aux, p_real_dec, p_real_vq):
    a, d, q = 1 - np.asarray(p_real_aux), 1 - np.asarray(p_real_dec), 1 - np.asarray(p_real_vq)
    return 1 - (a * d * q) ** (1 / 3)


def _logits_with_p_real(p_real: list[float], classes: int) -> np.ndarray:
    """Logits whose softmax puts `p_real` on `real` and spreads the rest evenly."""
    rest = (1 - np.asarray(p_real))[:, None] / (classes - 1)
    probabilities = np.concatenate([np.asarray(p_real)[:, None], np.repeat(rest, classes - 1, axis=1)], axis=1)
    return np.log(probabilities)


@pytest.fixture
def m2_rows():
    """Row 0 is bona fide: AUX sure it is real, DEC and VQ sure it is not. Row 1 is spoof: every head unsure
    (P(real) 0.45). The authors' fusion ranks row 0 as more bona fide (0.73 against 0.45); averaging P(real) over
    the heads, as this project once did, ranks them the other way round (0.33 against 0.45)."""
    p_real = {"aux": [0.98, 0.45], "dec": [0.01, 0.45], "vq": [0.01, 0.45]}
    logits = {task: _logits_with_p_real(values, 3 if task == "dec" else 4) for task, values in p_real.items()}
    labels = {"vq": np.array([0, 1]), "aux": np.array([0, 1]), "dec": np.array([0, 1]), "bin": np.array([1, 0])}
    return p_real, logits, labels


def test_evaluation_reports_the_eer_of_the_fused_score(m2_rows):
    p_real, logits, labels = m2_rows
    result = evaluate_predictions(("vq", "aux", "dec"), logits, labels, ["bonafide", "codec"])
    expected = _by_hand(p_real["aux"], p_real["dec"], p_real["vq"])
    assert expected[0] > expected[1]
    assert result["overall"]["bin"]["fused"] is True
    assert result["overall"]["bin"]["eer"] == compute_eer(expected[:1], expected[1:])[0] == 0.0
    assert "BIN EER % (fused heads)" in results_table("M2", ("vq", "aux", "dec"), {"cosg_eval": result})


def test_score_files_of_m2_hold_the_fused_bona_fide_score(m2_rows, tmp_path):
    p_real, logits, _ = m2_rows
    write_score_files(tmp_path, ["u0", "u1"], logits)
    lines = (tmp_path / "scores_bin.txt").read_text().split()
    expected = _by_hand(p_real["aux"], p_real["dec"], p_real["vq"])
    assert lines[0::2] == ["u0", "u1"]
    np.testing.assert_allclose([float(v) for v in lines[1::2]], expected, rtol=1e-12)


def test_the_pipeline_scores_m2_with_the_fusion_and_the_cli_writes_it(tmp_path):
    torch.manual_seed(0)
    model = mc.CodecTraceForSourceTracing(tiny_config("M2", chunk_samples=16000)).eval()
    extractor = mc.CodecTraceFeatureExtractor(chunk_samples=16000)
    clip = (0.1 * np.random.default_rng(0).standard_normal(16000)).astype(np.float32)
    with torch.no_grad():
        outputs = model(torch.from_numpy(clip)[None])
    p_real = {task: torch.softmax(outputs.logits_for(task), -1)[0, REAL].item() for task in ("aux", "dec", "vq")}
    expected_spoof = 1 - _by_hand(p_real["aux"], p_real["dec"], p_real["vq"])

    tracer = pipeline("codec-source-tracing", model=model, feature_extractor=extractor, precision="fp32")
    assert tracer(clip, sampling_rate=16000)["spoof_score"] == pytest.approx(expected_spoof, abs=1e-6)

    import soundfile as sf

    save_model_folder(model, extractor, tmp_path / "m2")
    sf.write(tmp_path / "clip.wav", clip, 16000, subtype="FLOAT")
    assert cli_main(["trace", str(tmp_path / "clip.wav"), "--model", str(tmp_path / "m2"), "--precision", "fp32",
                     "--scores-dir", str(tmp_path / "scores"), "--quiet"]) == 0
    utt, bonafide = (tmp_path / "scores" / "scores_bin.txt").read_text().split()
    assert utt == "clip" and float(bonafide) == pytest.approx(1 - expected_spoof, abs=1e-6)


def test_score_lines_keep_full_precision():
    close = [0.123456781, 0.123456789]
    lines = [score_line("bin", "u", [1 - p, p]) for p in close]
    assert lines[0] != lines[1]  # 6 decimals would have tied them
    assert float(lines[1].split()[1]) == 0.123456789
    vq = score_line("vq", "u", [1 / 3, 1 / 6, 1 / 4, 1 / 4]).split()[1:]
    assert [float(v) for v in vq] == [1 / 3, 1 / 6, 1 / 4, 1 / 4]


def test_the_fused_score_of_m2_reads_the_heads_as_calibrated_for_known_codecs_when_clips_are_unknown(tmp_path):
    from datasets import Dataset

    from codectrace.evaluation import save_evaluations
    from codectrace.testing import tiny_config

    config = tiny_config("M2", calibration_temperatures={"vq": 1.0, "aux": 1.0, "dec": 1.0},
                         calibration_temperatures_unknown={"vq": 9.0, "aux": 9.0, "dec": 9.0})
    rng = np.random.default_rng(0)
    rows = 40
    ds = Dataset.from_dict({"utt_id": [f"u{i}" for i in range(rows)], "source": ["codec"] * rows,
                            "bin": rng.integers(0, 2, rows).tolist(), "vq": rng.integers(0, 4, rows).tolist(),
                            "aux": rng.integers(0, 4, rows).tolist(), "dec": rng.integers(0, 3, rows).tolist()})
    predictions = {"set": {"vq": 3 * rng.standard_normal((rows, 4)), "aux": 3 * rng.standard_normal((rows, 4)),
                           "dec": 3 * rng.standard_normal((rows, 3))}}
    unknown = {t: np.ones(rows, dtype=bool) for t in ("vq", "aux", "dec")}
    known = save_evaluations(tmp_path / "known", config, {"set": ds}, predictions)["set"]["overall"]
    flat = save_evaluations(tmp_path / "unknown", config, {"set": ds}, predictions, {"set": unknown})["set"]["overall"]
    assert flat["bin"]["eer"] == known["bin"]["eer"]
    assert (tmp_path / "unknown" / "eval" / "set" / "scores_bin.txt").read_text() == \
        (tmp_path / "known" / "eval" / "set" / "scores_bin.txt").read_text()
    assert flat["vq"]["temperature"] == 9.0 and flat["vq"]["ece"] != known["vq"]["ece"]
