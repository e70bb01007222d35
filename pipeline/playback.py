"""Notes back to sound: a transcription rendered through FluidSynth, to hear it next to the recording it came from."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .constants import PROGRAMS_PER_FAMILY
from .errors import Mp3MidiError
from .instruments import FAMILIES, family_of
from .notes import Note, Part
from .render import default_soundfont, render

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
