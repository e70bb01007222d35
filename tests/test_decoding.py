import numpy as np
import pytest

from model.decoding import DEFAULT_VELOCITY, OPENING_FRAMES, decode, onset_frames
from pipeline.constants import FRAME_SECONDS, FRAMES_PER_SECOND, LOWEST_PITCH, N_KEYS
from pipeline.errors import Mp3MidiError
from pipeline.labels import note_labels
from pipeline.notes import Note

N_FRAMES = 200  # 3.2 s

PIECES = {
    "melody": [Note(0.10 + 0.25 * i, 0.30 + 0.25 * i, 48 + (i * 5) % 17, 40 + 10 * i) for i in range(8)],
    "chords": [Note(0.2, 0.9, pitch, 90) for pitch in (48, 52, 55, 60)] + [Note(1.0, 1.6, p, 70) for p in (50, 53)],
    "repeated key": [Note(0.1, 0.5, 60, 100), Note(0.5, 0.7, 60, 30), Note(0.9, 1.2, 60, 64)],
    "piano edges": [Note(0.0, 0.4, LOWEST_PITCH, 20), Note(0.3, 0.8, LOWEST_PITCH + N_KEYS - 1, 127)],
    "off-grid times": [Note(0.123, 0.457, 64, 77), Note(1.011, 1.989, 71, 55)],
    "runs off the end": [Note(2.9, 5.0, 67, 88)],
}


def blurred(onset: np.ndarray) -> np.ndarray:
    """The onset head smeared over the frames either side of the true onset."""
    smeared = onset.astype(float).copy()
    smeared[1:] += 0.7 * onset[:-1]
    smeared[:-1] += 0.4 * onset[1:]
    return np.clip(smeared, 0, 1)


def noisy(roll: np.ndarray, seed: int) -> np.ndarray:
    """Active cells scaled down by up to 25% and silent cells raised to at most 0.25 (below both thresholds)."""
    noise = np.random.default_rng(seed).uniform(0, 0.25, roll.shape)
    return np.where(roll > 0, roll * (1 - noise), noise)


def late(frame: np.ndarray, onset: np.ndarray) -> np.ndarray:
    """The frame head silent at each onset frame, rising one frame late."""
    return frame * (1 - onset)


ACTIVATIONS = {
    "clean": lambda labels: dict(onsets=labels.onset, frames=labels.frame),
    "blurred and noisy": lambda labels: dict(onsets=noisy(blurred(labels.onset), 1), frames=noisy(labels.frame, 2)),
    "frame head late": lambda labels: dict(onsets=labels.onset, frames=late(labels.frame, labels.onset)),
    "with offsets": lambda labels: dict(onsets=labels.onset, frames=labels.frame, offsets=labels.offset),
    "onset plateau": lambda labels: dict(onsets=np.maximum(labels.onset, np.roll(labels.onset, 1, axis=0)),
                                         frames=labels.frame),
}


@pytest.mark.parametrize("piece", PIECES)
@pytest.mark.parametrize("activations", ACTIVATIONS)
def test_label_rolls_decode_back_to_their_notes(piece, activations):
    notes = PIECES[piece]
    labels = note_labels(notes, N_FRAMES)
    decoded = decode(**ACTIVATIONS[activations](labels), velocities=labels.velocity / 127)
    expected = sorted(notes, key=lambda n: (n.start_s, n.pitch))
    assert [n.pitch for n in decoded] == [n.pitch for n in expected]
    assert [n.velocity for n in decoded] == [n.velocity for n in expected]
    for got, want in zip(decoded, expected):
        assert got.start_s == pytest.approx(want.start_s, abs=FRAME_SECONDS)
        assert got.end_s == pytest.approx(min(want.end_s, N_FRAMES / FRAMES_PER_SECOND), abs=FRAME_SECONDS)


def one_key(onset: list[float], frame: list[float] | None = None, key: int = 39) -> dict[str, np.ndarray]:
    """Activations with ``onset`` (and ``frame``, default 1 after a silent opening: a key sounding from the
    recording's first frame starts a note there, see the opening test) on one key, silent elsewhere."""
    onsets, frames = np.zeros((len(onset), N_KEYS)), np.zeros((len(onset), N_KEYS))
    onsets[:, key] = onset
    frames[:, key] = 1.0 if frame is None else frame
    if frame is None:
        frames[:OPENING_FRAMES, key] = 0.0
    return dict(onsets=onsets, frames=frames)


