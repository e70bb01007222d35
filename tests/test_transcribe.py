"""Transcription plumbing: inputs, outputs, tempo, quantization and bad input, through the real library and CLI.

These use a small untrained checkpoint, so they test everything but the network's skill; the default model's
quality is measured by `python -m model evaluate` (docs/MODEL_CARD.md).
"""

import io
import subprocess
import sys
from pathlib import Path

import numpy as np
import pretty_midi
import pytest
import torch

from model.checkpoints import save_checkpoint
from model.network import Transcriber
from model.tempo import estimate_tempo
from model.transcribe import quantized, transcribe
from pipeline.audio import encode_mp3
from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram
from pipeline.notes import Note, Part
from pipeline.render import default_soundfont, render
from tests.conftest import melody

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    path = tmp_path_factory.mktemp("ckpt") / "untrained.pt"
    save_checkpoint(path, model=Transcriber(), step=0, metrics={})
    return path


def click_track(bpm: float, seconds: float = 12.0) -> np.ndarray:
    beat = 60.0 / bpm
    notes = tuple(Note(i * beat, i * beat + 0.05, 76, 120) for i in range(int(seconds / beat)))
    return render([Part(115, False, notes)], seconds, soundfont=default_soundfont())


@pytest.mark.parametrize("bpm", [60.0, 90.0, 120.0, 150.0, 180.0])
def test_the_midi_tempo_follows_a_click_track(tmp_path, checkpoint, bpm):
    path = tmp_path / "clicks.mp3"
    encode_mp3(click_track(bpm), path)
    result = transcribe(path, checkpoint=checkpoint)
    buffer = io.BytesIO()
    result.midi.write(buffer)
    buffer.seek(0)
    _, tempi = pretty_midi.PrettyMIDI(buffer).get_tempo_changes()
    assert tempi[0] == pytest.approx(bpm, rel=0.02)
    assert estimate_tempo(spectrogram(click_track(bpm))) == pytest.approx(bpm, rel=0.02)


def test_quantize_snaps_to_the_grid_and_keeps_notes_apart():
    notes = [Note(0.02, 0.11, 60, 90), Note(0.13, 0.14, 60, 80), Note(0.5, 0.51, 64, 70)]
    snapped = quantized(notes, 120.0, "1/16")  # a sixteenth at 120 BPM is 0.125 s
    assert all(round(n.start_s / 0.125, 6).is_integer() and n.end_s > n.start_s for n in snapped)
    assert quantized(notes, 120.0, None) == notes


def test_silence_gives_an_empty_midi_and_a_warning(checkpoint):
    result = transcribe(np.zeros(SAMPLE_RATE * 2, np.float32), checkpoint=checkpoint)
    assert result.notes == [] and "silent" in result.warnings[0]
    assert result.midi.instruments[0].notes == []


@pytest.mark.parametrize(("options", "message"), [
    (dict(program=200), "General MIDI program"), (dict(quantize="1/5"), "quantize must be"),
    (dict(tempo="fast"), "tempo must be"), (dict(tempo=500), "outside")])
def test_bad_options(checkpoint, options, message):
    with pytest.raises(Mp3MidiError, match=message):
        transcribe(np.zeros(SAMPLE_RATE, np.float32) + 0.1, checkpoint=checkpoint, **options)


def test_cli_writes_each_input_and_reports_each_bad_one(tmp_path, checkpoint):
    good = tmp_path / "good.mp3"
    encode_mp3(render([Part(0, False, melody(6))], 3.0, soundfont=default_soundfont()), good)
    (tmp_path / "text.mp3").write_text("not audio at all, just words" * 20)
    (tmp_path / "empty.wav").write_bytes(b"")
    truncated = tmp_path / "truncated.mp3"
    truncated.write_bytes(good.read_bytes()[:200])
    out = tmp_path / "out"
    inputs = [good, tmp_path / "text.mp3", tmp_path / "empty.wav", tmp_path / "missing.flac", truncated, tmp_path]
    result = subprocess.run([sys.executable, "-m", "model", "transcribe", *map(str, inputs), "-o", str(out),
                             "--checkpoint", str(checkpoint), "--csv", "--quantize", "1/16", "--program", "40"],
                            cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 2
    errors = result.stderr.strip().splitlines()
    assert len(errors) >= 4 and all(line.startswith("error: ") for line in errors), result.stderr
    assert "Traceback" not in result.stderr
    assert (out / "good.mid").is_file() and (out / "good.csv").read_text().startswith("start_s,end_s,pitch,velocity")
    import mido

    programs = [m.program for t in mido.MidiFile(str(out / "good.mid")).tracks for m in t if m.type == "program_change"]
    assert programs == [40]  # the track keeps its instrument even when the (untrained) network hears no notes
    assert not (out / "text.mid").exists() and not (out / "empty.mid").exists()


def test_cli_one_input_to_one_file(tmp_path, checkpoint):
    good = tmp_path / "song.wav"
    import soundfile

    soundfile.write(good, render([Part(0, False, melody(4))], 2.0, soundfont=default_soundfont()), SAMPLE_RATE)
    result = subprocess.run([sys.executable, "-m", "model", "transcribe", str(good), "-o", str(tmp_path / "x.mid"),
                             "--checkpoint", str(checkpoint), "--tempo", "100"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert pretty_midi.PrettyMIDI(str(tmp_path / "x.mid")).get_tempo_changes()[1][0] == pytest.approx(100.0)


@pytest.mark.parametrize("program", [0, 40, 73])  # piano, violin, flute
def test_the_default_model_hears_the_notes_of_a_rendered_mp3(tmp_path, program):
    """End to end through MP3 with the committed model: every played note comes back (pitch exact, onset
    within 50 ms). Its precision (extra notes, mostly harmonics) is measured in docs/MODEL_CARD.md, not here."""
    from model.metrics import score_notes

    notes = tuple(Note(0.2 + i * 0.4, 0.5 + i * 0.4, 48 + (i * 5) % 24, 90) for i in range(10))
    path = tmp_path / "melody.mp3"
    encode_mp3(render([Part(program, False, notes)], 4.6, soundfont=default_soundfont()), path)
    result = transcribe(path)
    assert score_notes(list(notes), result.notes).onset_recall >= 0.9
    assert all(1 <= n.velocity <= 127 and n.end_s > n.start_s for n in result.notes)
