"""The CQT-bin-shift augmentation: features move by a third or two thirds of a semitone, the key labels stay."""

import numpy as np
import pytest

from model.data import Augment, shift_bins
from model.train import TrainOptions, check_options
from pipeline.constants import BINS_PER_SEMITONE, LOWEST_PITCH, N_BINS, N_KEYS, SAMPLE_RATE, pitch_to_hz
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram

PLAIN = dict(gain_db=0.0, tilt_db=0.0, noise_floor=0.0, pitch_shift=0)


def _tone(pitch: float, seconds: float = 1.0) -> np.ndarray:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    return (0.3 * np.sin(2 * np.pi * pitch_to_hz(pitch) * t)).astype(np.float32)


@pytest.mark.parametrize("bins", [-2, -1, 1, 2])
def test_shift_moves_every_bin_and_fills_the_edge_with_silence(bins):
    features = np.random.default_rng(0).random((40, N_BINS), dtype=np.float32)
    shifted = shift_bins(features, bins)
    assert shifted.shape == features.shape and shifted.dtype == features.dtype
    if bins > 0:
        np.testing.assert_array_equal(shifted[:, bins:], features[:, :-bins])
        assert not shifted[:, :bins].any()
    else:
        np.testing.assert_array_equal(shifted[:, :bins], features[:, -bins:])
        assert not shifted[:, bins:].any()


@pytest.mark.parametrize("bins", [-1, 1])
def test_a_shift_of_one_bin_is_the_same_tone_a_third_of_a_semitone_away(bins):
    """The transform is constant-Q: a tone 33 cents sharp reads as the tone's features one bin up."""
    pitch = 69
    written = spectrogram(_tone(pitch))[20:-20]
    detuned = spectrogram(_tone(pitch + bins / BINS_PER_SEMITONE))[20:-20]
    centre = (pitch - LOWEST_PITCH) * BINS_PER_SEMITONE + 1
    loud = detuned.mean(axis=0) > 0.5  # within 40 dB of the peak (the skirts far below it differ a little)
    assert loud.sum() >= 3
    np.testing.assert_allclose(shift_bins(written, bins)[:, loud], detuned[:, loud], atol=0.01)
    assert int(np.argmax(detuned.mean(axis=0))) == centre + bins  # still inside A4's triple of bins


def test_augment_shifts_features_only_and_reaches_every_shift():
    rng_features = np.random.default_rng(1).random((50, N_BINS), dtype=np.float32)
    rolls = {name: (np.random.default_rng(2).random((50, N_KEYS)) > 0.9).astype(np.uint8)
             for name in ("onset", "frame", "offset", "velocity")}
    seen = set()
    for seed in range(40):
        features, new_rolls = Augment(**PLAIN, bin_shift=2).apply(rng_features, rolls, np.random.default_rng(seed))
        for name in rolls:
            np.testing.assert_array_equal(new_rolls[name], rolls[name])
        matches = [k for k in range(-2, 3) if np.array_equal(features, shift_bins(rng_features, k))]
        assert len(matches) == 1
        seen.add(matches[0])
    assert seen == {-2, -1, 0, 1, 2}


def test_off_by_default_gives_the_features_unshifted():
    features = np.random.default_rng(3).random((30, N_BINS), dtype=np.float32)
    rolls = {"frame": np.zeros((30, N_KEYS), np.uint8)}
    out, _ = Augment(**PLAIN).apply(features, rolls, np.random.default_rng(0))
    np.testing.assert_array_equal(out, features)


@pytest.mark.parametrize("bins", [3, -3, 5])
def test_a_shift_of_a_semitone_or_more_is_refused(bins):
    with pytest.raises(Mp3MidiError, match=f"less than a semitone.*got {bins}"):
        shift_bins(np.zeros((4, N_BINS), np.float32), bins)
    with pytest.raises(Mp3MidiError, match="bin shift must be 0 to 2"):
        Augment(bin_shift=bins)


def test_training_option_is_checked_and_named_only_when_used(tmp_path):
    with pytest.raises(Mp3MidiError, match="--bin-shift must be 0, 1 or 2 CQT bins; got 3"):
        check_options(TrainOptions(datasets=["x"], run="r", bin_shift=3, data_dir=str(tmp_path), device="cpu"))
    assert "bin_shift" not in TrainOptions(datasets=["x"], run="r").identity()
    assert TrainOptions(datasets=["x"], run="r", bin_shift=1).identity()["bin_shift"] == 1
