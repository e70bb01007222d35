"""Tempo from the features the network already reads: spectral flux, autocorrelated, weighted by a prior.

Using ``spectrogram()`` output instead of a second analysis (librosa's onset envelope) costs no extra transform and
no numba compilation, and its memory is a few arrays of one float per frame.
"""

from __future__ import annotations

import numpy as np

from pipeline.constants import FRAMES_PER_SECOND

DEFAULT_TEMPO_BPM = 120.0
TEMPO_RANGE_BPM = (40.0, 240.0)
PRIOR_CENTRE_BPM = 120.0  # tempi near this are preferred when a pulse fits several octaves equally well
PRIOR_OCTAVES = 1.0  # standard deviation of the prior, in octaves
ANALYSIS_SECONDS = 120.0  # the middle two minutes of a long file carry its pulse
SECONDS_PER_MINUTE = 60.0


def estimate_tempo(features: np.ndarray) -> float:
    """features [frames, bins] from ``spectrogram()`` -> beats per minute (DEFAULT_TEMPO_BPM when there is no pulse)."""
    half = int(ANALYSIS_SECONDS * FRAMES_PER_SECOND) // 2
    middle = features.shape[0] // 2
    excerpt = features[max(0, middle - half):middle + half]
    flux = np.maximum(np.diff(excerpt, axis=0), 0.0).sum(axis=1)
    flux -= flux.mean()
    longest = int(np.ceil(SECONDS_PER_MINUTE * FRAMES_PER_SECOND / TEMPO_RANGE_BPM[0]))
    if flux.size < 2 * longest or not np.any(flux):
        return DEFAULT_TEMPO_BPM
    spectrum = np.fft.rfft(flux, n=2 * flux.size)
    autocorrelation = np.fft.irfft(spectrum * np.conj(spectrum))[: longest + 2]
    lags = np.arange(autocorrelation.size, dtype=np.float64)
    with np.errstate(divide="ignore"):
        bpm = SECONDS_PER_MINUTE * FRAMES_PER_SECOND / lags
    valid = (bpm >= TEMPO_RANGE_BPM[0]) & (bpm <= TEMPO_RANGE_BPM[1])
    prior = np.exp(-0.5 * (np.log2(np.where(valid, bpm, 1.0) / PRIOR_CENTRE_BPM) / PRIOR_OCTAVES) ** 2)
    score = np.where(valid, np.maximum(autocorrelation, 0.0) * prior, -np.inf)
    best = int(np.argmax(score))
    if not np.isfinite(score[best]) or score[best] <= 0:
        return DEFAULT_TEMPO_BPM
    lag = float(best) + _parabolic_offset(autocorrelation, best)
    return float(np.clip(SECONDS_PER_MINUTE * FRAMES_PER_SECOND / lag, *TEMPO_RANGE_BPM))


def _parabolic_offset(values: np.ndarray, peak: int) -> float:
    """Sub-frame position of a peak from a parabola through it and its neighbours."""
    if not 0 < peak < values.size - 1:
        return 0.0
    left, centre, right = values[peak - 1], values[peak], values[peak + 1]
    denominator = left - 2 * centre + right
    return 0.0 if denominator == 0 else float(np.clip(0.5 * (left - right) / denominator, -0.5, 0.5))
