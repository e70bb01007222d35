"""Seeded procedural music: pieces built from short sections, each one texture at one tempo in one register.

The point is coverage rather than beauty. Over many seeds the pieces reach every key of the piano, one to eight
simultaneous notes, velocities from pianissimo to fortissimo (crescendos included), notes from 30 ms to 4 s,
tempi from 40 to 220 BPM, and real silences, so a transcription model trained on them sees all of it.

Everything is drawn from one ``np.random.default_rng(seed)``: a seed always gives the same piece. The piece is a
single pitched part on program 0; the caller assigns real instruments afterwards.
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .constants import HIGHEST_PITCH, LOWEST_PITCH, MIDI_VELOCITY_MAX, SEMITONES_PER_OCTAVE
from .errors import Mp3MidiError
from .notes import Note, Part, Score, remove_self_overlaps

# --- limits every piece keeps ----------------------------------------------------------------------------------
VELOCITY_MIN = 15  # quieter than this many soundfonts do not sound at all
MIN_NOTE_S = 0.03
MAX_NOTE_S = 4.0
MAX_POLYPHONY = 8
PLACEHOLDER_PROGRAM = 0  # the caller assigns real instruments

# --- section plan ----------------------------------------------------------------------------------------------
TEMPO_RANGE_BPM = (40.0, 220.0)
SECTION_RANGE_S = (2.0, 6.0)
SILENCE_RANGE_S = (0.5, 3.0)
TEMPO_CHANGE_PROBABILITY = 0.6  # otherwise a section keeps the tempo of the one before
KEY_CHANGE_PROBABILITY = 0.4  # likewise for root and scale
DYNAMIC_CHANGE_PROBABILITY = 0.4  # chance that a section is a crescendo or diminuendo rather than level
VELOCITY_JITTER = 6.0  # standard deviation of per-note velocity around the section's dynamic curve
TIMING_JITTER_MAX_S = 0.012  # each section humanizes its onsets by a standard deviation up to this
SECONDS_PER_MINUTE = 60.0

SCALES: dict[str, tuple[int, ...]] = {
    "major": (0, 2, 4, 5, 7, 9, 11),
    "natural_minor": (0, 2, 3, 5, 7, 8, 10),
    "harmonic_minor": (0, 2, 3, 5, 7, 8, 11),
    "dorian": (0, 2, 3, 5, 7, 9, 10),
    "pentatonic": (0, 2, 4, 7, 9),
    "whole_tone": (0, 2, 4, 6, 8, 10),
    "chromatic": tuple(range(SEMITONES_PER_OCTAVE)),
}

# --- textures ----------------------------------------------------------------------------------------------------
REPEAT_SUBDIVISIONS = (1, 2, 3, 4)  # notes per beat
REPEAT_GATE_RANGE = (0.2, 0.95)  # fraction of the step a note sounds
REPEAT_HITS_PER_PITCH = (2, 17)  # half-open: hits before the repeated pitch moves
REPEAT_PITCH_STEP = 3  # scale degrees the repeated pitch may move by

CHORD_BEATS = (0.5, 1, 2, 4)  # beats per chord
CHORD_GATE_RANGE = (0.4, 1.0)
CHORD_DEGREE_GAPS = (1, 2, 2, 2, 3)  # scale degrees between stacked chord notes, mostly thirds
CHORD_ROOT_STEP = 4  # scale degrees the chord root moves by between chords

ARPEGGIO_SUBDIVISIONS = (2, 3, 4)
ARPEGGIO_CHORD_SIZES = (3, 6)  # half-open
ARPEGGIO_HOLD_STEPS = (1, 5)  # half-open: steps each note rings, as if the pedal were down
ARPEGGIO_PATTERNS = ("up", "down", "up_down", "shuffled")

RUN_SUBDIVISIONS = (4, 6, 8)
RUN_LENGTHS = (6, 25)  # half-open, notes per run
RUN_GATE_RANGE = (0.6, 1.0)
RUN_REST_STEPS = (0, 3)  # half-open, steps of rest between runs

LEGATO_BEATS = (0.5, 1.0, 1.5, 2.0)  # note lengths in beats
LEGATO_OVERLAP_RANGE_S = (0.01, 0.06)  # how far each note rings into the next (always a different pitch)
LEGATO_MAX_STEP = 4  # scale degrees between consecutive notes

SUSTAIN_VOICES = (1, 5)  # half-open
SUSTAIN_RANGE_S = (1.5, MAX_NOTE_S)
SUSTAIN_SPREAD_DEGREES = 7  # voices sit within this many scale degrees of the centre
SUSTAIN_STAGGER_BEATS = 2.0  # later voices enter up to this many beats after the first

CLOUD_RATE_RANGE = (2.0, 12.0)  # onsets per second
CLOUD_SPREAD_RANGE = (3, 25)  # half-open, semitones either side of the centre
CLOUD_VELOCITY_JITTER = 18.0

TEXTURE_WEIGHTS: dict[str, float] = {
    "repeated": 1.0,
    "block_chords": 1.5,
    "arpeggio": 1.5,
    "scalar_runs": 1.0,
    "legato": 1.5,
    "sustained": 1.0,
    "cloud": 1.0,
    "silence": 0.5,
}


@dataclass(frozen=True, slots=True)
class Section:
    """A stretch of a piece played with one texture. ``centre`` is the register's MIDI pitch."""

    texture: str
    start_s: float
    end_s: float
    tempo_bpm: float
    root: int  # pitch class 0-11 of the scale's root
    scale: str
    centre: int
    velocity_from: float  # the dynamic curve runs linearly from here at the start ...
    velocity_to: float  # ... to here at the end
    timing_jitter_s: float

    @property
    def length_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def beat_s(self) -> float:
        return SECONDS_PER_MINUTE / self.tempo_bpm


