"""Recording in, MIDI out: ``transcribe(audio)`` is what the CLI and the dashboard's upload page call.

The network runs once; ``Transcription.redecode(...)`` turns its stored activations into notes again with other
thresholds, so a page can move a slider without re-running the network.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pretty_midi

from pipeline.audio import load_audio
from pipeline.constants import SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.features import spectrogram
from pipeline.notes import Note, remove_self_overlaps

from .checkpoints import DEFAULT_CHECKPOINT, checkpoint_thresholds, load_checkpoint, model_from_checkpoint
from .decoding import decode
from .inference import activations
from .tempo import TEMPO_RANGE_BPM, estimate_tempo

DEFAULT_PROGRAM = 0  # acoustic grand piano
QUANTIZE_GRIDS = {"1/8": 2, "1/16": 4, "1/32": 8}  # grid steps per beat
SILENCE_PEAK = 1e-4


@dataclass
class Transcription:
    notes: list[Note]
    tempo_bpm: float
    midi: pretty_midi.PrettyMIDI
    duration_s: float
    activations: dict[str, np.ndarray] = field(repr=False)  # head -> [frames, 88] probabilities
    warnings: list[str] = field(default_factory=list)

    def redecode(self, *, onset_threshold: float = 0.5, frame_threshold: float = 0.3, min_note_ms: float = 50.0,
                 program: int = DEFAULT_PROGRAM, quantize: str | None = None) -> "Transcription":
        notes = _decode(self.activations, onset_threshold, frame_threshold, min_note_ms)
        notes = quantized(notes, self.tempo_bpm, quantize)
        return Transcription(notes, self.tempo_bpm, to_midi(notes, tempo_bpm=self.tempo_bpm, program=program),
                             self.duration_s, self.activations, self.warnings)


@lru_cache(maxsize=4)
def _model(path: str, modified: float):
    payload = load_checkpoint(path)
    return model_from_checkpoint(payload), checkpoint_thresholds(payload)


def load_model(checkpoint: str | Path | None = None):
    """(network, its decoding thresholds), cached per file and modification time."""
    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise Mp3MidiError(f"no checkpoint at {str(path)!r}")
    return _model(str(path.resolve()), path.stat().st_mtime)


def transcribe(audio: str | Path | np.ndarray, *, checkpoint: str | Path | None = None,
               onset_threshold: float | None = None, frame_threshold: float | None = None, min_note_ms: float = 50.0,
               program: int = DEFAULT_PROGRAM, tempo: str | float = "auto", quantize: str | None = None) -> Transcription:
    """Transcribe a file (MP3, WAV, FLAC, OGG, M4A) or mono [samples] float audio at SAMPLE_RATE.

    Thresholds left at None take the values chosen for the checkpoint on validation data.
    """
    if not 0 <= program <= 127:
        raise Mp3MidiError(f"program must be a General MIDI program 0-127; got {program}")
    if quantize not in (None, "none", *QUANTIZE_GRIDS):
        raise Mp3MidiError(f"quantize must be none or one of {', '.join(QUANTIZE_GRIDS)}; got {quantize!r}")
    model, thresholds = load_model(checkpoint)
    onset_threshold = thresholds["onset_threshold"] if onset_threshold is None else onset_threshold
    frame_threshold = thresholds["frame_threshold"] if frame_threshold is None else frame_threshold
    samples = load_audio(audio) if not isinstance(audio, np.ndarray) else np.asarray(audio, np.float32)
    warnings = []
    if np.abs(samples).max(initial=0.0) < SILENCE_PEAK:
        warnings.append("the audio is silent: the MIDI has no notes")
    features = spectrogram(samples)
    probabilities = activations(model, features)
    tempo_bpm = estimate_tempo(features) if tempo == "auto" else _checked_tempo(tempo)
    notes = quantized(_decode(probabilities, onset_threshold, frame_threshold, min_note_ms), tempo_bpm, quantize)
    return Transcription(notes, tempo_bpm, to_midi(notes, tempo_bpm=tempo_bpm, program=program),
                         samples.size / SAMPLE_RATE, probabilities, warnings)


def _decode(probabilities, onset_threshold, frame_threshold, min_note_ms) -> list[Note]:
    return decode(probabilities["onset"], probabilities["frame"], offsets=probabilities["offset"],
                  velocities=probabilities["velocity"], onset_threshold=onset_threshold,
                  frame_threshold=frame_threshold, min_note_ms=min_note_ms)


def _checked_tempo(tempo) -> float:
    try:
        value = float(tempo)
    except (TypeError, ValueError):
        raise Mp3MidiError(f"tempo must be 'auto' or beats per minute; got {tempo!r}") from None
    if not TEMPO_RANGE_BPM[0] <= value <= TEMPO_RANGE_BPM[1]:
        raise Mp3MidiError(f"tempo {value:g} BPM is outside {TEMPO_RANGE_BPM[0]:g}-{TEMPO_RANGE_BPM[1]:g}")
    return value


def quantized(notes: list[Note], tempo_bpm: float, grid: str | None) -> list[Note]:
    """Snap starts and ends to a grid of the tempo (None or 'none': unchanged); every note keeps >= one step."""
    if grid in (None, "none"):
        return notes
    step = 60.0 / tempo_bpm / QUANTIZE_GRIDS[grid]
    snapped = []
    for note in notes:
        start = round(note.start_s / step) * step
        end = max(round(note.end_s / step) * step, start + step)
        snapped.append(Note(start, end, note.pitch, note.velocity))
    return remove_self_overlaps(snapped)


def to_midi(notes: list[Note], *, tempo_bpm: float, program: int = DEFAULT_PROGRAM) -> pretty_midi.PrettyMIDI:
    """One instrument track with velocities; the tempo is written so a DAW's grid lines up with the music."""
    midi = pretty_midi.PrettyMIDI(initial_tempo=tempo_bpm)
    instrument = pretty_midi.Instrument(program=program, name="Transcription")
    instrument.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in notes]
    midi.instruments.append(instrument)
    return midi
