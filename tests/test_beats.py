"""Beats, tempo maps and quantization grids: clicks rendered through the real FluidSynth, librosa's tracker on the
features the network reads, and MIDI files written and read back."""

from __future__ import annotations

import io

import mido
import numpy as np
import pretty_midi
import pytest

from model.beats import (MIN_CONFIDENCE, MIN_PICKUP_BEATS, TEMPO_RANGE_BPM, BeatGrid, checked_tempo, fixed_grid,
                         _extended, onset_envelope, track_beats)
from model.quantize import QUANTIZE_GRIDS, grid_times, quantized
from model.tempo_map import MIDI_RESOLUTION, tempo_mapped_midi
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram, spectrogram_stream
from pipeline.notes import Note, Part
from pipeline.render import default_soundfont, render

WOODBLOCK = 115
FLUTE = 73
# Beats are found on 16 ms feature frames and smoothed; measured errors are up to 21 ms on these clips. 40 ms is
# two and a half frames, inside mir_eval's 50 ms onset window, and under a third of a beat at 140 BPM (430 ms).
BEAT_TOLERANCE_S = 0.04


def clicks(times_s, seconds: float, *, program: int = WOODBLOCK, length_s: float = 0.05) -> np.ndarray:
    notes = tuple(Note(float(t), float(t) + length_s, 76, 120) for t in times_s)
    return render([Part(program, False, notes)], seconds, soundfont=default_soundfont())


def accelerating(from_bpm: float, to_bpm: float, seconds: float, *, first_s: float = 0.5) -> np.ndarray:
    """Click times whose tempo rises linearly in time from ``from_bpm`` to ``to_bpm`` over ``seconds``."""
    times = [first_s]
    while True:
        bpm = from_bpm + (to_bpm - from_bpm) * times[-1] / seconds
        following = times[-1] + 60.0 / bpm
        if following > seconds - 0.5:
            return np.array(times)
        times.append(following)


def rubato(seconds: float, seed: int, *, beat_s: float = 0.667, stretch: float = 0.35) -> np.ndarray:
    """Beats of about ``beat_s`` each stretched or squeezed at random by up to ``stretch``."""
    rng = np.random.default_rng(seed)
    times = [0.3]
    while times[-1] < seconds - 1.5:
        times.append(times[-1] + beat_s * rng.uniform(1 - stretch, 1 + stretch))
    return np.array(times)


def beats_of(audio: np.ndarray) -> BeatGrid:
    return track_beats(onset_envelope(spectrogram(audio)), duration_s=audio.size / 16_000)


# --- the onset envelope -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("pieces", [1, 3, 9])
def test_the_envelope_of_streamed_features_is_the_whole_files(pieces):
    audio = clicks(np.arange(0.2, 19.0, 0.5), 20.0)
    whole = onset_envelope(spectrogram(audio, chunk_frames=300))
    parts, previous = [], None
    for piece in spectrogram_stream(np.array_split(audio, pieces), chunk_frames=300):
        parts.append(onset_envelope(piece, previous=previous))
        previous = piece[-1]
    assert len(parts) > 1 and whole.shape == (spectrogram(audio).shape[0],) and whole.dtype == np.float32
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    frames = np.flatnonzero(whole > 0.5 * whole.max())
    assert np.all(np.abs(frames / 62.5 - np.round(frames / 62.5 / 0.5) * 0.5 - 0.2) <= 0.05)  # peaks at the clicks


@pytest.mark.parametrize("seed", [0, 1])
def test_the_envelope_is_librosas_onset_strength(seed):
    """The NumPy envelope equals librosa's onset strength on the same features (float32 rounding apart)."""
    import librosa

    rng = np.random.default_rng(seed)
    audio = clicks(np.sort(rng.uniform(0.1, 7.5, 16)), 8.0, program=int(rng.choice([WOODBLOCK, FLUTE, 0])))
    features = spectrogram(audio + rng.normal(0, 1e-3, audio.size).astype(np.float32))
    theirs = librosa.onset.onset_strength(S=features.T.astype(np.float64), sr=16_000, hop_length=256, lag=1,
                                          max_size=3, center=False)
    ours = onset_envelope(features)
    assert ours.shape == theirs.shape and ours[0] == 0.0 and theirs.max() > 0.0
    np.testing.assert_allclose(ours, theirs, rtol=1e-4, atol=1e-4)
    shifted = onset_envelope(np.roll(features, 1, axis=1))  # a bin off is another envelope: the test can fail
    assert not np.allclose(shifted, theirs, rtol=1e-4, atol=1e-4)


