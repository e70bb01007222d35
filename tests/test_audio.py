"""MP3 round trip and user audio loading, on audio rendered through FluidSynth in the test."""

import subprocess
from pathlib import Path

import numpy as np
import pytest
import soundfile

from pipeline.audio import _mono, audio_blocks, encode_mp3, ffmpeg_exe, load_audio
from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram
from pipeline.labels import note_labels
from pipeline.notes import Note, Part
from pipeline.render import default_soundfont, render
from tests.conftest import melody

CLICK_TIMES = [0.25, 0.61, 1.0, 1.37, 1.8, 2.22, 2.5]


@pytest.fixture(scope="module")
def clicks() -> tuple[np.ndarray, list[Note]]:
    """Short, loud woodblock hits (program 115) at irregular times: a click track with known onsets."""
    notes = [Note(t, t + 0.08, 72, 127) for t in CLICK_TIMES]
    return render([Part(115, False, tuple(notes))], 3.0, soundfont=default_soundfont()), notes


@pytest.mark.parametrize("bitrate", ["32k", "64k", "128k"])
def test_mp3_round_trip_keeps_length_and_alignment(tmp_path: Path, clicks, bitrate):
    audio, notes = clicks
    path = tmp_path / "clicks.mp3"
    encode_mp3(audio, path, bitrate=bitrate)
    decoded = load_audio(path)
    assert decoded.shape == audio.shape  # encoder delay and padding are removed on decoding
    lags = np.arange(-400, 401)
    scores = [np.dot(audio[1000:-1000], np.roll(decoded, -lag)[1000:-1000]) for lag in lags]
    assert lags[int(np.argmax(scores))] == 0

    features = spectrogram(decoded)
    flux = np.maximum(np.diff(features, axis=0), 0).sum(axis=1)  # onset strength per frame
    labels = note_labels(notes, features.shape[0])
    for onset_frame in np.flatnonzero(labels.onset.any(axis=1)):
        window = slice(onset_frame - 3, onset_frame + 4)
        peak = onset_frame - 3 + int(np.argmax(flux[window])) + 1  # diff shifts by one frame
        assert abs(peak - onset_frame) <= 1, f"onset at frame {onset_frame}, flux peak at {peak}"


def test_no_partial_file_is_left(tmp_path: Path, clicks):
    encode_mp3(clicks[0], tmp_path / "a.mp3")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.mp3"]


@pytest.mark.parametrize(("suffix", "rate", "channels"), [(".wav", 44_100, 2), (".flac", 22_050, 1),
                                                          (".ogg", 48_000, 2), (".m4a", 44_100, 2)])
def test_loads_other_formats_rates_and_channels(tmp_path: Path, clicks, suffix, rate, channels):
    audio = clicks[0]
    wav = tmp_path / "source.wav"
    soundfile.write(wav, np.repeat(audio[:, None], channels, axis=1), SAMPLE_RATE)
    path = tmp_path / f"clip{suffix}"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), "-ar", str(rate), str(path)], check=True)
    loaded = load_audio(path)
    assert abs(loaded.size - audio.size) < 0.05 * SAMPLE_RATE  # AAC pads a little
    assert np.abs(loaded).max() == pytest.approx(np.abs(audio).max(), rel=0.2)


@pytest.mark.parametrize("decode", [load_audio, lambda path: list(audio_blocks(path))], ids=["whole", "blocks"])
@pytest.mark.parametrize(("content", "reason"), [
    (None, "no such file"), (b"", "is empty"), (b"hello, I am a text file" * 50, "not audio"),
    ("folder", "is a folder")])
def test_bad_audio_inputs(tmp_path: Path, content, reason, decode):
    path = tmp_path / "input.mp3"
    if content == "folder":
        path.mkdir()
    elif content is not None:
        path.write_bytes(content)
    with pytest.raises(Mp3MidiError, match=reason):
        decode(path)


@pytest.mark.parametrize(("suffix", "rate", "channels"), [(".mp3", SAMPLE_RATE, 1), (".mp3", 44_100, 2),
                                                          (".wav", SAMPLE_RATE, 2), (".m4a", 44_100, 2)])
def test_blocks_join_into_exactly_the_loaded_audio(tmp_path: Path, suffix, rate, channels):
    """Long enough for several blocks; MP3 through libsndfile (resampled or not), M4A through ffmpeg."""
    audio = np.tile(render([Part(0, False, melody(12))], 4.0, soundfont=default_soundfont()), 20)  # 80 s
    wav = tmp_path / "source.wav"
    soundfile.write(wav, np.repeat(audio[:, None], channels, axis=1) * [1.0, 0.5][:channels], SAMPLE_RATE)
    path = tmp_path / f"long{suffix}"
    subprocess.run([ffmpeg_exe(), "-v", "error", "-y", "-i", str(wav), "-ar", str(rate), str(path)], check=True)
    blocks = list(audio_blocks(path))
    assert len(blocks) > 2 and all(block.dtype == np.float32 and block.ndim == 1 for block in blocks)
    loaded = load_audio(path)
    assert np.concatenate(blocks).tobytes() == loaded.tobytes()
    if suffix == ".wav":  # no resampling: the mono mix is numpy's mean of the channels, to the bit
        expected = soundfile.read(path, dtype="float32", always_2d=True)[0].mean(axis=1)
        assert loaded.tobytes() == expected.tobytes()


def test_truncated_mp3_decodes_what_is_there_or_says_why(tmp_path: Path, clicks):
    full = tmp_path / "full.mp3"
    encode_mp3(clicks[0], full)
    cut = tmp_path / "cut.mp3"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    decoded = load_audio(cut)
    assert 0.3 * clicks[0].size < decoded.size < 0.7 * clicks[0].size


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_the_mono_mix_is_the_channels_mean_bit_for_bit(channels):
    block = np.random.default_rng(channels).normal(0.0, 0.3, (10_001, channels)).astype(np.float32)
    mixed = _mono(block)
    assert mixed.shape == (10_001,) and mixed.dtype == np.float32
    assert np.array_equal(mixed, block.mean(axis=1))
