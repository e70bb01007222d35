"""Beats from the features the network reads: an onset envelope, librosa's dynamic tempo and beat tracker.

The onset envelope (``onset_envelope()``) is librosa's spectral flux (its ``onset_strength``, written out in NumPy)
of our log-CQT features, one number per frame, with a three-bin maximum filter across frequency so that vibrato
does not read as onsets. A stream of feature pieces
gathers it piece by piece (each piece given the last frame of the one before) into exactly the whole file's envelope.

``track_beats()`` then estimates a tempo per frame from a local autocorrelation tempogram (librosa's dynamic tempo,
TEMPOGRAM_SECONDS windows, a column every TEMPOGRAM_HOP frames) and runs librosa's dynamic-programming beat
tracker with that time-varying tempo, so a piece that speeds up from 90 to 140 BPM gets beats that speed up with
it. The tempogram is computed SEGMENT_COLUMNS columns at a time, so its memory does not grow with the file.

Confidence, "pulse clarity": in each tempogram column (a window's autocorrelation, 1 at lag 0) the value at the
chosen tempo's lag minus the median over all lags in TEMPO_RANGE_BPM, averaged over the columns that hear any onset.
A steady pulse stands out of its own autocorrelation (0.7-0.9 on click tracks, 0.3-0.7 on score pieces rendered at
a steady tempo, most above 0.4); rubato timing spreads it over all lags (0.21-0.32 on clicks whose beats stretch
at random by up to 35 %), and so does free singing (0.06-0.32, median 0.15, on 34 real sight-singing clips).
Below MIN_CONFIDENCE the beats fall back to one tempo (the tempogram's average) on a grid from time 0, and
``BeatGrid.note`` says so.

A ``BeatGrid`` is a whole-file grid of quarter-note beats: ``beats_s[0]`` is 0.0 (the MIDI's tick 0), every interval
is one beat, and the last beat is at or after the end of the audio. The tracked beats are smoothed (a quadratic
Savitzky-Golay fit over SMOOTH_BEATS beats, which follows a steady acceleration and removes the 16 ms frame steps)
and extended: back to time 0 at the first interval (a first, shorter or longer, pickup beat from 0 takes up the
rest) and forward to the end at the last.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from pipeline.constants import FRAMES_PER_SECOND
from pipeline.errors import Mp3MidiError

from .beat_tracker import (autocorrelation_columns, beat_frames, frames, hann, tempo_frequencies,
                           tempo_per_column)

DEFAULT_TEMPO_BPM = 120.0
TEMPO_RANGE_BPM = (40.0, 240.0)
SECONDS_PER_MINUTE = 60.0
ONSET_MAX_FILTER_BINS = 3  # one key's bins: a pitch wobbling within a key is not an onset
TEMPOGRAM_SECONDS = 8.0  # librosa's default autocorrelation window for tempo
TEMPOGRAM_FRAMES = int(round(TEMPOGRAM_SECONDS * FRAMES_PER_SECOND))  # 500
TEMPOGRAM_HOP = 16  # frames between tempogram columns (0.26 s)
SEGMENT_COLUMNS = 2048  # tempogram columns computed at once: 2048 x 500 float64 = 8 MB (9 minutes of audio)
MIN_CONFIDENCE = 0.35  # pulse clarity below which the beats are not followed (see the module docstring)
MIN_SECONDS = 4.0  # shorter recordings keep one tempo
MIN_TRACKED_BEATS = 8  # fewer tracked beats than this is no tempo map
BEAT_TIGHTNESS = 100.0  # librosa's default: how closely beats keep to the local tempo
SMOOTH_BEATS = 7  # beats in each smoothing fit
MIN_PICKUP_BEATS = 0.5  # the first beat from time 0 is at least half of the first tracked interval long


@dataclass(frozen=True)
class BeatGrid:
    """Quarter-note beats over a whole recording.

    beats_s [beats] increasing seconds, beats_s[0] == 0.0, the last at or after the end of the audio.
    ``tracked`` is True when they follow the performance's beats, False for one fixed tempo. ``confidence`` is
    the pulse clarity (None for a tempo given by the user). ``note`` says why the beats were not followed.
    """

    beats_s: np.ndarray
    tempo_bpm: float
    tracked: bool
    confidence: float | None = None
    note: str | None = None

    @property
    def tempi_bpm(self) -> np.ndarray:
        """[beats - 1] the tempo of each beat."""
        return SECONDS_PER_MINUTE / np.diff(self.beats_s)


def onset_envelope(features: np.ndarray, *, previous: np.ndarray | None = None) -> np.ndarray:
    """features [frames, bins] from ``spectrogram()`` -> [frames] onset strength.

    Value i is the mean rise into frame i over the bins (each bin compared with the loudest of its neighbours a
    frame before); the first frame of a file has none (0). ``previous`` [bins], the frame before ``features[0]``,
    gives the first value: pieces each given the last frame of the one before join into the whole file's envelope.

    This is ``librosa.onset.onset_strength(S=features.T, lag=1, max_size=ONSET_MAX_FILTER_BINS, center=False)``
    (a test holds them equal) written out in NumPy: that module's import (scipy.signal, numba) costs seconds of
    CPU in every process, on the streaming path before the first network window, and a fixed ``--tempo`` needs
    no librosa at all.
    """
    features = np.asarray(features, np.float32)
    if len(features) == 0:
        return np.zeros(0, np.float32)
    if previous is not None:
        features = np.concatenate((np.asarray(previous, np.float32)[None], features))
    half = ONSET_MAX_FILTER_BINS // 2  # the loudest of each bin and its neighbours
    padded = np.pad(features[:-1], ((0, 0), (half, half)), mode="edge")
    reference = np.lib.stride_tricks.sliding_window_view(padded, ONSET_MAX_FILTER_BINS, axis=1).max(axis=2)
    rises = np.maximum(features[1:] - reference, 0.0).mean(axis=1, dtype=np.float32)
    return rises.astype(np.float32) if previous is not None else np.concatenate(([0.0], rises)).astype(np.float32)


def fixed_grid(tempo_bpm: float, *, duration_s: float, confidence: float | None = None,
               note: str | None = None) -> BeatGrid:
    """One tempo from time 0 to the end: beats at multiples of 60 / tempo_bpm seconds."""
    beat = SECONDS_PER_MINUTE / checked_tempo(tempo_bpm)
    count = max(1, int(np.ceil(max(duration_s, 0.0) / beat - 1e-9)))
    return BeatGrid(np.arange(count + 1) * beat, float(tempo_bpm), False, confidence, note)


def checked_tempo(tempo) -> float:
    """A fixed tempo as float BPM, refused outside TEMPO_RANGE_BPM with a message that says what was given."""
    try:
        value = float(tempo)
    except (TypeError, ValueError):
        raise Mp3MidiError(f"tempo must be 'auto' or beats per minute; got {tempo!r}") from None
    if not TEMPO_RANGE_BPM[0] <= value <= TEMPO_RANGE_BPM[1]:
        raise Mp3MidiError(f"tempo {value:g} BPM is outside {TEMPO_RANGE_BPM[0]:g}-{TEMPO_RANGE_BPM[1]:g}")
    return value


def track_beats(envelope: np.ndarray, *, duration_s: float, min_confidence: float = MIN_CONFIDENCE) -> BeatGrid:
    """envelope [frames] from ``onset_envelope()`` -> the recording's BeatGrid (a tempo map when confident)."""
    envelope = np.asarray(envelope, np.float64)
    if envelope.size < MIN_SECONDS * FRAMES_PER_SECOND or not np.any(envelope > 0):
        return fixed_grid(DEFAULT_TEMPO_BPM, duration_s=duration_s, note=(
            f"too short or too quiet to hear a beat: the MIDI keeps one tempo, {DEFAULT_TEMPO_BPM:g} BPM"))
    local_bpm, confidence, overall_bpm = _tempogram_analysis(envelope)
    fallback = (f"no steady beat (pulse clarity {confidence:.2f} < {min_confidence:.2f}): the MIDI keeps one "
                f"tempo, {overall_bpm:.1f} BPM")
    if confidence < min_confidence:
        return fixed_grid(overall_bpm, duration_s=duration_s, confidence=confidence, note=fallback)
    frames = beat_frames(envelope, local_bpm, frame_rate=FRAMES_PER_SECOND, tightness=BEAT_TIGHTNESS)
    if len(frames) < MIN_TRACKED_BEATS:
        return fixed_grid(overall_bpm, duration_s=duration_s, confidence=confidence, note=fallback)
    beats = _extended(_smoothed(frames / FRAMES_PER_SECOND), duration_s=duration_s)
    return BeatGrid(beats, float(SECONDS_PER_MINUTE / np.median(np.diff(beats))), True, confidence)


