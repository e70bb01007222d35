"""Performances: the label rules on their own, the events a style makes, and the rendered sound through the real
FluidSynth (the pitch of a bent, vibrato or gliding note measured from the audio; a pedalled note still ringing)."""

from __future__ import annotations

import numpy as np
import pytest

from pipeline.constants import SAMPLE_RATE, pitch_to_hz
from pipeline.notes import Note, Part
from pipeline.performance import (BEND_STEPS, CC_SUSTAIN, CONTROL_STEP_S, MAX_INSIDE_CENTS, PartStyle, perform,
                                  slide_labels, sustain_notes)
from pipeline.render import BEND_CENTRE, default_soundfont, render

STEADY = dict(timing_sd_s=0.0, velocity_drift=0.0, detune_cents=0.0)


# --- label rules ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("interval, glide_s", [(1, 0.1), (-2, 0.2), (5, 0.1), (-12, 0.24)])
def test_a_slide_ends_the_old_key_half_a_semitone_out_and_starts_the_new_key_on_arrival(interval, glide_s):
    first, second = Note(0.0, 0.52, 60, 90), Note(0.5, 1.5, 60 + interval, 80)
    old, new = slide_labels(first, second, glide_start_s=0.5, glide_s=glide_s)
    assert (old.pitch, old.start_s, old.velocity) == (60, 0.0, 90)
    assert old.end_s == pytest.approx(0.5 + glide_s * 0.5 / abs(interval))
    assert (new.pitch, new.start_s, new.end_s, new.velocity) == (60 + interval, pytest.approx(0.5 + glide_s), 1.5, 80)


def test_a_slide_between_equal_keys_is_refused():
    with pytest.raises(ValueError, match="two different keys; got 60 and 60"):
        slide_labels(Note(0, 1, 60, 90), Note(1, 2, 60, 90), glide_start_s=1.0, glide_s=0.1)


@pytest.mark.parametrize("note, expected_end", [
    (Note(0.2, 0.6, 60, 80), 1.5),  # released under the pedal: sounds until it lifts
    (Note(0.0, 0.1, 62, 80), 0.1),  # released before the pedal went down
    (Note(0.5, 2.0, 64, 80), 2.0),  # held past the lift
    (Note(1.6, 1.9, 65, 80), 1.9),  # between presses
    (Note(2.1, 2.3, 67, 80), 3.0),  # the second press
])
def test_a_pedalled_note_sounds_until_the_pedal_lifts(note, expected_end):
    (out,) = sustain_notes([note], [(0.3, 1.5), (2.2, 3.0)])
    assert (out.start_s, out.end_s, out.pitch) == (note.start_s, expected_end, note.pitch)


def test_a_pedalled_note_ends_when_its_key_is_struck_again():
    notes = [Note(0.2, 0.4, 60, 80), Note(0.9, 1.0, 60, 70), Note(0.5, 0.6, 64, 80)]
    out = sustain_notes(notes, [(0.3, 2.0)])
    assert [(n.start_s, n.end_s, n.pitch) for n in out] == [(0.2, 0.9, 60), (0.5, 2.0, 64), (0.9, 2.0, 60)]


# --- events ----------------------------------------------------------------------------------------------------------

def _line(pitches, *, length=0.6, gap=0.0, start=0.2) -> Part:
    notes = tuple(Note(start + i * (length + gap), start + i * (length + gap) + length, p, 90)
                  for i, p in enumerate(pitches))
    return Part(40, False, notes)


def _wheel_cents(events, style: PartStyle, duration_s: float) -> np.ndarray:
    """The pitch wheel over time (cents, one value per control step) as the events set it."""
    steps = int(duration_s / CONTROL_STEP_S) + 1
    cents = np.zeros(steps)
    for event in sorted((e for e in events if e.kind == "bend"), key=lambda e: e.time_s):
        cents[int(round(event.time_s / CONTROL_STEP_S)):] = ((event.a - BEND_CENTRE) / BEND_STEPS
                                                             * style.bend_range * 100)
    return cents


@pytest.mark.parametrize("seed", range(6))
def test_the_same_seed_gives_the_same_performance(seed):
    part = _line([60, 62, 64, 65, 67, 69, 71, 72], length=0.5)
    one = perform(part, np.random.default_rng(seed), duration_s=6.0)
    two = perform(part, np.random.default_rng(seed), duration_s=6.0)
    assert one == two
    assert all(0.0 <= e.time_s <= 6.0 for e in one.events)
    assert all(0.0 <= n.start_s < n.end_s <= 6.0 for n in one.label_notes)


