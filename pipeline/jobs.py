"""Run a generation job: plan the items, make the missing ones in parallel, record them in the catalog.

A job can be killed at any moment and the same command resumes it: items are planned with stable ids, their files
appear only when complete, and an item is marked done in the catalog only after its files exist. Re-running
checks that every done item still has its files and redoes those that do not.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from . import item as item_module
from .catalog import connect, validate_name
from .errors import Mp3MidiError
from .instruments import parse_families
from .item import ItemResult, ItemSpec, item_seed
from .pool import run_tolerant
from .recording import ResultWriter
from .render import check_soundfont, default_soundfont
from .sources import BUILTIN, builtin_refs, convert_many, scan_folder

DEFAULT_BUILTIN_LIMIT = 100
DEFAULT_CLIP_SECONDS = 30.0
DEFAULT_MIX_PROBABILITY = 0.25
DEFAULT_SOUNDFONT_NAME = "default"  # a --soundfont value meaning the embedded TimGM6mb


@dataclass
class GenerateOptions:
    name: str
    source: str = BUILTIN
    soundfonts: tuple[str, ...] = ()
    families: tuple[str, ...] = ()
    limit: int | None = None
    clip_seconds: float | None = DEFAULT_CLIP_SECONDS
    workers: int = field(default_factory=lambda: os.cpu_count() or 1)
    seed: int = 0
    data_dir: str = "data"
    mix_probability: float = DEFAULT_MIX_PROBABILITY
    render_drums: bool = False
    bitrate: str = "64k"
    cluster: str | None = None
    progress: bool = False


@dataclass
class JobSummary:
    job_id: str
    dataset: str
    total: int
    done: int
    failed: int
    made_now: int
    wall_s: float
    audio_s: float
    failures: dict[str, int]  # reason -> count

    @property
    def speed(self) -> float:
        """Audio seconds produced per wall second by this run."""
        return self.audio_s / self.wall_s if self.wall_s > 0 else 0.0


def dataset_dir(data_dir: str | Path, name: str) -> Path:
    return Path(data_dir).resolve() / "datasets" / validate_name(name)


def generate(options: GenerateOptions) -> JobSummary:
    """Create or resume the dataset ``options.name``; returns when every planned item is done or failed."""
    started = time.perf_counter()
    name = validate_name(options.name)
    data_dir = Path(options.data_dir).resolve()
    config = _config(options)
    items_dir = dataset_dir(data_dir, name) / "items"
    cache_dir = data_dir / "cache" / "music21"
    if options.workers < 1:
        raise Mp3MidiError(f"--workers must be at least 1; got {options.workers}")

    with connect(data_dir) as connection:
        _register_dataset(connection, name, config)
    refs = _plan(options, cache_dir)
    job_id = uuid.uuid4().hex[:12]
    with connect(data_dir) as connection:
        connection.execute("BEGIN")
        _insert_planned(connection, name, refs)
        _redo_items_missing_files(connection, name, items_dir)
        _close_dead_jobs(connection)
        total, done = connection.execute(
            "SELECT count(*), count(*) FILTER (status = 'done') FROM items WHERE dataset = ?", [name]).fetchone()
        connection.execute(
            "INSERT INTO jobs (job_id, dataset, kind, status, pid, host, workers, cluster, total, done, failed, updated_at)"
            " VALUES (?, ?, 'generate', 'running', ?, ?, ?, ?, ?, ?, 0, current_timestamp)",
            [job_id, name, os.getpid(), socket.gethostname(), options.workers, options.cluster, total, done])
        todo = connection.execute(
            "SELECT item_id, source_kind, source, source_hash, seed FROM items"
            " WHERE dataset = ? AND status <> 'done' ORDER BY ordinal", [name]).fetchall()
        connection.execute("COMMIT")
    _remove_partial_files(items_dir)

    specs = [_spec(row, config, items_dir, cache_dir) for row in todo]
    writer = ResultWriter(data_dir, job_id, name, total=len(specs), progress=options.progress)
    status = "done"
    previous = signal.signal(signal.SIGTERM, _raise_cancel) if _main_thread() else None
    try:
        for result in _results(specs, options):
            writer.add(result)
    except (KeyboardInterrupt, _Cancelled):
        status = "cancelled"
    finally:
        writer.close(status=status)
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
    with connect(data_dir, read_only=True) as connection:
        total, done, failed = connection.execute(
            "SELECT count(*), count(*) FILTER (status = 'done'), count(*) FILTER (status = 'failed')"
            " FROM items WHERE dataset = ?", [name]).fetchone()
        failures = dict(connection.execute(
            "SELECT error, count(*) FROM items WHERE dataset = ? AND status = 'failed' GROUP BY error"
            " ORDER BY count(*) DESC, error", [name]).fetchall())
    return JobSummary(job_id, name, total, done, failed, writer.made, time.perf_counter() - started,
                      writer.audio_s, failures)


class _Cancelled(Exception):
    pass


def _raise_cancel(signum, frame):
    raise _Cancelled()


def _main_thread() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


def _make_item_task(spec: ItemSpec) -> ItemResult:
    """The task workers run; looks ``make_item`` up at call time so tests can substitute it."""
    return item_module.make_item(spec)


def _failed(spec: ItemSpec, reason: str) -> ItemResult:
    return ItemResult(item_id=spec.item_id, status="failed", error=reason)


def _results(specs: list[ItemSpec], options: GenerateOptions):
    if options.cluster:
        from .cluster import run_on_cluster

        return run_on_cluster(_make_item_task, specs, address=options.cluster, on_failure=_failed)
    return run_tolerant(_make_item_task, specs, workers=options.workers, on_failure=_failed)


def _config(options: GenerateOptions) -> dict:
    """The settings that define a dataset's content; a resumed run must match them."""
    named = [default_soundfont() if path == DEFAULT_SOUNDFONT_NAME else path for path in options.soundfonts]
    soundfonts = tuple(check_soundfont(path) for path in (named or [default_soundfont()]))
    if options.source == BUILTIN:
        source = BUILTIN
    else:
        folder = Path(options.source).expanduser().resolve()
        if not folder.is_dir():
            raise Mp3MidiError(f"--source {options.source!r} is neither 'builtin' nor a folder")
        source = str(folder)
    if options.clip_seconds is not None and options.clip_seconds < 0:
        raise Mp3MidiError(f"--clip-seconds must be positive (or 0 for whole pieces); got {options.clip_seconds}")
    if not 0.0 <= options.mix_probability <= 1.0:
        raise Mp3MidiError(f"--mix-probability must lie in [0, 1]; got {options.mix_probability}")
    return {
        "source": source,
        "soundfonts": list(soundfonts),
        "families": list(parse_families(options.families)),
        "clip_seconds": options.clip_seconds or None,
        "seed": options.seed,
        "mix_probability": options.mix_probability,
        "render_drums": options.render_drums,
        "bitrate": options.bitrate,
    }


