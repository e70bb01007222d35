"""Hostile input through every entry point: ``pipeline generate`` on a folder, ``model transcribe``, ``model evaluate
--folder`` and the Transcribe page. Each input gives a result or one clear line naming it (exit 2 on the command
line), no traceback, nothing written for a failed input, and the process goes on to the next one.

The corpus (tests/hostile_inputs.py) is built once per module; each command line takes all of it in one call.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import mido
import numpy as np
import pretty_midi
import pytest
from streamlit.testing.v1 import AppTest

from pipeline.audio import load_audio
from pipeline.catalog import connect
from pipeline.constants import MAX_UPLOAD_MINUTES
from pipeline.errors import Mp3MidiError
from pipeline.midi_io import read_midi
from tests.hostile_inputs import EITHER, GOOD, REFUSED, make_corpus

ROOT = Path(__file__).resolve().parents[1]
APP = str(ROOT / "dashboard" / "app.py")
A4 = 69  # the corpus's good recordings beep an A4
CLI_TIMEOUT_S = 600


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    folder = tmp_path_factory.mktemp("hostile") / "corpus"
    return folder, make_corpus(folder)


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    environment = {**(env or os.environ), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=environment, capture_output=True, text=True,
                          timeout=CLI_TIMEOUT_S)


def assert_clean_stderr(stderr: str) -> list[str]:
    """No traceback, and every line is one of ours; returns the error lines."""
    assert "Traceback" not in stderr
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), lines
    return [line for line in lines if line.startswith("error: ")]


def as_audio(name: str, expected: str) -> str:
    """What an audio entry point must do with a corpus file: a MIDI file, good or not, is not audio."""
    return REFUSED if name.endswith(".mid") else expected


def assert_reads_back(path: Path, csv: Path | None = None, *, tempo_bpm: float | None = None,
                      grid_steps_per_beat: int | None = None) -> None:
    """A .mid the command line wrote: mido reads one conductor track (the tempo, or the tempo map of the beats)
    and one piano track; pretty_midi reads the notes of the .csv beside it (to the tick) or on the quantizing grid
    (of a fixed tempo)."""
    midi = mido.MidiFile(str(path))
    assert midi.type == 1 and len(midi.tracks) == 2
    tempos = [m.tempo for m in midi.tracks[0] if m.type == "set_tempo"]
    assert tempos and all(m.type != "note_on" for m in midi.tracks[0])
    assert [m.program for m in midi.tracks[1] if m.type == "program_change"] == [0]
    if tempo_bpm is not None:
        assert tempos == [round(60_000_000 / tempo_bpm)]
    instruments = pretty_midi.PrettyMIDI(str(path)).instruments  # none when the track holds no notes
    notes = instruments[0].notes if instruments else []
    tick_s = max(tempos) / 1e6 / midi.ticks_per_beat
    if csv is not None:
        rows = [line.split(",") for line in csv.read_text().splitlines()[1:]]
        assert len(rows) == len(notes)
        for note, (start, end, pitch, velocity) in zip(sorted(notes, key=lambda n: (n.start, n.pitch)), sorted(
                rows, key=lambda row: (float(row[0]), int(row[2])))):
            assert (note.pitch, note.velocity) == (int(pitch), int(velocity))
            assert abs(note.start - float(start)) <= tick_s and abs(note.end - float(end)) <= tick_s
    if grid_steps_per_beat is not None:
        step = tempos[0] / 1e6 / grid_steps_per_beat
        assert notes and all(abs(t / step - round(t / step)) < 1e-6 for n in notes for t in (n.start, n.end))


def check_outcome(name: str, expected: str, *, refused: bool) -> None:
    if expected == GOOD:
        assert not refused, f"{name} should have given a result"
    elif expected == REFUSED:
        assert refused, f"{name} should have been refused"


# --- the command lines ----------------------------------------------------------------------------------------


def test_transcribe_takes_the_whole_corpus_in_one_process(corpus, tmp_path):
    folder, kinds = corpus
    names = sorted(kinds, key=lambda name: name.startswith("good-"))  # the good recordings come last
    out = tmp_path / "out"
    run = run_cli("model", "transcribe", *(str(folder / name) for name in names), "-o", str(out), "--csv")
    assert run.returncode == 2
    errors = assert_clean_stderr(run.stderr)
    for name in names:
        path = str(folder / name)
        named = [line for line in errors if line.startswith(f"error: {path!r} ")]
        written = (out / Path(name).with_suffix(".mid").name).exists()
        assert len(named) + written == 1, (name, named, written)  # one line or one result, never both
        assert written == (out / Path(name).with_suffix(".csv").name).exists()
        check_outcome(name, as_audio(name, kinds[name]), refused=bool(named))
        assert f"{path} -> " in run.stdout if written else f"{path} -> " not in run.stdout
    assert len(errors) == sum(1 for name in names if f"error: {str(folder / name)!r} " in run.stderr)
    assert not list(out.glob("*.partial"))
    for name in ("good-tone.mp3", "good-tone-m4a.m4a"):  # after some forty refusals, the process still transcribes
        midi = pretty_midi.PrettyMIDI(str(out / Path(name).with_suffix(".mid").name))
        assert len(midi.instruments[0].notes) >= 3 and {n.pitch for n in midi.instruments[0].notes} == {A4}
    for written in out.glob("*.mid"):
        assert_reads_back(written, written.with_suffix(".csv"))
    for line in errors:
        assert "\n" not in line and len(line) < 300


def test_quantized_output_reads_back_on_its_grid(corpus, tmp_path):
    folder, _ = corpus
    out = tmp_path / "out"
    run = run_cli("model", "transcribe", str(folder / "good-tone.mp3"), str(folder / "eight-channels-48k.wav"),
                  "-o", str(out), "--quantize", "1/16", "--tempo", "100")
    assert run.returncode == 0 and not assert_clean_stderr(run.stderr)
    for name in ("good-tone.mid", "eight-channels-48k.mid"):
        assert_reads_back(out / name, tempo_bpm=100, grid_steps_per_beat=4)
    assert sorted(path.name for path in out.iterdir()) == ["eight-channels-48k.mid", "good-tone.mid"]


def test_the_longest_recording_is_the_users_choice(corpus, tmp_path):
    """--max-minutes 0.02 (1.2 s) refuses the 2 s recordings: from an MP3's counted frames, a WAV's header, and
    the stream ffmpeg decodes."""
    folder, _ = corpus
    names = ["good-tone.mp3", "eight-channels-48k.wav", "good-tone-m4a.m4a"]
    run = run_cli("model", "transcribe", *(str(folder / name) for name in names), "-o", str(tmp_path / "out"),
                  "--max-minutes", "0.02")
    assert run.returncode == 2
    errors = assert_clean_stderr(run.stderr)
    assert len(errors) == 3 and all("over the limit of 0.02 min" in line or "longer than the limit of 0.02 min"
                                    in line for line in errors)
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_evaluate_folder_scores_what_it_can_and_names_the_rest(corpus, tmp_path):
    """Every audio file of the corpus beside a good reference, and every MIDI file of it as the reference of a
    good recording."""
    folder, kinds = corpus
    pairs = tmp_path / "pairs"
    pairs.mkdir()
    expected = {}
    for name, kind in kinds.items():
        source = folder / name
        if name.endswith(".mid"):
            if name != "good.mid":
                shutil.copy(source, pairs / f"reference-{name}")
                shutil.copy(folder / "good-tone.mp3", pairs / f"reference-{Path(name).stem}.mp3")
                expected[f"reference-{Path(name).stem}.mp3"] = kind
        else:
            shutil.copy(source, pairs / name)
            shutil.copy(folder / "good.mid", pairs / f"{Path(name).stem}.mid")
            expected[name] = kind
    report_path = tmp_path / "report.json"
    run = run_cli("model", "evaluate", "--folder", str(pairs), "--json", str(report_path))
    assert run.returncode == 2  # as transcribe: some were refused, the others scored
    assert_clean_stderr(run.stderr)
    report = json.loads(report_path.read_text())
    scored = {row["item"] for row in report["items"]}
    failed = {row["item"]: row["error"] for row in report["failed"]}
    assert set(expected) == scored | failed.keys() and not scored & failed.keys()
    for name, kind in expected.items():
        check_outcome(name, kind, refused=name in failed)
        if name in failed:
            assert f"not scored: {name}: {failed[name]}" in run.stdout.splitlines()
    assert len(report["items"]) >= 3


def test_generate_fails_each_bad_midi_with_its_reason_and_goes_on(corpus, tmp_path):
    folder, kinds = corpus
    data = tmp_path / "data"
    run = run_cli("pipeline", "generate", "--name", "hostile", "--source", str(folder), "--data-dir", str(data),
                  "--workers", "1", "--clip-seconds", "2")
    assert run.returncode == 0, run.stderr
    assert_clean_stderr(run.stderr)
    with connect(data, read_only=True) as connection:
        rows = connection.execute("SELECT source, status, error, audio_path, features_path, preview_path"
                                  " FROM items WHERE dataset = 'hostile'").fetchall()
    midi_names = {name for name in kinds if name.endswith(".mid")}
    outcome = {Path(row[0]).name: (row[1], row[2]) for row in rows}
    assert set(outcome) == midi_names  # each MIDI file once; every audio file of the corpus passed over
    for name, (status, error) in outcome.items():
        assert status in ("done", "failed")
        check_outcome(name, kinds[name], refused=status == "failed")
        assert (status == "failed") == bool(error) and "\n" not in (error or "")
    made = {file for row in rows if row[1] == "done" for file in row[3:]}
    items = data / "datasets" / "hostile" / "items"
    assert made and {path.name for path in items.iterdir()} == made  # nothing of a failed item is left
    assert f"{sum(s == 'failed' for s, _ in outcome.values())} failed of {len(outcome)} items" in run.stdout


# --- the Transcribe page --------------------------------------------------------------------------------------


def test_the_transcribe_page_survives_the_corpus(corpus, tmp_path, monkeypatch):
    folder, kinds = corpus
    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(tmp_path))
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.switch_page("app_pages/transcribe.py").run()
    uploads = [name for name in kinds if not name.endswith(".mid")]  # Streamlit refuses other suffixes itself
    for name in sorted(uploads, key=lambda name: name.startswith("good-")):
        app.file_uploader[0].set_value((name, (folder / name).read_bytes(), "application/octet-stream")).run()
        assert not app.exception, name
        refused = bool(app.error)
        if refused:
            assert len(app.error) == 1 and not app.dataframe
            assert app.error[0].value.startswith(f"Cannot transcribe this upload: {name!r} ")
            assert "\n" not in app.error[0].value and str(folder) not in app.error[0].value
        else:
            assert app.dataframe and app.download_button
        check_outcome(name, as_audio(name, kinds[name]), refused=refused)
    notes = app.dataframe[0].value
    assert len(notes) >= 3 and set(notes["pitch"]) == {A4}  # the last uploads, the good tones, still work

    references = sorted((name for name in kinds if name.endswith(".mid")), key=lambda name: name == "good.mid")
    for name in references:  # every MIDI of the corpus as the reference the recording is scored against
        app.file_uploader(key="reference_midi").set_value((name, (folder / name).read_bytes(), "audio/midi")).run()
        assert not app.exception, name
        refused = bool(app.error)
        if refused:
            assert len(app.error) == 1 and "\n" not in app.error[0].value
            assert app.error[0].value.startswith(f"Cannot score against this reference: {name!r}")
        else:
            assert any(metric.label == "Onset F1" for metric in app.metric)
        assert len(app.dataframe[0].value) == len(notes)  # the transcription stays on the page
        check_outcome(name, kinds[name], refused=refused)


def test_an_upload_that_decodes_to_hours_is_refused_before_it_is_held(corpus):
    from dashboard.upload import decode_upload

    folder, _ = corpus
    for name in ("hours-low-bitrate.mp3", "hours-at-8-hz.wav"):
        with pytest.raises(Mp3MidiError, match=rf"^{name!r} lasts .*the limit of {MAX_UPLOAD_MINUTES} min$"):
            decode_upload(name, (folder / name).read_bytes())


# --- the decoder's limits, in-process -------------------------------------------------------------------------


def test_an_mp3_whose_header_overstates_its_length_is_counted_not_refused(corpus, tmp_path):
    """A big ID3 tag (as a cover picture is) makes libsndfile estimate an 8 kb/s MP3 of 30 s at over an hour."""
    folder, _ = corpus
    one_copy = (folder / "hours-low-bitrate.mp3").read_bytes()
    one_copy = one_copy[: len(one_copy) // 400]
    size = 4 * 2**20
    syncsafe = bytes((size >> shift) & 0x7F for shift in (21, 14, 7, 0))
    tagged = tmp_path / "tagged.mp3"
    tagged.write_bytes(b"ID3\x03\x00\x00" + syncsafe + b"TXXX" + (size - 10).to_bytes(4, "big") + b"\x00" * size
                       + one_copy)
    assert load_audio(tagged, max_seconds=60).size / 16_000 == pytest.approx(30, abs=0.5)
    with pytest.raises(Mp3MidiError, match="lasts longer than the limit of 0.25 min"):
        load_audio(tagged, max_seconds=15)


@pytest.mark.parametrize("max_seconds", [0, -1.0])
def test_a_limit_must_be_positive(corpus, max_seconds):
    folder, _ = corpus
    with pytest.raises(Mp3MidiError, match=f"positive number of seconds; got {max_seconds}"):
        load_audio(folder / "good-tone.mp3", max_seconds=max_seconds)


def test_samples_that_are_not_numbers_are_refused_from_a_file_and_an_array(corpus):
    from model.transcribe import checked_samples

    folder, _ = corpus
    with pytest.raises(Mp3MidiError, match="'.*float-nan.wav' holds samples that are not numbers"):
        load_audio(folder / "float-nan.wav")
    with pytest.raises(Mp3MidiError, match="^the audio holds samples that are not numbers"):
        checked_samples(np.array([0.0, np.inf], np.float32), max_seconds=None)
    with pytest.raises(Mp3MidiError, match="^the audio lasts 2.0 s, over the limit of 0.01 min"):
        checked_samples(np.zeros(32_000, np.float32), max_seconds=0.6)


@pytest.mark.parametrize(("name", "message"), [
    ("huge-header-length.mid", r"not a readable MIDI file \(EOFError: the data ends early\)"),
    ("three-hours.mid", "MIDI lasts longer than the 30 min limit"),
    ("header-only-mid.mid", r"the data ends early"),
])
def test_broken_midi_says_why(corpus, name, message):
    folder, _ = corpus
    with pytest.raises(Mp3MidiError, match=message):
        read_midi(folder / name)
    midi = mido.MidiFile(file=io.BytesIO((folder / "good.mid").read_bytes()))  # the good one next to them reads
    assert read_midi(folder / "good.mid").duration_s > 0 and midi.length > 0


def test_two_inputs_that_would_share_an_output_are_refused_before_any_work(corpus, tmp_path):
    folder, _ = corpus
    shutil.copy(folder / "good-tone-m4a.m4a", tmp_path / "good-tone.m4a")
    run = run_cli("model", "transcribe", str(folder / "good-tone.mp3"), str(tmp_path / "good-tone.m4a"),
                  "-o", str(tmp_path / "out"))
    assert run.returncode == 2 and not run.stdout and not (tmp_path / "out").exists()
    assert assert_clean_stderr(run.stderr) == [
        f"error: {str(folder / 'good-tone.mp3')!r} and {str(tmp_path / 'good-tone.m4a')!r} would both be written to"
        f" {str(tmp_path / 'out' / 'good-tone.mid')!r}; transcribe them into separate folders"]


# --- a full disk ----------------------------------------------------------------------------------------------


def test_a_disk_that_fills_during_a_job_keeps_what_was_made_and_a_rerun_resumes(tmp_path):
    """Four pieces, one worker, a disk that is full once two items are stored: those two stay as they are, the
    others fail with the reason and leave nothing, and the same command on a freed disk makes only the missing."""
    from tests.conftest import write_piece
    from tests.full_disk import sitecustomize_folder

    source, data = tmp_path / "midi", tmp_path / "data"
    for index in range(4):
        write_piece(source / f"piece-{index}.mid", start_pitch=48 + 3 * index)
    items = data / "datasets" / "full" / "items"
    command = ("pipeline", "generate", "--name", "full", "--source", str(source), "--data-dir", str(data),
               "--workers", "1", "--clip-seconds", "2")
    full = run_cli(*command, env=sitecustomize_folder(tmp_path, items, full_after=2))
    assert full.returncode == 0, full.stderr
    assert_clean_stderr(full.stderr)
    assert "2 done, 2 failed of 4 items" in full.stdout
    assert "failed x2: cannot write the item's files: No space left on device" in full.stdout
    with connect(data, read_only=True) as connection:
        rows = connection.execute("SELECT item_id, status, error FROM items WHERE dataset = 'full'").fetchall()
    made = {item_id for item_id, status, _ in rows if status == "done"}
    assert all("No space left on device" in error for _, status, error in rows if status == "failed")
    kept = {path.name: path.read_bytes() for path in items.iterdir()}
    assert {name.split(".")[0] for name in kept} == made and len(kept) == 3 * len(made)  # nothing partial

    again = run_cli(*command)
    assert again.returncode == 0 and "4 done, 0 failed of 4 items; made 2 now" in again.stdout
    assert all((items / name).read_bytes() == data_bytes for name, data_bytes in kept.items())
    assert len(list(items.iterdir())) == 12


@pytest.mark.parametrize(("options", "only", "refused"), [
    ((), "", ".mid"), (("--csv",), ".csv", ".csv")], ids=["no-room", "room-for-the-midi-only"])
def test_a_full_disk_leaves_no_partial_transcription(corpus, tmp_path, options, only, refused):
    """No room at all, or room for the .mid but not the .csv beside it: nothing is left of either."""
    from tests.full_disk import sitecustomize_folder

    folder, _ = corpus
    out = tmp_path / "out"
    out.mkdir()
    inputs = [str(folder / name) for name in ("good-tone.mp3", "eight-channels-48k.wav")]
    run = run_cli("model", "transcribe", *inputs, "-o", str(out), *options,
                  env=sitecustomize_folder(tmp_path, out, full_after=0, only=only))
    assert run.returncode == 2 and not run.stdout
    errors = assert_clean_stderr(run.stderr)
    assert errors == [f"error: cannot write {str(out / (stem + refused))!r}: No space left on device"
                      for stem in ("good-tone", "eight-channels-48k")]
    assert not list(out.iterdir())
