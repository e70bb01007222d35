"""Make one dataset item: load the piece, arrange, render, MP3 round trip, features, labels, preview.

This runs in worker processes (a local pool or Dask workers). It writes the item's files atomically and returns an
``ItemResult``; it never touches the catalog. Any ``Mp3MidiError`` becomes a failed result with its reason.
"""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from . import procedural
from .arrange import arrange
from .atomic import WriteFailed, partial_path
from .audio import encode_mp3, load_audio
from .errors import Mp3MidiError
from .features import FEATURE_SETTINGS, spectrogram
from .instruments import family_of
from .item_gate import pass_item_gate
from .labels import note_labels
from .midi_io import read_midi
from .notes import remove_self_overlaps
from .npz import save_npz
from .performance import perform
from .preview import write_preview
from .recording_chain import Chain, apply_chain, backing_drums
from .render import Effects, render
from .renderers import FLUIDSYNTH, RENDERER_STREAM, draw_renderer, render_procedural
from .sources import PROCEDURAL_SECONDS, SourceRef

# Performances and recording chains draw from streams of their own, so turning them on or off leaves everything
# else an item draws (clip, instruments, soundfont, effects) as it was.
PERFORMANCE_STREAM = 1
CHAIN_STREAM = 2
ITEM_SUFFIXES = (".mp3", ".npz", ".png")  # the files an item is made of


@dataclass(frozen=True)
class ItemSpec:
    """Everything a worker needs to make one item, independent of which process makes it."""

    item_id: str
    source: SourceRef
    seed: int
    soundfonts: tuple[str, ...]
    families: tuple[str, ...]
    clip_seconds: float | None
    mix_probability: float
    render_drums: bool
    bitrate: str
    items_dir: str  # absolute folder the item's files go to
    cache_dir: str  # converted corpus pieces
    performance_probability: float = 0.0  # chance the item is played as a performance (pipeline.performance)
    chain_probability: float = 0.0  # chance the item goes through a recording chain (pipeline.recording_chain)
    synth_probability: float = 0.0  # chance the item is played by procedural instruments (pipeline.synth)
    voice_probability: float = 0.0  # chance the item is sung (pipeline.voice)
    programs: tuple[int, ...] | None = None  # only these General MIDI programs play (None: any of the families)


@dataclass
class ItemResult:
    item_id: str
    status: str  # 'done' or 'failed'
    error: str | None = None
    soundfont: str | None = None
    programs: list[int] = field(default_factory=list)
    families: list[str] = field(default_factory=list)
    is_mix: bool = False
    effects: dict | None = None
    performance: dict | None = None  # what the performance did (per part and counted), None when played as written
    chain: dict | None = None  # the recording chain's settings, None when there was none
    renderer: str = FLUIDSYNTH  # 'fluidsynth', 'synth' or 'voice' (pipeline.renderers)
    timbre: dict | None = None  # a procedural renderer's drawn instruments or singer, None for FluidSynth
    clip_start_s: float | None = None
    duration_s: float | None = None
    files: dict[str, str] = field(default_factory=dict)  # kind -> file name inside the items folder
    mp3_bytes: int | None = None
    timings: dict[str, float] = field(default_factory=dict)  # stage -> seconds
    notes: list[tuple[int, int, int, float, float]] = field(default_factory=list)  # pitch, program, velocity, start, duration
    polyphony: list[int] = field(default_factory=list)  # frames with 0, 1, 2, ... keys sounding


def item_seed(dataset_seed: int, content_hash: str) -> int:
    """A stable 63-bit seed per piece and dataset seed."""
    digest = hashlib.sha1(f"{dataset_seed}:{content_hash}".encode()).digest()
    return int.from_bytes(digest[:8], "big") >> 1


