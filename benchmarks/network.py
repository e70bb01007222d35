"""What the network costs on this machine, per size: parameters, a training step, and inference.

Run by hand with the project venv (figures go in docs/MODEL.md):
    .venv/bin/python benchmarks/network.py [--threads 2] [--repeats 9]

A training step is forward, loss, backward and an AdamW step on a batch of 8 random crops of 320 frames (41 s of
audio), as ``model.train`` runs it; inference is ``model.inference.activations`` of the folded network (what
transcription runs) over 60 s of features, in its usual windows. Each with the allocator settings
(``pipeline.allocator``) the real thing uses. Inputs are random: the cost does not depend on
what they hold. Every figure is the median of ``--repeats`` runs after one warm-up.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np
import torch

from model.inference import activations, folded
from model.network import HEADS, SIZES, Transcriber, config_for, losses, parameter_count
from pipeline.allocator import TRAINING_BLOCK_BYTES, WORKING_BLOCK_BYTES, keep_freed_memory
from pipeline.constants import FRAMES_PER_SECOND, N_BINS, N_KEYS

BATCH, CROP_FRAMES = 8, 320
INFERENCE_SECONDS = 60


def median_seconds(work, repeats: int) -> float:
    work()  # warm-up: allocations, kernels chosen
    timings = []
    for _ in range(repeats):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def training_step_s(size: str, repeats: int) -> float:
    keep_freed_memory(TRAINING_BLOCK_BYTES)  # as `python -m model train` sets it
    model = Transcriber(config_for(size)).to(memory_format=torch.channels_last)
    optimizer = torch.optim.AdamW(model.parameters())
    features = torch.rand(BATCH, CROP_FRAMES, N_BINS)
    labels = {name: (torch.rand(BATCH, CROP_FRAMES, N_KEYS) < 0.05).float() for name in HEADS}

    def step():
        losses(model(features), labels)["total"].backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)

    return median_seconds(step, repeats)


def inference_s(size: str, repeats: int) -> float:
    keep_freed_memory(WORKING_BLOCK_BYTES)  # as `python -m model transcribe` sets it
    model = folded(Transcriber(config_for(size)))
    features = np.random.default_rng(0).random((int(INFERENCE_SECONDS * FRAMES_PER_SECOND), N_BINS), np.float32)
    return median_seconds(lambda: activations(model, features), repeats)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    print(f"| | {' | '.join(SIZES)} |\n|---|{'---:|' * len(SIZES)}")
    rows = {"parameters": [], "training step": [], "inference": []}
    for size in SIZES:
        rows["parameters"].append(f"{parameter_count(Transcriber(config_for(size))):,}")
        rows["training step"].append(f"{training_step_s(size, args.repeats):.2f} s")
        seconds = inference_s(size, args.repeats)
        rows["inference"].append(f"{seconds:.2f} s ({INFERENCE_SECONDS / seconds:.0f}x real time)")
    names = {"parameters": "parameters",
             "training step": f"training step, batch {BATCH} x {CROP_FRAMES} frames, {args.threads} threads",
             "inference": f"inference, network only, {INFERENCE_SECONDS} s of audio, {args.threads} threads"}
    for key, values in rows.items():
        print(f"| {names[key]} | {' | '.join(values)} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
