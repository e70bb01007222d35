"""Is ``pipeline.allocator`` worth keeping? The same work with glibc's defaults and with ``keep_freed_memory``.

Run by hand from the repository root with the project venv (figures go in docs/BENCHMARKS.md):
    .venv/bin/python -m benchmarks.allocator [--rounds 5] [--repeats 3] [--threads 1] [--workloads ...]

The setting is process-wide and glibc has no way back to its adaptive defaults once it is made, so every figure
comes from a fresh process: for each workload and round, one process with the defaults and one with the setting,
in alternating order, each running the workload once to warm up and then ``--repeats`` times. A process reports
the median process CPU time (every thread; for a dataset item also its ffmpeg children) and minor page faults per
run. The workloads:
  transcribe-30s, transcribe-3min  ``transcribe(path)`` of the MP3s ``benchmarks/transcribe.py`` makes
                                   (procedural piano, 44.1 kHz stereo 128 kbit/s), as ``python -m model`` sets it
  dataset-item                     ``make_item`` of built-in procedural pieces, 30 s clips, as a pool worker sets it
  training-step                    one AdamW step of the small network on 8 random crops of 320 frames, as
                                   ``python -m model train`` sets it (``TRAINING_BLOCK_BYTES``)
The figure to read is the ratio defaults / setting of CPU time, per round (both processes ran at nearly the same
moment on the shared machine), and its median over the rounds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

WORKLOADS = ("transcribe-30s", "transcribe-3min", "dataset-item", "training-step")
MODES = ("defaults", "kept")


def _cpu_and_faults(children: bool) -> tuple[float, int]:
    own = resource.getrusage(resource.RUSAGE_SELF)
    cpu, faults = own.ru_utime + own.ru_stime, own.ru_minflt
    if children:  # finished ffmpeg encodes, which the setting does not touch but the item's time includes
        waited = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu += waited.ru_utime + waited.ru_stime
    return cpu, faults


def _work(workload: str, threads: int):
    """The workload as a function of the repeat number, and the block size its entry point sets."""
    import torch

    from pipeline.allocator import TRAINING_BLOCK_BYTES, WORKING_BLOCK_BYTES

    torch.set_num_threads(threads)
    if workload.startswith("transcribe"):
        from benchmarks.transcribe import bench_file
        from model.transcribe import load_model, transcribe

        path = bench_file(30 if workload == "transcribe-30s" else 180)
        load_model()
        return (lambda repeat: transcribe(path)), WORKING_BLOCK_BYTES
    if workload == "dataset-item":
        from pipeline.instruments import DEFAULT_FAMILIES
        from pipeline.item import ItemSpec, make_item
        from pipeline.render import default_soundfont
        from pipeline.sources import SourceRef

        scratch = tempfile.mkdtemp(prefix="bench-allocator-")

        def item(repeat: int) -> None:
            spec = ItemSpec(f"bench{repeat}", SourceRef("procedural", str(repeat), f"bench{repeat}"), repeat,
                            (default_soundfont(),), DEFAULT_FAMILIES, 30.0, 0.25, False, "64k", scratch, scratch)
            if make_item(spec).status != "done":
                raise SystemExit(f"item {repeat} failed")

        return item, WORKING_BLOCK_BYTES
    from model.network import HEADS, Transcriber, config_for, losses
    from pipeline.constants import N_BINS, N_KEYS

    torch.manual_seed(0)
    model = Transcriber(config_for("small")).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters())
    features = torch.rand(8, 320, N_BINS)
    labels = {name: (torch.rand(8, 320, N_KEYS) < 0.05).float() for name in HEADS}

    def step(repeat: int) -> None:
        losses(model(features), labels)["total"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return step, TRAINING_BLOCK_BYTES


def child(workload: str, mode: str, repeats: int, threads: int) -> dict:
    """One process's figures: medians of process CPU seconds, wall seconds and minor faults per run."""
    from pipeline.allocator import keep_freed_memory

    work, block_bytes = _work(workload, threads)
    if mode == "kept" and not keep_freed_memory(block_bytes):
        raise SystemExit("this C library has no mallopt: nothing to compare")
    children = workload == "dataset-item"
    figures: dict[str, list[float]] = {"cpu_s": [], "wall_s": [], "faults": []}
    for repeat in range(repeats + 1):  # the first run warms up: imports, CQT filters, kernels, soundfont
        cpu, faults = _cpu_and_faults(children)
        started = time.perf_counter()
        work(repeat)
        wall = time.perf_counter() - started
        cpu_after, faults_after = _cpu_and_faults(children)
        if repeat:
            figures["cpu_s"].append(cpu_after - cpu)
            figures["wall_s"].append(wall)
            figures["faults"].append(faults_after - faults)
    return {name: statistics.median(values) for name, values in figures.items()}


