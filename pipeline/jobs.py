"""Run a generation job: plan the items, make the missing ones in parallel, record them in the catalog.

A job can be killed at any moment and the same command resumes it: items are planned with stable ids, their files
appear only when complete, and an item is marked done in the catalog only after its files exist. Re-running
checks that every done item still has its files and redoes those that do not.

One job runs per dataset: the coordinator holds the dataset's lock (``dataset_lock``) from before it touches
anything until it ends. A job ends 'done', 'cancelled' (SIGTERM, Ctrl-C) or 'failed' with its reason (an
unreachable cluster, a catalog that stays locked, any error in the coordinator); each item has a time limit.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import sys
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path

import pandas as pd

from . import dataset_lock, soundfont_preload
from .background import ACTIVE, is_alive, process_id, this_process
from .catalog import connect, validate_name
from .corpus import MAX_WORK_SECONDS
from .errors import Mp3MidiError
from .instruments import parse_families
from .item import ItemResult, ItemSpec, item_seed, make_item
from .midi_io import MAX_MIDI_SECONDS
from .pool import run_tolerant, start_server
from .recording import ResultWriter
from .render import LOADED_BANKS, check_soundfont, default_soundfont
from .renderers import check_probabilities
from .sources import BUILTIN, PROCEDURAL_SECONDS, builtin_refs, convert_many, scan_folder

DEFAULT_BUILTIN_LIMIT = 100
DEFAULT_CLIP_SECONDS = 30.0
DEFAULT_MIX_PROBABILITY = 0.25
DEFAULT_SOUNDFONT_NAME = "default"  # a --soundfont value meaning the embedded TimGM6mb
# Settings added after datasets existed: a stored config without them was made with these values.
LEGACY_CONFIG = {"performance_probability": 0.0, "chain_probability": 0.0, "synth_probability": 0.0,
                 "voice_probability": 0.0}
# An item's time limit: a fixed allowance (start-up, loading, a slow shared disk) plus seconds per second of audio
# it may last. Items run at about 100x real time per core, so this is 200x slower than usual before it fails.
ITEM_TIME_BASE_S = 60.0
ITEM_TIME_PER_AUDIO_S = 2.0


class JobFailed(Mp3MidiError):
    """The job ran and failed; its reason is in the catalog (the command exits 1, not 2 as for bad input)."""


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
    performance_probability: float = 0.0
    chain_probability: float = 0.0
    synth_probability: float = 0.0
    voice_probability: float = 0.0
    cluster: str | None = None
    progress: bool = False
    item_timeout_s: float | None = None  # None: derived from each item's longest possible audio
    lock_fd: int | None = None  # the dataset's lock, already taken by the process that launched this one


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
    """Create or resume the dataset ``options.name``; returns when every planned item is done or failed.

    Ctrl-C (or SIGTERM to the command line, pipeline.sigterm) stops it in good order: items finished so far are kept
    and the job is marked 'cancelled'.
    Raises ``Mp3MidiError`` before starting (bad options, the dataset busy with another job: nothing is touched)
    and ``JobFailed`` when the job fails once started (it is recorded 'failed' with the reason).
    """
    started = time.perf_counter()
    config = check_options(options)
    name = options.name
    data_dir = Path(options.data_dir).resolve()
    with dataset_lock.acquire(dataset_dir(data_dir, name), name, inherited_fd=options.lock_fd) as lock:
        if not options.cluster:
            # The workers' imports, and the banks they render with, load in their server while the job plans.
            start_server([soundfont_preload.__name__, make_item.__module__],
                         environment={soundfont_preload.SOUNDFONTS_VARIABLE: json.dumps(config["soundfonts"])})
        items_dir = dataset_dir(data_dir, name) / "items"
        cache_dir = corpus_cache_dir(data_dir)
        job_id = uuid.uuid4().hex[:12]
        me = this_process()
        lock.record(job_id=job_id, pid=me.pid, host=me.host, started=me.started)
        _open_job(data_dir, job_id, options, config, lock.previous)
        writer = None
        try:
            todo = _plan_job(data_dir, job_id, options, items_dir, cache_dir)
            specs = [_spec(row, config, items_dir, cache_dir) for row in todo]
            writer = ResultWriter(data_dir, job_id, name, total=len(specs), progress=options.progress)
            status = _make_items(writer, specs, options)
            writer.close(status=status)
        except _Refused as refused:  # bad input found while planning (recorded 'failed'): exit 2 as for any
            raise refused.error from None
        except (KeyboardInterrupt, JobFailed):
            raise
        except Exception as exc:  # noqa: BLE001 - whatever stops the coordinator fails the job, with its reason
            raise _record_failure(data_dir, job_id, name, writer, lock, exc) from exc
        lock.record(job_id=job_id, pid=me.pid, host=me.host, started=me.started, status=status)
    with connect(data_dir, read_only=True) as connection:
        total, done, failed = connection.execute(
            "SELECT count(*), count(*) FILTER (status = 'done'), count(*) FILTER (status = 'failed')"
            " FROM items WHERE dataset = ?", [name]).fetchone()
        failures = dict(connection.execute(
            "SELECT error, count(*) FROM items WHERE dataset = ? AND status = 'failed' GROUP BY error"
            " ORDER BY count(*) DESC, error", [name]).fetchall())
    return JobSummary(job_id, name, total, done, failed, writer.made, time.perf_counter() - started,
                      writer.audio_s, failures)


def _record_failure(data_dir: Path, job_id: str, name: str, writer: ResultWriter | None,
                    lock: dataset_lock.DatasetLock, exc: BaseException) -> JobFailed:
    """Mark the job 'failed' with the reason (and keep the items already made); when the catalog cannot take it
    (its lock never freed), the dataset's lock file keeps the reason for readers and the next job."""
    reason = str(exc) if isinstance(exc, Mp3MidiError) else f"unexpected {type(exc).__name__}: {exc}"
    try:
        if writer is not None:
            writer.close(status="failed", message=reason)
        else:
            with connect(data_dir) as connection:
                connection.execute("UPDATE jobs SET status = 'failed', message = ?, finished_at = now(),"
                                   " updated_at = now() WHERE job_id = ?", [reason, job_id])
    except Mp3MidiError:
        me = this_process()
        lock.record(job_id=job_id, pid=me.pid, host=me.host, started=me.started, status="failed", message=reason)
    return JobFailed(f"job {job_id} for dataset {name!r} failed: {reason}")


