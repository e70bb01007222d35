"""Every MIDI file the project writes, read back by mido and pretty_midi: fixed notes in, exact events out.

Writers: ``model.transcribe.to_midi`` (the transcription, as ``python -m model transcribe`` writes it and as the
Transcribe page's download holds it, with or without quantizing), ``model.pitch_bends.midi_with_bends`` (the same
with ``--pitch-bends``) and ``pipeline.midi_io.write_midi`` (procedural pieces, exported references, test
fixtures). The command line's own files are read back in
tests/test_hostile_inputs.py.
"""

from __future__ import annotations

import io

import mido
import numpy as np
import pretty_midi
import pytest

from dashboard.note_export import midi_bytes
from model.transcribe import quantized, to_midi
from pipeline.midi_io import read_midi, write_midi
from pipeline.notes import Note, Part, Score

TICKS_PER_BEAT = 220  # pretty_midi's resolution (write_midi)
TRANSCRIPTION_TICKS_PER_BEAT = 960  # model.tempo_map.MIDI_RESOLUTION (to_midi: a tempo map that keeps times to 1 ms)
# At 100 BPM a beat is 0.6 s = 960 ticks; every time below falls on a tick.
NOTES = [Note(0.0, 0.6, 60, 100), Note(0.6, 0.9, 64, 80), Note(1.2, 1.5, 48, 127), Note(1.2, 2.4, 67, 1)]
TRANSCRIPTION_TRACK = [
    ("track_name", {"name": "Transcription"}, 0),
    ("program_change", {"channel": 0, "program": 40}, 0),
    ("note_on", {"channel": 0, "note": 60, "velocity": 100}, 0),
    ("note_on", {"channel": 0, "note": 60, "velocity": 0}, 960),
    ("note_on", {"channel": 0, "note": 64, "velocity": 80}, 0),
    ("note_on", {"channel": 0, "note": 64, "velocity": 0}, 480),
    ("note_on", {"channel": 0, "note": 48, "velocity": 127}, 480),
    ("note_on", {"channel": 0, "note": 67, "velocity": 1}, 0),
    ("note_on", {"channel": 0, "note": 48, "velocity": 0}, 480),
    ("note_on", {"channel": 0, "note": 67, "velocity": 0}, 1440),
    ("end_of_track", {}, 1),
]


def events(track: mido.MidiTrack) -> list[tuple[str, dict, int]]:
    return [(message.type, {key: value for key, value in message.dict().items() if key not in ("type", "time")},
             message.time) for message in track]


def conductor(tempo_us: int) -> list[tuple[str, dict, int]]:
    return [("set_tempo", {"tempo": tempo_us}, 0),
            ("time_signature", {"numerator": 4, "denominator": 4, "clocks_per_click": 24,
                                "notated_32nd_notes_per_beat": 8}, 0),
            ("end_of_track", {}, 1)]


def test_a_transcription_is_written_as_exactly_these_events():
    data = midi_bytes(to_midi(NOTES, tempo_bpm=100.0, program=40))
    midi = mido.MidiFile(file=io.BytesIO(data))
    assert (midi.type, midi.ticks_per_beat, len(midi.tracks)) == (1, TRANSCRIPTION_TICKS_PER_BEAT, 2)
    assert events(midi.tracks[0]) == conductor(600_000)
    assert events(midi.tracks[1]) == TRANSCRIPTION_TRACK
    back = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert back.get_tempo_changes()[1].tolist() == pytest.approx([100.0])
    (instrument,) = back.instruments
    assert instrument.program == 40 and not instrument.is_drum and instrument.name == "Transcription"
    got = sorted((round(n.start, 9), round(n.end, 9), n.pitch, n.velocity) for n in instrument.notes)
    assert got == sorted((n.start_s, n.end_s, n.pitch, n.velocity) for n in NOTES)


def test_a_quantized_transcription_is_written_on_its_grid():
    """--quantize 1/16 at 100 BPM: a step is 0.15 s = 240 ticks; every event lands on a multiple of it."""
    loose = [Note(0.02, 0.58, 60, 90), Note(0.61, 0.66, 62, 70), Note(1.19, 1.52, 64, 50)]
    snapped = quantized(loose, 100.0, "1/16")
    assert snapped == [Note(0.0, 0.6, 60, 90), Note(0.6, 0.75, 62, 70), Note(1.2, 1.5, 64, 50)]
    midi = mido.MidiFile(file=io.BytesIO(midi_bytes(to_midi(snapped, tempo_bpm=100.0))))
    assert [(kind, fields.get("note"), fields.get("velocity"), delta) for kind, fields, delta
            in events(midi.tracks[1]) if kind == "note_on"] == [
        ("note_on", 60, 90, 0), ("note_on", 60, 0, 960), ("note_on", 62, 70, 0), ("note_on", 62, 0, 240),
        ("note_on", 64, 50, 720), ("note_on", 64, 0, 480)]
    ticks = 0
    for message in midi.tracks[1]:
        ticks += message.time
        assert message.type != "note_on" or ticks % 240 == 0


