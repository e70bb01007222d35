"""Procedural instruments that exist nowhere: the same notes the factory plays through FluidSynth, rendered by four
seeded models so that no soundfont's sound is all the network ever hears.

- ``additive``: harmonic partials with a random spectrum (tilt, odd/even balance, formant-like resonances, random
  per-partial levels), an attack brighter than the sustain;
- ``fm``: a sine carrier at the key phase-modulated by an integer-ratio modulator whose index decays;
- ``plucked``: struck/plucked modes in the manner of a Karplus-Strong string (pluck-position comb, higher partials
  dying faster, stiff-string inharmonicity), damped at the key's release;
- ``breath``: a few harmonics with a slow attack, amplitude wobble from low-passed noise (noise-excited partials),
  breath noise through a band-pass and a chiff at the attack.

Every partial is kept below ``PARTIAL_LIMIT_HZ`` (no aliasing), the fundamental sits on the written key (plus a
drawn detune of a few cents), and the labels are the written notes: the note sounds from its start to its end plus a
short release, as a soundfont's would. Everything is drawn from the generator handed in: a seed gives the same audio.

Each note is one vectorised NumPy computation: [partials, samples] sines in float32 summed by a matrix product.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from functools import lru_cache

import numpy as np
from scipy.signal import butter, sosfilt

from .constants import MIDI_VELOCITY_MAX, SAMPLE_RATE, pitch_to_hz
from .errors import Mp3MidiError
from .notes import Note, Part

MODELS = ("additive", "fm", "plucked", "breath")
PARTIAL_LIMIT_HZ = 0.45 * SAMPLE_RATE  # 7.2 kHz: the highest partial any model writes
MAX_PARTIALS = {"additive": 16, "plucked": 10, "breath": 8}
TABLE_SIZE = 4096  # samples in a one-period wavetable
BLOCK = 512  # samples per block of the plucked model's modes
SILENT_PEAK = 10 ** (-60 / 20)
MAX_RELEASE_S = 0.6  # a note rings at most this long after its key is released
VELOCITY_CURVE = 1.6  # amplitude = (velocity / 127) ** VELOCITY_CURVE
# Attack times drawn (log-uniform) per model, in seconds
ATTACK_RANGE_S = {"additive": (0.003, 0.08), "fm": (0.001, 0.03), "plucked": (0.0005, 0.004), "breath": (0.04, 0.25)}


@dataclass(frozen=True)
class Timbre:
    """One invented instrument. Fields a model does not use keep their defaults; ``record()`` is what the catalog keeps."""

    model: str
    attack_s: float
    decay_s: float  # time constant from the attack peak towards the sustain level (plucked: the fundamental's)
    sustain: float  # level held while the key is down, 0-1 of the peak (plucked: unused, the modes decay)
    release_s: float  # time constant after the key is released
    tilt_db_per_octave: float = -6.0  # spectral slope of the partials
    even_gain: float = 1.0  # even partials' level against odd ones (0: odd partials only)
    resonances: tuple[tuple[float, float, float], ...] = ()  # (centre Hz, gain dB, width octaves)
    partial_offsets_db: tuple[float, ...] = ()  # random level of partial k (k = 1, 2, ...), fixed for the instrument
    stretch: float = 0.0  # inharmonicity B: partial k sits at k * f0 * sqrt(1 + B k^2)
    attack_brightness_db: float = 0.0  # extra level of the upper partials during the attack, fading with decay_s
    fm_ratio: int = 1
    fm_index: float = 0.0
    fm_index_sustain: float = 0.0  # fraction of the index left after the attack
    pluck_position: float = 0.2  # along the string, 0-0.5: partials at multiples of 1/position vanish
    damping: float = 0.0  # how much faster partial k decays than the fundamental: 1 + damping * (k - 1)
    noise_level: float = 0.0  # breath noise RMS against the tone's
    noise_band_hz: tuple[float, float] = (1000.0, 4000.0)
    wobble: float = 0.0  # depth of noise amplitude modulation of the partials
    chiff: float = 0.0  # level of a noise burst at the attack
    detune_cents: float = 0.0  # the whole instrument sits this far off the written keys

    @classmethod
    def draw(cls, rng: np.random.Generator, *, model: str | None = None) -> "Timbre":
        """A random instrument of ``model`` (drawn uniformly among MODELS when None)."""
        if model is None:
            model = MODELS[int(rng.integers(len(MODELS)))]
        if model not in MODELS:
            raise Mp3MidiError(f"unknown synthesis model {model!r}; choose from {', '.join(MODELS)}")
        low, high = ATTACK_RANGE_S[model]
        common = dict(
            model=model, attack_s=_log_uniform(rng, low, high), decay_s=_log_uniform(rng, 0.05, 1.5),
            sustain=float(rng.uniform(0.3, 1.0)), release_s=_log_uniform(rng, 0.02, 0.25),
            tilt_db_per_octave=float(rng.uniform(-14.0, -3.0)),
            even_gain=float(rng.choice([rng.uniform(0.0, 0.3), rng.uniform(0.3, 1.0)])),
            resonances=tuple((_log_uniform(rng, 300.0, 4000.0), float(rng.uniform(3.0, 15.0)),
                              float(rng.uniform(0.2, 0.8))) for _ in range(int(rng.integers(0, 4)))),
            partial_offsets_db=tuple(float(x) for x in rng.normal(0.0, rng.uniform(0.0, 6.0), max(MAX_PARTIALS.values()))),
            detune_cents=float(rng.uniform(-10.0, 10.0)))
        if model == "additive":
            return cls(**common, attack_brightness_db=float(rng.uniform(0.0, 12.0)))
        if model == "fm":
            return cls(**common, fm_ratio=int(rng.integers(1, 5)), fm_index=float(rng.uniform(0.3, 5.0)),
                       fm_index_sustain=float(rng.uniform(0.1, 1.0)))
        if model == "plucked":
            common.update(decay_s=_log_uniform(rng, 0.3, 3.0), sustain=0.0)
            return cls(**common, stretch=_log_uniform(rng, 1e-5, 1e-3), pluck_position=float(rng.uniform(0.05, 0.5)),
                       damping=_log_uniform(rng, 0.05, 1.0))
        common.update(tilt_db_per_octave=float(rng.uniform(-18.0, -6.0)), sustain=float(rng.uniform(0.6, 1.0)))
        centre = _log_uniform(rng, 800.0, 4000.0)
        return cls(**common, noise_level=_log_uniform(rng, 0.02, 0.3), noise_band_hz=(round(centre / 2), round(min(centre * 2, 7000.0))),
                   wobble=float(rng.uniform(0.0, 0.3)), chiff=float(rng.uniform(0.0, 1.0)))

    def record(self) -> dict:
        record = asdict(self)
        return json_ready(record)


def render_synth(parts: list[Part], duration_s: float, *, timbres: list[Timbre], rng: np.random.Generator,
                 peak_db: float = -1.0, noise_snr_db: float | None = None) -> np.ndarray:
    """Render the pitched parts, part i with ``timbres[i]``, for ``duration_s`` seconds.

    Returns [samples] float32 mono at SAMPLE_RATE with its loudest sample at ``peak_db`` dBFS (white noise
    ``noise_snr_db`` below the signal's RMS when given). Drum parts are not rendered here. Raises ``Mp3MidiError``
    when the result is silent or a part has no timbre.
    """
    pitched = [part for part in parts if not part.is_drum]
    if len(timbres) != len(pitched):
        raise Mp3MidiError(f"{len(timbres)} timbres for {len(pitched)} pitched parts")
    total = int(round(duration_s * SAMPLE_RATE))
    out = np.zeros(total, np.float32)
    for part, timbre in zip(pitched, timbres):
        for note in part.notes:
            render_note(out, timbre, note, rng)
    return finish(out, peak_db=peak_db, noise_snr_db=noise_snr_db, rng=rng)


def finish(audio: np.ndarray, *, peak_db: float, noise_snr_db: float | None, rng: np.random.Generator) -> np.ndarray:
    """Scale [samples] float32 so its peak sits at ``peak_db`` dBFS, add white noise if asked; in place."""
    peak = float(np.max(np.abs(audio), initial=0.0))
    if peak < SILENT_PEAK:
        raise Mp3MidiError(f"silent render (peak {20 * np.log10(max(peak, 1e-9)):.0f} dBFS)")
    audio *= np.float32(10 ** (peak_db / 20) / peak)
    if noise_snr_db is not None:
        rms = float(np.sqrt(np.mean(audio**2)))
        audio += rng.normal(0.0, rms * 10 ** (-noise_snr_db / 20), audio.shape).astype(np.float32)
    return np.clip(audio, -1.0, 1.0, out=audio)


def render_note(out: np.ndarray, timbre: Timbre, note: Note, rng: np.random.Generator) -> None:
    """Add one note of ``timbre`` into ``out`` [samples] at the note's start, its release included."""
    start = int(round(note.start_s * SAMPLE_RATE))
    if start >= len(out):
        return
    held = max(note.end_s - note.start_s, 1.0 / SAMPLE_RATE)
    ring = held + min(timbre.release_s * 5.0, MAX_RELEASE_S)
    if timbre.model == "plucked":  # the modes are 60 dB down after ln(1000) time constants
        ring = min(ring, timbre.decay_s * np.log(1000.0))
    n = min(int(ring * SAMPLE_RATE), len(out) - start)
    if n <= 0:
        return
    t = np.arange(n, dtype=np.float32) / np.float32(SAMPLE_RATE)
    f0 = pitch_to_hz(note.pitch + timbre.detune_cents / 100.0)
    cycles = f0 * np.arange(n, dtype=np.float64) / SAMPLE_RATE
    position = (cycles - np.floor(cycles)).astype(np.float32)  # [n] the fundamental's phase in cycles, 0-1
    if timbre.model == "fm":
        tone = _fm(timbre, f0, position, t)
    elif timbre.model == "plucked":
        tone = _plucked(timbre, f0, t, note.velocity, rng)
    else:
        tone = _wavetable(timbre, f0, position, t, note.velocity, rng)
    envelope = _envelope(timbre, t, held, rng)
    tone *= envelope
    if timbre.model == "breath":
        tone += _breath_noise(timbre, t, envelope, rng)
    loud = (note.velocity / MIDI_VELOCITY_MAX) ** VELOCITY_CURVE
    out[start:start + n] += np.float32(loud) * tone


def partial_levels(timbre: Timbre, f0: float, velocity: int) -> tuple[np.ndarray, np.ndarray]:
    """(ratios [K], amplitudes [K]) of the timbre's partials at ``f0``: only those below PARTIAL_LIMIT_HZ,
    amplitudes of unit power (tilt, softer notes darker, resonances, the instrument's fixed offsets, odd/even)."""
    k = np.arange(1, MAX_PARTIALS[timbre.model] + 1, dtype=np.float64)
    ratios = k * np.sqrt(1.0 + timbre.stretch * k**2)
    keep = ratios * f0 < PARTIAL_LIMIT_HZ
    keep[0] = True  # the key itself even where it sits above the limit's reach
    k, ratios = k[keep], ratios[keep]
    levels_db = timbre.tilt_db_per_octave * np.log2(k)
    levels_db -= (1.0 - velocity / MIDI_VELOCITY_MAX) * 3.0 * np.log2(k)  # softer notes are darker
    for centre, gain, width in timbre.resonances:
        levels_db += gain * np.exp(-0.5 * (np.log2(ratios * f0 / centre) / width) ** 2)
    if timbre.partial_offsets_db:
        levels_db += np.asarray(timbre.partial_offsets_db)[:len(k)]
    amplitudes = 10 ** (levels_db / 20)
    amplitudes[1::2] *= timbre.even_gain
    if timbre.model == "plucked":
        amplitudes *= np.abs(np.sin(np.pi * k * timbre.pluck_position)) + 0.05
    return ratios, amplitudes / np.sqrt(np.sum(amplitudes**2))


def _wavetable(timbre: Timbre, f0: float, position: np.ndarray, t: np.ndarray, velocity: int,
               rng: np.random.Generator) -> np.ndarray:
    """[samples] float32 of harmonic partials read from one-period tables: the sustain's spectrum, plus a brighter
    attack fading with decay_s, plus noise wobble of the amplitude (breath)."""
    ratios, amplitudes = partial_levels(timbre, f0, velocity)
    harmonics = np.round(ratios).astype(int)  # additive and breath partials are harmonic (they never draw a stretch)
    phases = np.exp(1j * rng.uniform(0.0, 2 * np.pi, len(harmonics)))
    index = (position * TABLE_SIZE).astype(np.intp) % TABLE_SIZE  # a phase just under 1 rounds to 1.0 in float32
    tone = _table(harmonics, amplitudes * phases)[index]
    if timbre.attack_brightness_db > 0 and len(harmonics) > 1:
        octaves = np.log2(harmonics) / np.log2(harmonics[-1])
        extra = amplitudes * (10 ** (timbre.attack_brightness_db * octaves / 20) - 1.0)
        tone += _table(harmonics, extra * phases)[index] * np.exp(-t / np.float32(timbre.decay_s))
    if timbre.wobble > 0:
        tone *= 1.0 + np.float32(timbre.wobble) * slow_noise(len(t), 30.0, rng)
    return tone


def _table(harmonics: np.ndarray, coefficients: np.ndarray) -> np.ndarray:
    """[TABLE_SIZE] float32: one period holding sines of the given (complex: level and phase) coefficients."""
    spectrum = np.zeros(TABLE_SIZE // 2 + 1, np.complex128)
    spectrum[harmonics] = coefficients
    return (np.fft.irfft(spectrum, TABLE_SIZE) * (TABLE_SIZE / 2)).astype(np.float32)


def _plucked(timbre: Timbre, f0: float, t: np.ndarray, velocity: int, rng: np.random.Generator) -> np.ndarray:
    """[samples] float32: stretched modes, each decaying faster the higher it is, summed block by block.

    Within a block of BLOCK samples each mode is start phase + frequency x local time (float32 stays exact
    enough there); the start phases are computed in float64.
    """
    ratios, amplitudes = partial_levels(timbre, f0, velocity)
    k = np.arange(1, len(ratios) + 1)
    omega = 2 * np.pi * f0 * ratios / SAMPLE_RATE  # [K] radians per sample
    blocks = -(-len(t) // BLOCK)
    starts = np.outer(omega, np.arange(blocks) * BLOCK) + rng.uniform(0.0, 2 * np.pi, len(k))[:, None]
    starts = (starts % (2 * np.pi)).astype(np.float32)  # [K, blocks]
    local = np.arange(BLOCK, dtype=np.float32)
    rates = (1.0 + timbre.damping * (k - 1)) / (timbre.decay_s * SAMPLE_RATE)  # [K] per sample
    weights = (amplitudes[:, None] * np.exp(-np.outer(rates, np.arange(blocks) * BLOCK))).astype(np.float32)
    within = np.exp(-np.outer(rates, local)).astype(np.float32)  # [K, BLOCK]
    sines = np.sin(starts[:, :, None] + (omega.astype(np.float32)[:, None] * local)[:, None, :])  # [K, blocks, BLOCK]
    sines *= within[:, None, :]
    tone = np.einsum("kb,kbt->bt", weights, sines).reshape(-1)
    return tone[:len(t)]


def _fm(timbre: Timbre, f0: float, position: np.ndarray, t: np.ndarray) -> np.ndarray:
    """[samples] float32: a carrier at f0 modulated at fm_ratio * f0, its index held below the partial limit."""
    ratio = timbre.fm_ratio
    reach = (PARTIAL_LIMIT_HZ / f0 - 1.0) / ratio - 1.0  # Carson's rule: f0 + (index + 1) * ratio * f0 fits
    index = max(0.0, min(timbre.fm_index, reach))
    theta = np.float32(2 * np.pi) * position
    if index == 0.0:
        return np.sin(theta)
    sustain = np.float32(timbre.fm_index_sustain)
    contour = np.float32(index) * (sustain + (1 - sustain) * np.exp(-t / np.float32(timbre.decay_s)))
    return np.sin(theta + contour * np.sin(np.float32(ratio) * theta))


def _envelope(timbre: Timbre, t: np.ndarray, held: float, rng: np.random.Generator) -> np.ndarray:
    """[samples] float32 amplitude: attack ramp, decay towards the sustain (plucked: none), release after ``held``."""
    attack = np.float32(timbre.attack_s * float(rng.uniform(0.8, 1.25)))
    level = np.minimum(t / attack, np.float32(1.0))
    if timbre.model != "plucked":
        sustain = np.float32(timbre.sustain)
        level *= sustain + (1 - sustain) * np.exp(-np.maximum(t - attack, 0) / np.float32(timbre.decay_s))
    release = int(held * SAMPLE_RATE)
    if release < len(t):
        level[release:] = level[release] * np.exp(-(t[release:] - t[release]) / np.float32(timbre.release_s))
    fade = min(len(t), int(0.005 * SAMPLE_RATE))  # the buffer's last 5 ms go to zero: no click where a note is cut
    level[len(t) - fade:] *= np.linspace(1.0, 0.0, fade)
    return level


def _breath_noise(timbre: Timbre, t: np.ndarray, envelope: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """[samples] float32: band-passed noise following the envelope, with a chiff burst in the first 40 ms."""
    noise = sosfilt(band_pass(*timbre.noise_band_hz), rng.standard_normal(len(t), dtype=np.float32)).astype(np.float32)
    noise /= max(float(np.sqrt(np.mean(noise**2))), 1e-9)
    burst = np.float32(timbre.chiff) * np.exp(-t / np.float32(0.015)) * np.minimum(t / np.float32(0.002), 1)
    return noise * (np.float32(timbre.noise_level * 0.7) * envelope + burst * np.float32(timbre.noise_level))


def slow_noise(n: int, rate_hz: float, rng: np.random.Generator) -> np.ndarray:
    """[n] float32 smooth noise of about unit RMS: random points about ``rate_hz`` apart, joined by straight lines."""
    step = max(1, int(SAMPLE_RATE / rate_hz))
    points = rng.standard_normal(n // step + 2).astype(np.float32)
    ramp = np.arange(step, dtype=np.float32) / np.float32(step)
    joined = points[:-1, None] + np.diff(points)[:, None] * ramp[None, :]
    return joined.reshape(-1)[:n]


@lru_cache(maxsize=256)
def band_pass(low_hz: float, high_hz: float) -> np.ndarray:
    """Second-order sections of a 2nd-order Butterworth band-pass, designed once per band."""
    return butter(2, [low_hz, high_hz], btype="bandpass", fs=SAMPLE_RATE, output="sos")


def json_ready(value):
    """Floats rounded to 6 digits, tuples as lists, all the way down: a compact JSON record."""
    if isinstance(value, float):
        return round(value, 6)
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    return value


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))
