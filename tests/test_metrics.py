import dataclasses
import warnings

import numpy as np
import pytest

from model.decoding import decode
from model.metrics import Scores, mean_scores, score_notes
from pipeline.constants import FRAMES_PER_SECOND
from pipeline.errors import Mp3MidiError
from pipeline.labels import note_labels
from pipeline.notes import Note

# Eight notes, each 0.3 s (a whole number of frames) and alone on its pitch, so every frame count below is exact.
REFERENCE = [Note(0.16 + 0.4 * i, 0.46 + 0.4 * i, 48 + 3 * i, 40 + 10 * i) for i in range(8)]
NOTE_METRICS = ("onset_precision", "onset_recall", "onset_f1", "offset_precision", "offset_recall", "offset_f1",
                "velocity_f1")
ALL_METRICS = NOTE_METRICS + ("frame_precision", "frame_recall", "frame_f1")


def shifted(notes, seconds=0.0, *, semitones=0, end_seconds=None, velocity=None):
    end_shift = seconds if end_seconds is None else end_seconds
    return [Note(n.start_s + seconds, n.end_s + end_shift, n.pitch + semitones,
                 n.velocity if velocity is None else velocity(n.velocity)) for n in notes]


def test_a_perfect_transcription_scores_one_everywhere():
    scores = score_notes(REFERENCE, list(reversed(REFERENCE)))
    assert all(getattr(scores, name) == 1.0 for name in ALL_METRICS)
    assert (scores.n_reference, scores.n_estimated) == (8, 8)


@pytest.mark.parametrize(("seconds", "onset_f1"), [(0.03, 1.0), (-0.03, 1.0), (0.048, 1.0), (0.1, 0.0),
                                                   (-0.1, 0.0), (0.5, 0.0)])
def test_onsets_match_within_50_ms(seconds, onset_f1):
    assert score_notes(REFERENCE, shifted(REFERENCE, seconds)).onset_f1 == onset_f1


@pytest.mark.parametrize(("semitones", "onset_f1"), [(0, 1.0), (1, 0.0), (-1, 0.0), (12, 0.0)])
def test_pitch_must_match(semitones, onset_f1):
    scores = score_notes(REFERENCE, shifted(REFERENCE, semitones=semitones))
    assert scores.onset_f1 == scores.offset_f1 == scores.frame_f1 == onset_f1


@pytest.mark.parametrize(("end_seconds", "offset_f1"), [(0.0, 1.0), (0.055, 1.0), (-0.055, 1.0), (0.07, 0.0),
                                                        (-0.07, 0.0), (0.2, 0.0)])
def test_offsets_match_within_a_fifth_of_the_note(end_seconds, offset_f1):
    scores = score_notes(REFERENCE, shifted(REFERENCE, end_seconds=end_seconds))
    assert scores.onset_f1 == 1.0 and scores.offset_f1 == offset_f1  # 20% of 0.3 s is 60 ms, more than the 50 ms floor


def test_half_the_notes_missing_halves_recall_only():
    scores = score_notes(REFERENCE, REFERENCE[::2])
    assert scores.onset_recall == scores.offset_recall == scores.frame_recall == 0.5
    assert scores.onset_precision == scores.offset_precision == scores.frame_precision == 1.0
    assert scores.onset_f1 == pytest.approx(2 / 3) and scores.frame_f1 == pytest.approx(2 / 3)


def test_extra_notes_halve_precision_only():
    scores = score_notes(REFERENCE, REFERENCE + shifted(REFERENCE, semitones=1))
    assert scores.onset_precision == scores.frame_precision == 0.5
    assert scores.onset_recall == scores.frame_recall == 1.0
    assert scores.n_estimated == 16


def test_frame_scores_count_cells():
    estimate = shifted(REFERENCE, end_seconds=-0.16)  # every note ends 160 ms early
    scores = score_notes(REFERENCE, estimate)
    ref_cells = note_labels(REFERENCE, 300).frame.sum()
    est_cells = note_labels(estimate, 300).frame.sum()
    assert scores.frame_precision == 1.0 and scores.frame_recall == pytest.approx(est_cells / ref_cells)


