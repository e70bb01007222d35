"""Pitch bends: contours measured from synthesized tones of known cents, written as pitch-wheel events on a channel
per sounding note with the bend range set by RPN, read back by mido and pretty_midi, and heard by FluidSynth."""

import io
import subprocess
import sys

import mido
import numpy as np
import pretty_midi
import pytest

from model.pitch_bends import (BEND_RANGE_SEMITONES, MASTER_CHANNEL, MEMBER_CHANNELS, DeviationGatherer,
                               assign_channels, key_deviations, midi_with_bends, note_contour)
from model.transcribe import to_midi
from pipeline.audio import encode_mp3
from pipeline.constants import DRUM_CHANNEL, FRAMES_PER_SECOND, LOWEST_PITCH, N_BINS, N_KEYS, SAMPLE_RATE, pitch_to_hz
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram, spectrogram_stream
from pipeline.notes import Note
from pipeline.playback import render_midi

CENTS = 100.0
WHEEL_SPAN = 8192  # wheel units per bend range


def tone(pitch: int, seconds: float, *, cents=lambda t: 0.0 * t, harmonics: int = 8) -> np.ndarray:
    """A tone with harmonics 1..8 (amplitude 1/k) whose pitch is ``pitch`` + cents(t) / 100 semitones."""
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(pitch_to_hz(pitch) * 2 ** (cents(t) / 1200)) / SAMPLE_RATE
    envelope = np.minimum(1.0, np.minimum(t / 0.02, (seconds - t) / 0.05))
    return (0.3 * envelope * sum(np.sin(k * phase) / k for k in range(1, harmonics + 1))).astype(np.float32)


def deviations_of(audio: np.ndarray) -> np.ndarray:
    gather = DeviationGatherer()
    for piece in spectrogram_stream([audio]):
        gather(piece)
    return gather.result()


def read(data: bytes) -> mido.MidiFile:
    return mido.MidiFile(file=io.BytesIO(data))


def timed_messages(midi: mido.MidiFile) -> list[tuple[float, mido.Message]]:
    """(seconds, message) for every channel message, all tracks merged."""
    out, now = [], 0.0
    for message in midi:
        now += message.time
        if not message.is_meta:
            out.append((now, message))
    return out


def wheel_cents(midi: mido.MidiFile, channel: int, grid_s: np.ndarray) -> np.ndarray:
    """The channel's pitch wheel, in cents, held from event to event and sampled at ``grid_s``."""
    events = [(t, m.pitch) for t, m in timed_messages(midi) if m.type == "pitchwheel" and m.channel == channel]
    times = np.array([t for t, _ in events])
    values = np.array([v for _, v in events]) / WHEEL_SPAN * BEND_RANGE_SEMITONES * CENTS
    return values[np.searchsorted(times, grid_s, side="right") - 1]


def sinusoid_fit(times: np.ndarray, values: np.ndarray) -> tuple[float, float, float]:
    """(depth, rate_hz, centre) of the sinusoid that fits best, rates searched from 3 to 8 Hz in 0.01 Hz steps."""
    best = (0.0, 0.0, 0.0)
    for rate in np.arange(3.0, 8.0, 0.01):
        basis = np.stack([np.sin(2 * np.pi * rate * times), np.cos(2 * np.pi * rate * times), np.ones_like(times)], 1)
        (a, b, c), *_ = np.linalg.lstsq(basis, values, rcond=None)
        if np.hypot(a, b) > best[0]:
            best = (float(np.hypot(a, b)), float(rate), float(c))
    return best