def test_write_midi_keeps_parts_programs_and_drums(tmp_path):
    """At pretty_midi's default 120 BPM a tick is 1/440 s: 0.3 s = 132 ticks."""
    score = Score((Part(40, False, tuple(NOTES[:2])), Part(0, True, (Note(0.3, 0.45, 36, 110),))), 0.9)
    path = tmp_path / "piece.mid"
    write_midi(score, path)
    midi = mido.MidiFile(str(path))
    assert (midi.type, midi.ticks_per_beat, len(midi.tracks)) == (1, TICKS_PER_BEAT, 3)
    assert events(midi.tracks[0]) == conductor(500_000)
    assert events(midi.tracks[1]) == [
        ("program_change", {"channel": 0, "program": 40}, 0),
        ("note_on", {"channel": 0, "note": 60, "velocity": 100}, 0),
        ("note_on", {"channel": 0, "note": 60, "velocity": 0}, 264),
        ("note_on", {"channel": 0, "note": 64, "velocity": 80}, 0),
        ("note_on", {"channel": 0, "note": 64, "velocity": 0}, 132),
        ("end_of_track", {}, 1)]
    assert events(midi.tracks[2]) == [
        ("program_change", {"channel": 9, "program": 0}, 0),
        ("note_on", {"channel": 9, "note": 36, "velocity": 110}, 132),
        ("note_on", {"channel": 9, "note": 36, "velocity": 0}, 66),
        ("end_of_track", {}, 1)]
    back = pretty_midi.PrettyMIDI(str(path))
    assert [(i.program, i.is_drum, len(i.notes)) for i in back.instruments] == [(40, False, 2), (0, True, 1)]
    ours = read_midi(path)  # the project's own reader, too
    def rows(parts, digits):
        return [(p.program, p.is_drum, [(round(n.start_s, digits), round(n.end_s, digits), n.pitch, n.velocity)
                                        for n in p.notes]) for p in parts]

    assert rows(ours.parts, 9) == rows(score.parts, 9)
    assert not list(tmp_path.glob("*.partial"))


def test_a_transcription_with_pitch_bends_is_written_as_exactly_these_events():
    """``--pitch-bends``: a note a quarter tone sharp (+25 cents on its key, nothing known on its harmonics) gets a
    member channel with the bend range, a wheel at 0.25 / 2 * 8192 = 1024 and its note; a flat note stays on the
    master channel. Each channel's track starts with its program, bend range (RPN 0 = 2 semitones) and a centred
    wheel."""
    from model.pitch_bends import midi_with_bends
    from pipeline.constants import LOWEST_PITCH, N_KEYS

    notes = [Note(0.0, 0.6, 60, 100), Note(0.6, 0.9, 64, 80)]
    deviations = np.full((60, N_KEYS), np.nan, np.float16)
    deviations[:, 60 - LOWEST_PITCH] = 0.25
    data = midi_with_bends(to_midi(notes, tempo_bpm=100.0, program=40), notes, deviations)
    midi = mido.MidiFile(file=io.BytesIO(data))
    assert (midi.type, midi.ticks_per_beat, len(midi.tracks)) == (1, TRANSCRIPTION_TICKS_PER_BEAT, 3)
    assert events(midi.tracks[0]) == conductor(600_000)

    def bend_range(channel):
        return [("control_change", {"channel": channel, "control": control, "value": value}, 0)
                for control, value in ((101, 0), (100, 0), (6, 2), (38, 0), (101, 127), (100, 127))]

    def header(channel):
        return [("program_change", {"channel": channel, "program": 40}, 0), *bend_range(channel),
                ("pitchwheel", {"channel": channel, "pitch": 0}, 0)]

    assert events(midi.tracks[1]) == [
        ("track_name", {"name": "Transcription ch1"}, 0), *header(0),
        ("note_on", {"channel": 0, "note": 64, "velocity": 80}, 960),
        ("note_off", {"channel": 0, "note": 64, "velocity": 0}, 480),
        ("end_of_track", {}, 0)]
    assert events(midi.tracks[2]) == [
        ("track_name", {"name": "Transcription ch2"}, 0), *header(1), *bend_range(1),
        ("pitchwheel", {"channel": 1, "pitch": 1024}, 0),
        ("note_on", {"channel": 1, "note": 60, "velocity": 100}, 0),
        ("note_off", {"channel": 1, "note": 60, "velocity": 0}, 960),
        ("end_of_track", {}, 0)]
    back = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert sorted((round(n.start, 9), round(n.end, 9), n.pitch, n.velocity) for i in back.instruments
                  for n in i.notes) == [(0.0, 0.6, 60, 100), (0.6, 0.9, 64, 80)]
    bent = next(i for i in back.instruments if any(n.pitch == 60 for n in i.notes))
    assert bent.program == 40 and bent.pitch_bends[-1].pitch == 1024 and bent.pitch_bends[-1].time == 0.0
