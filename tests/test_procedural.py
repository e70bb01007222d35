"""The procedural generator: determinism, the limits every piece keeps, and coverage over many seeds."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest

from pipeline.constants import HIGHEST_PITCH, LOWEST_PITCH, MIDI_VELOCITY_MAX
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note, Score
from pipeline.procedural import (
    MAX_NOTE_S, MAX_POLYPHONY, MIN_NOTE_S, TEMPO_RANGE_BPM, TEXTURES, VELOCITY_MIN, generate_piece, plan_sections,
)

INVARIANT_SEEDS = range(30)
COVERAGE_SEEDS = range(200)
PIECE_S = 30.0


def polyphony_levels(notes: tuple[Note, ...]) -> set[int]:
    """Every count of simultaneously sounding notes held for some positive time (a note sounds over [start, end))."""
    events = sorted([(n.start_s, 1) for n in notes] + [(n.end_s, -1) for n in notes])  # ends sort before starts
    levels, count = set(), 0
    for (time, delta), following in zip(events, events[1:] + [(None, 0)]):
        count += delta
        if following[0] is not None and following[0] > time:
            levels.add(count)
    return levels


def silence_gaps(notes: tuple[Note, ...]) -> list[float]:
    """Lengths of the stretches between the first and last note where nothing sounds."""
    gaps, covered_until = [], None
    for note in sorted(notes, key=lambda n: n.start_s):
        if covered_until is not None and note.start_s > covered_until:
            gaps.append(note.start_s - covered_until)
        covered_until = note.end_s if covered_until is None else max(covered_until, note.end_s)
    return gaps


@pytest.fixture(scope="module")
def pieces() -> dict[int, Score]:
    return {seed: generate_piece(seed, duration_s=PIECE_S) for seed in COVERAGE_SEEDS}


@pytest.fixture(scope="module")
def all_notes(pieces: dict[int, Score]) -> list[Note]:
    return [note for score in pieces.values() for note in score.parts[0].notes]


# --- determinism ---------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", [0, 7, 123_456])
def test_same_seed_gives_the_same_piece(seed: int) -> None:
    assert generate_piece(seed) == generate_piece(seed)


@pytest.mark.parametrize("seed", [0, 7, 123_456])
def test_different_seeds_give_different_pieces(seed: int) -> None:
    assert generate_piece(seed) != generate_piece(seed + 1)


def test_global_random_state_is_neither_used_nor_disturbed() -> None:
    np.random.seed(1)
    before = np.random.random()
    np.random.seed(1)
    first = generate_piece(5)
    assert np.random.random() == before
    np.random.seed(99)
    assert generate_piece(5) == first


# --- limits every piece keeps ------------------------------------------------------------------------------------

@pytest.mark.parametrize("seed", INVARIANT_SEEDS)
def test_piece_keeps_its_limits(seed: int, pieces: dict[int, Score]) -> None:
    score = pieces[seed]
    assert len(score.parts) == 1
    part = score.parts[0]
    assert part.program == 0 and not part.is_drum
    assert part.notes, "a 30 s piece should hold notes"
    for note in part.notes:
        assert LOWEST_PITCH <= note.pitch <= HIGHEST_PITCH
        assert VELOCITY_MIN <= note.velocity <= MIDI_VELOCITY_MAX
        assert MIN_NOTE_S <= note.duration_s <= MAX_NOTE_S
        assert note.start_s >= 0
        assert isinstance(note.pitch, int) and isinstance(note.velocity, int)
    assert max(polyphony_levels(part.notes)) <= MAX_POLYPHONY
    assert score.duration_s == max(note.end_s for note in part.notes)
    assert score.duration_s <= PIECE_S


@pytest.mark.parametrize("seed", INVARIANT_SEEDS)
def test_no_key_sounds_twice_at_once(seed: int, pieces: dict[int, Score]) -> None:
    by_pitch = defaultdict(list)
    for note in pieces[seed].parts[0].notes:
        by_pitch[note.pitch].append(note)
    for same_pitch in by_pitch.values():
        same_pitch.sort(key=lambda n: n.start_s)
        for current, following in zip(same_pitch, same_pitch[1:]):
            assert current.end_s <= following.start_s


@pytest.mark.parametrize("duration_s", [0.5, 3.0, 7.25, 61.0])
def test_requested_duration_bounds_the_piece(duration_s: float) -> None:
    for seed in range(5):
        score = generate_piece(seed, duration_s=duration_s)
        notes = score.parts[0].notes
        assert score.duration_s <= duration_s
        assert score.duration_s == max((n.end_s for n in notes), default=0.0)


@pytest.mark.parametrize("duration_s", [0.0, -1.0, float("nan"), float("inf")])
def test_a_piece_needs_a_positive_duration(duration_s: float) -> None:
    with pytest.raises(Mp3MidiError, match="positive duration"):
        generate_piece(0, duration_s=duration_s)


# --- coverage over many seeds --------------------------------------------------------------------------------------

def test_every_key_is_played(all_notes: list[Note]) -> None:
    missing = set(range(LOWEST_PITCH, HIGHEST_PITCH + 1)) - {note.pitch for note in all_notes}
    assert not missing


def test_polyphony_spans_one_to_eight(pieces: dict[int, Score]) -> None:
    levels = set().union(*(polyphony_levels(score.parts[0].notes) for score in pieces.values()))
    assert set(range(1, MAX_POLYPHONY + 1)) <= levels


def test_velocities_span_quiet_to_loud(all_notes: list[Note]) -> None:
    velocities = [note.velocity for note in all_notes]
    assert min(velocities) <= 20
    assert max(velocities) >= 120


def test_lengths_span_short_to_long(all_notes: list[Note]) -> None:
    durations = [note.duration_s for note in all_notes]
    assert min(durations) <= 0.05
    assert max(durations) >= 3.0


def test_silences_occur(pieces: dict[int, Score]) -> None:
    assert max(max(silence_gaps(score.parts[0].notes), default=0.0) for score in pieces.values()) >= 0.5


def test_sections_cover_tempi_and_textures() -> None:
    sections = [s for seed in COVERAGE_SEEDS for s in plan_sections(np.random.default_rng(seed), duration_s=PIECE_S)]
    tempi = [section.tempo_bpm for section in sections]
    low, high = TEMPO_RANGE_BPM
    assert low <= min(tempi) <= low + 5
    assert high - 5 <= max(tempi) <= high
    assert {section.texture for section in sections} == set(TEXTURES)
    centres = [section.centre for section in sections]
    assert min(centres) == LOWEST_PITCH and max(centres) == HIGHEST_PITCH


def test_sections_tile_the_piece() -> None:
    sections = plan_sections(np.random.default_rng(3), duration_s=PIECE_S)
    assert sections[0].start_s == 0.0
    assert sections[-1].end_s == PIECE_S
    for current, following in zip(sections, sections[1:]):
        assert current.end_s == following.start_s


def test_plan_matches_the_generated_piece() -> None:
    """plan_sections draws first from the same generator, so a silent section really holds no notes."""
    seed = next(s for s in COVERAGE_SEEDS
                if any(sec.texture == "silence" and sec.length_s >= 0.5
                       for sec in plan_sections(np.random.default_rng(s), duration_s=PIECE_S)[1:-1]))
    notes = generate_piece(seed, duration_s=PIECE_S).parts[0].notes
    for section in plan_sections(np.random.default_rng(seed), duration_s=PIECE_S):
        inside = [n for n in notes if n.start_s < section.end_s and n.end_s > section.start_s]
        if section.texture == "silence":
            assert not inside
        for note in inside:
            assert section.start_s <= note.start_s and note.end_s <= section.end_s