# --- measuring --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("pitch", [69, 81])  # A4, A5
def test_a_vibrato_comes_out_as_a_bend_of_its_depth_and_rate(pitch):
    """A +-40 cent, 5 Hz vibrato, measured, written as pitch-wheel events and read back from the MIDI bytes.

    Tolerance: 4 cents of depth (a tenth) and 0.1 Hz of rate. The contour is read on the 4th harmonic, whose CQT
    window (29 ms at A6, 15 ms at A7) keeps 98-99 % of a 5 Hz swing; the parabola through three bins a third of a
    semitone apart reads a steady tone to about 1 cent, and the wheel is written in steps of 1 cent, whose
    hold-and-step lags by half a step. 4 cents is also below what a listener tells apart in a vibrato's depth.
    """
    note = Note(0.0, 3.0, pitch, 100)
    audio = tone(pitch, 3.0, cents=lambda t: 40.0 * np.sin(2 * np.pi * 5.0 * t))
    midi = read(midi_with_bends(to_midi([note], tempo_bpm=120.0), [note], deviations_of(audio)))
    (channel,) = {m.channel for _, m in timed_messages(midi) if m.type == "note_on"}
    assert channel in MEMBER_CHANNELS
    grid = np.arange(0.5, 2.5, 0.005)  # clear of the note's attack and release
    depth, rate, centre = sinusoid_fit(grid, wheel_cents(midi, channel, grid))
    assert depth == pytest.approx(40.0, abs=4.0)
    assert rate == pytest.approx(5.0, abs=0.1)
    assert centre == pytest.approx(0.0, abs=3.0)


@pytest.mark.parametrize("detune_cents", [-35.0, -12.0, 20.0, 45.0])
def test_a_detuned_tone_bends_by_its_detuning(detune_cents):
    note = Note(0.0, 1.5, 64, 100)
    audio = tone(64, 1.5, cents=lambda t: detune_cents + 0.0 * t)
    times, semitones = note_contour(note, deviations_of(audio))
    middle = (times > 0.3) & (times < 1.2)
    assert np.median(semitones[middle]) * CENTS == pytest.approx(detune_cents, abs=3.0)


def test_a_steady_tone_in_tune_writes_no_bend():
    note = Note(0.0, 1.5, 60, 100)
    data = midi_with_bends(to_midi([note], tempo_bpm=120.0), [note], deviations_of(tone(60, 1.5)))
    messages = timed_messages(read(data))
    assert {m.channel for _, m in messages if m.type == "note_on"} == {MASTER_CHANNEL}
    assert all(m.pitch == 0 for _, m in messages if m.type == "pitchwheel")


def test_a_slide_is_followed_while_it_stays_near_its_key():
    """A4 rising 50 cents over a second, then held: the wheel climbs with it and ends at +50 cents."""
    note = Note(0.0, 2.0, 69, 100)
    audio = tone(69, 2.0, cents=lambda t: 50.0 * np.clip(t - 0.5, 0.0, 1.0))
    midi = read(midi_with_bends(to_midi([note], tempo_bpm=120.0), [note], deviations_of(audio)))
    (channel,) = {m.channel for _, m in timed_messages(midi) if m.type == "note_on"}
    at = wheel_cents(midi, channel, np.array([0.3, 1.0, 1.7]))
    assert at[0] == pytest.approx(0.0, abs=4.0) and at[1] == pytest.approx(25.0, abs=6.0)
    assert at[2] == pytest.approx(50.0, abs=4.0)


def test_deviations_are_unknown_where_there_is_no_peak_and_shapes_are_checked():
    deviations = key_deviations(np.zeros((10, N_BINS), np.float32))
    assert deviations.shape == (10, N_KEYS) and np.isnan(deviations).all()
    with pytest.raises(Mp3MidiError, match=r"features \[frames, 264\]; got shape \(10, 88\)"):
        key_deviations(np.zeros((10, N_KEYS), np.float32))


def test_streamed_deviations_equal_those_of_the_whole_spectrogram():
    audio = tone(57, 3.0, cents=lambda t: 30.0 * np.sin(2 * np.pi * 4.0 * t))
    whole = key_deviations(spectrogram(audio)).astype(np.float16)
    streamed = deviations_of(audio)
    assert np.array_equal(np.isnan(whole), np.isnan(streamed))
    assert np.array_equal(whole[~np.isnan(whole)], streamed[~np.isnan(streamed)])


