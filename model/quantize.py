"""Quantization: note starts and ends snapped to subdivisions of the beats (tracked or fixed), in seconds.

A grid divides every beat (a quarter note) into equal steps, so on a tempo map the steps stretch and shrink with
the beats they belong to: '1/16' is four steps per beat, '1/8t' (eighth-note triplets) three, '1/16t' six.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.errors import Mp3MidiError
from pipeline.notes import Note, remove_self_overlaps

QUANTIZE_GRIDS = {"1/4": 1, "1/8": 2, "1/8t": 3, "1/16": 4, "1/16t": 6, "1/32": 8}  # grid steps per beat
NO_GRID = "none"


def checked_grid(grid: str | None) -> str | None:
    """The grid's name, or None for no quantization ('none' or None); anything else is refused, with the choices."""
    if grid in (None, NO_GRID):
        return None
    if grid not in QUANTIZE_GRIDS:
        raise Mp3MidiError(f"quantize must be {NO_GRID} or one of {', '.join(QUANTIZE_GRIDS)}; got {grid!r}")
    return grid


def grid_times(beats_s: np.ndarray, steps_per_beat: int) -> np.ndarray:
    """beats_s [beats] increasing -> [(beats - 1) * steps_per_beat + 1] the grid's points, each beat's interval
    cut into ``steps_per_beat`` equal steps."""
    beats_s = np.asarray(beats_s, np.float64)
    if beats_s.ndim != 1 or beats_s.size < 2 or np.any(np.diff(beats_s) <= 0):
        raise Mp3MidiError(f"a grid needs two or more increasing beat times; got {beats_s.size}")
    fractions = np.arange(steps_per_beat) / steps_per_beat
    inner = beats_s[:-1, None] + np.diff(beats_s)[:, None] * fractions[None, :]
    return np.concatenate((inner.ravel(), beats_s[-1:]))


def quantized(notes: Sequence[Note], beats_s: np.ndarray | float, grid: str | None) -> list[Note]:
    """Snap starts and ends to the nearest grid point (None or 'none': unchanged); every note keeps at least one
    step, and a note cut short by the next one on its key ends where it starts. Times past the last beat snap to
    steps of the last beat's length. ``beats_s``: the beat times, or one tempo in BPM (beats from time 0)."""
    grid = checked_grid(grid)
    if grid is None:
        return list(notes)
    if np.ndim(beats_s) == 0:
        from .beats import fixed_grid

        beats_s = fixed_grid(float(beats_s), duration_s=max((n.end_s for n in notes), default=0.0)).beats_s
    points = grid_times(beats_s, QUANTIZE_GRIDS[grid])
    latest = max((n.end_s for n in notes), default=0.0)
    step = points[-1] - points[-2]
    if latest + step > points[-1]:
        points = np.concatenate((points, points[-1] + step * np.arange(1, int((latest - points[-1]) / step) + 3)))
    starts = _nearest(points, np.array([n.start_s for n in notes]))
    ends = np.maximum(_nearest(points, np.array([n.end_s for n in notes])), starts + 1)
    snapped = [Note(float(points[s]), float(points[e]), n.pitch, n.velocity) for n, s, e in zip(notes, starts, ends)]
    return remove_self_overlaps(snapped)


def _nearest(points: np.ndarray, times: np.ndarray) -> np.ndarray:
    """[times] -> index of the nearest point to each."""
    if times.size == 0:
        return np.zeros(0, np.int64)
    right = np.clip(np.searchsorted(points, times), 1, points.size - 1)
    left = right - 1
    return np.where(times - points[left] <= points[right] - times, left, right)
