"""Recording chains: what happens to a performance between the instrument and the MP3 a user uploads.

A chain is drawn per item from a seed (``Chain.draw``) and applied to the rendered mono audio
(``apply_chain``): a room (a synthetic impulse response: the direct sound at lag 0, early reflections, an
exponentially decaying diffuse tail of a drawn size and decay time), the colour of a microphone and an EQ
(high-pass, an optional band limit, peaking bands), a compressor, background noise (pink, mains hum, room tone),
a level, and the MP3 bitrate the item is encoded at. A chain may also ask for an unpitched drum groove in the
audio (``backing_drums``); drums never reach the labels.

The direct sound stays at lag 0 and the filters are short, so notes keep their label times (tests hold an
impulse's onset to ``ONSET_TOLERANCE_S``); the output is finite and peaks at the chain's level, never above full
scale.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
from scipy import signal

from .constants import SAMPLE_RATE
from .errors import Mp3MidiError
from .notes import Note, Part

ONSET_TOLERANCE_S = 0.003  # how far the chain may move an onset (a fifth of a feature frame)
SPEED_OF_SOUND_M_S = 343.0

ROOM_PROBABILITY = 0.7
ROOM_SIZE_M = (2.5, 30.0)  # a bathroom to a hall
RT60_S = (0.15, 2.2)
ROOM_WET_DB = (-18.0, 0.0)  # diffuse energy against the direct sound
REFLECTIONS = (2, 9)  # half-open
MAX_IR_S = 2.5
TAIL_DAMPING_HZ = (2000.0, 7000.0)  # the tail darkens: air and walls absorb the highs

MICROPHONES = {  # high-pass Hz, band limit Hz (None: full band), as a phone, a dynamic, a condenser, a lo-fi
    "condenser": (30.0, None), "dynamic": (80.0, 7000.0), "phone": (250.0, 3400.0), "lofi": (150.0, 5000.0),
    "flat": (20.0, None),
}
EQ_BANDS = (0, 4)  # half-open: peaking bands
EQ_GAIN_DB = (-8.0, 8.0)
EQ_FREQ_HZ = (100.0, 6000.0)
EQ_Q = (0.5, 3.0)

COMPRESSOR_PROBABILITY = 0.5
COMPRESSOR_RATIO = (1.5, 8.0)
COMPRESSOR_THRESHOLD_DB = (-30.0, -8.0)  # below the signal's peak
COMPRESSOR_ATTACK_S = (0.002, 0.03)
COMPRESSOR_RELEASE_S = (0.05, 0.4)
COMPRESSOR_BLOCK = 256  # samples per gain step (16 ms, one feature frame)

NOISES = ("pink", "hum", "room")
NOISE_PROBABILITY = 0.6
NOISE_SNR_DB = (15.0, 50.0)
HUM_HZ = (50.0, 60.0)
HUM_HARMONICS = 8
PINK_B = (0.049922035, -0.095993537, 0.050612699, -0.004408786)  # 1/f (3 dB per octave) from white noise (J. O. Smith)
PINK_A = (1.0, -2.494956002, 2.017265875, -0.522189400)
ROOM_TONE_HZ = (150.0, 600.0)

PEAK_DB = (-20.0, -1.0)
BITRATES = ("32k", "48k", "64k", "96k", "128k")
DRUM_PROBABILITY = 0.2


@dataclass(frozen=True)
class Chain:
    """One item's recording chain; ``None`` or 1.0 switch a stage off."""

    room_size_m: float | None = None
    rt60_s: float = 0.0
    room_wet_db: float = -80.0
    reflections: int = 0
    tail_damping_hz: float = 5000.0
    microphone: str = "flat"
    eq: tuple[tuple[float, float, float], ...] = ()  # (Hz, dB, Q) peaking bands
    compressor_ratio: float = 1.0
    compressor_threshold_db: float = 0.0
    compressor_attack_s: float = 0.01
    compressor_release_s: float = 0.1
    noise: str | None = None
    noise_snr_db: float = 60.0
    hum_hz: float = 50.0
    peak_db: float = -1.0
    bitrate: str = "64k"
    drums: bool = False

    @classmethod
    def draw(cls, rng: np.random.Generator) -> "Chain":
        room = rng.random() < ROOM_PROBABILITY
        bands = tuple((round(float(np.exp(rng.uniform(*np.log(EQ_FREQ_HZ)))), 1), float(rng.uniform(*EQ_GAIN_DB)),
                       float(rng.uniform(*EQ_Q))) for _ in range(int(rng.integers(*EQ_BANDS))))
        compress = rng.random() < COMPRESSOR_PROBABILITY
        noisy = rng.random() < NOISE_PROBABILITY
        return cls(
            room_size_m=float(rng.uniform(*ROOM_SIZE_M)) if room else None,
            rt60_s=float(rng.uniform(*RT60_S)) if room else 0.0,
            room_wet_db=float(rng.uniform(*ROOM_WET_DB)) if room else -80.0,
            reflections=int(rng.integers(*REFLECTIONS)) if room else 0,
            tail_damping_hz=float(rng.uniform(*TAIL_DAMPING_HZ)),
            microphone=str(rng.choice(list(MICROPHONES))),
            eq=bands,
            compressor_ratio=float(rng.uniform(*COMPRESSOR_RATIO)) if compress else 1.0,
            compressor_threshold_db=float(rng.uniform(*COMPRESSOR_THRESHOLD_DB)) if compress else 0.0,
            compressor_attack_s=float(rng.uniform(*COMPRESSOR_ATTACK_S)),
            compressor_release_s=float(rng.uniform(*COMPRESSOR_RELEASE_S)),
            noise=str(rng.choice(NOISES)) if noisy else None,
            noise_snr_db=float(rng.uniform(*NOISE_SNR_DB)) if noisy else 60.0,
            hum_hz=float(rng.choice(HUM_HZ)),
            peak_db=float(rng.uniform(*PEAK_DB)),
            bitrate=str(rng.choice(BITRATES)),
            drums=bool(rng.random() < DRUM_PROBABILITY),
        )

    def record(self) -> dict:
        settings = {key: (round(value, 4) if isinstance(value, float) else value) for key, value in asdict(self).items()}
        settings["eq"] = [[round(value, 2) for value in band] for band in self.eq]
        return settings


