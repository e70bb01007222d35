"""Network activations to notes: peak-picked onsets, sustained by the frame head, in the Onsets-and-Frames spirit.

Pure NumPy. Every array is ``[frames, 88]`` (key 0 is A0) and holds probabilities in [0, 1]; frame ``i`` is centred
at ``i / FRAMES_PER_SECOND``, as in :mod:`pipeline.labels`, so decoding the label rolls of a list of notes gives the
same notes back, each edge rounded to the nearest frame.
"""

from __future__ import annotations

import bisect

import numpy as np

from pipeline.constants import FRAMES_PER_SECOND, LOWEST_PITCH, MIDI_VELOCITY_MAX, N_KEYS
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note

DEFAULT_VELOCITY = 80  # what a note gets when there is no velocity head to ask.


def decode(onsets: np.ndarray, frames: np.ndarray, *, offsets: np.ndarray | None = None,
           velocities: np.ndarray | None = None, onset_threshold: float = 0.5, frame_threshold: float = 0.3,
           offset_threshold: float = 0.5, min_note_ms: float = 50.0, frame_offset: int = 0,
           gap_ms: float = 0.0, restrike_threshold: float | None = None, fragment_ms: float = 0.0,
           min_sounding_ms: float = 0.0, mono: bool = False) -> list[Note]:
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
        gap_ms: hysteresis; a dip of the sounding key (frame probability under ``frame_threshold``, or the offset
            head firing) lasting at most this long, with the key sounding again after it, does not end a note.
        restrike_threshold: the onset probability a new onset needs on a key that kept sounding (no dip within
            ``RESTRIKE_DIP_FRAMES`` before it) to end the note there and start another (a re-strike); a weaker one
            is part of the sounding note (vibrato, a swell). An onset just after a dip (a tongued or re-struck
            repeat) needs only ``onset_threshold``. None: ``onset_threshold``, so every onset re-strikes.
        fragment_ms: a note shorter than this lying a semitone from a note at least ``FRAGMENT_RATIO`` times its
            length (overlapping it, or within ``FRAGMENT_GAP_FRAMES`` of it) is a scoop or a vibrato excursion of
            that note: it is merged into it (the long note extended over the fragment's span). 0: off.
        min_sounding_ms: a note whose frame head sounds for less than this (onset frame included) is a blip and
            is dropped instead of lengthened to ``min_note_ms``. 0: keep every onset.
        mono: one note at a time, for a voice, a wind or a bass line (see below).

    The rules, key by key:

    * **Onsets (peak picking).** Each contiguous run of frames whose onset probability is >= ``onset_threshold``
      is one onset, placed at the run's highest frame (its local maximum; the earliest on a tie). An onset head
      that stays high for two or three frames, or wobbles while staying above the threshold, gives one note; a
      repeated note needs its onset probability to dip below the threshold in between, which one frame (16 ms)
      of dip already does.
    * **Sustain.** A note sounds at its onset frame whatever the frame head says there (the frame probability may
      rise a frame late), then for as long as the frame probability stays >= ``frame_threshold`` (dips of up to
      ``gap_ms`` bridged). It ends at the first frame where that fails, where the offset probability reaches
      ``offset_threshold``, or where the next onset on the same key strong enough to re-strike a sounding key
      begins (``restrike_threshold``, or any onset right after a dip), whichever comes first. Frame activity with
      no onset before it makes no note; a weaker onset inside a note that kept sounding is absorbed by it.
    * **The opening.** A key that sounds through the recording's first ``OPENING_FRAMES`` (48 ms) with no onset
      among them starts a note at 0 s: a recording cut in the middle of a note, or one whose first note begins on
      its first sample, gives the onset head no attack to see. Only for a whole recording (``frame_offset`` 0).
    * **Short notes are kept and lengthened, never dropped** (unless ``min_sounding_ms`` says otherwise). A note
      shorter than ``min_note_ms`` is extended to ``min_note_ms``, but never past the next onset on its key. An
      onset peak above the threshold is the strongest evidence the network gives that a key was struck; a short
      frame run under it usually means the frame head lost a quiet or staccato note early, not that the note is
      false. Dropping it would cost onset recall, while lengthening it costs little: mir_eval's offset tolerance
      is never under 50 ms. To filter weak notes, raise ``onset_threshold`` rather than ``min_note_ms``.
    * **Fragments** a semitone from a long note are merged into it (``fragment_ms``), shortest first.
    * **Mono.** Notes are taken in order of onset. One starting within ``MONO_SAME_ONSET_FRAMES`` of the sounding
      note's onset competes with it (an octave or a partial heard as a second note): the one with the larger sum
      of frame probability over its span stays. One starting later takes over, cutting the sounding note at its
      onset, when its own key's mean frame probability over the frames they share is higher than the sounding
      key's; otherwise it is dropped.
    * **Velocity** is the velocity head at the onset frame (the only frame it is trained on) times 127, rounded
      and clipped to 1..127; ``DEFAULT_VELOCITY`` without a velocity head.

    Raises:
        Mp3MidiError: an array that is not [frames, 88], arrays of different shapes, or a knob out of its range.
    """
    onsets, frames, offsets, velocities = _checked(onsets, frames, offsets, velocities)
    restrike = checked_rules(onset_threshold=onset_threshold, frame_threshold=frame_threshold,
                             min_note_ms=min_note_ms, gap_ms=gap_ms, restrike_threshold=restrike_threshold,
                             fragment_ms=fragment_ms, min_sounding_ms=min_sounding_ms)
    n_frames = onsets.shape[0]
    gap_frames = _frames_within(gap_ms)
    min_sounding = min_sounding_ms / 1000.0 * FRAMES_PER_SECOND  # frames, not rounded: "shorter than" is exact
    spans = []  # (start frame, exclusive end frame, key)
    for key in range(N_KEYS):
        sounding = _column(frames, key) >= frame_threshold
        if offsets is not None:
            sounding &= _column(offsets, key) < offset_threshold
        column = _column(onsets, key)
        starts = onset_frames(column, onset_threshold)
        if frame_offset == 0 and _sounding_from_the_start(sounding, starts):
            starts = np.concatenate(([0], starts))
        for start, end in _key_spans(starts, column, sounding, bridged(sounding, gap_frames), restrike):
            if end - start >= min_sounding:
                spans.append((start, end, key))
    if fragment_ms > 0:
        spans = merged_fragments(spans, fragment_ms / 1000.0 * FRAMES_PER_SECOND)
    if mono:
        spans = monophonic(spans, frames)
    return _notes(spans, n_frames, velocities, min_note_ms=min_note_ms, frame_offset=frame_offset, mono=mono)


RESTRIKE_DIP_FRAMES = 4  # an onset within 64 ms after a dip of its key re-strikes at the plain onset threshold
FRAGMENT_RATIO = 3.0  # a fragment merges only into a note at least this many times its length
FRAGMENT_GAP_FRAMES = 3  # ... that overlaps it or lies within this many frames (48 ms) of it
MONO_SAME_ONSET_FRAMES = 3  # mono: notes starting this close (48 ms) are rivals for one onset
OPENING_FRAMES = 3  # a key sounding through the recording's first 48 ms with no onset there starts a note at 0 s
RULE_RANGES = {  # knob -> (lowest, highest) accepted value
    "onset_threshold": (0.0, 1.0), "frame_threshold": (0.0, 1.0), "min_note_ms": (0.0, 10_000.0),
    "gap_ms": (0.0, 1_000.0), "fragment_ms": (0.0, 1_000.0), "min_sounding_ms": (0.0, 1_000.0),
}


def checked_rules(*, onset_threshold: float, frame_threshold: float, min_note_ms: float, gap_ms: float,
                  restrike_threshold: float | None, fragment_ms: float, min_sounding_ms: float) -> float:
    """Check every decoding knob is a number in its range; returns the re-strike threshold in effect (the onset
    threshold when None, never below it). Raises Mp3MidiError naming the knob and the value given."""
    given = {"onset_threshold": onset_threshold, "frame_threshold": frame_threshold, "min_note_ms": min_note_ms,
             "gap_ms": gap_ms, "fragment_ms": fragment_ms, "min_sounding_ms": min_sounding_ms}
    if restrike_threshold is not None:
        given["restrike_threshold"] = restrike_threshold
    for name, value in given.items():
        low, high = RULE_RANGES.get(name, RULE_RANGES["onset_threshold"])
        if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) \
                or not low <= float(value) <= high:
            raise Mp3MidiError(f"{name} must be a number from {low:g} to {high:g}; got {value!r}")
    return onset_threshold if restrike_threshold is None else max(float(restrike_threshold), onset_threshold)


def bridged(sounding: np.ndarray, gap_frames: int) -> np.ndarray:
    """[frames] bools with every run of False of at most ``gap_frames`` frames that has True on both sides filled."""
    if gap_frames <= 0 or not sounding.any():
        return sounding
    padded = np.concatenate(([True], sounding, [True]))
    edges = np.flatnonzero(np.diff(padded.astype(np.int8)))  # falls (gap starts) and rises (gap ends), in pairs
    filled = sounding.copy()
    for first, last in edges.reshape(-1, 2):
        if 0 < first and last < sounding.size and last - first <= gap_frames:
            filled[first:last] = True
    return filled


def _key_spans(starts: np.ndarray, onset_column: np.ndarray, sounding: np.ndarray, held: np.ndarray,
               restrike: float):
    """(start, exclusive end) frames of one key's notes: each onset sounds while ``held`` (``sounding`` with its
    short dips bridged) until an onset that re-strikes arrives. An onset re-strikes when the key dipped (was not
    ``sounding``) within ``RESTRIKE_DIP_FRAMES`` before it, or when it reaches ``restrike``; weaker onsets on a
    key that kept sounding are absorbed."""
    n_frames = sounding.size
    silent = np.flatnonzero(~held)
    dipped = np.flatnonzero(~sounding)
    index = 0
    while index < starts.size:
        start = int(starts[index])
        after = silent[np.searchsorted(silent, start + 1):]
        end = int(after[0]) if after.size else n_frames
        following = index + 1
        while following < starts.size and starts[following] < end and onset_column[starts[following]] < restrike \
                and not _dipped_before(dipped, int(starts[following]), start):
            following += 1  # a weak onset while the key kept sounding: the same note
        if following < starts.size and starts[following] < end:
            end = int(starts[following])  # a re-strike
        yield start, end
        index = following


def _dipped_before(dipped: np.ndarray, onset: int, note_start: int) -> bool:
    """Whether a frame of ``dipped`` (sorted) lies in the RESTRIKE_DIP_FRAMES up to ``onset`` (inclusive), after the
    sounding note's own onset frame."""
    first = max(onset - RESTRIKE_DIP_FRAMES, note_start + 1)
    at = np.searchsorted(dipped, first)
    return bool(at < dipped.size and dipped[at] <= onset)