@pytest.mark.parametrize(("profile", "peaks"), [
    ([0, 0.6, 0.9, 0.8, 0, 0], [2]),
    ([0, 1, 1, 1, 0, 0], [1]),  # a plateau: its first frame
    ([0, 0.9, 0.7, 0.95, 0.6, 0], [3]),  # a wobble that stays above the threshold is one onset
    ([0.55, 0.6, 0.7, 0.8, 0.9, 1.0], [5]),  # rising to the last frame
    ([0.9, 0.2, 0.9, 0.2, 0, 0], [0, 2]),  # one frame below the threshold separates two onsets
    ([0.4, 0.45, 0.49, 0, 0, 0], []),
])
def test_onset_peak_picking(profile, peaks):
    assert onset_frames(np.array(profile), 0.5).tolist() == peaks
    assert [round(n.start_s * FRAMES_PER_SECOND) for n in decode(**one_key(profile), min_note_ms=0)] == peaks


def test_onset_high_for_three_frames_is_one_note():
    notes = decode(**one_key([0] * 5 + [0.8, 0.9, 0.85] + [0] * 22))
    assert len(notes) == 1 and notes[0].start_s == 6 / FRAMES_PER_SECOND and notes[0].end_s == 30 / FRAMES_PER_SECOND


def test_a_repeated_note_splits_at_the_second_onset():
    onset = [0.0] * 60
    onset[10] = onset[30] = 1.0
    first, second = decode(**one_key(onset, [0] * 10 + [1] * 40 + [0] * 10))
    assert (first.start_s, first.end_s) == (10 / FRAMES_PER_SECOND, 30 / FRAMES_PER_SECOND)
    assert (second.start_s, second.end_s) == (30 / FRAMES_PER_SECOND, 50 / FRAMES_PER_SECOND)
    assert first.pitch == second.pitch == 39 + LOWEST_PITCH


@pytest.mark.parametrize(("onset_threshold", "n_notes"), [(0.3, 1), (0.69, 1), (0.7, 1), (0.71, 0), (0.99, 0)])
def test_onset_threshold(onset_threshold, n_notes):
    onset = [0.0] * 20
    onset[5] = 0.7
    assert len(decode(**one_key(onset), onset_threshold=onset_threshold)) == n_notes


@pytest.mark.parametrize(("frame_threshold", "end_frame"), [(0.3, 40), (0.4, 40), (0.41, 11)])
def test_frame_threshold_sets_the_end(frame_threshold, end_frame):
    onset, frame = [0.0] * 50, [0.0] * 10 + [0.4] * 30 + [0.0] * 10
    onset[10] = 1.0
    (note,) = decode(**one_key(onset, frame), frame_threshold=frame_threshold, min_note_ms=0)
    assert note.end_s == end_frame / FRAMES_PER_SECOND


def test_offsets_end_a_note_but_not_at_its_onset_frame():
    activations = one_key([0] * 10 + [1] + [0] * 39, [0] * 10 + [1] * 40)
    activations["offsets"] = np.zeros_like(activations["onsets"])
    activations["offsets"][[10, 25], 39] = 0.9
    (note,) = decode(**activations)
    assert (note.start_s, note.end_s) == (10 / FRAMES_PER_SECOND, 25 / FRAMES_PER_SECOND)


def test_frame_activity_with_no_onset_makes_no_note():
    assert decode(**one_key([0.0] * 30, [0.0] + [1.0] * 29)) == []  # (from the very first frame: the opening rule)


@pytest.mark.parametrize("min_note_ms", [0.0, 10.0, 50.0, 100.0, 250.0])
def test_short_notes_are_lengthened_to_the_minimum(min_note_ms):
    onset, frame = [0.0] * 40, [0.0] * 40
    onset[5] = frame[5] = 1.0  # one frame of sound
    (note,) = decode(**one_key(onset, frame), min_note_ms=min_note_ms)
    assert note.duration_s == pytest.approx(max(FRAME_SECONDS, min_note_ms / 1000))


def test_lengthening_stops_at_the_next_onset_on_the_key():
    onset = [0.0] * 40
    onset[5] = onset[7] = 1.0
    first, second = decode(**one_key(onset, [0] * 5 + [1, 0, 1] + [0] * 32), min_note_ms=100)
    assert first.end_s == second.start_s == 7 / FRAMES_PER_SECOND
    assert second.duration_s == pytest.approx(0.1)


def test_long_notes_are_left_alone_by_the_minimum():
    onset = [0.0] * 60
    onset[5] = 1.0
    (note,) = decode(**one_key(onset, [0] * 5 + [1] * 30 + [0] * 25), min_note_ms=100)
    assert note.end_s == 35 / FRAMES_PER_SECOND


