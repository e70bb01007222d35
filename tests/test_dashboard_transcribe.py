"""The Transcribe page through Streamlit's AppTest, and the helpers it draws with, on real rendered MP3s and the
committed default model."""

from __future__ import annotations

import io
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
from streamlit.testing.v1 import AppTest

from dashboard.network_pass import STORE_KEY, DecodeSettings, decoded, default_settings, pass_for_upload
from dashboard.note_export import midi_bytes, notes_csv, notes_frame, sheet_music
from dashboard.transcription_view import (beat_lines, beats_caption, bin_pitches, display_spectrogram, note_outlines,
                                          pitch_ticks, transcription_figure)
from dashboard.upload import BYTES_PER_MB, MAX_UPLOAD_MB, check_upload, decode_upload, upload_help
from model.beats import BeatGrid, fixed_grid
from model.checkpoints import DEFAULT_CHECKPOINT
from pipeline.audio import encode_mp3
from pipeline.constants import (MAX_UPLOAD_MINUTES, BINS_PER_SEMITONE, FRAMES_PER_SECOND, HIGHEST_PITCH, LOWEST_PITCH, N_BINS, SAMPLE_RATE,
                                pitch_to_hz)
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram
from pipeline.notes import Note, Part
from pipeline.playback import render_notes
from pipeline.render import default_soundfont, render

APP = str(Path(__file__).resolve().parents[1] / "dashboard" / "app.py")
PAGE = "app_pages/transcribe.py"
ONSET_TOLERANCE_S = 0.06
PLAYED = tuple(Note(0.2 + i * 0.4, 0.5 + i * 0.4, pitch, 90) for i, pitch in enumerate((48, 55, 60, 64, 67)))
CLIP_S = 2.6


@pytest.fixture(scope="module")
def melody_mp3(tmp_path_factory) -> bytes:
    """Five piano notes rendered through FluidSynth and encoded to MP3, as a user's upload would be."""
    path = tmp_path_factory.mktemp("upload") / "melody.mp3"
    encode_mp3(render([Part(0, False, PLAYED)], CLIP_S, soundfont=default_soundfont()), path)
    return path.read_bytes()


def found(played: Note, notes) -> bool:
    return any(n.pitch == played.pitch and abs(n.start_s - played.start_s) <= ONSET_TOLERANCE_S for n in notes)


def transcribe_page(data: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(data))
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception
    return app


def slider(app: AppTest, label: str):
    return next(s for s in app.slider if s.label == label)


# --- the page -------------------------------------------------------------------------------------------------


def test_on_an_empty_catalog_the_page_offers_the_uploader_and_the_default_model(tmp_path, monkeypatch):
    app = transcribe_page(tmp_path, monkeypatch)
    assert app.title[0].value == "Transcribe"
    uploader = app.file_uploader[0]
    assert f"{MAX_UPLOAD_MB} MB" in uploader.help and set(uploader.allowed_type) >= {".mp3", ".wav", ".m4a"}
    model = next(s for s in app.selectbox if s.label == "Model")
    assert model.options == ["default (committed)"] and model.value.path == DEFAULT_CHECKPOINT
    assert "Upload a recording" in app.info[0].value
    assert slider(app, "Onset threshold").value == pytest.approx(default_settings(DEFAULT_CHECKPOINT).onset_threshold)
    assert not app.error and not app.download_button
    assert not (tmp_path / "catalog.duckdb").exists()


