"""FluidSynth rendering of parts with any soundfont, plus cheap augmentations (gain, reverb, chorus, noise).

A part plays its notes as written, or, when given, a performance's MIDI events (pitch wheel, controllers, notes;
``pipeline.performance`` makes them and the labels that follow their sound).
A fresh synthesizer per render keeps output bit-identical however items are spread over processes. Soundfonts are
loaded once per process and lent to each fresh synthesizer: an .sf3 takes about three CPU seconds to load (its
samples are decompressed), longer than rendering a 30-second clip; a dataset job's workers inherit theirs from the
process they fork from (``pipeline.soundfont_preload``). FluidSynth writes float samples straight into the
output array: its 16-bit writer (dithered, then converted back to float here) cost a third of the render.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from .constants import DRUM_CHANNEL, SAMPLE_RATE
from .errors import Mp3MidiError
from .notes import Part

SYNTH_GAIN = 0.2  # FluidSynth's own default: headroom for dense chords below full scale
DRUM_BANK = 128
MELODIC_CHANNELS = tuple(c for c in range(16) if c != DRUM_CHANNEL)
SILENT_PEAK = 10 ** (-60 / 20)  # a render whose loudest sample is below -60 dBFS is silent
CLIPPED_FRACTION = 0.001  # more than 0.1 % of samples at full scale means the synthesizer clipped
BEND_CENTRE = 8192  # the pitch wheel at rest (14-bit value)
_FLUID_WARN = 2  # FluidSynth's log level for warnings
_CHANNELS = 16


@dataclass(frozen=True, slots=True)
class Event:
    """One MIDI event of a performed part. ``kind`` is 'on' (a = key, b = velocity), 'off' (a = key),
    'cc' (a = controller, b = value 0-127) or 'bend' (a = pitch-wheel position 0-16383, 8192 = centre)."""

    time_s: float
    kind: str
    a: int
    b: int = 0


LOADED_BANKS = 8  # soundfonts a process keeps loaded (a dataset draws from at most this many)
_EVENT_ORDER = {"off": 0, "cc": 1, "bend": 1, "on": 2}  # at one instant: releases, then controllers, then attacks


@dataclass(frozen=True)
class Effects:
    """Augmentations applied while rendering. Levels are FluidSynth's 0-1 effect sends; 0 switches one off."""

    reverb: float = 0.0
    chorus: float = 0.0
    peak_db: float = -1.0  # the render is scaled so its loudest sample sits here
    noise_snr_db: float | None = None  # white noise this far below the signal's RMS; None for none

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Effects":
        """Seeded augmentation: half the items dry, gain over 15 dB, noise on a quarter of them."""
        wet = rng.random() < 0.5
        return cls(
            reverb=float(rng.uniform(0.1, 0.7)) if wet else 0.0,
            chorus=float(rng.uniform(0.1, 0.6)) if wet and rng.random() < 0.5 else 0.0,
            peak_db=float(rng.uniform(-16.0, -1.0)),
            noise_snr_db=float(rng.uniform(25.0, 50.0)) if rng.random() < 0.25 else None,
        )


@lru_cache(maxsize=16)
def check_soundfont(path: str) -> str:
    """Resolve and validate a soundfont path once; raises ``Mp3MidiError`` if FluidSynth cannot read it.

    FluidSynth reads the file's chunks and presets but not its samples (an .sf3's take seconds of CPU to
    decompress), so a process that only checks, such as a job's coordinator, does not pay for rendering with it.
    A bank cut short is refused here; one whose samples are damaged inside passes, and fails where it is first
    loaded: each process tries once, and every item that draws it fails with the reason (``load_soundfont``).
    """
    resolved = Path(path).expanduser().resolve()
    if not resolved.is_file():
        raise Mp3MidiError(f"soundfont {path!r} does not exist")
    with open(resolved, "rb") as handle:
        header = handle.read(12)
    if header[:4] != b"RIFF" or header[8:12] != b"sfbk":
        raise Mp3MidiError(f"soundfont {path!r} is not an SF2/SF3 file (no RIFF sfbk header)")
    import fluidsynth

    probe = fluidsynth.Synth(samplerate=SAMPLE_RATE, **{"synth.dynamic-sample-loading": 1})  # samples on use only
    try:
        if probe.sfload(str(resolved)) < 0:
            raise Mp3MidiError(f"FluidSynth cannot load soundfont {str(resolved)!r}")
    finally:
        probe.delete()
    return str(resolved)


