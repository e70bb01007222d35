"""Measurements on rendered audio for the procedural renderers' tests: which key sounds, where notes begin."""

from __future__ import annotations

import numpy as np

from pipeline.constants import SAMPLE_RATE, pitch_to_hz


def sounding_key(audio: np.ndarray, start_s: float, end_s: float, near: int, *, spread: int = 3) -> int:
    """The key within ``spread`` semitones of ``near`` whose +-50-cent band holds the most spectral power between
    ``start_s`` and ``end_s``, counting the key's first three harmonics (a missing fundamental does not pass for
    an octave up, and a fundamental under its harmonics wins over them)."""
    segment = audio[int(start_s * SAMPLE_RATE):int(end_s * SAMPLE_RATE)].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(segment) * 4)))
    power = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), size)) ** 2
    freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)

    def band(pitch: float) -> float:
        low, high = pitch_to_hz(pitch - 0.5), pitch_to_hz(pitch + 0.5)
        return float(power[(freqs >= low) & (freqs < high)].sum())

    scores = {key: sum(band(key + 12 * np.log2(h)) / h for h in (1, 2, 3)) for key in range(near - spread, near + spread + 1)}
    return max(scores, key=scores.get)


def mean_cents(audio: np.ndarray, start_s: float, end_s: float, pitch: int) -> float:
    """Power-weighted mean offset in cents of the spectrum within +-80 cents of ``pitch``'s fundamental."""
    segment = audio[int(start_s * SAMPLE_RATE):int(end_s * SAMPLE_RATE)].astype(np.float64)
    size = 1 << int(np.ceil(np.log2(len(segment) * 4)))
    power = np.abs(np.fft.rfft(segment * np.hanning(len(segment)), size)) ** 2
    freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    inside = (freqs > pitch_to_hz(pitch - 0.8)) & (freqs < pitch_to_hz(pitch + 0.8))
    cents = 1200 * np.log2(freqs[inside] / pitch_to_hz(pitch))
    return float(np.sum(cents * power[inside]) / np.sum(power[inside]))


def pitch_track(audio: np.ndarray, start_s: float, end_s: float, pitch: int, *, frame: int = 2048,
                hop: int = 256) -> np.ndarray:
    """Cents from ``pitch`` of the strongest peak within +-1.5 semitones, frame by frame (parabolic peak)."""
    size = frame * 8
    freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
    inside = np.nonzero((freqs > pitch_to_hz(pitch - 1.5)) & (freqs < pitch_to_hz(pitch + 1.5)))[0]
    track = []
    for first in range(int(start_s * SAMPLE_RATE), int(end_s * SAMPLE_RATE) - frame, hop):
        spectrum = np.abs(np.fft.rfft(audio[first:first + frame] * np.hanning(frame), size))
        peak = inside[np.argmax(spectrum[inside])]
        left, centre, right = np.log(spectrum[peak - 1:peak + 2] + 1e-12)
        shift = 0.5 * (left - right) / (left - 2 * centre + right) if left - 2 * centre + right < 0 else 0.0
        track.append(1200 * np.log2((freqs[peak] + shift * (freqs[1] - freqs[0])) / pitch_to_hz(pitch)))
    return np.array(track)


def onset_s(audio: np.ndarray, from_s: float, to_s: float, *, pitch: int | None = None,
            threshold_db: float = -20.0) -> float:
    """When the sound first reaches ``threshold_db`` below its loudest between ``from_s`` and ``to_s``, in 4 ms
    frames; with ``pitch``, only the power within two semitones of its fundamental counts (not consonants)."""
    frame, size = 64, 512
    first, last = max(0, int(from_s * SAMPLE_RATE)), int(to_s * SAMPLE_RATE)
    starts = np.arange(first, last - size, frame)
    frames = np.stack([audio[s:s + size] for s in starts]) * np.hanning(size)
    power = np.abs(np.fft.rfft(frames, axis=1)) ** 2
    if pitch is not None:
        freqs = np.fft.rfftfreq(size, 1.0 / SAMPLE_RATE)
        power = power[:, (freqs > pitch_to_hz(pitch - 2)) & (freqs < pitch_to_hz(pitch + 2))]
    energy = power.sum(axis=1)
    reached = np.nonzero(energy >= energy.max() * 10 ** (threshold_db / 10))[0][0]
    return (starts[reached] + size / 2) / SAMPLE_RATE  # the frame's centre
