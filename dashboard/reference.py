"""A reference MIDI uploaded beside the recording: its pitched notes, or one clear message naming the file."""

from __future__ import annotations

from pathlib import Path

from pipeline.errors import Mp3MidiError
from pipeline.midi_io import read_midi
from pipeline.notes import Note

MIDI_SUFFIXES = ("mid", "midi")


def reference_notes(name: str, data: bytes) -> list[Note]:
    """Bytes of an uploaded .mid -> its pitched notes (drums left out). Raises ``Mp3MidiError`` naming ``name`` for
    a file that is not named or built like a MIDI file, is too big or long, or holds no pitched notes."""
    if Path(name).suffix.lower().lstrip(".") not in MIDI_SUFFIXES:
        raise Mp3MidiError(f"{name!r} is not named like a MIDI file; upload a .mid or .midi")
    if not data:
        raise Mp3MidiError(f"{name!r} is empty (0 bytes)")
    try:
        return read_midi(data).pitched_notes
    except Mp3MidiError as exc:
        raise Mp3MidiError(f"{name!r}: {exc}") from None
