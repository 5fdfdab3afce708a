"""What calibration, unknown-source scoring and input warnings cost per clip, on the demo model, in one run.

    python benchmarks/bench_trust_overhead.py [--model outputs/demo-M1] [--clips 40] [--repeats 5]

Traces the same clips (the Space's two examples, cut into 3-s pieces) through the pipeline with the model as saved
(calibration temperatures in its config, the unknown-source scorer beside it) and with both removed, each clip both
ways in turn in each repeat, and reports the time per clip of each (its median over the repeats, averaged over the
clips) and their ratio. Input warnings are computed
in both (they are part of reading the audio).
"""

from __future__ import annotations

import argparse
import copy
from pathlib import Path

from timing_clips import example_clips, paired_per_clip_seconds

from codectrace.hub import load_tracer

ROOT = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=str(ROOT / "outputs" / "demo-M1"))
    parser.add_argument("--clips", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    full = load_tracer(args.model)
    if full.unknown_source is None or not full.model.config.calibration_temperatures:
        raise SystemExit(f"{args.model} has no calibration or no unknown-source scorer; train it with the demo preset")
    bare = load_tracer(args.model, precision=full.precision)
    bare.unknown_source = None
    bare.model = copy.deepcopy(bare.model)
    bare.model.config.calibration_temperatures = None
    inputs = example_clips(args.clips)
    with_, without = paired_per_clip_seconds(full, bare, inputs, args.repeats)
    print(f"precision {full.resolved_precision}, {args.clips} clips of 3 s, each traced both ways {args.repeats} times "
          "in turn (its median)")
    print(f"without calibration and unknown-source scoring: {1000 * without:.2f} ms per clip")
    print(f"with both:                                      {1000 * with_:.2f} ms per clip")
    print(f"ratio: {with_ / without:.3f} (the target: at most 1.05)")


if __name__ == "__main__":
    main()
