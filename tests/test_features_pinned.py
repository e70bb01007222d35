"""The features, pinned: a golden digest of ``spectrogram()`` per feature version, and a bin-by-bin check of the
transform against librosa's ``cqt``, the reference implementation, on sines and chirps.

Checkpoints and dataset items carry ``FEATURE_SETTINGS`` (its ``version`` included) and are refused when it
differs, so features that change without a new version would be misread by every model trained before.
"""

import librosa
import numpy as np
import pytest
import scipy.signal

from pipeline.constants import BINS_PER_OCTAVE, FMIN_HZ, HOP_LENGTH, N_BINS, SAMPLE_RATE, pitch_to_hz
from pipeline.features import FEATURE_SETTINGS, FLOOR_DB, spectrogram

# --- golden digest ---------------------------------------------------------------------------------------------
# Per feature version: the settings, the shape, and 21 numbers of spectrogram(golden_signal()): the mean and
# standard deviation of all values, the means of 8 blocks of frames and of 11 groups of bins. A new version adds an
# entry; the old ones stay. The tolerance sits far above rounding (runs on other CPUs agree to about 1e-7) and
# below the smallest change tried: the resampler at a higher quality moves a number by 5e-5, a gain of 0.01 dB by
# 1e-4, the floor at 79.9 dB by 1e-3, the filters 1 % longer or the bins 1 cent higher by 5e-3 to 8e-3.
DIGEST_TOLERANCE = 1e-5
GOLDEN = {
    1: {
        "settings": {"kind": "cqt", "version": 1, "sample_rate": 16000, "hop_length": 256, "n_bins": 264,
                     "bins_per_octave": 36, "fmin_hz": 26.975577, "q": 51.438626, "floor_db": 80.0},
        "shape": (126, 264),
        "digest": [0.14362, 0.198082,
                   0.197307, 0.186631, 0.174322, 0.131504, 0.094414, 0.166368, 0.114704, 0.07779,
                   0.131776, 0.20229, 0.243604, 0.27791, 0.161793, 0.160109, 0.239984, 0.060569, 0.042034, 0.034873,
                   0.024882],
    },
}
BUMP = ("If the change is meant, bump FEATURE_SETTINGS['version'] in pipeline/features.py (checkpoints and datasets "
        "carry it, so those made with the old features are refused instead of misread) and add the new version's "
        "entry to GOLDEN in this file, keeping the old ones")


def golden_signal() -> np.ndarray:
    """2 s: A4 throughout, C3 from 0.5 to 1.5 s, a logarithmic sweep 50 Hz -> 4 kHz, one click at 1 s."""
    t = np.arange(2 * SAMPLE_RATE) / SAMPLE_RATE
    a4 = 0.4 * np.sin(2 * np.pi * 440.0 * t)
    c3 = 0.2 * np.sin(2 * np.pi * pitch_to_hz(48) * t) * ((t >= 0.5) & (t < 1.5))
    sweep = 0.1 * scipy.signal.chirp(t, f0=50.0, t1=2.0, f1=4000.0, method="logarithmic")
    click = np.where(np.arange(t.size) == SAMPLE_RATE, 0.9, 0.0)
    return (a4 + c3 + sweep + click).astype(np.float32)


def digest(features: np.ndarray) -> np.ndarray:
    """[frames, bins] -> the 21 numbers GOLDEN keeps."""
    frame_blocks = np.array_split(np.arange(features.shape[0]), 8)
    bin_groups = np.array_split(np.arange(features.shape[1]), 11)
    return np.array([features.mean(dtype=np.float64), features.std(dtype=np.float64)]
                    + [features[block].mean(dtype=np.float64) for block in frame_blocks]
                    + [features[:, group].mean(dtype=np.float64) for group in bin_groups])


def test_the_features_of_this_version_are_the_pinned_ones():
    version = FEATURE_SETTINGS["version"]
    assert version in GOLDEN, f"no golden digest for feature version {version}. {BUMP}"
    golden = GOLDEN[version]
    assert FEATURE_SETTINGS == golden["settings"], (
        f"FEATURE_SETTINGS changed within version {version}: {FEATURE_SETTINGS} (pinned {golden['settings']}). {BUMP}")
    features = spectrogram(golden_signal())
    assert features.shape == golden["shape"], f"features of shape {features.shape} in version {version}. {BUMP}"
    found = digest(features)
    worst = float(np.abs(found - golden["digest"]).max())
    assert worst <= DIGEST_TOLERANCE, (
        f"spectrogram() no longer gives the features of version {version} (a digest number moved by {worst:.1e}). "
        f"{BUMP}. This code's digest: {np.round(found, 6).tolist()}")


def test_older_versions_keep_their_entries():
    assert sorted(GOLDEN) == list(range(1, FEATURE_SETTINGS["version"] + 1))
    assert all(entry["settings"]["version"] == version for version, entry in GOLDEN.items())


@pytest.mark.parametrize("change", ["one bin up", "gain +0.01 dB"])
def test_the_golden_digest_sees_small_changes(change):
    """The test above can fail: features shifted by one bin, or 0.01 dB louder, miss the pinned digest."""
    if change == "one bin up":
        features = np.roll(spectrogram(golden_signal()), 1, axis=1)
    else:
        features = spectrogram(golden_signal() * np.float32(10 ** (0.01 / 20)))
    assert np.abs(digest(features) - GOLDEN[1]["digest"]).max() > DIGEST_TOLERANCE


