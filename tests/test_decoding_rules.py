"""The expression rules of decoding (hysteresis, re-strike evidence, semitone fragments, blips, mono) on hand-made
activations: pure NumPy, one rule at a time."""

import numpy as np
import pytest

from model.decoding import (FRAGMENT_GAP_FRAMES, MONO_SAME_ONSET_FRAMES, RESTRIKE_DIP_FRAMES, bridged, decode,
                            merged_fragments, monophonic)
from model.thresholds import DEFAULT_RULES, RULES_OFF
from pipeline.constants import FRAME_SECONDS, FRAMES_PER_SECOND, LOWEST_PITCH, N_KEYS
from pipeline.errors import Mp3MidiError

KEY = 48  # A4
N_FRAMES = 200


def heads(*notes: tuple[int, int, int], n_frames: int = N_FRAMES, onset: float = 1.0, frame: float = 0.9):
    """Activations with one clean note per (key, first frame, exclusive last frame): an onset peak on its first frame,
    the frame head ``frame`` over its span."""
    onsets, frames = np.zeros((n_frames, N_KEYS)), np.zeros((n_frames, N_KEYS))
    for key, first, last in notes:
        onsets[first, key] = onset
        frames[first:last, key] = frame
    return onsets, frames


def frames_of(note) -> tuple[int, int]:
    return round(note.start_s * FRAMES_PER_SECOND), round(note.end_s * FRAMES_PER_SECOND)


@pytest.mark.parametrize(("sounding", "gap_frames", "expected"), [
    ([1, 0, 1], 1, [1, 1, 1]),
    ([1, 0, 0, 1], 1, [1, 0, 0, 1]),
    ([1, 0, 0, 1], 2, [1, 1, 1, 1]),
    ([0, 0, 1, 1], 5, [0, 0, 1, 1]),  # before the first sounding frame: not a dip
    ([1, 1, 0, 0], 5, [1, 1, 0, 0]),  # after the last: the note has ended
    ([1, 0, 1, 0, 0, 0, 1], 2, [1, 1, 1, 0, 0, 0, 1]),
    ([0, 0, 0], 3, [0, 0, 0]),
    ([1, 0, 1], 0, [1, 0, 1]),
])
def test_bridged_fills_only_short_inner_dips(sounding, gap_frames, expected):
    assert bridged(np.array(sounding, bool), gap_frames).tolist() == [bool(v) for v in expected]


@pytest.mark.parametrize("dip_frames", [1, 3, 6, 10])
@pytest.mark.parametrize("gap_ms", [0.0, 50.0, 100.0, 150.0])
def test_a_short_dip_does_not_end_a_note(dip_frames, gap_ms):
    onsets, frames = heads((KEY, 10, 150))
    frames[80:80 + dip_frames, KEY] = 0.1
    notes = decode(onsets, frames, gap_ms=gap_ms)
    assert len(notes) == 1
    bridged_dip = dip_frames <= round(gap_ms / 1000 * FRAMES_PER_SECOND)
    assert frames_of(notes[0]) == (10, 150 if bridged_dip else 80)


@pytest.mark.parametrize("peak", [0.6, 0.85, 0.9, 0.95, 1.0])
@pytest.mark.parametrize("restrike_threshold", [None, 0.0, 0.9, 0.99])
def test_a_second_onset_on_a_key_that_kept_sounding_needs_the_restrike_threshold(peak, restrike_threshold):
    onsets, frames = heads((KEY, 10, 150))
    onsets[70, KEY] = peak
    notes = decode(onsets, frames, onset_threshold=0.5, restrike_threshold=restrike_threshold)
    restrikes = restrike_threshold is None or peak >= restrike_threshold
    assert [frames_of(n) for n in notes] == ([(10, 70), (70, 150)] if restrikes else [(10, 150)])


@pytest.mark.parametrize("dip_to_onset", range(0, RESTRIKE_DIP_FRAMES + 3))
def test_an_onset_right_after_a_dip_restrikes_at_the_plain_threshold(dip_to_onset):
    """A tongued repeat: the key stops sounding for two frames, bridged by hysteresis; a weak onset within
    RESTRIKE_DIP_FRAMES of the dip still starts a new note."""
    onsets, frames = heads((KEY, 10, 150))
    dip_end = 70 - dip_to_onset  # exclusive
    frames[dip_end - 2:dip_end, KEY] = 0.1
    onsets[70, KEY] = 0.6
    notes = decode(onsets, frames, onset_threshold=0.5, gap_ms=100.0, restrike_threshold=0.95)
    after_dip = dip_to_onset < RESTRIKE_DIP_FRAMES
    assert [frames_of(n) for n in notes] == ([(10, 70), (70, 150)] if after_dip else [(10, 150)])


