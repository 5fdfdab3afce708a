"""The timeline picture of one recording: window scores, spoofed segments labelled with their family, true ranges."""

from codectrace.timeline import segment_family, timeline_figure

WINDOWS = [{"start_seconds": s, "end_seconds": s + 2.0, "spoof_score": p} for s, p in ((0, 0.1), (1, 0.9), (2, 0.2))]
HEADS = {"bin": {"label": "spoof", "known": None}, "vq": {"label": "sq", "known": None},
         "aux": {"label": "none", "known": False}, "dec": {"label": "freq", "known": True}}


def test_a_segment_is_labelled_with_its_taxonomy_answers_unknown_where_a_head_says_so():
    assert segment_family({"heads": HEADS}) == "sq / unknown / freq"


def test_the_timeline_shades_each_segment_and_draws_each_true_range():
    figure = timeline_figure(WINDOWS, [{"start_seconds": 1.0, "end_seconds": 2.0, "heads": HEADS}], [[1.2, 2.1]])
    axis = figure.axes[0]
    assert len(axis.patches) == 1 and [t.get_text() for t in axis.texts] == ["sq / unknown / freq"]
    assert [list(line.get_xdata()) for line in axis.lines][0] == [1.2, 2.1] and "truly spoofed" in axis.get_title()


def test_a_frame_head_models_frame_scores_are_drawn_at_their_frames_centres():
    frames = {"start_seconds": 0.0, "step_seconds": 0.5, "scores": [0.1, 0.8, 0.2]}
    axis = timeline_figure(WINDOWS, frames=frames).axes[0]
    drawn = {line.get_label(): line for line in axis.lines}
    assert list(drawn["frames"].get_xdata()) == [0.25, 0.75, 1.25]
    assert list(drawn["frames"].get_ydata()) == [0.1, 0.8, 0.2] and "and frame" in axis.get_title()
