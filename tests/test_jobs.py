"""Generation jobs end to end: real FluidSynth, real MP3, real DuckDB, real worker processes."""

import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from pipeline import coverage
from pipeline.catalog import LOCK_WAIT_VARIABLE as CATALOG_WAIT
from pipeline.catalog import connect
from pipeline.constants import N_BINS, N_KEYS
from pipeline.errors import Mp3MidiError
from pipeline.item import ItemSpec
from pipeline.item_gate import GATE_VARIABLE, OPEN, set_gate
from pipeline.jobs import ITEM_TIME_BASE_S, ITEM_TIME_PER_AUDIO_S, GenerateOptions, JobFailed, generate, item_time_limit
from pipeline.midi_io import MAX_MIDI_SECONDS
from pipeline.render import LOADED_BANKS, default_soundfont
from pipeline.sources import PROCEDURAL_SECONDS, SourceRef
from tests.conftest import write_piece
from tests.test_background import gate, wait_for  # noqa: F401 - gate is a fixture

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


def test_more_soundfonts_than_a_worker_keeps_loaded_are_refused(good_folder: Path, tmp_path: Path):
    banks = []
    for index in range(LOADED_BANKS + 1):
        banks.append(tmp_path / f"bank{index}.sf2")
        banks[-1].write_bytes(Path(default_soundfont()).read_bytes())
    with pytest.raises(Mp3MidiError, match=f"at most {LOADED_BANKS} different soundfonts a dataset; got {LOADED_BANKS + 1}"):
        generate(options(good_folder, tmp_path / "data", soundfonts=tuple(map(str, banks))))
    assert not (tmp_path / "data" / "catalog.duckdb").exists()


