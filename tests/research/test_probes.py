"""The research probes (research/README.md) on small inputs: each computes what its report says it does."""

import json
from collections import Counter

import numpy as np
import pytest
import torch
from datasets import load_dataset

import modeling_codectrace as mc
from codec_zoo import train_zoo
from codec_zoo.modules import NeuralCodec
from codec_zoo.specs import ZOO, CodecSpec
from codec_zoo.speech import PHONES, Utterance
from codec_zoo.store import load_codec, read_metadata, save_codec, weights_path
from codectrace.testing import tiny_config
from modeling_codectrace.configuration_codectrace import TAXONOMY_TASKS
from research import zoo_learning_curve
from research.shared import labelled_embeddings


def test_the_score_comparison_prints_validation_figures_and_test_ones_only_when_asked(trained, built, tmp_path,
                                                                                      capsys):
    import shutil

    from research import unknown_source_scores

    shutil.copytree(trained[0], tmp_path / "seed-1", ignore=shutil.ignore_patterns("checkpoint-*"))
    unknown_source_scores.main(["--runs", str(tmp_path), "--dataset", str(built)])
    shown = capsys.readouterr().out
    assert "validation-codec against in-domain validation" in shown and "test-codec" not in shown
    for score in ("mahalanobis", "mahalanobis_codec", "knn", "knn_all_heads", "max_softmax_probability", "energy"):
        assert f"| {score} | " in shown, score
    assert (tmp_path / "seed-1" / "unknown_source_embeddings.npz").is_file()  # embedded once, then cached
    unknown_source_scores.main(["--runs", str(tmp_path), "--dataset", str(built), "--show-test"])
    assert "test-codec against in-domain test (CoRS)" in capsys.readouterr().out


def test_selection_stability_recomputes_the_rule_from_score_files_and_leaves_out_each_validation_codec(
        trained, built, tmp_path, capsys):
    import shutil

    from research import selection_stability

    for recipe in ("a", "b"):
        shutil.copytree(trained[0], tmp_path / recipe / "seed-1", ignore=shutil.ignore_patterns("checkpoint-*"))
    selection_stability.main([str(tmp_path / "a"), str(tmp_path / "b"), "--dataset", str(built)])
    rows = {line.split(" | ")[0].strip("| "): line for line in capsys.readouterr().out.splitlines()[2:]}
    evaluated = json.loads((trained[0] / "all_results.json").read_text())["eval"]
    from codectrace.metrics import selection_score

    expected = (selection_score(evaluated["in_domain_validation"]) + selection_score(evaluated["val_codecs"])) / 2
    assert f"| none | {expected:.4f} | {expected:.4f} | a |" == rows["none"]
    validation_codecs = {row["source"] for row in load_dataset(str(built), "val_codecs", split="validation")
                         if row["source"] != "bonafide"}
    assert set(rows) == {"none", *validation_codecs}


def test_selection_stability_smooths_each_runs_logged_trajectory_over_consecutive_evaluations(tmp_path, capsys):
    from research import selection_stability

    assert selection_stability.best_window_mean([0.1, 0.9, 0.2, 0.5, 0.6], 3) == pytest.approx(1.6 / 3)  # not 0.9
    assert selection_stability.best_window_mean([0.4, 0.6], 3) == pytest.approx(0.5)
    run = tmp_path / "recipe" / "seed-1"
    history = [{"loss": 1.0}, {"eval_selection_score": 0.9, "eval_selection_score_in_domain_validation": 0.8,
                                "eval_selection_score_val_codecs": 0.6}, {"eval_selection_score": 0.5}]
    for step, logged in ((2, history[:2]), (10, history)):  # the last checkpoint holds the whole log
        (run / f"checkpoint-{step}").mkdir(parents=True)
        (run / f"checkpoint-{step}" / "trainer_state.json").write_text(json.dumps({"log_history": logged}))
    assert selection_stability.evaluation_trajectory(run) == pytest.approx([0.7, 0.5])
    assert selection_stability.smoothed_table([run.parent], 2)[2] == "| recipe | 1 | 0.7000 | 0.6000 |"


