"""The Transcribe page's finish: scoring against a reference MIDI with missed and extra notes marked, progress while
a long upload is transcribed, the pitch-bend switch, and no Deploy button (AppTest on real rendered MP3s)."""

from __future__ import annotations

import io
import json
import tomllib
from pathlib import Path

import mido
import numpy as np
import pytest
import streamlit.config
from streamlit.testing.v1 import AppTest

from dashboard.network_pass import pass_for_upload, run_network
from dashboard.reference import reference_notes
from model.checkpoints import DEFAULT_CHECKPOINT
from model.pitch_bends import MEMBER_CHANNELS, midi_with_bends
from model.reference_match import compare_to_reference
from pipeline.audio import encode_mp3
from pipeline.constants import SAMPLE_RATE, pitch_to_hz
from pipeline.errors import Mp3MidiError
from pipeline.features import CHUNK_FRAMES
from pipeline.midi_io import write_midi
from pipeline.notes import Note, Part, Score
from pipeline.render import default_soundfont, render

REPO = Path(__file__).resolve().parents[1]
APP = str(REPO / "dashboard" / "app.py")
PAGE = "app_pages/transcribe.py"
PLAYED = tuple(Note(0.2 + i * 0.4, 0.5 + i * 0.4, pitch, 90) for i, pitch in enumerate((48, 55, 60, 64, 67)))
NEVER_PLAYED = Note(1.0, 1.3, 90, 80)  # in the reference only: the page must call it missed
CLIP_S = 2.6


@pytest.fixture(scope="module")
def melody_mp3(tmp_path_factory) -> bytes:
    path = tmp_path_factory.mktemp("upload") / "melody.mp3"
    encode_mp3(render([Part(0, False, PLAYED)], CLIP_S, soundfont=default_soundfont()), path)
    return path.read_bytes()


def midi_file(tmp_path: Path, notes) -> bytes:
    write_midi(Score((Part(0, False, tuple(notes)),), CLIP_S), tmp_path / "reference.mid")
    return (tmp_path / "reference.mid").read_bytes()


def transcribe_page(data: Path, monkeypatch) -> AppTest:
    monkeypatch.setenv("MP3_TO_MIDI_DATA", str(data))
    app = AppTest.from_file(APP, default_timeout=120)
    app.run()
    app.switch_page(PAGE).run()
    assert not app.exception
    return app


def metric(app: AppTest, label: str) -> str:
    return next(m.value for m in app.metric if m.label == label)


def figure_traces(app: AppTest) -> dict[str, dict]:
    spec = json.loads(app.get("plotly_chart")[0].proto.spec)
    return {trace.get("name"): trace for trace in spec["data"]}


def rectangles(trace: dict) -> list[tuple[float, float, float]]:
    """(start, end, pitch) of each closed rectangle in a trace drawn by ``note_outlines``."""
    xs, ys = trace["x"], trace["y"]
    return [(min(xs[i:i + 5]), max(xs[i:i + 5]), (min(ys[i:i + 5]) + max(ys[i:i + 5])) / 2)
            for i in range(0, len(xs), 6)]


# --- a reference MIDI beside the recording ----------------------------------------------------------------------


