"""librosa's tempo and beat tracking, written out in NumPy for ``model.beats``.

Measured on the 2-core VM (2026-12-01): importing ``librosa.beat`` costs about 6 s of CPU in every process (3 s
for librosa's onset and spectral modules with scipy.signal, 3 s loading the tracker's numba-compiled loops), which
made a whole 3-minute transcription 2.5x slower (4 s -> 10-11 s) for one number per frame of work. The same steps,
in the same order and with the same constants, take a few milliseconds to import. Each function here names the
librosa function it follows, and ``tests/test_beat_tracker.py`` holds every one equal to librosa's on real
envelopes; librosa stays the reference, as it is for the features (``librosa.cqt``).

- ``autocorrelation_columns``: ``librosa.util.normalize(librosa.autocorrelate(x, axis=0), norm=np.inf, axis=0)``.
- ``tempo_per_column``: ``librosa.feature.tempo(tg=..., aggregate=None, max_tempo=...)`` (start 120 BPM, std 1).
- ``beat_frames``: ``librosa.beat.beat_track(onset_envelope=..., bpm=..., tightness=..., trim=True)[1]``: the
  dynamic programme of Ellis (2007) with a tempo per frame.
- ``hann``, ``frames``, ``tempo_frequencies``: ``scipy.signal.get_window("hann", n, fftbins=True)``,
  ``librosa.util.frame``, ``librosa.tempo_frequencies``.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as _fft

START_BPM = 120.0  # librosa's prior: log-normal around 120 BPM ...
STD_OCTAVES = 1.0  # ... one octave wide
TRIM_WINDOW = np.hanning(5)  # librosa smooths the beats' local scores with this before trimming weak ends


def hann(length: int) -> np.ndarray:
    """[length] periodic Hann window (for spectral work: the window of length + 1, its last point dropped)."""
    return 0.5 - 0.5 * np.cos(2.0 * np.pi * np.arange(length) / length)


def frames(signal: np.ndarray, *, length: int, hop: int) -> np.ndarray:
    """signal [n] -> [length, columns] view: column c is signal[c * hop : c * hop + length]."""
    return np.lib.stride_tricks.sliding_window_view(signal, length)[::hop].T


def tempo_frequencies(lags: int, *, frame_rate: float) -> np.ndarray:
    """[lags] the tempo (BPM) of each autocorrelation lag in frames; lag 0 is infinite."""
    bpm = np.empty(lags)
    bpm[0] = np.inf
    bpm[1:] = 60.0 * frame_rate / np.arange(1.0, lags)
    return bpm


def autocorrelation_columns(columns: np.ndarray) -> np.ndarray:
    """columns [lags, n] real -> [lags, n]: each column's autocorrelation (lags 0 .. lags - 1), divided by its
    largest magnitude (a column whose largest is under float64's smallest normal is left as it is)."""
    lags = columns.shape[0]
    size = _fft.next_fast_len(2 * lags - 1, real=True)
    power = np.abs(_fft.rfft(columns, n=size, axis=0)) ** 2
    correlation = _fft.irfft(power, n=size, axis=0)[:lags]
    peak = np.max(np.abs(correlation), axis=0, keepdims=True)
    peak[peak < np.finfo(correlation.dtype).tiny] = 1.0
    return correlation / peak


def tempo_per_column(columns: np.ndarray, *, frame_rate: float, max_bpm: float) -> np.ndarray:
    """columns [lags, n] normalised autocorrelations -> [n] BPM: the lag that best combines the column's strength
    (log1p(1e6 x)) with a log-normal prior around START_BPM, among tempi under ``max_bpm``."""
    bpm = tempo_frequencies(columns.shape[0], frame_rate=frame_rate)
    with np.errstate(divide="ignore", invalid="ignore"):
        log_prior = -0.5 * ((np.log2(bpm) - np.log2(START_BPM)) / STD_OCTAVES) ** 2
    log_prior[:int(np.argmax(bpm < max_bpm))] = -np.inf
    return bpm[np.argmax(np.log1p(1e6 * columns) + log_prior[:, None], axis=0)]


def beat_frames(envelope: np.ndarray, bpm: np.ndarray, *, frame_rate: float, tightness: float) -> np.ndarray:
    """envelope [frames] onset strength, bpm [frames] (or [1]) the tempo at each frame -> [beats] frame indices.

    Each frame's local score is the envelope (divided by its standard deviation) weighted by a Gaussian a beat
    wide around it; the cumulative score adds the best earlier beat half a beat to two beats back, penalised by
    ``tightness`` times the squared log ratio of the interval to the beat; the last strong local maximum is
    traced back; beats in the weak start and end are trimmed.
    """
    envelope = np.asarray(envelope, np.float64)
    if not envelope.any():
        return np.zeros(0, np.int64)
    per_beat = np.round(frame_rate * 60.0 / np.broadcast_to(np.asarray(bpm, np.float64), envelope.shape))
    normalised = envelope / (envelope.std(ddof=1) + np.finfo(np.float64).tiny)
    local = _local_score(normalised, per_beat)
    backlink, cumulative = _dynamic_programme(local, per_beat, tightness)
    beats = np.zeros(envelope.size, bool)
    frame = _last_beat(cumulative)
    while frame >= 0:
        beats[frame] = True
        frame = backlink[frame]
    return np.flatnonzero(_trimmed(local, beats))


def _local_score(envelope: np.ndarray, per_beat: np.ndarray) -> np.ndarray:
    """[frames] sum over j of exp(-0.5 ((j - i) 32 / P_i)^2) envelope[j] for |j - i| <= P_i, j >= 1 (librosa's
    loop leaves the first frame out)."""
    count = envelope.size
    shifted = envelope.copy()
    shifted[0] = 0.0
    local = np.empty(count)
    for beat in np.unique(per_beat):
        width = int(beat)
        window = np.exp(-0.5 * (np.arange(-width, width + 1) * 32.0 / beat) ** 2)
        smoothed = np.convolve(shifted, window)[width:width + count]
        where = per_beat == beat
        local[where] = smoothed[where]
    return local


def _dynamic_programme(local: np.ndarray, per_beat: np.ndarray, tightness: float) -> tuple[np.ndarray, np.ndarray]:
    """(backlink [frames], cumulative score [frames]): for each frame the best previous beat (-1: none) and the
    best score of a beat sequence ending there. Ties go to the latest previous frame, as in librosa's loop."""
    threshold = 0.01 * local.max()
    backlink = np.full(local.size, -1, np.int64)
    cumulative = np.empty(local.size)
    first_beat = True
    for i, score in enumerate(local):
        beat = per_beat[i]
        nearest = i - int(np.round(beat / 2))
        farthest = max(i - int(2 * beat), 0)
        best_location = -1
        if nearest >= 0 and nearest >= farthest:
            locations = np.arange(nearest, farthest - 1, -1)  # latest first, as librosa searches
            scores = cumulative[locations] - tightness * (np.log(i - locations) - np.log(beat)) ** 2
            best = int(np.argmax(scores))
            best_location = int(locations[best])
            cumulative[i] = score + scores[best]
        else:
            cumulative[i] = score
        if first_beat and score < threshold:
            backlink[i] = -1
        else:
            backlink[i] = best_location
            first_beat = False
    return backlink, cumulative


def _last_beat(cumulative: np.ndarray) -> int:
    """The last local maximum of the cumulative score reaching half the median of all local maxima."""
    padded = np.pad(cumulative, 1, mode="edge")
    peaks = (cumulative > padded[:-2]) & (cumulative >= padded[2:])
    if not peaks.any():
        return cumulative.size - 1
    threshold = 0.5 * np.median(cumulative[peaks])
    candidates = np.flatnonzero(peaks & (cumulative >= threshold))
    return int(candidates[-1]) if candidates.size else cumulative.size - 1


def _trimmed(local: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """Beats with those in the weak start and end removed: frames whose local score stays under half the RMS of
    the beats' smoothed local scores."""
    smooth = np.convolve(local[beats], TRIM_WINDOW)[len(TRIM_WINDOW) // 2:len(local) + len(TRIM_WINDOW) // 2]
    threshold = 0.5 * np.sqrt(np.mean(smooth ** 2))
    strong = np.flatnonzero(local > threshold)
    kept = beats.copy()
    if strong.size == 0:
        kept[:] = False
        return kept
    kept[:strong[0]] = False
    kept[strong[-1] + 1:] = False
    return kept
