"""A MIDI file whose tempo map follows the beats: one quarter note per beat, a tempo change at every beat.

Note times stay the seconds they were heard at: pretty_midi turns them into ticks through this map, so a DAW shows
bars where the beats were and plays every note when it was played.

MIDI_RESOLUTION ticks per beat keep a note's time to half a tick: at most 0.8 ms at 40 BPM. pretty_midi refuses
files of more than 10 million ticks (10,416 beats at 960: 87 minutes at 120 BPM), so longer maps halve the
resolution as often as they must (at 480, half a tick is 0.5 ms at 120 BPM). Each beat's tempo is a whole number
of microseconds; they are chosen so their running sum stays within a microsecond of the beat times
(rounding each alone would drift by up to half a microsecond per beat), and among values pretty_midi writes back
unchanged (it stores tempi as floats and truncates when it writes, which changes about half of all values by 1 us).
"""

from __future__ import annotations

import mido
import numpy as np
import pretty_midi

MIDI_RESOLUTION = 960  # ticks per quarter note
MIN_RESOLUTION = 60
MICROSECONDS = 1_000_000
SECONDS_PER_MINUTE = 60.0


def tempo_mapped_midi(beats_s: np.ndarray) -> pretty_midi.PrettyMIDI:
    """An empty PrettyMIDI (no instruments) whose beat k is at tick k * ``midi_resolution()`` and at ``beats_s[k]``
    seconds. beats_s [beats]: increasing, beats_s[0] == 0.0; after the last beat its interval goes on."""
    beats_s = np.asarray(beats_s, np.float64)
    resolution = midi_resolution(beats_s.size)
    track = mido.MidiTrack()
    previous, tick_of_previous = None, 0
    for k, tempo in enumerate(_beat_microseconds(beats_s, resolution)):
        if tempo != previous:
            track.append(mido.MetaMessage("set_tempo", tempo=tempo, time=k * resolution - tick_of_previous))
            previous, tick_of_previous = tempo, k * resolution
    file = mido.MidiFile(ticks_per_beat=resolution)
    file.tracks.append(track)
    return pretty_midi.PrettyMIDI(mido_object=file)


def midi_resolution(beats: int) -> int:
    """Ticks per beat for a map of ``beats`` beats: MIDI_RESOLUTION, halved while the file would pass
    pretty_midi's MAX_TICK."""
    resolution = MIDI_RESOLUTION
    while resolution > MIN_RESOLUTION and (beats + 1) * resolution >= pretty_midi.pretty_midi.MAX_TICK:
        resolution //= 2
    return resolution


def _beat_microseconds(beats_s: np.ndarray, resolution: int) -> list[int]:
    """[beats - 1] microseconds per beat whose running sums stay within a microsecond or two of beats_s."""
    targets = np.rint(beats_s * MICROSECONDS).astype(np.int64)
    tempi, elapsed = [], 0
    for target in targets[1:]:
        tempo = _kept_by_pretty_midi(int(target - elapsed), resolution)
        tempi.append(tempo)
        elapsed += tempo
    return tempi


def _kept_by_pretty_midi(microseconds: int, resolution: int) -> int:
    """The value nearest ``microseconds`` that survives pretty_midi's read-and-write round trip unchanged."""
    for candidate in (microseconds, microseconds + 1, microseconds - 1, microseconds + 2, microseconds - 2):
        scale = SECONDS_PER_MINUTE / ((6e7 / candidate) * resolution)  # as pretty_midi reads a set_tempo
        if int(6e7 / (SECONDS_PER_MINUTE / (scale * resolution))) == candidate:  # as it writes one
            return candidate
    return microseconds
