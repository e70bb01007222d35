"""Pitch bends: each note's pitch contour (vibrato, drift, small bends) measured from the features and written as
pitch-wheel events, one channel per sounding note (MPE-style), so any synthesizer plays back what was heard.

Measuring. The features have three CQT bins per key. In every frame and for every key, the loudest of the five
bins around the key's centre (+-2 bins, +-67 cents) and its two neighbours give a parabola (on the log magnitude the
features hold, where a Hann-windowed peak is close to one); its vertex is the pitch to a few cents. A frame whose
loudest bin is at the edge of the five has its peak outside them and reads "unknown" (NaN): a neighbouring key's
note, not this key's bend. The result, ``key_deviations``, is [frames, 88] semitones from each key's equal-tempered
pitch; it is computed chunk by chunk as the features stream past (``DeviationGatherer``), 2 bytes per frame and key.

The CQT's filter for a key is Q = 51 periods long (117 ms at A4, 470 ms at A2), so a key's reading is the pitch
averaged over that window: read on the key itself, a 5 Hz vibrato at A4 shows 86 % of its depth, at A2 8 %. A note's
contour is therefore read on its 4th or 2nd harmonic where one is clear (``note_contour``), whose window is 4 or 2
times shorter: a +-40 cent, 5 Hz vibrato then reads 39 cents at A4, 38 at A3, 34 at A2. Slower bends and drift read
fully. Bends wider than about +-60 cents are left to the notes themselves (the network splits a slide into the keys
it passes).

Writing. The pitch wheel bends a whole channel, so each note that bends gets a member channel of its own, the
one free longest (its last note's release has had the most time to fade): channels 2-9 and 11-16 (0-based 1-8,
10-15; channel 10 is General MIDI's drums). Notes that find every member channel busy, and notes with no bend to
speak of, play on channel 1 (0-based 0), whose wheel never moves: they keep no bend rather than bending their
neighbours. Every channel gets its bend range by RPN 0 (CC101=0, CC100=0, CC6=range, CC38=0, then the null RPN) at
the start and again before every note, and its wheel set afresh at every note start.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterable, Sequence

import mido
import numpy as np
import pretty_midi

from pipeline.constants import (BINS_PER_SEMITONE, DRUM_CHANNEL, FRAMES_PER_SECOND, LOWEST_PITCH, N_BINS, N_KEYS,
                                SEMITONES_PER_OCTAVE)
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note

BEND_RANGE_SEMITONES = 2  # RPN 0's value: General MIDI's default sensitivity, which every synthesizer accepts
SEARCH_BINS = 2  # bins either side of a key's centre where its peak is looked for (+-67 cents)
MIN_LEVEL = 0.05  # features below this (about -76 dBFS) carry no pitch
HARMONIC_OCTAVES = (2, 1, 0)  # harmonics 4, 2 and 1, tried in this order (see note_contour)
KNOWN_FRACTION = 0.8  # a harmonic is used when its pitch is known in this share of the note's frames
SMOOTHING_FRAMES = 3  # a running median over this many frames removes single-frame outliers
FLAT_CENTS = 5.0  # a note whose contour stays within this of its key's pitch needs no channel of its own
WHEEL_STEP_CENTS = 1.0  # a new pitch-wheel event only when the contour moved this much since the last one
WHEEL_MAX = 8191  # the pitch wheel's 14 bits, as mido counts them: -8192 .. 8191
CENTS_PER_SEMITONE = 100.0
MASTER_CHANNEL = 0  # notes without a bend of their own; its wheel stays centred
MEMBER_CHANNELS = tuple(c for c in range(1, 16) if c != DRUM_CHANNEL)  # 14 channels a bending note can own
RPN_MSB, RPN_LSB, DATA_MSB, DATA_LSB = 101, 100, 6, 38
RPN_NULL = 127


def key_deviations(features: np.ndarray) -> np.ndarray:
    """features [frames, N_BINS] (the network's CQT, log magnitude in [0, 1]) -> [frames, N_KEYS] float32: each
    key's pitch in semitones from its equal-tempered centre, by a parabola through the peak bin and its
    neighbours; NaN where the key's +-SEARCH_BINS bins hold no peak (silent, or a neighbour's note)."""
    features = np.asarray(features, np.float32)
    if features.ndim != 2 or features.shape[1] != N_BINS:
        raise Mp3MidiError(f"key_deviations needs features [frames, {N_BINS}]; got shape {features.shape}")
    frames = features.shape[0]
    padded = np.zeros((frames, N_BINS + 2 * SEARCH_BINS), np.float32)
    padded[:, SEARCH_BINS:SEARCH_BINS + N_BINS] = features
    centres = np.arange(N_KEYS) * BINS_PER_SEMITONE + BINS_PER_SEMITONE // 2 + SEARCH_BINS  # in padded bins
    offsets = np.arange(-SEARCH_BINS, SEARCH_BINS + 1)
    window = padded[:, centres[:, None] + offsets[None, :]]  # [frames, keys, 2 * SEARCH_BINS + 1]
    peak = window.argmax(axis=2)
    inside = (peak > 0) & (peak < 2 * SEARCH_BINS)
    index = np.clip(peak, 1, 2 * SEARCH_BINS - 1)[..., None]
    left, centre, right = (np.take_along_axis(window, index + step, axis=2)[..., 0] for step in (-1, 0, 1))
    curvature = left - 2.0 * centre + right
    with np.errstate(divide="ignore", invalid="ignore"):
        vertex = np.where(curvature < 0, 0.5 * (left - right) / curvature, np.nan)
    position = index[..., 0] - SEARCH_BINS + np.clip(vertex, -0.5, 0.5)
    valid = inside & (centre >= MIN_LEVEL) & np.isfinite(vertex)
    return np.where(valid, position / BINS_PER_SEMITONE, np.nan).astype(np.float32)


class DeviationGatherer:
    """Collects ``key_deviations`` of feature pieces as they stream by (``transcribe(on_features=...)``), at
    float16, without keeping the features. ``result()`` is [frames, N_KEYS]."""

    def __init__(self, then: Callable[[np.ndarray], None] | None = None):
        self._pieces: list[np.ndarray] = []
        self._then = then

    def __call__(self, features: np.ndarray) -> None:
        if len(features):
            self._pieces.append(key_deviations(features).astype(np.float16))
        if self._then is not None:
            self._then(features)

    def result(self) -> np.ndarray:
        if not self._pieces:
            return np.zeros((0, N_KEYS), np.float16)
        return np.concatenate(self._pieces)


def note_contour(note: Note, deviations: np.ndarray, *, others: Sequence[Note] = ()) -> tuple[np.ndarray, np.ndarray]:
    """(times_s [n], semitones [n]): ``note``'s pitch relative to its key in each frame it sounds, smoothed, with
    unknown frames filled from their neighbours (all zero when none is known). deviations: [frames, N_KEYS].

    The contour is read on the highest of the note's 4th, 2nd and 1st harmonics (two octaves, one octave up, the
    key itself) that is known in most of its frames and is not the key of another note sounding meanwhile
    (``others``): a bend moves every harmonic by the same cents, and the CQT's window on a harmonic is 1/h as
    long, so it follows a vibrato more closely (depth of a 5 Hz vibrato read at A3: 55 % on the key, 95 % two
    octaves up).
    """
    first = max(0, int(np.ceil(note.start_s * FRAMES_PER_SECOND)))
    last = min(len(deviations), int(np.ceil(note.end_s * FRAMES_PER_SECOND)))  # exclusive
    if not LOWEST_PITCH <= note.pitch < LOWEST_PITCH + N_KEYS or last <= first:
        return np.zeros(0), np.zeros(0)
    busy = {other.pitch for other in others
            if other is not note and other.start_s < note.end_s and other.end_s > note.start_s}
    frames = np.arange(first, last)
    values = np.full(frames.size, np.nan)
    for octaves in HARMONIC_OCTAVES:
        key = note.pitch + octaves * SEMITONES_PER_OCTAVE - LOWEST_PITCH
        if key >= N_KEYS or (octaves and key + LOWEST_PITCH in busy):
            continue
        values = np.asarray(deviations[first:last, key], np.float64)
        if octaves == 0 or np.isfinite(values).mean() >= KNOWN_FRACTION:
            break
    known = np.isfinite(values)
    if not known.any():
        return frames / FRAMES_PER_SECOND, np.zeros(frames.size)
    values = np.interp(frames, frames[known], values[known])  # holds the ends, bridges the gaps
    return frames / FRAMES_PER_SECOND, _running_median(values, SMOOTHING_FRAMES)


def _running_median(values: np.ndarray, width: int) -> np.ndarray:
    if values.size < width:
        return values
    half = width // 2
    padded = np.pad(values, half, mode="edge")
    return np.median(np.lib.stride_tricks.sliding_window_view(padded, width), axis=1)


def assign_channels(notes: Sequence[Note], *, bends: Sequence[bool] | None = None,
                    channels: Sequence[int] = MEMBER_CHANNELS) -> list[int | None]:
    """A member channel per note that bends (``bends[i]``; all of them by default), such that no two notes that
    overlap in time share one; None for a note that needs none or finds every channel busy (it then plays on
    MASTER_CHANNEL, unbent). Among free channels the one free longest is taken."""
    if bends is not None and len(bends) != len(notes):
        raise Mp3MidiError(f"assign_channels needs one bend flag per note; got {len(bends)} for {len(notes)} notes")
    if len(set(channels)) != len(channels) or any(not 0 <= c <= 15 for c in channels):
        raise Mp3MidiError(f"channels must be distinct MIDI channels 0-15; got {list(channels)}")
    free_since = {channel: -np.inf for channel in channels}  # a channel is free from this time on
    assigned: list[int | None] = [None] * len(notes)
    for index in sorted(range(len(notes)), key=lambda i: (notes[i].start_s, notes[i].pitch)):
        note = notes[index]
        if bends is not None and not bends[index]:
            continue
        free = [c for c in channels if free_since[c] <= note.start_s]
        if not free:
            continue
        channel = min(free, key=lambda c: (free_since[c], channels.index(c)))
        assigned[index] = channel
        free_since[channel] = note.end_s
    return assigned


def wheel_value(semitones: float | np.ndarray, *, bend_range: int = BEND_RANGE_SEMITONES) -> np.ndarray:
    """Semitones -> pitch-wheel values (-8192 .. 8191) for a bend range of ``bend_range`` semitones."""
    return np.clip(np.rint(np.asarray(semitones) / bend_range * (WHEEL_MAX + 1)), -WHEEL_MAX - 1,
                   WHEEL_MAX).astype(int)


def midi_with_bends(midi: pretty_midi.PrettyMIDI, notes: Sequence[Note], deviations: np.ndarray, *,
                    bend_range: int = BEND_RANGE_SEMITONES) -> bytes:
    """The bytes of ``midi`` (as ``to_midi`` made it: its tempo map, meta events and program kept) with its notes
    written again one channel per bending note, each with its pitch contour from ``deviations`` [frames, N_KEYS].

    Track 0 is ``midi``'s own meta track; then one track per channel used: the master channel's unbent notes, and
    each member channel's notes with their RPN, wheel reset and contour. Times go through ``midi``'s tempo map.
    """
    if not 1 <= bend_range <= 24:
        raise Mp3MidiError(f"bend range must be 1-24 semitones; got {bend_range}")
    program = midi.instruments[0].program if midi.instruments else 0
    contours = [note_contour(note, deviations, others=notes) for note in notes]
    bends = [values.size > 0 and float(np.abs(values).max()) * CENTS_PER_SEMITONE > FLAT_CENTS
             for _, values in contours]
    channels = assign_channels(notes, bends=bends)
    events: dict[int, list[tuple[int, int, mido.Message]]] = {MASTER_CHANNEL: []}
    for note, channel, (times, values) in zip(notes, channels, contours):
        channel = MASTER_CHANNEL if channel is None else channel
        track = events.setdefault(channel, [])
        start = midi.time_to_tick(note.start_s)
        end = max(midi.time_to_tick(note.end_s), start + 1)
        if channel != MASTER_CHANNEL:
            track += [(start, 1, message) for message in _bend_range(channel, bend_range)]
            wheel = wheel_value(values, bend_range=bend_range)
            track.append((start, 2, mido.Message("pitchwheel", channel=channel, pitch=int(wheel[0]))))
            last = wheel[0]
            step = WHEEL_STEP_CENTS / CENTS_PER_SEMITONE / bend_range * (WHEEL_MAX + 1)
            for time_s, value in zip(times[1:], wheel[1:]):
                tick = midi.time_to_tick(time_s)
                if start < tick < end and abs(value - last) >= step:
                    track.append((tick, 4, mido.Message("pitchwheel", channel=channel, pitch=int(value))))
                    last = value
        track.append((start, 3, mido.Message("note_on", channel=channel, note=note.pitch, velocity=note.velocity)))
        track.append((end, 0, mido.Message("note_off", channel=channel, note=note.pitch, velocity=0)))
    output = mido.MidiFile(type=1, ticks_per_beat=midi.resolution)
    output.tracks.append(_meta_track(midi))
    for channel in sorted(events):
        header = [mido.Message("program_change", channel=channel, program=program), *_bend_range(channel, bend_range),
                  mido.Message("pitchwheel", channel=channel, pitch=0)]
        timed = [(0, -1, message) for message in header] + events[channel]
        output.tracks.append(_track(f"Transcription ch{channel + 1}", timed))
    buffer = io.BytesIO()
    output.save(file=buffer)
    return buffer.getvalue()


def _bend_range(channel: int, semitones: int) -> list[mido.Message]:
    """RPN 0 (pitch-bend sensitivity) set to ``semitones``, then the null RPN so later data entry changes nothing."""
    return [mido.Message("control_change", channel=channel, control=control, value=value)
            for control, value in ((RPN_MSB, 0), (RPN_LSB, 0), (DATA_MSB, semitones), (DATA_LSB, 0),
                                   (RPN_MSB, RPN_NULL), (RPN_LSB, RPN_NULL))]


def _meta_track(midi: pretty_midi.PrettyMIDI) -> mido.MidiTrack:
    """``midi``'s first track as pretty_midi writes it (tempo map, time and key signatures, markers)."""
    buffer = io.BytesIO()
    midi.write(buffer)
    buffer.seek(0)
    return mido.MidiFile(file=buffer).tracks[0]


def _track(name: str, timed: Iterable[tuple[int, int, mido.Message]]) -> mido.MidiTrack:
    """Events (absolute tick, order at that tick, message) -> a track of delta times. At one tick: note-offs,
    then the bend range, the wheel reset and the note-on, then contour steps."""
    track = mido.MidiTrack([mido.MetaMessage("track_name", name=name, time=0)])
    now = 0
    for tick, _, message in sorted(timed, key=lambda event: (event[0], event[1])):
        track.append(message.copy(time=tick - now))
        now = tick
    track.append(mido.MetaMessage("end_of_track", time=0))
    return track