def _seed_scores(folder, vq_rows):
    """Score files of one seed on bona fide `s1_001` and spoofed `s1_001_A` (VQ class 1), `_B` (2), `_C` (3): the
    given VQ probabilities, every other head right."""
    from codectrace.evaluation import write_score_files

    ids = ["s1_001", "s1_001_A", "s1_001_B", "s1_001_C"]
    right = {"bin": [[0, 1], [1, 0], [1, 0], [1, 0]], "aux": np.eye(4)[[0, 1, 1, 1]], "dec": np.eye(3)[[0, 1, 1, 1]]}
    logits = {head: np.log(np.maximum(np.array(rows, dtype=float), 1e-9)) for head, rows in right.items()}
    write_score_files(folder, ids, logits | {"vq": np.log(np.maximum(np.array(vq_rows), 1e-9))})


def test_the_seed_ensemble_averages_the_seeds_probabilities_and_counts_the_answers_they_share(tmp_path):
    from research import seed_ensemble

    bona = [1, 0, 0, 0]
    _seed_scores(tmp_path / "1", [bona, [0, 0.9, 0.1, 0], [0, 0.55, 0.45, 0], [0, 0, 0.1, 0.9]])  # B wrong
    _seed_scores(tmp_path / "2", [bona, [0, 0.45, 0.55, 0], [0, 0.1, 0.9, 0], [0, 0, 0.2, 0.8]])  # A wrong
    labels = {"bin": {"s1_001": 1, "s1_001_A": 0, "s1_001_B": 0, "s1_001_C": 0},
              "vq": {"s1_001": 0, "s1_001_A": 1, "s1_001_B": 2, "s1_001_C": 3},
              "aux": {"s1_001": 0, "s1_001_A": 1, "s1_001_B": 1, "s1_001_C": 1},
              "dec": {"s1_001": 0, "s1_001_A": 1, "s1_001_B": 1, "s1_001_C": 1}}
    figures = seed_ensemble.ensemble_figures([tmp_path / "1", tmp_path / "2"], labels)
    # each seed: one of classes 1 and 2 never right, the other half right: macro-F1 (1 + 0 + 2/3 + 1) / 4
    assert figures["vq"]["seeds"] == pytest.approx([2.5 / 3 * 0.8, 2.5 / 3 * 0.8])
    assert figures["vq"]["ensemble"] == 1.0  # the confident seed outvotes the wrong one on A and on B
    assert figures["vq"]["agreed"] == pytest.approx(1 / 3) and figures["vq"]["agreed_right"] == 1.0  # only C
    assert figures["dec"] == {"seeds": [1.0, 1.0], "ensemble": 1.0, "agreed": 1.0, "agreed_right": 1.0}


def test_the_seed_ensemble_needs_two_seeds_scored_on_the_same_clips(tmp_path):
    from codectrace.evaluation import write_score_files
    from research import seed_ensemble

    _seed_scores(tmp_path / "1", np.eye(4)[[0, 1, 2, 3]])
    with pytest.raises(ValueError, match="at least two seeds; got 1"):
        seed_ensemble.ensemble_figures([tmp_path / "1"], {})
    logits = {head: np.zeros((1, n)) for head, n in (("bin", 2), ("vq", 4), ("aux", 4), ("dec", 3))}
    write_score_files(tmp_path / "2", ["s1_002"], logits)
    with pytest.raises(ValueError, match="scores other utterances than"):
        seed_ensemble.ensemble_figures([tmp_path / "1", tmp_path / "2"], {})


def test_the_seed_ensemble_reads_each_recipes_runs_and_refuses_a_recipe_of_one_seed(trained, built, tmp_path,
                                                                                     capsys):
    import shutil

    from research import seed_ensemble

    for seed in ("seed-1", "seed-2"):  # one run twice: the ensemble is that run, and the seeds always agree
        shutil.copytree(trained[0], tmp_path / "twice" / seed, ignore=shutil.ignore_patterns("checkpoint-*"))
    seed_ensemble.main([str(tmp_path / "twice"), "--dataset", str(built), "--out", str(tmp_path / "table.md")])
    evaluated = json.loads((trained[0] / "all_results.json").read_text())["eval"]["val_codecs"]
    row = next(line for line in (tmp_path / "table.md").read_text().splitlines()
               if line.startswith("| twice | validation codecs | VQ |"))
    f1 = evaluated["vq"]["f1_macro"]
    assert f"| {f1:.3f} [{f1:.3f}-{f1:.3f}] | {f1:.3f} | 1.000 |" in row
    assert "test" not in capsys.readouterr().out.lower()
    shutil.copytree(trained[0], tmp_path / "once" / "seed-1", ignore=shutil.ignore_patterns("checkpoint-*"))
    with pytest.raises(SystemExit):
        seed_ensemble.main([str(tmp_path / "once"), "--dataset", str(built)])
    assert "at least two evaluated seed-* runs; too few under" in capsys.readouterr().err