@pytest.mark.parametrize("restrikes", [2, 4, 7])
def test_repeats_with_strong_onsets_stay_apart_under_every_rule(restrikes):
    starts = [10 + 25 * i for i in range(restrikes)]
    onsets, frames = heads(*[(KEY, s, s + 25) for s in starts])
    notes = decode(onsets, frames, **DEFAULT_RULES)
    assert [frames_of(n)[0] for n in notes] == starts


@pytest.mark.parametrize(("fragment", "fragment_ms", "merged"), [
    ((KEY + 1, 60, 66), 120.0, True),  # inside the long note, a semitone up (vibrato excursion)
    ((KEY - 1, 4, 10), 120.0, True),  # just before it, a semitone down (a scoop)
    ((KEY - 1, 10 - 6 - FRAGMENT_GAP_FRAMES, 10 - FRAGMENT_GAP_FRAMES), 120.0, False),  # just too far before
    ((KEY + 1, 60, 66), 0.0, False),  # rule off
    ((KEY + 1, 60, 66), 80.0, False),  # 6 frames = 96 ms, not shorter than 80 ms
    ((KEY + 2, 60, 66), 120.0, False),  # a whole tone away: another note
    ((KEY + 1, 170, 176), 120.0, False),  # after the long note ended, far from it
])
def test_fragments_a_semitone_from_a_long_note_merge_into_it(fragment, fragment_ms, merged):
    onsets, frames = heads((KEY, 10, 150), fragment)
    notes = decode(onsets, frames, fragment_ms=fragment_ms)
    keys = [n.pitch - LOWEST_PITCH for n in notes]
    if merged:
        assert keys == [KEY]
        assert frames_of(notes[0]) == (min(10, fragment[1]), 150)
    else:
        assert sorted(keys) == sorted([KEY, fragment[0]])


@pytest.mark.parametrize(("long_frames", "merged"), [(17, False), (18, True), (100, True)])
def test_a_fragment_merges_only_into_a_note_three_times_its_length(long_frames, merged):
    spans = [(10, 10 + long_frames, KEY), (12, 18, KEY + 1)]
    result = merged_fragments(spans, 8)
    assert len(result) == (1 if merged else 2)


def test_a_merged_note_is_never_stretched_over_the_next_note_on_its_key():
    spans = [(20, 80, KEY), (0, 15, KEY), (15, 20, KEY + 1)]  # the fragment lies between two notes on KEY
    result = sorted(merged_fragments(spans, 8))
    assert result == [(0, 15, KEY), (15, 80, KEY)]


@pytest.mark.parametrize(("run_frames", "min_sounding_ms", "kept"), [
    (1, 0.0, True), (1, 20.0, False), (2, 20.0, True), (2, 35.0, False), (3, 35.0, True), (3, 50.0, False),
    (4, 50.0, True),
])
def test_blips_shorter_than_min_sounding_are_dropped_not_lengthened(run_frames, min_sounding_ms, kept):
    onsets, frames = heads((KEY, 10, 10 + run_frames))
    notes = decode(onsets, frames, min_sounding_ms=min_sounding_ms, min_note_ms=50.0)
    assert len(notes) == int(kept)
    if kept:
        assert notes[0].end_s - notes[0].start_s == pytest.approx(max(0.05, run_frames * FRAME_SECONDS))


@pytest.mark.parametrize("ghost_strength", [0.3, 0.6, 0.85])
@pytest.mark.parametrize("offset_frames", range(MONO_SAME_ONSET_FRAMES))
def test_mono_keeps_the_stronger_of_two_notes_struck_together(ghost_strength, offset_frames):
    onsets, frames = heads((KEY, 10, 100))
    onsets[10 + offset_frames, KEY + 12] = 1.0
    frames[10 + offset_frames:100, KEY + 12] = ghost_strength
    assert len(decode(onsets, frames, frame_threshold=0.2)) == 2
    mono = decode(onsets, frames, frame_threshold=0.2, mono=True)
    assert [n.pitch - LOWEST_PITCH for n in mono] == [KEY]


