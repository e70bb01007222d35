"""Audio at the edges: MP3 encoding through pydub, and loading any user audio as mono float32 at SAMPLE_RATE, whole
(``load_audio``) or as a stream of blocks (``audio_blocks``) for files of any length.

ffmpeg comes from the imageio-ffmpeg wheel (a static binary, no ffprobe), so nothing beyond pip is needed.
MP3, WAV, FLAC and OGG decode in-process through libsndfile; anything else (M4A, ...) goes through ffmpeg.
"""

from __future__ import annotations

import ctypes
import os
import subprocess
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile

from .constants import SAMPLE_RATE
from .errors import Mp3MidiError

DEFAULT_BITRATE = "64k"
_INT16_SCALE = 32767.0
_BLOCK_SECONDS = 30  # seconds per read: libsndfile's MP3 samples differ in the last bit with other read sizes
_FFMPEG_CHANNELS = 2
_FLOAT32_BYTES = 4
_SNDFILE_ERRORS = (soundfile.LibsndfileError, RuntimeError, TypeError)  # what sends a file on to ffmpeg


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
    path = _checked_path(path)
    try:
        pieces = list(_sndfile_blocks(path))
    except _SNDFILE_ERRORS:
        pieces = list(_ffmpeg_blocks(path))
    return _joined(pieces, path)


def audio_blocks(path: str | Path) -> Iterator[np.ndarray]:
    """Decode an audio file as consecutive [samples] float32 mono blocks at SAMPLE_RATE (some may be empty).

    The blocks joined are exactly ``load_audio(path)``, but memory holds one block (tens of seconds) at a time,
    whatever the file's length. Raises ``Mp3MidiError`` (possibly after some blocks) for a file that is not audio
    or that libsndfile stops decoding part way through.
    """
    path = _checked_path(path)
    produced = 0
    try:
        for block in _sndfile_blocks(path):
            produced += block.size
            yield block
    except _SNDFILE_ERRORS as exc:
        if produced:  # load_audio would start again with ffmpeg; a stream cannot take back what it gave
            raise Mp3MidiError(f"{str(path)!r} stopped decoding after {produced / SAMPLE_RATE:.1f} s ({exc})") from None
    else:
        if not produced:
            raise Mp3MidiError(f"{str(path)!r} holds no audio samples")
        return
    for block in _ffmpeg_blocks(path):
        produced += block.size
        yield block
    if not produced:
        raise Mp3MidiError(f"{str(path)!r} holds no audio samples")


def _checked_path(path: str | Path) -> Path:
    path = Path(path)
    if not path.exists():
        raise Mp3MidiError(f"no such file: {str(path)!r}")
    if path.is_dir():
        raise Mp3MidiError(f"{str(path)!r} is a folder, not an audio file")
    if path.stat().st_size == 0:
        raise Mp3MidiError(f"{str(path)!r} is empty")
    return path


def _joined(pieces: list[np.ndarray], path: Path) -> np.ndarray:
    audio = np.concatenate(pieces).astype(np.float32, copy=False) if pieces else np.zeros(0, np.float32)
    if audio.size == 0:
        raise Mp3MidiError(f"{str(path)!r} holds no audio samples")
    return audio


def _sndfile_blocks(path: Path) -> Iterator[np.ndarray]:
    """Decode, mix to mono and resample block by block: memory holds a block, not the file at its own rate and
    channel count (30 minutes of 44.1 kHz stereo would be 635 MB as float32; at 16 kHz mono it is 115 MB)."""
    import soxr

    with _quiet_stderr:  # libsndfile's MP3 decoder prints notes about damaged frames to stderr
        source = soundfile.SoundFile(str(path))
    with source:
        stream = None if source.samplerate == SAMPLE_RATE else soxr.ResampleStream(
            source.samplerate, SAMPLE_RATE, 1, dtype="float32", quality="HQ")
        while True:
            with _quiet_stderr:
                block = source.read(source.samplerate * _BLOCK_SECONDS, dtype="float32", always_2d=True)
            if not len(block):
                break
            mono = _mono(block)
            del block
            yield mono if stream is None else stream.resample_chunk(mono)
        if stream is not None:
            yield stream.resample_chunk(np.zeros(0, np.float32), last=True)