def test_the_seed_ensemble_names_a_missing_score_file_instead_of_failing_with_a_traceback(built, tmp_path, capsys):
    from research import seed_ensemble

    for seed in ("seed-1", "seed-2"):
        (tmp_path / "recipe" / seed / "eval").mkdir(parents=True)
    with pytest.raises(SystemExit):
        seed_ensemble.main([str(tmp_path / "recipe"), "--dataset", str(built)])
    assert "in_domain_validation/scores_bin.txt is missing" in capsys.readouterr().err


def _probe_rows(rng, codec_signal: float, per_codec: int) -> dict:
    """Spoofed rows of codecs a, b (VQ class 1) and c (class 2) plus bona fide rows; embeddings carry each codec's
    own direction times `codec_signal`."""
    sources = np.repeat(["a", "b", "c", "bonafide"], per_codec)
    directions = {"a": np.eye(4)[0], "b": np.eye(4)[1], "c": np.eye(4)[2], "bonafide": np.eye(4)[3]}
    embedding = np.stack([codec_signal * directions[s] for s in sources]) + rng.standard_normal((sources.size, 4))
    rows = {"source": sources, "label_bin": np.where(sources == "bonafide", 1, 0),
            "label_vq": np.select([sources == "c", sources == "bonafide"], [2, 0], 1)}
    return rows | {"emb_vq": embedding}


def test_the_codec_identity_probe_names_codecs_within_a_class_only_where_the_embedding_holds_them():
    from research import codec_identity_probe

    rng = np.random.default_rng(0)
    accuracy, chance = codec_identity_probe.probe_accuracy(_probe_rows(rng, 6.0, 60), _probe_rows(rng, 6.0, 40), "vq")
    assert accuracy > 0.95 and chance == 0.5  # only class 1 has two codecs; c is alone in class 2
    accuracy, _ = codec_identity_probe.probe_accuracy(_probe_rows(rng, 0.0, 60), _probe_rows(rng, 0.0, 400), "vq")
    assert 0.4 < accuracy < 0.6


def test_the_codec_identity_probe_reports_how_compact_each_heads_classes_are():
    from research import codec_identity_probe

    rng = np.random.default_rng(0)
    labels = np.repeat([0, 1, 2], 50)
    apart = {"label_vq": labels, "emb_vq": (20.0 * np.eye(4)[labels] + rng.standard_normal((150, 4))).astype("f4")}
    mixed = {"label_vq": labels, "emb_vq": rng.standard_normal((150, 4)).astype("f4")}
    assert codec_identity_probe.scatter_ratio(apart, "vq") < 0.05
    assert codec_identity_probe.scatter_ratio(mixed, "vq") > 0.9


def test_the_resynthesis_probe_names_the_class_whose_training_codecs_change_a_clip_least_leaving_its_own_out():
    from research import resynthesis_profile

    codecs = ["rvq4x512_t100", "rvq4x1024_f100", "svq2048_f100", "svq2048_t67", "fsq5_t100", "fsq6_f50"]
    # clip 0 is changed least by the svq codecs; clip 1 (made by rvq4x512_t100) least by its own codec, then fsq
    relative = np.array([[0.5, 0.6, -0.4, -0.2, 0.1, 0.3],
                         [-2.0, 0.8, 0.5, 0.6, -0.1, -0.3]])
    assert resynthesis_profile.predict(relative, [None, None], codecs, "vq") == ["svq", "mvq"]
    assert resynthesis_profile.predict(relative, [None, "rvq4x512_t100"], codecs, "vq") == ["svq", "sq"]


