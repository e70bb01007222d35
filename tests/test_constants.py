import pytest

from pipeline import constants as c


def test_derived_values_follow_from_the_choices():
    assert c.N_KEYS == 88
    assert c.FRAMES_PER_SECOND == pytest.approx(c.SAMPLE_RATE / c.HOP_LENGTH)
    assert c.N_BINS == c.N_KEYS * c.BINS_PER_SEMITONE
    assert c.FMAX_HZ < c.NYQUIST_HZ


@pytest.mark.parametrize(("pitch", "hz"), [(69, 440.0), (21, 27.5), (108, 4186.009), (60, 261.626)])
def test_pitch_to_hz(pitch, hz):
    assert c.pitch_to_hz(pitch) == pytest.approx(hz, rel=1e-5)


def test_the_cqt_bins_centre_on_the_keys():
    assert c.pitch_to_hz(c.LOWEST_PITCH) == pytest.approx(c.FMIN_HZ * 2 ** (1 / c.BINS_PER_OCTAVE), rel=1e-9)