def _open_job(data_dir: Path, job_id: str, options: GenerateOptions, config: dict, previous: dict) -> None:
    """Register the dataset and the job, so the job is visible while its sources are still being planned.

    ``previous``: what the dataset's lock file said about the last job; since this process holds the lock now,
    any job of the dataset still marked active has ended without saying so."""
    me = this_process()
    with connect(data_dir) as connection:
        connection.execute("BEGIN")
        _register_dataset(connection, options.name, config)
        if previous.get("status") == "failed" and previous.get("job_id"):
            connection.execute("UPDATE jobs SET status = 'failed', message = ?, finished_at = updated_at"
                               " WHERE job_id = ? AND list_contains(?, status)",
                               [previous.get("message"), previous["job_id"], list(ACTIVE)])
        _close_dead_jobs(connection)
        connection.execute("UPDATE jobs SET status = 'interrupted', finished_at = updated_at"
                           " WHERE dataset = ? AND list_contains(?, status)", [options.name, list(ACTIVE)])
        connection.execute(
            "INSERT INTO jobs (job_id, dataset, kind, status, pid, host, process_started, workers, cluster, done,"
            " failed, updated_at) VALUES (?, ?, 'generate', 'planning', ?, ?, ?, ?, ?, 0, 0, now())",
            [job_id, options.name, me.pid, me.host, me.started, options.workers, options.cluster])
        connection.execute("COMMIT")


