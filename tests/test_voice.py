"""The singing voice (pipeline.voice): seeded, each sung note at its written key under vibrato, scoops and drift,
onsets where the labels put them, a monophonic line from a score."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note
from pipeline.voice import RANGES, Singer, sing, sung_line
from tests.spectra import onset_s, pitch_track, sounding_key

ONSET_TOLERANCE_S = 0.04  # pitched sound reaches -20 dB of its peak within this of the label's onset
SCOOP_SETTLED_S = 0.2  # a scoop is over by then (drawn up to 0.15 s, times 1.3 at most)


def expressive_singer(seed: int, **changes) -> Singer:
    """A drawn singer pushed to the edges: deep late vibrato, scoops and consonants on every note, drift."""
    singer = Singer.draw(np.random.default_rng(seed))
    return dataclasses.replace(singer, **{"vibrato_cents": 50.0, "vibrato_hz": 5.5, "vibrato_delay": 0.3,
                                          "scoop_probability": 1.0, "consonant_probability": 1.0,
                                          "intonation_cents": 10.0, "drift_cents": 15.0, **changes})


def phrase(pitches: list[int], *, length_s: float = 1.0, gap_s: float = 0.3) -> list[Note]:
    return [Note(0.3 + i * (length_s + gap_s), 0.3 + i * (length_s + gap_s) + length_s, pitch, 90)
            for i, pitch in enumerate(pitches)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_same_seed_sings_the_same(seed: int):
    line = phrase([57, 60, 64])
    first, record = sing(line, 4.5, singer=Singer.draw(np.random.default_rng(seed)), rng=np.random.default_rng(seed))
    again, _ = sing(line, 4.5, singer=Singer.draw(np.random.default_rng(seed)), rng=np.random.default_rng(seed))
    other, _ = sing(line, 4.5, singer=Singer.draw(np.random.default_rng(seed + 1)), rng=np.random.default_rng(seed + 1))
    assert np.array_equal(first, again) and not np.allclose(first, other)
    json.dumps({"singer": Singer.draw(np.random.default_rng(seed)).record(), **record})
    assert [note["pitch"] for note in record["notes"]] == [57, 60, 64]


@pytest.mark.parametrize("voice", list(RANGES))
@pytest.mark.parametrize("seed", [4, 5])
def test_each_sung_note_sounds_at_its_written_key_with_vibrato(voice: str, seed: int):
    low, high = RANGES[voice]
    pitches = [low + 2, (low + high) // 2, high - 3, (low + high) // 2 + 1]
    line = phrase(pitches)
    audio, record = sing(line, 6.0, singer=expressive_singer(seed, voice=voice), rng=np.random.default_rng(seed))
    for note, done in zip(line, record["notes"]):
        assert done["vibrato_cents"] >= 30.0
        assert sounding_key(audio, note.start_s + SCOOP_SETTLED_S, note.end_s, note.pitch) == note.pitch, note


@pytest.mark.parametrize("seed", [6, 7, 8])
def test_the_pitch_wobbles_around_the_key_and_stays_inside_a_semitone(seed: int):
    """Frame by frame (128 ms frames, which halve a 5.5 Hz vibrato's swing) the pitch moves, and stays near the key."""
    line = phrase([69, 64], length_s=1.6)
    audio, _ = sing(line, 4.0, singer=expressive_singer(seed, voice="soprano"), rng=np.random.default_rng(seed))
    for note in line:
        track = pitch_track(audio, note.start_s + 0.75, note.end_s, note.pitch)  # vibrato has arrived by then
        assert np.ptp(track) > 15.0, track
        assert np.all(np.abs(track) < 90.0) and abs(float(np.median(track))) < 40.0, track


@pytest.mark.parametrize("seed", [9, 10, 11])
def test_pitched_onsets_lie_where_the_labels_put_them_despite_consonants(seed: int):
    line = phrase([55, 60, 58, 62], length_s=0.6, gap_s=0.5)
    audio, record = sing(line, 5.0, singer=expressive_singer(seed, voice="tenor"), rng=np.random.default_rng(seed))
    assert any(done["consonant"] for done in record["notes"])
    for note in line:
        found = onset_s(audio, note.start_s - 0.25, note.end_s, pitch=note.pitch)
        assert abs(found - note.start_s) <= ONSET_TOLERANCE_S, (note, found)


@pytest.mark.parametrize("peak_db", [-12.0, -1.0])
def test_levels_are_in_range_without_nan_or_clipping(peak_db: float):
    line = phrase([60, 62, 64, 65, 67], length_s=0.4, gap_s=0.0)  # legato: glides between touching notes
    audio, record = sing(line, 2.5, singer=Singer.draw(np.random.default_rng(12)), rng=np.random.default_rng(12),
                         peak_db=peak_db, noise_snr_db=35.0)
    assert audio.dtype == np.float32 and np.isfinite(audio).all()
    assert 10 ** ((peak_db - 0.5) / 20) < float(np.abs(audio).max()) < min(1.0, 10 ** ((peak_db + 0.5) / 20))
    assert [done["legato"] for done in record["notes"]] == [False, True, True, True, True]
    sung = audio[int(0.4 * SAMPLE_RATE):int(2.2 * SAMPLE_RATE)]
    assert np.sqrt(np.mean(sung**2)) > 0.05 * float(np.abs(audio).max())


def test_the_line_is_the_top_voice_one_note_at_a_time():
    singer = dataclasses.replace(Singer.draw(np.random.default_rng(0)), voice="soprano")  # the line fits: no move
    notes = [Note(0.0, 1.0, 60, 80), Note(0.0, 1.0, 64, 80), Note(0.0, 1.0, 67, 80),  # a chord: its top
             Note(0.5, 0.9, 62, 80),  # enters under the held top note: left out
             Note(1.0, 2.0, 65, 80), Note(1.5, 2.5, 69, 80),  # a higher note cuts the held one
             Note(2.6, 2.61, 70, 80)]  # too short to sing
    line = sung_line(notes, singer)
    assert [(n.start_s, n.end_s, n.pitch) for n in line] == [(0.0, 1.0, 67), (1.0, 1.5, 65), (1.5, 2.5, 69)]


@pytest.mark.parametrize("voice", list(RANGES))
def test_the_line_moves_by_octaves_into_the_singers_range(voice: str):
    singer = dataclasses.replace(Singer.draw(np.random.default_rng(0)), voice=voice)
    notes = [Note(i * 0.5, i * 0.5 + 0.4, pitch, 80) for i, pitch in enumerate([21, 40, 60, 84, 100, 108])]
    line = sung_line(notes, singer)
    low, high = RANGES[voice]
    assert len(line) == len(notes)
    assert all(low <= n.pitch <= high and (n.pitch - m.pitch) % 12 == 0 for n, m in zip(line, notes))


def test_overlapping_or_empty_lines_are_refused():
    singer = Singer.draw(np.random.default_rng(0))
    with pytest.raises(Mp3MidiError, match=r"must be monophonic; notes at 0.000 s and 0.500 s overlap"):
        sing([Note(0.0, 1.0, 60, 80), Note(0.5, 1.5, 62, 80)], 2.0, singer=singer, rng=np.random.default_rng(0))
    with pytest.raises(Mp3MidiError, match=r"nothing to sing"):
        sing([], 2.0, singer=singer, rng=np.random.default_rng(0))