# --- channels ---------------------------------------------------------------------------------------------------


def chord(count: int, *, start_s: float = 0.0, length_s: float = 1.0) -> list[Note]:
    return [Note(start_s, start_s + length_s, 48 + i, 90) for i in range(count)]


@pytest.mark.parametrize(("notes", "bends", "expected_channels"), [
    (chord(2), None, 2),  # two overlapping notes: two channels
    (chord(3), [True, False, True], 2),  # a note without a bend needs none
    (chord(len(MEMBER_CHANNELS)), None, len(MEMBER_CHANNELS)),  # every member channel in use at once
    (chord(len(MEMBER_CHANNELS) + 3), None, len(MEMBER_CHANNELS)),  # three notes find none free
    ([Note(i * 0.5, i * 0.5 + 0.4, 60 + i, 90) for i in range(20)], None, len(MEMBER_CHANNELS)),  # one at a time
])
def test_overlapping_notes_never_share_a_channel(notes, bends, expected_channels):
    channels = assign_channels(notes, bends=bends)
    assert len(channels) == len(notes)
    assert len({c for c in channels if c is not None}) == expected_channels
    assert DRUM_CHANNEL not in channels and MASTER_CHANNEL not in channels
    for i, a in enumerate(notes):
        for j, b in enumerate(notes[:i]):
            if channels[i] is not None and a.start_s < b.end_s and b.start_s < a.end_s:
                assert channels[i] != channels[j]
    if bends is not None:
        assert all(c is None for c, bend in zip(channels, bends) if not bend)
    overflow = len(notes) - len(MEMBER_CHANNELS)
    if overflow > 0 and notes == chord(len(notes)):
        assert channels.count(None) == overflow


def test_a_freed_channel_waits_while_others_have_rested_longer():
    """Notes one after another rotate through the channels: a note's release is not bent by the next note."""
    notes = [Note(i * 0.5, i * 0.5 + 0.5, 60, 90) for i in range(3)]
    first, second, third = assign_channels(notes)
    assert len({first, second, third}) == 3


@pytest.mark.parametrize(("bends", "channels", "message"), [
    ([True], MEMBER_CHANNELS, r"one bend flag per note; got 1 for 2 notes"),
    (None, (1, 1, 2), r"distinct MIDI channels 0-15; got \[1, 1, 2\]"),
    (None, (1, 16), r"distinct MIDI channels 0-15; got \[1, 16\]"),
])
def test_bad_channel_requests_are_refused(bends, channels, message):
    with pytest.raises(Mp3MidiError, match=message):
        assign_channels(chord(2), bends=bends, channels=channels)


def test_a_note_without_a_channel_keeps_no_bend_and_bends_no_neighbour():
    notes = chord(len(MEMBER_CHANNELS) + 2)
    deviations = np.full((int(2 * FRAMES_PER_SECOND), N_KEYS), 0.3, np.float16)  # every key 30 cents sharp
    messages = timed_messages(read(midi_with_bends(to_midi(notes, tempo_bpm=120.0), notes, deviations)))
    on = [m for _, m in messages if m.type == "note_on" and m.velocity > 0]
    assert sum(m.channel == MASTER_CHANNEL for m in on) == 2
    assert len({m.channel for m in on if m.channel != MASTER_CHANNEL}) == len(MEMBER_CHANNELS)
    assert all(m.pitch == 0 for _, m in messages if m.type == "pitchwheel" and m.channel == MASTER_CHANNEL)
    member_wheels = {m.pitch for _, m in messages if m.type == "pitchwheel" and m.channel != MASTER_CHANNEL}
    assert round(0.3 / BEND_RANGE_SEMITONES * WHEEL_SPAN) in member_wheels


# --- the MIDI file ----------------------------------------------------------------------------------------------