@pytest.mark.parametrize(("predicted", "velocity"), [(None, DEFAULT_VELOCITY), (100 / 127, 100), (1.0, 127),
                                                     (0.5, 64), (0.0, 1), (1.3, 127), (-0.2, 1)])
def test_velocity_is_read_at_the_onset_frame(predicted, velocity):
    activations = one_key([0, 0, 1, 0, 0, 0, 0, 0])
    if predicted is not None:
        activations["velocities"] = np.full_like(activations["onsets"], 0.9)
        activations["velocities"][2, 39] = predicted
    assert decode(**activations)[0].velocity == velocity


@pytest.mark.parametrize("frame_offset", [0, 1, 625, 10_000])
def test_frame_offset_shifts_every_time(frame_offset):
    labels = note_labels(PIECES["melody"], N_FRAMES)
    plain = decode(labels.onset, labels.frame)
    shifted = decode(labels.onset, labels.frame, frame_offset=frame_offset)
    shift = frame_offset / FRAMES_PER_SECOND
    assert [n.pitch for n in plain] == [n.pitch for n in shifted]
    assert np.allclose([(n.start_s + shift, n.end_s + shift) for n in plain], [(n.start_s, n.end_s) for n in shifted])


@pytest.mark.parametrize("seed", range(5))
def test_random_activations_give_well_formed_notes(seed):
    rng = np.random.default_rng(seed)
    onsets, frames, offsets, velocities = rng.random((4, 150, N_KEYS))
    notes = decode(onsets, frames, offsets=offsets, velocities=velocities, min_note_ms=80)
    assert notes and notes == sorted(notes, key=lambda n: (n.start_s, n.pitch))
    assert all(n.end_s > n.start_s and 1 <= n.velocity <= 127 and n.in_piano_range for n in notes)
    for pitch in {n.pitch for n in notes}:
        same = [n for n in notes if n.pitch == pitch]
        assert all(a.end_s <= b.start_s for a, b in zip(same, same[1:]))


def test_no_frames_no_notes():
    assert decode(np.zeros((0, N_KEYS)), np.zeros((0, N_KEYS))) == []


@pytest.mark.parametrize(("arrays", "message"), [
    (dict(onsets=np.zeros((10, 87)), frames=np.zeros((10, 87))), r"onsets \(10, 87\), frames \(10, 87\)"),
    (dict(onsets=np.zeros((10, 88)), frames=np.zeros((11, 88))), r"onsets \(10, 88\), frames \(11, 88\)"),
    (dict(onsets=np.zeros(88), frames=np.zeros(88)), r"onsets \(88,\)"),
    (dict(onsets=np.zeros((1, 10, 88)), frames=np.zeros((1, 10, 88))), r"onsets \(1, 10, 88\)"),
    (dict(onsets=np.zeros((10, 88)), frames=np.zeros((10, 88)), velocities=np.zeros((9, 88))),
     r"velocities \(9, 88\)"),
    (dict(onsets=np.zeros((10, 88)), frames=np.zeros((10, 88)), offsets=np.zeros((10, 88, 1))),
     r"offsets \(10, 88, 1\)"),
])
def test_bad_shapes_are_refused(arrays, message):
    with pytest.raises(Mp3MidiError, match=r"\[frames, 88\].*" + message):
        decode(**arrays)


@pytest.mark.parametrize(("first_sounding", "onset_at", "frame_offset", "expected_start"), [
    (0, None, 0, 0),  # sounding from the first frame, no onset anywhere near: a note from 0 s
    (0, 1, 0, 1),  # an onset in the opening: that onset starts the note, as always
    (0, 40, 0, 0),  # an onset much later on the sounding key: the opening note, then that one
    (1, None, 0, None),  # silent on the first frame: frame activity without an onset is no note
    (0, None, 625, None),  # a window inside a longer file: its first frame is not the recording's start
])
def test_a_key_sounding_when_the_recording_begins_starts_a_note(first_sounding, onset_at, frame_offset,
                                                                expected_start):
    onsets, frames = np.zeros((N_FRAMES, N_KEYS)), np.zeros((N_FRAMES, N_KEYS))
    frames[first_sounding:80, 20] = 0.9
    if onset_at is not None:
        onsets[onset_at, 20] = 0.9
    notes = decode(onsets, frames, frame_offset=frame_offset)
    starts = [round(n.start_s * FRAMES_PER_SECOND) - frame_offset for n in notes]
    assert starts[:1] == ([] if expected_start is None else [expected_start])
    assert all(n.pitch == LOWEST_PITCH + 20 for n in notes)
    if onset_at == 40:
        assert starts == [0, 40]
