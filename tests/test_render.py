import shutil
from pathlib import Path

import numpy as np
import pytest

from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.notes import Note, Part
from pipeline.render import Effects, _finish, check_soundfont, default_soundfont, render
from tests.conftest import melody

PIANO = Part(0, False, melody(6))


def peak_db(audio):
    return 20 * np.log10(np.abs(audio).max())


@pytest.mark.parametrize("effects", [Effects(), Effects(reverb=0.5, chorus=0.4, peak_db=-12.0),
                                     Effects(peak_db=-6.0, noise_snr_db=30.0)])
def test_renders_at_the_asked_level(effects):
    audio = render([PIANO], 2.0, soundfont=default_soundfont(), effects=effects, rng=np.random.default_rng(1))
    assert audio.dtype == np.float32 and audio.shape == (2 * SAMPLE_RATE,)
    assert peak_db(audio) == pytest.approx(effects.peak_db, abs=1.0 if effects.noise_snr_db else 0.01)


def test_render_is_deterministic():
    first = render([PIANO], 2.0, soundfont=default_soundfont(), effects=Effects(reverb=0.5))
    again = render([PIANO], 2.0, soundfont=default_soundfont(), effects=Effects(reverb=0.5))
    assert np.array_equal(first, again)


def test_programs_sound_different():
    piano = render([PIANO], 2.0, soundfont=default_soundfont())
    flute = render([Part(73, False, PIANO.notes)], 2.0, soundfont=default_soundfont())
    assert not np.allclose(piano, flute, atol=0.05)


def test_drums_render_on_the_drum_channel():
    kit = Part(0, True, (Note(0.1, 0.3, 38, 120),))
    assert peak_db(render([kit], 1.0, soundfont=default_soundfont())) == pytest.approx(-1.0, abs=0.01)


def test_any_named_soundfont_file_works(tmp_path: Path):
    copy = tmp_path / "My Bank.sf2"
    shutil.copy(default_soundfont(), copy)
    assert render([PIANO], 1.0, soundfont=check_soundfont(str(copy))).any()


def test_silence_is_rejected():
    with pytest.raises(Mp3MidiError, match="silent render"):
        render([Part(0, False, (Note(1.5, 1.9, 60, 100),))], 1.0, soundfont=default_soundfont())


def _tone(amplitude: float, seconds: float = 0.5) -> np.ndarray:
    """[samples, 2] float32 as FluidSynth writes it: a 440 Hz tone of the given peak in both channels."""
    tone = amplitude * np.sin(2 * np.pi * 440 * np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE)
    return np.repeat(tone[:, None], 2, axis=1).astype(np.float32)


@pytest.mark.parametrize(("stereo", "reason"), [
    (np.zeros((SAMPLE_RATE, 2), np.float32), r"silent render \(peak -180 dBFS\)"),
    (_tone(1e-4), r"silent render \(peak -80 dBFS\)"),
    (_tone(3.0), r"clipped render \(\d+\.\d\d% of samples at full scale\)"),
])
def test_silent_and_clipped_synthesizer_output_is_rejected(stereo, reason):
    with pytest.raises(Mp3MidiError, match=reason):
        _finish(stereo, Effects(), None)


@pytest.mark.parametrize("stereo", [_tone(0.2), _tone(0.99),
                                    np.vstack([_tone(0.5), _tone(1.2, seconds=0.0001)])])  # 2 of 8,002 over
def test_output_below_full_scale_or_barely_over_it_is_kept(stereo):
    mono = _finish(stereo, Effects(peak_db=-6.0), None)
    assert mono.shape == (len(stereo),) and peak_db(mono) == pytest.approx(-6.0, abs=0.01)


@pytest.mark.parametrize(("content", "reason"), [(None, "does not exist"), (b"not a soundfont at all", "not an SF2/SF3"),
                                                 (b"RIFF\x00\x00\x00\x00sfbkLIST", "cannot load")])
def test_bad_soundfonts_are_refused(tmp_path: Path, content, reason):
    path = tmp_path / "font.sf2"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(Mp3MidiError, match=reason):
        check_soundfont(str(path))


def test_a_checked_soundfont_is_not_loaded_until_rendered_and_a_cut_one_is_refused(tmp_path: Path):
    """The check reads the bank's chunks and presets, not its samples (a job's coordinator never renders): the
    process's loaded banks are unchanged by it. A bank cut short is still refused."""
    from pipeline import render as render_module

    whole, cut = tmp_path / "whole.sf2", tmp_path / "cut.sf2"
    data = Path(default_soundfont()).read_bytes()
    whole.write_bytes(data)
    cut.write_bytes(data[: len(data) // 2])
    loads = render_module._loaded_font.cache_info().misses
    assert check_soundfont(str(whole)) == str(whole.resolve())
    assert render_module._loaded_font.cache_info().misses == loads
    with pytest.raises(Mp3MidiError, match="cannot load soundfont"):
        check_soundfont(str(cut))
    assert render([PIANO], 1.0, soundfont=str(whole.resolve())).any()
    assert render_module._loaded_font.cache_info().misses == loads + 1


def test_a_bank_that_fails_to_load_is_tried_once_per_process(tmp_path: Path):
    from pipeline import render as render_module

    bad = tmp_path / "damaged.sf2"
    bad.write_bytes(b"RIFF\0\0\0\0sfbkLIST")
    loads = render_module._loaded_font.cache_info().misses
    for _ in range(2):
        with pytest.raises(Mp3MidiError, match="FluidSynth cannot load soundfont .*damaged.sf2"):
            render([PIANO], 1.0, soundfont=str(bad))
    assert render_module._loaded_font.cache_info().misses == loads + 1