@pytest.mark.parametrize("restruck_at", [30, 40, 60])
def test_mono_rivals_are_compared_while_both_sound_not_by_length(restruck_at):
    """A note re-struck soon after (a tongued repeat) is short; a weaker ghost an octave up struck with it lasts
    longer. Over the frames they share the played note is louder, so it stays (summed over each one's own span, the
    ghost won: a saxophone's first tongued note was lost that way)."""
    onsets, frames = heads((KEY, 10, restruck_at), (KEY, restruck_at, 100))
    onsets[10, KEY + 12], frames[10:100, KEY + 12] = 1.0, 0.5
    mono = decode(onsets, frames, frame_threshold=0.2, restrike_threshold=0.8, mono=True)
    assert [(n.pitch - LOWEST_PITCH, *frames_of(n)) for n in mono] == [(KEY, 10, restruck_at), (KEY, restruck_at, 100)]


@pytest.mark.parametrize(("new_strength", "takes_over"), [(0.5, False), (0.85, False), (0.95, True)])
def test_mono_a_later_note_takes_over_only_when_it_is_louder_than_the_sounding_one(new_strength, takes_over):
    onsets, frames = heads((KEY, 10, 120))  # frame head 0.9
    onsets[60, KEY + 3] = 1.0
    frames[60:150, KEY + 3] = new_strength
    notes = decode(onsets, frames, frame_threshold=0.2, mono=True)
    got = [(n.pitch - LOWEST_PITCH, *frames_of(n)) for n in notes]
    assert got == ([(KEY, 10, 60), (KEY + 3, 60, 150)] if takes_over else [(KEY, 10, 120)])


def test_mono_leaves_notes_one_after_another_alone():
    onsets, frames = heads((KEY, 10, 50), (KEY + 5, 50, 90), (KEY - 2, 95, 130))
    assert decode(onsets, frames, mono=True) == decode(onsets, frames)


@pytest.mark.parametrize("seed", range(4))
def test_mono_never_sounds_two_notes_at_once(seed):
    rng = np.random.default_rng(seed)
    onsets = (rng.random((300, N_KEYS)) > 0.995).astype(float)
    frames = rng.random((300, N_KEYS))
    notes = decode(onsets, frames, frame_threshold=0.2, mono=True, **DEFAULT_RULES)
    assert notes and all(a.end_s <= b.start_s + 1e-9 for a, b in zip(notes, notes[1:]))


def test_monophonic_on_spans_directly():
    frames = np.zeros((50, N_KEYS))
    frames[:, 1], frames[:, 2] = 0.5, 0.9
    assert monophonic([(0, 40, 1), (10, 30, 2)], frames) == [(0, 10, 1), (10, 30, 2)]


def test_rules_off_is_the_plain_decoder():
    rng = np.random.default_rng(7)
    onsets, frames = rng.random((300, N_KEYS)) ** 8, rng.random((300, N_KEYS))
    assert decode(onsets, frames, **RULES_OFF) == decode(onsets, frames)


@pytest.mark.parametrize(("knob", "value", "message"), [
    ("gap_ms", -5.0, "gap_ms must be a number from 0 to 1000; got -5.0"),
    ("gap_ms", "100", "gap_ms must be a number from 0 to 1000; got '100'"),
    ("fragment_ms", 5000.0, "fragment_ms must be a number from 0 to 1000; got 5000.0"),
    ("min_sounding_ms", float("nan"), "min_sounding_ms must be a number from 0 to 1000; got nan"),
    ("restrike_threshold", 1.5, "restrike_threshold must be a number from 0 to 1; got 1.5"),
    ("restrike_threshold", True, "restrike_threshold must be a number from 0 to 1; got True"),
    ("onset_threshold", -0.1, "onset_threshold must be a number from 0 to 1; got -0.1"),
    ("min_note_ms", -1, "min_note_ms must be a number from 0 to 10000; got -1"),
])
def test_bad_knobs_are_refused_with_what_was_given(knob, value, message):
    onsets, frames = heads((KEY, 10, 50))
    with pytest.raises(Mp3MidiError, match=message.replace("(", r"\(").replace(".", r"\.")):
        decode(onsets, frames, **{knob: value})


def test_knobs_are_keyword_only():
    onsets, frames = heads((KEY, 10, 50))
    with pytest.raises(TypeError):
        decode(onsets, frames, None, None, 0.5)