def _register_dataset(connection, name: str, config: dict) -> None:
    row = connection.execute("SELECT config FROM datasets WHERE name = ?", [name]).fetchone()
    if row is None:
        connection.execute("INSERT INTO datasets (name, config) VALUES (?, ?)", [name, json.dumps(config)])
        return
    stored = json.loads(row[0])
    differences = [f"{key}: {stored.get(key)!r} -> {config[key]!r}" for key in config if stored.get(key) != config[key]]
    if differences:
        raise Mp3MidiError(f"dataset {name!r} exists with other settings ({'; '.join(differences)});"
                           " re-run with the same settings to resume, or choose another --name")


def _plan(options: GenerateOptions, cache_dir: Path):
    if options.source == BUILTIN:
        limit = options.limit if options.limit is not None else DEFAULT_BUILTIN_LIMIT
        return builtin_refs(limit, cache_dir, lambda works: convert_many(works, cache_dir, workers=options.workers))
    refs = []
    for ref in scan_folder(options.source):
        if options.limit is not None and len(refs) >= options.limit:
            break
        refs.append(ref)
    if not refs:
        raise Mp3MidiError(f"no .mid or .midi files found under {options.source!r}")
    return refs


def _item_id(dataset: str, content_hash: str) -> str:
    return hashlib.sha1(f"{dataset}:{content_hash}".encode()).hexdigest()[:20]


def _insert_planned(connection, name: str, refs) -> None:
    start = connection.execute("SELECT coalesce(max(ordinal) + 1, 0) FROM items WHERE dataset = ?", [name]).fetchone()[0]
    known = {row[0] for row in connection.execute("SELECT item_id FROM items WHERE dataset = ?", [name]).fetchall()}
    seed = json.loads(connection.execute("SELECT config FROM datasets WHERE name = ?", [name]).fetchone()[0])["seed"]
    rows = []
    for ref in refs:
        item_id = _item_id(name, ref.content_hash)
        if item_id not in known:
            known.add(item_id)
            rows.append((item_id, name, start + len(rows), ref.kind, ref.locator, ref.content_hash,
                         item_seed(seed, ref.content_hash)))
    if rows:  # one bulk insert: executemany takes about a minute for a 20,000-file folder
        planned = pd.DataFrame(rows, columns=["item_id", "dataset", "ordinal", "source_kind", "source",
                                              "source_hash", "seed"])
        connection.execute("INSERT INTO items (item_id, dataset, ordinal, source_kind, source, source_hash, seed)"
                           " SELECT * FROM planned")


def _redo_items_missing_files(connection, name: str, items_dir: Path) -> None:
    done = connection.execute(
        "SELECT item_id, audio_path, features_path, preview_path FROM items WHERE dataset = ? AND status = 'done'",
        [name]).fetchall()
    missing = [row[0] for row in done if not all((items_dir / file).is_file() for file in row[1:])]
    if missing:
        connection.execute("UPDATE items SET status = 'pending' WHERE list_contains(?, item_id)", [missing])
        connection.execute("DELETE FROM item_notes WHERE list_contains(?, item_id)", [missing])
        connection.execute("DELETE FROM item_polyphony WHERE list_contains(?, item_id)", [missing])


def _close_dead_jobs(connection) -> None:
    host = socket.gethostname()
    for job_id, pid in connection.execute(
            "SELECT job_id, pid FROM jobs WHERE status = 'running' AND host = ?", [host]).fetchall():
        if not _alive(pid):
            connection.execute("UPDATE jobs SET status = 'interrupted', finished_at = updated_at WHERE job_id = ?",
                               [job_id])


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _remove_partial_files(items_dir: Path) -> None:
    if items_dir.is_dir():
        for partial in items_dir.glob("*.partial"):
            partial.unlink(missing_ok=True)


def _spec(row, config: dict, items_dir: Path, cache_dir: Path) -> ItemSpec:
    from .sources import SourceRef

    item_id, kind, locator, content_hash, seed = row
    return ItemSpec(
        item_id=item_id, source=SourceRef(kind, locator, content_hash), seed=seed,
        soundfonts=tuple(config["soundfonts"]), families=tuple(config["families"]),
        clip_seconds=config["clip_seconds"], mix_probability=config["mix_probability"],
        render_drums=config["render_drums"], bitrate=config["bitrate"], items_dir=str(items_dir),
        cache_dir=str(cache_dir))
