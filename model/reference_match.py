"""A transcription next to a reference MIDI of the same recording: its scores, and which notes it missed or added.

Notes are paired as ``model.metrics`` pairs them for onset F1 (mir_eval: the same pitch, onsets within 50 ms, each
note in at most one pair), so the missed and extra notes are exactly those that onset precision and recall count
against the transcription.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import mir_eval

from pipeline.notes import Note, remove_self_overlaps

from .metrics import ONSET_TOLERANCE_S, Scores, _as_arrays, _valid, score_notes


@dataclass(frozen=True)
class ReferenceComparison:
    """scores: onset / note-with-offset / frame scores of the transcription against the reference.
    missed: reference notes no transcribed note matches. extra: transcribed notes that match no reference note."""

    scores: Scores
    missed: list[Note]
    extra: list[Note]


def compare_to_reference(reference: Sequence[Note], estimated: Sequence[Note], *,
                         duration_s: float | None = None) -> ReferenceComparison:
    """Score ``estimated`` against ``reference`` and list the notes either side left unmatched. The reference's
    unison doublings (one key sounded twice at once, in two parts) are merged first, as audio cannot show them."""
    reference = remove_self_overlaps(list(reference))
    estimated = list(estimated)
    scores = score_notes(reference, estimated, duration_s=duration_s)
    if not reference or not estimated:
        return ReferenceComparison(scores, list(reference), list(estimated))
    ref_intervals, ref_pitches, _ = _as_arrays(_valid(reference))
    est_intervals, est_pitches, _ = _as_arrays(_valid(estimated))
    pairs = mir_eval.transcription.match_notes(ref_intervals, ref_pitches, est_intervals, est_pitches,
                                               onset_tolerance=ONSET_TOLERANCE_S, offset_ratio=None)
    matched_reference = {r for r, _ in pairs}
    matched_estimated = {e for _, e in pairs}
    return ReferenceComparison(
        scores,
        missed=[note for index, note in enumerate(reference) if index not in matched_reference],
        extra=[note for index, note in enumerate(estimated) if index not in matched_estimated])
