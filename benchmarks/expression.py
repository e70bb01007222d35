"""What performances and recording chains cost the factory: process CPU seconds per audio second per item.

"vs dry" is the median over pieces of (this way's CPU / the same piece's CPU as written and dry), with quartiles.

Each built-in procedural piece is made four times in this process, one after another: as written and dry, with a
performance, with a recording chain, and with both (probability 1). CPU time (this process and the ffmpeg it
waits for) is counted per item, so the figures hold on a shared machine; the ratios compare items made in the same
run. Figures go in docs/BENCHMARKS.md.

    .venv/bin/python benchmarks/expression.py --pieces 12
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import tempfile
from pathlib import Path

from pipeline.instruments import DEFAULT_FAMILIES
from pipeline.item import ItemSpec, make_item
from pipeline.render import default_soundfont
from pipeline.sources import SourceRef

VARIANTS = {"as written, dry": (0.0, 0.0), "performance": (1.0, 0.0), "chain": (0.0, 1.0), "both": (1.0, 1.0)}


def cpu_seconds() -> float:
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def measure(pieces: int, clip_seconds: float, work: Path) -> dict[str, dict[str, float]]:
    cost: dict[str, list[float]] = {name: [] for name in VARIANTS}
    paired: dict[str, list[float]] = {name: [] for name in VARIANTS}  # per piece: this variant's cost / dry's
    stages: dict[str, list[float]] = {"perform": [], "chain": [], "render": []}
    for index in range(pieces + 1):
        round_cost: dict[str, float] = {}
        for name, (performance, chain) in VARIANTS.items():
            spec = ItemSpec(f"x{index}-{len(cost[name])}-{performance}-{chain}",
                            SourceRef("procedural", str(index), f"bench{index}"), index, (default_soundfont(),),
                            DEFAULT_FAMILIES, clip_seconds, 0.25, False, "64k", str(work), str(work),
                            performance_probability=performance, chain_probability=chain)
            before = cpu_seconds()
            result = make_item(spec)
            spent = cpu_seconds() - before
            if index == 0 or result.status != "done":  # the first round pays imports and caches
                continue
            cost[name].append(spent / result.duration_s)
            round_cost[name] = spent
            for stage in stages:
                if stage in result.timings:
                    stages[stage].append(result.timings[stage] / result.duration_s)
        if len(round_cost) == len(VARIANTS):
            for name in VARIANTS:
                paired[name].append(round_cost[name] / round_cost["as written, dry"])
    summary = {name: {"cpu_s_per_audio_s": statistics.median(values), "x_real_time": 1 / statistics.median(values),
                      "items": len(values)} for name, values in cost.items()}
    for name, values in summary.items():
        values["ratio"] = statistics.median(paired[name])
        values["ratio_quartiles"] = tuple(statistics.quantiles(paired[name], n=4)[::2])
    summary["stage wall s per audio s"] = {stage: statistics.median(v) for stage, v in stages.items() if v}
    return summary


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--pieces", type=int, default=12)
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    print(f"{platform.machine()}, {os.cpu_count()} cores; {args.pieces} pieces of {args.clip_seconds:g} s, each made"
          " four ways in one process")
    with tempfile.TemporaryDirectory() as folder:
        summary = measure(args.pieces, args.clip_seconds, Path(folder))
    stages = summary.pop("stage wall s per audio s")
    print(f"{'variant':<18} {'CPU s / audio s':>16} {'x real time':>12} {'vs dry, same piece':>20}")
    for name, values in summary.items():
        low, high = values["ratio_quartiles"]
        print(f"{name:<18} {values['cpu_s_per_audio_s']:>16.5f} {values['x_real_time']:>12.0f}"
              f" {values['ratio']:>8.2f} ({low:.2f}-{high:.2f})")
    print("median stage wall seconds per audio second: "
          + ", ".join(f"{stage} {value:.5f}" for stage, value in stages.items()))


if __name__ == "__main__":
    main()
