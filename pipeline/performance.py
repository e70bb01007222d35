"""Performances, not scores: turn a part's written notes into the MIDI events a player would produce, and the
label notes that follow what those events sound like.

What a performance does, drawn per part from a seed (``PartStyle.draw``): humanized onsets, dynamics that move,
intonation a few cents off, vibrato (4-7 Hz, up to +-50 cents, often arriving late in the note), scoops into and
falls out of notes, slides and bends between legato notes (the pitch wheel, its range set by RPN), portamento
under FluidSynth's legato switch (CC68 with CC65/CC5/CC37), slides into a note from another key (CC84), expression
swells, fades and tremolo (CC11, CC7), and the sustain pedal on piano-family parts (CC64).

The pitch wheel bends a whole channel, so per-note pitch expression goes only to *melodic* notes: those that
overlap nothing but the notes just before and after them. Every deviation that keeps a key stays inside a
semitone (``MAX_INSIDE_CENTS``) wherever it lands, so chords under it keep their keys too.

Label rules (pure functions below, tested on their own and through FluidSynth):

- vibrato, scoops, falls and intonation inside a semitone keep the written key;
- a slide or bend to another key ends the old key when the glide leaves half a semitone around it and starts the
  new key where the glide arrives (``slide_labels``); a slide into a note from another key starts it on arrival;
- a note whose key is released while the sustain pedal is down sounds until the pedal lifts or the key is struck
  again (``sustain_notes``), as Onsets and Frames labels MAESTRO.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from .constants import MIDI_VELOCITY_MAX, SEMITONES_PER_OCTAVE
from .instruments import family_of
from .notes import Note, Part, remove_self_overlaps
from .render import BEND_CENTRE, Event

CENTS_PER_SEMITONE = 100
BEND_STEPS = BEND_CENTRE  # wheel positions from the centre to either end of the range
CONTROL_STEP_S = 0.01  # the pitch wheel is sent at up to 100 Hz (vibrato at 7 Hz: 14 points a cycle)
EXPRESSION_STEP_S = 0.02  # CC11 at up to 50 Hz for tremolo (up to 8 Hz) ...
SLOW_EXPRESSION_STEP_S = 0.05  # ... and 20 Hz for phrase dynamics, swells and fades
MAX_INSIDE_CENTS = 95.0  # deviations that keep the key stay under a semitone, detuning included
HALF_SEMITONE = 0.5
RELEASE_HOLD_S = 0.15  # a bent note's wheel stays put this long after its release, so its tail keeps its pitch

# MIDI controllers
CC_PORTAMENTO_TIME, CC_VOLUME, CC_EXPRESSION, CC_PORTAMENTO_TIME_LSB = 5, 7, 11, 37
CC_SUSTAIN, CC_PORTAMENTO, CC_LEGATO, CC_PORTAMENTO_CONTROL = 64, 65, 68, 84
CC_RPN_MSB, CC_RPN_LSB, CC_DATA_MSB, CC_DATA_LSB = 101, 100, 6, 38
CC_ON, CC_OFF = 127, 0
PORTAMENTO_MS_PER_MSB = 128  # FluidSynth's portamento time in ms is MSB * 128 + LSB, a linear glide in pitch

# Families and what they do
PEDAL_FAMILIES = ("piano",)
NO_PITCH_FAMILIES = ("piano", "chromatic_percussion", "percussive")  # struck: no vibrato, no slides
BEND_FAMILIES = ("guitar", "bass", "synth_lead")  # legato pairs become pitch-wheel bends
SUSTAINED_FAMILIES = ("organ", "strings", "ensemble", "brass", "reed", "pipe", "synth_lead", "synth_pad", "ethnic")

# Ranges drawn per part
TIMING_SD_RANGE_S = (0.0, 0.015)
VELOCITY_DRIFT_RANGE = (0.0, 0.3)  # +- fraction of the velocity, a slow curve over the part
DETUNE_RANGE_CENTS = (-12.0, 12.0)
VIBRATO_RATE_HZ = (4.0, 7.0)
VIBRATO_DEPTH_CENTS = (8.0, 50.0)
VIBRATO_MIN_NOTE_S = 0.3
VIBRATO_DELAY_FRACTION = (0.0, 0.6)  # of the note's length before vibrato starts ...
VIBRATO_FADE_IN_S = (0.05, 0.4)  # ... and how long it takes to reach full depth
SCOOP_CENTS = (20.0, 80.0)
SCOOP_S = (0.03, 0.15)
FALL_CENTS = (20.0, 80.0)
FALL_S = (0.05, 0.2)
FALL_MIN_NOTE_S = 0.25
MIN_ARRIVED_S = 0.05  # a glide is only used where the new key then sounds at least this long
LEGATO_GAP_S = 0.03  # consecutive notes at most this far apart (or overlapping) are legato
SLIDE_S = (0.04, 0.2)  # pitch-wheel slides and bends
PORTAMENTO_MS = (30, 200)
SLIDE_IN_SEMITONES = (1, 2)
SLIDE_IN_MS = (40, 120)
BEND_RANGES = (2, 2, 5, 12)  # semitones, set by RPN
PEDAL_CHANGE_S = (0.8, 3.0)
PEDAL_LIFT_AFTER_ONSET_S = (0.01, 0.06)
PEDAL_DOWN_AFTER_LIFT_S = (0.05, 0.15)
EXPRESSION_FLOOR = (50, 90)  # CC11 never falls below this, so no note fades to nothing
TREMOLO_RATE_HZ = (3.0, 8.0)
TREMOLO_DEPTH = (10, 40)
VOLUME_RANGE = (85, 127)
SWELL_MIN_NOTE_S = 0.5
EXPRESSIONS = ("steady", "phrase", "swells", "tremolo")


@dataclass(frozen=True)
class PartStyle:
    """How one part is played; shares are the chance that an eligible note gets the gesture."""

    timing_sd_s: float = 0.0
    velocity_drift: float = 0.0
    detune_cents: float = 0.0
    vibrato_share: float = 0.0
    scoop_share: float = 0.0
    fall_share: float = 0.0
    slide_share: float = 0.0  # legato pairs joined by a glide
    glide: str = "wheel"  # 'wheel' (slides and bends) or 'portamento' (CC68 legato + CC65)
    slide_in_share: float = 0.0
    bend_range: int = 2
    expression: str = "steady"
    pedal: bool = False

    @classmethod
    def draw(cls, rng: np.random.Generator, family: str) -> "PartStyle":
        pitched = family not in NO_PITCH_FAMILIES
        sustained = family in SUSTAINED_FAMILIES
        return cls(
            timing_sd_s=float(rng.uniform(*TIMING_SD_RANGE_S)),
            velocity_drift=float(rng.uniform(*VELOCITY_DRIFT_RANGE)),
            detune_cents=float(rng.uniform(*DETUNE_RANGE_CENTS)),
            vibrato_share=float(rng.uniform(0.2, 0.9) if sustained else rng.uniform(0.0, 0.3)) if pitched else 0.0,
            scoop_share=float(rng.uniform(0.0, 0.4)) if pitched else 0.0,
            fall_share=float(rng.uniform(0.0, 0.3)) if pitched else 0.0,
            slide_share=float(rng.uniform(0.0, 0.5)) if pitched else 0.0,
            glide="wheel" if family in BEND_FAMILIES or rng.random() < 0.5 else "portamento",
            slide_in_share=float(rng.uniform(0.0, 0.15)) if sustained else 0.0,
            bend_range=int(rng.choice(BEND_RANGES)),
            expression=str(rng.choice(EXPRESSIONS)) if family not in PEDAL_FAMILIES else "phrase",
            pedal=family in PEDAL_FAMILIES and rng.random() < 0.75,
        )


@dataclass(frozen=True)
class Performance:
    """A performed part: the MIDI events to render, the notes to label, and what was done (for the catalog)."""

    events: tuple[Event, ...]
    label_notes: tuple[Note, ...]
    style: PartStyle
    counts: dict[str, int]  # gesture -> notes (or pedal presses) that got it

    def record(self, program: int) -> dict:
        return {"program": program, **{k: (round(v, 4) if isinstance(v, float) else v)
                                       for k, v in asdict(self.style).items()}, "counts": dict(self.counts)}


# --- label rules ---------------------------------------------------------------------------------------------------

def slide_labels(first: Note, second: Note, *, glide_start_s: float, glide_s: float) -> tuple[Note, Note]:
    """The two label notes of a glide from ``first``'s key to ``second``'s, linear in pitch over ``glide_s`` from
    ``glide_start_s``: the old key until the glide is half a semitone away from it, the new key from its arrival."""
    interval = abs(second.pitch - first.pitch)
    if interval < 1:
        raise ValueError(f"a slide joins two different keys; got {first.pitch} and {second.pitch}")
    leaves = glide_start_s + glide_s * min(1.0, HALF_SEMITONE / interval)
    arrives = glide_start_s + glide_s
    return (Note(first.start_s, max(leaves, first.start_s + 1e-3), first.pitch, first.velocity),
            Note(arrives, max(second.end_s, arrives + 1e-3), second.pitch, second.velocity))


def sustain_notes(notes: list[Note], pedal: list[tuple[float, float]]) -> list[Note]:
    """Notes as they sound under the sustain pedal: a key released while the pedal is down (intervals ``pedal``
    of (down_s, up_s)) sounds until the pedal lifts, or until the same key is struck again."""
    extended = []
    for note in notes:
        end = note.end_s
        for down, up in pedal:
            if down <= note.end_s < up:
                end = max(end, up)
                break
        extended.append(Note(note.start_s, end, note.pitch, note.velocity))
    return remove_self_overlaps(extended)


# --- the performance -------------------------------------------------------------------------------------------------

def perform(part: Part, rng: np.random.Generator, *, duration_s: float, style: PartStyle | None = None) -> Performance:
    """The events and label notes of ``part`` played in ``style`` (drawn from ``rng`` when not given).

    Times stay inside [0, duration_s]. Drum parts are not for this function.
    """
    if part.is_drum:
        raise ValueError("drum parts are played as written")
    family = family_of(part.program)
    style = style or PartStyle.draw(rng, family)
    player = _Player(style, rng, duration_s, bends=family in BEND_FAMILIES)
    notes = player.humanize(list(part.notes))
    melodic = _melodic(notes)
    index = 0
    while index < len(notes):
        note = notes[index]
        following = notes[index + 1] if index + 1 < len(notes) else None
        after = notes[index + 2].start_s if index + 2 < len(notes) else duration_s
        if (following is not None and melodic[index] and melodic[index + 1] and _legato(note, following)
                and rng.random() < style.slide_share and player.glide(note, following, after)):
            index += 2
            continue
        player.single(note, melodic[index])
        index += 1
    return player.finish()


def _melodic(notes: list[Note]) -> list[bool]:
    """For notes sorted by start: True where a note overlaps nothing but its neighbours in that order, and those
    neighbours do not overlap each other (so the pitch wheel can be the note's own)."""
    ends = np.maximum.accumulate([n.end_s for n in notes]) if notes else np.zeros(0)
    flags = []
    for index, note in enumerate(notes):
        alone = not (index >= 2 and ends[index - 2] > note.start_s)  # nothing older than the previous note
        alone = alone and not (index + 2 < len(notes) and notes[index + 2].start_s < note.end_s)
        if alone and 0 < index < len(notes) - 1:
            alone = notes[index - 1].end_s <= notes[index + 1].start_s
        flags.append(bool(alone))
    return flags


def _legato(first: Note, second: Note) -> bool:
    return (second.pitch != first.pitch and second.start_s - first.end_s <= LEGATO_GAP_S
            and second.start_s > first.start_s + 0.05 and abs(second.pitch - first.pitch) <= SEMITONES_PER_OCTAVE)


class _Player:
    """Collects one part's events, its pitch-wheel and expression curves, and its label notes."""

    def __init__(self, style: PartStyle, rng: np.random.Generator, duration_s: float, *, bends: bool):
        self.style, self.rng, self.duration_s, self.bends = style, rng, duration_s, bends
        steps = int(np.ceil(duration_s / CONTROL_STEP_S)) + 1
        self.cents = np.full(steps, style.detune_cents)  # the wheel over time, in cents
        self.events: list[Event] = []
        self.labels: list[Note] = []
        self.counts: Counter = Counter()
        self.phase_offsets = rng.uniform(0, 2 * np.pi, 3)
        self.drift_periods = rng.uniform(2.0, 12.0, 3)

    # -- notes --
    def humanize(self, notes: list[Note]) -> list[Note]:
        """Onsets moved by the part's timing spread (lengths kept), velocities along a slow curve."""
        sd = self.style.timing_sd_s
        shifts = np.clip(self.rng.normal(0.0, sd, len(notes)), -3 * sd, 3 * sd) if sd > 0 else np.zeros(len(notes))
        starts = np.array([note.start_s for note in notes]) + shifts
        starts = np.minimum(np.maximum(starts, 0.0), self.duration_s - 0.02)
        drifts = 1.0 + self.style.velocity_drift * self._slow(starts)
        played = []
        for note, start, drift in zip(notes, starts.tolist(), drifts.tolist()):
            end = min(self.duration_s, start + note.duration_s)
            velocity = min(max(round(note.velocity * drift), 1), MIDI_VELOCITY_MAX)
            if end - start >= 0.01:
                played.append(Note(start, end, note.pitch, velocity))
        return sorted(remove_self_overlaps(played), key=lambda n: (n.start_s, n.pitch))

    def _slow(self, t: float | np.ndarray):
        """A smooth curve in [-1, 1] over the part (three slow sines)."""
        waves = [np.sin(2 * np.pi * t / period + phase) for period, phase in zip(self.drift_periods, self.phase_offsets)]
        return sum(waves) / len(waves)

    def _play(self, start: float, end: float, key: int, velocity: int) -> None:
        self.events.append(Event(start, "on", key, velocity))
        self.events.append(Event(end, "off", key))

    def single(self, note: Note, melodic: bool) -> None:
        style, rng = self.style, self.rng
        label_start = note.start_s
        if melodic:
            span = self._span(note.start_s, note.end_s)
            contour = np.zeros(span.stop - span.start)
            t = np.arange(len(contour)) * CONTROL_STEP_S
            length = note.duration_s
            if length >= VIBRATO_MIN_NOTE_S and rng.random() < style.vibrato_share:
                rate, depth = rng.uniform(*VIBRATO_RATE_HZ), rng.uniform(*VIBRATO_DEPTH_CENTS)
                delay = length * rng.uniform(*VIBRATO_DELAY_FRACTION)
                ramp = np.clip((t - delay) / rng.uniform(*VIBRATO_FADE_IN_S), 0.0, 1.0)
                contour += depth * ramp * np.sin(2 * np.pi * rate * np.maximum(t - delay, 0.0))
                self.counts["vibrato"] += 1
            if rng.random() < style.scoop_share:
                depth, glide = rng.uniform(*SCOOP_CENTS) * rng.choice((-1, 1)), rng.uniform(*SCOOP_S)
                contour += depth * np.clip(1.0 - t / glide, 0.0, 1.0)
                self.counts["scoop"] += 1
            if length >= FALL_MIN_NOTE_S and rng.random() < style.fall_share:
                depth, glide = rng.uniform(*FALL_CENTS), rng.uniform(*FALL_S)
                contour -= depth * np.clip((t - (length - glide)) / glide, 0.0, 1.0)
                self.counts["fall"] += 1
            if contour.any():
                inside = MAX_INSIDE_CENTS - abs(style.detune_cents)  # gestures together stay inside a semitone
                self._bend(note.start_s, np.clip(contour, -inside, inside))
            if rng.random() < style.slide_in_share and note.duration_s > 0.2:
                source = note.pitch - int(rng.choice(SLIDE_IN_SEMITONES)) * int(rng.choice((-1, 1)))
                glide_ms = int(rng.integers(*SLIDE_IN_MS))
                self._portamento_time(note.start_s - 0.002, glide_ms)
                self.events.append(Event(note.start_s - 0.001, "cc", CC_PORTAMENTO_CONTROL, source))
                label_start = note.start_s + glide_ms / 1000  # a slide from another key: this key from its arrival
                self.counts["slide_in"] += 1
        self._play(note.start_s, note.end_s, note.pitch, note.velocity)
        self.labels.append(Note(label_start, note.end_s, note.pitch, note.velocity))

    def glide(self, first: Note, second: Note, next_start: float) -> bool:
        """Join a legato pair by a glide; False (nothing done) when the style cannot reach the interval."""
        rng, interval = self.rng, second.pitch - first.pitch
        end = min(second.end_s, next_start)  # the next note owns the wheel from its start
        if end - second.start_s < 0.06:
            return False
        if self.style.glide == "wheel":
            if abs(interval) > self.style.bend_range:
                return False
            glide_s = float(rng.uniform(*SLIDE_S))
            if end - second.start_s < glide_s + MIN_ARRIVED_S:  # the new key must sound once it has arrived
                return False
            start_step = self._span(first.start_s, end)
            t = np.arange(start_step.stop - start_step.start) * CONTROL_STEP_S + start_step.start * CONTROL_STEP_S
            contour = interval * CENTS_PER_SEMITONE * np.clip((t - second.start_s) / glide_s, 0.0, 1.0)
            hold = self._span(end, min(end + RELEASE_HOLD_S, next_start))
            self._bend(first.start_s, contour)
            if hold.stop > hold.start:
                self.cents[hold] = self.style.detune_cents + interval * CENTS_PER_SEMITONE
            self._play(first.start_s, end, first.pitch, first.velocity)
            self.counts["bend" if self.bends else "slide"] += 1
        else:
            glide_ms = int(rng.integers(*PORTAMENTO_MS))
            glide_s = glide_ms / 1000
            switch_on, first_off = second.start_s - 0.003, second.start_s + 0.02
            if end - first_off < 0.01 or end - second.start_s < glide_s + MIN_ARRIVED_S:
                return False
            self._portamento_time(switch_on - 0.001, glide_ms)
            self.events += [Event(switch_on, "cc", CC_LEGATO, CC_ON), Event(switch_on, "cc", CC_PORTAMENTO, CC_ON)]
            self._play(first.start_s, first_off, first.pitch, first.velocity)
            self._play(second.start_s, end, second.pitch, second.velocity)
            self.events += [Event(first_off + 0.002, "cc", CC_LEGATO, CC_OFF),
                            Event(first_off + 0.002, "cc", CC_PORTAMENTO, CC_OFF)]
            self.counts["portamento"] += 1
        old, new = slide_labels(first, Note(second.start_s, end, second.pitch, second.velocity),
                                glide_start_s=second.start_s, glide_s=glide_s)
        self.labels += [old, new]
        return True

    def _portamento_time(self, time_s: float, ms: int) -> None:
        self.events += [Event(max(0.0, time_s), "cc", CC_PORTAMENTO_TIME, ms // PORTAMENTO_MS_PER_MSB),
                        Event(max(0.0, time_s), "cc", CC_PORTAMENTO_TIME_LSB, ms % PORTAMENTO_MS_PER_MSB)]

    def _span(self, start_s: float, end_s: float) -> slice:
        first = int(np.floor(start_s / CONTROL_STEP_S))
        return slice(first, max(first, min(len(self.cents), int(np.ceil(end_s / CONTROL_STEP_S)))))

    def _bend(self, start_s: float, contour: np.ndarray) -> None:
        """Make ``contour`` (cents from the key, one value per control step from ``start_s``) the wheel's."""
        first = int(np.floor(start_s / CONTROL_STEP_S))
        stop = min(len(self.cents), first + len(contour))
        self.cents[first:stop] = self.style.detune_cents + contour[:stop - first]

    # -- the part as a whole --
    def finish(self) -> Performance:
        style = self.style
        labels = self.labels
        if style.pedal:
            pedal = self._pedal(labels)
            labels = sustain_notes(labels, pedal)
            self.counts["pedal"] = len(pedal)
        setup = [Event(0.0, "cc", CC_RPN_MSB, 0), Event(0.0, "cc", CC_RPN_LSB, 0),
                 Event(0.0, "cc", CC_DATA_MSB, style.bend_range), Event(0.0, "cc", CC_DATA_LSB, 0),
                 Event(0.0, "cc", CC_VOLUME, int(self.rng.integers(VOLUME_RANGE[0], VOLUME_RANGE[1] + 1)))]
        events = setup + self._wheel_events() + self._expression_events(labels) + self.events
        events.sort(key=lambda e: e.time_s)  # stable: events at one instant keep the order they were made in
        labels = sorted((n for n in labels if n.end_s > n.start_s), key=lambda n: (n.start_s, n.pitch))
        return Performance(tuple(events), tuple(labels), style, dict(self.counts))

    def _wheel_events(self) -> list[Event]:
        """The pitch curve as wheel positions, sent when they change. Bends that keep a key are capped inside
        a semitone; glides to another key (whole semitones away) pass through."""
        positions = np.rint(BEND_CENTRE + self.cents / (self.style.bend_range * CENTS_PER_SEMITONE) * BEND_STEPS)
        positions = np.clip(positions, 0, 2 * BEND_STEPS - 1).astype(np.int64)
        changes = np.flatnonzero(np.diff(positions, prepend=BEND_CENTRE))
        return [Event(float(step * CONTROL_STEP_S), "bend", int(positions[step])) for step in changes]

    def _expression_events(self, labels: list[Note]) -> list[Event]:
        style, rng = self.style, self.rng
        step = EXPRESSION_STEP_S if style.expression == "tremolo" else SLOW_EXPRESSION_STEP_S
        t = np.arange(0.0, self.duration_s, step)
        floor = rng.uniform(*EXPRESSION_FLOOR)
        if style.expression == "phrase":
            curve = floor + (MIDI_VELOCITY_MAX - floor) * (0.5 + 0.5 * self._slow(t * 1.7))
        elif style.expression == "tremolo":
            depth, rate = rng.uniform(*TREMOLO_DEPTH), rng.uniform(*TREMOLO_RATE_HZ)
            curve = MIDI_VELOCITY_MAX - depth * (0.5 + 0.5 * np.sin(2 * np.pi * rate * t))
            self.counts["tremolo"] = 1
        else:
            curve = np.full(t.shape, float(MIDI_VELOCITY_MAX))
        if style.expression == "swells":
            for note in labels:
                if note.duration_s >= SWELL_MIN_NOTE_S:
                    inside = (t >= note.start_s) & (t < note.end_s)
                    where = (t[inside] - note.start_s) / note.duration_s
                    shape = where if rng.random() < 0.6 else 1.0 - where  # a swell, or a fade
                    curve[inside] = floor + (MIDI_VELOCITY_MAX - floor) * shape
                    self.counts["swell"] += 1
        values = np.clip(np.rint(np.maximum(curve, floor)), 0, MIDI_VELOCITY_MAX).astype(np.int64)
        changes = np.flatnonzero(np.diff(values, prepend=-1))
        return [Event(float(t[i]), "cc", CC_EXPRESSION, int(values[i])) for i in changes]

    def _pedal(self, labels: list[Note]) -> list[tuple[float, float]]:
        """Pedal presses: down just after a note starts, lifted just after a later onset (a change of harmony)."""
        rng = self.rng
        onsets = sorted({round(n.start_s, 4) for n in labels})
        intervals: list[tuple[float, float]] = []
        if not onsets:
            return intervals
        down = onsets[0] + rng.uniform(0.03, 0.12)
        change_after = rng.uniform(*PEDAL_CHANGE_S)
        for onset in onsets[1:]:
            if onset - down >= change_after:
                up = onset + rng.uniform(*PEDAL_LIFT_AFTER_ONSET_S)
                intervals.append((down, up))
                down, change_after = up + rng.uniform(*PEDAL_DOWN_AFTER_LIFT_S), rng.uniform(*PEDAL_CHANGE_S)
        last_end = max(n.end_s for n in labels)
        up = min(self.duration_s, max(down + 0.1, last_end + rng.uniform(0.0, 0.5)))
        if up > down:
            intervals.append((down, up))
        for down, up in intervals:
            self.events += [Event(down, "cc", CC_SUSTAIN, CC_ON), Event(up, "cc", CC_SUSTAIN, CC_OFF)]
        return intervals
