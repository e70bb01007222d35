"""One network pass over one upload, kept so that moving a slider only re-decodes the stored activations.

A pass is keyed by (content hash, checkpoint path): the same bytes under another name reuse it, another model or
another file runs the network again. Only the latest pass is kept, so a session holds one recording's activations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from model.checkpoints import checkpoint_thresholds, load_checkpoint
from model.pitch_bends import DeviationGatherer
from model.beats import checked_tempo, fixed_grid
from model.transcribe import DEFAULT_PROGRAM, Transcription, transcribe
from model.thresholds import DEFAULT_RULES
from pipeline.constants import MAX_UPLOAD_MINUTES
from pipeline.errors import Mp3MidiError
from pipeline.features import frame_count

from .transcription_view import SpectrogramImage, display_spectrogram
from .upload import content_hash, decode_upload

STORE_KEY = "transcribe_network_pass"
DEFAULT_MIN_NOTE_MS = 50.0


@dataclass(frozen=True)
class DecodeSettings:
    """What the page's controls choose; none of it needs the network again."""

    onset_threshold: float
    frame_threshold: float
    min_note_ms: float = DEFAULT_MIN_NOTE_MS
    program: int = DEFAULT_PROGRAM
    tempo_bpm: float | None = None  # None: the beats heard in the recording (a tempo map when they are steady)
    quantize: str | None = None
    mono: bool = False  # one note at a time (a voice, a wind or a bass line)


@dataclass(frozen=True)
class NetworkPass:
    key: tuple[str, str]  # (content hash, checkpoint path)
    transcription: Transcription  # decoded with the checkpoint's thresholds; its activations are what sliders reuse
    image: SpectrogramImage
    deviations: np.ndarray  # [frames, 88] float16 pitch of each key (model.pitch_bends), for notes' pitch bends


def default_settings(checkpoint: str | Path) -> DecodeSettings:
    """The checkpoint's calibrated thresholds and the library's other defaults (the checkpoint's expression rules
    are applied by ``decoded``, not chosen on the page). Raises ``Mp3MidiError`` for a
    missing or damaged checkpoint."""
    path = Path(checkpoint)
    if not path.is_file():
        raise Mp3MidiError(f"no checkpoint at {str(path)!r}")
    thresholds = _thresholds(str(path.resolve()), path.stat().st_mtime)
    return DecodeSettings(onset_threshold=thresholds["onset_threshold"], frame_threshold=thresholds["frame_threshold"])


def checkpoint_rules(checkpoint: str | Path) -> dict:
    """The checkpoint's expression rules for polyphonic decoding (``model.thresholds.DEFAULT_RULES``' keys), cached;
    mono decoding has its own (``MONO_RULES``)."""
    path = Path(checkpoint)
    thresholds = _thresholds(str(path.resolve()), path.stat().st_mtime)
    return {key: thresholds[key] for key in DEFAULT_RULES}


@lru_cache(maxsize=8)
def _thresholds(path: str, modified: float) -> dict:
    return checkpoint_thresholds(load_checkpoint(path))


def run_network(name: str, data: bytes, *, checkpoint: str | Path,
                on_progress: Callable[[float], None] | None = None) -> NetworkPass:
    """Decode the upload, run the network once and keep its activations, a display spectrogram and each key's
    pitch. ``on_progress`` hears the share of the recording done (0-1) as each chunk of features (60 s) is made."""
    audio = decode_upload(name, data, max_minutes=MAX_UPLOAD_MINUTES)
    pieces: list[np.ndarray] = []  # the features the network reads, kept to be drawn (not computed again)
    progress = _Progress(frame_count(audio.size), on_progress)

    def keep(piece: np.ndarray) -> None:
        pieces.append(piece)
        progress(piece)

    deviations = DeviationGatherer(then=keep)
    transcription = transcribe(audio, checkpoint=checkpoint, on_features=deviations, max_minutes=MAX_UPLOAD_MINUTES)
    image = display_spectrogram(np.concatenate(pieces))
    return NetworkPass((content_hash(data), str(checkpoint)), transcription, image, deviations.result())


class _Progress:
    """Counts feature frames as they pass and reports the share of ``total`` done."""

    def __init__(self, total: int, report: Callable[[float], None] | None):
        self.total, self.done, self.report = max(1, total), 0, report

    def __call__(self, piece: np.ndarray) -> None:
        self.done += len(piece)
        if self.report is not None:
            self.report(min(1.0, self.done / self.total))


def pass_for_upload(store: MutableMapping, name: str, data: bytes, *, checkpoint: str | Path,
                    on_progress: Callable[[float], None] | None = None) -> NetworkPass:
    """The stored pass when it is for these bytes and this checkpoint; otherwise a new one, which replaces it."""
    stored = store.get(STORE_KEY)
    if stored is not None and stored.key == (content_hash(data), str(checkpoint)):
        return stored
    store.pop(STORE_KEY, None)  # free the old activations before computing new ones
    store[STORE_KEY] = run_network(name, data, checkpoint=checkpoint, on_progress=on_progress)
    return store[STORE_KEY]


def decoded(network_pass: NetworkPass, settings: DecodeSettings) -> Transcription:
    """Notes and MIDI for ``settings`` from the stored activations (no network)."""
    transcription = network_pass.transcription
    if settings.tempo_bpm is not None:  # the user's tempo replaces the heard beats (and what was said about them)
        beats = fixed_grid(checked_tempo(settings.tempo_bpm), duration_s=transcription.duration_s)
        warnings = [w for w in transcription.warnings if w != transcription.beats.note]
        transcription = dataclasses.replace(transcription, tempo_bpm=beats.tempo_bpm, beats=beats, warnings=warnings)
    return transcription.redecode(onset_threshold=settings.onset_threshold,
                                  frame_threshold=settings.frame_threshold, min_note_ms=settings.min_note_ms,
                                  program=settings.program, quantize=settings.quantize, mono=settings.mono,
                                  **({} if settings.mono else checkpoint_rules(network_pass.key[1])))