# --- tracking -------------------------------------------------------------------------------------------------


def test_an_accelerating_click_track_gets_beats_that_follow_it():
    """90 -> 140 BPM over 40 s: every click has a beat and every beat a click, and the map's tempo rises with it."""
    times = accelerating(90.0, 140.0, 40.0)
    grid = beats_of(clicks(times, 40.0))
    assert grid.tracked and grid.note is None and grid.confidence >= MIN_CONFIDENCE
    heard = grid.beats_s[(grid.beats_s > times[0] - 0.2) & (grid.beats_s < times[-1] + 0.2)]
    assert np.abs(heard[:, None] - times[None, :]).min(axis=0).max() <= BEAT_TOLERANCE_S  # each click has a beat
    assert np.abs(heard[:, None] - times[None, :]).min(axis=1).max() <= BEAT_TOLERANCE_S  # each beat is a click
    tempi, middles = grid.tempi_bpm, (grid.beats_s[1:] + grid.beats_s[:-1]) / 2
    truth = 90.0 + 50.0 * middles / 40.0
    inside = (middles > times[0]) & (middles < times[-1])
    assert np.all(np.abs(tempi[inside] / truth[inside] - 1) <= 0.05)
    assert np.median(tempi[inside][:8]) < 100 and np.median(tempi[inside][-8:]) > 130


@pytest.mark.parametrize("first_s", [0.0, 0.1, 0.3, 0.55])
def test_the_grid_starts_at_zero_with_a_pickup_of_sensible_length(first_s):
    times = first_s + np.arange(0, 15.0, 0.6)
    grid = beats_of(clicks(times, 16.0))
    assert grid.tracked and grid.beats_s[0] == 0.0 and grid.beats_s[-1] >= 16.0
    pickup, next_beat = np.diff(grid.beats_s)[:2]
    assert MIN_PICKUP_BEATS * next_beat <= pickup + 1e-9 and pickup < (1 + MIN_PICKUP_BEATS) * next_beat
    assert grid.tempo_bpm == pytest.approx(100.0, rel=0.02)


@pytest.mark.parametrize("leading", [(-0.04,), (-0.45, -0.04), (0.0,), (0.01,), ()])
def test_a_tracked_beat_at_or_before_zero_leaves_the_grid_increasing(leading):
    """Smoothing moved the first beat of a real clip (a corpus piece on csound's bank) to -0.04 s: the grid came out
    [0, -0.04, 0.36, ...] and writing its MIDI failed on a negative tempo."""
    tracked = np.array([*leading, 0.36, 0.78, 1.24, 1.76, 2.23, 2.74, 3.31, 3.97])
    beats = _extended(tracked, duration_s=5.0)
    assert beats[0] == 0.0 and np.all(np.diff(beats) > 0) and beats[-1] >= 5.0
    midi = tempo_mapped_midi(beats)  # the MIDI is written: every tempo positive
    heard = [midi.tick_to_time(k * midi.resolution) for k in range(beats.size)]
    assert np.allclose(heard, beats, atol=2e-6)


