"""Sheet music: notes on the beat grid written as MusicXML and read back with music21."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from music21 import converter

from model.beats import BeatGrid, fixed_grid
from model.musicxml import estimated_meter, musicxml_bytes, placed_notes, write_musicxml
from model.quantize import QUANTIZE_GRIDS
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note


def read(data: bytes):
    return converter.parseData(data.decode("utf-8"), format="musicxml")


def sounding(score) -> list[tuple[Fraction, int]]:
    """(offset in quarter notes, pitch) of every struck note (tied continuations left out), in score order."""
    struck = []
    for part in score.parts:
        for element in part.flatten().notes:
            if element.tie is not None and element.tie.type in ("stop", "continue"):
                continue
            for pitch in element.pitches:
                struck.append((Fraction(element.getOffsetInHierarchy(part)).limit_denominator(96), pitch.midi))
    return sorted(struck)


def random_notes(seed: int, count: int = 80, *, low: int = 40, high: int = 84) -> list[Note]:
    rng = np.random.default_rng(seed)
    notes, t = [], 0.27
    for _ in range(count):
        length = float(rng.choice([0.11, 0.24, 0.5, 0.77, 1.1, 1.9]))
        notes.append(Note(t, t + length, int(rng.integers(low, high)), 90))
        t += float(rng.choice([0.0, 0.13, 0.25, 0.5, 0.8]))
    return notes


def accelerating_grid(seconds: float) -> BeatGrid:
    intervals = 60.0 / np.linspace(90, 140, 200)
    beats = np.concatenate(([0.0], np.cumsum(intervals)))
    return BeatGrid(beats[: np.searchsorted(beats, seconds) + 2], 115.0, True, 0.8)


@pytest.mark.parametrize("grid", [None, "1/8", "1/8t", "1/16t", "1/32"])
@pytest.mark.parametrize("beats", ["fixed", "accelerating"])
@pytest.mark.parametrize("seed", [0])
def test_read_back_the_score_holds_the_notes_in_order_and_full_bars(grid, beats, seed):
    notes = random_notes(seed)
    end = max(n.end_s for n in notes)
    beat_grid = fixed_grid(100.0, duration_s=end) if beats == "fixed" else accelerating_grid(end)
    score = read(musicxml_bytes(notes, beat_grid, grid=grid))
    placed = placed_notes(notes, beat_grid.beats_s, steps_per_beat=QUANTIZE_GRIDS[grid or "1/16"])
    per_bar, downbeat = estimated_meter(placed)
    shift = (per_bar - downbeat) % per_bar
    assert sounding(score) == sorted((start + shift, pitch) for start, _, pitch in placed)
    signatures = score.recurse().getElementsByClass("TimeSignature")
    assert {s.ratioString for s in signatures} == {f"{per_bar}/4"}
    for part in score.parts:
        measures = list(part.getElementsByClass("Measure"))
        assert measures and all(m.duration.quarterLength == per_bar for m in measures)
    ties = [n for n in score.flatten().notes if n.tie is not None]
    assert ties  # long notes and notes across bar lines are tied


@pytest.mark.parametrize(("pitches", "clefs"), [
    ((60, 64, 67, 72), ["TrebleClef"]), ((36, 40, 43, 48), ["BassClef"]),
    ((36, 48, 67, 76), ["TrebleClef", "BassClef"])])
def test_one_staff_when_the_range_fits_two_when_it_does_not(pitches, clefs):
    notes = [Note(0.5 * i, 0.5 * i + 0.5, p, 90) for i, p in enumerate(pitches * 3)]
    score = read(musicxml_bytes(notes, fixed_grid(120.0, duration_s=6.0)))
    assert [type(part.recurse().getElementsByClass("Clef")[0]).__name__ for part in score.parts] == clefs
    if len(clefs) == 2:  # split at middle C
        treble, bass = ([n.pitch.midi for n in part.flatten().notes] for part in score.parts)
        assert min(treble) >= 60 > max(bass)


@pytest.mark.parametrize(("per_bar", "first_downbeat"), [(3, 0), (3, 2), (4, 0), (4, 1)])
def test_the_time_signature_and_the_bar_lines_follow_the_accents(per_bar, first_downbeat):
    """A long note on every downbeat, short ones between: the meter and where the bars start are found."""
    notes = []
    for beat in range(24):
        length = 0.9 if (beat - first_downbeat) % per_bar == 0 else 0.2
        notes.append(Note(0.5 * beat, 0.5 * beat + 0.5 * length, 60 + beat % 5, 90))
    grid = fixed_grid(120.0, duration_s=13.0)
    assert estimated_meter(placed_notes(notes, grid.beats_s, steps_per_beat=4)) == (per_bar, first_downbeat)
    score = read(musicxml_bytes(notes, grid))
    downbeats = [n for n in score.parts[0].flatten().notes if n.duration.quarterLength >= 0.75]
    assert all(n.getOffsetInHierarchy(score.parts[0]) % per_bar == 0 for n in downbeats)


@pytest.mark.parametrize(("scale", "sharps"), [((60, 62, 64, 65, 67, 69, 71, 72), 0),
                                               ((67, 69, 71, 72, 74, 76, 78, 79), 1),
                                               ((62, 64, 66, 67, 69, 71, 73, 74), 2),
                                               ((65, 67, 69, 70, 72, 74, 76, 77), -1)])
def test_the_key_signature_is_estimated(scale, sharps):
    notes = [Note(0.5 * i, 0.5 * i + 0.45, p, 90) for i, p in enumerate(scale + scale[::-1] + (scale[0],) * 2)]
    score = read(musicxml_bytes(notes, fixed_grid(120.0, duration_s=10.0)))
    assert score.recurse().getElementsByClass("KeySignature")[0].sharps == sharps


def test_no_notes_is_one_bar_of_rest(tmp_path):
    path = tmp_path / "empty.musicxml"
    write_musicxml(path, [], fixed_grid(120.0, duration_s=3.0), title="empty")
    score = converter.parse(str(path))
    assert not score.flatten().notes and len(score.parts[0].getElementsByClass("Measure")) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["empty.musicxml"]  # no temporary file left


def test_bad_grids_and_absurd_lengths_are_refused(tmp_path):
    with pytest.raises(Mp3MidiError, match="quantize must be none or one of"):
        musicxml_bytes([Note(0.0, 0.5, 60, 90)], fixed_grid(120.0, duration_s=1.0), grid="1/7")
    with pytest.raises(Mp3MidiError, match=r"too long for sheet music"):
        write_musicxml(tmp_path / "long.musicxml", [Note(0.0, 0.5, 60, 90), Note(60_000.0, 60_000.5, 62, 90)],
                       fixed_grid(120.0, duration_s=10.0))
    assert not list(tmp_path.iterdir())
