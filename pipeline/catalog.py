"""The DuckDB catalog: schema and migrations, short-lived connections that retry on the file lock.

DuckDB lets one process open the file read-write, or many open it read-only, never both at once. So nobody holds
a connection: every read or write opens one, does its work and closes it, retrying while another process holds
the lock. Only the process coordinating a job writes; workers return results to it.
"""

from __future__ import annotations

import contextlib
import os
import random
import re
import time
from pathlib import Path
from typing import Iterator

import duckdb

from .errors import Mp3MidiError

CATALOG_FILE = "catalog.duckdb"
LOCK_TIMEOUT_S = 60.0  # how long a connection waits for the file lock; MP3MIDI_CATALOG_WAIT_S overrides it
LOCK_WAIT_VARIABLE = "MP3MIDI_CATALOG_WAIT_S"
_SLUG = re.compile(r"^[a-z0-9][a-z0-9_-]{0,47}$")

MIGRATIONS = (
    # 1: the dataset factory
    """
    CREATE TABLE datasets (
        name VARCHAR PRIMARY KEY, created_at TIMESTAMP DEFAULT current_timestamp, config JSON);
    CREATE TABLE jobs (
        job_id VARCHAR PRIMARY KEY, dataset VARCHAR, kind VARCHAR, status VARCHAR, pid INTEGER, host VARCHAR,
        workers INTEGER, cluster VARCHAR, total INTEGER, done INTEGER, failed INTEGER, audio_s DOUBLE DEFAULT 0,
        started_at TIMESTAMP DEFAULT current_timestamp, updated_at TIMESTAMP, finished_at TIMESTAMP, message VARCHAR);
    CREATE TABLE items (
        item_id VARCHAR PRIMARY KEY, dataset VARCHAR, ordinal INTEGER, source_kind VARCHAR, source VARCHAR,
        source_hash VARCHAR, seed BIGINT, status VARCHAR DEFAULT 'pending', error VARCHAR, soundfont VARCHAR,
        programs INTEGER[], families VARCHAR[], is_mix BOOLEAN, effects JSON, clip_start_s DOUBLE,
        duration_s DOUBLE, n_notes INTEGER, audio_path VARCHAR, features_path VARCHAR, preview_path VARCHAR,
        mp3_bytes BIGINT, render_s DOUBLE, encode_s DOUBLE, decode_s DOUBLE, features_s DOUBLE, labels_s DOUBLE,
        preview_s DOUBLE, job_id VARCHAR, finished_at TIMESTAMP);
    CREATE INDEX items_dataset ON items (dataset);
    CREATE TABLE item_notes (
        item_id VARCHAR, pitch SMALLINT, program SMALLINT, family VARCHAR, velocity SMALLINT,
        start_s REAL, duration_s REAL);
    CREATE TABLE item_polyphony (item_id VARCHAR, polyphony SMALLINT, frames INTEGER);
    """,
    # 2: training runs and their metrics over time
    """
    CREATE TABLE runs (
        name VARCHAR PRIMARY KEY, datasets VARCHAR[], config JSON, status VARCHAR, device VARCHAR,
        parameters INTEGER, pid INTEGER, host VARCHAR, step INTEGER DEFAULT 0, steps INTEGER, best_step INTEGER,
        best_onset_f1 DOUBLE, checkpoint_dir VARCHAR, started_at TIMESTAMP DEFAULT current_timestamp,
        updated_at TIMESTAMP, finished_at TIMESTAMP, message VARCHAR);
    CREATE TABLE run_metrics (
        run VARCHAR, step INTEGER, recorded_at TIMESTAMP DEFAULT current_timestamp, train_loss DOUBLE,
        validation_loss DOUBLE, onset_f1 DOUBLE, offset_f1 DOUBLE, frame_f1 DOUBLE, velocity_f1 DOUBLE,
        learning_rate DOUBLE, examples_per_s DOUBLE, PRIMARY KEY (run, step));
    """,
    # 3: choices the dashboard keeps (the active model)
    """
    CREATE TABLE settings (key VARCHAR PRIMARY KEY, value VARCHAR, updated_at TIMESTAMP);
    """,
    # 4: when a job finished planning and began making items, so its throughput leaves planning out
    """
    ALTER TABLE jobs ADD COLUMN running_at TIMESTAMP;
    """,
    # 5: what each item's performance and recording chain did, and what they cost
    """
    ALTER TABLE items ADD COLUMN performance JSON;
    ALTER TABLE items ADD COLUMN chain JSON;
    ALTER TABLE items ADD COLUMN perform_s DOUBLE;
    ALTER TABLE items ADD COLUMN chain_s DOUBLE;
    """,
    # 6: fine-tunes to a user's sound: their stages, progress and before/after report
    """
    CREATE TABLE IF NOT EXISTS finetunes (
        name VARCHAR PRIMARY KEY, config JSON, status VARCHAR, stage VARCHAR, stage_limit_s DOUBLE,
        stage_started_at TIMESTAMP, progress VARCHAR, pid INTEGER, host VARCHAR,
        started_at TIMESTAMP DEFAULT current_timestamp, updated_at TIMESTAMP, finished_at TIMESTAMP, report JSON,
        message VARCHAR);
    """,
    # 7: which renderer played each item (fluidsynth, synth, voice) and a procedural renderer's drawn parameters
    """
    ALTER TABLE items ADD COLUMN renderer VARCHAR;
    ALTER TABLE items ADD COLUMN timbre JSON;
    """,
    # 8: processes are known by host, pid and start time, so a reused pid is never taken for a job, run or fine-tune
    """
    ALTER TABLE jobs ADD COLUMN process_started DOUBLE;
    ALTER TABLE runs ADD COLUMN process_started DOUBLE;
    ALTER TABLE finetunes ADD COLUMN process_started DOUBLE;
    """,
)