def _plan_job(data_dir: Path, job_id: str, options: GenerateOptions, items_dir: Path, cache_dir: Path) -> list:
    """Plan the sources into items (stable ids, skipping known ones); returns the rows still to make."""
    name = options.name
    try:
        refs = _plan(options, cache_dir)
    except KeyboardInterrupt:
        with connect(data_dir) as connection:
            connection.execute("UPDATE jobs SET status = 'cancelled', finished_at = now(), updated_at = now()"
                               " WHERE job_id = ?", [job_id])
        raise Mp3MidiError(f"job {job_id} for dataset {name!r} was cancelled while planning its sources") from None
    except Mp3MidiError as exc:  # a source that cannot be used (no MIDI files, ...): the job failed on bad input
        with connect(data_dir) as connection:
            connection.execute("UPDATE jobs SET status = 'failed', message = ?, finished_at = now(),"
                               " updated_at = now() WHERE job_id = ?", [str(exc), job_id])
        raise _Refused(exc) from None
    with connect(data_dir) as connection:
        connection.execute("BEGIN")
        _insert_planned(connection, name, refs)
        _redo_items_missing_files(connection, name, items_dir)
        total, done = connection.execute(
            "SELECT count(*), count(*) FILTER (status = 'done') FROM items WHERE dataset = ?", [name]).fetchone()
        connection.execute("UPDATE jobs SET status = 'running', total = ?, done = ?, running_at = now(),"
                           " updated_at = now() WHERE job_id = ?", [total, done, job_id])
        todo = connection.execute(
            "SELECT item_id, source_kind, source, source_hash, seed FROM items"
            " WHERE dataset = ? AND status <> 'done' ORDER BY ordinal", [name]).fetchall()
        connection.execute("COMMIT")
    _remove_partial_files(items_dir)
    return todo


def _make_items(writer: ResultWriter, specs: list[ItemSpec], options: GenerateOptions) -> str:
    """Make the items, recording each result; returns 'done', or 'cancelled' on Ctrl-C (or SIGTERM to a command
    line, pipeline.sigterm)."""
    results = _results(specs, options)
    try:
        for result in results:
            writer.add(result)
    except KeyboardInterrupt:
        return "cancelled"
    finally:
        results.close()  # stops the workers at once, whatever ended the loop
    return "done"


class _Refused(Exception):
    def __init__(self, error: Mp3MidiError):
        super().__init__(str(error))
        self.error = error


def _failed(spec: ItemSpec, reason: str) -> ItemResult:
    return ItemResult(item_id=spec.item_id, status="failed", error=reason)


def _results(specs: list[ItemSpec], options: GenerateOptions):
    def limit(spec: ItemSpec) -> float:
        return item_time_limit(spec, override_s=options.item_timeout_s)

    if options.cluster:
        from .cluster import run_on_cluster

        return run_on_cluster(make_item, specs, address=options.cluster, on_failure=_failed, time_limit=limit)
    return run_tolerant(make_item, specs, workers=options.workers, on_failure=_failed, time_limit=limit)


def item_time_limit(spec: ItemSpec, *, override_s: float | None = None) -> float:
    """Seconds an item may take before it fails with "timed out after N s" (its worker is replaced): the
    allowance for the longest audio it can make (its clip, or the longest piece its source admits), or
    ``override_s`` (``--item-timeout``)."""
    if override_s is not None:
        return override_s
    if spec.clip_seconds:
        audio_s = spec.clip_seconds
    else:
        audio_s = {"procedural": PROCEDURAL_SECONDS, "music21": MAX_WORK_SECONDS}.get(spec.source.kind,
                                                                                      MAX_MIDI_SECONDS)
    return ITEM_TIME_BASE_S + ITEM_TIME_PER_AUDIO_S * audio_s


def check_options(options: GenerateOptions) -> dict:
    """Validate ``options`` without making anything; returns the dataset config they define.

    Raises ``Mp3MidiError`` for a bad name, source, soundfont or number, and when the dataset already exists with
    other settings, so a caller can refuse before starting a job.
    """
    validate_name(options.name)
    if options.workers < 1:
        raise Mp3MidiError(f"--workers must be at least 1; got {options.workers}")
    if options.limit is not None and options.limit < 1:
        raise Mp3MidiError(f"--limit must be at least 1; got {options.limit}")
    if options.item_timeout_s is not None and not options.item_timeout_s > 0:
        raise Mp3MidiError(f"--item-timeout must be a positive number of seconds; got {options.item_timeout_s}")
    config = _config(options)
    with connect(options.data_dir, read_only=True) as connection:
        row = connection.execute("SELECT config FROM datasets WHERE name = ?", [options.name]).fetchone()
    if row is not None:
        _check_same_config(options.name, json.loads(row[0]), config)
    return config


