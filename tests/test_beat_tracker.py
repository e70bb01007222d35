"""The NumPy beat tracking (model.beat_tracker) equals librosa's, step by step, on envelopes of steady, accelerating
and rubato pulses, of real rendered clicks and of noise; librosa stays the reference implementation."""

from __future__ import annotations

import librosa
import numpy as np
import pytest
import scipy.signal

from model.beat_tracker import (autocorrelation_columns, beat_frames, frames, hann, tempo_frequencies,
                                tempo_per_column)
from model.beats import (BEAT_TIGHTNESS, TEMPO_RANGE_BPM, TEMPOGRAM_FRAMES, TEMPOGRAM_HOP, _smoothed,
                         _tempogram_analysis, onset_envelope)
from pipeline.constants import FRAMES_PER_SECOND, HOP_LENGTH, SAMPLE_RATE
from pipeline.features import spectrogram
from tests.test_beats import accelerating, clicks, rubato


def pulse_envelope(times_s: np.ndarray, seconds: float, *, seed: int, noise: float = 0.05) -> np.ndarray:
    """[frames] onset envelope: a decaying bump at each time, plus positive noise."""
    rng = np.random.default_rng(seed)
    envelope = rng.uniform(0, noise, int(seconds * FRAMES_PER_SECOND))
    for time in times_s:
        frame = int(round(time * FRAMES_PER_SECOND))
        envelope[frame:frame + 4] += rng.uniform(0.6, 1.0) * np.array([1.0, 0.5, 0.2, 0.05])[:envelope.size - frame]
    return envelope


ENVELOPES = {
    "steady 100 BPM": lambda: pulse_envelope(np.arange(0.4, 29.5, 0.6), 30.0, seed=0),
    "steady 172 BPM": lambda: pulse_envelope(np.arange(0.2, 19.5, 60 / 172), 20.0, seed=1),
    "90 to 140 BPM": lambda: pulse_envelope(accelerating(90, 140, 40.0), 40.0, seed=2),
    "rubato": lambda: pulse_envelope(rubato(30.0, 3), 30.0, seed=3),
    "noise": lambda: np.random.default_rng(4).uniform(0, 1, 1500),
    "rendered clicks": lambda: onset_envelope(spectrogram(clicks(np.arange(0.3, 11.5, 0.5), 12.0))).astype(float),
}


@pytest.fixture(params=list(ENVELOPES), scope="module")
def envelope(request) -> np.ndarray:
    return ENVELOPES[request.param]()


def test_windows_lags_and_frames_are_librosas():
    np.testing.assert_allclose(hann(500), scipy.signal.get_window("hann", 500, fftbins=True), atol=1e-15)
    np.testing.assert_array_equal(tempo_frequencies(500, frame_rate=FRAMES_PER_SECOND),
                                  librosa.tempo_frequencies(500, sr=SAMPLE_RATE, hop_length=HOP_LENGTH))
    signal = np.arange(1000.0)
    np.testing.assert_array_equal(frames(signal, length=500, hop=16),
                                  librosa.util.frame(signal, frame_length=500, hop_length=16))


def test_tempogram_columns_and_their_tempi_are_librosas(envelope):
    padded = np.pad(envelope, TEMPOGRAM_FRAMES // 2, mode="linear_ramp", end_values=0)
    windows = frames(padded, length=TEMPOGRAM_FRAMES, hop=TEMPOGRAM_HOP) * hann(TEMPOGRAM_FRAMES)[:, None]
    ours = autocorrelation_columns(windows)
    theirs = librosa.util.normalize(librosa.autocorrelate(windows, axis=0), norm=np.inf, axis=0)
    np.testing.assert_allclose(ours, theirs, atol=1e-12)
    tempi = librosa.feature.tempo(tg=theirs, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, aggregate=None,
                                  max_tempo=TEMPO_RANGE_BPM[1])
    np.testing.assert_array_equal(tempo_per_column(ours, frame_rate=FRAMES_PER_SECOND, max_bpm=TEMPO_RANGE_BPM[1]),
                                  tempi)


@pytest.mark.parametrize("tempo", ["local", "one"])
def test_beats_are_librosas(envelope, tempo):
    local_bpm, _, overall_bpm = _tempogram_analysis(envelope)
    bpm = local_bpm if tempo == "local" else np.array([overall_bpm])
    theirs = librosa.beat.beat_track(onset_envelope=envelope, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, bpm=bpm,
                                     tightness=BEAT_TIGHTNESS, trim=True, units="frames")[1]
    ours = beat_frames(envelope, bpm, frame_rate=FRAMES_PER_SECOND, tightness=BEAT_TIGHTNESS)
    assert len(theirs) > 5
    np.testing.assert_array_equal(ours, theirs)


def test_a_silent_envelope_has_no_beats():
    assert beat_frames(np.zeros(600), np.array([120.0]), frame_rate=FRAMES_PER_SECOND, tightness=100).size == 0


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_the_smoothing_is_scipys_savitzky_golay(seed):
    beats = np.cumsum(np.random.default_rng(seed).uniform(0.4, 0.6, 40)) + \
        np.random.default_rng(seed + 10).normal(0, 0.008, 40)
    np.testing.assert_allclose(_smoothed(beats), scipy.signal.savgol_filter(beats, 7, 2), atol=1e-12)