def make_item(spec: ItemSpec) -> ItemResult:
    pass_item_gate()  # a no-op unless a test holds items at its gate
    result = ItemResult(item_id=spec.item_id, status="failed")
    try:
        _make(spec, result)
        result.status = "done"
    except WriteFailed as exc:  # a full disk (ENOSPC), a quota: one reason for every item it stops
        result.error = f"cannot write the item's files: {exc.reason}"
    except Mp3MidiError as exc:
        result.error = str(exc)
    except MemoryError:
        result.error = "ran out of memory"
    except OSError as exc:  # the same from a writer that reports it raw (the .npz archive)
        result.error = f"cannot write the item's files: {exc.strerror or exc}"
    if result.status != "done":
        remove_item_files(Path(spec.items_dir), spec.item_id)
    return result


def remove_item_files(items_dir: Path, item_id: str) -> None:
    """Remove whatever a failed item wrote (whole or partial), so nothing of it is left to be taken for made."""
    for kind in ITEM_SUFFIXES:
        for path in (items_dir / f"{item_id}{kind}", partial_path(items_dir / f"{item_id}{kind}")):
            path.unlink(missing_ok=True)


def _make(spec: ItemSpec, result: ItemResult) -> None:
    clock = _Clock(result.timings)
    rng = np.random.default_rng(spec.seed)
    with clock("load"):
        score = load_score(spec.source, Path(spec.cache_dir))
    arrangement = arrange(score, rng, families=spec.families, clip_seconds=spec.clip_seconds,
                          mix_probability=spec.mix_probability, render_drums=spec.render_drums,
                          programs=spec.programs)
    if not arrangement.label_notes:
        raise Mp3MidiError("the clip holds no pitched notes")
    soundfont = spec.soundfonts[rng.integers(len(spec.soundfonts))]
    effects = Effects.draw(rng)
    result.soundfont, result.effects, result.is_mix = soundfont, asdict(effects), arrangement.is_mix
    result.programs = arrangement.programs
    result.families = sorted({family_of(program) for program in result.programs})
    result.clip_start_s, result.duration_s = arrangement.clip_start_s, arrangement.duration_s

    parts = list(arrangement.parts)
    label_notes = list(arrangement.label_notes)
    played = [(part.program, part.notes) for part in parts if not part.is_drum]  # program, label notes
    performed = None
    performance_rng = np.random.default_rng([spec.seed, PERFORMANCE_STREAM])
    if spec.performance_probability and performance_rng.random() < spec.performance_probability:
        with clock("perform"):
            performances = [None if part.is_drum else perform(part, performance_rng, duration_s=arrangement.duration_s)
                            for part in parts]
            performed = [None if done is None else list(done.events) for done in performances]
            played = [(part.program, done.label_notes) for part, done in zip(parts, performances) if done is not None]
            label_notes = remove_self_overlaps([note for _, notes in played for note in notes])
            if not label_notes:
                raise Mp3MidiError("the performance left no pitched notes")
            result.performance = _performance_record(parts, performances)
    chain = None
    chain_rng = np.random.default_rng([spec.seed, CHAIN_STREAM])
    if spec.chain_probability and chain_rng.random() < spec.chain_probability:
        chain = Chain.draw(chain_rng)
        result.chain = chain.record()
        if chain.drums and not any(part.is_drum for part in parts):
            parts.append(backing_drums(arrangement.duration_s, chain_rng))
            performed = None if performed is None else performed + [None]
        # The chain's room is the reverb and its noise the noise: FluidSynth's reverb and the white noise step aside
        # (a room on top of a reverb send would be two rooms, and the send costs 5-10 % of the render).
        effects = replace(effects, reverb=0.0 if chain.room_size_m is not None else effects.reverb,
                          noise_snr_db=None if chain.noise is not None else effects.noise_snr_db)
        result.effects = asdict(effects)

    renderer_rng = np.random.default_rng([spec.seed, RENDERER_STREAM])
    result.renderer = draw_renderer(renderer_rng, synth_probability=spec.synth_probability,
                                    voice_probability=spec.voice_probability)
    with clock("render"):
        if result.renderer == FLUIDSYNTH:
            audio = render(parts, arrangement.duration_s, soundfont=soundfont, effects=effects, rng=rng,
                           performed=performed)
        else:
            audio, played, result.timbre = render_procedural(
                result.renderer, played, [part for part in parts if part.is_drum], arrangement.duration_s,
                soundfont=soundfont, effects=effects, rng=renderer_rng)
            label_notes = remove_self_overlaps([note for _, notes in played for note in notes])
            result.soundfont, result.effects = result.renderer, {**result.effects, "reverb": 0.0, "chorus": 0.0}
            result.programs = [program for program, _ in played]
            result.families = sorted({family_of(program) for program in result.programs})
    if chain is not None:
        with clock("chain"):
            audio = apply_chain(audio, chain, chain_rng)
    items_dir = Path(spec.items_dir)
    items_dir.mkdir(parents=True, exist_ok=True)
    mp3_path = items_dir / f"{spec.item_id}.mp3"
    with clock("encode"):
        encode_mp3(audio, mp3_path, bitrate=chain.bitrate if chain is not None else spec.bitrate)
    with clock("decode"):
        decoded = load_audio(mp3_path)
    labels = write_item_arrays(items_dir, spec.item_id, decoded, label_notes, clock)

    result.files = {"audio": mp3_path.name, "features": f"{spec.item_id}.npz", "preview": f"{spec.item_id}.png"}
    result.mp3_bytes = mp3_path.stat().st_size
    result.notes = [(n.pitch, program, n.velocity, round(n.start_s, 4), round(n.duration_s, 4))
                    for program, notes in played for n in notes]
    result.polyphony = np.bincount(labels.frame.sum(axis=1)).tolist()


