"""A transcription as the page hands it over: a table of notes, and the bytes of its .mid, .csv and .musicxml
downloads."""

from __future__ import annotations

import io
from collections.abc import Sequence

import pandas as pd
import pretty_midi

from model.beats import BeatGrid
from model.musicxml import musicxml_bytes
from pipeline.notes import Note

CSV_COLUMNS = ("start_s", "end_s", "pitch", "velocity")  # the same columns `python -m model transcribe --csv` writes


def notes_frame(notes: Sequence[Note]) -> pd.DataFrame:
    """One row per note, in time order: start_s, end_s, duration_s, pitch, note (name), velocity."""
    return pd.DataFrame({
        "start_s": [n.start_s for n in notes],
        "end_s": [n.end_s for n in notes],
        "duration_s": [n.duration_s for n in notes],
        "pitch": pd.Series([n.pitch for n in notes], dtype="int64"),
        "note": [pretty_midi.note_number_to_name(n.pitch) for n in notes],
        "velocity": pd.Series([n.velocity for n in notes], dtype="int64"),
    })


def notes_csv(notes: Sequence[Note]) -> bytes:
    rows = [",".join(CSV_COLUMNS)] + [f"{n.start_s:.4f},{n.end_s:.4f},{n.pitch},{n.velocity}" for n in notes]
    return ("\n".join(rows) + "\n").encode("utf-8")


def sheet_music(notes: Sequence[Note], beats: BeatGrid, *, grid: str | None, title: str) -> bytes:
    """MusicXML of the notes on the beats (``python -m model transcribe --musicxml`` writes the same)."""
    return musicxml_bytes(notes, beats, grid=grid, title=title)


def midi_bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()
