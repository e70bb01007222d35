"""The error breakdown of benchmarks/realdev_errors.py on hand-made note lists."""

import pytest

from benchmarks.compare_basic_pitch import markdown_table
from benchmarks.realdev_errors import breakdown, mean_with_interval, read_halves, summary
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


@pytest.mark.parametrize(("values", "width"), [([0.7] * 5, 0.0), ([0.2, 0.4, 0.6, 0.8, 1.0], None)])
def test_a_bootstrap_interval_holds_its_mean_and_is_the_same_every_run(values, width):
    first, again = (mean_with_interval(values, resamples=500) for _ in range(2))
    assert first == again and first["low"] <= first["mean"] <= first["high"]
    assert first["mean"] == pytest.approx(sum(values) / len(values))
    assert (first["high"] - first["low"] == width) if width is not None else 0 < first["high"] - first["low"] < 0.8
    assert mean_with_interval(values, resamples=0).keys() == {"mean"}


def test_the_comparison_table_gives_each_systems_overall_interval():
    files = [{"onset_f1": f, "offset_f1": f / 2, "frame_f1": f} for f in (0.5, 0.7, 0.9)]
    report = {"items": files, "groups": {"piano": {"items": 3, "onset_f1": 0.7, "offset_f1": 0.35, "frame_f1": 0.7}},
              "overall": {"onset_f1": 0.7, "offset_f1": 0.35, "frame_f1": 0.7}}
    results = {"folder": "clips", "audio_s": 30.0, "threads": 1, "install_s": 0.0,
               "ours": {"checkpoint": "x.pt", "total_s": 1.0, "report": report},
               "basic_pitch": {"setup_s": 1.0, "total_s": 2.0, "report": report}}
    table = markdown_table(results)
    assert table.count("onset F1 0.700 [") == 2 and "note+offset F1 0.350 [" in table


@pytest.mark.parametrize(("text", "message"), [("clip,half\na,tune\nb,held\n", "must be tune or report; got held"),
                                               ("name,part\na,tune\n", "columns clip,half")])
def test_bad_halves_files_are_refused(tmp_path, text, message):
    path = tmp_path / "halves.csv"
    path.write_text(text)
    with pytest.raises(Mp3MidiError, match=message):
        read_halves(path)
