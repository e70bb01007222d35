"""Procedural instruments (pipeline.synth): seeded, on the written key, onsets where the labels put them, in level."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline.constants import SAMPLE_RATE, pitch_to_hz
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note, Part
from pipeline.synth import MODELS, PARTIAL_LIMIT_HZ, Timbre, render_synth
from tests.spectra import mean_cents, onset_s, sounding_key

ONSET_TOLERANCE_S = 0.03  # the sound reaches -20 dB of its peak within this of the label's onset
KEY_TOLERANCE_CENTS = 25.0  # detune is drawn within +-10 cents; the FFT's weighting adds a little


def isolated_notes(pitches: list[int], *, length_s: float = 0.5, gap_s: float = 0.4) -> tuple[Note, ...]:
    return tuple(Note(0.2 + i * (length_s + gap_s), 0.2 + i * (length_s + gap_s) + length_s, pitch, 100)
                 for i, pitch in enumerate(pitches))


def one_part(notes) -> list[Part]:
    return [Part(0, False, tuple(notes))]


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_seed_gives_the_same_instrument_and_audio(model: str, seed: int):
    notes = isolated_notes([48, 64, 76])
    first = render_synth(one_part(notes), 3.0, timbres=[Timbre.draw(np.random.default_rng(seed), model=model)],
                         rng=np.random.default_rng(seed))
    again = render_synth(one_part(notes), 3.0, timbres=[Timbre.draw(np.random.default_rng(seed), model=model)],
                         rng=np.random.default_rng(seed))
    other = render_synth(one_part(notes), 3.0, timbres=[Timbre.draw(np.random.default_rng(seed + 100), model=model)],
                         rng=np.random.default_rng(seed + 100))
    assert np.array_equal(first, again)
    assert not np.allclose(first, other)
    json.dumps(Timbre.draw(np.random.default_rng(seed), model=model).record())  # the catalog's record is JSON


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", [4, 5, 6, 7])
def test_each_note_sounds_at_its_written_key(model: str, seed: int):
    pitches = [33, 45, 57, 64, 69, 76, 88, 100]
    notes = isolated_notes(pitches)
    timbre = Timbre.draw(np.random.default_rng(seed), model=model)
    audio = render_synth(one_part(notes), notes[-1].end_s + 0.5, timbres=[timbre], rng=np.random.default_rng(seed))
    for note in notes:
        settle = 0.05 + min(timbre.attack_s * 1.25, 0.2)  # past the attack (and a breath model's chiff)
        assert sounding_key(audio, note.start_s + settle, note.end_s, note.pitch) == note.pitch, note
        assert abs(mean_cents(audio, note.start_s + settle, note.end_s, note.pitch)) < KEY_TOLERANCE_CENTS, note


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("seed", [8, 9])
def test_onsets_lie_where_the_labels_put_them(model: str, seed: int):
    notes = isolated_notes([50, 62, 71, 55], length_s=0.4, gap_s=0.8)  # releases end within 0.6 s
    timbre = Timbre.draw(np.random.default_rng(seed), model=model)
    audio = render_synth(one_part(notes), notes[-1].end_s + 0.7, timbres=[timbre], rng=np.random.default_rng(seed))
    for note in notes:
        found = onset_s(audio, note.start_s - 0.15, note.end_s)
        assert abs(found - note.start_s) <= ONSET_TOLERANCE_S, (note, found)


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("peak_db", [-16.0, -6.0, -1.0])
def test_levels_are_in_range_without_nan_or_clipping(model: str, peak_db: float):
    rng = np.random.default_rng(int(-peak_db))
    chord = tuple(Note(0.1, 1.5, pitch, 127) for pitch in (36, 43, 48, 52, 55, 60, 64, 67))
    audio = render_synth(one_part(chord), 2.0, timbres=[Timbre.draw(rng, model=model)], rng=rng, peak_db=peak_db,
                         noise_snr_db=30.0)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    peak = float(np.abs(audio).max())
    assert 10 ** ((peak_db - 0.5) / 20) < peak < min(1.0, 10 ** ((peak_db + 0.5) / 20))
    assert np.sqrt(np.mean(audio[int(0.2 * SAMPLE_RATE):int(1.4 * SAMPLE_RATE)] ** 2)) > peak * 0.02


@pytest.mark.parametrize("model", ["additive", "plucked", "breath"])
def test_no_partial_is_written_above_the_limit(model: str):
    """A high note keeps its partials below PARTIAL_LIMIT_HZ: nothing folds back under Nyquist as a false pitch."""
    rng = np.random.default_rng(11)
    audio = render_synth(one_part([Note(0.1, 1.1, 96, 110)]), 1.2, timbres=[Timbre.draw(rng, model=model)], rng=rng)
    segment = audio[int(0.2 * SAMPLE_RATE):int(1.0 * SAMPLE_RATE)]
    power = np.abs(np.fft.rfft(segment * np.hanning(len(segment)))) ** 2
    freqs = np.fft.rfftfreq(int(0.8 * SAMPLE_RATE), 1.0 / SAMPLE_RATE)
    above = power[freqs > PARTIAL_LIMIT_HZ + 100].sum()
    below_key = power[(freqs > 50) & (freqs < pitch_to_hz(95))].sum()
    assert above < 1e-4 * power.sum() and below_key < 1e-3 * power.sum()


def test_a_plucked_string_decays_and_a_breath_swells():
    note = Note(0.1, 2.1, 57, 100)
    plucked = render_synth(one_part([note]), 2.2, timbres=[Timbre.draw(np.random.default_rng(3), model="plucked")],
                           rng=np.random.default_rng(3))
    breath = Timbre.draw(np.random.default_rng(3), model="breath")
    blown = render_synth(one_part([note]), 2.2, timbres=[breath], rng=np.random.default_rng(3))

    def rms(audio, start, end):
        return float(np.sqrt(np.mean(audio[int(start * SAMPLE_RATE):int(end * SAMPLE_RATE)] ** 2)))

    assert rms(plucked, 0.1, 0.3) > 2 * rms(plucked, 1.8, 2.0)
    assert rms(blown, 0.1, 0.1 + breath.attack_s / 4) < rms(blown, 0.5, 0.7)


def test_a_timbre_per_pitched_part_is_required():
    with pytest.raises(Mp3MidiError, match=r"1 timbres for 2 pitched parts"):
        render_synth([Part(0, False, ()), Part(1, False, ())], 1.0,
                     timbres=[Timbre.draw(np.random.default_rng(0))], rng=np.random.default_rng(0))
    with pytest.raises(Mp3MidiError, match=r"unknown synthesis model 'organ'"):
        Timbre.draw(np.random.default_rng(0), model="organ")
    with pytest.raises(Mp3MidiError, match=r"silent render"):
        render_synth(one_part([]), 1.0, timbres=[Timbre.draw(np.random.default_rng(0))], rng=np.random.default_rng(0))


@pytest.mark.parametrize("model", ["additive", "breath"])
def test_a_phase_that_rounds_up_to_a_whole_cycle_reads_the_table_start(model: str):
    # Key 56 two cents flat: at 2.497 s the fundamental's phase is so close to a whole cycle that float32 makes it 1.0
    # (found in a factory item that failed with "index 4096 is out of bounds").
    timbre = dataclasses.replace(Timbre.draw(np.random.default_rng(3), model=model), detune_cents=-2.0)
    audio = render_synth(one_part([Note(0.0, 3.0, 56, 100)]), 3.5, timbres=[timbre], rng=np.random.default_rng(3))
    assert np.isfinite(audio).all()
    assert sounding_key(audio, 2.2, 2.8, 56) == 56