@pytest.mark.parametrize(("kind", "seed"), [("rubato", 0), ("rubato", 1), ("rubato", 2), ("free", 0), ("free", 1)])
def test_rubato_and_free_timing_fall_back_to_one_tempo_and_say_so(kind, seed):
    """Clicks whose beats stretch at random by up to 35 %, or a flute holding notes of random lengths (like free
    singing): no tempo map, one tempo from the start, and a note that says why."""
    if kind == "rubato":
        audio = clicks(rubato(30.0, seed), 30.0)
    else:
        rng = np.random.default_rng(seed)
        starts = np.cumsum(rng.uniform(0.25, 1.6, 40))
        starts = starts[starts < 28.0]
        notes = tuple(Note(float(a), float(b) - 0.02, int(p), 90)
                      for a, b, p in zip(starts, np.append(starts[1:], 29.0), rng.integers(60, 80, starts.size)))
        audio = render([Part(FLUTE, False, notes)], 30.0, soundfont=default_soundfont())
    grid = beats_of(audio)
    assert not grid.tracked and grid.confidence < MIN_CONFIDENCE
    assert grid.note.startswith(f"no steady beat (pulse clarity {grid.confidence:.2f} < {MIN_CONFIDENCE:.2f})")
    assert f"one tempo, {grid.tempo_bpm:.1f} BPM" in grid.note
    assert np.allclose(np.diff(grid.beats_s), 60.0 / grid.tempo_bpm) and grid.beats_s[0] == 0.0


@pytest.mark.parametrize("audio", ["silence", "short"])
def test_silence_or_a_short_clip_keeps_the_default_tempo(audio):
    signal = np.zeros(16_000 * 10, np.float32) if audio == "silence" else clicks([0.2, 0.7, 1.2, 1.7], 3.0)
    grid = beats_of(signal)
    assert not grid.tracked and grid.tempo_bpm == 120.0 and "too short or too quiet" in grid.note


def test_fixed_grids_and_bad_tempi():
    grid = fixed_grid(100.0, duration_s=3.0)
    np.testing.assert_allclose(grid.beats_s, [0, 0.6, 1.2, 1.8, 2.4, 3.0])
    assert not grid.tracked and grid.confidence is None and grid.note is None
    assert fixed_grid(60.0, duration_s=0.0).beats_s.tolist() == [0.0, 1.0]
    with pytest.raises(Mp3MidiError, match=r"tempo 300 BPM is outside 40-240"):
        checked_tempo(300)
    with pytest.raises(Mp3MidiError, match=r"tempo must be 'auto' or beats per minute; got 'fast'"):
        fixed_grid("fast", duration_s=1.0)
    assert checked_tempo("92.5") == 92.5 and TEMPO_RANGE_BPM == (40.0, 240.0)


# --- the tempo map in the MIDI file ---------------------------------------------------------------------------


def read_back(midi: pretty_midi.PrettyMIDI) -> pretty_midi.PrettyMIDI:
    buffer = io.BytesIO()
    midi.write(buffer)
    return pretty_midi.PrettyMIDI(io.BytesIO(buffer.getvalue()))