def _performance_record(parts, performances) -> dict:
    """The catalog's record of an item's performance: each pitched part's style and gestures, and their sum."""
    records = [done.record(part.program) for part, done in zip(parts, performances) if done is not None]
    counts: dict[str, int] = {}
    for record in records:
        for gesture, count in record["counts"].items():
            counts[gesture] = counts.get(gesture, 0) + count
    return {"parts": records, "counts": counts}


def write_item_arrays(items_dir: Path, item_id: str, audio: np.ndarray, label_notes: list, clock=None):
    """Features of decoded mono ``audio`` and label rolls of ``label_notes`` into ITEM.npz, and the preview
    ITEM.png: what training reads, the same for rendered items and a user's recordings. Returns the labels."""
    clock = clock or _Clock({})
    with clock("features"):
        features = spectrogram(audio)
    with clock("labels"):
        labels = note_labels(label_notes, features.shape[0])
        notes_array = np.array([(n.start_s, n.end_s, n.pitch, n.velocity) for n in label_notes],
                               dtype=np.float32).reshape(-1, 4)
        save_npz(items_dir / f"{item_id}.npz", features=features.astype(np.float16), onset=labels.onset,
                  frame=labels.frame, offset=labels.offset, velocity=labels.velocity, notes=notes_array,
                  feature_settings=np.array(json.dumps(FEATURE_SETTINGS)))
    with clock("preview"):
        write_preview(features, items_dir / f"{item_id}.png")
    return labels


def load_score(source: SourceRef, cache_dir: Path):
    if source.kind == "file":
        return read_midi(source.locator)
    if source.kind == "music21":
        from . import corpus

        return read_midi(corpus.convert(corpus.work_from_key(source.locator), cache_dir))
    if source.kind == "procedural":
        return procedural.generate_piece(int(source.locator), duration_s=PROCEDURAL_SECONDS)
    raise Mp3MidiError(f"unknown source kind {source.kind!r}")


class _Clock:
    """Times named stages into a dict: ``with clock("render"): ...``."""

    def __init__(self, timings: dict[str, float]):
        self.timings = timings

    def __call__(self, stage: str):
        self.stage = stage
        return self

    def __enter__(self):
        self.started = time.perf_counter()

    def __exit__(self, *exc_info):
        self.timings[self.stage] = time.perf_counter() - self.started
