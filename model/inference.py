"""Run the network over features of any length in overlapping windows, in bounded memory.

Each window carries CONTEXT_FRAMES of extra input on both sides, which is more than the network's receptive field,
and only its centre is kept: the stitched activations equal those of one pass over the whole input, so there is
nothing at the seams to double or split. The windows depend only on the input's length, so features that arrive
in pieces (``activation_stream``) get exactly the windows, and the numbers, of the whole array (``activations``).
``folded(model)`` is the copy transcription runs: each batch norm folded into the convolution before it, the
same function up to float rounding (1e-6) and a seventh faster on a CPU.
"""

from __future__ import annotations

import copy
import mmap
from collections.abc import Iterable, Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils.fusion import fuse_conv_bn_eval

from pipeline.constants import FRAMES_PER_SECOND, MIDI_VELOCITY_MAX, N_KEYS
from pipeline.errors import Mp3MidiError

from .network import HEADS, Transcriber

WINDOW_FRAMES = 768  # 12 s per forward pass: as fast per frame as longer windows (cache-friendly), less memory
CONTEXT_FRAMES = 48  # > the network's temporal receptive field on each side (about 20 frames for 'base')
RESERVED_FRAMES = int(3600 * FRAMES_PER_SECOND)  # compact_activations() reserves an hour per head


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


def folded(model: Transcriber) -> Transcriber:
    """A copy of ``model`` (in eval mode) in which every convolution followed by a batch norm is one convolution."""
    model = copy.deepcopy(model).eval()
    for module in model.modules():
        if isinstance(module, nn.Sequential):
            for index in range(len(module) - 1):
                if isinstance(module[index], nn.Conv2d) and isinstance(module[index + 1], nn.BatchNorm2d):
                    module[index] = fuse_conv_bn_eval(module[index], module[index + 1])
                    module[index + 1] = nn.Identity()
    return model


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


def compact_activations(pieces: Iterable[dict[str, np.ndarray]], *,
                        reserved_frames: int = RESERVED_FRAMES) -> dict[str, np.ndarray]:
    """Consecutive {head: [n, 88] float32} pieces (``activation_stream``) -> {head: [frames, 88] float16}.

    Half the memory of float32, and written as the pieces come into memory reserved ahead for ``reserved_frames``
    (doubled, with one copy, each time it runs out), so nothing is joined at the end. The velocity head is rounded
    to whole MIDI velocities first, so decoding reads exactly the velocity it would from float32; notes decoded
    from the other heads differ only where a probability lies within float16's rounding (at most 2.5e-4 above
    0.25) of a threshold.
    """
    rows = {name: _Float16Rows(reserved_frames) for name in HEADS}
    for piece in pieces:
        for name in HEADS:
            values = piece[name]
            if name == "velocity":
                values = np.rint(values.astype(np.float64) * MIDI_VELOCITY_MAX) / MIDI_VELOCITY_MAX
            rows[name].append(values)
    return {name: store.array() for name, store in rows.items()}


class _Float16Rows:
    """A [rows, 88] float16 array grown by appending. It lives in anonymous memory mapped ahead for ``reserved``
    rows, of which only the pages written count against the process (and none of it sits in the allocator's heap
    between the network's buffers); past that it doubles, copying once."""

    def __init__(self, reserved: int):
        self.rows, self._array = 0, _reserve(reserved)

    def append(self, values: np.ndarray) -> None:
        end = self.rows + len(values)
        if end > len(self._array):
            bigger = _reserve(max(end, 2 * len(self._array)))
            bigger[:self.rows] = self._array[:self.rows]
            self._array = bigger
        self._array[self.rows:end] = values
        self.rows = end

    def array(self) -> np.ndarray:
        return self._array[:self.rows]


def _reserve(rows: int) -> np.ndarray:
    itemsize = np.dtype(np.float16).itemsize
    return np.frombuffer(mmap.mmap(-1, max(rows, 1) * N_KEYS * itemsize), np.float16).reshape(-1, N_KEYS)
