"""Run the network over features of any length in overlapping windows, in bounded memory.

Each window carries CONTEXT_FRAMES of extra input on both sides, which is more than the network's receptive field,
and only its centre is kept: the stitched activations equal those of one pass over the whole input, so there is
nothing at the seams to double or split.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.constants import N_KEYS

from .network import HEADS, Transcriber

WINDOW_FRAMES = 2048  # about 33 s per forward pass
CONTEXT_FRAMES = 48  # > the network's temporal receptive field on each side (about 20 frames for 'base')


@torch.inference_mode()
def activations(model: Transcriber, features: np.ndarray, *, device: str = "cpu",
                window_frames: int = WINDOW_FRAMES) -> dict[str, np.ndarray]:
    """features [frames, 264] -> {head: probabilities [frames, 88] float32} (velocity: predicted velocity / 127)."""
    model.eval()
    total = features.shape[0]
    out = {name: np.zeros((total, N_KEYS), np.float32) for name in HEADS}
    step = window_frames - 2 * CONTEXT_FRAMES
    for start in range(0, total, step):
        lo, hi = max(0, start - CONTEXT_FRAMES), min(total, start + step + CONTEXT_FRAMES)
        window = torch.from_numpy(np.ascontiguousarray(features[lo:hi], dtype=np.float32))[None].to(device)
        logits = model(window)
        keep = slice(start - lo, min(start + step, total) - lo)
        for name in HEADS:
            out[name][start:start + keep.stop - keep.start] = torch.sigmoid(logits[name][0, keep]).float().cpu().numpy()
    return out
