"""The catalog: names, migrations, and a writer and readers in separate processes never fighting over the file."""

import multiprocessing
import time
from pathlib import Path

import pytest

from pipeline.catalog import MIGRATIONS, connect, schema_version, validate_name
from pipeline.errors import Mp3MidiError


@pytest.mark.parametrize("name", ["demo", "lakh-2024", "a", "x_1"])
def test_good_names(name):
    assert validate_name(name) == name


@pytest.mark.parametrize("name", ["", "../etc", "a/b", "Demo", "-lead", "x" * 49, "name with space", ".hidden", None])
def test_bad_names_are_refused(name):
    with pytest.raises(Mp3MidiError, match="name .* is not allowed"):
        validate_name(name)


def test_schema_is_created_once_and_readers_never_create_files(tmp_path: Path):
    assert schema_version(tmp_path) == len(MIGRATIONS)  # in memory: nothing written
    assert not (tmp_path / "catalog.duckdb").exists()
    for _ in range(2):
        with connect(tmp_path) as connection:
            assert connection.execute("SELECT count(*) FROM schema_version").fetchone()[0] == len(MIGRATIONS)
    assert schema_version(tmp_path) == len(MIGRATIONS)


def _writer(data_dir: str, rows: int, started) -> None:
    started.set()
    for index in range(rows):
        with connect(data_dir) as connection:
            connection.execute("INSERT INTO datasets (name, config) VALUES (?, '{}')", [f"d{index}"])
            time.sleep(0.01)  # hold the lock a little, as a real batch would


def _reader(data_dir: str, reads: int, seen) -> None:
    for _ in range(reads):
        with connect(data_dir, read_only=True) as connection:
            seen.append(connection.execute("SELECT count(*) FROM datasets").fetchone()[0])


def test_a_writer_and_readers_in_other_processes_take_turns(tmp_path: Path):
    with connect(tmp_path):
        pass  # create the file
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    started, seen = manager.Event(), manager.list()
    writer = context.Process(target=_writer, args=(str(tmp_path), 40, started))
    readers = [context.Process(target=_reader, args=(str(tmp_path), 40, seen)) for _ in range(2)]
    writer.start()
    started.wait(30)
    for reader in readers:
        reader.start()
    for process in [writer, *readers]:
        process.join(120)
        assert process.exitcode == 0
    assert len(seen) == 80 and 0 <= min(seen) <= max(seen) <= 40
    with connect(tmp_path, read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM datasets").fetchone()[0] == 40


def test_a_reader_upgrades_a_catalog_written_by_an_older_version(tmp_path):
    import duckdb

    from pipeline.catalog import catalog_path

    old = duckdb.connect(str(catalog_path(tmp_path)))
    old.execute("CREATE TABLE schema_version (version INTEGER)")
    old.execute(MIGRATIONS[0])
    old.execute("INSERT INTO schema_version VALUES (1)")
    old.close()
    with connect(tmp_path, read_only=True) as connection:
        assert connection.execute("SELECT count(*) FROM settings").fetchone()[0] == 0
    assert schema_version(tmp_path) == len(MIGRATIONS)
