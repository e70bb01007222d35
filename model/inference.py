"""Run the network over features of any length in overlapping windows, in bounded memory.

Each window carries CONTEXT_FRAMES of extra input on both sides, which is more than the network's receptive field,
and only its centre is kept: the stitched activations equal those of one pass over the whole input, so there is
nothing at the seams to double or split. The windows depend only on the input's length, so features that arrive
in pieces (``activation_stream``) get exactly the windows, and the numbers, of the whole array (``activations``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np
import torch

from pipeline.constants import N_KEYS
from pipeline.errors import Mp3MidiError

from .network import HEADS, Transcriber

WINDOW_FRAMES = 2048  # about 33 s per forward pass
CONTEXT_FRAMES = 48  # > the network's temporal receptive field on each side (about 20 frames for 'base')


def activations(model: Transcriber, features: np.ndarray, *, device: str = "cpu",
                window_frames: int = WINDOW_FRAMES) -> dict[str, np.ndarray]:
    """features [frames, 264] -> {head: probabilities [frames, 88] float32} (velocity: predicted velocity / 127)."""
    out = {name: np.zeros((features.shape[0], N_KEYS), np.float32) for name in HEADS}
    done = 0
    for piece in activation_stream(model, [features], device=device, window_frames=window_frames):
        count = piece[HEADS[0]].shape[0]
        for name in HEADS:
            out[name][done:done + count] = piece[name]
        done += count
    return out


def activation_stream(model: Transcriber, pieces: Iterable[np.ndarray], *, device: str = "cpu",
                      window_frames: int = WINDOW_FRAMES) -> Iterator[dict[str, np.ndarray]]:
    """``activations()`` of features that arrive in pieces, given back in pieces as soon as each window is run.

    pieces: consecutive [frames, 264] parts of one feature array (any sizes). Yields {head: [n, 88] float32} for
    consecutive frames; joined, they are exactly ``activations(model, whole array)``. Memory holds one window of
    features and one of activations, whatever the input's length.
    """
    step = window_frames - 2 * CONTEXT_FRAMES
    if step <= 0:
        raise Mp3MidiError(f"window_frames must be more than twice the context ({2 * CONTEXT_FRAMES}); "
                           f"got {window_frames}")
    model.eval()
    buffer, buffer_start, received, start = None, 0, 0, 0  # buffer[0] is frame buffer_start
    for piece in pieces:
        buffer = piece if buffer is None or not len(buffer) else np.concatenate((buffer, piece))
        received += piece.shape[0]
        while start + step + CONTEXT_FRAMES <= received:  # the window and its right context have arrived
            yield _window(model, buffer, start, start + step, received, offset=buffer_start, device=device)
            start += step
            keep_from = max(0, start - CONTEXT_FRAMES)
            buffer, buffer_start = buffer[keep_from - buffer_start:], keep_from
    for first in range(start, received, step):
        yield _window(model, buffer, first, min(first + step, received), received, offset=buffer_start, device=device)


@torch.inference_mode()
def _window(model: Transcriber, features: np.ndarray, start: int, stop: int, total: int, *, offset: int,
            device: str) -> dict[str, np.ndarray]:
    """Probabilities for frames [start, stop) of ``total``, from a pass over them and CONTEXT_FRAMES either side;
    ``features[0]`` is frame ``offset``."""
    lo, hi = max(0, start - CONTEXT_FRAMES), min(total, stop + CONTEXT_FRAMES)
    window = torch.from_numpy(np.ascontiguousarray(features[lo - offset:hi - offset], dtype=np.float32))
    logits = model(window[None].to(device))
    keep = slice(start - lo, stop - lo)
    return {name: torch.sigmoid(logits[name][0, keep]).float().cpu().numpy() for name in HEADS}
