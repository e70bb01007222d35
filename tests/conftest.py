"""Fixtures built in code: small MIDI files and folders, rendered through the real FluidSynth in the tests."""

from __future__ import annotations

import os
from pathlib import Path

import mido
import pytest

from pipeline.midi_io import write_midi
from pipeline.notes import Note, Part, Score


def melody(n_notes: int = 8, *, start_pitch: int = 55, step_s: float = 0.3, velocity: int = 90) -> tuple[Note, ...]:
    return tuple(Note(0.1 + i * step_s, 0.1 + i * step_s + step_s * 0.8, start_pitch + (i * 7) % 24, velocity)
                 for i in range(n_notes))


def write_piece(path: Path, *, program: int = 0, n_notes: int = 8, start_pitch: int = 55, drums: bool = False) -> Path:
    parts = [Part(program, False, melody(n_notes, start_pitch=start_pitch))]
    if drums:
        parts.append(Part(0, True, tuple(Note(0.1 + i * 0.25, 0.2 + i * 0.25, 36 + i % 3, 100) for i in range(8))))
    path.parent.mkdir(parents=True, exist_ok=True)
    write_midi(Score(tuple(parts), 3.0), path)
    return path


def write_raw_midi(path: Path, events: list[tuple[str, dict, int]], *, ticks_per_beat: int = 480) -> Path:
    """A one-track MIDI from (type, fields, delta ticks) triples, for files pretty_midi would never write."""
    midi = mido.MidiFile(ticks_per_beat=ticks_per_beat)
    track = mido.MidiTrack()
    for kind, fields, delta in events:
        track.append(mido.Message(kind, time=delta, **fields))
    midi.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    midi.save(str(path))
    return path


@pytest.fixture
def good_folder(tmp_path: Path) -> Path:
    """Three distinct pieces in nested folders with mixed-case suffixes, plus one byte-identical duplicate."""
    root = tmp_path / "midi"
    write_piece(root / "a" / "one.mid", program=0, start_pitch=48)
    write_piece(root / "b" / "deeper" / "TWO.MIDI", program=40, start_pitch=60)
    write_piece(root / "three.Mid", program=24, start_pitch=52, drums=True)
    (root / "c").mkdir()
    (root / "c" / "copy-of-one.mid").write_bytes((root / "a" / "one.mid").read_bytes())
    (root / "notes.txt").write_text("not a midi file and not named like one")
    return root


@pytest.fixture
def bad_folder(tmp_path: Path) -> Path:
    """One good piece and one file for each way a MIDI can be unusable."""
    root = tmp_path / "bad"
    write_piece(root / "good.mid")
    (root / "corrupt.mid").write_bytes(b"MThd\x00\x00\x00\x06\x00\x01\x00\x02\x01\xe0MTrk\xff\xff")
    (root / "text.mid").write_text("this is a text file named like a MIDI file\n")
    write_raw_midi(root / "empty.mid", [("program_change", {"program": 0}, 0)])
    write_raw_midi(root / "drums.mid", [("note_on", {"channel": 9, "note": 36, "velocity": 100}, 0),
                                         ("note_off", {"channel": 9, "note": 36}, 240)])
    write_raw_midi(root / "three-hours.mid", [("note_on", {"note": 60, "velocity": 100}, 0),
                                              ("note_off", {"note": 60}, 480 * 2 * 60 * 60 * 3)])
    return root


@pytest.fixture(scope="module")
def chromium() -> Path:
    """Debian's Chromium for the browser tests: a failure on CI when it is missing, else a skip."""
    from dashboard.headless_browser import chromium_path  # imported here: only the browser tests need it

    executable = chromium_path()
    if executable is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("Chromium is missing on CI: install Debian's chromium package (make test does)")
        pytest.skip("no Chromium at /usr/bin/chromium: install Debian's chromium package (make test does)")
    return executable