def merged_fragments(spans: list[tuple[int, int, int]], fragment_frames: float) -> list[tuple[int, int, int]]:
    """Spans (start, end, key) with each one shorter than ``fragment_frames`` merged into the longest note a
    semitone away that is at least ``FRAGMENT_RATIO`` times as long and overlaps it or lies within
    ``FRAGMENT_GAP_FRAMES``; the long note then covers both, cut where it would reach another note on its key.
    Each fragment looks only at the notes near it on the two keys beside it (per-key lists in time order)."""
    spans = sorted(spans, key=lambda span: (span[1] - span[0], span[0]))  # shortest first
    alive = [True] * len(spans)
    on_key: dict[int, list[int]] = {}  # key -> indices of its live spans, in time order (they never overlap)
    for index in sorted(range(len(spans)), key=lambda i: spans[i][0]):
        on_key.setdefault(spans[index][2], []).append(index)
    for index, (start, end, key) in enumerate(spans):
        if end - start >= fragment_frames:
            break
        host = _fragment_host(spans, on_key, start, end, key)
        if host is None:
            continue
        h_start, h_end, h_key = spans[host]
        order = on_key[h_key]
        at = order.index(host)
        before = spans[order[at - 1]][1] if at > 0 else 0
        after = spans[order[at + 1]][0] if at + 1 < len(order) else max(end, h_end)
        spans[host] = (max(min(start, h_start), before), min(max(end, h_end), after), h_key)
        alive[index] = False
        on_key[key].remove(index)
    return [span for span, keep in zip(spans, alive) if keep]