def load_soundfont(path: str) -> None:
    """Load a checked soundfont, samples and all, into this process now rather than at its first render (a
    process that workers fork from shares it with them: ``pipeline.soundfont_preload``). Raises ``Mp3MidiError``
    when FluidSynth cannot, at once for a bank that failed in this process before (or in the one it forked from)."""
    _font(path)


def default_soundfont() -> str:
    """The General MIDI soundfont shipped inside pretty_midi (TimGM6mb.sf2), found without importing it (slow)."""
    from importlib.util import find_spec

    return str(Path(find_spec("pretty_midi").origin).parent / "TimGM6mb.sf2")


def render(parts: list[Part], duration_s: float, *, soundfont: str, effects: Effects = Effects(),
           rng: np.random.Generator | None = None,
           performed: list[list[Event] | None] | None = None) -> np.ndarray:
    """Render parts for ``duration_s`` seconds. Returns [samples] float32 mono at SAMPLE_RATE.

    Each part plays on its own channel with its program (drum parts on the drum channel): its notes, or
    ``performed[i]``'s events for part i when that is given (events at one instant keep their order). Raises
    ``Mp3MidiError`` when the result is silent or clipped, or the soundfont lacks a program.
    """
    if performed is not None and len(performed) != len(parts):
        raise Mp3MidiError(f"{len(performed)} performances for {len(parts)} parts")
    melodic = [part for part in parts if not part.is_drum]
    if len(melodic) > len(MELODIC_CHANNELS):
        raise Mp3MidiError(f"{len(melodic)} pitched parts; at most {len(MELODIC_CHANNELS)} can be rendered at once")
    synth, font_id, font = _new_synth(soundfont, effects)
    try:
        events = []
        for index, (channel, part) in enumerate(_assign_channels(parts)):
            bank = DRUM_BANK if part.is_drum else 0
            if synth.program_select(channel, font_id, bank, part.program) != 0:
                raise Mp3MidiError(f"soundfont {Path(soundfont).name!r} has no preset {bank}:{part.program}")
            played = performed[index] if performed is not None else None
            if played is None:  # (sample, order, channel, tie-break, kind, a, b); the key breaks ties as before
                for note in part.notes:
                    events.append((_to_sample(note.start_s), 2, channel, note.pitch, "on", note.pitch, note.velocity))
                    events.append((_to_sample(note.end_s), 0, channel, note.pitch, "off", note.pitch, 0))
            else:
                events.extend((_to_sample(event.time_s), _EVENT_ORDER[event.kind], channel, sequence, event.kind,
                               event.a, event.b) for sequence, event in enumerate(played))
        events.sort()
        total = _to_sample(duration_s)
        stereo = np.zeros((total, 2), np.float32)
        cursor = 0
        for sample, _, channel, _, kind, a, b in events:
            sample = min(sample, total)
            if sample > cursor:
                _write(synth, stereo[cursor:sample])
                cursor = sample
            if kind == "on":
                synth.noteon(channel, a, b)
            elif kind == "off":
                synth.noteoff(channel, a)
            elif kind == "cc":
                synth.cc(channel, a, b)
            else:
                synth.pitch_bend(channel, a - BEND_CENTRE)
        if total > cursor:
            _write(synth, stereo[cursor:])
    finally:
        _release(synth, font)
    return _finish(stereo, effects, rng)


def _write(synth, frames: np.ndarray) -> None:
    """Render the next len(frames) samples into ``frames`` [n, 2] float32 (C-contiguous rows: left, right)."""
    address, stride = frames.ctypes.data, frames.strides[1]
    _fluid_library().fluid_synth_write_float(synth.synth, len(frames), address, 0, 2, address + stride, 0, 2)