def test_a_reference_midi_scores_the_transcription_and_marks_missed_and_extra_notes(tmp_path, monkeypatch,
                                                                                      melody_mp3):
    app = transcribe_page(tmp_path, monkeypatch)
    app.file_uploader[0].set_value(("melody.mp3", melody_mp3, "audio/mpeg"))
    app.file_uploader[1].set_value(("melody.mid", midi_file(tmp_path, PLAYED + (NEVER_PLAYED,)), "audio/midi"))
    app.run()
    assert not app.exception and not app.error
    table = app.dataframe[0].value
    transcribed = [Note(r.start_s, r.end_s, r.pitch, r.velocity) for r in table.itertuples()]
    expected = compare_to_reference(list(PLAYED) + [NEVER_PLAYED], transcribed, duration_s=CLIP_S)
    assert metric(app, "Onset F1") == f"{expected.scores.onset_f1:.3f}"
    assert metric(app, "Note-with-offset F1") == f"{expected.scores.offset_f1:.3f}"
    assert metric(app, "Frame F1") == f"{expected.scores.frame_f1:.3f}"
    assert expected.scores.onset_recall == pytest.approx(5 / 6)  # every played note found, the unplayed one not
    assert metric(app, "Missed / extra notes") == f"1 / {len(expected.extra)}"
    traces = figure_traces(app)
    (missed,) = rectangles(traces["missed (1)"])
    assert missed == pytest.approx((NEVER_PLAYED.start_s, NEVER_PLAYED.end_s, NEVER_PLAYED.pitch), abs=0.002)
    extra = traces[f"extra ({len(expected.extra)})"]
    assert np.allclose(sorted(rectangles(extra)), sorted((n.start_s, n.end_s, n.pitch) for n in expected.extra))
    assert all(trace["xaxis"] == "x" for trace in (extra, traces["missed (1)"]))  # on the spectrogram panel


def test_without_a_reference_there_are_no_scores_or_marks(tmp_path, monkeypatch, melody_mp3):
    app = transcribe_page(tmp_path, monkeypatch)
    app.file_uploader[0].set_value(("melody.mp3", melody_mp3, "audio/mpeg")).run()
    assert not app.exception and not [m for m in app.metric if m.label == "Onset F1"]
    assert not [name for name in figure_traces(app) if name.startswith(("missed", "extra"))]


@pytest.mark.parametrize(("name", "content", "message"), [
    ("words.mid", b"just words, not a MIDI file", r"'words.mid': not a MIDI file"),
    ("empty.mid", b"", r"'empty.mid' is empty"),
    ("drums.mid", "drums", r"'drums.mid': MIDI has only drum notes"),
])
def test_a_bad_reference_says_why_and_the_transcription_stays(tmp_path, monkeypatch, melody_mp3, name, content,
                                                              message):
    if content == "drums":
        write_midi(Score((Part(0, True, PLAYED),), CLIP_S), tmp_path / name)
        content = (tmp_path / name).read_bytes()
    with pytest.raises(Mp3MidiError, match=message):
        reference_notes(name, content)
    app = transcribe_page(tmp_path, monkeypatch)
    app.file_uploader[0].set_value(("melody.mp3", melody_mp3, "audio/mpeg"))
    app.file_uploader[1].set_value((name, content, "audio/midi"))
    app.run()
    assert not app.exception
    assert "Cannot score against this reference" in app.error[0].value
    assert len(app.dataframe[0].value) >= len(PLAYED) and app.download_button


def test_reference_notes_refuse_other_names():
    with pytest.raises(Mp3MidiError, match=r"'notes.txt' is not named like a MIDI file"):
        reference_notes("notes.txt", b"MThd")


@pytest.mark.parametrize(("reference", "estimated", "missed", "extra"), [
    ([Note(0.0, 0.5, 60, 90)], [Note(0.02, 0.5, 60, 90)], [], []),  # within 50 ms: a match
    ([Note(0.0, 0.5, 60, 90)], [Note(0.08, 0.5, 60, 90)], [Note(0.0, 0.5, 60, 90)], [Note(0.08, 0.5, 60, 90)]),
    ([Note(0.0, 0.5, 60, 90)], [Note(0.0, 0.5, 61, 90)], [Note(0.0, 0.5, 60, 90)], [Note(0.0, 0.5, 61, 90)]),
    ([], [Note(0.0, 0.5, 61, 90)], [], [Note(0.0, 0.5, 61, 90)]),
    ([Note(0.0, 0.5, 60, 90)] * 2, [Note(0.0, 0.5, 60, 90)], [], []),  # a unison doubling is one note
])
def test_missed_and_extra_notes_are_the_unmatched_ones(reference, estimated, missed, extra):
    comparison = compare_to_reference(reference, estimated)
    assert comparison.missed == missed and comparison.extra == extra


# --- progress -------------------------------------------------------------------------------------------------


