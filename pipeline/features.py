"""``spectrogram()``: the only feature function in the project.

Dataset generation and transcription both call it, so the network never sees features computed another way.
The choice (a constant-Q transform with three bins per key over the 88 piano keys, log-compressed so that a
full-scale sine reads 1 and -80 dBFS or less reads 0) and its reasons are in docs/FEATURES.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .constants import BINS_PER_OCTAVE, FMIN_HZ, HOP_LENGTH, N_BINS, SAMPLE_RATE
from .cqt import Q, cqt_magnitude, frame_count  # noqa: F401 - frame_count is part of this module's API
from .errors import Mp3MidiError

CHUNK_FRAMES = 3750  # 60 s per transform on long audio
MARGIN_FRAMES = 250  # 4 s: twice the longest filter (A0's, 1.9 s), so chunk edges never reach kept frames
FLOOR_DB = 80.0  # magnitudes more than this far below full scale read as silence (0.0)
FEATURE_SETTINGS = {
    "kind": "cqt",
    "version": 1,
    "sample_rate": SAMPLE_RATE,
    "hop_length": HOP_LENGTH,
    "n_bins": N_BINS,
    "bins_per_octave": BINS_PER_OCTAVE,
    "fmin_hz": round(FMIN_HZ, 6),
    "q": round(Q, 6),
    "floor_db": FLOOR_DB,
}


def spectrogram(audio: np.ndarray, *, chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """Log-magnitude CQT of mono audio at ``SAMPLE_RATE``.

    audio: [samples] float, full scale +-1. Returns [frames, N_BINS] float32 with frames = frame_count(samples).
    Long audio is transformed in chunks of ``chunk_frames`` with MARGIN_FRAMES of overlap on each side (longer than
    the longest filter), so memory stays bounded and the result matches one pass over the whole signal.
    """
    audio = _checked_block(np.asarray(audio))
    if audio.size == 0:
        raise Mp3MidiError("spectrogram() got no audio samples")
    total = frame_count(audio.size)
    if total <= chunk_frames + 2 * MARGIN_FRAMES:
        return _log_scale(cqt_magnitude(audio))
    out = np.empty((total, N_BINS), np.float32)
    for start in range(0, total, chunk_frames):
        stop = min(start + chunk_frames, total)
        out[start:stop] = _chunk(audio, start, stop, total)
    return out


def spectrogram_stream(blocks: Iterable[np.ndarray], *, chunk_frames: int = CHUNK_FRAMES) -> Iterator[np.ndarray]:
    """``spectrogram()`` of audio that arrives in blocks, given back in pieces as soon as they are known.

    blocks: consecutive [samples] float pieces of one mono signal (any sizes, empty ones too). Yields [frames, N_BINS]
    float32 pieces whose concatenation is exactly ``spectrogram(np.concatenate(blocks), chunk_frames=chunk_frames)``:
    the same chunks of the same samples go through the same transform. Memory holds a chunk and its margins plus
    one block, never the whole signal (unless it is short enough to be transformed in one pass anyway).
    """
    buffer, buffer_start, received, start = np.zeros(0, np.float32), 0, 0, 0  # buffer[0] is sample buffer_start
    chunked_from = (chunk_frames + 2 * MARGIN_FRAMES) * HOP_LENGTH  # from this many samples on, spectrogram() chunks
    for block in blocks:
        block = _checked_block(np.asarray(block))
        buffer = np.concatenate((buffer, block)) if buffer.size else block
        received += block.size
        if received < chunked_from:
            continue
        while (start + chunk_frames + MARGIN_FRAMES) * HOP_LENGTH <= received:  # a whole chunk and its margins
            yield _chunk(buffer, start, start + chunk_frames, frame_count(received), offset=buffer_start)
            start += chunk_frames
            keep_from = max(0, start - MARGIN_FRAMES) * HOP_LENGTH
            buffer, buffer_start = buffer[keep_from - buffer_start:], keep_from
    if received == 0:
        raise Mp3MidiError("spectrogram() got no audio samples")
    total = frame_count(received)
    if total <= chunk_frames + 2 * MARGIN_FRAMES:
        yield _log_scale(cqt_magnitude(buffer))
        return
    for first in range(start, total, chunk_frames):
        yield _chunk(buffer, first, min(first + chunk_frames, total), total, offset=buffer_start)


def _checked_block(audio: np.ndarray) -> np.ndarray:
    if audio.ndim != 1:
        raise Mp3MidiError(f"spectrogram() takes mono audio [samples]; got shape {audio.shape}")
    return audio.astype(np.float32, copy=False)


def _chunk(audio: np.ndarray, start: int, stop: int, total: int, *, offset: int = 0) -> np.ndarray:
    """Log-CQT frames [start, stop) of a signal of ``total`` frames, from the samples MARGIN_FRAMES either side;
    ``audio[0]`` is sample ``offset`` of the signal."""
    lo, hi = max(0, start - MARGIN_FRAMES), min(total, stop + MARGIN_FRAMES)
    piece = cqt_magnitude(audio[lo * HOP_LENGTH - offset:hi * HOP_LENGTH - offset])
    return _log_scale(piece[start - lo:stop - lo].copy())  # a copy: the margins are not kept alive


def _log_scale(magnitude: np.ndarray) -> np.ndarray:
    """(20 log10(max(magnitude, floor)) + FLOOR_DB) / FLOOR_DB, computed in place: ``magnitude`` is overwritten."""
    scaled = np.maximum(magnitude, 10.0 ** (-FLOOR_DB / 20.0), out=magnitude)
    np.log10(scaled, out=scaled)
    scaled *= 20.0
    scaled += FLOOR_DB
    scaled /= FLOOR_DB
    return scaled
