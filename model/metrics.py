"""Transcription scores: mir_eval's note metrics and a frame metric on the 88-key roll, behind one call.

Empty lists and zero-length notes, which mir_eval either warns about, scores as 0 or refuses, get one rule here:
with nothing on either side a metric is perfect (1.0); with nothing on exactly one side it is 0.0.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import mir_eval
import numpy as np

from pipeline.errors import Mp3MidiError
from pipeline.labels import note_labels, time_to_frame
from pipeline.notes import Note

ONSET_TOLERANCE_S = 0.05  # an onset within 50 ms matches (mir_eval's default, as in MAPS/MAESTRO papers).
OFFSET_RATIO = 0.2  # an offset within 20% of the reference note's length ...
OFFSET_MIN_TOLERANCE_S = 0.05  # ... or 50 ms, whichever is more, matches.
SHORTEST_INTERVAL_S = 1e-6  # mir_eval refuses notes with end <= start; such notes are given this much length.


@dataclass(frozen=True)
class Scores:
    """One item's scores (or a mean of several). Every float is in [0, 1]; the counts are notes.

    onset_*: a note matches on pitch (within 50 cents) and onset (within 50 ms), offsets ignored.
    offset_*: as onset, and the offset within max(20% of the reference note's length, 50 ms) too.
    frame_*: cells of the [frames, 88] sounding roll at FRAMES_PER_SECOND; notes outside the 88 keys are left out.
    velocity_f1: as onset, and the velocity close after mir_eval's best linear rescaling of the estimate.
    """

    onset_precision: float
    onset_recall: float
    onset_f1: float
    offset_precision: float
    offset_recall: float
    offset_f1: float
    frame_precision: float
    frame_recall: float
    frame_f1: float
    velocity_f1: float
    n_reference: int
    n_estimated: int


def score_notes(reference: list[Note], estimated: list[Note], *, duration_s: float | None = None) -> Scores:
    """Score ``estimated`` notes against ``reference`` notes.

    ``duration_s`` sets how many frames the frame metric covers; by default it runs to the last note's end on
    either side. Notes are made valid for mir_eval first: a negative start becomes 0, and a note with no length
    gets ``SHORTEST_INTERVAL_S`` of it.
    """
    if duration_s is not None and duration_s < 0:
        raise Mp3MidiError(f"score_notes needs a duration of at least 0 s; got {duration_s}")
    reference, estimated = _valid(reference), _valid(estimated)
    onset = _note_scores(reference, estimated, offset_ratio=None)
    offset = _note_scores(reference, estimated, offset_ratio=OFFSET_RATIO)
    frame = _frame_scores(reference, estimated, duration_s)
    return Scores(*onset, *offset, *frame, velocity_f1=_velocity_f1(reference, estimated),
                  n_reference=len(reference), n_estimated=len(estimated))


def mean_scores(scores: list[Scores]) -> Scores:
    """The macro average: each item's scores weigh the same whatever its length; the note counts are summed."""
    if not scores:
        raise Mp3MidiError("mean_scores needs at least one Scores to average; got an empty list")
    averaged = {}
    for field in fields(Scores):
        values = [getattr(item, field.name) for item in scores]
        averaged[field.name] = sum(values) if field.name.startswith("n_") else float(np.mean(values))
    return Scores(**averaged)


def _valid(notes: list[Note]) -> list[Note]:
    """The notes with starts clipped to 0 and every note at least ``SHORTEST_INTERVAL_S`` long."""
    valid = []
    for note in notes:
        start = max(note.start_s, 0.0)
        valid.append(Note(start, max(note.end_s, start + SHORTEST_INTERVAL_S), note.pitch, note.velocity))
    return valid


def _as_arrays(notes: list[Note]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """mir_eval's inputs: intervals [n, 2] in seconds, pitches [n] in Hz, velocities [n]."""
    intervals = np.array([[note.start_s, note.end_s] for note in notes], dtype=np.float64).reshape(-1, 2)
    pitches = mir_eval.util.midi_to_hz(np.array([note.pitch for note in notes], dtype=np.float64))
    velocities = np.array([note.velocity for note in notes], dtype=np.float64)
    return intervals, pitches, velocities


def _empty_case(n_reference: int, n_estimated: int) -> tuple[float, float, float] | None:
    """(precision, recall, F1) when either side is empty: perfect if both are, zero if one is; else None."""
    if n_reference and n_estimated:
        return None
    return (1.0, 1.0, 1.0) if n_reference == n_estimated == 0 else (0.0, 0.0, 0.0)


def _note_scores(reference: list[Note], estimated: list[Note], *,
                 offset_ratio: float | None) -> tuple[float, float, float]:
    empty = _empty_case(len(reference), len(estimated))
    if empty is not None:
        return empty
    ref_intervals, ref_pitches, _ = _as_arrays(reference)
    est_intervals, est_pitches, _ = _as_arrays(estimated)
    precision, recall, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_intervals, ref_pitches, est_intervals, est_pitches, onset_tolerance=ONSET_TOLERANCE_S,
        offset_ratio=offset_ratio, offset_min_tolerance=OFFSET_MIN_TOLERANCE_S)
    return float(precision), float(recall), float(f1)


def _velocity_f1(reference: list[Note], estimated: list[Note]) -> float:
    empty = _empty_case(len(reference), len(estimated))
    if empty is not None:
        return empty[2]
    _, _, f1, _ = mir_eval.transcription_velocity.precision_recall_f1_overlap(
        *_as_arrays(reference), *_as_arrays(estimated), onset_tolerance=ONSET_TOLERANCE_S, offset_ratio=None)
    return float(f1)


def _frame_scores(reference: list[Note], estimated: list[Note],
                  duration_s: float | None) -> tuple[float, float, float]:
    """Precision, recall and F1 over the cells of the two sounding rolls, both [n_frames, 88]."""
    if duration_s is None:
        duration_s = max((note.end_s for note in reference + estimated), default=0.0)
    n_frames = int(time_to_frame(duration_s)) + 1
    reference_roll = note_labels(reference, n_frames).frame.astype(bool)
    estimated_roll = note_labels(estimated, n_frames).frame.astype(bool)
    n_reference, n_estimated = int(reference_roll.sum()), int(estimated_roll.sum())
    empty = _empty_case(n_reference, n_estimated)
    if empty is not None:
        return empty
    true_positives = int((reference_roll & estimated_roll).sum())
    precision, recall = true_positives / n_estimated, true_positives / n_reference
    f1 = 2 * precision * recall / (precision + recall) if true_positives else 0.0
    return precision, recall, f1
