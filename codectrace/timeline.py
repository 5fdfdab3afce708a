"""The timeline of one recording, as the Space shows it: each window's spoof score at its centre (and, for a model
with a frame head, its frames' scores), the spoofed segments shaded and labelled with their codec family, and (for
evaluation pictures) the true spoofed ranges."""

from __future__ import annotations

from .tracing import head_label


def segment_family(segment: dict) -> str:
    """`sq / none / freq`: a segment's taxonomy answers (`unknown` where a head says so)."""
    return " / ".join(head_label(answer) for task, answer in segment["heads"].items() if task != "bin")


def timeline_figure(windows: list[dict], segments: list[dict] = (), truth: list[list[float]] = (),
                    frames: dict | None = None):
    """A matplotlib figure of the windows' spoof scores, the frames' (`frame_spoof_scores` of a pipeline result),
    the segments found and, under them, the true ranges."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 2.6))
    for index, segment in enumerate(segments):
        axis.axvspan(segment["start_seconds"], segment["end_seconds"], color="tab:red", alpha=0.2)
        # neighbouring labels on alternate lines, so that close segments stay readable
        axis.text((segment["start_seconds"] + segment["end_seconds"]) / 2, 0.97 - 0.09 * (index % 2),
                  segment_family(segment), ha="center", va="top", fontsize=8)
    for start, end in truth:
        axis.plot([start, end], [0.02, 0.02], color="black", linewidth=4, solid_capstyle="butt")
    centres = [(w["start_seconds"] + w["end_seconds"]) / 2 for w in windows]
    axis.plot(centres, [w["spoof_score"] for w in windows], marker="o", markersize=3, label="windows")
    if frames:
        times = [frames["start_seconds"] + (i + 0.5) * frames["step_seconds"] for i in range(len(frames["scores"]))]
        axis.plot(times, frames["scores"], color="tab:orange", linewidth=1, label="frames")
        axis.legend(loc="center left", fontsize=7, framealpha=0.6)
    axis.axhline(0.5, color="grey", linestyle="--", linewidth=1)
    axis.set_ylim(0, 1)
    axis.set_xlabel("time (s)")
    axis.set_ylabel("spoof score")
    title = "Spoof score per window" + (" and frame" if frames else "") + "; shaded: spoofed segments found"
    axis.set_title(title + ("; black: truly spoofed" if truth else ""), fontsize=9)
    figure.tight_layout()
    return figure