def validate_name(name: str, *, what: str = "dataset") -> str:
    """A dataset or run name is a short slug (lower-case letters, digits, '-' and '_'): it names a folder."""
    if not isinstance(name, str) or not _SLUG.match(name):
        raise Mp3MidiError(
            f"{what} name {name!r} is not allowed: use 1-48 lower-case letters, digits, '-' or '_', starting with a letter or digit")
    return name


def catalog_path(data_dir: str | Path) -> Path:
    return Path(data_dir) / CATALOG_FILE


@contextlib.contextmanager
def connect(data_dir: str | Path, *, read_only: bool = False,
            timeout_s: float | None = None) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the catalog for one unit of work, waiting while another process holds the lock: up to ``timeout_s``
    seconds (default ``LOCK_TIMEOUT_S``, or the environment's ``MP3MIDI_CATALOG_WAIT_S``), then ``Mp3MidiError``.

    A read-only open of a catalog that does not exist yet gives an in-memory empty catalog with the schema,
    so readers never create files.
    """
    path = catalog_path(data_dir)
    if timeout_s is None:
        timeout_s = lock_wait_s()
    if read_only and not path.exists():
        connection = duckdb.connect(":memory:")
        _migrate(connection)
    else:
        if not read_only:
            path.parent.mkdir(parents=True, exist_ok=True)
        connection = _open_with_retry(path, read_only=read_only, timeout_s=timeout_s)
        if not read_only:
            _migrate(connection)
        elif _version(connection) < len(MIGRATIONS):  # a catalog from an older version: upgrade it once
            connection.close()
            writer = _open_with_retry(path, read_only=False, timeout_s=timeout_s)
            try:
                _migrate(writer)
            finally:
                writer.close()
            connection = _open_with_retry(path, read_only=True, timeout_s=timeout_s)
    try:
        yield connection
    finally:
        connection.close()


def lock_wait_s() -> float:
    """Seconds a connection waits for the catalog's lock before giving up."""
    text = os.environ.get(LOCK_WAIT_VARIABLE)
    if not text:
        return LOCK_TIMEOUT_S
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not value >= 0:
        raise Mp3MidiError(f"{LOCK_WAIT_VARIABLE} must be a number of seconds of at least 0; got {text!r}")
    return value


def _open_with_retry(path: Path, *, read_only: bool, timeout_s: float) -> duckdb.DuckDBPyConnection:
    deadline = time.monotonic() + timeout_s
    delay = 0.02
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only)
        except (duckdb.IOException, duckdb.ConnectionException) as exc:
            if "lock" not in str(exc).lower() or time.monotonic() > deadline:
                raise Mp3MidiError(f"cannot open the catalog {str(path)!r}: {exc}") from None
            time.sleep(delay * (1 + random.random()))
            delay = min(delay * 2, 0.5)


def _version(connection: duckdb.DuckDBPyConnection) -> int:
    known = connection.execute("SELECT count(*) FROM information_schema.tables"
                               " WHERE table_name = 'schema_version'").fetchone()[0]
    return connection.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0] if known else 0


def _migrate(connection: duckdb.DuckDBPyConnection) -> None:
    """Bring the schema up to date. A current catalog costs two queries: every writer's connection comes here."""
    current = _version(connection)
    if current >= len(MIGRATIONS):
        return
    connection.execute("CREATE TABLE IF NOT EXISTS schema_version (version INTEGER)")
    for version, script in enumerate(MIGRATIONS, start=1):
        if version > current:
            connection.execute("BEGIN")
            connection.execute(script)
            connection.execute("INSERT INTO schema_version VALUES (?)", [version])
            connection.execute("COMMIT")


def schema_version(data_dir: str | Path) -> int:
    with connect(data_dir, read_only=True) as connection:
        return connection.execute("SELECT max(version) FROM schema_version").fetchone()[0]
