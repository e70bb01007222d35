"""Dataset factory speed: audio seconds produced per wall second, per stage and end to end.

Run by hand (`make bench` or `python benchmarks/generate.py`); figures go in docs/BENCHMARKS.md.
  1. Stages, in this process on one core: each stage of making an item, on built-in procedural pieces.
  2. End to end: `generate()` over a folder of MIDI files with 1 worker and with 2, from cold start to catalog,
     each job in a fresh process as the command line runs it.
     The rendering options of `python -m pipeline generate` (banks, performances, chains, procedural instruments,
     the voice) apply to these jobs: `make bench-training-data` measures them with `make train-default`'s.
Every figure is a median over repeats, because the machine is shared and noisy.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

from pipeline import procedural
from pipeline.instruments import DEFAULT_FAMILIES
from pipeline.item import ItemSpec, make_item
from pipeline.jobs import GenerateOptions, generate
from pipeline.midi_io import write_midi
from pipeline.render import default_soundfont
from pipeline.sources import SourceRef

STAGES = ("load", "render", "encode", "decode", "features", "labels", "preview")
SHARES = ("performance", "chain", "synth", "voice")  # --SHARE-probability, as for `python -m pipeline generate`


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


def job_cpu_seconds(*, settle_s: float = 10.0) -> float:
    """CPU seconds spent so far by this process, the processes it started and everything they waited for: workers
    fork from a server that is our child, and the server reaps them as they end (their encoders reaped by them), so
    once no worker is left the server's children's times hold all of their work. getrusage(RUSAGE_CHILDREN) alone
    never sees the server, which lives on."""
    me = psutil.Process()
    deadline = time.monotonic() + settle_s
    while _grandchildren(me):
        if time.monotonic() > deadline:
            print(f"warning: workers still running after {settle_s:g} s; their CPU is not counted", file=sys.stderr)
            break
        time.sleep(0.05)  # the last workers are still ending
    total = 0.0
    for process in (me, *me.children()):
        try:
            times = process.cpu_times()
        except psutil.Error:
            continue
        total += times.user + times.system + times.children_user + times.children_system
    return total


def _grandchildren(process: psutil.Process) -> bool:
    for child in process.children():
        try:
            if child.children():
                return True
        except psutil.Error:  # it ended just now
            continue
    return False


def end_to_end(n_pieces: int, clip_seconds: float, workers: int, repeats: int, work: Path,
               rendering: dict) -> tuple[float, float, float | None, float]:
    """Medians over whole jobs (planning, worker start-up, catalog writes included): audio s per wall s, items per
    wall s, audio s per CPU s of the machine (what one core makes when busy; None where /proc/stat is missing) and
    audio s per CPU s of the job's own processes (the same, unmoved by other work on a shared machine).
    ``rendering``: GenerateOptions fields (soundfonts and the rendering shares).

    Each job runs in a process of its own, as `python -m pipeline generate` does: nothing it loads or starts (the
    workers' server, the banks, the coordinator's caches) is left over from the job before."""
    folder = work / "midi"
    for index in range(n_pieces):
        path = folder / f"piece{index:04}.mid"
        if not path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            write_midi(procedural.generate_piece(10_000 + index, duration_s=clip_seconds + 5), path)
    speeds, rates, per_cpu, per_job_cpu = [], [], [], []
    for repeat in range(repeats):
        options = {"name": "bench", "source": str(folder), "data_dir": str(work / f"data-{workers}-{repeat}"),
                   "workers": workers, "clip_seconds": clip_seconds, **rendering}
        busy_before = busy_cpu_seconds()
        job = subprocess.run([sys.executable, __file__, "--job", json.dumps(options)], stdout=subprocess.PIPE,
                             text=True, check=False)  # (its warnings, and FluidSynth's, reach the terminal)
        busy_after = busy_cpu_seconds()
        if job.returncode != 0:
            raise SystemExit(f"the job failed (exit {job.returncode}; its error is above)")
        figures = json.loads(job.stdout.strip().splitlines()[-1])
        if figures["failed"]:
            raise SystemExit(f"{figures['failed']} items failed: the figures would not be the factory's")
        speeds.append(figures["audio_s"] / figures["wall_s"])
        rates.append(figures["done"] / figures["wall_s"])
        per_job_cpu.append(figures["audio_s"] / figures["job_cpu_s"])
        if busy_before is not None and busy_after is not None:  # (the job process's start-up included)
            per_cpu.append(figures["audio_s"] / (busy_after - busy_before))
    return (statistics.median(speeds), statistics.median(rates), statistics.median(per_cpu) if per_cpu else None,
            statistics.median(per_job_cpu))


def one_job(options: dict) -> dict:
    """Run one job in this process (its imports done) and measure it: wall seconds from ``generate()``'s call to
    its return, and the CPU seconds of this process and of all it started."""
    options["soundfonts"] = tuple(options["soundfonts"])
    job_before = job_cpu_seconds()
    started = time.perf_counter()
    summary = generate(GenerateOptions(**options))
    wall = time.perf_counter() - started
    return {"audio_s": summary.audio_s, "done": summary.done, "failed": summary.failed, "wall_s": wall,
            "job_cpu_s": job_cpu_seconds() - job_before}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--items", type=int, default=12, help="items for the per-stage figures")
    parser.add_argument("--pieces", type=int, default=200, help="pieces per end-to-end job")
    parser.add_argument("--clip-seconds", type=float, default=30.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--job", help=argparse.SUPPRESS)  # one end-to-end job's GenerateOptions (JSON), in a process
    parser.add_argument("--skip-stages", action="store_true", help="only the end-to-end jobs")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2], help="worker counts of the jobs")
    parser.add_argument("--soundfont", nargs="+", default=["default"], metavar="PATH",
                        help="banks the end-to-end jobs draw from, as for `python -m pipeline generate`")
    for share in SHARES:
        parser.add_argument(f"--{share}-probability", type=float, default=0.0, metavar="P",
                            help="as for `python -m pipeline generate` (end-to-end jobs)")
    args = parser.parse_args()
    if args.job:
        print(json.dumps(one_job(json.loads(args.job))))
        return
    rendering = {"soundfonts": tuple(args.soundfont),
                 **{f"{share}_probability": getattr(args, f"{share}_probability") for share in SHARES}}
    print(f"# {platform.node()} {platform.processor() or platform.machine()}, {os.cpu_count()} cores,"
          f" {time.strftime('%Y-%m-%d')}, clips of {args.clip_seconds:g} s")
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        if not args.skip_stages:
            speeds = stage_speeds(args.items, args.clip_seconds, work / "stages")
            print("\n| stage | audio s per CPU s (median) | share of item time |\n|---|---:|---:|")
            total_time = sum(1 / speeds[stage] for stage in STAGES)
            for stage in STAGES:
                print(f"| {stage} | {speeds[stage]:,.0f}x | {100 / speeds[stage] / total_time:.0f} % |")
            print(f"| **all stages, one core** | **{speeds['total']:,.0f}x** | |")
        print(f"\n{args.pieces} pieces a job, median of {args.repeats} jobs; rendering {rendering}")
        print("| workers | audio s per wall s | per core (wall / workers) | audio s per busy CPU s | audio s per job CPU s"
              " | items per s |\n|---:|---:|---:|---:|---:|---:|")
        for workers in args.workers:
            speed, rate, per_cpu, per_job = end_to_end(args.pieces, args.clip_seconds, workers, args.repeats, work,
                                                       rendering)
            cpu = f"{per_cpu:,.0f}x" if per_cpu else "n/a"
            print(f"| {workers} | {speed:,.0f}x | {speed / workers:,.0f}x | {cpu} | {per_job:,.0f}x | {rate:.2f} |")


if __name__ == "__main__":
    main()