def test_an_upload_shows_its_notes_and_sliders_only_redecode(tmp_path, monkeypatch, melody_mp3):
    app = transcribe_page(tmp_path, monkeypatch)
    app.file_uploader[0].set_value(("melody.mp3", melody_mp3, "audio/mpeg")).run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    notes = [Note(r.start_s, r.end_s, r.pitch, r.velocity) for r in table.itertuples()]
    assert all(found(played, notes) for played in PLAYED)
    assert int(app.metric[0].value) == len(table)
    assert [b.label for b in app.download_button] == ["Download .mid", "Download .csv", "Download .musicxml"]
    assert any(c.value.startswith("Beats (grey lines): one tempo, 120.0 BPM") for c in app.caption)
    assert any("too short or too quiet to hear a beat" in w.value for w in app.warning)  # a 2.6 s clip
    assert len(app.get("audio")) == 2  # the recording and the transcription played back

    network = app.session_state[STORE_KEY]
    app.checkbox(key="mono").check().run()  # one note at a time: re-decoded, not transcribed again
    assert app.session_state[STORE_KEY] is network and not app.exception
    mono = sorted(app.dataframe[0].value.itertuples(), key=lambda r: r.start_s)
    assert all(a.end_s <= b.start_s + 1e-6 for a, b in zip(mono, mono[1:]))
    assert all(found(played, [Note(r.start_s, r.end_s, r.pitch, r.velocity) for r in mono]) for played in PLAYED)
    app.checkbox(key="mono").uncheck().run()
    slider(app, "Onset threshold").set_value(0.95).run()
    assert app.session_state[STORE_KEY] is network  # the network did not run again
    assert 0 < len(app.dataframe[0].value) < len(table)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("words.mp3", b"not audio at all, just words " * 40, "'words.mp3' is not audio"),
    ("empty.wav", b"", "'empty.wav' is empty"),
    ("cut.mp3", None, "'cut.mp3' is not audio"),  # None: the first 200 bytes of a real MP3
])
def test_a_bad_upload_says_why_and_the_page_keeps_working(tmp_path, monkeypatch, melody_mp3, name, content, message):
    app = transcribe_page(tmp_path, monkeypatch)
    app.file_uploader[0].set_value((name, melody_mp3[:200] if content is None else content, "audio/mpeg")).run()
    assert not app.exception
    assert message in app.error[0].value and not app.dataframe
    app.file_uploader[0].set_value(("melody.mp3", melody_mp3, "audio/mpeg")).run()
    assert not app.exception and not app.error and len(app.dataframe[0].value) >= len(PLAYED)


# --- uploads --------------------------------------------------------------------------------------------------


def test_a_good_mp3_decodes_to_audio_and_its_notes(melody_mp3):
    audio = decode_upload("melody.mp3", melody_mp3)
    assert audio.dtype == np.float32 and audio.size / SAMPLE_RATE == pytest.approx(CLIP_S, abs=0.1)
    network = pass_for_upload({}, "melody.mp3", melody_mp3, checkpoint=DEFAULT_CHECKPOINT)
    assert all(found(played, network.transcription.notes) for played in PLAYED)


@pytest.mark.parametrize(("name", "size", "message"), [
    ("song.txt", 10, r"'song.txt' is not named like an audio file; upload MP3, WAV, FLAC, OGG or M4A"),
    ("song.mp3", 0, r"'song.mp3' is empty \(0 bytes\)"),
    ("big.flac", (MAX_UPLOAD_MB + 1) * BYTES_PER_MB, rf"'big.flac' is {MAX_UPLOAD_MB + 1}.0 MB; .* up to "
                                                      rf"{MAX_UPLOAD_MB} MB"),
])
def test_uploads_are_refused_before_reading(name, size, message):
    with pytest.raises(Mp3MidiError, match=message):
        check_upload(name, size)


@pytest.mark.parametrize(("name", "content", "message"), [
    ("words.mp3", b"not audio at all, just words " * 40, r"^'words.mp3' is not audio that can be decoded"),
    ("cut.mp3", None, r"^'cut.mp3' is not audio that can be decoded"),
    ("empty.ogg", b"", r"^'empty.ogg' is empty"),
    ("big.wav", bytes(BYTES_PER_MB + 1), r"^'big.wav' is 1.0 MB; this page takes files up to 1 MB"),
])
def test_bad_bytes_name_the_upload_not_a_server_path(melody_mp3, name, content, message):
    with pytest.raises(Mp3MidiError, match=message) as caught:
        decode_upload(name, melody_mp3[:200] if content is None else content, max_mb=1)
    assert tempfile.gettempdir() not in str(caught.value)


def test_the_help_names_formats_and_limit():
    assert upload_help() == f"MP3, WAV, FLAC, OGG or M4A, up to {MAX_UPLOAD_MB} MB and {MAX_UPLOAD_MINUTES} minutes."


# --- one network pass, many decodings -------------------------------------------------------------------------


