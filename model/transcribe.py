"""Recording in, MIDI out: ``transcribe(audio)`` is what the CLI and the dashboard's upload page call.

The network runs once; ``Transcription.redecode(...)`` turns its stored activations into notes again with other
thresholds, so a page can move a slider without re-running the network.

A file streams through: decoded a block at a time, its features made chunk by chunk and the network run window by
window as they arrive; only the activations are kept, at float16. Memory grows with the file by 8 bytes per frame
and key (about 80 MB for 30 minutes) on top of a fixed part (torch's libraries and one window's work), and the
stitched result is the one a single pass over the whole file would give.

This module imports torch only when a model is loaded, and the first minutes of audio are decoded and turned
into features in a thread meanwhile: on a process's first transcription that overlaps a second or two of
imports with work the network needs anyway.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np
import pretty_midi

from pipeline.audio import audio_blocks, duration_text
from pipeline.constants import MAX_AUDIO_MINUTES, SAMPLE_RATE
from pipeline.errors import Mp3MidiError
from pipeline.features import CHUNK_FRAMES, spectrogram_stream
from pipeline.notes import Note

from .beats import (DEFAULT_TEMPO_BPM, BeatGrid, checked_tempo, fixed_grid, onset_envelope,  # noqa: F401
                    track_beats)
from .decoding import decode
from .quantize import QUANTIZE_GRIDS, checked_grid, quantized  # noqa: F401 - QUANTIZE_GRIDS for callers
from .tempo_map import tempo_mapped_midi
from .thresholds import rules_for

DEFAULT_PROGRAM = 0  # acoustic grand piano
SILENCE_PEAK = 1e-4
HEAD_START_CHUNKS = 4  # feature chunks (a minute of audio, 4 MB each) made while the model loads, at most


@dataclass
class Transcription:
    notes: list[Note]
    tempo_bpm: float
    midi: pretty_midi.PrettyMIDI
    duration_s: float
    # head -> [frames, 88] probabilities as float16; velocity (predicted velocity / 127) in steps of 1/127
    activations: dict[str, np.ndarray] = field(repr=False)
    warnings: list[str] = field(default_factory=list)
    beats: BeatGrid | None = None  # the tempo map and the quantization grid; None: one tempo_bpm from time 0

    def __post_init__(self):
        if self.beats is None:
            self.beats = fixed_grid(self.tempo_bpm, duration_s=self.duration_s)

    def redecode(self, *, onset_threshold: float = 0.5, frame_threshold: float = 0.3, min_note_ms: float = 50.0,
                 program: int = DEFAULT_PROGRAM, quantize: str | None = None, mono: bool = False,
                 gap_ms: float | None = None, restrike_threshold: float | None = None, fragment_ms: float | None = None,
                 min_sounding_ms: float | None = None) -> "Transcription":
        """The stored activations decoded again (no network): see ``model.decoding.decode`` for the knobs. ``mono``
        gives one note at a time (a voice, a wind or a bass line); a rule left at None takes the mode's preset
        (``model.thresholds.DEFAULT_RULES`` or ``MONO_RULES``)."""
        rules = rules_for(mono=mono, gap_ms=gap_ms, restrike_threshold=restrike_threshold, fragment_ms=fragment_ms,
                          min_sounding_ms=min_sounding_ms)
        notes = _decode(self.activations, onset_threshold=onset_threshold, frame_threshold=frame_threshold,
                        min_note_ms=min_note_ms, mono=mono, **rules)
        notes = quantized(notes, self.beats.beats_s, quantize)
        return Transcription(notes, self.tempo_bpm, to_midi(notes, beats=self.beats, program=program),
                             self.duration_s, self.activations, self.warnings, self.beats)


@lru_cache(maxsize=4)
def _model(path: str, modified: float):
    from .checkpoints import checkpoint_thresholds, load_checkpoint, model_from_checkpoint
    from .inference import folded

    payload = load_checkpoint(path)
    return folded(model_from_checkpoint(payload)), checkpoint_thresholds(payload)


def load_model(checkpoint: str | Path | None = None):
    """(network ready for inference, its decoding thresholds), cached per file and modification time. The network
    is ``model.inference.folded``: batch norms folded into convolutions. Imports torch."""
    from .checkpoints import DEFAULT_CHECKPOINT

    path = Path(checkpoint) if checkpoint is not None else DEFAULT_CHECKPOINT
    if not path.is_file():
        raise Mp3MidiError(f"no checkpoint at {str(path)!r}")
    return _model(str(path.resolve()), path.stat().st_mtime)


def transcribe(audio: str | Path | np.ndarray, *, checkpoint: str | Path | None = None,
               onset_threshold: float | None = None, frame_threshold: float | None = None, min_note_ms: float = 50.0,
               program: int = DEFAULT_PROGRAM, tempo: str | float = "auto", quantize: str | None = None,
               mono: bool = False, window_frames: int | None = None, chunk_frames: int = CHUNK_FRAMES,
               on_features: Callable[[np.ndarray], None] | None = None,
               max_minutes: float | None = MAX_AUDIO_MINUTES) -> Transcription:
    """Transcribe a file (MP3, WAV, FLAC, OGG, M4A) or mono [samples] float audio at SAMPLE_RATE.

    Thresholds left at None take the values chosen for the checkpoint on validation data; the expression rules
    of decoding are the checkpoint's settings too (``model.checkpoints.checkpoint_thresholds``). ``mono``: one note
    at a time, for a voice, a wind or a bass line, with ``model.thresholds.MONO_RULES``. ``window_frames`` (the
    network's windows, context included; None: ``model.inference.WINDOW_FRAMES``) and ``chunk_frames`` (the
    spectrogram's chunks) change only how the work is cut up and how much memory it takes, not the notes.
    ``on_features`` receives each [frames, N_BINS] piece of the spectrogram in order, for a caller that also shows
    it (the pieces join into ``spectrogram(audio)``), so nobody computes the features twice. A file longer than
    ``max_minutes`` (None: any length) or holding samples that are not numbers is refused with ``Mp3MidiError``.
    """
    if not 0 <= program <= 127:
        raise Mp3MidiError(f"program must be a General MIDI program 0-127; got {program}")
    checked_grid(quantize)
    fixed_tempo = None if tempo == "auto" else checked_tempo(tempo)
    signal = _Signal()
    max_seconds = None if max_minutes is None else max_minutes * 60
    blocks = audio_blocks(audio, max_seconds=max_seconds) if not isinstance(audio, np.ndarray) else \
        [checked_samples(audio, max_seconds=max_seconds)]
    envelope: list[np.ndarray] = []
    features = _gathering_envelope(spectrogram_stream(signal.watched(blocks), chunk_frames=chunk_frames), envelope,
                                   on_features)
    loading = _Loading(checkpoint)
    try:
        head = _head_start(features, loading, limit=HEAD_START_CHUNKS)  # while torch loads
    finally:  # even when the audio failed: no thread left behind, and a checkpoint error is reported first
        model, thresholds = loading.result()
    from .inference import WINDOW_FRAMES, activation_stream, compact_activations

    windows = activation_stream(model, itertools.chain(_emptied(head), features),
                                window_frames=window_frames or WINDOW_FRAMES)
    probabilities = compact_activations(windows)
    settings = {**thresholds, **rules_for(mono=mono, polyphonic=thresholds), "min_note_ms": min_note_ms, "mono": mono}
    settings.update({name: value for name, value in (("onset_threshold", onset_threshold),
                                                     ("frame_threshold", frame_threshold)) if value is not None})
    warnings = ["the audio is silent: the MIDI has no notes"] if signal.peak < SILENCE_PEAK else []
    duration_s = signal.samples / SAMPLE_RATE
    if fixed_tempo is None:
        beats = track_beats(_joined(envelope), duration_s=duration_s)
        warnings += [beats.note] if beats.note and signal.peak >= SILENCE_PEAK else []
    else:
        beats = fixed_grid(fixed_tempo, duration_s=duration_s)
    notes = quantized(_decode(probabilities, **settings), beats.beats_s, quantize)
    return Transcription(notes, beats.tempo_bpm, to_midi(notes, beats=beats, program=program), duration_s,
                         probabilities, warnings, beats)


class _Signal:
    """Counts the samples and finds the peak of audio blocks as they pass on to the features."""

    def __init__(self):
        self.samples, self.peak = 0, 0.0

    def watched(self, blocks: Iterable[np.ndarray]) -> Iterator[np.ndarray]:
        for block in blocks:
            self.samples += block.size
            self.peak = max(self.peak, float(np.abs(block).max(initial=0.0)))
            yield block


class _Loading:
    """``load_model(checkpoint)`` in a thread, started at once: torch's import takes a second or two, in which the
    caller can decode the first minutes of audio (C code that leaves the interpreter lock free)."""

    def __init__(self, checkpoint: str | Path | None):
        self._result: tuple | None = None
        self._error: Exception | None = None
        self._thread = threading.Thread(target=self._load, args=(checkpoint,), name="load-model", daemon=True)
        self._thread.start()

    def _load(self, checkpoint) -> None:
        try:
            self._result = load_model(checkpoint)
        except Exception as exc:  # raised again by result()
            self._error = exc

    def done(self) -> bool:
        return not self._thread.is_alive()

    def result(self) -> tuple:
        """(network, its decoding thresholds), once loaded; the loading's own exception if it failed."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._result


def _head_start(items: Iterator, loading: _Loading, *, limit: int) -> list:
    """Up to ``limit`` items taken from ``items`` while the model loads."""
    head = []
    while len(head) < limit and not loading.done():
        item = next(items, None)
        if item is None:
            break
        head.append(item)
    return head


def _emptied(items: list) -> Iterator:
    """The list's items, each dropped from it as it is handed on (so it is not kept to the end)."""
    while items:
        yield items.pop(0)


def _joined(envelope: list[np.ndarray]) -> np.ndarray:
    return np.concatenate(envelope) if envelope else np.zeros(0, np.float32)


def _gathering_envelope(pieces: Iterable[np.ndarray], envelope: list[np.ndarray],
                        on_features: Callable[[np.ndarray], None] | None = None) -> Iterator[np.ndarray]:
    """Pass feature pieces on, appending each one's onset envelope (one float per frame, for the beats) to
    ``envelope`` and showing each to ``on_features``."""
    previous = None
    for piece in pieces:
        if on_features is not None:
            on_features(piece)
        if len(piece):
            envelope.append(onset_envelope(piece, previous=previous))
            previous = piece[-1]
        yield piece


def _decode(probabilities, **settings) -> list[Note]:
    return decode(probabilities["onset"], probabilities["frame"], offsets=probabilities["offset"],
                  velocities=probabilities["velocity"], **settings)


def checked_samples(audio: np.ndarray, *, max_seconds: float | None) -> np.ndarray:
    """[samples] audio at SAMPLE_RATE as float32, refused when it is not numbers or lasts over ``max_seconds``."""
    audio = np.asarray(audio, np.float32)
    if max_seconds is not None and audio.size > max_seconds * SAMPLE_RATE:
        raise Mp3MidiError(f"the audio lasts {duration_text(audio.size / SAMPLE_RATE)}, over the limit of "
                           f"{max_seconds / 60:g} min")
    if not np.isfinite(audio).all():
        raise Mp3MidiError("the audio holds samples that are not numbers (NaN or infinity)")
    return audio


def to_midi(notes: list[Note], *, beats: BeatGrid | None = None, tempo_bpm: float | None = None,
            program: int = DEFAULT_PROGRAM) -> pretty_midi.PrettyMIDI:
    """One instrument track with velocities, over the beats' tempo map (so a DAW's bars line up with the music);
    the notes keep the times they were heard at. Without ``beats``: one ``tempo_bpm`` (default 120) from time 0."""
    if beats is None:
        beats = fixed_grid(DEFAULT_TEMPO_BPM if tempo_bpm is None else tempo_bpm,
                           duration_s=max((n.end_s for n in notes), default=0.0))
    midi = tempo_mapped_midi(beats.beats_s)
    instrument = pretty_midi.Instrument(program=program, name="Transcription")
    instrument.notes = [pretty_midi.Note(n.velocity, n.pitch, n.start_s, n.end_s) for n in notes]
    midi.instruments.append(instrument)
    return midi