def _tempogram_analysis(envelope: np.ndarray) -> tuple[np.ndarray, float, float]:
    """(local tempo [frames] in BPM, pulse clarity, overall tempo in BPM) from the tempogram.

    The tempogram is librosa's (``librosa.feature.tempogram``: hann-windowed local autocorrelation, normalised to
    1 at lag 0, on the envelope padded as it pads it) built from librosa's own parts so that it can take a column
    every TEMPOGRAM_HOP frames instead of every frame (the tempo moves slowly; a column per frame cost 1.5 % of
    real time, mostly in FFTs) and only SEGMENT_COLUMNS columns exist at once.
    """
    half = TEMPOGRAM_FRAMES // 2
    padded = np.pad(envelope, half, mode="linear_ramp", end_values=0)
    windows = frames(padded[:envelope.size - 1 + TEMPOGRAM_FRAMES], length=TEMPOGRAM_FRAMES,
                     hop=TEMPOGRAM_HOP)  # [lags, columns], a view; column c is frame c * HOP
    taper = hann(TEMPOGRAM_FRAMES)[:, None]
    lags_bpm = tempo_frequencies(TEMPOGRAM_FRAMES, frame_rate=FRAMES_PER_SECOND)
    in_range = (lags_bpm >= TEMPO_RANGE_BPM[0]) & (lags_bpm <= TEMPO_RANGE_BPM[1])
    column_bpm = np.empty(windows.shape[1])
    clarity_sum, heard, column_sum = 0.0, 0, np.zeros(TEMPOGRAM_FRAMES)
    for start in range(0, windows.shape[1], SEGMENT_COLUMNS):
        stop = min(start + SEGMENT_COLUMNS, windows.shape[1])
        columns = autocorrelation_columns(windows[:, start:stop] * taper)
        column_bpm[start:stop] = _tempo(columns)
        chosen = np.argmin(np.abs(lags_bpm[:, None] - column_bpm[None, start:stop]), axis=0)
        clarity = columns[chosen, np.arange(stop - start)] - np.median(columns[in_range], axis=0)
        active = columns[0] > 0  # columns whose window heard an onset
        clarity_sum += float(clarity[active].sum())
        heard += int(active.sum())
        column_sum += columns.sum(axis=1)
    local = column_bpm[np.minimum(np.rint(np.arange(envelope.size) / TEMPOGRAM_HOP).astype(np.int64),
                                  column_bpm.size - 1)]
    overall = float(_tempo(column_sum[:, None])[0])
    return local, (clarity_sum / heard if heard else 0.0), overall