def plan_sections(rng: np.random.Generator, *, duration_s: float) -> list[Section]:
    """Consecutive sections filling ``duration_s`` seconds, drawn from ``rng``."""
    names = tuple(TEXTURE_WEIGHTS)
    weights = np.array([TEXTURE_WEIGHTS[name] for name in names])
    weights /= weights.sum()
    sections: list[Section] = []
    start = 0.0
    tempo = root = scale = None
    while start < duration_s:
        texture = str(rng.choice(names, p=weights))
        length = rng.uniform(*(SILENCE_RANGE_S if texture == "silence" else SECTION_RANGE_S))
        if tempo is None or rng.random() < TEMPO_CHANGE_PROBABILITY:
            tempo = float(rng.uniform(*TEMPO_RANGE_BPM))
        if root is None or rng.random() < KEY_CHANGE_PROBABILITY:
            root, scale = int(rng.integers(SEMITONES_PER_OCTAVE)), str(rng.choice(tuple(SCALES)))
        velocity_from = float(rng.uniform(VELOCITY_MIN, MIDI_VELOCITY_MAX))
        velocity_to = velocity_from
        if rng.random() < DYNAMIC_CHANGE_PROBABILITY:
            velocity_to = float(rng.uniform(VELOCITY_MIN, MIDI_VELOCITY_MAX))
        end = min(start + float(length), duration_s)
        sections.append(Section(
            texture=texture, start_s=start, end_s=end, tempo_bpm=tempo, root=root, scale=scale,
            centre=int(rng.integers(LOWEST_PITCH, HIGHEST_PITCH + 1)),
            velocity_from=velocity_from, velocity_to=velocity_to,
            timing_jitter_s=float(rng.uniform(0.0, TIMING_JITTER_MAX_S)),
        ))
        start = end
    return sections


def generate_piece(seed: int, *, duration_s: float = 30.0) -> Score:
    """A piece of at most ``duration_s`` seconds; the same seed always gives the same piece.

    Its one part holds notes within the 88 keys, velocities 15-127, lengths 30 ms - 4 s, never more than eight
    at once and never one key sounding twice. ``Score.duration_s`` is when the last note ends.
    """
    if not (math.isfinite(duration_s) and duration_s > 0):
        raise Mp3MidiError(f"a procedural piece needs a positive duration, not {duration_s!r} s")
    rng = np.random.default_rng(seed)
    notes: list[Note] = []
    for section in plan_sections(rng, duration_s=duration_s):
        notes.extend(_fit_to_section(TEXTURES[section.texture](section, rng), section))
    notes = [note for note in remove_self_overlaps(notes) if note.duration_s >= MIN_NOTE_S]
    notes = _cap_polyphony(notes, limit=MAX_POLYPHONY)
    part = Part(program=PLACEHOLDER_PROGRAM, is_drum=False, notes=tuple(notes))
    return Score(parts=(part,), duration_s=max((note.end_s for note in notes), default=0.0))


