from pathlib import Path

import pytest

from pipeline.errors import Mp3MidiError
from pipeline.midi_io import read_midi
from tests.conftest import write_piece, write_raw_midi


def test_reads_notes_programs_and_drums(tmp_path: Path):
    score = read_midi(write_piece(tmp_path / "p.mid", program=40, n_notes=8, drums=True))
    pitched = [part for part in score.parts if not part.is_drum]
    assert [part.program for part in pitched] == [40]
    assert len(pitched[0].notes) == 8
    assert any(part.is_drum for part in score.parts)
    first = pitched[0].notes[0]
    assert (first.start_s, first.pitch, first.velocity) == (pytest.approx(0.1, abs=2e-3), 55, 90)
    assert score.duration_s == pytest.approx(max(n.end_s for p in score.parts for n in p.notes))


def test_music21_style_resolution_is_fine(tmp_path: Path):
    # 10,080 ticks per beat and a long file: pretty_midi's tick table would refuse or blow up; we read it.
    events = []
    for i in range(200):
        events += [("note_on", {"note": 60 + i % 12, "velocity": 80}, 0), ("note_off", {"note": 60 + i % 12}, 10_080)]
    score = read_midi(write_raw_midi(tmp_path / "m21.mid", events, ticks_per_beat=10_080))
    assert len(score.parts[0].notes) == 200
    assert score.duration_s == pytest.approx(100.0)  # 200 beats at the default 120 BPM


def test_overlapping_same_pitch_notes_are_cut(tmp_path: Path):
    events = [("note_on", {"note": 60, "velocity": 80}, 0), ("note_on", {"note": 60, "velocity": 70}, 240),
              ("note_off", {"note": 60}, 240), ("note_off", {"note": 60}, 240)]
    notes = read_midi(write_raw_midi(tmp_path / "o.mid", events)).parts[0].notes
    assert [(n.start_s, n.end_s) for n in notes] == [(0.0, 0.25), (0.25, 0.75)]


@pytest.mark.parametrize(("name", "reason"), [
    ("corrupt.mid", "not a readable MIDI file"),
    ("text.mid", "not a MIDI file"),
    ("empty.mid", "has no notes"),
    ("drums.mid", "only drum notes"),
    ("three-hours.mid", "longer than the 30 min limit"),
])
def test_bad_files_are_refused_with_a_reason(bad_folder: Path, name: str, reason: str):
    with pytest.raises(Mp3MidiError, match=reason):
        read_midi(bad_folder / name)


@pytest.mark.parametrize(("data", "reason"), [(b"", "empty"), (b"MThd", "not a readable MIDI file")])
def test_bad_bytes(data, reason):
    with pytest.raises(Mp3MidiError, match=reason):
        read_midi(data)


def test_missing_file(tmp_path: Path):
    with pytest.raises(Mp3MidiError, match="cannot read MIDI file"):
        read_midi(tmp_path / "nope.mid")