def bent_file(notes: list[Note], *, tempo_bpm: float = 100.0, program: int = 40) -> bytes:
    frames = int((max(n.end_s for n in notes) + 1) * FRAMES_PER_SECOND)
    ramp = np.linspace(0.1, 0.3, frames, dtype=np.float32)[:, None].repeat(N_KEYS, axis=1)  # a slow bend up
    return midi_with_bends(to_midi(notes, tempo_bpm=tempo_bpm, program=program), notes, ramp)


NOTES = [Note(0.0, 1.0, 60, 90), Note(0.5, 1.5, 64, 80), Note(1.5, 2.5, 67, 70), Note(1.6, 1.9, 72, 100)]


def test_every_note_starts_with_the_bend_range_by_rpn_and_its_wheel_reset():
    midi = read(bent_file(NOTES))
    for track in midi.tracks[1:]:
        messages = [m for m in track if not m.is_meta]
        for index, message in enumerate(messages):
            if message.type == "note_on" and message.velocity > 0:
                before = messages[index - 7:index]
                assert [(m.control, m.value) for m in before[:6]] == [(101, 0), (100, 0), (6, BEND_RANGE_SEMITONES),
                                                                       (38, 0), (101, 127), (100, 127)]
                assert before[6].type == "pitchwheel"
                assert all(m.time == 0 for m in before[1:] + [message])  # all at the note's start
        assert [m.type for m in messages[:8]] == ["program_change"] + ["control_change"] * 6 + ["pitchwheel"]


def test_the_file_reads_back_in_mido_and_pretty_midi_with_its_notes_tempo_and_program():
    data = bent_file(NOTES)
    assert read(data).type == 1
    back = pretty_midi.PrettyMIDI(io.BytesIO(data))
    assert back.get_tempo_changes()[1][0] == pytest.approx(100.0)
    notes = sorted((round(n.start, 2), round(n.end, 2), n.pitch, n.velocity)  # to the tick: 2.7 ms at 100 BPM
                   for instrument in back.instruments for n in instrument.notes)
    assert notes == sorted((n.start_s, n.end_s, n.pitch, n.velocity) for n in NOTES)
    assert {instrument.program for instrument in back.instruments} == {40}
    assert all(instrument.pitch_bends for instrument in back.instruments)
    channels = {m.channel for _, m in timed_messages(read(data)) if m.type == "note_on"}
    assert len(channels) == 4 and channels <= set(MEMBER_CHANNELS)  # each bends; rotation gives each its own


def test_the_bend_range_is_checked():
    with pytest.raises(Mp3MidiError, match="bend range must be 1-24 semitones; got 48"):
        midi_with_bends(to_midi(NOTES, tempo_bpm=120.0), NOTES, np.zeros((10, N_KEYS)), bend_range=48)


# --- the synthesizer hears it -----------------------------------------------------------------------------------


def heard_pitch(audio: np.ndarray, start_s: float, end_s: float) -> float:
    """The loudest key in the middle of a render, plus its measured deviation: a fractional MIDI pitch."""
    features = spectrogram(audio)
    middle = features[int(start_s * FRAMES_PER_SECOND):int(end_s * FRAMES_PER_SECOND)]
    deviations = key_deviations(middle)
    keys = middle.reshape(len(middle), N_KEYS, -1).max(axis=2).mean(axis=0)
    key = int(keys.argmax())
    return LOWEST_PITCH + key + float(np.nanmedian(deviations[:, key]))


def one_bent_note(wheel: int, bend_range: int) -> bytes:
    track = mido.MidiTrack([mido.Message("program_change", channel=1, program=73)])  # flute: nearly a sine
    track += [mido.Message("control_change", channel=1, control=c, value=v)
              for c, v in ((101, 0), (100, 0), (6, bend_range), (38, 0))]
    track += [mido.Message("pitchwheel", channel=1, pitch=wheel),
              mido.Message("note_on", channel=1, note=69, velocity=100),
              mido.Message("note_off", channel=1, note=69, velocity=0, time=960)]
    midi = mido.MidiFile(ticks_per_beat=480, tracks=[track])  # 120 BPM: two beats, one second
    buffer = io.BytesIO()
    midi.save(file=buffer)
    return buffer.getvalue()