def _fragment_host(spans, on_key, start: int, end: int, key: int) -> int | None:
    """The longest live span a semitone from key, near [start, end) and FRAGMENT_RATIO times as long, or None."""
    length, best, best_length = end - start, None, 0
    for other_key in (key - 1, key + 1):
        order = on_key.get(other_key, [])
        position = bisect.bisect_left(order, end + FRAGMENT_GAP_FRAMES, key=lambda i: spans[i][0])
        for index in reversed(order[max(0, position - _FRAGMENT_LOOKBACK):position]):
            o_start, o_end, _ = spans[index]
            if o_end + FRAGMENT_GAP_FRAMES <= start:
                break  # this one and every earlier one on the key ended too long before
            if o_end - o_start >= FRAGMENT_RATIO * length and o_end - o_start > best_length:
                best, best_length = index, o_end - o_start
    return best


_FRAGMENT_LOOKBACK = 64  # spans on a key that can overlap one fragment: a handful; this bounds the scan anyway


def monophonic(spans: list[tuple[int, int, int]], frames: np.ndarray) -> list[tuple[int, int, int]]:
    """One note at a time (see ``decode``): spans (start, end, key) against [frames, 88] frame probabilities."""
    def weight(start, end, key):
        return float(frames[start:end, key].astype(np.float64).sum())

    kept: list[tuple[int, int, int]] = []
    for span in sorted(spans, key=lambda s: (s[0], -weight(*s))):
        start, end, key = span
        if not kept or kept[-1][1] <= start:
            kept.append(span)
            continue
        c_start, c_end, c_key = kept[-1]
        if start - c_start < MONO_SAME_ONSET_FRAMES:  # rivals for one onset: the louder over the time both sound
            both = slice(max(start, c_start), min(end, c_end))
            if frames[both, key].astype(np.float64).mean() > frames[both, c_key].astype(np.float64).mean():
                kept[-1] = span
            continue
        shared = slice(start, min(end, c_end))
        if frames[shared, key].astype(np.float64).mean() > frames[shared, c_key].astype(np.float64).mean():
            kept[-1] = (c_start, start, c_key)
            kept.append(span)
    return kept


