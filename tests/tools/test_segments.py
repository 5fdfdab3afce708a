"""Where in a recording: frames scored from the windows over them, touching spoof frames joined into segments, each
segment answered by the windows inside it, and the pipeline and CLI giving them."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from transformers import pipeline

import codectrace  # noqa: F401  (registers the pipeline task)
import codectrace.pipeline as pipeline_module
from codectrace.cli import main as cli_main
from codectrace.metrics import match_segments, segment_metrics
from codectrace.segments import (
    WindowScores,
    default_rule,
    find_segments,
    frame_head_scores,
    frame_scores,
    segment_answers,
    spoof_ranges,
)

RATE = 16000


def _windows(spoof, hop_seconds=1.0, window_seconds=2.0, vq=None):
    """Windows of 2 s every `hop_seconds` over a recording they exactly cover, with the given P(spoof)."""
    starts = np.arange(len(spoof)) * int(hop_seconds * RATE)
    vq = np.tile([0.1, 0.7, 0.1, 0.1], (len(spoof), 1)) if vq is None else vq
    return WindowScores(starts, int(window_seconds * RATE), int(starts[-1] + window_seconds * RATE),
                        np.asarray(spoof, dtype=float), {"vq": vq}, {}, {})


def test_a_frame_takes_the_rule_over_the_windows_that_cover_it():
    windows = _windows([0.0, 1.0, 0.0])  # windows over 0-2, 1-3 and 2-4 s
    low = frame_scores(windows, "min", frame_seconds=0.5)
    mean = frame_scores(windows, "mean", frame_seconds=0.5)
    assert list(low) == [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]  # every frame has a bona fide window over it
    assert list(mean) == [0.0, 0.0, 0.5, 0.5, 0.5, 0.5, 0.0, 0.0]


def test_centred_edges_move_to_the_middle_of_where_a_contains_spoof_window_puts_them():
    # a stretch at 3.5-6.5 s: every window reaching it (starts 2-6 s) says spoof, those at 1 s and 7 s do not
    windows = _windows([0, 0, 1, 1, 1, 1, 1, 0, 0])
    (plain,), _ = find_segments(windows, rule="min")
    (centred,), _ = find_segments(windows, rule="min_centred")
    assert (plain["start_seconds"], plain["end_seconds"]) == pytest.approx((3.0, 7.0))
    assert (centred["start_seconds"], centred["end_seconds"]) == pytest.approx((3.5, 6.5))


def test_centred_edges_stay_at_the_recordings_ends_and_on_a_range_too_short_to_move():
    (at_start,), _ = find_segments(_windows([1, 1, 0, 0]), rule="min_centred")
    assert at_start["start_seconds"] == 0.0 and at_start["end_seconds"] == pytest.approx(1.5)
    (short,), _ = find_segments(_windows([0, 0, 0, 1, 1, 0, 0, 0]), rule="min_centred")
    assert (short["start_seconds"], short["end_seconds"]) == pytest.approx((4.0, 5.0))


def test_an_unknown_frame_rule_is_refused_with_the_accepted_ones():
    with pytest.raises(ValueError, match=r"frame rule must be one of \['min', 'mean', 'min_centred'\]"):
        frame_scores(_windows([0.5]), "max")


LAYOUT = (10, 1600, 800.0)  # a 1-s window of ten 0.1-s frames, each centred in its tenth


def _frame_windows(spoofed_seconds, seconds=6, hop_seconds=0.5):
    """1-s windows every `hop_seconds` whose frame head scores 1 exactly on the frames centred in the spoofed
    (start, end) seconds."""
    starts = np.arange(0, (seconds - 1) / hop_seconds + 1) * int(hop_seconds * RATE)
    centres = (starts[:, None] + LAYOUT[2] + LAYOUT[1] * np.arange(10)[None, :]) / RATE
    frames = ((centres >= spoofed_seconds[0]) & (centres < spoofed_seconds[1])).astype(float)
    return WindowScores(starts.astype(int), RATE, seconds * RATE, frames.max(axis=1),
                        {"vq": np.tile([0.1, 0.7, 0.1, 0.1], (len(starts), 1))}, {}, {}, frames, LAYOUT)


def test_with_a_frame_head_the_segment_is_where_its_frames_say_to_the_frame():
    windows = _frame_windows((2.3, 3.1))
    assert default_rule(windows) == "frames"
    (segment,), contains = find_segments(windows, smooth_seconds=0.0)
    assert (segment["start_seconds"], segment["end_seconds"]) == pytest.approx((2.3, 3.1))
    assert contains == 1.0


def test_a_frame_of_the_recording_takes_the_mean_of_the_windows_scores_of_it():
    windows = _frame_windows((0, 0))
    windows.frame_spoof[1, :] = 1.0  # the window over 0.5-1.5 s alone says spoof; 0-1 and 1-2 s say bona fide
    scores, frame_seconds, offset = frame_head_scores(windows, smooth_seconds=0.0)
    assert (frame_seconds, offset) == (0.1, 0.0)
    assert list(scores[:16]) == pytest.approx([0] * 5 + [0.5] * 10 + [0])


def test_smoothing_keeps_a_lone_frame_from_making_a_segment():
    windows = _frame_windows((0, 0))
    windows.frame_spoof[2, 4] = 1.0  # one frame of one window
    assert find_segments(windows, smooth_seconds=0.0)[0] != []
    assert find_segments(windows, smooth_seconds=0.3)[0] == []


def test_the_frames_rule_needs_a_frame_head():
    with pytest.raises(ValueError, match="needs a model with a frame head"):
        find_segments(_windows([0.5, 0.5]), rule="frames")


def test_touching_frames_at_or_above_the_threshold_make_one_range():
    assert spoof_ranges(np.array([0.1, 0.6, 0.5, 0.2, 0.9]), 0.5, 1.0) == [(1.0, 3.0), (4.0, 5.0)]
    assert spoof_ranges(np.array([0.1, 0.2]), 0.5, 1.0) == []


def test_a_spoofed_stretch_is_found_where_it_is_with_the_codec_class_of_the_windows_over_it():
    vq = np.tile([0.7, 0.1, 0.1, 0.1], (9, 1))
    vq[4:6] = [0.1, 0.1, 0.1, 0.7]  # the spoofed windows say `sq`
    segments, contains = find_segments(_windows([0, 0, 0, 0, 1, 1, 0, 0, 0], 1.0, 1.0, vq), rule="min")
    assert [(s["start_seconds"], s["end_seconds"]) for s in segments] == [(4.0, 6.0)]
    # among the codec classes (the segment is spoofed): 0.7 of the 0.9 that is not `real`
    assert segments[0]["heads"]["vq"] == {"label": "sq", "probability": pytest.approx(0.7 / 0.9), "known": None}
    assert contains == 1.0


def test_a_recording_scored_bona_fide_everywhere_has_no_segment_and_says_how_close_it_came():
    segments, contains = find_segments(_windows([0.1, 0.3, 0.2]), rule="mean")
    assert segments == [] and contains == pytest.approx(0.25)


def test_segments_match_at_the_highest_iou_once_each():
    assert match_segments([(0, 2), (10, 12)], [(1, 2), (0.2, 2.2), (30, 31)]) == [(0, 1)]


def test_segment_f1_counts_ranges_found_in_bona_fide_recordings_as_false():
    metrics = segment_metrics([([(0.0, 2.0)], [(0.0, 2.0)]), ([(5.0, 6.0)], [])])
    assert (metrics["precision"], metrics["recall"], metrics["median_boundary_error"]) == (0.5, 1.0, 0.0)


def test_the_pipeline_gives_segments_and_a_contains_spoof_verdict_only_when_asked(tiny_m1_folder):
    tracer = pipeline("codec-source-tracing", model=str(tiny_m1_folder), precision="fp32")
    clip = (0.1 * np.random.default_rng(0).standard_normal(5 * RATE)).astype(np.float32)
    plain = tracer(clip, sampling_rate=RATE)
    result = tracer(clip, sampling_rate=RATE, return_segments=True, threshold=0.0, hop_seconds=0.5)
    assert "segments" not in plain and result["contains_spoof"] is True
    (whole,) = result["segments"]  # threshold 0: every frame is spoof
    assert (whole["start_seconds"], whole["end_seconds"]) == (0.0, 5.0) and set(whole["heads"]) == {"bin", "vq",
                                                                                                       "aux", "dec"}


def test_segments_come_from_windows_overlapping_by_half_unless_a_hop_is_given(tiny_m1_folder):
    tracer = pipeline("codec-source-tracing", model=str(tiny_m1_folder), precision="fp32")
    window = tracer.model.config.chunk_samples / RATE
    clip = (0.1 * np.random.default_rng(0).standard_normal(int(8 * window * RATE))).astype(np.float32)
    assert tracer(clip, sampling_rate=RATE)["num_windows"] == 8
    assert tracer(clip, sampling_rate=RATE, return_segments=True)["num_windows"] == 15
    assert tracer(clip, sampling_rate=RATE, return_segments=True, hop_seconds=window)["num_windows"] == 8


def test_the_cli_writes_the_segments_beside_each_files_row(tiny_m1_folder, tmp_path):
    sf.write(tmp_path / "long.wav", 0.1 * np.random.default_rng(0).standard_normal(4 * RATE), RATE)
    assert cli_main(["trace", str(tmp_path / "long.wav"), "--model", str(tiny_m1_folder), "--precision", "fp32",
                     "--segments", "--hop-seconds", "0.5", "--output", str(tmp_path / "rows.csv"), "--quiet"]) == 0
    row = next(csv.DictReader(open(tmp_path / "rows.csv")))
    segments = json.loads(row["segments"])
    assert row["contains_spoof"] in ("True", "False") and (row["contains_spoof"] == "True") == bool(segments)
    assert all({"start_seconds", "end_seconds", "spoof_score", "vq", "aux", "dec"} == set(s) for s in segments)


def test_a_frame_head_model_gives_segments_from_its_frames_and_each_windows_frame_scores(tmp_path):
    import torch

    import modeling_codectrace as mc
    from codectrace.hub import save_model_folder
    from codectrace.testing import tiny_config

    torch.manual_seed(0)
    config = tiny_config("M1", chunk_samples=16000, frame_head=True)
    save_model_folder(mc.CodecTraceForSourceTracing(config).eval(), mc.CodecTraceFeatureExtractor(chunk_samples=16000),
                      tmp_path)
    tracer = pipeline("codec-source-tracing", model=str(tmp_path), precision="fp32")
    clip = (0.1 * np.random.default_rng(0).standard_normal(3 * RATE)).astype(np.float32)
    result = tracer(clip, sampling_rate=RATE, return_segments=True, return_windows=True, threshold=0.0)
    (whole,) = result["segments"]  # threshold 0: every frame is spoof
    assert (whole["start_seconds"], whole["end_seconds"]) == (0.0, 3.0)
    frames, _, _ = config.frame_layout(16000)
    assert all(len(w["frame_spoof_scores"]) == frames for w in result["windows"])
    assert 0.0 < result["contains_spoof_score"] < 1.0  # the head's mean score, not a window's
    track = result["frame_spoof_scores"]  # what the segments read, for the Space's timeline
    _, hop, first = config.frame_layout(16000)
    assert track["step_seconds"] == hop / RATE
    assert len(track["scores"]) == int((3 * RATE - 1 - first) // hop) + 1  # every frame centred in the recording


def test_the_windows_answer_a_short_segment_with_a_codec_class_not_real():
    vq = np.tile([0.8, 0.05, 0.05, 0.1], (5, 1))  # mostly bona fide windows ...
    vq[2] = [0.6, 0.05, 0.05, 0.3]  # ... the one over the stretch leaning to `sq` among the codec classes
    answer = segment_answers(_windows([0, 0, 1, 0, 0], 1.0, 2.0, vq), 2.4, 2.9)["vq"]
    assert answer["label"] == "sq" and answer["probability"] > 0.5


def test_the_pipeline_answers_each_segment_from_the_middle_window_of_its_own_audio(tiny_m1_folder):
    tracer = pipeline("codec-source-tracing", model=str(tiny_m1_folder), precision="fp32")
    clip = (0.1 * np.random.default_rng(0).standard_normal(4 * RATE)).astype(np.float32)
    segments = [{"start_seconds": 1.0, "end_seconds": 2.5, "heads": {}}]
    tracer.answer_segments_from_their_audio(clip, segments, RATE)
    alone = tracer(clip[int(1.25 * RATE):int(2.25 * RATE)], sampling_rate=RATE)["heads"]  # its middle window (1 s)
    assert segments[0]["heads"] == {task: {key: answer[key] for key in ("label", "probability", "known")}
                                    for task, answer in alone.items()}


def test_segments_of_a_recording_not_at_16_khz_read_the_audio_preprocess_decoded(tiny_m1_folder, tmp_path,
                                                                               monkeypatch):
    path = str(tmp_path / "clip.wav")
    sf.write(path, (0.1 * np.random.default_rng(0).standard_normal(4 * 22050)).astype(np.float32), 22050)
    tracer = pipeline("codec-source-tracing", model=str(tiny_m1_folder), precision="fp32")
    read, load_audio = [], pipeline_module.load_audio
    monkeypatch.setattr(pipeline_module, "load_audio", lambda audio, *a, **k: read.append(audio) or load_audio(
        audio, *a, **k))
    result = tracer(path, return_segments=True, threshold=0.0)  # every frame spoof: one segment, the whole clip
    assert len(result["segments"]) == 1
    assert [audio for audio in read if isinstance(audio, str)] == [path]  # the file was decoded once
    from_the_file = [{key: result["segments"][0][key] for key in ("start_seconds", "end_seconds")}]
    tracer.answer_segments_from_their_audio(path, from_the_file)
    assert result["segments"][0]["heads"] == from_the_file[0]["heads"]