def test_a_long_upload_reports_progress_chunk_by_chunk(tmp_path):
    """Two and a half minutes of audio: three feature chunks of 60 s, each reported as it is made."""
    seconds = 150.0
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    audio = (0.2 * np.sin(2 * np.pi * pitch_to_hz(60) * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)).astype(np.float32)
    import soundfile

    buffer = io.BytesIO()
    soundfile.write(buffer, audio, SAMPLE_RATE, format="WAV")
    reported: list[float] = []
    network = run_network("long.wav", buffer.getvalue(), checkpoint=DEFAULT_CHECKPOINT, on_progress=reported.append)
    assert len(reported) == -(-int(seconds * SAMPLE_RATE / 256) // CHUNK_FRAMES) == 3
    assert reported == sorted(reported) and reported[-1] == 1.0 and reported[0] == pytest.approx(0.4, abs=0.01)
    assert network.deviations.shape == (network.transcription.activations["frame"].shape[0], 88)


def test_the_page_shows_no_progress_bar_once_done(tmp_path, monkeypatch, melody_mp3):
    app = transcribe_page(tmp_path, monkeypatch)
    app.file_uploader[0].set_value(("melody.mp3", melody_mp3, "audio/mpeg")).run()
    assert not app.exception and not app.get("progress") and app.dataframe


# --- pitch bends on the page ------------------------------------------------------------------------------------


def test_the_pitch_bend_switch_changes_the_download_and_the_playback(tmp_path, monkeypatch):
    t = np.arange(int(2.5 * SAMPLE_RATE)) / SAMPLE_RATE
    phase = 2 * np.pi * np.cumsum(pitch_to_hz(69) * 2 ** (40 * np.sin(2 * np.pi * 5 * t) / 1200)) / SAMPLE_RATE
    audio = 0.3 * sum(np.sin(k * phase) / k for k in range(1, 9)) * np.minimum(1, (2.5 - t) / 0.05)
    encode_mp3(audio.astype(np.float32), tmp_path / "vibrato.mp3")
    data = (tmp_path / "vibrato.mp3").read_bytes()
    app = transcribe_page(tmp_path / "data", monkeypatch)
    app.file_uploader[0].set_value(("vibrato.mp3", data, "audio/mpeg")).run()
    switch = next(toggle for toggle in app.toggle if toggle.label == "Pitch bends")
    assert switch.value is False
    plain_download = app.download_button[0].proto.url
    switch.set_value(True).run()
    assert not app.exception and not app.error
    assert app.download_button[0].proto.url != plain_download  # other bytes
    assert any("with its pitch bends" in m.value for m in app.markdown) and len(app.get("audio")) == 2
    # the bytes behind it: the page's own pass and decoding, written with bends
    network = pass_for_upload({}, "vibrato.mp3", data, checkpoint=DEFAULT_CHECKPOINT)
    result = network.transcription
    midi = mido.MidiFile(file=io.BytesIO(midi_with_bends(result.midi, result.notes, network.deviations)))
    channels = {m.channel for track in midi.tracks for m in track if m.type == "note_on"}
    assert channels & set(MEMBER_CHANNELS)
    assert any(m.type == "pitchwheel" and m.pitch != 0 for track in midi.tracks for m in track)


# --- no Deploy button -------------------------------------------------------------------------------------------


def test_the_toolbar_has_no_deploy_button_and_the_server_settings_stay(monkeypatch):
    settings = tomllib.loads((REPO / ".streamlit" / "config.toml").read_text(encoding="utf-8"))
    assert settings["client"]["toolbarMode"] in ("viewer", "minimal")  # "Deploy" shows only in developer mode
    assert settings["server"]["maxUploadSize"] >= 50 and settings["browser"]["gatherUsageStats"] is False
    monkeypatch.chdir(REPO)  # where `make run` starts Streamlit, which reads .streamlit/config.toml from there
    try:
        streamlit.config.get_config_options(force_reparse=True)
        assert streamlit.config.get_option("client.toolbarMode") == settings["client"]["toolbarMode"]
    finally:
        monkeypatch.undo()
        streamlit.config.get_config_options(force_reparse=True)
