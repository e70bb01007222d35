"""Every number the audio, feature and label code agrees on, each derived from as few choices as possible.

The three choices are the sample rate, the hop and the pitch resolution; everything else follows from them.
"""

from __future__ import annotations

# --- choices ---------------------------------------------------------------------------------------------------
SAMPLE_RATE = 16_000  # Hz. Rendering, MP3 and features all run at this rate.
HOP_LENGTH = 256  # samples between feature frames.
BINS_PER_SEMITONE = 3  # CQT resolution: three bins per key lets the network see detuning and vibrato.

LOWEST_PITCH = 21  # A0, the lowest piano key (MIDI note number).
HIGHEST_PITCH = 108  # C8, the highest piano key.
A4_PITCH = 69
A4_HZ = 440.0

# --- derived ---------------------------------------------------------------------------------------------------
N_KEYS = HIGHEST_PITCH - LOWEST_PITCH + 1  # 88
FRAMES_PER_SECOND = SAMPLE_RATE / HOP_LENGTH  # 62.5
FRAME_SECONDS = 1.0 / FRAMES_PER_SECOND  # 16 ms
SEMITONES_PER_OCTAVE = 12
BINS_PER_OCTAVE = BINS_PER_SEMITONE * SEMITONES_PER_OCTAVE  # 36
N_BINS = N_KEYS * BINS_PER_SEMITONE  # 264


def pitch_to_hz(pitch: float) -> float:
    """Equal-tempered frequency of a (possibly fractional) MIDI pitch."""
    return A4_HZ * 2.0 ** ((pitch - A4_PITCH) / SEMITONES_PER_OCTAVE)


# The lowest CQT bin is centred on A0, so bin k of key i sits at (i * BINS_PER_SEMITONE + k).
# With a centred bin per key the middle bin of each triple is the key itself.
FMIN_HZ = pitch_to_hz(LOWEST_PITCH - (BINS_PER_SEMITONE // 2) / BINS_PER_SEMITONE)
FMAX_HZ = pitch_to_hz(HIGHEST_PITCH + (BINS_PER_SEMITONE // 2) / BINS_PER_SEMITONE)
NYQUIST_HZ = SAMPLE_RATE / 2
assert FMAX_HZ < NYQUIST_HZ, "the top CQT bin must sit below Nyquist"

# --- limits on what a user hands over ----------------------------------------------------------------------------
# Transcription streams a file, but keeps its activations: 4 heads x 88 keys x 62.5 frames/s at float16, 44 kB a
# second, so 2 hours hold about 320 MB on top of the fixed part (about 470 MB). The command line's --max-minutes
# raises it.
MAX_AUDIO_MINUTES = 120
# The Transcribe page holds the decoded upload (64 kB/s), the spectrogram it draws (66 kB/s, and a copy while it is
# joined) and the activations (44 kB/s) per browser session: 30 minutes are about 430 MB.
MAX_UPLOAD_MINUTES = 30

# --- MIDI ------------------------------------------------------------------------------------------------------
MIDI_VELOCITY_MAX = 127
DRUM_CHANNEL = 9  # General MIDI channel 10, counted from zero.
PROGRAMS_PER_FAMILY = 8  # General MIDI groups its 128 programs into 16 families of 8.