def resolved_options(options: GenerateOptions) -> GenerateOptions:
    """``options`` with the MIDI folder, the soundfonts and the data folder checked and made absolute (``~``
    expanded, the caller's working folder applied), for a child process that starts elsewhere and must read the
    same files: a relative or ``-``-led path can mean nothing else there. Raises ``Mp3MidiError`` as
    ``check_options`` does for a folder or soundfont that is not there."""
    config = _config(options)
    return replace(options, source=config["source"], soundfonts=tuple(config["soundfonts"]),
                   data_dir=str(Path(options.data_dir).expanduser().resolve()))


def corpus_cache_dir(data_dir: str | Path) -> Path:
    """Where music21 corpus works converted to MIDI are kept, for every job of ``data_dir``."""
    return Path(data_dir) / "cache" / "music21"


def _config(options: GenerateOptions) -> dict:
    """The settings that define a dataset's content; a resumed run must match them."""
    named = [default_soundfont() if path == DEFAULT_SOUNDFONT_NAME else path for path in options.soundfonts]
    soundfonts = tuple(check_soundfont(path) for path in (named or [default_soundfont()]))
    if len(set(soundfonts)) > LOADED_BANKS:  # each worker keeps the job's banks loaded; more would reload them
        raise Mp3MidiError(f"--soundfont: at most {LOADED_BANKS} different soundfonts a dataset; got "
                           f"{len(set(soundfonts))}")
    if options.source == BUILTIN:
        source = BUILTIN
    else:
        folder = Path(options.source).expanduser().resolve()
        if not folder.is_dir():
            raise Mp3MidiError(f"--source {options.source!r} is neither 'builtin' nor a folder")
        source = str(folder)
    if options.clip_seconds is not None and options.clip_seconds < 0:
        raise Mp3MidiError(f"--clip-seconds must be positive (or 0 for whole pieces); got {options.clip_seconds}")
    for flag, value in (("--mix-probability", options.mix_probability),
                        ("--performance-probability", options.performance_probability),
                        ("--chain-probability", options.chain_probability)):
        if not 0.0 <= value <= 1.0:
            raise Mp3MidiError(f"{flag} must lie in [0, 1]; got {value}")
    check_probabilities(synth_probability=options.synth_probability, voice_probability=options.voice_probability)
    return {
        "source": source,
        "soundfonts": list(soundfonts),
        "families": list(parse_families(options.families)),
        "clip_seconds": options.clip_seconds or None,
        "seed": options.seed,
        "mix_probability": options.mix_probability,
        "render_drums": options.render_drums,
        "bitrate": options.bitrate,
        "performance_probability": options.performance_probability,
        "chain_probability": options.chain_probability,
        "synth_probability": options.synth_probability,
        "voice_probability": options.voice_probability,
    }


def _register_dataset(connection, name: str, config: dict) -> None:
    row = connection.execute("SELECT config FROM datasets WHERE name = ?", [name]).fetchone()
    if row is None:
        connection.execute("INSERT INTO datasets (name, config) VALUES (?, ?)", [name, json.dumps(config)])
        return
    _check_same_config(name, json.loads(row[0]), config)


def _check_same_config(name: str, stored: dict, config: dict) -> None:
    stored = {**LEGACY_CONFIG, **stored}
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
    """Jobs of other datasets marked active whose processes (known by host, pid and start time) are gone."""
    host = socket.gethostname()
    for job_id, pid, started in connection.execute(
            "SELECT job_id, pid, process_started FROM jobs WHERE list_contains(?, status) AND host = ?",
            [list(ACTIVE), host]).fetchall():
        if not is_alive(process_id(host, pid, started)):
            connection.execute("UPDATE jobs SET status = 'interrupted', finished_at = updated_at WHERE job_id = ?",
                               [job_id])


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
        cache_dir=str(cache_dir), **{key: config.get(key, value) for key, value in LEGACY_CONFIG.items()})
