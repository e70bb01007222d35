"""Notes to frame-aligned label rolls for the 88 keys: onset, frame (sounding), offset and velocity."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .constants import FRAMES_PER_SECOND, LOWEST_PITCH, N_KEYS
from .notes import Note


@dataclass(frozen=True)
class Labels:
    """Each array is [frames, 88]; key 0 is A0. Rolls are uint8 0/1; velocity is the MIDI velocity on onset frames."""

    onset: np.ndarray
    frame: np.ndarray
    offset: np.ndarray
    velocity: np.ndarray


def time_to_frame(seconds: float | np.ndarray) -> np.ndarray:
    """The frame whose centre is nearest to a time (frame i is centred at i / FRAMES_PER_SECOND)."""
    return np.rint(np.asarray(seconds) * FRAMES_PER_SECOND).astype(np.int64)


def note_labels(notes: list[Note], n_frames: int) -> Labels:
    """Label rolls for ``notes`` over ``n_frames`` frames. Notes outside the 88 keys are left out.

    A note sounds from its onset frame up to (not including) its offset frame, and always for at least one frame.
    """
    shape = (n_frames, N_KEYS)
    onset, frame, offset = (np.zeros(shape, np.uint8) for _ in range(3))
    velocity = np.zeros(shape, np.uint8)
    for note in notes:
        if not note.in_piano_range:
            continue
        key = note.pitch - LOWEST_PITCH
        first = int(time_to_frame(note.start_s))
        last = max(int(time_to_frame(note.end_s)), first + 1)
        if first >= n_frames:
            continue
        onset[first, key] = 1
        velocity[first, key] = note.velocity
        frame[first:min(last, n_frames), key] = 1
        if last < n_frames:
            offset[last, key] = 1
    return Labels(onset=onset, frame=frame, offset=offset, velocity=velocity)
