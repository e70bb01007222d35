"""Notes back to sound: a transcription rendered through FluidSynth, to hear it next to the recording it came from.

``render_notes`` plays plain notes; ``render_midi`` plays a MIDI file's bytes event by event (programs, controllers,
RPNs and the pitch wheel included), for a transcription written with pitch bends."""

from __future__ import annotations

import io
from collections.abc import Sequence

import numpy as np

from .constants import DRUM_CHANNEL, PROGRAMS_PER_FAMILY, SAMPLE_RATE
from .errors import Mp3MidiError
from .instruments import FAMILIES, family_of
from .notes import Note, Part
from .render import DRUM_BANK, Effects, _finish, _new_synth, _release, _write, default_soundfont, render

PROGRAMS = range(len(FAMILIES) * PROGRAMS_PER_FAMILY)  # the General MIDI programs, 0-127
RELEASE_S = 0.5  # room after the last note-off for its release to fade


def render_notes(notes: Sequence[Note], *, duration_s: float, program: int = 0,
                 soundfont: str | None = None) -> np.ndarray:
    """Play ``notes`` with General MIDI ``program``. Returns [samples] float32 mono at SAMPLE_RATE.

    The result lasts ``duration_s`` (the recording's length, so both players line up), longer only when a note
    rings past it. Raises ``Mp3MidiError`` when there is nothing to play or the program does not exist.
    """
    if not notes:
        raise Mp3MidiError("no notes to play")
    family_of(program)  # refuses anything but a General MIDI program
    last_end = max(note.end_s for note in notes)
    length = max(duration_s, last_end + RELEASE_S)
    return render([Part(program, False, tuple(notes))], length, soundfont=soundfont or default_soundfont())


def render_midi(data: bytes, *, duration_s: float, soundfont: str | None = None) -> np.ndarray:
    """Play a Standard MIDI File's bytes through FluidSynth: every channel message reaches the synthesizer at its
    time (tempo map applied), so pitch-wheel events and their RPN bend range bend the notes as written. Returns
    [samples] float32 mono at SAMPLE_RATE lasting ``duration_s`` or until the last event's release has faded.
    Raises ``Mp3MidiError`` for bytes mido cannot read or a file with no notes."""
    import mido

    try:
        midi = mido.MidiFile(file=io.BytesIO(data))
        timed, now = [], 0.0
        for message in midi:  # merged tracks, delta times in seconds under the file's tempo map
            now += message.time
            if not message.is_meta and message.type not in ("sysex",):
                timed.append((now, message))
    except (OSError, EOFError, ValueError, KeyError, IndexError) as exc:
        raise Mp3MidiError(f"cannot read the MIDI to play it back: {exc}") from None
    if not any(message.type == "note_on" and message.velocity > 0 for _, message in timed):
        raise Mp3MidiError("no notes to play")
    total = int(round(max(duration_s, timed[-1][0] + RELEASE_S) * SAMPLE_RATE))
    synth, font_id, font = _new_synth(soundfont or default_soundfont(), Effects())
    try:
        for channel in range(16):  # General MIDI's defaults until the file says otherwise
            synth.program_select(channel, font_id, DRUM_BANK if channel == DRUM_CHANNEL else 0, 0)
        stereo = np.zeros((total, 2), np.float32)
        cursor = 0
        for time_s, message in timed:
            sample = min(int(round(time_s * SAMPLE_RATE)), total)
            if sample > cursor:
                _write(synth, stereo[cursor:sample])
                cursor = sample
            _send(synth, font_id, message)
        if total > cursor:
            _write(synth, stereo[cursor:])
    finally:
        _release(synth, font)
    return _finish(stereo, Effects(), None)


def _send(synth, font_id: int, message) -> None:
    """One channel message to FluidSynth (mido counts the pitch wheel from -8192, FluidSynth from 0)."""
    kind, channel = message.type, getattr(message, "channel", 0)
    if kind == "note_on" and message.velocity > 0:
        synth.noteon(channel, message.note, message.velocity)
    elif kind in ("note_on", "note_off"):
        synth.noteoff(channel, message.note)
    elif kind == "control_change":
        synth.cc(channel, message.control, message.value)
    elif kind == "pitchwheel":
        synth.pitch_bend(channel, message.pitch)
    elif kind == "program_change":
        synth.program_select(channel, font_id, DRUM_BANK if channel == DRUM_CHANNEL else 0, message.program)
