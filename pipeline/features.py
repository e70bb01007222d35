"""``spectrogram()``: the only feature function in the project.

Dataset generation and transcription both call it, so the network never sees features computed another way.
The choice (a constant-Q transform with three bins per key over the 88 piano keys, log-compressed so that a
full-scale sine reads 1 and -80 dBFS or less reads 0) and its reasons are in docs/FEATURES.md.
"""

from __future__ import annotations

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
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise Mp3MidiError(f"spectrogram() takes mono audio [samples]; got shape {audio.shape}")
    if audio.size == 0:
        raise Mp3MidiError("spectrogram() got no audio samples")
    audio = audio.astype(np.float32, copy=False)
    total = frame_count(audio.size)
    if total <= chunk_frames + 2 * MARGIN_FRAMES:
        return _log_scale(cqt_magnitude(audio))
    out = np.empty((total, N_BINS), np.float32)
    for start in range(0, total, chunk_frames):
        lo, hi = max(0, start - MARGIN_FRAMES), min(total, start + chunk_frames + MARGIN_FRAMES)
        piece = cqt_magnitude(audio[lo * HOP_LENGTH:hi * HOP_LENGTH])
        stop = min(start + chunk_frames, total)
        out[start:stop] = _log_scale(piece[start - lo:stop - lo])
    return out


def _log_scale(magnitude: np.ndarray) -> np.ndarray:
    decibels = 20.0 * np.log10(np.maximum(magnitude, 10.0 ** (-FLOOR_DB / 20.0)))
    return (decibels + FLOOR_DB) / FLOOR_DB
