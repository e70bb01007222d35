"""A corpus of bad and strange inputs, built in code into a folder: what a careless or hostile user could hand over.

``make_corpus(folder)`` writes every file and returns their names with what a correct program must do with each:
``GOOD`` (a real, if odd, recording or MIDI: a result), ``REFUSED`` (one clear line naming the file) or ``EITHER``
(bytes that a decoder may fairly read as a little noise or refuse: never a crash). Files are a few kB each; the
ones that claim or decode to hours are small too.
"""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import numpy as np
import soundfile

from pipeline.audio import ffmpeg_exe

GOOD, REFUSED, EITHER = "good", "refused", "either"
AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg", ".m4a")
SUFFIXES = (*AUDIO_SUFFIXES, ".mid")
HOURS_MP3_REPEATS = 400  # copies of a 30 s, 8 kb/s MP3 one after the other: 3 h 20 min of audio in 1.2 MB
HOURS_WAV_RATE = 8  # Hz: a WAV at 8 samples a second, 100 kB of it is 3.5 hours at 16 kHz
LOUD_NOTE_HZ = 440.0


def _tone(seconds: float, rate: int, channels: int = 1) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    wave = 0.4 * np.sin(2 * np.pi * LOUD_NOTE_HZ * t) * (t % 0.5 < 0.3)  # a beeping A4
    return np.repeat(wave[:, None], channels, axis=1).astype(np.float32)


def _wav(path: Path, audio: np.ndarray, rate: int, subtype: str = "PCM_16") -> bytes:
    soundfile.write(str(path), audio, rate, subtype=subtype, format="WAV")
    return path.read_bytes()


def _ffmpeg_encode(source: Path, target: Path, *options: str) -> bytes:
    subprocess.run([ffmpeg_exe(), "-v", "error", "-nostdin", "-y", "-i", str(source), *options, str(target)],
                   check=True)
    return target.read_bytes()


def _three_hour_midi(path: Path) -> bytes:
    from tests.conftest import write_raw_midi

    ticks = 480 * 2 * 60 * 60 * 3  # at the default 120 BPM
    return write_raw_midi(path, [("note_on", {"note": 60, "velocity": 100}, 0),
                                 ("note_off", {"note": 60}, ticks)]).read_bytes()


def good_midi(path: Path) -> Path:
    from tests.conftest import write_piece

    return write_piece(path)


def make_corpus(folder: Path, *, suffixes: tuple[str, ...] = SUFFIXES) -> dict[str, str]:
    """Write the corpus into ``folder`` (only files whose suffix is in ``suffixes``); returns {file name: GOOD,
    REFUSED or EITHER}."""
    folder.mkdir(parents=True, exist_ok=True)
    work = folder / ".build"  # the sources the corpus is cut from; removed at the end
    work.mkdir()
    rng = np.random.default_rng(12)
    files: dict[str, tuple[bytes, str]] = {}
    for suffix in SUFFIXES:
        kind = suffix[1:]  # in the stem too: no two files share a stem (they would share an output name)
        files[f"random-{kind}{suffix}"] = (rng.integers(0, 256, 4096, dtype=np.uint8).tobytes(), EITHER)
        files[f"text-{kind}{suffix}"] = (b"This is a letter, not a recording. " * 60, REFUSED)
        files[f"empty-{kind}{suffix}"] = (b"", REFUSED)

    tone = _tone(2.0, 44_100)
    wav = _wav(work / "tone.wav", tone, 44_100)
    mp3 = _ffmpeg_encode(work / "tone.wav", work / "tone.mp3", "-b:a", "64k")
    flac = _ffmpeg_encode(work / "tone.wav", work / "tone.flac")
    ogg = _ffmpeg_encode(work / "tone.wav", work / "tone.ogg", "-c:a", "libvorbis")
    m4a = _ffmpeg_encode(work / "tone.wav", work / "tone.m4a", "-c:a", "aac", "-b:a", "64k")
    for suffix, data in ((".wav", wav), (".mp3", mp3), (".flac", flac), (".ogg", ogg), (".m4a", m4a)):
        files[f"header-only-{suffix[1:]}{suffix}"] = (data[:40], EITHER)  # cut inside the header or first frame
        files[f"half-{suffix[1:]}{suffix}"] = (data[: len(data) // 2], EITHER)  # what is there may decode
    files["one-sample.wav"] = (_wav(work / "one.wav", np.zeros((1, 1), np.float32) + 0.5, 16_000), EITHER)
    files["eight-channels-48k.wav"] = (_wav(work / "eight.wav", _tone(1.5, 48_000, channels=8), 48_000), GOOD)
    for name, value in (("nan", np.nan), ("infinity", np.inf)):
        audio = np.full((16_000, 1), value, np.float32)
        audio[::7] = 0.1  # not one constant: a decoder cannot take it for silence
        files[f"float-{name}.wav"] = (_wav(work / f"{name}.wav", audio, 16_000, subtype="FLOAT"), REFUSED)
    claimed = bytearray(wav)  # RIFF and data sizes say 4 GiB; the file holds 2 s
    claimed[4:8] = struct.pack("<I", 0xFFFFFFF0)
    data_at = claimed.index(b"data")
    claimed[data_at + 4:data_at + 8] = struct.pack("<I", 0xFFFFFFE0)
    files["claims-hours.wav"] = (bytes(claimed), EITHER)
    slow = rng.uniform(-0.3, 0.3, (100_000, 1)).astype(np.float32)
    files["hours-at-8-hz.wav"] = (_wav(work / "slow.wav", slow, HOURS_WAV_RATE), REFUSED)
    silence = np.zeros((30 * 8_000, 1), np.float32)
    _wav(work / "quiet.wav", silence, 8_000)
    short = _ffmpeg_encode(work / "quiet.wav", work / "quiet.mp3", "-b:a", "8k", "-write_xing", "0",
                           "-id3v2_version", "0")
    files["hours-low-bitrate.mp3"] = (short * HOURS_MP3_REPEATS, REFUSED)

    midi = good_midi(work / "piece.mid").read_bytes()
    files["good.mid"] = (midi, GOOD)
    files["huge-header-length.mid"] = (b"MThd" + struct.pack(">I", 0xFFFFFFF0) + midi[8:], REFUSED)
    track_at = midi.index(b"MTrk")
    files["huge-track-length.mid"] = (midi[:track_at + 4] + struct.pack(">I", 0x7FFFFFF0) + midi[track_at + 8:],
                                      EITHER)
    files["header-only-mid.mid"] = (midi[:14], REFUSED)
    files["half-mid.mid"] = (midi[: len(midi) // 2], EITHER)
    files["three-hours.mid"] = (_three_hour_midi(work / "long.mid"), REFUSED)
    files["good-tone.mp3"] = (mp3, GOOD)
    files["good-tone-m4a.m4a"] = (m4a, GOOD)  # read through ffmpeg, not libsndfile

    for child in work.iterdir():
        child.unlink()
    work.rmdir()
    kept = {}
    for name, (data, expected) in files.items():
        if Path(name).suffix in suffixes:
            (folder / name).write_bytes(data)
            kept[name] = expected
    return kept
