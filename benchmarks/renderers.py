"""What the procedural renderers cost the factory: process CPU seconds per audio second per item, end to end.

"vs FluidSynth" is the median over pieces of (this renderer's CPU / the same piece's CPU through FluidSynth with
TimGM6mb), with quartiles. Each built-in procedural piece is made three times in this process, one after another:
through FluidSynth, by the procedural instruments (``--synth-probability 1``) and sung (``--voice-probability 1``).
CPU time (this process and the ffmpeg it waits for) is counted per item, so the figures hold on a shared machine;
the ratios compare items made in the same run. Figures go in docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/renderers.py --pieces 12
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
from pathlib import Path

from benchmarks.expression import cpu_seconds
from pipeline.instruments import DEFAULT_FAMILIES
from pipeline.item import ItemSpec, make_item
from pipeline.render import default_soundfont
from pipeline.sources import SourceRef

VARIANTS = {"fluidsynth": (0.0, 0.0), "synth": (1.0, 0.0), "voice": (0.0, 1.0)}


def measure(pieces: int, clip_seconds: float, work: Path) -> dict[str, dict[str, float]]:
    cost: dict[str, list[float]] = {name: [] for name in VARIANTS}
    render: dict[str, list[float]] = {name: [] for name in VARIANTS}
    paired: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for index in range(pieces + 1):
        round_cost: dict[str, float] = {}
        for name, (synth, voice) in VARIANTS.items():
            spec = ItemSpec(f"x{index}-{name}", SourceRef("procedural", str(index), f"bench{index}"), index,
                            (default_soundfont(),), DEFAULT_FAMILIES, clip_seconds, 0.25, False, "64k", str(work),
                            str(work), synth_probability=synth, voice_probability=voice)
            before = cpu_seconds()
            result = make_item(spec)
            spent = cpu_seconds() - before
            if index == 0 or result.status != "done":  # the first round pays imports and caches
                continue
            cost[name].append(spent / result.duration_s)
            render[name].append(result.timings["render"] / result.duration_s)
            round_cost[name] = spent
        if len(round_cost) == len(VARIANTS):
            for name in VARIANTS:
                paired[name].append(round_cost[name] / round_cost["fluidsynth"])
    summary = {}
    for name in VARIANTS:
        quartiles = statistics.quantiles(paired[name], n=4)
        summary[name] = {"cpu_s_per_audio_s": statistics.median(cost[name]),
                         "x_real_time": 1 / statistics.median(cost[name]), "items": len(cost[name]),
                         "render_s_per_audio_s": statistics.median(render[name]),
                         "ratio": statistics.median(paired[name]), "ratio_quartiles": (quartiles[0], quartiles[2])}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pieces", type=int, default=12, help="procedural pieces, each made three ways")
    parser.add_argument("--clip-seconds", type=float, default=30.0, help="seconds per item")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.pieces} pieces of {args.clip_seconds:g} s, each made"
          " three ways in one process")
    with tempfile.TemporaryDirectory() as folder:
        summary = measure(args.pieces, args.clip_seconds, Path(folder))
    print(f"{'renderer':<11} {'CPU s / audio s':>16} {'x real time':>12} {'render s / audio s':>19}"
          f" {'vs FluidSynth, same piece':>27}")
    for name, values in summary.items():
        low, high = values["ratio_quartiles"]
        print(f"{name:<11} {values['cpu_s_per_audio_s']:>16.5f} {values['x_real_time']:>12.0f}"
              f" {values['render_s_per_audio_s']:>19.5f} {values['ratio']:>14.2f} ({low:.2f}-{high:.2f})")


if __name__ == "__main__":
    main()