def run(rounds: int, repeats: int, threads: int, workloads: list[str]) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "OPENBLAS_NUM_THREADS": str(threads),
           "MKL_NUM_THREADS": str(threads)}
    results = {workload: {mode: [] for mode in MODES} for workload in workloads}
    for round_ in range(rounds):
        for workload in workloads:
            order = MODES if round_ % 2 == 0 else MODES[::-1]
            for mode in order:
                command = [sys.executable, "-m", "benchmarks.allocator", "--child", workload, mode,
                           "--repeats", str(repeats), "--threads", str(threads)]
                done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
                if done.returncode != 0:
                    raise SystemExit(f"{workload} ({mode}) failed:\n{done.stderr[-2000:]}")
                results[workload][mode].append(json.loads(done.stdout.strip().splitlines()[-1]))
            kept, defaults = results[workload]["kept"][-1], results[workload]["defaults"][-1]
            print(f"round {round_ + 1} {workload}: CPU {defaults['cpu_s']:.3f} s with the defaults, "
                  f"{kept['cpu_s']:.3f} s kept ({defaults['cpu_s'] / kept['cpu_s']:.2f}x)", file=sys.stderr)
    return results


def markdown(results: dict, rounds: int, repeats: int, threads: int) -> str:
    lines = [f"# {platform.machine()}, {os.cpu_count()} cores, {threads} thread(s), {time.strftime('%Y-%m-%d')}, "
             f"{rounds} rounds of {repeats} runs", "",
             "| workload | CPU s, defaults | CPU s, kept | ratio per round | **median ratio** "
             "| minor faults per run, defaults | kept |", "|---|---:|---:|---|---:|---:|---:|"]
    for workload, modes in results.items():
        ratios = [d["cpu_s"] / k["cpu_s"] for d, k in zip(modes["defaults"], modes["kept"])]
        cpu = {mode: statistics.median(r["cpu_s"] for r in runs) for mode, runs in modes.items()}
        faults = {mode: statistics.median(r["faults"] for r in runs) for mode, runs in modes.items()}
        lines.append(f"| {workload} | {cpu['defaults']:.3f} | {cpu['kept']:.3f} | "
                     f"{', '.join(f'{ratio:.2f}' for ratio in ratios)} | **{statistics.median(ratios):.2f}x** | "
                     f"{faults['defaults']:,.0f} | {faults['kept']:,.0f} |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeats", type=int, default=3, help="runs per process after its warm-up")
    parser.add_argument("--threads", type=int, default=1, help="torch and BLAS threads in each process")
    parser.add_argument("--workloads", nargs="+", choices=WORKLOADS, default=list(WORKLOADS))
    parser.add_argument("--json", dest="json_out", metavar="OUT", help="write every figure here")
    parser.add_argument("--child", nargs=2, metavar=("WORKLOAD", "MODE"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(*args.child, args.repeats, args.threads)))
        return 0
    results = run(args.rounds, args.repeats, args.threads, args.workloads)
    print(markdown(results, args.rounds, args.repeats, args.threads))
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(results, indent=2), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
