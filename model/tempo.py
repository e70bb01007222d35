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
    lo, hi = _middle(features.shape[0])
    return _tempo(spectral_flux(features[lo:hi]))


def tempo_from_flux(flux: np.ndarray) -> float:
    """``estimate_tempo()`` from the [frames - 1] ``spectral_flux()`` of a whole file's features, which a stream of
    feature pieces can gather in a few bytes per frame without keeping the features."""
    lo, hi = _middle(flux.size + 1)
    return _tempo(flux[lo:max(lo, hi - 1)])


def spectral_flux(features: np.ndarray, *, previous: np.ndarray | None = None) -> np.ndarray:
    """features [frames, bins] -> [frames - 1]: the summed rise of every bin from each frame to the next.

    ``previous`` [bins], the frame before ``features[0]``, adds the step from it ([frames] then): the flux of
    consecutive pieces, each given the last frame of the one before, joins into exactly the flux of the whole.
    """
    if previous is not None:
        features = np.concatenate((previous[None], features))
    return np.maximum(np.diff(features, axis=0), 0.0).sum(axis=1)


def _middle(frames: int) -> tuple[int, int]:
    """The frames [lo, hi) of the analysed excerpt: the middle ANALYSIS_SECONDS of the file."""
    half = int(ANALYSIS_SECONDS * FRAMES_PER_SECOND) // 2
    middle = frames // 2
    return max(0, middle - half), min(frames, middle + half)


def _tempo(flux: np.ndarray) -> float:
    """Beats per minute from the spectral flux of the analysed excerpt."""
    flux = flux - flux.mean() if flux.size else flux
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
