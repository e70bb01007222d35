"""Generation jobs end to end: real FluidSynth, real MP3, real DuckDB, real worker processes."""

import hashlib
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import coverage
from pipeline.catalog import connect
from pipeline.constants import N_BINS, N_KEYS
from pipeline.errors import Mp3MidiError
from pipeline.jobs import GenerateOptions, generate
from tests.conftest import write_piece

REPO = Path(__file__).resolve().parents[1]


def options(source: Path, data_dir: Path, **overrides) -> GenerateOptions:
    settings = dict(name="t", source=str(source), data_dir=str(data_dir), workers=1, clip_seconds=2.5)
    return GenerateOptions(**{**settings, **overrides})


def item_rows(data_dir: Path, name: str = "t"):
    with connect(data_dir, read_only=True) as connection:
        return connection.execute(
            "SELECT item_id, status, error, source, programs, audio_path, features_path, preview_path, n_notes"
            " FROM items WHERE dataset = ? ORDER BY ordinal", [name]).fetchall()


def test_folder_source_makes_items_with_audio_features_labels_and_previews(good_folder: Path, tmp_path: Path):
    summary = generate(options(good_folder, tmp_path / "data"))
    assert (summary.total, summary.done, summary.failed) == (3, 3, 0)  # the duplicate is skipped
    rows = item_rows(tmp_path / "data")
    assert sorted(Path(row[3]).name for row in rows) == ["TWO.MIDI", "one.mid", "three.Mid"]
    items_dir = tmp_path / "data" / "datasets" / "t" / "items"
    for item_id, status, error, _, programs, audio, features, preview, n_notes in rows:
        assert status == "done" and error is None and len(programs) >= 1 and n_notes > 0
        with np.load(items_dir / features) as stored:
            frames = stored["features"].shape[0]
            assert stored["features"].shape == (frames, N_BINS) and stored["features"].dtype == np.float16
            for roll in ("onset", "frame", "offset", "velocity"):
                assert stored[roll].shape == (frames, N_KEYS)
            assert stored["onset"].sum() == n_notes == len(stored["notes"])
            assert json.loads(str(stored["feature_settings"]))["kind"] == "cqt"
        assert (items_dir / audio).read_bytes()[:3] in (b"ID3", b"\xff\xfb", b"\xff\xf3")
        assert (items_dir / preview).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not list(items_dir.glob("*.partial"))


def test_drums_never_reach_the_labels(good_folder: Path, tmp_path: Path):
    generate(options(good_folder, tmp_path / "data", render_drums=True))
    with connect(tmp_path / "data", read_only=True) as connection:
        pitches = {row[0] for row in connection.execute("SELECT DISTINCT pitch FROM item_notes").fetchall()}
    assert pitches.isdisjoint({36, 37, 38})  # the fixture's kick, rim and snare


def test_bad_files_fail_with_reasons_and_the_job_goes_on(bad_folder: Path, tmp_path: Path):
    summary = generate(options(bad_folder, tmp_path / "data"))
    assert (summary.done, summary.failed) == (1, 5)
    reasons = " | ".join(summary.failures)
    for expected in ("not a readable MIDI file", "not a MIDI file", "has no notes", "only drum notes",
                     "longer than the 30 min limit"):
        assert expected in reasons
    assert coverage.failures(tmp_path / "data", "t")["items"].sum() == 5


def test_rerun_skips_done_items_and_extends_with_a_higher_limit(good_folder: Path, tmp_path: Path):
    data = tmp_path / "data"
    assert generate(options(good_folder, data, limit=2)).made_now == 2
    again = generate(options(good_folder, data, limit=2))
    assert (again.made_now, again.total) == (0, 2)
    more = generate(options(good_folder, data, limit=10))
    assert (more.made_now, more.total, more.done) == (1, 3, 3)
    with connect(data, read_only=True) as connection:
        assert connection.execute("SELECT count(*) - count(DISTINCT item_id) FROM items").fetchone()[0] == 0


def test_deleted_files_are_made_again(good_folder: Path, tmp_path: Path):
    data = tmp_path / "data"
    generate(options(good_folder, data))
    victim = item_rows(data)[0]
    (data / "datasets" / "t" / "items" / victim[5]).unlink()
    assert generate(options(good_folder, data)).made_now == 1
    assert (data / "datasets" / "t" / "items" / victim[5]).is_file()