def test_the_resynthesis_probe_reads_each_codecs_first_clips_and_their_bona_fide_originals(tmp_path):
    from research import resynthesis_profile

    protocol = tmp_path / "protocol.txt"
    protocol.write_text("s1 s1_002 - REAL REAL REAL bonafide\ns1 s1_002_A_X - Trad TIME MVQ spoof\n"
                        "s1 s1_001_A_X - Trad TIME MVQ spoof\ns1 s1_001_B - Trad FREQ SQ spoof\n"
                        "s2 s2_001_C - Trad FREQ SQ spoof\n")
    assert resynthesis_profile.protocol_clips(protocol, {"A_X", "B"}, utterances=1) == {
        "A_X": ["s1_001_A_X"], "B": ["s1_001_B"], "bonafide": ["s1_001"]}


def _toy_utterances(count: int = 6) -> list[Utterance]:
    rng = np.random.default_rng(0)
    return [Utterance((0.1 * rng.standard_normal(20000)).astype(np.float32), i % 3,
                      rng.integers(0, len(PHONES), 250) if i % 2 else None) for i in range(count)]


def test_the_class_traces_report_covers_every_zoo_codec_and_the_spread_of_each_class(tmp_path):
    from research import zoo_class_traces

    quality = {spec.name: {"log_mel_l1": 0.5 + 0.01 * i} for i, spec in enumerate(ZOO)}
    quality["mu-law 4-bit"] = {"log_mel_l1": 1.1}  # references are not codecs
    out = tmp_path / "traces.md"
    (tmp_path / "q.json").write_text(json.dumps(quality))
    zoo_class_traces.main(["--quality", str(tmp_path / "q.json"), "--out", str(out)])
    text = out.read_text()
    assert f"Zoo codecs with a measured quality: {len(ZOO)} " in text
    counts = Counter(spec.vq for spec in ZOO)
    for vq in ("mvq", "svq", "sq"):
        l1 = [quality[s.name]["log_mel_l1"] for s in ZOO if s.vq == vq]
        assert f"| {vq} | {counts[vq]} |" in text and f"[{min(l1):.3f}-{max(l1):.3f}]" in text


def test_the_class_traces_report_reads_how_far_each_shipped_codec_was_still_learning():
    from research import zoo_class_traces

    name = ZOO[0].name
    _, record = read_metadata(weights_path(name))
    last, before = record["loss_curve"][-1][1], record["loss_curve"][-2][1]
    assert zoo_class_traces.still_falling(name) == pytest.approx(100 * (before - last) / before)
    assert zoo_class_traces.still_falling("no_such_codec") is None


def test_a_shipped_codec_trains_on_from_its_weights_with_its_trunk_frozen_and_its_file_untouched(tmp_path):
    spec = CodecSpec("toy", "sq", "none", "freq", seed=1, steps=2, batch_size=2, decoder_channels=32,
                     decoder_blocks=1)
    utterances = _toy_utterances()
    path = save_codec(NeuralCodec(spec, num_speakers=3, num_phones=len(PHONES)), tmp_path / "toy.safetensors",
                      {"num_speakers": 3, "num_phones": len(PHONES)})
    shipped_bytes, start = path.read_bytes(), load_codec(path).state_dict()
    trunk = {k[len("trunk."):]: v for k, v in start.items() if k.startswith("trunk.")}
    features = train_zoo.trunk_features(trunk, utterances)
    model, record = zoo_learning_curve.continue_codec(path, 3, utterances, 3, features, tmp_path / "work")
    assert record["step"] == 3 and (tmp_path / "work" / "toy" / "checkpoint.pt").is_file()
    assert path.read_bytes() == shipped_bytes
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in start.items() if k.startswith("trunk."))
    assert any(not torch.equal(after[k], v) for k, v in start.items() if k.startswith("decoder."))
    with pytest.raises(ValueError, match="counts training steps"):
        zoo_learning_curve.continue_codec(path, 0, utterances, 3, features, tmp_path / "work")


def test_the_learning_curve_report_gives_each_codecs_change_and_the_cpu_time_spent():
    rows = [{"codec": "a", "vq": "mvq", "aux": "none", "dec": "freq", "bitrate": 4000, "steps": 700,
             "extra_steps": 2100, "extra_cpu_minutes": 6.0, "before": 0.85, "after": 0.70},
            {"codec": "b", "vq": "sq", "aux": "none", "dec": "freq", "bitrate": 997, "steps": 700,
             "extra_steps": 2100, "extra_cpu_minutes": 4.5, "before": 0.92, "after": 0.95}]
    text = zoo_learning_curve.markdown(rows, 8)
    assert "| a | mvq | none | freq | 4000 | 700 | 2100 | 6.0 | 0.850 | 0.700 | -0.150 |" in text
    assert "| b | sq | none | freq | 997 | 700 | 2100 | 4.5 | 0.920 | 0.950 | +0.030 |" in text
    assert "Zoo CPU time spent here: 10.5 CPU-min." in text