# --- textures: each returns notes for one section; _fit_to_section trims them to it ------------------------------

def _repeated(section: Section, rng: np.random.Generator, *, subdivisions: tuple[int, ...] = REPEAT_SUBDIVISIONS,
              gate_range: tuple[float, float] = REPEAT_GATE_RANGE,
              hits_per_pitch: tuple[int, int] = REPEAT_HITS_PER_PITCH) -> list[Note]:
    """One key struck again and again, moving to a nearby key every few hits."""
    pitches = _scale_pitches(section)
    step = section.beat_s / int(rng.choice(subdivisions))
    gate = rng.uniform(*gate_range)
    index = _index_near(pitches, section.centre)
    hits_left = int(rng.integers(*hits_per_pitch))
    notes, t = [], section.start_s
    while t < section.end_s:
        if hits_left == 0:
            index = _wander(index, rng, len(pitches), max_step=REPEAT_PITCH_STEP)
            hits_left = int(rng.integers(*hits_per_pitch))
        notes.append(_note(_humanize(section, rng, t), step * gate, pitches[index], _velocity(section, rng, t)))
        hits_left -= 1
        t += step
    return notes


def _block_chords(section: Section, rng: np.random.Generator, *, beats_per_chord: tuple[float, ...] = CHORD_BEATS,
                  gate_range: tuple[float, float] = CHORD_GATE_RANGE, max_size: int = MAX_POLYPHONY) -> list[Note]:
    """Chords of one to ``max_size`` notes struck together; the size wobbles by one around the section's."""
    pitches = _scale_pitches(section)
    size = int(rng.integers(1, max_size + 1))
    step = section.beat_s * float(rng.choice(beats_per_chord))
    gate = rng.uniform(*gate_range)
    root = _index_near(pitches, section.centre)
    notes, t = [], section.start_s
    while t < section.end_s:
        chord_size = int(np.clip(size + rng.integers(-1, 2), 1, max_size))
        onset = _humanize(section, rng, t)
        for pitch in _stack(pitches, root, chord_size, rng):
            notes.append(_note(onset, step * gate, pitch, _velocity(section, rng, t)))
        root = _wander(root, rng, len(pitches), max_step=CHORD_ROOT_STEP)
        t += step
    return notes


def _arpeggio(section: Section, rng: np.random.Generator, *, subdivisions: tuple[int, ...] = ARPEGGIO_SUBDIVISIONS,
              chord_sizes: tuple[int, int] = ARPEGGIO_CHORD_SIZES, hold_steps: tuple[int, int] = ARPEGGIO_HOLD_STEPS,
              patterns: tuple[str, ...] = ARPEGGIO_PATTERNS) -> list[Note]:
    """Broken chords, one note per step, each ringing for a few steps as under a held pedal."""
    pitches = _scale_pitches(section)
    step = section.beat_s / int(rng.choice(subdivisions))
    size, hold = int(rng.integers(*chord_sizes)), int(rng.integers(*hold_steps))
    pattern = str(rng.choice(patterns))
    root = _index_near(pitches, section.centre)
    notes, t = [], section.start_s
    while t < section.end_s:
        chord = _stack(pitches, root, size, rng)
        for pitch in _arpeggio_order(chord, pattern, rng):
            if t >= section.end_s:
                break
            notes.append(_note(_humanize(section, rng, t), step * hold, pitch, _velocity(section, rng, t)))
            t += step
        root = _wander(root, rng, len(pitches), max_step=CHORD_ROOT_STEP)
    return notes


def _arpeggio_order(chord: list[int], pattern: str, rng: np.random.Generator) -> list[int]:
    if pattern == "up":
        return chord
    if pattern == "down":
        return chord[::-1]
    if pattern == "up_down":
        return chord + chord[-2:0:-1]
    return [chord[i] for i in rng.permutation(len(chord))]