def _finish(stereo: np.ndarray, effects: Effects, rng: np.random.Generator | None) -> np.ndarray:
    """[samples, 2] float32 from FluidSynth (full scale 1.0) -> [samples] mono at the effects' peak, noise added."""
    peak = max(float(stereo.max(initial=0.0)), -float(stereo.min(initial=0.0)))
    if peak < SILENT_PEAK:
        raise Mp3MidiError(f"silent render (peak {20 * np.log10(max(peak, 1e-9)):.0f} dBFS)")
    if peak >= 1.0:  # what 16-bit output would have clipped
        clipped = np.count_nonzero(np.abs(stereo) >= 1.0) / stereo.size
        if clipped > CLIPPED_FRACTION:
            raise Mp3MidiError(f"clipped render ({clipped:.2%} of samples at full scale)")
    mono = stereo[:, 0] + stereo[:, 1]  # (a column mean over two columns is many times slower)
    mono *= 10 ** (effects.peak_db / 20) / max(float(mono.max()), -float(mono.min()))
    if effects.noise_snr_db is not None:
        rng = rng or np.random.default_rng(0)
        rms = float(np.sqrt(np.mean(mono**2)))
        mono += rng.normal(0.0, rms * 10 ** (-effects.noise_snr_db / 20), mono.shape).astype(np.float32)
    return np.clip(mono, -1.0, 1.0, out=mono)


_UNLOADABLE: dict[str, str] = {}  # bank -> why it did not load in this process: a multi-second load is tried once


def _font(soundfont: str):
    """``_loaded_font``, remembering failures: a damaged bank fails each later item at once, not after a reload."""
    if soundfont in _UNLOADABLE:
        raise Mp3MidiError(_UNLOADABLE[soundfont])
    try:
        return _loaded_font(soundfont)
    except Mp3MidiError as exc:
        _UNLOADABLE[soundfont] = str(exc)
        raise


@lru_cache(maxsize=LOADED_BANKS)
def _loaded_font(soundfont: str):
    """A soundfont loaded once in this process: (the synthesizer that owns it, the font handle to lend out)."""
    import fluidsynth

    owner = fluidsynth.Synth(samplerate=SAMPLE_RATE, channels=_CHANNELS)
    font_id = owner.sfload(soundfont)
    if font_id < 0:
        owner.delete()
        raise Mp3MidiError(f"FluidSynth cannot load soundfont {soundfont!r}")
    return owner, fluidsynth.fluid_synth_get_sfont_by_id(owner.synth, font_id)


@lru_cache(maxsize=1)
def _fluid_library():
    import ctypes

    import fluidsynth

    library = fluidsynth._fl  # the loaded libfluidsynth; pyfluidsynth does not wrap the calls below
    library.fluid_synth_add_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    library.fluid_synth_remove_sfont.argtypes = [ctypes.c_void_p, ctypes.c_void_p]
    library.fluid_set_log_function.argtypes = [ctypes.c_int, ctypes.c_void_p, ctypes.c_void_p]
    # synth, frames, left buffer, offset, step, right buffer, offset, step (steps in floats: interleaved stereo)
    library.fluid_synth_write_float.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_void_p, ctypes.c_int,
                                                ctypes.c_int, ctypes.c_void_p, ctypes.c_int, ctypes.c_int]
    # Handing a font back resets every channel, and FluidSynth warns about each one left without a preset.
    library.fluid_set_log_function(_FLUID_WARN, None, None)
    return library


def _release(synth, font) -> None:
    _fluid_library().fluid_synth_remove_sfont(synth.synth, font)  # lent, not owned: the font stays loaded
    synth.delete()


def _new_synth(soundfont: str, effects: Effects):
    import fluidsynth

    _, font = _font(soundfont)
    synth = fluidsynth.Synth(
        gain=SYNTH_GAIN,
        samplerate=SAMPLE_RATE,
        channels=_CHANNELS,
        **{"synth.reverb.active": int(effects.reverb > 0), "synth.chorus.active": int(effects.chorus > 0),
           "synth.polyphony": 512, "synth.cpu-cores": 1},
    )
    font_id = _fluid_library().fluid_synth_add_sfont(synth.synth, font)
    if effects.reverb > 0:
        synth.set_reverb(roomsize=0.2 + 0.6 * effects.reverb, damping=0.4, width=0.8, level=effects.reverb)
    if effects.chorus > 0:
        synth.set_chorus(nr=3, level=effects.chorus * 4, speed=0.4, depth=6.0, type=0)
    return synth, font_id, font


def _assign_channels(parts: list[Part]):
    melodic = iter(MELODIC_CHANNELS)
    for part in parts:
        yield (DRUM_CHANNEL if part.is_drum else next(melodic)), part


def _to_sample(seconds: float) -> int:
    return int(round(seconds * SAMPLE_RATE))
