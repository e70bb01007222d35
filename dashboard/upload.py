"""An uploaded recording: the size limit, the formats taken, and its bytes decoded to audio with messages that name
the file the user gave (never a temporary path on the server)."""

from __future__ import annotations

import hashlib
import tempfile
from pathlib import Path

import numpy as np

from pipeline.audio import load_audio
from pipeline.constants import MAX_UPLOAD_MINUTES
from pipeline.errors import Mp3MidiError

MAX_UPLOAD_MB = 50  # per file, stated on the Transcribe page; the server's own (.streamlit/config.toml) is equal
BYTES_PER_MB = 2**20  # Streamlit counts upload limits in MiB
AUDIO_MIME = {"mp3": "audio/mpeg", "wav": "audio/wav", "flac": "audio/flac", "ogg": "audio/ogg", "m4a": "audio/mp4"}
AUDIO_SUFFIXES = tuple(AUDIO_MIME)


def upload_help(*, max_mb: int = MAX_UPLOAD_MB, max_minutes: float = MAX_UPLOAD_MINUTES) -> str:
    """The sentence the uploader shows: which formats, how big and how long."""
    names = ", ".join(suffix.upper() for suffix in AUDIO_SUFFIXES[:-1])
    return f"{names} or {AUDIO_SUFFIXES[-1].upper()}, up to {max_mb} MB and {max_minutes:g} minutes."


def check_upload(name: str, size: int, *, max_mb: int = MAX_UPLOAD_MB) -> None:
    """Refuse before reading: a name without an audio suffix, an empty file, a file over the limit."""
    suffix = Path(name).suffix.lower().lstrip(".")
    if suffix not in AUDIO_SUFFIXES:
        raise Mp3MidiError(f"{name!r} is not named like an audio file; upload {upload_help(max_mb=max_mb)}")
    if size == 0:
        raise Mp3MidiError(f"{name!r} is empty (0 bytes)")
    if size > max_mb * BYTES_PER_MB:
        raise Mp3MidiError(f"{name!r} is {size / BYTES_PER_MB:.1f} MB; this page takes files up to {max_mb} MB")


def audio_mime(name: str) -> str:
    """The MIME type a browser's audio player needs for the file as uploaded."""
    return AUDIO_MIME.get(Path(name).suffix.lower().lstrip("."), "audio/mpeg")


def content_hash(data: bytes) -> str:
    """A short name for the bytes themselves, whatever the file was called."""
    return hashlib.sha256(data).hexdigest()[:16]


def decode_upload(name: str, data: bytes, *, max_mb: int = MAX_UPLOAD_MB,
                  max_minutes: float = MAX_UPLOAD_MINUTES) -> np.ndarray:
    """Bytes of an uploaded file -> [samples] float32 mono at SAMPLE_RATE.

    Raises ``Mp3MidiError`` naming ``name`` for anything that is not usable audio: a wrong suffix, empty, too big,
    not audio at all, cut off before its first frame, samples that are not numbers, or longer than ``max_minutes``
    (a few MB of low-bitrate MP3 hold hours: refused before more than ``max_minutes`` of it is decoded).
    """
    check_upload(name, len(data), max_mb=max_mb)
    suffix = Path(name).suffix.lower()
    with tempfile.TemporaryDirectory(prefix="mp3-to-midi-upload-") as folder:
        path = Path(folder) / f"upload{suffix}"  # the suffix lets the decoder pick the format
        path.write_bytes(data)
        try:
            return load_audio(path, max_seconds=max_minutes * 60)
        except Mp3MidiError as exc:
            raise Mp3MidiError(str(exc).replace(repr(str(path)), repr(name))) from None
