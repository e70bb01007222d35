"""``spectrogram()``: the only feature function in the project.

Dataset generation and transcription both call it, so the network never sees features computed another way.
The choice (a constant-Q transform, three bins per key over the 88 piano keys, log-compressed so that -80 dBFS and below reads 0) and
its reasons are in docs/FEATURES.md.
"""

from __future__ import annotations

import warnings

import librosa
import numpy as np

from .constants import BINS_PER_OCTAVE, FMIN_HZ, HOP_LENGTH, N_BINS, SAMPLE_RATE
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
    "floor_db": FLOOR_DB,
}


def frame_count(n_samples: int) -> int:
    """Frames ``spectrogram()`` gives for ``n_samples`` of audio (frames are centred on multiples of the hop)."""
    return 1 + n_samples // HOP_LENGTH


def spectrogram(audio: np.ndarray) -> np.ndarray:
    """Log-magnitude CQT of mono audio at ``SAMPLE_RATE``.

    audio: [samples] float, full scale +-1.  Returns [frames, N_BINS] float32, 0 at or below -80 dB (loud tones reach a little over 1), frames = frame_count(samples).
    """
    audio = np.asarray(audio)
    if audio.ndim != 1:
        raise Mp3MidiError(f"spectrogram() takes mono audio [samples]; got shape {audio.shape}")
    if audio.size == 0:
        raise Mp3MidiError("spectrogram() got no audio samples")
    with warnings.catch_warnings():  # very short clips make librosa warn that its low octaves see few samples
        warnings.filterwarnings("ignore", message="n_fft=.*is too large", category=UserWarning)
        cqt = _cqt(audio)
    decibels = 20.0 * np.log10(np.maximum(np.abs(cqt), 10.0 ** (-FLOOR_DB / 20.0)))
    return np.ascontiguousarray(((decibels + FLOOR_DB) / FLOOR_DB).T, dtype=np.float32)


def _cqt(audio: np.ndarray) -> np.ndarray:
    return librosa.cqt(
        audio.astype(np.float32, copy=False),
        sr=SAMPLE_RATE,
        hop_length=HOP_LENGTH,
        fmin=FMIN_HZ,
        n_bins=N_BINS,
        bins_per_octave=BINS_PER_OCTAVE,
        res_type="soxr_hq",
    )