def apply_chain(audio: np.ndarray, chain: Chain, rng: np.random.Generator) -> np.ndarray:
    """[samples] float mono at SAMPLE_RATE -> the same length through the chain, float32 peaking at chain.peak_db.

    Raises ``Mp3MidiError`` for empty, silent or non-finite audio.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim != 1 or audio.size == 0:
        raise Mp3MidiError(f"a recording chain takes mono audio with samples; got shape {audio.shape}")
    if not np.all(np.isfinite(audio)) or not np.any(audio):
        raise Mp3MidiError("a recording chain got silent or non-finite audio")
    out = audio
    if chain.room_size_m is not None:
        out = signal.oaconvolve(out, impulse_response(chain, rng).astype(np.float32))[: audio.size]
    out = _colour(out, chain)
    if chain.compressor_ratio > 1.0:
        out = _compress(out, chain)
    if chain.noise is not None:
        out = out + _noise(chain, out, rng)
    peak = float(np.max(np.abs(out)))
    if not np.isfinite(peak) or peak == 0.0:
        raise Mp3MidiError("the recording chain made silent or non-finite audio")
    return (out * (10 ** (chain.peak_db / 20) / peak)).astype(np.float32)


def impulse_response(chain: Chain, rng: np.random.Generator) -> np.ndarray:
    """A room's impulse response [samples]: 1.0 at lag 0 (the direct sound), early reflections within the
    room's first round trips, then a decaying, darkening diffuse tail whose energy sits ``room_wet_db`` below
    the direct sound's."""
    if chain.room_size_m is None:
        return np.ones(1)
    length = int(min(MAX_IR_S, 1.2 * chain.rt60_s + 0.05) * SAMPLE_RATE)
    ir = np.zeros(length)
    ir[0] = 1.0
    first_echo_s = chain.room_size_m / SPEED_OF_SOUND_M_S / 4
    for _ in range(chain.reflections):
        delay_s = rng.uniform(first_echo_s, 3 * first_echo_s + 0.002)
        index = min(length - 1, max(1, int(delay_s * SAMPLE_RATE)))
        ir[index] += rng.uniform(0.15, 0.6) * rng.choice((-1.0, 1.0)) * first_echo_s / delay_s
    start = int(first_echo_s * SAMPLE_RATE) + 1
    t = np.arange(length - start) / SAMPLE_RATE
    tail = rng.standard_normal(t.size) * np.exp(-6.9 * t / chain.rt60_s)  # -60 dB after rt60
    tail = signal.sosfilt(signal.butter(1, chain.tail_damping_hz, fs=SAMPLE_RATE, output="sos"), tail)
    energy = float(np.sum(tail**2)) or 1.0
    ir[start:] += tail * np.sqrt(10 ** (chain.room_wet_db / 10) / energy)
    return ir


def _colour(audio: np.ndarray, chain: Chain) -> np.ndarray:
    highpass_hz, band_limit_hz = MICROPHONES[chain.microphone]
    sections = [signal.butter(2, highpass_hz, btype="highpass", fs=SAMPLE_RATE, output="sos")]
    if band_limit_hz is not None:
        sections.append(signal.butter(4, band_limit_hz, fs=SAMPLE_RATE, output="sos"))
    sections += [_peaking(hz, gain, q) for hz, gain, q in chain.eq]
    return signal.sosfilt(np.vstack(sections).astype(np.float32), audio)


def _peaking(hz: float, gain_db: float, q: float) -> np.ndarray:
    """One peaking-EQ biquad (the Audio EQ Cookbook's) as a second-order section [1, 6]."""
    amplitude, omega = 10 ** (gain_db / 40), 2 * np.pi * hz / SAMPLE_RATE
    alpha = np.sin(omega) / (2 * q)
    b = np.array([1 + alpha * amplitude, -2 * np.cos(omega), 1 - alpha * amplitude])
    a = np.array([1 + alpha / amplitude, -2 * np.cos(omega), 1 - alpha / amplitude])
    return np.concatenate([b / a[0], a / a[0]])[None, :]


