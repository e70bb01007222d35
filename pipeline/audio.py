"""Audio at the edges: MP3 encoding through pydub, and loading any user audio as mono float32 at SAMPLE_RATE.

ffmpeg comes from the imageio-ffmpeg wheel (a static binary, no ffprobe), so nothing beyond pip is needed.
MP3, WAV, FLAC and OGG decode in-process through libsndfile; anything else (M4A, ...) goes through ffmpeg.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import warnings
from pathlib import Path

import numpy as np
import soundfile

from .constants import SAMPLE_RATE
from .errors import Mp3MidiError

DEFAULT_BITRATE = "64k"
_INT16_SCALE = 32767.0
_BLOCK_SECONDS = 30


def ffmpeg_exe() -> str:
    import imageio_ffmpeg

    return imageio_ffmpeg.get_ffmpeg_exe()


def encode_mp3(audio: np.ndarray, path: str | Path, *, bitrate: str = DEFAULT_BITRATE) -> None:
    """Write mono float audio at SAMPLE_RATE as an MP3 through pydub's AudioSegment.

    audio: [samples] float in +-1. The file appears only when complete (written to a temporary name, then renamed).
    """
    with warnings.catch_warnings():  # pydub warns at import when ffmpeg is not on PATH; we name the binary below
        warnings.simplefilter("ignore", RuntimeWarning)
        from pydub import AudioSegment

    AudioSegment.converter = ffmpeg_exe()
    pcm = (np.clip(audio, -1.0, 1.0) * _INT16_SCALE).astype("<i2")
    segment = AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=SAMPLE_RATE, channels=1)
    path = Path(path)
    partial = path.with_name(path.name + ".partial")
    segment.export(str(partial), format="mp3", bitrate=bitrate, parameters=["-compression_level", "9"])
    os.replace(partial, path)


def load_audio(path: str | Path) -> np.ndarray:
    """Decode an audio file to [samples] float32 mono at SAMPLE_RATE. Raises ``Mp3MidiError`` if it is not audio."""
    path = Path(path)
    if not path.exists():
        raise Mp3MidiError(f"no such file: {str(path)!r}")
    if path.is_dir():
        raise Mp3MidiError(f"{str(path)!r} is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise Mp3MidiError(f"{str(path)!r} is empty")
    try:
        with _quiet_stderr():  # libsndfile's MP3 decoder prints notes about damaged frames straight to stderr
            audio = _read_in_blocks(path)
    except (soundfile.LibsndfileError, RuntimeError, TypeError):
        audio, rate = _decode_with_ffmpeg(path)
        audio = to_model_rate(audio.mean(axis=1), rate)
    if audio.size == 0:
        raise Mp3MidiError(f"{str(path)!r} holds no audio samples")
    return audio


def _read_in_blocks(path: Path) -> np.ndarray:
    """Decode, mix to mono and resample block by block: memory holds the result, not the file at its own rate
    and channel count (30 minutes of 44.1 kHz stereo would be 635 MB as float32; at 16 kHz mono it is 115 MB)."""
    import soxr

    with soundfile.SoundFile(str(path)) as source:
        stream = None if source.samplerate == SAMPLE_RATE else soxr.ResampleStream(
            source.samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        pieces = []
        while len(block := source.read(source.samplerate * _BLOCK_SECONDS, dtype="float32", always_2d=True)):
            mono = block.mean(axis=1)
            pieces.append(mono if stream is None else stream.resample_chunk(mono))
        if stream is not None:
            pieces.append(stream.resample_chunk(np.zeros(0, np.float32), last=True))
    return np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)


@contextlib.contextmanager
def _quiet_stderr():
    """Point file descriptor 2 at /dev/null for the duration (C libraries write there directly)."""
    saved = os.dup(2)
    try:
        with open(os.devnull, "wb") as null:
            os.dup2(null.fileno(), 2)
            yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def to_model_rate(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample [samples] mono audio from ``rate`` to SAMPLE_RATE."""
    if rate == SAMPLE_RATE:
        return np.ascontiguousarray(audio, dtype=np.float32)
    import soxr

    return soxr.resample(audio, rate, SAMPLE_RATE, quality="HQ").astype(np.float32)


def _decode_with_ffmpeg(path: Path) -> tuple[np.ndarray, int]:
    # Two channels out (mono is copied to both), averaged by the caller: ffmpeg's own mono downmix adds +3 dB.
    command = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "f32le", "-ac", "2",
               "-ar", str(SAMPLE_RATE), "-"]
    result = subprocess.run(command, capture_output=True, check=False)
    if result.returncode != 0 or not result.stdout:
        reason = result.stderr.decode(errors="replace").strip().splitlines()
        detail = reason[-1] if reason else "no audio stream"
        raise Mp3MidiError(f"{str(path)!r} is not audio that can be decoded ({detail})")
    audio = np.frombuffer(result.stdout, dtype="<f4").reshape(-1, 2)
    return audio, SAMPLE_RATE