def _mono(block: np.ndarray) -> np.ndarray:
    """[samples, channels] -> [samples]: the channels' mean, bit for bit ``block.mean(axis=1)``, which is slow over
    a short axis (more time than decoding the MP3 itself for stereo)."""
    if block.shape[1] == 1:
        return block[:, 0]
    if block.shape[1] == 2:
        return (block[:, 0] + block[:, 1]) / 2
    return block.mean(axis=1)


class _QuietLibraryStderr:
    """Silence what C libraries print through the C library's ``stderr`` stream, for as long as any thread is
    inside (a context manager; decodes in several threads at once share one silence).

    libsndfile's MP3 decoder (mpg123) prints notes about damaged frames with ``fprintf(stderr, ...)``. Here the
    process's ``stderr`` FILE pointer is pointed at /dev/null while a decode runs, instead of file descriptor 2:
    Python's own writes (``sys.stderr``, logging, tracebacks) from any thread, and child processes started
    meanwhile, still reach the real stderr; only C code writing through stdio's ``stderr`` in another thread at that
    moment is silenced with it. The /dev/null stream is opened once and never closed, so a thread in the middle of
    a write never sees it freed. Outside glibc (whose ``stderr`` is a plain variable) nothing is silenced.
    """

    def __init__(self):
        self._lock = threading.Lock()
        self._inside = 0
        self._saved: int | None = None
        self._pointer = self._null = None
        self._looked_up = False

    def __enter__(self):
        with self._lock:
            if not self._looked_up:  # on first use, not at import
                self._pointer, self._null = _stdio_stderr()
                self._looked_up = True
            if self._inside == 0 and self._pointer is not None:
                self._saved, self._pointer.value = self._pointer.value, self._null
            self._inside += 1
        return self

    def __exit__(self, *exc_info):
        with self._lock:
            self._inside -= 1
            if self._inside == 0 and self._pointer is not None:
                self._pointer.value = self._saved
        return False


def _stdio_stderr() -> tuple[ctypes.c_void_p | None, int | None]:
    """(the C library's ``stderr`` FILE pointer as a writable ctypes variable, a FILE open on /dev/null)."""
    if not hasattr(os, "confstr") or not (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc"):
        return None, None
    try:
        libc = ctypes.CDLL(None)
        pointer = ctypes.c_void_p.in_dll(libc, "stderr")
        libc.fopen.restype, libc.fopen.argtypes = ctypes.c_void_p, (ctypes.c_char_p, ctypes.c_char_p)
    except (OSError, ValueError, AttributeError):
        return None, None
    null = libc.fopen(os.devnull.encode(), b"w")
    return (pointer, null) if null and pointer.value else (None, None)


_quiet_stderr = _QuietLibraryStderr()


def _ffmpeg_blocks(path: Path) -> Iterator[np.ndarray]:
    """Decode anything ffmpeg reads, straight to SAMPLE_RATE, as mono blocks read from its output as it comes."""
    # Two channels out (mono is copied to both), averaged here: ffmpeg's own mono downmix adds +3 dB.
    command = [ffmpeg_exe(), "-v", "error", "-nostdin", "-i", str(path), "-f", "f32le",
               "-ac", str(_FFMPEG_CHANNELS), "-ar", str(SAMPLE_RATE), "-"]
    block_bytes = _FFMPEG_CHANNELS * _FLOAT32_BYTES * SAMPLE_RATE * _BLOCK_SECONDS
    produced = 0
    with tempfile.TemporaryFile() as errors, \
            subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as process:
        try:
            while chunk := process.stdout.read(block_bytes):
                whole = len(chunk) - len(chunk) % (_FFMPEG_CHANNELS * _FLOAT32_BYTES)
                audio = np.frombuffer(chunk[:whole], dtype="<f4").reshape(-1, _FFMPEG_CHANNELS)
                produced += len(audio)
                yield _mono(audio)
        finally:
            process.stdout.close()
            returncode = process.wait()
        if returncode != 0 or not produced:
            errors.seek(0)
            reason = errors.read().decode(errors="replace").strip().splitlines()
            detail = reason[-1].replace(f"{path}: ", "") if reason else "no audio stream"  # the path leads already
            raise Mp3MidiError(f"{str(path)!r} is not audio that can be decoded ({detail})")
