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

from .atomic import atomic_path
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
        from pydub.exceptions import CouldntEncodeError

    AudioSegment.converter = ffmpeg_exe()
    pcm = (np.clip(audio, -1.0, 1.0) * _INT16_SCALE).astype("<i2")
    segment = AudioSegment(data=pcm.tobytes(), sample_width=2, frame_rate=SAMPLE_RATE, channels=1)
    with atomic_path(path) as partial:
        try:
            segment.export(str(partial), format="mp3", bitrate=bitrate, parameters=["-compression_level", "9"])
        except CouldntEncodeError as exc:  # ffmpeg's own words are the last line of pydub's message
            raise Mp3MidiError(f"cannot encode {str(path)!r} as MP3 ({str(exc).strip().splitlines()[-1]})") from None


def load_audio(path: str | Path, *, max_seconds: float | None = None) -> np.ndarray:
    """Decode an audio file to [samples] float32 mono at SAMPLE_RATE. Raises ``Mp3MidiError`` if it is not audio,
    if a sample is not a number (NaN, infinity), or if it lasts longer than ``max_seconds`` (None: no limit); a file
    over the limit is refused before more than ``max_seconds`` of it is held."""
    path = _checked_path(path)
    limit = _Limit(path, max_seconds)
    try:
        pieces = list(limit.checked(_sndfile_blocks(path, limit)))
    except _SNDFILE_ERRORS:
        limit = _Limit(path, max_seconds)
        pieces = list(limit.checked(_ffmpeg_blocks(path)))
    return _joined(pieces, path)


def audio_blocks(path: str | Path, *, max_seconds: float | None = None) -> Iterator[np.ndarray]:
    """Decode an audio file as consecutive [samples] float32 mono blocks at SAMPLE_RATE (some may be empty).

    The blocks joined are exactly ``load_audio(path)``, but memory holds one block (tens of seconds) at a time,
    whatever the file's length. Raises ``Mp3MidiError`` (possibly after some blocks) for a file that is not audio,
    that libsndfile stops decoding part way through, that holds a sample that is not a number, or that lasts longer
    than ``max_seconds`` (None: no limit; a file whose header says so is refused before its first block).
    """
    path = _checked_path(path)
    limit = _Limit(path, max_seconds)
    produced = 0
    try:
        for block in limit.checked(_sndfile_blocks(path, limit)):
            produced += block.size
            yield block
    except _SNDFILE_ERRORS as exc:
        if produced:  # load_audio would start again with ffmpeg; a stream cannot take back what it gave
            raise Mp3MidiError(f"{str(path)!r} stopped decoding after {produced / SAMPLE_RATE:.1f} s ({exc})") from None
    else:
        if not produced:
            raise Mp3MidiError(f"{str(path)!r} holds no audio samples")
        return
    for block in limit.checked(_ffmpeg_blocks(path)):
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


def _sndfile_blocks(path: Path, limit: _Limit | None = None) -> Iterator[np.ndarray]:
    """Decode, mix to mono and resample block by block: memory holds a block, not the file at its own rate and
    channel count (30 minutes of 44.1 kHz stereo would be 635 MB as float32; at 16 kHz mono it is 115 MB).
    A file whose length is over ``limit`` is refused before its first block is resampled."""
    import soxr

    with _quiet_stderr:  # libsndfile's MP3 decoder prints notes about damaged frames to stderr
        source = soundfile.SoundFile(str(path))
    with source:
        if limit is not None:
            limit.check_length(source)
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


class _Limit:
    """What a decoded file may hold: numbers only, and at most ``max_seconds`` of audio (None: any length).

    A header's length is exact for WAV, FLAC and OGG (libsndfile clamps a WAV's to the bytes present), so a file
    over the limit is refused at once. An MP3's is an estimate from its size and first frame (a large ID3 picture
    inflates it), so one that seems too long is counted by decoding without resampling (about 13,000x real time
    at 8 kb/s) before it is refused. Whatever a header says, ``checked`` stops a stream that runs past the limit.
    """

    def __init__(self, path: Path, max_seconds: float | None):
        if max_seconds is not None and not max_seconds > 0:
            raise Mp3MidiError(f"the longest audio to accept must be a positive number of seconds; got {max_seconds}")
        self.path, self.max_seconds, self.samples = path, max_seconds, 0

    def check_length(self, source: soundfile.SoundFile) -> None:
        if self.max_seconds is None or source.frames <= self.max_seconds * source.samplerate:
            return
        if source.format != "MP3":
            raise Mp3MidiError(f"{str(self.path)!r} lasts {duration_text(source.frames / source.samplerate)}, "
                               f"over the limit of {self.max_seconds / 60:g} min")
        frames = 0
        with _quiet_stderr, soundfile.SoundFile(str(self.path)) as counted:
            while block := len(counted.read(counted.samplerate * _BLOCK_SECONDS, dtype="float32", always_2d=True)):
                frames += block
                if frames > self.max_seconds * counted.samplerate:
                    self._refuse()

    def checked(self, blocks: Iterator[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.samples += block.size
            if self.max_seconds is not None and self.samples > self.max_seconds * SAMPLE_RATE:
                self._refuse()
            if not np.isfinite(block).all():
                raise Mp3MidiError(f"{str(self.path)!r} holds samples that are not numbers (NaN or infinity)")
            yield block

    def _refuse(self):
        raise Mp3MidiError(f"{str(self.path)!r} lasts longer than the limit of {self.max_seconds / 60:g} min")


def duration_text(seconds: float) -> str:
    """'1.5 s' under a minute, '208.3 min' above."""
    return f"{seconds:.1f} s" if seconds < 60 else f"{seconds / 60:.1f} min"


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
