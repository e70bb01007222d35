"""A user's own recordings as training material: a folder of audio files, each with an aligned reference ``.mid``
of the same name beside it (a take recorded from a MIDI keyboard, an EWI or a DAW alongside the audio), turned into
dataset items through the factory's own code for features, labels, previews and catalog rows.

The dataset's pieces split into train/validation/test by their content like any other, so a fine-tune trains on
some recordings and is judged on others. A pair that cannot be read fails alone, with its reason in the catalog.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from . import dataset_lock
from .atomic import atomic_path
from .audio import load_audio
from .background import this_process
from .catalog import connect, validate_name
from .constants import FRAMES_PER_SECOND
from .errors import Mp3MidiError
from .instruments import family_of
from .item import ItemResult, write_item_arrays
from .midi_io import read_midi
from .recording import ResultWriter

AUDIO_SUFFIXES = (".mp3", ".wav", ".flac", ".ogg", ".m4a")
SOURCE_KIND = "recording"


@dataclass(frozen=True)
class ImportSummary:
    dataset: str
    total: int
    done: int
    failed: int
    failures: dict[str, int]


def recording_pairs(folder: str | Path) -> list[tuple[Path, Path]]:
    """(audio, reference .mid) pairs below ``folder`` (``~`` expanded), in path order: every audio file with a
    same-stem .mid beside it. The paths are ``folder``'s own joined with what lies below it, not resolved."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise Mp3MidiError(f"recordings folder {str(folder)!r} does not exist or is not a folder")
    pairs = [(audio, audio.with_suffix(".mid")) for audio in sorted(folder.rglob("*"))
             if audio.suffix.lower() in AUDIO_SUFFIXES and audio.with_suffix(".mid").is_file()]
    if not pairs:
        raise Mp3MidiError(f"no audio file with a reference .mid of the same name beside it in {str(folder)!r}")
    return pairs


def import_recordings(folder: str | Path, *, name: str, data_dir: str | Path = "data",
                      progress: bool = False) -> ImportSummary:
    """Make dataset ``name`` from the recordings in ``folder`` (re-running adds new pairs and keeps the rest).

    Recorded as a job of kind 'import' in the catalog, with progress, like a generation, and holding the dataset's
    lock as one does: raises ``Mp3MidiError`` naming the job when another runs on ``name``. Ctrl-C (or SIGTERM to
    the command line) stops it in good order with the items made so far kept.
    """
    validate_name(name)
    pairs = [(audio.resolve(), midi.resolve()) for audio, midi in recording_pairs(folder)]
    data_dir = Path(data_dir).resolve()
    items_dir = data_dir / "datasets" / name / "items"
    config = {"source": f"recordings:{Path(folder).expanduser().resolve()}", "soundfonts": [], "seed": 0}
    job_id = uuid.uuid4().hex[:12]
    planned = [(hashlib.sha1(f"{name}:{digest}".encode()).hexdigest()[:20], audio, midi, digest)
               for audio, midi in pairs for digest in [_pair_hash(audio, midi)]]
    with dataset_lock.acquire(data_dir / "datasets" / name, name) as lock:  # one job per dataset, as generate
        me = this_process()
        todo = _plan_import(data_dir, name, folder, config, planned, job_id=job_id, holder=me)
        lock.record(job_id=job_id, pid=me.pid, host=me.host, started=me.started)  # (a refusal leaves it as it was)
        writer = ResultWriter(data_dir, job_id, name, total=len(todo), progress=progress)
        status = "done"
        try:
            for item_id, audio, midi, _ in planned:
                if item_id in todo:
                    writer.add(recording_item(item_id, audio, midi, items_dir))
        except KeyboardInterrupt:
            status = "cancelled"
        finally:
            writer.close(status=status)
        lock.record(job_id=job_id, pid=me.pid, host=me.host, started=me.started, status=status)
    with connect(data_dir, read_only=True) as connection:
        total, done, failed = connection.execute(
            "SELECT count(*), count(*) FILTER (status = 'done'), count(*) FILTER (status = 'failed')"
            " FROM items WHERE dataset = ?", [name]).fetchone()
        failures = dict(connection.execute("SELECT error, count(*) FROM items WHERE dataset = ? AND status = 'failed'"
                                           " GROUP BY error ORDER BY 2 DESC", [name]).fetchall())
    return ImportSummary(name, total, done, failed, failures)