def test_the_learning_curve_refuses_unknown_codecs_naming_the_zoos(tmp_path, capsys):
    with pytest.raises(SystemExit):
        zoo_learning_curve.main(["--codecs", "no_such_codec", "--work", str(tmp_path)])
    assert "unknown codec(s) ['no_such_codec']; the zoo has: " in capsys.readouterr().err


def test_labelled_embeddings_give_each_row_its_embeddings_logits_labels_and_source(built):
    from codectrace.resolve import load_split

    torch.manual_seed(0)
    model = mc.CodecTraceForSourceTracing(tiny_config("M1", chunk_samples=16000, head_type="stats_pooling"))
    rows = load_split(str(built), "aux", "validation")
    flat = labelled_embeddings(model, rows)
    assert set(flat) == {*(f"{kind}_{t}" for kind in ("emb", "logits") for t in model.config.tasks),
                         *(f"label_{t}" for t in ("bin", *TAXONOMY_TASKS)), "source"}
    assert flat["emb_vq"].shape == (len(rows), 2 * model.config.hidden_size)
    assert flat["logits_dec"].shape == (len(rows), 3)
    assert flat["label_aux"].tolist() == rows["aux"] and flat["source"].tolist() == rows["source"]


def test_the_set_up_interventions_each_change_the_one_property_they_name():
    from research import unfamiliar_setups

    rate = 44100
    quiet, loud = np.zeros(rate // 2, np.float32), 0.5 * np.sin(np.arange(rate) / 7).astype(np.float32)
    clip = np.concatenate([quiet, loud, quiet])
    assert len(unfamiliar_setups.trimmed(clip, rate)) == pytest.approx(len(loud), abs=8)
    floored = unfamiliar_setups.noise_floor(clip, rate)
    assert 10 * np.log10(np.mean(floored[: rate // 2] ** 2)) == pytest.approx(-60.0, abs=0.5)
    reencoded = unfamiliar_setups.vorbis_reencoded(clip, rate)
    assert len(reencoded) == len(clip) and 0 < np.abs(reencoded - clip).max() < 0.5
    decay = np.concatenate([loud, 0.02 * loud])  # 34 dB under the peak: kept at 40 dB, cut at 30
    assert len(unfamiliar_setups.CHANGES["trimmed at 30 dB"](decay, rate)) == pytest.approx(len(loud), abs=8)
    assert len(unfamiliar_setups.trimmed(decay, rate)) == pytest.approx(len(decay), abs=8)


def test_the_high_pass_removes_rumble_and_keeps_speech_frequencies():
    from research import unfamiliar_setups

    rate, t = 16000, np.arange(16000) / 16000
    for hertz, kept in ((50.0, False), (1000.0, True)):
        tone = np.sin(2 * np.pi * hertz * t).astype(np.float32)
        out = unfamiliar_setups.high_passed(150.0)(tone, rate)[rate // 2:]  # past the filter's onset
        assert bool(np.sqrt(np.mean(out ** 2)) > 0.6) == kept


def test_the_set_up_probe_counts_per_change_the_share_called_spoof(tmp_path):
    import soundfile as sf

    from research import unfamiliar_setups

    paths = []
    for index, level in enumerate((0.0, 0.5)):  # a silent clip and a loud one
        paths.append(tmp_path / f"c{index}.wav")
        sf.write(paths[-1], level * np.ones(16000, np.float32), 16000)

    def tracer(x, sampling_rate):  # calls spoof whatever holds a floor of noise or a loud level
        return {"decision": "spoof" if np.abs(x).max() > 1e-4 else "bonafide"}

    assert unfamiliar_setups.folder_rates(tracer, paths) == {
        "as recorded": 0.5, "trimmed": 0.5, "noise floor": 1.0, "vorbis re-encoded": 0.5, "trimmed at 30 dB": 0.5,
        "high-pass 100 Hz": 0.5, "high-pass 150 Hz": 0.5}
