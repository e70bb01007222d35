"""Sheet music from a transcription: notes on the beat grid as MusicXML, through music21.

Each note's start and end are read in beats from the BeatGrid (so a tempo map's beats are the score's quarter
notes) and snapped to a grid (a sixteenth unless a quantization grid is given; triplet grids give triplets). Then:

- time signature: 3/4 or 4/4, and where the bars start, from the accents: the beats on which many, loud and long
  notes start are taken for downbeats (``estimated_meter()``); the score starts with rests up to the first bar line;
- key signature: music21's Krumhansl-Schmuckler key estimate from the pitches and durations;
- staves: one (treble or bass, by the notes' middle pitch) when the notes fit one, else a piano-style pair joined by
  a brace, split at middle C;
- each staff is one voice: notes that start together form a chord, a chord lasts until the next chord in its staff
  starts (or until its longest note ends), rests fill the gaps and the last bar; music21 splits notes at bar lines
  and ties them across.
"""

from __future__ import annotations

from collections.abc import Sequence
from fractions import Fraction
from pathlib import Path

import numpy as np

from pipeline.errors import Mp3MidiError
from pipeline.notes import Note

from .beats import BeatGrid
from .quantize import QUANTIZE_GRIDS, checked_grid

DEFAULT_STEPS_PER_BEAT = QUANTIZE_GRIDS["1/16"]
METERS = (4, 3)  # beats per bar tried, preferred in this order on a tie
MIDDLE_C = 60
TREBLE_LOWEST = 55  # G3: a staff of notes all at or above this reads in the treble clef
BASS_HIGHEST = 64  # E4: ... all at or below this, in the bass clef
MAX_BEATS = 100_000  # about 14 hours at 120 BPM: beyond this a score is not worth engraving


def musicxml_bytes(notes: Sequence[Note], beats: BeatGrid, *, grid: str | None = None,
                   title: str = "Transcription") -> bytes:
    """The notes as a MusicXML document (UTF-8 bytes). ``grid``: a quantization grid name (default: sixteenths)."""
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    return GeneralObjectExporter(score_for(notes, beats, grid=grid, title=title)).parse()


def write_musicxml(path: str | Path, notes: Sequence[Note], beats: BeatGrid, *, grid: str | None = None,
                   title: str = "Transcription") -> None:
    """Write ``musicxml_bytes()`` to ``path``; the file appears only when complete."""
    from pipeline.atomic import atomic_path

    data = musicxml_bytes(notes, beats, grid=grid, title=title)
    with atomic_path(path) as partial:
        partial.write_bytes(data)


def score_for(notes: Sequence[Note], beats: BeatGrid, *, grid: str | None = None, title: str = "Transcription"):
    """A music21 Score of the notes (see the module docstring)."""
    from music21 import clef, instrument, layout, metadata, meter, stream, tempo

    steps = QUANTIZE_GRIDS[checked_grid(grid) or "1/16"]
    placed = placed_notes(notes, beats.beats_s, steps_per_beat=steps)
    per_bar, downbeat = estimated_meter(placed)
    shift = Fraction((per_bar - downbeat) % per_bar)
    placed = [(start + shift, end + shift, pitch) for start, end, pitch in placed]
    bar_end = max((end for _, end, _ in placed), default=Fraction(per_bar))
    total = Fraction(int(np.ceil(bar_end / per_bar)) * per_bar)  # whole bars
    staves = _staves(placed)
    score = stream.Score()
    score.metadata = metadata.Metadata(title=title)
    score.metadata.composer = " "  # else music21 signs the score "Music21"
    key = _key(placed)
    parts = []
    for index, (sign, staff_notes) in enumerate(staves):
        part = stream.PartStaff() if len(staves) > 1 else stream.Part()
        part.insert(0, instrument.Piano())  # notation programs want an instrument on each part
        part.insert(0, clef.TrebleClef() if sign == "treble" else clef.BassClef())
        part.insert(0, key.__class__(key.tonic, key.mode))
        part.insert(0, meter.TimeSignature(f"{per_bar}/4"))
        if index == 0:
            part.insert(0, tempo.MetronomeMark(number=round(beats.tempo_bpm)))
        _fill_voice(part, staff_notes, total)
        parts.append(part.makeNotation())
    for part in parts:
        score.insert(0, part)
    if len(parts) > 1:
        score.insert(0, layout.StaffGroup(parts, symbol="brace", barTogether=True))
    return score


