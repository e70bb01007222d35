"""Network activations to notes: peak-picked onsets, sustained by the frame head, in the Onsets-and-Frames spirit.

Pure NumPy. Every array is ``[frames, 88]`` (key 0 is A0) and holds probabilities in [0, 1]; frame ``i`` is centred
at ``i / FRAMES_PER_SECOND``, as in :mod:`pipeline.labels`, so decoding the label rolls of a list of notes gives the
same notes back, each edge rounded to the nearest frame.
"""

from __future__ import annotations

import numpy as np

from pipeline.constants import FRAMES_PER_SECOND, LOWEST_PITCH, MIDI_VELOCITY_MAX, N_KEYS
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note

DEFAULT_VELOCITY = 80  # what a note gets when there is no velocity head to ask.


def decode(onsets: np.ndarray, frames: np.ndarray, *, offsets: np.ndarray | None = None,
           velocities: np.ndarray | None = None, onset_threshold: float = 0.5, frame_threshold: float = 0.3,
           offset_threshold: float = 0.5, min_note_ms: float = 50.0, frame_offset: int = 0) -> list[Note]:
    """Notes from activations, sorted by (start, pitch); no note has zero length, no two notes on a key overlap.

    Args:
        onsets: [frames, 88] onset probabilities.
        frames: [frames, 88] probabilities that a key is sounding.
        offsets: optional [frames, 88] offset probabilities; a note ends where one reaches ``offset_threshold``.
        velocities: optional [frames, 88] predicted velocity / 127, read at each note's onset frame.
        onset_threshold: the onset probability a note must reach.
        frame_threshold: the frame probability below which a note has stopped sounding.
        offset_threshold: the offset probability at which a note stops (only with ``offsets``).
        min_note_ms: the shortest note to emit; shorter ones are lengthened, not dropped (see below).
        frame_offset: frames to add to every time, for a window that starts inside a longer file.

    The rules, key by key:

    * **Onsets (peak picking).** Each contiguous run of frames whose onset probability is >= ``onset_threshold``
      is one onset, placed at the run's highest frame (its local maximum; the earliest on a tie). An onset head
      that stays high for two or three frames, or wobbles while staying above the threshold, gives one note; a
      repeated note needs its onset probability to dip below the threshold in between, which one frame (16 ms)
      of dip already does.
    * **Sustain.** A note sounds at its onset frame whatever the frame head says there (the frame probability may
      rise a frame late), then for as long as the frame probability stays >= ``frame_threshold``. It ends at the
      first frame where that fails, where the offset probability reaches ``offset_threshold``, or where the next
      onset on the same key begins (a repeated note), whichever comes first. Frame activity with no onset before
      it makes no note.
    * **Short notes are kept and lengthened, never dropped.** A note shorter than ``min_note_ms`` is extended to
      ``min_note_ms``, but never past the next onset on its key. An onset peak above the threshold is the
      strongest evidence the network gives that a key was struck; a short frame run under it usually means the
      frame head lost a quiet or staccato note early, not that the note is false. Dropping it would cost onset
      recall, while lengthening it costs little: mir_eval's offset tolerance is never under 50 ms. To filter
      weak notes, raise ``onset_threshold`` rather than ``min_note_ms``.
    * **Velocity** is the velocity head at the onset frame (the only frame it is trained on) times 127, rounded
      and clipped to 1..127; ``DEFAULT_VELOCITY`` without a velocity head.

    Raises:
        Mp3MidiError: an array that is not [frames, 88], or arrays of different shapes.
    """
    onsets, frames, offsets, velocities = _checked(onsets, frames, offsets, velocities)
    n_frames = onsets.shape[0]
    min_length_s = min_note_ms / 1000.0
    notes = []
    for key in range(N_KEYS):
        sounding = _column(frames, key) >= frame_threshold
        if offsets is not None:
            sounding &= _column(offsets, key) < offset_threshold
        starts = onset_frames(_column(onsets, key), onset_threshold)
        stops = np.append(starts[1:], n_frames)  # a note may sound at most until the next onset on its key
        for start, stop in zip(starts, stops):
            end = _end_frame(sounding[start + 1:stop], start, stop)
            start_s = _seconds(start, frame_offset)
            end_s = max(_seconds(end, frame_offset), start_s + min_length_s)
            if stop < n_frames:  # lengthened, but never into the next note on this key
                end_s = min(end_s, _seconds(stop, frame_offset))
            velocity = _velocity(velocities, start, key)
            notes.append(Note(start_s, end_s, key + LOWEST_PITCH, velocity))
    return sorted(notes, key=lambda note: (note.start_s, note.pitch))


def onset_frames(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Frames of the onsets on one key: the highest frame of each run of [frames] probabilities >= threshold."""
    above = np.concatenate(([False], probabilities >= threshold, [False]))
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))  # alternating run starts and (exclusive) run ends
    runs = edges.reshape(-1, 2)
    return np.array([first + int(np.argmax(probabilities[first:last])) for first, last in runs], dtype=np.int64)


def _end_frame(sounding_after_onset: np.ndarray, start: int, stop: int) -> int:
    """The exclusive end frame of a note struck at ``start``: the first frame after it not sounding, else ``stop``."""
    silent = np.flatnonzero(~sounding_after_onset)
    return start + 1 + int(silent[0]) if silent.size else stop


def _seconds(frame: int, frame_offset: int) -> float:
    return (int(frame) + frame_offset) / FRAMES_PER_SECOND


def _velocity(velocities: np.ndarray | None, frame: int, key: int) -> int:
    if velocities is None:
        return DEFAULT_VELOCITY
    return int(np.clip(np.rint(float(velocities[frame, key]) * MIDI_VELOCITY_MAX), 1, MIDI_VELOCITY_MAX))


def _column(array: np.ndarray, key: int) -> np.ndarray:
    """One key's [frames] values as float64, so every dtype is compared with the thresholds exactly alike."""
    return array[:, key].astype(np.float64)


def _checked(onsets, frames, offsets, velocities):
    """The arrays as floats (float16 and float32 kept as they are: no full-size copies), after checking each is
    [frames, 88] and all share one shape."""
    given = {"onsets": onsets, "frames": frames, "offsets": offsets, "velocities": velocities}
    arrays = {name: _floats(array) for name, array in given.items() if array is not None}
    shapes = {name: array.shape for name, array in arrays.items()}
    first = shapes["onsets"]
    if len(first) != 2 or first[1] != N_KEYS or any(shape != first for shape in shapes.values()):
        described = ", ".join(f"{name} {shape}" for name, shape in shapes.items())
        raise Mp3MidiError(f"decode needs [frames, {N_KEYS}] arrays all of one shape; got {described}")
    return tuple(arrays.get(name) for name in given)


def _floats(array) -> np.ndarray:
    array = np.asarray(array)
    return array if array.dtype in (np.float16, np.float32, np.float64) else array.astype(np.float64)