def _scalar_runs(section: Section, rng: np.random.Generator, *, subdivisions: tuple[int, ...] = RUN_SUBDIVISIONS,
                 run_lengths: tuple[int, int] = RUN_LENGTHS, gate_range: tuple[float, float] = RUN_GATE_RANGE,
                 rest_steps: tuple[int, int] = RUN_REST_STEPS) -> list[Note]:
    """Fast runs up or down the scale, turning back at the ends of the keyboard, with short rests between."""
    pitches = _scale_pitches(section)
    step = section.beat_s / int(rng.choice(subdivisions))
    gate = rng.uniform(*gate_range)
    index = _index_near(pitches, section.centre)
    notes, t = [], section.start_s
    while t < section.end_s:
        direction = int(rng.choice((-1, 1)))
        for _ in range(int(rng.integers(*run_lengths))):
            if t >= section.end_s:
                break
            notes.append(_note(_humanize(section, rng, t), step * gate, pitches[index], _velocity(section, rng, t)))
            if not 0 <= index + direction < len(pitches):
                direction = -direction
            index += direction
            t += step
        t += step * int(rng.integers(*rest_steps))
    return notes


def _legato(section: Section, rng: np.random.Generator, *, beats: tuple[float, ...] = LEGATO_BEATS,
            overlap_range_s: tuple[float, float] = LEGATO_OVERLAP_RANGE_S,
            max_step: int = LEGATO_MAX_STEP) -> list[Note]:
    """A melody whose every note rings slightly into the next, which is always a different key."""
    pitches = _scale_pitches(section)
    index = _index_near(pitches, section.centre)
    notes, t = [], section.start_s
    while t < section.end_s:
        length = section.beat_s * float(rng.choice(beats))
        overlap = rng.uniform(*overlap_range_s)
        notes.append(_note(_humanize(section, rng, t), length + overlap, pitches[index], _velocity(section, rng, t)))
        move = int(rng.integers(1, max_step + 1)) * int(rng.choice((-1, 1)))
        index = index + move if 0 <= index + move < len(pitches) else index - move
        t += length
    return notes


def _sustained(section: Section, rng: np.random.Generator, *, voices: tuple[int, int] = SUSTAIN_VOICES,
               length_range_s: tuple[float, float] = SUSTAIN_RANGE_S,
               spread: int = SUSTAIN_SPREAD_DEGREES) -> list[Note]:
    """A few voices holding long notes, entering one after another."""
    pitches = _scale_pitches(section)
    centre = _index_near(pitches, section.centre)
    notes = []
    for voice in range(int(rng.integers(*voices))):
        t = section.start_s + (rng.uniform(0, SUSTAIN_STAGGER_BEATS * section.beat_s) if voice else 0.0)
        while t < section.end_s:
            length = rng.uniform(*length_range_s)
            index = int(np.clip(centre + rng.integers(-spread, spread + 1), 0, len(pitches) - 1))
            notes.append(_note(t, length, pitches[index], _velocity(section, rng, t)))
            t += length
    return notes


def _cloud(section: Section, rng: np.random.Generator, *, rate_range: tuple[float, float] = CLOUD_RATE_RANGE,
           spread_range: tuple[int, int] = CLOUD_SPREAD_RANGE,
           velocity_jitter: float = CLOUD_VELOCITY_JITTER) -> list[Note]:
    """Random chromatic notes at random times, lengths and loudness around the register centre."""
    count = int(rng.poisson(rng.uniform(*rate_range) * section.length_s))
    spread = int(rng.integers(*spread_range))
    onsets = np.sort(rng.uniform(section.start_s, section.end_s, count))
    offsets = rng.integers(-spread, spread + 1, count)
    lengths = np.exp(rng.uniform(np.log(MIN_NOTE_S), np.log(MAX_NOTE_S), count))
    return [
        _note(onset, length, _fold(section.centre + int(offset)),
              _velocity(section, rng, onset, jitter=velocity_jitter))
        for onset, offset, length in zip(onsets, offsets, lengths)
    ]


def _silence(section: Section, rng: np.random.Generator) -> list[Note]:
    """Nothing at all, so the model learns what no notes sound like."""
    return []