@pytest.mark.parametrize("beats", ["accelerating", "random", "long"])
def test_notes_keep_their_times_whatever_the_tempo_map(beats):
    rng = np.random.default_rng(7)
    if beats == "accelerating":
        intervals = 60.0 / np.linspace(90, 140, 80)
    elif beats == "random":
        intervals = 60.0 / rng.uniform(*TEMPO_RANGE_BPM, 300)
    else:  # two hours at 120 BPM give beats with the most rounding to accumulate
        intervals = 0.5 + rng.uniform(-0.003, 0.003, 14_000)
    beats_s = np.concatenate(([0.0], np.cumsum(intervals)))
    midi = tempo_mapped_midi(beats_s)
    starts = np.sort(rng.uniform(0, beats_s[-1] - 1, 400))
    instrument = pretty_midi.Instrument(0)
    instrument.notes = [pretty_midi.Note(90, 60 + i % 12, s, s + 0.3) for i, s in enumerate(starts)]
    midi.instruments.append(instrument)
    back = read_back(midi)
    times = np.array([[n.start, n.end] for n in back.instruments[0].notes])
    np.testing.assert_allclose(times, [[s, s + 0.3] for s in starts], atol=1e-3)
    file = mido.MidiFile(file=io.BytesIO(_bytes(midi)))
    assert file.ticks_per_beat == (MIDI_RESOLUTION if beats != "long" else MIDI_RESOLUTION // 2)
    heard = back.get_beats()  # up to the last note's end
    assert heard.size >= beats_s.size - 3
    np.testing.assert_allclose(heard, beats_s[:heard.size], atol=5e-6)  # beat k at tick k * resolution, no drift
    changes = [m for m in file.tracks[0] if m.type == "set_tempo"]
    assert len(changes) > min(60, beats_s.size // 4)  # a change at (nearly) every beat


def test_a_fixed_tempo_is_one_tempo_event():
    midi = tempo_mapped_midi(fixed_grid(100.0, duration_s=30.0).beats_s)
    file = mido.MidiFile(file=io.BytesIO(_bytes(midi)))
    tempi = [m.tempo for m in file.tracks[0] if m.type == "set_tempo"]
    assert tempi == [600_000]


def _bytes(midi: pretty_midi.PrettyMIDI) -> bytes:
    buffer = io.BytesIO()
    midi.write(buffer)
    return buffer.getvalue()


# --- quantization on the beats ---------------------------------------------------------------------------------


@pytest.mark.parametrize("grid", list(QUANTIZE_GRIDS))
@pytest.mark.parametrize("beats", ["fixed", "accelerating"])
def test_quantize_snaps_to_subdivisions_of_the_beats(grid, beats):
    beats_s = (fixed_grid(120.0, duration_s=10.0).beats_s if beats == "fixed"
               else np.concatenate(([0.0], np.cumsum(60.0 / np.linspace(90, 140, 20)))))
    steps = QUANTIZE_GRIDS[grid]
    points = grid_times(beats_s, steps)
    assert points.size == (beats_s.size - 1) * steps + 1 and np.all(np.diff(points) > 0)
    np.testing.assert_allclose(points[::steps], beats_s)
    rng = np.random.default_rng(3)
    starts = np.sort(rng.uniform(0, beats_s[-1] - 1, 60))
    notes = [Note(float(s), float(s + rng.uniform(0.01, 0.8)), int(p), 80)
             for s, p in zip(starts, rng.integers(50, 70, 60))]
    snapped = quantized(notes, beats_s, grid)
    on_grid = lambda t: np.abs(points - t).min() < 1e-9  # noqa: E731
    assert snapped and all(on_grid(n.start_s) and on_grid(n.end_s) and n.end_s > n.start_s for n in snapped)
    largest_step = np.diff(points).max()
    for note in snapped:  # each note moved by at most half a step from one played on its key
        assert any(abs(note.start_s - o.start_s) <= largest_step / 2 + 1e-9 for o in notes if o.pitch == note.pitch)


def test_triplet_grids_divide_the_beat_in_three_and_six():
    beats_s = np.array([0.0, 0.6, 1.2])
    np.testing.assert_allclose(grid_times(beats_s, QUANTIZE_GRIDS["1/8t"]), [0, 0.2, 0.4, 0.6, 0.8, 1.0, 1.2])
    (sixteenth,) = quantized([Note(0.21, 0.43, 60, 90)], beats_s, "1/16t")
    (eighth,) = quantized([Note(0.21, 0.43, 60, 90)], beats_s, "1/8")
    assert (sixteenth.start_s, sixteenth.end_s) == pytest.approx((0.2, 0.4))
    assert (eighth.start_s, eighth.end_s) == pytest.approx((0.3, 0.6))


@pytest.mark.parametrize(("grid", "message"), [
    ("1/5", r"quantize must be none or one of 1/4, 1/8, 1/8t, 1/16, 1/16t, 1/32; got '1/5'"),
    ("1/16T", r"got '1/16T'"), (16, r"got 16")])
def test_unknown_grids_are_refused(grid, message):
    with pytest.raises(Mp3MidiError, match=message):
        quantized([Note(0.1, 0.2, 60, 90)], np.array([0.0, 0.5]), grid)


def test_notes_past_the_last_beat_snap_to_its_steps_and_none_means_unchanged():
    notes = [Note(0.1, 0.2, 60, 90), Note(2.2, 2.6, 62, 90)]
    assert quantized(notes, np.array([0.0, 0.5, 1.0]), None) == notes == quantized(notes, np.array([0.0, 0.5]), "none")
    late = quantized(notes, np.array([0.0, 0.5, 1.0]), "1/4")
    assert [(n.start_s, n.end_s) for n in late] == [(0.0, 0.5), (2.0, 2.5)]