@pytest.mark.parametrize("seed", range(8))
def test_gestures_that_keep_the_key_stay_inside_a_semitone_and_keep_the_written_notes(seed):
    style = PartStyle(timing_sd_s=0.0, velocity_drift=0.0, detune_cents=12.0, vibrato_share=1.0, scoop_share=1.0,
                      fall_share=1.0, bend_range=int(np.random.default_rng(seed).choice([2, 5, 12])))
    part = _line([60, 64, 62, 67], length=0.8, gap=0.05)
    done = perform(part, np.random.default_rng(seed), duration_s=4.0, style=style)
    assert done.counts["vibrato"] == 4 and done.counts["scoop"] == 4 and done.counts["fall"] == 4
    cents = _wheel_cents(done.events, style, 4.0)
    assert np.abs(cents).max() <= MAX_INSIDE_CENTS + 0.5 and np.abs(cents).max() > 30
    assert [(n.start_s, n.end_s, n.pitch, n.velocity) for n in done.label_notes] == [
        (n.start_s, n.end_s, n.pitch, n.velocity) for n in part.notes]


@pytest.mark.parametrize("glide", ["wheel", "portamento"])
@pytest.mark.parametrize("seed", range(6))
def test_every_label_of_a_gliding_line_lies_inside_what_was_played(glide, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.uniform(0.08, 0.5, 16)
    starts = np.concatenate([[0.1], 0.1 + np.cumsum(lengths[:-1])])
    pitches = 60 + np.cumsum(rng.integers(-2, 3, 16))
    part = Part(81, False, tuple(Note(float(s), float(s + d), int(p), 90) for s, d, p in zip(starts, lengths, pitches)))
    style = PartStyle(**STEADY, slide_share=1.0, glide=glide, bend_range=2)
    done = perform(part, rng, duration_s=float(starts[-1] + lengths[-1] + 0.5), style=style)
    assert done.counts.get("bend", 0) + done.counts.get("portamento", 0) > 0
    for label in done.label_notes:  # inside a written note of its key, or half a glide (0.1 s at most) past it
        assert label.end_s - label.start_s >= 0.05 or label.start_s in {n.start_s for n in part.notes}
        assert any(n.pitch == label.pitch and n.start_s <= label.start_s and label.end_s <= n.end_s + 0.1 + 1e-9
                   for n in part.notes), label


def test_a_chord_gets_no_per_note_bends_and_keeps_its_keys():
    chord = Part(48, False, tuple(Note(0.1, 1.5, p, 80) for p in (60, 64, 67)))
    style = PartStyle(**STEADY, vibrato_share=1.0, scoop_share=1.0, fall_share=1.0, slide_share=1.0)
    done = perform(chord, np.random.default_rng(0), duration_s=2.0, style=style)
    assert not done.counts.get("vibrato") and not done.counts.get("scoop")
    assert sorted(n.pitch for n in done.label_notes) == [60, 64, 67]
    assert not np.abs(_wheel_cents(done.events, style, 2.0)).any()


def test_a_pedalled_piano_part_holds_released_keys_until_a_pedal_lift():
    part = Part(0, False, tuple(Note(0.2 + 0.4 * i, 0.4 + 0.4 * i, 60 + i, 80) for i in range(8)))
    style = PartStyle(**STEADY, pedal=True, expression="steady")
    done = perform(part, np.random.default_rng(3), duration_s=5.0, style=style)
    pedal = [(e.time_s, e.b) for e in done.events if e.kind == "cc" and e.a == CC_SUSTAIN]
    lifts = [t for t, value in pedal if value == 0]
    assert pedal and done.counts["pedal"] == len(lifts)
    for written, label in zip(part.notes, done.label_notes):
        assert label.pitch == written.pitch and label.start_s == written.start_s
        assert label.end_s == written.end_s or any(label.end_s == pytest.approx(t) for t in lifts)
    assert any(label.end_s > written.end_s for written, label in zip(part.notes, done.label_notes))


# --- the sound -------------------------------------------------------------------------------------------------------

def _pitch_track(audio: np.ndarray, around: float, *, window: int = 1024, hop: int = 160):
    """(centre times, fundamental as a fractional MIDI pitch) from the strongest spectral peak within 3 semitones
    of ``around``, refined by parabolic interpolation."""
    size = 8 * window
    freqs = np.fft.rfftfreq(size, 1 / SAMPLE_RATE)
    band = (freqs > pitch_to_hz(around - 3)) & (freqs < pitch_to_hz(around + 3))
    times, pitches = [], []
    for start in range(0, audio.size - window, hop):
        spectrum = np.abs(np.fft.rfft(audio[start:start + window] * np.hanning(window), size))
        index = int(np.flatnonzero(band)[np.argmax(spectrum[band])])
        a, b, c = np.log(spectrum[index - 1:index + 2] + 1e-12)
        offset = 0.5 * (a - c) / (a - 2 * b + c) if a - 2 * b + c else 0.0
        times.append((start + window / 2) / SAMPLE_RATE)
        pitches.append(69 + 12 * np.log2((index + offset) * SAMPLE_RATE / size / 440.0))
    return np.array(times), np.array(pitches)


def _render(part: Part, done, duration_s: float) -> np.ndarray:
    return render([part], duration_s, soundfont=default_soundfont(), performed=[list(done.events)])


def test_vibrato_sounds_around_the_written_key_and_is_labelled_as_it():
    part = Part(73, False, (Note(0.1, 2.6, 69, 100),))  # a flute's long A4
    style = PartStyle(**STEADY, vibrato_share=1.0)
    done = perform(part, np.random.default_rng(5), duration_s=3.0, style=style)
    times, pitch = _pitch_track(_render(part, done, 3.0), 69)
    held = (times > 0.3) & (times < 2.5)
    assert pitch[held].max() - pitch[held].min() > 0.15  # the vibrato is heard ...
    assert np.abs(pitch[held] - 69).max() < 0.6  # ... around A4
    assert [(n.pitch, n.start_s, n.end_s) for n in done.label_notes] == [(69, 0.1, 2.6)]


@pytest.mark.parametrize("glide, program", [("wheel", 81), ("portamento", 40)])
def test_a_slide_sounds_the_old_key_then_the_new_one_where_the_labels_put_them(glide, program):
    part = Part(program, False, (Note(0.2, 1.2, 69, 100), Note(1.2, 2.4, 72, 100)))
    style = PartStyle(**STEADY, slide_share=1.0, glide=glide, bend_range=5)
    done = perform(part, np.random.default_rng(1), duration_s=3.0, style=style)
    assert done.counts[{"wheel": "bend", "portamento": "portamento"}[glide]] == 1  # a lead bends
    old, new = done.label_notes
    assert (old.pitch, new.pitch) == (69, 72) and old.end_s < new.start_s and new.start_s > 1.2
    times, pitch = _pitch_track(_render(part, done, 3.0), 70.5, window=512, hop=80)
    half_window = 512 / 2 / SAMPLE_RATE
    in_old = (times > old.start_s + 0.2) & (times < old.end_s - half_window)
    in_new = (times > new.start_s + half_window) & (times < new.end_s - 0.1)
    assert in_old.sum() > 10 and in_new.sum() > 10
    assert np.abs(pitch[in_old] - 69).max() < 0.5  # the old key sounds wherever the labels say it does
    assert np.abs(pitch[in_new] - 72).max() < 0.5  # and the new one from its arrival
    gliding = (times > old.end_s + half_window) & (times < new.start_s - half_window)
    if gliding.any():
        assert (pitch[gliding] > 68.4).all() and (pitch[gliding] < 72.6).all()  # on the way, labelled neither
        assert pitch[gliding][-1] > pitch[gliding][0] + 0.5


def test_the_pedal_keeps_a_released_piano_note_ringing_as_its_label_says():
    part = Part(0, False, (Note(0.1, 0.4, 60, 100),))
    pedalled = perform(part, np.random.default_rng(0), duration_s=4.0,
                       style=PartStyle(**STEADY, pedal=True, expression="steady"))
    dry = perform(part, np.random.default_rng(0), duration_s=4.0, style=PartStyle(**STEADY, expression="steady"))
    (label,) = pedalled.label_notes
    assert label.end_s > 0.5
    def level(done, at):
        audio = _render(part, done, 4.0)
        start = int(at * SAMPLE_RATE)
        return float(np.sqrt(np.mean(audio[start:start + 1600] ** 2)))
    probe = (0.4 + label.end_s) / 2 + 0.1  # between the key's release and the pedal's lift
    assert level(pedalled, probe) > 4 * level(dry, probe)