def test_a_pass_is_kept_per_content_and_checkpoint(tmp_path, melody_mp3):
    store = {}
    first = pass_for_upload(store, "melody.mp3", melody_mp3, checkpoint=DEFAULT_CHECKPOINT)
    assert pass_for_upload(store, "renamed.mp3", melody_mp3, checkpoint=DEFAULT_CHECKPOINT) is first
    other = shutil.copy(DEFAULT_CHECKPOINT, tmp_path / "other.pt")
    second = pass_for_upload(store, "melody.mp3", melody_mp3, checkpoint=other)
    assert second is not first and store == {STORE_KEY: second}


def test_decoding_settings_change_notes_tempo_and_program(melody_mp3):
    network = pass_for_upload({}, "melody.mp3", melody_mp3, checkpoint=DEFAULT_CHECKPOINT)
    defaults = default_settings(DEFAULT_CHECKPOINT)
    fixed = decoded(network, DecodeSettings(defaults.onset_threshold, defaults.frame_threshold, program=40,
                                            tempo_bpm=100.0, quantize="1/8"))
    assert fixed.tempo_bpm == 100.0 and fixed.midi.instruments[0].program == 40
    np.testing.assert_allclose(fixed.beats.beats_s[:4], [0.0, 0.6, 1.2, 1.8])
    assert not any("to hear a beat" in w for w in fixed.warnings)  # the user's tempo replaces what was heard
    assert any("to hear a beat" in w for w in network.transcription.warnings)
    eighth = 60.0 / 100.0 / 2
    assert all(round(n.start_s / eighth, 6).is_integer() for n in fixed.notes)
    with pytest.raises(Mp3MidiError, match="tempo 500 BPM is outside"):
        decoded(network, DecodeSettings(0.5, 0.3, tempo_bpm=500.0))


def test_a_missing_checkpoint_is_refused_with_its_path(tmp_path):
    with pytest.raises(Mp3MidiError, match="no checkpoint at .*nothing.pt"):
        default_settings(tmp_path / "nothing.pt")


# --- figures --------------------------------------------------------------------------------------------------


