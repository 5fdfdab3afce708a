"""Where in a recording: frames scored from the windows over them, touching spoof frames joined into segments, each
segment answered by the windows inside it, and the pipeline and CLI giving them."""

import csv
import json

import numpy as np
import pytest
import soundfile as sf
from transformers import pipeline

import codectrace  # noqa: F401  (registers the pipeline task)
from codectrace.cli import main as cli_main
from codectrace.metrics import match_segments, segment_metrics
from codectrace.segments import WindowScores, find_segments, frame_scores, spoof_ranges

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


def test_touching_frames_at_or_above_the_threshold_make_one_range():
    assert spoof_ranges(np.array([0.1, 0.6, 0.5, 0.2, 0.9]), 0.5, 1.0) == [(1.0, 3.0), (4.0, 5.0)]
    assert spoof_ranges(np.array([0.1, 0.2]), 0.5, 1.0) == []


def test_a_spoofed_stretch_is_found_where_it_is_with_the_answer_of_the_windows_inside_it():
    vq = np.tile([0.7, 0.1, 0.1, 0.1], (9, 1))
    vq[4:6] = [0.1, 0.1, 0.1, 0.7]  # the spoofed windows say `sq`
    segments, contains = find_segments(_windows([0, 0, 0, 0, 1, 1, 0, 0, 0], 1.0, 1.0, vq), rule="min")
    assert [(s["start_seconds"], s["end_seconds"]) for s in segments] == [(4.0, 6.0)]
    assert segments[0]["heads"]["vq"] == {"label": "sq", "probability": pytest.approx(0.7), "known": None}
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
