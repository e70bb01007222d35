"""Dataset factory speed: audio seconds produced per wall second, per stage and end to end.

Run by hand (`make bench` or `python benchmarks/generate.py`); figures go in docs/BENCHMARKS.md.
  1. Stages, in this process on one core: each stage of making an item, on built-in procedural pieces.
  2. End to end: `generate()` over a folder of MIDI files with 1 worker and with 2, from cold start to catalog.
Every figure is a median over repeats, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

from pipeline import procedural
from pipeline.instruments import DEFAULT_FAMILIES
from pipeline.item import ItemSpec, make_item
from pipeline.jobs import GenerateOptions, generate
from pipeline.midi_io import write_midi
from pipeline.render import default_soundfont
from pipeline.sources import SourceRef

STAGES = ("load", "render", "encode", "decode", "features", "labels", "preview")


def stage_speeds(n_items: int, clip_seconds: float, work: Path) -> dict[str, float]:
    """Median audio-seconds per stage-second over items (the first, which pays imports and caches, is dropped)."""
    per_stage: dict[str, list[float]] = {stage: [] for stage in (*STAGES, "total")}
    for index in range(n_items + 1):
        spec = ItemSpec(f"bench{index}", SourceRef("procedural", str(index), f"bench{index}"), index,
                        (default_soundfont(),), DEFAULT_FAMILIES, clip_seconds, 0.25, False, "64k", str(work),
                        str(work))
        result = make_item(spec)
        if index == 0 or result.status != "done":
            continue
        for stage in STAGES:
            per_stage[stage].append(result.duration_s / result.timings[stage])
        per_stage["total"].append(result.duration_s / sum(result.timings.values()))
    return {stage: statistics.median(values) for stage, values in per_stage.items()}


def busy_cpu_seconds() -> float | None:
    """CPU seconds the whole machine has spent busy since boot (every process: coordinator, workers, ffmpeg)."""
    try:
        fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return None
    idle, iowait = fields[3], fields[4]
    return (sum(fields) - idle - iowait) / os.sysconf("SC_CLK_TCK")


def end_to_end(n_pieces: int, clip_seconds: float, workers: int, repeats: int,
               work: Path) -> tuple[float, float, float | None]:
    """Medians over whole jobs (planning, worker start-up, catalog writes included): audio s per wall s, items per
    wall s, and audio s per CPU s of the machine (what one core makes when busy; None where /proc/stat is missing)."""
    folder = work / "midi"
    for index in range(n_pieces):
        path = folder / f"piece{index:04}.mid"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            write_midi(procedural.generate_piece(10_000 + index, duration_s=clip_seconds + 5), path)
    speeds, rates, per_cpu = [], [], []
    for repeat in range(repeats):
        data = work / f"data-{workers}-{repeat}"
        started, busy_before = time.perf_counter(), busy_cpu_seconds()
        summary = generate(GenerateOptions(name="bench", source=str(folder), data_dir=str(data), workers=workers,
                                           clip_seconds=clip_seconds))
        wall = time.perf_counter() - started
        speeds.append(summary.audio_s / wall)
        rates.append(summary.done / wall)
        if busy_before is not None:
            per_cpu.append(summary.audio_s / (busy_cpu_seconds() - busy_before))
    return statistics.median(speeds), statistics.median(rates), statistics.median(per_cpu) if per_cpu else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=12, help="items for the per-stage figures")
    parser.add_argument("--pieces", type=int, default=200, help="pieces per end-to-end job")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores,"
          f" {time.strftime('%Y-%m-%d')}, clips of {args.clip_seconds:g} s")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        speeds = stage_speeds(args.items, args.clip_seconds, work / "stages")
        print("\n| stage | audio s per CPU s (median) | share of item time |\n|---|---:|---:|")
        total_time = sum(1 / speeds[stage] for stage in STAGES)
        for stage in STAGES:
            print(f"| {stage} | {speeds[stage]:,.0f}x | {100 / speeds[stage] / total_time:.0f} % |")
        print(f"| **all stages, one core** | **{speeds['total']:,.0f}x** | |")
        print(f"\n{args.pieces} pieces a job, median of {args.repeats} jobs")
        print("| workers | audio s per wall s | per core (wall / workers) | audio s per busy CPU s | items per s |\n"
              "|---:|---:|---:|---:|---:|")
        for workers in (1, 2):
            speed, rate, per_cpu = end_to_end(args.pieces, args.clip_seconds, workers, args.repeats, work)
            cpu = f"{per_cpu:,.0f}x" if per_cpu else "n/a"
            print(f"| {workers} | {speed:,.0f}x | {speed / workers:,.0f}x | {cpu} | {rate:.2f} |")


if __name__ == "__main__":
    main()