@pytest.mark.parametrize(("velocity", "velocity_f1"), [
    (lambda v: v, 1.0),
    (lambda v: v // 2 + 20, 1.0),  # mir_eval rescales the estimate's velocities linearly before comparing
    (lambda v: 170 - v, 1.0),  # ... with any slope, even a negative one: reversed loudness still scores 1.0
])
def test_velocity_f1(velocity, velocity_f1):
    scores = score_notes(REFERENCE, shifted(REFERENCE, velocity=velocity))
    assert scores.onset_f1 == 1.0
    assert scores.velocity_f1 == pytest.approx(velocity_f1)


def test_velocity_f1_falls_when_velocities_are_scrambled():
    scrambled = [dataclasses.replace(n, velocity=v) for n, v in zip(REFERENCE, [120, 20, 90, 30, 100, 50, 10, 70])]
    scores = score_notes(REFERENCE, scrambled)
    assert scores.onset_f1 == 1.0 and scores.velocity_f1 < 0.5


@pytest.mark.parametrize(("reference", "estimated", "value"), [([], [], 1.0), (REFERENCE, [], 0.0),
                                                               ([], REFERENCE, 0.0)])
def test_empty_sides(reference, estimated, value):
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # mir_eval warns about empty lists; we never hand it one
        scores = score_notes(reference, estimated)
    assert all(getattr(scores, name) == value for name in ALL_METRICS)
    assert (scores.n_reference, scores.n_estimated) == (len(reference), len(estimated))


@pytest.mark.parametrize("notes", [
    [Note(0.5, 0.5, 60, 80)],  # no length
    [Note(0.5, 0.4, 60, 80)],  # ends before it starts
    [Note(-0.02, 0.3, 60, 80)],  # starts before zero
    [Note(0.5, 0.5, 60, 0)],  # velocity 0
    [Note(0.5, 0.8, 10, 80)],  # below the piano
])
def test_notes_mir_eval_would_refuse_are_scored(notes):
    scores = score_notes(notes, notes)
    assert scores.onset_f1 == scores.offset_f1 == 1.0


@pytest.mark.parametrize(("duration_s", "frame_recall"), [(None, 1.0), (10.0, 1.0), (0.0, 1.0), (1.0, 1.0)])
def test_duration_sets_the_frames_scored(duration_s, frame_recall):
    assert score_notes(REFERENCE, REFERENCE, duration_s=duration_s).frame_recall == frame_recall


def test_a_short_duration_scores_only_its_frames():
    estimate = REFERENCE[:2]  # the notes within the first second
    assert score_notes(REFERENCE, estimate, duration_s=0.95).frame_f1 == 1.0
    assert score_notes(REFERENCE, estimate).frame_f1 < 1.0


def test_a_negative_duration_is_refused():
    with pytest.raises(Mp3MidiError, match="duration of at least 0 s; got -1.0"):
        score_notes(REFERENCE, REFERENCE, duration_s=-1.0)


def test_decoded_labels_score_perfectly():
    labels = note_labels(REFERENCE, round(4 * FRAMES_PER_SECOND))
    decoded = decode(labels.onset, labels.frame, velocities=labels.velocity / 127)
    scores = score_notes(REFERENCE, decoded)
    assert all(getattr(scores, name) == 1.0 for name in ALL_METRICS)


def make_scores(value: float, n: int) -> Scores:
    return Scores(*[value] * len(ALL_METRICS), n_reference=n, n_estimated=2 * n)


@pytest.mark.parametrize(("values", "mean"), [([1.0], 1.0), ([1.0, 0.0], 0.5), ([0.2, 0.4, 0.9], 0.5)])
def test_mean_scores_is_a_macro_average(values, mean):
    averaged = mean_scores([make_scores(value, n) for n, value in enumerate(values, start=1)])
    assert all(getattr(averaged, name) == pytest.approx(mean) for name in ALL_METRICS)
    n = len(values)
    assert (averaged.n_reference, averaged.n_estimated) == (n * (n + 1) // 2, n * (n + 1))


def test_mean_of_real_scores():
    items = [score_notes(REFERENCE, REFERENCE), score_notes(REFERENCE, [])]
    averaged = mean_scores(items)
    assert averaged.onset_f1 == 0.5 and averaged.n_reference == 16 and averaged.n_estimated == 8
    assert isinstance(averaged.n_reference, int) and np.isclose(averaged.frame_recall, 0.5)


def test_mean_of_nothing_is_refused():
    with pytest.raises(Mp3MidiError, match="at least one Scores"):
        mean_scores([])
