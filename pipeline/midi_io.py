"""Read a MIDI file into a ``Score`` safely: bounded size and length, drums kept apart, broken files refused.

Parsing goes through mido message by message instead of pretty_midi, whose tick table grows with the largest
tick in the file: a music21 export at 10,080 ticks per beat, or a file with one absurd delta, would need gigabytes.
"""

from __future__ import annotations

import io
from collections import defaultdict, deque
from pathlib import Path

import mido

from .atomic import atomic_path
from .constants import DRUM_CHANNEL
from .errors import Mp3MidiError
from .notes import Note, Part, Score, remove_self_overlaps

MAX_MIDI_BYTES = 16 * 2**20
MAX_MIDI_SECONDS = 30 * 60.0
MAX_NOTES = 200_000


def read_midi(source: str | Path | bytes, *, max_seconds: float = MAX_MIDI_SECONDS) -> Score:
    """Parse MIDI bytes (or a file) into parts keyed by channel and program.

    Raises ``Mp3MidiError`` for anything that is not a usable MIDI file, with the reason in the message.
    """
    data = _read_bytes(source)
    if data[:4] != b"MThd" and not (data[:4] == b"RIFF" and data[8:12] == b"RMID"):
        raise Mp3MidiError(f"not a MIDI file (it starts with {data[:8]!r}, not the MThd header)")
    try:
        midi = mido.MidiFile(file=io.BytesIO(data), clip=True)
    except Exception as exc:  # mido raises many types for broken bytes: all mean the same to us
        raise Mp3MidiError(f"not a readable MIDI file ({type(exc).__name__}: {str(exc) or 'the data ends early'})") from None
    if midi.type == 2:
        raise Mp3MidiError("MIDI type 2 (independent sequences) is not supported")

    program_of_channel = [0] * 16
    sounding: dict[tuple[int, int], deque[tuple[float, int, int]]] = defaultdict(deque)
    notes_by_part: dict[tuple[int, int], list[Note]] = defaultdict(list)
    now = 0.0
    count = 0
    try:
        for message in midi:
            now += message.time
            if now > max_seconds:
                raise Mp3MidiError(f"MIDI lasts longer than the {max_seconds / 60:.0f} min limit (events at {now / 60:.1f} min)")
            if message.type == "program_change":
                program_of_channel[message.channel] = message.program
            elif message.type == "note_on" and message.velocity > 0:
                key = (message.channel, message.note)
                sounding[key].append((now, message.velocity, program_of_channel[message.channel]))
            elif message.type in ("note_off", "note_on"):
                key = (message.channel, message.note)
                if sounding[key]:
                    start, velocity, program = sounding[key].popleft()
                    notes_by_part[(message.channel, program)].append(Note(start, now, message.note, velocity))
                    count += 1
                    if count > MAX_NOTES:
                        raise Mp3MidiError(f"MIDI holds more than {MAX_NOTES} notes")
    except Mp3MidiError:
        raise
    except Exception as exc:
        raise Mp3MidiError(f"MIDI events cannot be read ({type(exc).__name__}: {exc})") from None
    for (channel, pitch), pending in sounding.items():  # notes never released end with the file
        for start, velocity, program in pending:
            notes_by_part[(channel, program)].append(Note(start, max(now, start), pitch, velocity))

    parts = []
    for (channel, program), notes in sorted(notes_by_part.items()):
        cleaned = remove_self_overlaps(notes)
        if cleaned:
            parts.append(Part(program=program, is_drum=channel == DRUM_CHANNEL, notes=tuple(cleaned)))
    if not parts:
        raise Mp3MidiError("MIDI has no notes")
    if all(part.is_drum for part in parts):
        raise Mp3MidiError("MIDI has only drum notes, nothing pitched to transcribe")
    duration = max(note.end_s for part in parts for note in part.notes)
    return Score(parts=tuple(parts), duration_s=duration)


def _read_bytes(source: str | Path | bytes) -> bytes:
    if isinstance(source, bytes):
        data = source
    else:
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise Mp3MidiError(f"cannot read MIDI file {str(path)!r}: {exc.strerror}") from None
        if size > MAX_MIDI_BYTES:
            raise Mp3MidiError(f"MIDI file {str(path)!r} is {size / 2**20:.1f} MB, over the {MAX_MIDI_BYTES // 2**20} MB limit")
        data = path.read_bytes()
    if len(data) > MAX_MIDI_BYTES:
        raise Mp3MidiError(f"MIDI data is {len(data) / 2**20:.1f} MB, over the {MAX_MIDI_BYTES // 2**20} MB limit")
    if not data:
        raise Mp3MidiError("MIDI file is empty")
    return data


def write_midi(score: Score, path: str | Path) -> None:
    """Write a score as a standard MIDI file (used for procedural pieces and test fixtures)."""
    import pretty_midi

    midi = pretty_midi.PrettyMIDI()
    for part in score.parts:
        instrument = pretty_midi.Instrument(program=part.program, is_drum=part.is_drum)
        instrument.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in part.notes]
        midi.instruments.append(instrument)
    with atomic_path(path) as partial:
        midi.write(str(partial))