def _compress(audio: np.ndarray, chain: Chain) -> np.ndarray:
    """A feed-forward compressor on 16 ms blocks: gain reduction above the threshold (relative to the peak) by the
    ratio, with attack and release smoothing, interpolated back to samples."""
    blocks = -(-audio.size // COMPRESSOR_BLOCK)
    padded = np.zeros(blocks * COMPRESSOR_BLOCK)
    padded[: audio.size] = audio
    level = np.sqrt(np.mean(padded.reshape(blocks, COMPRESSOR_BLOCK) ** 2, axis=1)) + 1e-12
    level_db = 20 * np.log10(level / max(float(level.max()), 1e-12))
    over = np.maximum(level_db - chain.compressor_threshold_db, 0.0)
    wanted = -over * (1 - 1 / chain.compressor_ratio)
    block_s = COMPRESSOR_BLOCK / SAMPLE_RATE
    attack, release = (np.exp(-block_s / max(tau, block_s)) for tau in (chain.compressor_attack_s,
                                                                        chain.compressor_release_s))
    gain_db = np.empty_like(wanted)
    current = 0.0
    for index, target in enumerate(wanted):
        coefficient = attack if target < current else release
        current = coefficient * current + (1 - coefficient) * target
        gain_db[index] = current
    centres = (np.arange(blocks) + 0.5) * COMPRESSOR_BLOCK
    gain = np.interp(np.arange(audio.size, dtype=np.float32), centres, 10 ** (gain_db / 20)).astype(np.float32)
    return audio * gain


def _noise(chain: Chain, audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    n = audio.size
    if chain.noise == "pink":  # white noise through a three-pole filter that tilts it to 1/f
        noise = signal.lfilter(PINK_B, PINK_A, rng.standard_normal(n, dtype=np.float32)).astype(np.float32)
    elif chain.noise == "hum":  # mains hum and its harmonics: one exact period of 50 or 60 Hz, repeated
        period = int(round(SAMPLE_RATE / np.gcd(int(chain.hum_hz), SAMPLE_RATE)))
        t = np.arange(period) / SAMPLE_RATE
        cycle = sum(rng.uniform(0.2, 1.0) / k * np.sin(2 * np.pi * chain.hum_hz * k * t + rng.uniform(0, 2 * np.pi))
                    for k in range(1, HUM_HARMONICS + 1))
        noise = np.tile(cycle.astype(np.float32), -(-n // period))[:n]
    elif chain.noise == "room":
        cutoff = rng.uniform(*ROOM_TONE_HZ)
        sos = signal.butter(2, cutoff, fs=SAMPLE_RATE, output="sos").astype(np.float32)
        noise = signal.sosfilt(sos, rng.standard_normal(n, dtype=np.float32))
    else:
        raise Mp3MidiError(f"unknown background noise {chain.noise!r}; choose from {', '.join(NOISES)}")
    signal_rms = float(np.sqrt(np.mean(np.square(audio, dtype=np.float64))))
    noise_rms = float(np.sqrt(np.mean(np.square(noise, dtype=np.float64)))) or 1.0
    return noise * np.float32(signal_rms * 10 ** (-chain.noise_snr_db / 20) / noise_rms)


# --- a drum groove under the music ------------------------------------------------------------------------------------
KICK, SNARE, CLOSED_HAT, OPEN_HAT, CRASH = 36, 38, 42, 46, 49
GROOVE_BPM = (70.0, 170.0)


def backing_drums(duration_s: float, rng: np.random.Generator) -> Part:
    """An unpitched General MIDI drum part: kick, snare and hi-hats in a drawn groove (never labelled)."""
    beat = 60.0 / rng.uniform(*GROOVE_BPM)
    swing = rng.uniform(0.0, 0.15) * beat
    notes = []
    position, count = float(rng.uniform(0, beat)), 0
    while position < duration_s - 0.05:
        bar_beat = count % 4
        hits = [(CLOSED_HAT if rng.random() < 0.85 else OPEN_HAT, rng.integers(50, 100))]
        if bar_beat in (0, 2) or rng.random() < 0.15:
            hits.append((KICK, rng.integers(80, 127)))
        if bar_beat in (1, 3):
            hits.append((SNARE, rng.integers(70, 120)))
        if count % 16 == 0 and rng.random() < 0.3:
            hits.append((CRASH, rng.integers(70, 110)))
        for key, velocity in hits:
            notes.append(Note(position, min(duration_s, position + 0.1), key, int(velocity)))
        off_beat = position + beat / 2 + swing
        if off_beat < duration_s - 0.05:
            notes.append(Note(off_beat, min(duration_s, off_beat + 0.08), CLOSED_HAT, int(rng.integers(35, 80))))
        position += beat
        count += 1
    return Part(0, True, tuple(notes))
