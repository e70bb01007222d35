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


def spectrogram(audio: np.ndarray) -> np.ndarray:
    """Log-magnitude CQT of mono audio at ``SAMPLE_RATE``.

    audio: [samples] float, full scale +-1. Returns [frames, N_BINS] float32 with frames = frame_count(samples).
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise Mp3MidiError(f"spectrogram() takes mono audio [samples]; got shape {audio.shape}")
    if audio.size == 0:
        raise Mp3MidiError("spectrogram() got no audio samples")
    magnitude = cqt_magnitude(audio.astype(np.float32, copy=False))
    decibels = 20.0 * np.log10(np.maximum(magnitude, 10.0 ** (-FLOOR_DB / 20.0)))
    return (decibels + FLOOR_DB) / FLOOR_DB