def _tempo(columns: np.ndarray) -> np.ndarray:
    """[lags, n] tempogram columns -> [n] BPM within TEMPO_RANGE_BPM: librosa's choice (its log-normal prior
    around 120 BPM, one octave wide)."""
    bpm = tempo_per_column(columns, frame_rate=FRAMES_PER_SECOND, max_bpm=TEMPO_RANGE_BPM[1])
    return np.clip(bpm, *TEMPO_RANGE_BPM)


def _smoothed(beats_s: np.ndarray) -> np.ndarray:
    """Beat times with the frame grid's steps smoothed out by local quadratic fits (still increasing): a
    Savitzky-Golay filter of SMOOTH_BEATS points (scipy.signal.savgol_filter(x, SMOOTH_BEATS, 2), whose import
    alone costs more than the whole tracking), the first and last points from the fits of the first and last
    SMOOTH_BEATS beats."""
    if beats_s.size < SMOOTH_BEATS:
        return beats_s
    offsets = np.arange(SMOOTH_BEATS) - SMOOTH_BEATS // 2
    design = np.vander(offsets, 3, increasing=True)  # [points, 3]: 1, t, t^2
    fit = design @ np.linalg.pinv(design)  # [points, points]: values of the quadratic fitted to a window
    windows = np.lib.stride_tricks.sliding_window_view(beats_s, SMOOTH_BEATS)
    smooth = np.empty_like(beats_s)
    half = SMOOTH_BEATS // 2
    smooth[half:beats_s.size - half] = windows @ fit[half]
    smooth[:half] = (fit @ beats_s[:SMOOTH_BEATS])[:half]
    smooth[beats_s.size - half:] = (fit @ beats_s[-SMOOTH_BEATS:])[half + 1:]
    return smooth if np.all(np.diff(smooth) > 0) else beats_s


def _extended(beats_s: np.ndarray, *, duration_s: float) -> np.ndarray:
    """Tracked beats -> a grid from 0.0 to at least ``duration_s``: earlier beats at the first interval, later ones
    at the last. A beat closer to 0 than MIN_PICKUP_BEATS of an interval is left out, so the first beat (the one
    from 0) lasts between MIN_PICKUP_BEATS and 1 + MIN_PICKUP_BEATS intervals; so is one at or before 0 (smoothing
    can move a beat tracked on the first frame a few milliseconds before it)."""
    beats_s = beats_s[np.searchsorted(beats_s, 0.0, side="right"):]
    first, last = beats_s[1] - beats_s[0], beats_s[-1] - beats_s[-2]
    before = int(np.floor(beats_s[0] / first))
    if beats_s[0] - before * first < MIN_PICKUP_BEATS * first:  # the earliest grid beat after 0 is too close to it
        if before > 0:
            before -= 1
        else:
            beats_s = beats_s[1:]
    head = beats_s[0] - first * np.arange(before, 0, -1)
    after = max(0, int(np.ceil((duration_s - beats_s[-1]) / last - 1e-9)))
    tail = beats_s[-1] + last * np.arange(1, after + 1)
    return np.concatenate(([0.0], head, beats_s, tail))