# --- against librosa.cqt ---------------------------------------------------------------------------------------
# Scaling. librosa's filters (norm=1) are normalised to unit L1 norm and its FFT basis is then multiplied by
# L_k / n_fft, where L_k is bin k's filter length (``librosa.filters.wavelet_lengths``): with ``scale=False`` a
# sine of amplitude A at bin k's centre reads A * L_k / 2; its default ``scale=True`` divides by sqrt(L_k), which
# is why its low octaves read louder (sqrt(2) per octave). Ours divides each filter by half its window's sum, so
# the same sine reads A in every octave (docs/FEATURES.md). Hence ours = 2 |C_k| / L_k with ``scale=False``:
# measured equal to 1e-4 at bin centres, A0 to C8.
# Tolerance. Where librosa reads above -30 dBFS (the signals peak at -6 dBFS: the main lobes and near skirts),
# every frame and bin agrees within 1.5 dB and the median difference is at most 0.25 dB. Measured: at most 0.83 dB
# for sines and 1.2 dB for a sweep, medians 0.11-0.20 dB. What remains is the filters' shape, not their scaling:
# ours have whole-sample lengths (ceil(Q sr / f)) and numpy's Hann window, librosa's fractional lengths, which
# moves the neighbouring bins of a sine by a few tenths of a dB; and the edges of the signal and the 80 dB floor,
# where each rounds its multirate resampling differently. Further down (below -40 dBFS, the far skirts) the two
# differ by up to 10 dB and are not compared. A one-bin shift misses by 6 dB and more; 0.3 dB of gain moves the
# median to 0.4-0.5 dB.
LEVEL_DBFS = -30.0
MAX_DIFFERENCE_DB = 1.5
MEDIAN_DIFFERENCE_DB = 0.25
SECONDS = 3.0


def _librosa_db(audio: np.ndarray) -> np.ndarray:
    """librosa.cqt of ``audio`` on our bins, scaled as ours and put in dB with our floor: [frames, N_BINS]."""
    freqs = FMIN_HZ * 2.0 ** (np.arange(N_BINS) / BINS_PER_OCTAVE)
    lengths, _ = librosa.filters.wavelet_lengths(freqs=freqs, sr=SAMPLE_RATE, window="hann", filter_scale=1)
    reference = np.abs(librosa.cqt(audio, sr=SAMPLE_RATE, hop_length=HOP_LENGTH, fmin=FMIN_HZ, n_bins=N_BINS,
                                   bins_per_octave=BINS_PER_OCTAVE, window="hann", scale=False, sparsity=0.0))
    magnitude = 2.0 * reference.T / lengths
    return 20.0 * np.log10(np.maximum(magnitude, 10.0 ** (-FLOOR_DB / 20.0)))


def _ours_db(audio: np.ndarray) -> np.ndarray:
    return spectrogram(audio) * FLOOR_DB - FLOOR_DB  # the inverse of (dB + FLOOR_DB) / FLOOR_DB


def _differences(ours_db: np.ndarray, reference_db: np.ndarray) -> tuple[float, float]:
    """(largest, median) |ours - librosa| in dB over the frames and bins where librosa reads above LEVEL_DBFS."""
    assert ours_db.shape == reference_db.shape
    compared = np.abs(ours_db - reference_db)[reference_db > LEVEL_DBFS]
    assert compared.size > 0
    return float(compared.max()), float(np.median(compared))


def _test_signal(kind: str) -> np.ndarray:
    t = np.arange(int(SECONDS * SAMPLE_RATE)) / SAMPLE_RATE
    if kind.startswith("sine"):
        audio = 0.5 * np.sin(2 * np.pi * pitch_to_hz(float(kind.split()[1])) * t)
    elif kind == "sweep up":  # A0 to C8 over the clip, a logarithmic sweep: every bin in turn
        audio = 0.5 * scipy.signal.chirp(t, f0=pitch_to_hz(21), t1=t[-1], f1=pitch_to_hz(108), method="logarithmic")
    elif kind == "sweep down":
        audio = 0.5 * scipy.signal.chirp(t, f0=3000.0, t1=t[-1], f1=100.0, method="linear")
    else:  # a C major seventh chord
        audio = sum(0.15 * np.sin(2 * np.pi * pitch_to_hz(pitch) * t) for pitch in (48, 55, 64, 71))
    return audio.astype(np.float32)


# One key in each octave of the transform, two between bins, the lowest and highest keys; sweeps; a chord.
SIGNALS = ["sine 21", "sine 33.5", "sine 45", "sine 60", "sine 69.3", "sine 81", "sine 96", "sine 108",
           "sweep up", "sweep down", "chord"]


@pytest.mark.parametrize("kind", SIGNALS)
def test_the_features_match_librosa_cqt_bin_by_bin(kind):
    audio = _test_signal(kind)
    reference = _librosa_db(audio)
    largest, median = _differences(_ours_db(audio), reference)
    assert largest <= MAX_DIFFERENCE_DB and median <= MEDIAN_DIFFERENCE_DB, (kind, largest, median)


@pytest.mark.parametrize("kind", ["sine 60", "sweep up", "chord"])
@pytest.mark.parametrize("change", ["one bin up", "one bin down", "0.3 dB louder"])
def test_the_librosa_check_fails_on_features_slightly_off(kind, change):
    audio = _test_signal(kind)
    ours = _ours_db(audio)
    ours = {"one bin up": np.roll(ours, 1, axis=1), "one bin down": np.roll(ours, -1, axis=1)}.get(change, ours + 0.3)
    largest, median = _differences(ours, _librosa_db(audio))
    assert largest > MAX_DIFFERENCE_DB or median > MEDIAN_DIFFERENCE_DB