def test_an_empty_folder_is_refused(tmp_path: Path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(Mp3MidiError, match="no .mid or .midi files"):
        generate(options(tmp_path / "empty", tmp_path / "data"))


def _fingerprint(data: Path) -> tuple:
    """What a finished dataset holds: catalog rows (without timings) and the bytes of every file."""
    with connect(data, read_only=True) as connection:
        datasets = connection.execute("SELECT name, config FROM datasets ORDER BY name").fetchall()
        items = connection.execute(
            "SELECT item_id, ordinal, status, error, source_hash, seed, soundfont, programs, is_mix, effects,"
            " clip_start_s, duration_s, n_notes, audio_path, features_path, preview_path, mp3_bytes"
            " FROM items ORDER BY item_id").fetchall()
        notes = connection.execute("SELECT * FROM item_notes ORDER BY ALL").fetchall()
        polyphony = connection.execute("SELECT * FROM item_polyphony ORDER BY ALL").fetchall()
    items_dir = data / "datasets" / "t" / "items"
    files = {p.name: hashlib.sha1(p.read_bytes()).hexdigest() for p in sorted(items_dir.iterdir())}
    return datasets, items, notes, polyphony, files


def _cli(data: Path, folder: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "pipeline", "generate", "--name", "t", "--source", str(folder), "--data-dir",
            str(data), "--workers", "2", "--clip-seconds", "2", *extra]


def _latest_job(data: Path):
    from pipeline.background import job_progress

    return job_progress(data, "t") if (data / "catalog.duckdb").exists() else None


KILLED_PIECES = 50
KILLS = 4


def test_killed_again_and_again_at_random_moments_then_finished_equals_an_uninterrupted_run(tmp_path: Path,
                                                                                            gate: Path):
    """SIGKILL to the job's whole process group at seeded random moments, four times, then a run to the end:
    catalog rows and item files are those of a run never interrupted. The item gate gives each killed run a few
    passes (drawn from the seed too), so none can finish before its kill, however fast the machine is."""
    folder = tmp_path / "midi"
    for index in range(KILLED_PIECES):
        write_piece(folder / f"piece{index:02}.mid", program=index * 9 % 128, start_pitch=40 + index % 30,
                    n_notes=12)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    interrupted = tmp_path / "interrupted"
    rng = np.random.default_rng(11)
    for kill in range(KILLS):
        set_gate(gate, int(rng.integers(2, 9)))
        process = subprocess.Popen(_cli(interrupted, folder), cwd=REPO, env=env, start_new_session=True,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if kill == 0:  # once for certain with items in the catalog, then anywhere from start-up on
            wait_for(lambda: (job := _latest_job(interrupted)) and job.pid == process.pid and job.done >= 1)
        time.sleep(float(rng.uniform(0.0, 2.5)))
        assert process.poll() is None, f"the job ended before its kill: {process.stderr.read()!r}"
        os.killpg(process.pid, signal.SIGKILL)  # the coordinator, its workers and its fork server, mid-job
        process.wait()
        process.stderr.close()

    set_gate(gate, OPEN)
    finished = subprocess.run(_cli(interrupted, folder), cwd=REPO, env=env, capture_output=True, text=True)
    assert finished.returncode == 0, finished.stderr
    assert f"{KILLED_PIECES} done, 0 failed of {KILLED_PIECES} items" in finished.stdout
    made_now = int(finished.stdout.split(" made ")[1].split()[0])
    assert made_now < KILLED_PIECES  # the killed runs left items that were kept
    with connect(interrupted, read_only=True) as connection:
        statuses = [row[0] for row in connection.execute("SELECT status FROM jobs ORDER BY started_at").fetchall()]
    assert statuses[-1] == "done" and set(statuses[:-1]) == {"interrupted"} and 2 <= len(statuses) <= KILLS + 1

    uninterrupted = tmp_path / "uninterrupted"
    clean_env = {key: value for key, value in env.items() if key != GATE_VARIABLE}
    subprocess.run(_cli(uninterrupted, folder), cwd=REPO, env=clean_env, check=True, capture_output=True)
    assert _fingerprint(interrupted) == _fingerprint(uninterrupted)


def test_a_crash_in_the_coordinator_fails_the_job_with_its_reason(good_folder: Path, tmp_path: Path, monkeypatch):
    from pipeline.recording import ResultWriter

    data = tmp_path / "data"
    real_add = ResultWriter.add

    def add_then_crash(self, result):
        real_add(self, result)
        if self.made == 2:
            raise RuntimeError("injected fault after two items")

    monkeypatch.setattr(ResultWriter, "add", add_then_crash)
    with pytest.raises(JobFailed, match=r"job [0-9a-f]{12} for dataset 't' failed: unexpected RuntimeError:"
                                        r" injected fault after two items"):
        generate(options(good_folder, data))
    with connect(data, read_only=True) as connection:
        status, message, done = connection.execute("SELECT status, message, done FROM jobs").fetchone()
    assert (status, message, done) == ("failed", "unexpected RuntimeError: injected fault after two items", 2)
    monkeypatch.setattr(ResultWriter, "add", real_add)
    assert generate(options(good_folder, data)).made_now == 1  # the lock was released; the two items were kept


def test_an_unreachable_cluster_fails_the_job_on_the_command_line_and_in_stats(good_folder: Path, tmp_path: Path):
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    data = tmp_path / "data"
    run = subprocess.run(_cli(data, good_folder, "--cluster", "tcp://127.0.0.1:9"), cwd=REPO, env=env,
                         capture_output=True, text=True)
    assert run.returncode == 1 and run.stdout == ""
    [line] = run.stderr.splitlines()
    assert re.fullmatch(r"error: job [0-9a-f]{12} for dataset 't' failed: cannot reach the Dask cluster at"
                        r" 'tcp://127\.0\.0\.1:9': .+", line)
    stats = subprocess.run([sys.executable, "-m", "pipeline", "stats", "--name", "t", "--data-dir", str(data)],
                           cwd=REPO, env=env, capture_output=True, text=True)
    assert stats.returncode == 0, stats.stderr
    assert re.search(r"latest job [0-9a-f]{12}: failed: cannot reach the Dask cluster", stats.stdout)


def test_a_catalog_lock_that_never_frees_fails_the_job_after_a_bounded_wait(tmp_path: Path, gate: Path):
    import duckdb

    from pipeline.background import job_progress

    folder, data = tmp_path / "midi", tmp_path / "data"
    for index in range(6):
        write_piece(folder / f"piece{index}.mid", program=index * 5, start_pitch=48 + index)
    env = {**os.environ, "PYTHONPATH": str(REPO), CATALOG_WAIT: "1"}
    set_gate(gate, 1)
    process = subprocess.Popen(_cli(data, folder, "--workers", "1"), cwd=REPO, env=env, start_new_session=True,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    job = wait_for(lambda: (job := _latest_job(data)) and job.status == "running" and job.done == 1 and job)
    holder = duckdb.connect(str(data / "catalog.duckdb"))  # takes the catalog's lock and never lets go
    try:
        set_gate(gate, OPEN)
        stdout, stderr = process.communicate(timeout=120)
    finally:
        holder.close()
    assert process.returncode == 1 and stdout == ""
    [line] = stderr.splitlines()
    assert line.startswith(f"error: job {job.job_id} for dataset 't' failed: cannot open the catalog")
    # The catalog could not take the reason then; the dataset's lock file kept it for readers and the next job.
    failed = job_progress(data, "t")
    assert (failed.job_id, failed.status) == (job.job_id, "failed") and "cannot open the catalog" in failed.message
    assert subprocess.run(_cli(data, folder), cwd=REPO, env=env, capture_output=True).returncode == 0
    with connect(data, read_only=True) as connection:
        rows = connection.execute("SELECT status, message FROM jobs ORDER BY started_at").fetchall()
    assert [row[0] for row in rows] == ["failed", "done"] and "cannot open the catalog" in rows[0][1]


def test_a_hung_item_fails_with_timed_out_and_the_job_goes_on(tmp_path: Path, gate: Path):
    """The gate gives two passes and holds the other items forever, as a hung FluidSynth would."""
    folder, data = tmp_path / "midi", tmp_path / "data"
    for index in range(4):
        write_piece(folder / f"piece{index}.mid", program=index * 5, start_pitch=48 + index)
    set_gate(gate, 2)
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    run = subprocess.run(_cli(data, folder, "--workers", "1", "--item-timeout", "1.5"), cwd=REPO, env=env,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert "2 done, 2 failed of 4 items" in run.stdout and "failed x2: timed out after 1.5 s" in run.stdout
    assert sorted(coverage.failures(data, "t")["reason"]) == ["timed out after 1.5 s"]


@pytest.mark.parametrize(("clip_seconds", "kind", "override", "limit"), [
    (2.0, "file", None, ITEM_TIME_BASE_S + ITEM_TIME_PER_AUDIO_S * 2.0),
    (30.0, "procedural", None, ITEM_TIME_BASE_S + ITEM_TIME_PER_AUDIO_S * 30.0),
    (None, "procedural", None, ITEM_TIME_BASE_S + ITEM_TIME_PER_AUDIO_S * PROCEDURAL_SECONDS),
    (None, "file", None, ITEM_TIME_BASE_S + ITEM_TIME_PER_AUDIO_S * MAX_MIDI_SECONDS),
    (None, "file", 7.5, 7.5),
])
def test_an_items_time_limit_follows_the_longest_audio_it_can_make(clip_seconds, kind, override, limit):
    spec = ItemSpec(item_id="x", source=SourceRef(kind, "0", "hash"), seed=0, soundfonts=("a.sf2",), families=(),
                    clip_seconds=clip_seconds, mix_probability=0.0, render_drums=False, bitrate="64k",
                    items_dir="items", cache_dir="cache")
    assert item_time_limit(spec, override_s=override) == limit


@pytest.mark.parametrize("value", ["0", "-1", "soon"])
def test_a_bad_item_timeout_is_refused(good_folder: Path, tmp_path: Path, value: str):
    run = subprocess.run(_cli(tmp_path / "data", good_folder, "--item-timeout", value), cwd=REPO,
                         env={**os.environ, "PYTHONPATH": str(REPO)}, capture_output=True, text=True)
    assert run.returncode == 2 and ("--item-timeout" in run.stderr.splitlines()[-1])
    assert not (tmp_path / "data" / "datasets").exists()


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