def _notes(spans, n_frames: int, velocities, *, min_note_ms: float, frame_offset: int, mono: bool) -> list[Note]:
    """Notes from spans (start, end, key): each lengthened to ``min_note_ms``, never into the next on its key (with
    ``mono``, into the next note at all)."""
    next_start: dict[tuple[int, int], int] = {}
    by_key: dict[int, list[int]] = {}
    for start, _, key in spans:
        by_key.setdefault(-1 if mono else key, []).append(start)
    for key, starts in by_key.items():
        starts.sort()
        for current, following in zip(starts, starts[1:] + [n_frames]):
            next_start[(key, current)] = following
    min_length_s = min_note_ms / 1000.0
    notes = []
    for start, end, key in spans:
        stop = next_start[(-1 if mono else key, start)]
        start_s = _seconds(start, frame_offset)
        end_s = max(_seconds(end, frame_offset), start_s + min_length_s)
        if stop < n_frames:  # lengthened, but never into the next note on this key
            end_s = min(end_s, _seconds(stop, frame_offset))
        notes.append(Note(start_s, end_s, key + LOWEST_PITCH, _velocity(velocities, start, key)))
    return sorted(notes, key=lambda note: (note.start_s, note.pitch))


def _frames_within(milliseconds: float) -> int:
    """``milliseconds`` as a whole number of frames (rounded to the nearest frame)."""
    return int(round(milliseconds / 1000.0 * FRAMES_PER_SECOND))


def _sounding_from_the_start(sounding: np.ndarray, starts: np.ndarray) -> bool:
    """Whether a key sounds through the recording's first OPENING_FRAMES with no onset among them: a note already
    sounding (or struck on the very first frame, before the network has any context) when the recording begins."""
    opening = min(OPENING_FRAMES, sounding.size)
    return bool(opening and sounding[:opening].all() and not (starts.size and starts[0] < opening))


def onset_frames(probabilities: np.ndarray, threshold: float) -> np.ndarray:
    """Frames of the onsets on one key: the highest frame of each run of [frames] probabilities >= threshold."""
    above = np.concatenate(([False], probabilities >= threshold, [False]))
    edges = np.flatnonzero(np.diff(above.astype(np.int8)))  # alternating run starts and (exclusive) run ends
    runs = edges.reshape(-1, 2)
    return np.array([first + int(np.argmax(probabilities[first:last])) for first, last in runs], dtype=np.int64)


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