def test_each_key_sits_on_the_middle_of_its_three_bins():
    pitches = bin_pitches()
    assert pitches.shape == (N_BINS,)
    middles = pitches[BINS_PER_SEMITONE // 2::BINS_PER_SEMITONE]
    assert np.allclose(middles, np.arange(LOWEST_PITCH, HIGHEST_PITCH + 1))
    values, labels = pitch_ticks()
    assert dict(zip(values, labels))[60] == "C4" and values[0] == LOWEST_PITCH and values[-1] == HIGHEST_PITCH


@pytest.mark.parametrize("pitch", [LOWEST_PITCH + 12, 60, 83])
def test_a_tone_is_brightest_in_the_middle_of_its_rectangle(pitch):
    """A sine at a key's frequency lights the row the figure labels with that key, inside the note's rectangle."""
    note = Note(0.1, 0.6, pitch, 100)
    t = np.arange(int(note.end_s * SAMPLE_RATE)) / SAMPLE_RATE
    tone = np.where(t >= note.start_s, 0.5 * np.sin(2 * np.pi * pitch_to_hz(pitch) * t), 0.0).astype(np.float32)
    image = display_spectrogram(spectrogram(tone))
    during = (image.times_s > note.start_s + 0.1) & (image.times_s < note.end_s - 0.1)
    brightest = bin_pitches()[image.values[:, during].mean(axis=1).argmax()]
    assert brightest == pytest.approx(pitch)
    xs, ys = note_outlines([note])
    assert (min(ys[:5]), max(ys[:5])) == (pitch - 0.5, pitch + 0.5) and (min(xs[:5]), max(xs[:5])) == (0.1, 0.6)
    assert ys[5] is None and xs[5] is None  # rectangles are separate pieces of one trace


@pytest.mark.parametrize("frames", [10, 2000, 4001, 90_000])
def test_long_spectrograms_are_max_pooled_for_display(frames):
    features = np.zeros((frames, N_BINS), np.float32)
    features[frames // 2, 100] = 1.0  # one loud frame survives pooling
    image = display_spectrogram(features, max_columns=2000)
    assert image.values.shape[0] == N_BINS and image.values.shape[1] <= 2000 and image.values.dtype == np.uint8
    assert image.values[100].max() == 255 and image.values.sum() == 255
    assert image.times_s[0] >= 0 and image.times_s[-1] <= frames / FRAMES_PER_SECOND


def test_the_two_panels_share_time_and_pitch_axes():
    notes = [Note(0.1, 0.5, 60, 90), Note(0.5, 0.9, 64, 80)]
    image = display_spectrogram(np.zeros((60, N_BINS), np.float32))
    figure = transcription_figure(image, notes, duration_s=1.0)
    assert figure.layout.yaxis2.matches == "y" and figure.layout.xaxis.matches == "x2"
    assert "C4" in figure.layout.yaxis.ticktext and tuple(figure.layout.xaxis.range) == (0, 1.0)
    low, high = figure.layout.yaxis.range
    assert low < 60 - 0.5 and high > 64 + 0.5
    hover = figure.data[-1]
    assert list(hover.y) == [60, 64] and hover.customdata[0][0] == "C4"
    with_beats = transcription_figure(image, notes, duration_s=1.0, beats_s=[0.0, 0.5, 1.0, 1.5])
    lines = [trace for trace in with_beats.data if trace.name == "beats"]
    assert [trace.xaxis for trace in lines] == ["x", "x2"]  # on both panels
    assert list(lines[0].x) == [0.0, 0.0, None, 0.5, 0.5, None, 1.0, 1.0, None]  # up to the end of the recording
    assert with_beats.data[-1].name == "note details"


def test_beat_lines_and_the_caption_say_what_the_midi_follows():
    xs, ys = beat_lines([0.0, 0.6], duration_s=5.0)
    assert xs == [0.0, 0.0, None, 0.6, 0.6, None] and ys[:2] == [LOWEST_PITCH - 0.5, HIGHEST_PITCH + 0.5]
    tracked = BeatGrid(np.array([0.0, 0.4, 1.0, 1.55, 2.05]), 111.0, True, 0.72)
    assert beats_caption(tracked) == ("Beats (grey lines): 4 followed from the recording, 100-120 BPM (median 111.0, "
                                      "pulse clarity 0.72); the MIDI's tempo map follows them.")
    assert beats_caption(fixed_grid(90.0, duration_s=3.0)) == "Beats (grey lines): one tempo, 90.0 BPM, from the start."


# --- downloads and playback -----------------------------------------------------------------------------------


def test_the_downloads_hold_the_notes():
    notes = [Note(0.25, 0.75, 60, 90), Note(1.0, 1.5, 67, 70)]
    assert notes_csv(notes).decode().splitlines() == ["start_s,end_s,pitch,velocity", "0.2500,0.7500,60,90",
                                                      "1.0000,1.5000,67,70"]
    frame = notes_frame(notes)
    assert list(frame["note"]) == ["C4", "G4"] and list(frame["duration_s"]) == [0.5, 0.5]
    midi = pretty_midi.PrettyMIDI()
    instrument = pretty_midi.Instrument(program=40)
    instrument.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in notes]
    midi.instruments.append(instrument)
    back = pretty_midi.PrettyMIDI(io.BytesIO(midi_bytes(midi))).instruments[0]
    assert back.program == 40 and [(n.pitch, round(n.start, 3)) for n in back.notes] == [(60, 0.25), (67, 1.0)]
    from music21 import converter

    score = converter.parseData(sheet_music(notes, fixed_grid(120.0, duration_s=2.0), grid="1/8", title="two")
                                .decode(), format="musicxml")
    assert [n.pitch.midi for n in score.flatten().notes] == [60, 67] and score.metadata.bestTitle == "two"


def test_notes_play_back_for_the_length_of_the_recording():
    audio = render_notes([Note(0.1, 0.4, 60, 90)], duration_s=2.0, program=40)
    assert audio.size == 2 * SAMPLE_RATE and np.abs(audio).max() > 0.1
    longer = render_notes([Note(0.1, 2.5, 60, 90)], duration_s=2.0)
    assert longer.size > 2.5 * SAMPLE_RATE


@pytest.mark.parametrize(("notes", "program", "message"), [
    ([], 0, "no notes to play"), ([Note(0.1, 0.4, 60, 90)], 128, "not a General MIDI program")])
def test_playback_refuses_nothing_and_unknown_programs(notes, program, message):
    with pytest.raises(Mp3MidiError, match=message):
        render_notes(notes, duration_s=1.0, program=program)