@pytest.mark.parametrize(("change", "message"), [
    (dict(seed=1), "exists with other settings .*seed"),
    (dict(name="../escape"), "name '../escape' is not allowed"),
    (dict(soundfonts=("/no/such/font.sf2",)), "does not exist"),
    (dict(families=("kazoo",)), "unknown instrument families"),
    (dict(source="/no/such/folder"), "neither 'builtin' nor a folder"),
    (dict(workers=0), "at least 1"),
])
def test_bad_settings_refuse_to_start(good_folder: Path, tmp_path: Path, change, message):
    data = tmp_path / "data"
    generate(options(good_folder, data, limit=1))
    with pytest.raises(Mp3MidiError, match=message):
        change = dict(change)
        generate(options(Path(change.pop("source", good_folder)), data, limit=1, **change))


def test_an_empty_folder_is_refused(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Mp3MidiError, match="no .mid or .midi files"):
        generate(options(tmp_path / "empty", tmp_path / "data"))


def _fingerprint(data: Path) -> tuple:
    """What a finished dataset holds: catalog rows (without timings) and the bytes of every file."""
    with connect(data, read_only=True) as connection:
        items = connection.execute(
            "SELECT item_id, ordinal, status, error, source_hash, seed, soundfont, programs, is_mix, effects,"
            " clip_start_s, duration_s, n_notes, audio_path, features_path, preview_path, mp3_bytes"
            " FROM items ORDER BY item_id").fetchall()
        notes = connection.execute("SELECT * FROM item_notes ORDER BY ALL").fetchall()
        polyphony = connection.execute("SELECT * FROM item_polyphony ORDER BY ALL").fetchall()
    items_dir = data / "datasets" / "t" / "items"
    files = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(items_dir.iterdir())}
    return items, notes, polyphony, files


PIECES = 80  # enough that the job is still running when its first items are in the catalog


def _cli(data: Path, folder: Path) -> list[str]:
    return [sys.executable, "-m", "pipeline", "generate", "--name", "t", "--source", str(folder), "--data-dir",
            str(data), "--workers", "2", "--clip-seconds", "6"]


def test_kill_9_then_rerun_equals_an_uninterrupted_run(tmp_path: Path):
    folder = tmp_path / "midi"
    for index in range(PIECES):
        write_piece(folder / f"piece{index:02}.mid", program=index * 9 % 128, start_pitch=40 + index % 30,
                    n_notes=24)

    env = {**os.environ, "PYTHONPATH": str(REPO)}
    interrupted = tmp_path / "interrupted"
    process = subprocess.Popen(_cli(interrupted, folder), cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 240
    done = 0
    while done < 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
        if (interrupted / "catalog.duckdb").exists():
            with connect(interrupted, read_only=True) as connection:
                done = connection.execute("SELECT count(*) FROM items WHERE status = 'done'").fetchone()[0]
    assert process.poll() is None, f"the job ended before it could be killed: {process.stderr.read()!r}"
    os.killpg(process.pid, signal.SIGKILL)  # the coordinator and its workers, mid-job
    process.wait()
    assert 3 <= done < PIECES

    finished = subprocess.run(_cli(interrupted, folder), cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"{PIECES} done, 0 failed of {PIECES} items" in finished.stdout
    with connect(interrupted, read_only=True) as connection:
        statuses = dict(connection.execute("SELECT job_id, status FROM jobs").fetchall())
    assert sorted(statuses.values()) == ["done", "interrupted"]

    uninterrupted = tmp_path / "uninterrupted"
    subprocess.run(_cli(uninterrupted, folder), cwd=REPO, env=env, check=True, capture_output=True)
    assert _fingerprint(interrupted) == _fingerprint(uninterrupted)


def test_builtin_source_through_the_cli_and_its_stats(tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    data = tmp_path / "data"
    made = subprocess.run([sys.executable, "-m", "pipeline", "generate", "--name", "demo", "--limit", "4",
                           "--clip-seconds", "4", "--data-dir", str(data), "--families", "piano", "organ"],
                          cwd=REPO, env=env, capture_output=True, text=True)
    assert made.returncode == 0, made.stderr
    assert "4 done, 0 failed of 4 items" in made.stdout
    kinds = coverage.items(data, "demo")["source_kind"].tolist()
    assert kinds == ["procedural", "music21", "procedural", "music21"]
    families = set(coverage.notes_per_pitch_family(data, "demo")["family"])
    assert families <= {"piano", "organ"} and families
    stats = subprocess.run([sys.executable, "-m", "pipeline", "stats", "--name", "demo", "--data-dir", str(data)],
                           cwd=REPO, env=env, capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    for expected in ("dataset demo: 4 items (4 done", "keys played:", "polyphony (frames):", "note durations:",
                     "velocities:", "speed per stage"):
        assert expected in stats.stdout
    missing = subprocess.run([sys.executable, "-m", "pipeline", "stats", "--name", "nothing", "--data-dir", str(data)],
                             cwd=REPO, env=env, capture_output=True, text=True)
    assert missing.returncode == 2 and missing.stderr.strip() == f"error: no dataset named 'nothing' in {str(data)!r}"