def placed_notes(notes: Sequence[Note], beats_s: np.ndarray, *, steps_per_beat: int
                 ) -> list[tuple[Fraction, Fraction, int]]:
    """(start, end, pitch) in quarter notes on the grid, sorted; every note at least one step long, and notes of
    one key that land on one step merged into the longest."""
    beats_s = np.asarray(beats_s, np.float64)
    if not notes:
        return []
    times = np.array([[n.start_s, n.end_s] for n in notes], np.float64)
    positions = np.interp(times, beats_s, np.arange(beats_s.size, dtype=np.float64))
    last = beats_s[-1] - beats_s[-2]
    beyond = times > beats_s[-1]
    positions[beyond] = beats_s.size - 1 + (times[beyond] - beats_s[-1]) / last
    if positions.max() > MAX_BEATS:
        raise Mp3MidiError(f"{positions.max():.0f} beats is too long for sheet music (at most {MAX_BEATS})")
    steps = np.rint(positions * steps_per_beat).astype(np.int64)
    steps[:, 1] = np.maximum(steps[:, 1], steps[:, 0] + 1)
    longest: dict[tuple[int, int], int] = {}  # (start step, pitch) -> end step: one key struck once per step
    for (start, end), note in zip(steps, notes):
        longest[int(start), note.pitch] = max(int(end), longest.get((int(start), note.pitch), 0))
    return sorted((Fraction(start, steps_per_beat), Fraction(end, steps_per_beat), pitch)
                  for (start, pitch), end in longest.items())


def estimated_meter(placed: Sequence[tuple[Fraction, Fraction, int]]) -> tuple[int, int]:
    """(beats per bar, the first downbeat's beat 0..beats-1) from accents: each note adds its length in beats (at
    most a bar) to the beat it starts on, when it starts on one. The meter and phase whose downbeats collect the
    most accent above the average beat win."""
    if not placed:
        return METERS[0], 0
    length = int(max(end for _, end, _ in placed)) + 1
    accents = np.zeros(length)
    for start, end, _ in placed:
        if start.denominator == 1:
            accents[int(start)] += min(float(end - start), max(METERS))
    best, choice = -np.inf, (METERS[0], 0)
    for per_bar in METERS:
        for phase in range(per_bar):
            on_downbeats = accents[phase::per_bar]
            gain = on_downbeats.mean() - accents.mean() if on_downbeats.size else -np.inf
            if gain > best + 1e-9:
                best, choice = gain, (per_bar, phase)
    return choice


def _key(placed):
    from music21 import key, note, stream

    if not placed:
        return key.Key("C")
    flat = stream.Stream()
    for start, end, pitch in placed:
        flat.insert(float(start), note.Note(pitch, quarterLength=float(end - start)))
    return flat.analyze("key")


def _staves(placed):
    """[(clef, notes)]: one staff when the notes fit one, else treble and bass split at middle C."""
    if not placed:
        return [("treble", [])]
    pitches = [pitch for _, _, pitch in placed]
    if min(pitches) >= TREBLE_LOWEST or max(pitches) <= BASS_HIGHEST:
        return [("treble" if float(np.median(pitches)) >= MIDDLE_C else "bass", list(placed))]
    return [("treble", [p for p in placed if p[2] >= MIDDLE_C]), ("bass", [p for p in placed if p[2] < MIDDLE_C])]


def _fill_voice(part, placed, total: Fraction) -> None:
    """Chords and rests end to end from 0 to ``total`` quarter notes."""
    from music21 import chord, note

    by_start: dict[Fraction, list[tuple[Fraction, int]]] = {}
    for start, end, pitch in placed:
        by_start.setdefault(start, []).append((end, pitch))
    starts = sorted(by_start)
    cursor = Fraction(0)
    for index, start in enumerate(starts):
        if start > cursor:
            part.append(note.Rest(quarterLength=start - cursor))
        following = starts[index + 1] if index + 1 < len(starts) else total
        end = min(max(end for end, _ in by_start[start]), following)
        pitches = sorted({pitch for _, pitch in by_start[start]})
        sounding = note.Note(pitches[0]) if len(pitches) == 1 else chord.Chord(pitches)
        sounding.quarterLength = end - start
        part.append(sounding)
        cursor = end
    if total > cursor:
        part.append(note.Rest(quarterLength=total - cursor))