def _plan_import(data_dir: Path, name: str, folder, config: dict, planned: list, *, job_id: str, holder) -> set[str]:
    """Catalog rows for the new pairs and the import's job row, in one transaction; returns the items to make."""
    with connect(data_dir) as connection:
        connection.execute("BEGIN")
        row = connection.execute("SELECT config FROM datasets WHERE name = ?", [name]).fetchone()
        if row is not None and json.loads(row[0]).get("source") != config["source"]:
            connection.execute("ROLLBACK")
            raise Mp3MidiError(f"dataset {name!r} exists and was not made from {str(folder)!r}; choose another name")
        if row is None:
            connection.execute("INSERT INTO datasets (name, config) VALUES (?, ?)", [name, json.dumps(config)])
        known = {item for (item,) in connection.execute("SELECT item_id FROM items WHERE dataset = ?",
                                                        [name]).fetchall()}
        first = connection.execute("SELECT coalesce(max(ordinal) + 1, 0) FROM items WHERE dataset = ?",
                                   [name]).fetchone()[0]
        new = [entry for entry in planned if entry[0] not in known]
        for offset, (item_id, audio, _, digest) in enumerate(new):
            connection.execute("INSERT INTO items (item_id, dataset, ordinal, source_kind, source, source_hash, seed)"
                               " VALUES (?, ?, ?, ?, ?, ?, 0)", [item_id, name, first + offset, SOURCE_KIND,
                                                                 str(audio), digest])
        todo = {item for (item,) in connection.execute(
            "SELECT item_id FROM items WHERE dataset = ? AND status <> 'done'", [name]).fetchall()}
        connection.execute(
            "INSERT INTO jobs (job_id, dataset, kind, status, pid, host, process_started, workers, total, done,"
            " failed, updated_at, running_at) VALUES (?, ?, 'import', 'running', ?, ?, ?, 1, ?, 0, 0, now(), now())",
            [job_id, name, holder.pid, holder.host, holder.started, len(planned)])
        connection.execute("COMMIT")
    return todo


def recording_item(item_id: str, audio_path: Path, midi_path: Path, items_dir: Path) -> ItemResult:
    """One recording and its reference MIDI -> the item's files (a copy of the audio, features, labels, preview)."""
    result = ItemResult(item_id=item_id, status="failed")
    try:
        score = read_midi(midi_path)
        notes = score.pitched_notes
        if not notes:
            raise Mp3MidiError(f"{midi_path.name} holds no pitched notes")
        audio = load_audio(audio_path)
        items_dir.mkdir(parents=True, exist_ok=True)
        copy = items_dir / f"{item_id}{audio_path.suffix.lower()}"
        with atomic_path(copy) as partial:  # a full disk fails this item with its reason, not the import
            shutil.copyfile(audio_path, partial)
        labels = write_item_arrays(items_dir, item_id, audio, notes, None)
    except Mp3MidiError as exc:
        result.error = f"{audio_path.name}: {exc}"
        return result
    programs = sorted({part.program for part in score.parts if not part.is_drum and part.notes})
    result.status = "done"
    result.programs, result.families = programs, sorted({family_of(program) for program in programs})
    result.is_mix = len(result.families) > 1
    result.duration_s = labels.frame.shape[0] / FRAMES_PER_SECOND
    result.files = {"audio": copy.name, "features": f"{item_id}.npz", "preview": f"{item_id}.png"}
    result.mp3_bytes = copy.stat().st_size
    result.notes = [(n.pitch, part.program, n.velocity, round(n.start_s, 4), round(n.duration_s, 4))
                    for part in score.parts if not part.is_drum for n in part.notes]
    result.polyphony = np.bincount(labels.frame.sum(axis=1)).tolist()
    return result


def _pair_hash(audio: Path, midi: Path) -> str:
    digest = hashlib.sha1()
    for path in (audio, midi):
        digest.update(path.read_bytes())
    return digest.hexdigest()