@pytest.mark.parametrize(("wheel", "bend_range", "semitones"), [
    (1024, 2, 0.25), (-1229, 2, -0.3), (4096, 2, 1.0), (4096, 12, 6.0), (-8192, 2, -2.0), (-2731, 3, -1.0)])
def test_fluidsynth_plays_the_wheel_with_the_range_the_rpn_set(wheel, bend_range, semitones):
    """Heard against the same note unbent (the soundfont's flute is itself a few cents sharp), to 5 cents."""
    unbent = heard_pitch(render_midi(one_bent_note(0, bend_range), duration_s=1.2), 0.3, 0.8)
    bent = heard_pitch(render_midi(one_bent_note(wheel, bend_range), duration_s=1.2), 0.3, 0.8)
    assert bent - unbent == pytest.approx(semitones, abs=0.05)


def test_a_vibrato_written_with_bends_is_played_back_with_it():
    """Measured, written, rendered and measured again: the synthesizer's vibrato has the original's rate and most
    of its depth (both read on the 4th harmonic: a sawtooth lead has every harmonic)."""
    note = Note(0.0, 3.0, 69, 100)
    audio = tone(69, 3.0, cents=lambda t: 40.0 * np.sin(2 * np.pi * 5.0 * t))
    data = midi_with_bends(to_midi([note], tempo_bpm=120.0, program=81), [note], deviations_of(audio))
    played = render_midi(data, duration_s=3.0)
    times, semitones = note_contour(note, deviations_of(played))
    middle = (times > 0.5) & (times < 2.5)
    depth, rate, _ = sinusoid_fit(times[middle], semitones[middle] * CENTS)
    assert rate == pytest.approx(5.0, abs=0.1) and depth == pytest.approx(40.0, abs=6.0)


def test_render_midi_refuses_what_it_cannot_play():
    with pytest.raises(Mp3MidiError, match="cannot read the MIDI"):
        render_midi(b"MThd\x00\x00\x00\x06\x00\x01", duration_s=1.0)
    empty = mido.MidiFile(tracks=[mido.MidiTrack([mido.Message("program_change", program=1)])])
    buffer = io.BytesIO()
    empty.save(file=buffer)
    with pytest.raises(Mp3MidiError, match="no notes to play"):
        render_midi(buffer.getvalue(), duration_s=1.0)


# --- the command line -------------------------------------------------------------------------------------------


def test_the_flag_adds_bends_to_the_same_notes_and_without_it_there_are_none(tmp_path):
    audio = tone(69, 2.5, cents=lambda t: 40.0 * np.sin(2 * np.pi * 5.0 * t))
    encode_mp3(audio, tmp_path / "vibrato.mp3")
    for name, extra in (("plain.mid", []), ("bent.mid", ["--pitch-bends"])):
        result = subprocess.run([sys.executable, "-m", "model", "transcribe", "vibrato.mp3", "-o", name, *extra],
                                cwd=tmp_path, capture_output=True, text=True, timeout=300)
        assert result.returncode == 0, result.stderr
    plain, bent = (timed_messages(mido.MidiFile(tmp_path / name)) for name in ("plain.mid", "bent.mid"))
    assert not [m for _, m in plain if m.type in ("pitchwheel", "control_change")]
    assert [m for _, m in bent if m.type == "control_change" and m.control == 101]
    assert any(m.type == "pitchwheel" and m.pitch != 0 for _, m in bent)

    def notes(name):
        return sorted((round(n.start, 3), n.pitch) for i in pretty_midi.PrettyMIDI(str(tmp_path / name)).instruments
                      for n in i.notes)
    assert notes("plain.mid") == notes("bent.mid") and notes("plain.mid")
