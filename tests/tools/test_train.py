"""Training (codectrace.training, the library behind train.py) end to end on the fixture: files, reload, learning,
resume, DDP through train.py, push."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from datasets import load_dataset
from safetensors.torch import load_file
from transformers import AutoFeatureExtractor, AutoModel, TrainerCallback, set_seed

from codectrace import arguments, codec_adversary, model_building, selection, training
from codectrace import trainer as trainer_module
from codectrace.audio import load_audio
from codectrace.hub import push_model_folder
from codectrace.metrics import softmax
from codectrace.testing import tiny_demo_args as tiny_args
from codectrace.testing import tiny_preset_args, torchrun_command
from codectrace.weight_averaging import WeightAveraging

ROOT = Path(__file__).resolve().parents[2]


def test_a_run_writes_model_card_metrics_and_evaluation_files(trained):
    output_dir, result = trained
    for name in ("model.safetensors", "config.json", "preprocessor_config.json", "modeling_codectrace.py",
                 "configuration_codectrace.py", "aasist.py", "feature_extraction_codectrace.py", "model_card.md",
                 "README.md", "all_results.json"):
        assert (output_dir / name).exists(), name
    for eval_set in ("aux_test", "cors_eval", "cosg_eval", "cosg_seen", "val_codecs", "in_domain_validation"):
        folder = output_dir / "eval" / eval_set
        assert (folder / "metrics.json").exists() and (folder / "per_source.md").exists()
        assert (folder / "confusion_vq.png").stat().st_size > 1000
        assert (folder / "scores_bin.txt").exists() and (folder / "scores_dec.txt").exists()
    card = (output_dir / "model_card.md").read_text()
    assert "model-index" in card and "in-domain (CoRS)" in card and "| learning rate / weight decay |" in card
    results = json.loads((output_dir / "all_results.json").read_text())
    assert set(results["eval"]) == {"aux_test", "cors_eval", "cosg_eval", "cosg_seen", "val_codecs",
                                    "in_domain_validation"}
    assert "BIN EER %" in result["table"]


def test_the_demo_run_is_calibrated_on_validation_and_evaluation_reports_before_and_after(trained):
    output_dir, _ = trained
    config = json.loads((output_dir / "config.json").read_text())
    assert set(config["calibration_temperatures"]) == {"bin", "vq", "aux", "dec"}
    assert all(t > 0 for t in config["calibration_temperatures"].values())
    overall = json.loads((output_dir / "eval" / "cors_eval" / "metrics.json").read_text())["overall"]
    for task in ("bin", "vq", "aux", "dec"):
        assert {"ece", "brier", "ece_uncalibrated", "brier_uncalibrated"} <= set(overall[task])
        assert (output_dir / "eval" / "cors_eval" / f"reliability_{task}.png").stat().st_size > 1000
    card = (output_dir / "model_card.md").read_text()
    assert ("| calibration | temperature scaling per head on the validation split; clips called unknown: a "
            "temperature per taxonomy head fitted on the validation codecs |") in card


def test_the_demo_run_fits_a_temperature_for_unknown_clips_on_the_validation_codecs_and_evaluates_with_it(trained):
    output_dir, _ = trained
    config = json.loads((output_dir / "config.json").read_text())
    known, unknown = config["calibration_temperatures"], config["calibration_temperatures_unknown"]
    assert set(unknown) == {"vq", "aux", "dec"} and all(t > 0 for t in unknown.values())
    for eval_set in ("cors_eval", "val_codecs"):
        overall = json.loads((output_dir / "eval" / eval_set / "metrics.json").read_text())["overall"]
        assert overall["bin"]["temperature"] == pytest.approx(known["bin"])
        for task in ("vq", "aux", "dec"):
            used = overall[task]["temperature"]
            assert {round(t, 6) for t in np.atleast_1d(used)} <= {round(known[task], 6), round(unknown[task], 6)}
    assert isinstance(overall["vq"]["temperature"], list)  # some validation-codec clips were called unknown


def test_codectrace_evaluate_gives_the_training_runs_figures_unknown_temperature_included(trained, built, tmp_path):
    from codectrace.cli import main as cli_main

    output_dir, _ = trained
    assert cli_main(["evaluate", "--model", str(output_dir), "--dataset", str(built), "--configs", "val_codecs",
                     "--split", "validation", "--output-dir", str(tmp_path)]) == 0
    again = json.loads((tmp_path / "eval" / "val_codecs_validation" / "metrics.json").read_text())["overall"]
    first = json.loads((output_dir / "eval" / "val_codecs" / "metrics.json").read_text())["overall"]
    for task in ("bin", "vq", "aux", "dec"):
        assert again[task]["ece"] == pytest.approx(first[task]["ece"], abs=1e-4)
        assert again[task]["temperature"] == pytest.approx(first[task]["temperature"])


def test_codectrace_evaluate_leaves_no_scratch_folder_behind(trained, built, tmp_path, monkeypatch):
    import tempfile

    from codectrace.cli import main as cli_main

    scratch_root = tmp_path / "tmp"
    scratch_root.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch_root))
    assert cli_main(["evaluate", "--model", str(trained[0]), "--dataset", str(built), "--configs", "val_codecs",
                     "--split", "validation", "--max-samples", "4", "--output-dir", str(tmp_path / "out")]) == 0
    assert list(scratch_root.iterdir()) == []


def test_the_demo_run_selects_its_model_on_both_kinds_of_validation_data_and_reports_each(trained, built):
    output_dir, _ = trained
    state = json.loads(next(output_dir.glob("checkpoint-*/trainer_state.json")).read_text())
    in_domain = load_dataset(str(built), "aux", split="validation")
    validation_codecs = load_dataset(str(built), "val_codecs", split="validation")
    evaluations = [entry for entry in state["log_history"] if "eval_selection_score" in entry]
    assert evaluations and all(entry["eval_selection_score"] == pytest.approx(
        (entry["eval_selection_score_in_domain_validation"] + entry["eval_selection_score_val_codecs"]) / 2)
        for entry in evaluations)  # the demo selects on the mean of the two kinds
    for name, rows in (("val_codecs", validation_codecs), ("in_domain_validation", in_domain)):
        assert len((output_dir / "eval" / name / "scores_bin.txt").read_text().splitlines()) == len(rows), name
    assert "| model selection | selection_score on the validation speakers with the training codecs and with the " \
        "validation codecs together (the mean of the two kinds' scores) |" in (output_dir / "model_card.md").read_text()


@pytest.mark.parametrize("selection_set", ["validation", "val_codecs", "validation+val_codecs"])
def test_the_selection_set_is_the_validation_split_the_validation_codecs_or_both(built, selection_set):
    from codectrace.resolve import load_split

    _, data_args, _ = arguments.parse_arguments(["--dataset", str(built), "--selection_set", selection_set])
    in_domain, unseen = load_split(str(built), "aux", "validation"), load_split(str(built), "val_codecs", "validation")
    known, unknown = list(in_domain["utt_id"]), list(unseen["utt_id"])
    expected = {"validation": known, "val_codecs": unknown, "validation+val_codecs": known + unknown}[selection_set]
    parts = selection.validation_sets(data_args, in_domain)
    assert list(selection.selection_split(data_args, parts)["utt_id"]) == expected


def test_the_validation_codecs_are_refused_in_one_line_when_the_dataset_has_none(fixture_root, tmp_path):
    from dataset_scripts import build_codecfake_plus as builder
    from dataset_scripts.protocols import CONFIGS

    without = tmp_path / "plus"
    configs = tuple(c for c in CONFIGS if c != "val_codecs")
    builder.build(fixture_root, fixture_root / "protocols", without, configs=configs, progress=False)
    with pytest.raises(ValueError, match="pass --selection_set validation"):
        training.run(tiny_args(without, tmp_path / "o", "--num_train_epochs", "1"))


def test_the_official_preset_does_not_calibrate_or_score_unknown_sources():
    _, _, official = arguments.parse_arguments(["--preset", "official", "--dataset", "x"])
    assert not official.calibrate and not official.unknown_source


def test_the_demo_run_saves_an_unknown_source_scorer_and_measures_it_on_unseen_codecs(trained):
    from codectrace.unknown_source import UnknownSourceScorer

    output_dir, result = trained
    scorer = UnknownSourceScorer.load(output_dir)  # the BIN head's too: the unfamiliar-audio warning reads it
    assert list(scorer.heads) == ["bin", "vq", "aux", "dec"] and all(h.threshold > 0 for h in scorer.heads.values())
    unknown = json.loads((output_dir / "all_results.json").read_text())["unknown_source"]
    assert sorted(unknown) == ["aux", "dec", "vq"]  # measured on unseen codecs: the taxonomy heads
    for task in ("vq", "aux", "dec"):
        assert unknown[task]["score"] == "knn" and 0.0 <= unknown[task]["knn"]["auroc"] <= 1.0
        assert {"max_softmax_probability", "energy", "correct_turned_unknown"} <= set(unknown[task])
    assert "Unknown source" in result["table"] and "| VQ |" in result["table"]


def test_the_demo_run_saves_the_codec_identity_that_enrolment_compares_clips_in(trained):
    from codectrace.codec_identity import BINS, CodecIdentity
    from codectrace.hub import load_tracer

    identity = CodecIdentity.load(trained[0])
    assert len(identity.sources) >= 2 and identity.projection.shape[0] == 2 * BINS
    assert identity.centroids.shape == (len(identity.sources), identity.projection.shape[1])
    assert load_tracer(str(trained[0]), precision="fp32").identity_space == identity.space


def test_score_files_have_the_official_layout(trained):
    folder = trained[0] / "eval" / "cors_eval"
    bin_line = (folder / "scores_bin.txt").read_text().splitlines()[0].split()
    vq_line = (folder / "scores_vq.txt").read_text().splitlines()[0].split()
    assert len(bin_line) == 2 and 0 <= float(bin_line[1]) <= 1
    assert len(vq_line) == 5 and sum(map(float, vq_line[1:])) == pytest.approx(1, abs=1e-4)


def test_the_saved_model_reloads_and_reproduces_the_scores(trained, fixture_root):
    output_dir, _ = trained
    model = AutoModel.from_pretrained(output_dir)
    extractor = AutoFeatureExtractor.from_pretrained(output_dir)
    utt, score = (output_dir / "eval" / "cors_eval" / "scores_bin.txt").read_text().splitlines()[0].split()
    path = next((fixture_root / "all_data_16k").glob(f"{utt}.*"))
    with torch.no_grad():
        logits = model(**extractor(load_audio(path), sampling_rate=16000)).bin_logits.numpy()
    assert softmax(logits)[0, 1] == pytest.approx(float(score), abs=1e-5)


def test_the_best_checkpoint_is_the_one_saved(trained):
    output_dir, _ = trained
    last = max(output_dir.glob("checkpoint-*"), key=lambda p: int(p.name.split("-")[1]))
    state = json.loads((last / "trainer_state.json").read_text())
    best = Path(state["best_model_checkpoint"])
    saved, best_weights = load_file(output_dir / "model.safetensors"), load_file(best / "model.safetensors")
    assert saved.keys() == best_weights.keys()
    assert all(torch.equal(saved[name], best_weights[name]) for name in saved)
    if best.name != last.name:  # a later, worse epoch was not what got saved
        last_weights = load_file(last / "model.safetensors")
        assert not all(torch.equal(saved[name], last_weights[name]) for name in saved)


def test_loss_decreases_on_the_easy_fixture(built, tmp_path):
    result = training.run(tiny_args(built, tmp_path / "m", "--num_train_epochs", "15", "--learning_rate", "3e-3",
                                 "--eval_strategy", "no", "--save_strategy", "no", "--load_best_model_at_end",
                                 "False", "--eval_configs", "cosg_seen"))
    losses = [entry["loss"] for entry in result["trainer"].state.log_history if "loss" in entry]
    assert len(losses) >= 10
    assert np.mean(losses[-3:]) < 0.8 * np.mean(losses[:3])
    assert result["results"]["cosg_seen"]


def test_early_stopping_ends_training_after_patience_evaluations_without_improvement(built, tmp_path):
    # A zero learning rate keeps the validation score flat: epoch 1 sets the best, epochs 2 and 3 do not beat it.
    output_dir = tmp_path / "m"
    state = training.run(tiny_args(built, output_dir, "--num_train_epochs", "8", "--learning_rate", "0",
                                "--early_stopping_patience", "2", "--eval_configs", "cosg_seen"))["trainer"].state
    assert state.epoch == 3
    assert state.best_model_checkpoint.endswith(f"checkpoint-{state.global_step // 3}")
    assert "| epochs | 8, early stopping after 2 evaluations without improvement (stopped after 3) |" in (
        output_dir / "model_card.md").read_text()


class StopInEpoch(TrainerCallback):
    def __init__(self, epoch):
        self.epoch = epoch

    def on_step_end(self, args, state, control, **kwargs):
        if state.epoch > self.epoch - 1:
            raise KeyboardInterrupt("simulated kill")


def test_a_resumed_run_keeps_its_early_stopping_count(built, tmp_path):
    # Killed in epoch 3 after one evaluation without improvement (epoch 2): the resumed run stops after epoch 3,
    # as an uninterrupted one would, not after epoch 4 with a fresh count.
    args = tiny_args(built, tmp_path / "m", "--num_train_epochs", "8", "--learning_rate", "0",
                     "--early_stopping_patience", "2", "--eval_configs", "cosg_seen")
    with pytest.raises(KeyboardInterrupt):
        training.run(args, callbacks=[StopInEpoch(3)])
    assert training.run(args)["trainer"].state.epoch == 3


def test_early_stopping_is_off_in_the_paper_recipe_and_on_in_the_demo():
    _, _, official = arguments.parse_arguments(["--preset", "official", "--dataset", "x"])
    _, _, demo = arguments.parse_arguments([])
    assert trainer_module.early_stopping(official) == []
    assert [c.early_stopping_patience for c in trainer_module.early_stopping(demo)] == [5]
    _, _, switched_off = arguments.parse_arguments(["--preset", "demo", "--early_stopping_patience", "0"])
    assert trainer_module.early_stopping(switched_off) == []


def test_early_stopping_without_best_model_selection_is_refused(capsys):
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--preset", "demo", "--early_stopping_patience", "3", "--load_best_model_at_end",
                               "False"])
    assert "needs evaluation" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--preset", "demo", "--early_stopping_patience", "-1"])


def test_the_demo_presets_early_stopping_gives_way_when_evaluation_is_off():
    _, _, args = arguments.parse_arguments(["--preset", "demo", "--eval_strategy", "no", "--save_strategy", "no",
                                        "--load_best_model_at_end", "False"])
    assert trainer_module.early_stopping(args) == []


class StopAt(TrainerCallback):
    def __init__(self, step):
        self.step = step

    def on_step_end(self, args, state, control, **kwargs):
        if state.global_step == self.step:
            raise KeyboardInterrupt("simulated kill")


def test_a_killed_run_resumes_from_its_last_checkpoint(built, tmp_path):
    output_dir = tmp_path / "m"
    args = tiny_args(built, output_dir, "--max_steps", "6", "--save_strategy", "steps", "--save_steps", "2",
                     "--eval_strategy", "steps", "--eval_steps", "2", "--eval_configs", "cosg_seen")
    with pytest.raises(KeyboardInterrupt):
        training.run(args, callbacks=[StopAt(5)])
    assert sorted(p.name for p in output_dir.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-4"]
    assert not (output_dir / "model.safetensors").exists()
    state = training.run(args)["trainer"].state
    assert state.global_step == 6
    trained_steps = [entry["step"] for entry in state.log_history if "loss" in entry]
    assert trained_steps[-2:] == [5, 6] and (output_dir / "model.safetensors").exists()


@pytest.mark.slow
def test_two_process_ddp_run_completes_and_its_model_reloads(built, tmp_path):
    output_dir = tmp_path / "ddp"
    command = torchrun_command(ROOT / "train.py", tiny_args(
        built, output_dir, "--max_steps", "3", "--use_cpu", "True", "--ddp_backend", "gloo", "--eval_strategy",
        "steps", "--eval_steps", "3", "--save_strategy", "steps", "--save_steps", "3", "--eval_configs", "cosg_seen",
        "--codec_adversary_weight", "0.5"))  # its gradients are averaged outside DDP
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert "pushed" not in result.stdout
    model = AutoModel.from_pretrained(output_dir)
    extractor = AutoFeatureExtractor.from_pretrained(output_dir)
    with torch.no_grad():
        out = model(**extractor(np.random.default_rng(0).standard_normal(16000) * 0.1, sampling_rate=16000))
    assert torch.isfinite(out.dec_logits).all()
    metrics = json.loads((output_dir / "eval" / "cosg_seen" / "metrics.json").read_text())
    assert metrics["overall"]["bin"]["count"] == 20  # every row evaluated once across the two processes
    assert (output_dir / "checkpoint-3" / "codec_adversary.pt").is_file()


@pytest.mark.slow
@pytest.mark.parametrize("preset", ["official", "demo"])
def test_two_process_ddp_with_gradient_checkpointing_trains_past_step_two(built, tmp_path, preset):
    # Under gradient checkpointing the Trainer gives DDP find_unused_parameters=False: one parameter without a
    # gradient would stop the run at step 2.
    output_dir = tmp_path / preset
    command = torchrun_command(ROOT / "train.py", tiny_preset_args(
        preset, built, output_dir, "--max_steps", "3", "--gradient_checkpointing", "True", "--use_cpu", "True",
        "--ddp_backend", "gloo", "--save_strategy", "steps", "--save_steps", "3"))
    env = dict(os.environ, OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1")
    result = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-4000:]
    assert (output_dir / "checkpoint-3").is_dir()


def test_push_uploads_the_model_folder_without_checkpoints(trained, recording_api):
    output_dir, _ = trained
    api = recording_api
    assert push_model_folder(str(output_dir), "me/codectrace-demo", api=api).endswith("/commit/0")
    upload = api.calls[1][1]
    assert upload["folder_path"] == str(output_dir) and "checkpoint-*" in upload["ignore_patterns"]
    # What would be uploaded loads as the trained model, with its card.
    model = AutoModel.from_pretrained(output_dir)
    saved = load_file(output_dir / "model.safetensors")
    assert all(torch.equal(model.state_dict()[name], value) for name, value in saved.items())
    assert (output_dir / "README.md").read_text().startswith("---")


def test_presets_fill_defaults_and_flags_win():
    model_args, data_args, training_args = arguments.parse_arguments(["--preset", "official", "--dataset", "x"])
    assert (training_args.learning_rate, training_args.weight_decay, training_args.num_train_epochs) == (1e-6, 1e-4, 20)
    assert (training_args.per_device_train_batch_size, training_args.seed) == (8, 1234)
    assert training_args.optimizer_recipe == "official_adam" and data_args.augment == "rawboost5"
    assert model_args.chunk_samples == 64600 and data_args.crop == "first"
    assert model_args.head_type == "aasist" and not model_args.use_weighted_layer_sum
    _, _, demo = arguments.parse_arguments(["--preset", "demo", "--learning_rate", "0.01"])
    assert demo.learning_rate == 0.01 and demo.optimizer_recipe == "trainer"


def test_only_the_demo_selects_on_validation_codecs_and_other_values_are_refused():
    _, official, _ = arguments.parse_arguments(["--preset", "official", "--dataset", "x"])
    _, demo, _ = arguments.parse_arguments([])
    assert (official.selection_set, demo.selection_set) == ("validation", "validation+val_codecs")
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--selection_set", "cosg_eval"])  # never the test codecs


def test_the_official_preset_neither_clips_gradients_nor_keeps_an_incomplete_batch():
    _, _, official = arguments.parse_arguments(["--preset", "official", "--dataset", "x"])
    assert official.max_grad_norm == 0 and official.train_drop_last and not official.dataloader_drop_last
    _, _, demo = arguments.parse_arguments([])  # the Trainer's defaults, with which the demo was measured
    assert demo.max_grad_norm == 1.0 and not demo.train_drop_last


def test_only_the_demo_trains_on_partly_spoofed_windows():
    _, official, _ = arguments.parse_arguments(["--preset", "official", "--dataset", "x"])
    _, demo, _ = arguments.parse_arguments([])
    assert (official.partial_spoof_rate, demo.partial_spoof_rate) == (0.0, 0.5)  # demo: chosen on validation


def test_only_the_demo_has_a_frame_head_which_alone_learns_from_spliced_windows():
    official_model, official, _ = arguments.parse_arguments(["--preset", "official", "--dataset", "x"])
    demo_model, demo, _ = arguments.parse_arguments([])
    assert not official_model.frame_head and official.partial_spoof_bin_labels  # the paper: neither
    assert demo_model.frame_head and not demo.partial_spoof_bin_labels  # chosen on validation


def test_a_partial_spoof_rate_outside_0_1_is_a_usage_error(capsys):
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--partial_spoof_rate", "1.5"])
    assert "--partial_spoof_rate is a share of training windows, 0 to 1 (0 = off), got 1.5" in capsys.readouterr().err


def test_spliced_windows_kept_from_the_bin_head_need_a_frame_head(capsys):
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--partial_spoof_bin_labels", "False", "--frame_head", "False"])
    assert "--partial_spoof_bin_labels False needs --frame_head True" in capsys.readouterr().err


def test_a_frame_head_trains_on_the_spliced_frames_and_is_saved(built, tmp_path):
    output_dir = tmp_path / "frames"
    result = training.run(tiny_preset_args("demo", built, output_dir, "--max_steps", "2", "--frame_head", "True",
                                           "--partial_spoof_rate", "1.0", "--partial_spoof_bin_labels", "False",
                                           "--logging_steps", "1"))
    model = AutoModel.from_pretrained(output_dir)
    assert model.config.frame_head
    set_seed(result["trainer"].args.seed)  # what the run started from
    initial = type(model)(model.config)
    assert not torch.allclose(model.frame_head.weight, initial.frame_head.weight)  # it learnt
    losses = [entry["loss"] for entry in result["trainer"].state.log_history if "loss" in entry]
    assert len(losses) == 2 and all(np.isfinite(losses))


@pytest.mark.parametrize("variant, sampling", [("S_VQ", "vq"), ("D_VQ", "vq"), ("S_DEC", "dec"), ("D_DEC", "dec"),
                                               ("S_AUX", "aux"), ("D_AUX", "aux"), ("S_BIN", "aux"), ("M1", "aux"),
                                               ("M2", "aux")])
def test_each_variant_trains_on_the_sampling_the_paper_gives_it(variant, sampling):
    _, data_args, _ = arguments.parse_arguments(["--preset", "official", "--dataset", "x", "--variant", variant])
    assert data_args.dataset_config == sampling


def test_an_explicit_dataset_config_wins_over_the_variants_default():
    _, data_args, _ = arguments.parse_arguments(["--preset", "official", "--dataset", "x", "--variant", "S_VQ",
                                             "--dataset_config", "dec"])
    assert data_args.dataset_config == "dec"
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--dataset", "x", "--dataset_config", "bal_vq"])


def test_the_demo_preset_uses_the_measured_cpu_model():
    model_args, data_args, training_args = arguments.parse_arguments([])
    assert training_args.preset == "demo"
    assert (data_args.augment, model_args.task_weighting) == ("channel", "uncertainty")  # chosen on validation codecs
    assert (model_args.backbone_size, model_args.head_type) == ("stft-tiny", "stats_pooling")
    assert model_args.use_weighted_layer_sum and model_args.feature_encoder == "stft_phase"
    assert model_args.stft_features == ["phase_deviation", "weighted_phase_deviation"]
    model = model_building.build_model(model_args)
    assert model.config.head_type == "stats_pooling" and model.config.use_weighted_layer_sum
    assert model.config.feature_encoder == "stft_phase"
    assert model.config.stft_features == ["phase_deviation", "weighted_phase_deviation"]


def test_only_the_demo_preset_saves_silence_trimming_in_its_config():
    demo, _, _ = arguments.parse_arguments([])
    official, _, _ = arguments.parse_arguments(["--preset", "official"])
    assert model_building.config_options(demo)["trim_silence_db"] == 50.0  # chosen on validation data
    assert model_building.config_options(official)["trim_silence_db"] is None  # the paper: no trimming
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--trim_silence_db", "-3"])


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--variant", "M3"])
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--head_type", "mlp"])
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--feature_encoder", "mfcc"])
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--stft_features", "phase"])
    with pytest.raises(SystemExit):  # the STFT front end needs a two-conv backbone
        arguments.parse_arguments(["--preset", "demo", "--backbone_size", "small"])


def test_continuing_a_codectrace_model_keeps_its_heads_and_applies_freezing(trained):
    model_args = arguments.ModelArguments(variant="S_BIN", model_name_or_path=str(trained[0]), freeze_backbone=True)
    model = model_building.build_model(model_args)
    assert model.config.tasks == ["bin", "vq", "aux", "dec"]
    assert not any(p.requires_grad for p in model.wav2vec2.parameters())


def test_the_official_preset_trains_with_torch_adam_and_l2_weight_decay(built, tmp_path):
    args = ["--preset", "official", "--dataset", str(built), "--backbone_size", "tiny", "--aasist_size", "tiny",
            "--chunk_samples", "16000", "--output_dir", str(tmp_path / "official"), "--max_steps", "2",
            "--dataloader_num_workers", "0", "--eval_strategy", "no", "--save_strategy", "no",
            "--load_best_model_at_end", "False", "--eval_configs", "cosg_seen", "--disable_tqdm", "True"]
    trainer = training.run(args)["trainer"]
    optimizer = trainer.optimizer
    optimizer = getattr(optimizer, "optimizer", optimizer)  # accelerate wraps it
    assert type(optimizer) is torch.optim.Adam
    assert optimizer.defaults["lr"] == 1e-6 and optimizer.defaults["weight_decay"] == 1e-4
    assert trainer.args.lr_scheduler_type == "constant"
    assert trainer.args.max_grad_norm == 0
    # The last incomplete batch is dropped in training only: evaluation above scored every row.
    assert trainer.get_train_dataloader().batch_sampler.drop_last
    assert not trainer.get_eval_dataloader().batch_sampler.drop_last
    metrics = json.loads((tmp_path / "official" / "eval" / "cosg_seen" / "metrics.json").read_text())
    assert metrics["overall"]["bin"]["count"] == 20
    assert trainer.train_dataset._format_kwargs["transform"].augment == "rawboost5"


@pytest.mark.skipif(not Path("/sys").is_dir(), reason="no /sys to stand for an unwritable folder")
def test_an_unwritable_output_folder_is_refused_before_anything_is_built(built):
    script = subprocess.run([sys.executable, str(ROOT / "train.py"), "--preset", "demo", "--dataset", str(built),
                             "--output_dir", "/sys/codectrace-out"], capture_output=True, text=True, timeout=300,
                            env=dict(os.environ, HF_HUB_OFFLINE="1"))
    assert script.returncode == 2 and "Traceback" not in script.stderr
    assert script.stderr.strip().splitlines()[-1].startswith("error: --output_dir: cannot write in /sys/codectrace-out")
    assert "model M1" not in script.stderr  # refused before the model was built


def test_a_missing_dataset_is_refused_with_what_to_give(tmp_path):
    with pytest.raises(ValueError, match="cannot load config 'aux' split 'train'.*build_codecfake_plus build"):
        training.run(["--preset", "demo", "--dataset", str(tmp_path / "nothing"), "--output_dir", str(tmp_path / "o")])


@pytest.mark.needs_synthesizers
@pytest.mark.slow
def test_the_demo_job_builds_codecfake_mini_once(tmp_path):
    from datasets import load_dataset

    from dataset_scripts.build_codecfake_mini import ensure_codecfake_mini

    folder = ensure_codecfake_mini(tmp_path / "release", tmp_path / "dataset", utterances=1)
    assert folder == tmp_path / "dataset"
    assert "# CodecFake-mini" in (tmp_path / "dataset" / "README.md").read_text()
    cosg = load_dataset(str(folder), "cosg_eval", split="test")
    assert len(cosg) > 0 and (tmp_path / "release" / "codecfake_mini.json").is_file()
    stamp = (folder / "README.md").stat().st_mtime_ns
    assert ensure_codecfake_mini(tmp_path / "release", tmp_path / "dataset", utterances=1) == folder
    assert (folder / "README.md").stat().st_mtime_ns == stamp  # built once, then reused


def test_the_seed_sweep_tabulates_finished_runs_and_reuses_them(trained, tmp_path, capsys):
    import shutil

    from benchmarks import demo_seeds

    for seed in (1, 2):
        shutil.copytree(trained[0], tmp_path / f"seed-{seed}", ignore=shutil.ignore_patterns("checkpoint-*"))
    out = tmp_path / "table.md"
    demo_seeds.main(["--seeds", "1", "2", "--runs", str(tmp_path), "--out", str(out)])  # nothing to train
    table = out.read_text()
    assert "Over 2 seeds (1, 2): mean [min-max]. Trained on: " in table
    assert "seed 1: done" not in capsys.readouterr().out
    for row in ("| in-domain | ", "| validation codecs | ", "| test codecs | ", "| synthetic | ",
                "| test codecs: VQ macro-F1 >= 0.7 | ", "| test codec | seed 1 | seed 2 |",
                "| in domain: VQ ECE after calibration <= 0.1 | ", "| test codecs: DEC unknown-source AUROC >= 0.9 | ",
                "| in domain: correct AUX answers turned unknown <= 0.05 | "):
        assert row in table, row
    assert "Expected calibration error" in table and "| in-domain | " in table.split("Expected calibration")[1]


def test_the_seed_sweep_can_leave_every_test_codec_figure_out(trained, tmp_path):
    import shutil

    from benchmarks import demo_seeds

    shutil.copytree(trained[0], tmp_path / "seed-1", ignore=shutil.ignore_patterns("checkpoint-*"))
    out = tmp_path / "table.md"
    demo_seeds.main(["--seeds", "1", "--runs", str(tmp_path), "--out", str(out), "--hide-test"])
    table = out.read_text()
    assert "| validation codecs | " in table and "validation speakers' bona fide clips" in table
    assert "Unknown source, validation-codec against in-domain validation spoof clips" in table
    for hidden in ("test codec", "test-codec", "in-domain (CoRS)", "| in-domain |", "held-out test speakers"):
        assert hidden not in table, hidden


def test_false_alarms_are_counted_per_speaker_kind_on_bona_fide_rows_only(tmp_path):
    from benchmarks import demo_seeds

    scores = tmp_path / "eval" / "cors_eval" / "scores_bin.txt"
    scores.parent.mkdir(parents=True)
    # scores are P(bona fide): a bona fide clip is a false alarm when it is <= 0.5
    scores.write_text("rca_001 0.2\nrca_002 0.9\nrca_001_codecx 0.1\ns22_001 0.7\ns22_001_codecx 0.9\n")
    assert demo_seeds.false_alarms(tmp_path, {"rca": "real", "s22": "synthetic"}) == {"real": 50.0, "synthetic": 0.0}


@pytest.mark.slow
def test_the_seed_sweep_records_a_failed_seed_and_goes_on(tmp_path):
    from benchmarks import demo_seeds

    assert demo_seeds.run_seed(3, tmp_path, 1, ["--variant", "NOT_A_VARIANT"]) is None
    assert "--variant must be one of" in (tmp_path / "seed-3" / "train.log").read_text()


class RecordingAveraging(WeightAveraging):
    """WeightAveraging that notes, at every evaluation, whether the model held the average (and the average), and
    after every save whether the model is back on weights of its own."""

    last = None

    def __init__(self, decay):
        super().__init__(decay)
        self.evaluations, self.own_after_save = [], []
        RecordingAveraging.last = self

    def _holds_average(self, model) -> bool:
        return all(torch.equal(p, self.average[name]) for name, p in model.named_parameters())

    def on_evaluate(self, args, state, control, model=None, **kwargs):
        self.evaluations.append((state.global_step, self._holds_average(model),
                                 {name: self.average[name].clone() for name, _ in model.named_parameters()}))

    def on_save(self, args, state, control, model=None, **kwargs):
        self.own_after_save.append(not self._holds_average(model))


def test_with_weight_averaging_evaluations_and_checkpoints_hold_the_average_and_training_steps_its_own_weights(
        built, tmp_path, monkeypatch):
    monkeypatch.setattr(training, "WeightAveraging", RecordingAveraging)
    output_dir = tmp_path / "m"
    training.run(tiny_args(built, output_dir, "--num_train_epochs", "2", "--learning_rate", "3e-3",
                        "--weight_averaging_decay", "0.5", "--eval_configs", "cosg_seen"))
    averaging = RecordingAveraging.last
    assert [held for _, held, _ in averaging.evaluations] == [True, True]
    assert averaging.own_after_save == [True, True]
    step, _, average = averaging.evaluations[-1]
    saved = load_file(output_dir / f"checkpoint-{step}" / "model.safetensors")
    assert all(torch.equal(saved[name], average[name]) for name in average if name in saved)
    assert "| weight averaging | moving average of the weights, decay 0.5 per step; evaluated and saved |" in (
        output_dir / "model_card.md").read_text()


def test_weight_averaging_is_off_in_the_paper_recipe_on_in_the_demo_and_a_decay_outside_zero_to_one_is_refused(
        capsys):
    assert arguments.parse_arguments(["--preset", "official"])[2].weight_averaging_decay == 0.0
    assert arguments.parse_arguments(["--preset", "demo"])[2].weight_averaging_decay == 0.998
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--preset", "demo", "--weight_averaging_decay", "1"])
    assert "--weight_averaging_decay must be in [0, 1)" in capsys.readouterr().err


def test_the_selection_score_can_be_the_mean_of_the_two_kinds_of_validation_data():
    from transformers import EvalPrediction

    from codectrace.metrics import selection_score, task_metrics

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 4, 30)
    logits = np.eye(4)[labels] * 5.0
    logits[10:] = rng.standard_normal((20, 4))  # the last 20 rows (the second part) mostly wrong
    prediction = EvalPrediction(predictions=(logits,), label_ids=(labels,))
    pooled = trainer_module.make_compute_metrics(["vq"])(prediction)
    parts = trainer_module.make_compute_metrics(["vq"], {"in_domain_validation": 10, "val_codecs": 20})(prediction)
    first = selection_score({"vq": task_metrics("vq", logits[:10], labels[:10])})
    second = selection_score({"vq": task_metrics("vq", logits[10:], labels[10:])})
    assert parts["selection_score_in_domain_validation"] == pytest.approx(first) == 1.0
    assert parts["selection_score"] == pytest.approx((first + second) / 2)
    assert pooled["selection_score"] == pytest.approx(selection_score({"vq": task_metrics("vq", logits, labels)}))
    assert pooled["selection_score"] < parts["selection_score"]  # pooled, the larger part weighs more


def test_the_mean_of_parts_applies_only_when_selection_reads_both_kinds():
    _, data, _ = arguments.parse_arguments(["--preset", "demo", "--selection_mean_of_parts", "True"])
    assert selection.averages_parts(data)
    _, data, _ = arguments.parse_arguments(["--preset", "demo", "--selection_mean_of_parts", "True",
                                        "--selection_set", "val_codecs"])
    assert not selection.averages_parts(data)


class RecordingAdversary(codec_adversary.ConditionalCodecAdversary):
    """ConditionalCodecAdversary that keeps its initial weights and the states loaded into it."""

    last = None

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.initial = {name: tensor.clone() for name, tensor in self.state_dict().items()}
        self.loaded = []
        RecordingAdversary.last = self

    def load_state_dict(self, state_dict, *args, **kwargs):
        self.loaded.append({name: tensor.clone() for name, tensor in state_dict.items()})
        return super().load_state_dict(state_dict, *args, **kwargs)


def test_a_codec_adversary_trains_beside_the_model_and_stays_out_of_the_saved_model(built, tmp_path, monkeypatch):
    monkeypatch.setattr(codec_adversary, "ConditionalCodecAdversary", RecordingAdversary)
    output_dir = tmp_path / "m"
    result = training.run(tiny_args(built, output_dir, "--num_train_epochs", "2", "--codec_adversary_weight", "0.5",
                                 "--eval_configs", "cosg_seen"))
    adversary = RecordingAdversary.last
    assert adversary.tasks == ("vq", "aux", "dec") and len(adversary.vocabulary.codecs) > 1
    assert any(not torch.equal(adversary.initial[name], tensor) for name, tensor in adversary.state_dict().items())
    logged = [entry["codec_adversary_loss"] for entry in result["trainer"].state.log_history
              if "codec_adversary_loss" in entry]
    assert logged and all(np.isfinite(logged))
    assert list(output_dir.glob("checkpoint-*/codec_adversary.pt"))
    assert not any("classifiers" in name for name in load_file(output_dir / "model.safetensors"))
    assert "| codec adversary | conditional, per taxonomy head, confusion objective, strength 0.5 (ramped) |" in (
        output_dir / "model_card.md").read_text()


class AdversaryGradientsAtStepStart(TrainerCallback):
    """Notes whether the codec adversary holds any gradient when each optimizer step begins."""

    def __init__(self):
        self.left_over = []

    def on_step_begin(self, args, state, control, **kwargs):
        self.left_over.append(any(p.grad is not None for p in RecordingAdversary.last.parameters()))


def test_each_optimizer_step_of_the_codec_adversary_starts_from_cleared_gradients(built, tmp_path, monkeypatch):
    monkeypatch.setattr(codec_adversary, "ConditionalCodecAdversary", RecordingAdversary)
    seen = AdversaryGradientsAtStepStart()
    training.run(tiny_args(built, tmp_path / "m", "--max_steps", "4", "--gradient_accumulation_steps", "2",
                        "--codec_adversary_weight", "0.5", "--eval_strategy", "no", "--save_strategy", "no",
                        "--load_best_model_at_end", "False", "--eval_configs", "cosg_seen"), callbacks=[seen])
    assert seen.left_over == [False] * 4


def test_a_resumed_run_continues_the_codec_adversary_from_its_checkpoint(built, tmp_path, monkeypatch):
    monkeypatch.setattr(codec_adversary, "ConditionalCodecAdversary", RecordingAdversary)
    output_dir = tmp_path / "m"
    args = tiny_args(built, output_dir, "--max_steps", "4", "--save_strategy", "steps", "--save_steps", "2",
                     "--eval_strategy", "steps", "--eval_steps", "2", "--eval_configs", "cosg_seen",
                     "--codec_adversary_weight", "0.5")
    with pytest.raises(KeyboardInterrupt):
        training.run(args, callbacks=[StopAt(3)])
    saved = torch.load(output_dir / "checkpoint-2" / "codec_adversary.pt", weights_only=True)
    assert training.run(args)["trainer"].state.global_step == 4
    loaded = RecordingAdversary.last.loaded
    assert len(loaded) == 1 and all(torch.equal(loaded[0][name], saved[name]) for name in saved)


def test_the_paper_recipe_has_no_codec_adversary_the_demo_has_the_chosen_one_and_a_negative_strength_is_refused(
        capsys):
    assert arguments.parse_arguments(["--preset", "official"])[2].codec_adversary_weight == 0.0
    demo = arguments.parse_arguments(["--preset", "demo"])[2]
    assert demo.codec_adversary_weight == 0.1  # chosen on validation data (docs/research/generalisation.md)
    with pytest.raises(SystemExit):
        arguments.parse_arguments(["--preset", "demo", "--codec_adversary_weight", "-1"])
    assert "--codec_adversary_weight is a strength (0 = off), got -1.0" in capsys.readouterr().err


def test_pushing_without_a_hub_id_is_refused_before_anything_is_trained(built, tmp_path):
    with pytest.raises(ValueError, match="--push_to_hub needs --hub_model_id USER/NAME"):
        training.run(tiny_args(built, tmp_path / "m", "--push_to_hub", "True"))
    assert not (tmp_path / "m" / "model.safetensors").exists()
