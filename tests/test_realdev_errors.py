"""The error breakdown of benchmarks/realdev_errors.py on hand-made note lists."""

import pytest

from benchmarks.realdev_errors import breakdown, read_halves, summary
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note

REFERENCE = [Note(0.5 + i, 1.3 + i, 60 + 2 * i, 80) for i in range(4)]


def shifted(notes, *, seconds=0.0, semitones=0):
    return [Note(n.start_s + seconds, n.end_s + seconds, n.pitch + semitones, n.velocity) for n in notes]


def test_a_perfect_transcription():
    row = breakdown(REFERENCE, REFERENCE)
    assert row["onset_f1"] == row["onset_only_f1_50"] == row["pitch_class_onset_f1"] == 1.0
    assert row["onset_bias_ms"] == 0.0 and row["split_share"] == 0.0 and row["notes_ratio"] == 1.0


@pytest.mark.parametrize(("shift_s", "f1_50", "f1_100", "f1_150"), [
    (0.03, 1.0, 1.0, 1.0), (-0.07, 0.0, 1.0, 1.0), (0.12, 0.0, 0.0, 1.0), (0.2, 0.0, 0.0, 0.0),
])
def test_onsets_alone_at_three_tolerances_and_the_signed_bias(shift_s, f1_50, f1_100, f1_150):
    row = breakdown(REFERENCE, shifted(REFERENCE, seconds=shift_s))
    assert (row["onset_only_f1_50"], row["onset_only_f1_100"], row["onset_only_f1_150"]) == (f1_50, f1_100, f1_150)
    if f1_150:
        assert row["onset_bias_ms"] == pytest.approx(1000 * shift_s)


@pytest.mark.parametrize(("semitones", "semitone_f1", "class_f1"), [(1, 1.0, 0.0), (12, 0.0, 1.0), (-12, 0.0, 1.0),
                                                                     (2, 0.0, 0.0)])
def test_pitch_a_semitone_off_and_octave_errors(semitones, semitone_f1, class_f1):
    row = breakdown(REFERENCE, shifted(REFERENCE, semitones=semitones))
    assert row["onset_f1"] == 0.0 and row["onset_only_f1_50"] == 1.0
    assert (row["semitone_onset_f1"], row["pitch_class_onset_f1"]) == (semitone_f1, class_f1)


def test_a_note_split_in_three_counts_once_with_two_fragments():
    held = [Note(0.5, 2.0, 69, 80)]
    pieces = [Note(0.5, 1.0, 69, 80), Note(1.0, 1.4, 70, 80), Note(1.4, 2.0, 69, 80)]
    row = breakdown(held, pieces)
    assert row["split_share"] == 1.0 and row["fragments_per_note"] == 2.0 and row["notes_ratio"] == 3.0


def test_summary_gives_a_mean_inside_its_interval():
    rows = [breakdown(REFERENCE, REFERENCE), breakdown(REFERENCE, shifted(REFERENCE, seconds=0.2))]
    entry = summary(rows, resamples=200)["onset_f1"]
    assert entry["mean"] == 0.5 and entry["low"] <= 0.5 <= entry["high"] and entry["low"] < entry["high"]


@pytest.mark.parametrize(("text", "message"), [("clip,half\na,tune\nb,held\n", "must be tune or report; got held"),
                                               ("name,part\na,tune\n", "columns clip,half")])
def test_bad_halves_files_are_refused(tmp_path, text, message):
    path = tmp_path / "halves.csv"
    path.write_text(text)
    with pytest.raises(Mp3MidiError, match=message):
        read_halves(path)
