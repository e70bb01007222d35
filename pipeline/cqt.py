"""A constant-Q transform with its filters built once per process.

The classic multirate scheme: the top octave of bins is computed at the full sample rate; the signal is then
halved in rate (and the hop with it) for each octave below, so every octave uses the same short FFT. Each bin's
filter is a Hann-windowed complex exponential ``Q`` periods long, scaled so that a sine of amplitude A at the
bin's centre reads A. librosa rebuilds these filters on every call, which costs more than the transform itself on
a 30-second clip; here they are cached, and each octave is one real FFT and one small matrix product.

The products run on one BLAS thread. They are small, so a second thread gains nothing, and OpenBLAS's idle
threads keep spinning for about a tenth of a second after each call: on a 2-core machine that took a core from
the network that runs next (transcription 30 % slower) or from the next item's rendering in a dataset worker.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import scipy.fft
import soxr
from threadpoolctl import ThreadpoolController

from .constants import BINS_PER_OCTAVE, FMIN_HZ, HOP_LENGTH, N_BINS, SAMPLE_RATE

Q = 1.0 / (2.0 ** (1.0 / BINS_PER_OCTAVE) - 1.0)  # filter length in periods: one bin's bandwidth
N_OCTAVES = -(-N_BINS // BINS_PER_OCTAVE)
assert HOP_LENGTH % 2 ** (N_OCTAVES - 1) == 0, "the hop must halve once per octave below the top"


@lru_cache(maxsize=1)
def _blas() -> ThreadpoolController:
    return ThreadpoolController()


def frame_count(n_samples: int) -> int:
    """Frames for ``n_samples`` of audio: frame i is centred on sample i * HOP_LENGTH."""
    return 1 + n_samples // HOP_LENGTH


@lru_cache(maxsize=None)
def _octave_kernel(octave: int) -> tuple[np.ndarray, int]:
    """Frequency-domain filters for one octave (0 = top): ([n_fft // 2 + 1, bins] complex64, n_fft)."""
    rate = SAMPLE_RATE / 2**octave
    top = N_BINS - octave * BINS_PER_OCTAVE
    bins = np.arange(max(0, top - BINS_PER_OCTAVE), top)
    freqs = FMIN_HZ * 2.0 ** (bins / BINS_PER_OCTAVE)
    lengths = np.ceil(Q * rate / freqs).astype(int)
    # The shortest FFT that holds the longest filter (379 samples: 384, where the next power of two is 512)
    n_fft = scipy.fft.next_fast_len(int(lengths.max()), real=True)
    filters = np.zeros((len(bins), n_fft), np.complex128)
    for row, (freq, length) in enumerate(zip(freqs, lengths)):
        time = np.arange(length) - (length - 1) / 2
        window = np.hanning(length)
        start = (n_fft - length) // 2
        filters[row, start:start + length] = window * np.exp(2j * np.pi * freq * time / rate) / (window.sum() / 2)
    # Correlating with a filter multiplies the frame's spectrum by the filter's conjugate spectrum; the filter is
    # analytic (no negative frequencies), so the real FFT's half spectrum holds the whole product.
    spectra = np.conj(np.fft.fft(filters, axis=1))[:, : n_fft // 2 + 1] / n_fft
    return np.ascontiguousarray(spectra.T.astype(np.complex64)), n_fft


def cqt_magnitude(audio: np.ndarray) -> np.ndarray:
    """audio: [samples] float32 at SAMPLE_RATE -> [frames, N_BINS] float32 magnitudes, frames = 1 + samples // hop."""
    n_frames = frame_count(audio.size)
    out = np.empty((n_frames, N_BINS), np.float32)
    signal = audio.astype(np.float32, copy=False)
    hop = HOP_LENGTH
    with _blas().limit(limits=1, user_api="blas"):
        for octave in range(N_OCTAVES):
            if octave:
                signal = soxr.resample(signal, 2, 1, quality="HQ").astype(np.float32, copy=False)
                hop //= 2
            kernel, n_fft = _octave_kernel(octave)
            padded = np.pad(signal, (n_fft // 2, n_fft // 2 + hop))
            frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[: hop * n_frames: hop]
            response = scipy.fft.rfft(np.ascontiguousarray(frames), axis=1) @ kernel  # a copy FFTs faster
            top = N_BINS - octave * BINS_PER_OCTAVE
            out[:, max(0, top - BINS_PER_OCTAVE):top] = np.abs(response)
    return out