TEXTURES: dict[str, Callable[[Section, np.random.Generator], list[Note]]] = {
    "repeated": _repeated,
    "block_chords": _block_chords,
    "arpeggio": _arpeggio,
    "scalar_runs": _scalar_runs,
    "legato": _legato,
    "sustained": _sustained,
    "cloud": _cloud,
    "silence": _silence,
}
assert set(TEXTURES) == set(TEXTURE_WEIGHTS), "every texture needs a weight"


# --- helpers -------------------------------------------------------------------------------------------------------

def _scale_pitches(section: Section) -> np.ndarray:
    """The section's scale as MIDI pitches across the 88 keys, ascending."""
    intervals = SCALES[section.scale]
    return np.array([pitch for pitch in range(LOWEST_PITCH, HIGHEST_PITCH + 1)
                     if (pitch - section.root) % SEMITONES_PER_OCTAVE in intervals])


def _index_near(pitches: np.ndarray, pitch: int) -> int:
    return int(np.argmin(np.abs(pitches - pitch)))


def _wander(index: int, rng: np.random.Generator, size: int, *, max_step: int) -> int:
    """A nearby index into a scale of ``size`` pitches, kept within it."""
    return min(max(index + int(rng.integers(-max_step, max_step + 1)), 0), size - 1)  # (np.clip is slow on scalars)


def _stack(pitches: np.ndarray, centre: int, size: int, rng: np.random.Generator) -> list[int]:
    """``size`` scale pitches stacked mostly in thirds around index ``centre``, shifted to fit the keyboard."""
    indices = np.concatenate([[0], np.cumsum(rng.choice(CHORD_DEGREE_GAPS, size - 1))]) + centre
    indices -= (indices[-1] - centre) // 2
    indices -= max(0, indices[-1] - (len(pitches) - 1))
    indices += max(0, -indices[0])
    return [int(pitches[i]) for i in indices]


def _fold(pitch: int) -> int:
    """Move a pitch by octaves until it lies on the keyboard."""
    while pitch < LOWEST_PITCH:
        pitch += SEMITONES_PER_OCTAVE
    while pitch > HIGHEST_PITCH:
        pitch -= SEMITONES_PER_OCTAVE
    return pitch


def _humanize(section: Section, rng: np.random.Generator, t: float) -> float:
    return t + rng.normal(0.0, section.timing_jitter_s)


def _velocity(section: Section, rng: np.random.Generator, t: float, *, jitter: float = VELOCITY_JITTER) -> int:
    """The section's dynamic curve at time ``t`` plus a little per-note variation."""
    where = min(max((t - section.start_s) / section.length_s, 0.0), 1.0)
    level = section.velocity_from + (section.velocity_to - section.velocity_from) * where + rng.normal(0.0, jitter)
    return min(max(round(level), VELOCITY_MIN), MIDI_VELOCITY_MAX)


def _note(start: float, length: float, pitch: int, velocity: int) -> Note:
    """A note whose length is kept within MIN_NOTE_S..MAX_NOTE_S, exactly as ``Note.duration_s`` computes it."""
    start = float(start)
    end = start + min(max(float(length), MIN_NOTE_S), MAX_NOTE_S)
    while end - start < MIN_NOTE_S:  # floating-point rounding can land a hair short of the bound ...
        end = math.nextafter(end, math.inf)
    while end - start > MAX_NOTE_S:  # ... or a hair over it
        end = math.nextafter(end, -math.inf)
    return Note(start, end, int(pitch), int(velocity))


def _fit_to_section(notes: list[Note], section: Section) -> list[Note]:
    """Trim notes to the section's span and drop those left shorter than MIN_NOTE_S."""
    fitted = []
    for note in notes:
        start, end = max(note.start_s, section.start_s), min(note.end_s, section.end_s)
        if end - start >= MIN_NOTE_S:
            fitted.append(Note(start, end, note.pitch, note.velocity))
    return fitted


def _cap_polyphony(notes: list[Note], *, limit: int) -> list[Note]:
    """Drop any note that would start while ``limit`` notes already sound (a note sounds over [start, end))."""
    kept: list[Note] = []
    sounding: list[float] = []  # end times, as a heap
    for note in sorted(notes, key=lambda n: (n.start_s, n.pitch)):
        while sounding and sounding[0] <= note.start_s:
            heapq.heappop(sounding)
        if len(sounding) < limit:
            heapq.heappush(sounding, note.end_s)
            kept.append(note)
    return kept
