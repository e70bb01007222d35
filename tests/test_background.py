"""Work in the background: generation jobs launched as separate processes, watched through the catalog, cancelled
with SIGTERM, one at a time per dataset; processes known by host, pid and start time.

A test that must catch a job midway holds it at the item gate (pipeline/item_gate.py): with N passes exactly N
items can finish, so the job is certainly still running when the test acts, however fast the machine is.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from model.__main__ import build_parser, train_options
from model.network import OnsetLoss
from model.train import TrainOptions
from pipeline.background import (ProcessId, cancel_generation, generation_arguments, is_alive, job_progress,
                                 resume_options, start_generation, stop, this_process, training_arguments)
from pipeline.catalog import connect
from pipeline.errors import Mp3MidiError
from pipeline.item_gate import GATE_VARIABLE, OPEN, set_gate
from pipeline.jobs import GenerateOptions
from tests.conftest import write_piece

REPO = Path(__file__).resolve().parents[1]


def wait_for(condition, *, timeout_s: float = 120.0, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("condition not met in time")


def ended(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:  # gone, possibly between two questions about it
        return True


# Pieces in a job that a test holds midway at the item gate: more than the passes it gives, few enough that
# letting the job finish takes seconds.
HELD_JOB_PIECES = 8


def many_pieces(root: Path, count: int) -> Path:
    for index in range(count):
        write_piece(root / f"piece-{index:02d}.mid", program=(index * 8) % 96, start_pitch=40 + index % 40,
                    n_notes=10)
    return root


@pytest.fixture
def gate(tmp_path: Path, monkeypatch) -> Path:
    """The item gate, closed (no pass); processes launched from here on hold their items at it."""
    path = tmp_path / "item-gate"
    set_gate(path, 0)
    monkeypatch.setenv(GATE_VARIABLE, str(path))
    return path


@pytest.mark.parametrize("options, message", [
    (dict(name="Bad Name"), "is not allowed"),
    (dict(name="ok", workers=0), "at least 1"),
    (dict(name="ok", limit=0), "--limit must be at least 1"),
    (dict(name="ok", source="/no/such/folder"), "neither 'builtin' nor a folder"),
    (dict(name="ok", soundfonts=("/no/such.sf2",)), "soundfont"),
])
def test_bad_options_are_refused_before_any_process_starts(tmp_path: Path, options: dict, message: str):
    with pytest.raises(Mp3MidiError, match=message):
        start_generation(GenerateOptions(data_dir=str(tmp_path), **options))
    assert not (tmp_path / "logs").exists()


def test_arguments_round_trip_through_the_command_line(tmp_path: Path):
    from pipeline.__main__ import main  # noqa: F401 - the parser the arguments are meant for

    options = GenerateOptions(name="x", source=str(tmp_path), soundfonts=("default",), families=("piano", "organ"),
                              limit=5, clip_seconds=None, workers=2, seed=7, data_dir=str(tmp_path), render_drums=True,
                              performance_probability=0.5, chain_probability=0.25, item_timeout_s=90.0)
    arguments = generation_arguments(options)
    for flag, value in (("--performance-probability", "0.5"), ("--chain-probability", "0.25"),
                        ("--item-timeout", "90.0")):
        assert arguments[arguments.index(flag) + 1] == value
    assert arguments[:3] == ["generate", "--name", "x"]
    assert "--render-drums" in arguments and arguments[arguments.index("--clip-seconds") + 1] == "0"
    assert arguments[arguments.index("--families") + 1: arguments.index("--families") + 3] == ["piano", "organ"]


@pytest.mark.parametrize("changes", [
    {},
    {"size": None, "init_from": "default", "bin_shift": 1, "threads": 2},
    {"size": "base", "bin_shift": 2, "lr": 5e-4, "seed": 3, "device": "cpu", "eval_items": 5},
    {"onset_loss": OnsetLoss(pos_weight=2.0, tail=0.5, inside_weight=2.0)},
])
def test_a_launched_run_trains_with_every_setting_it_was_given(tmp_path: Path, changes: dict):
    # The dashboard launches `python -m model train` with these arguments: a setting lost on the way (the feature
    # shift and the onset recipe once were) would train another run than the one asked for.
    options = TrainOptions(datasets=["a", "b"], run="r", steps=30, batch_size=3, eval_every=10,
                           data_dir=str(tmp_path), **changes)
    launched = train_options(build_parser().parse_args(training_arguments(options)))
    assert launched.identity() == options.identity()
    for setting in ("steps", "device", "eval_every", "eval_items", "threads", "onset_loss"):
        assert getattr(launched, setting) == getattr(options, setting), setting
    assert Path(launched.data_dir) == tmp_path.resolve()


def test_a_launched_job_reports_progress_and_finishes(good_folder: Path, tmp_path: Path):
    data = tmp_path / "data"
    options = GenerateOptions(name="little", source=str(good_folder), data_dir=str(data), workers=1, clip_seconds=2.0)
    launched = start_generation(options)
    progress = wait_for(lambda: (p := job_progress(data, "little")) and p.status == "done" and p)
    assert (progress.done, progress.failed, progress.total) == (3, 0, 3)
    assert progress.fraction == 1.0 and progress.audio_s > 0 and progress.eta_s is None
    assert 0 < progress.making_s <= progress.elapsed_s and progress.speed > 0
    # The job prints its summary after it marks itself done in the catalog: the log has it a moment later.
    assert wait_for(lambda: "little: 3 done, 0 failed of 3 items" in job_progress(data, "little").log, timeout_s=30)
    wait_for(lambda: ended(launched.pid))

def test_cancel_keeps_what_was_made_and_a_restart_resumes(tmp_path: Path, gate: Path):
    source, data = many_pieces(tmp_path / "midi", HELD_JOB_PIECES), tmp_path / "data"
    options = GenerateOptions(name="long", source=str(source), data_dir=str(data), workers=1, clip_seconds=3.0)
    set_gate(gate, 1)  # one item can finish; the next waits at the gate
    launched = start_generation(options)
    wait_for(lambda: (p := job_progress(data, "long")) and p.status == "running" and p.done == 1)
    with pytest.raises(Mp3MidiError, match="already has a job running: job [0-9a-f]{12} "):
        start_generation(options)
    assert cancel_generation(data, "long")
    stopped = wait_for(lambda: (p := job_progress(data, "long")) and p.status == "cancelled" and p)
    wait_for(lambda: ended(launched.pid))
    assert stopped.done == 1 and not cancel_generation(data, "long")

    set_gate(gate, OPEN)
    start_generation(options)
    finished = wait_for(lambda: (p := job_progress(data, "long")) and p.status == "done" and p)
    assert finished.done == finished.total == HELD_JOB_PIECES
    assert finished.items_per_s > 0


def test_a_killed_job_reads_interrupted_and_its_lock_never_blocks_the_resume(good_folder: Path, tmp_path: Path,
                                                                            gate: Path):
    data = tmp_path / "data"
    options = GenerateOptions(name="killed", source=str(good_folder), data_dir=str(data), workers=1,
                              clip_seconds=2.0)
    launched = start_generation(options)
    wait_for(lambda: (p := job_progress(data, "killed")) and p.status == "running")
    os.killpg(launched.pid, signal.SIGKILL)  # the coordinator, its workers and its fork server
    assert wait_for(lambda: job_progress(data, "killed").status == "interrupted")
    set_gate(gate, OPEN)
    start_generation(options)  # the kernel dropped the killed job's flock
    assert wait_for(lambda: (p := job_progress(data, "killed")) and p.status == "done" and p).done == 3
    with connect(data, read_only=True) as connection:
        statuses = [row[0] for row in connection.execute("SELECT status FROM jobs ORDER BY started_at").fetchall()]
    assert statuses == ["interrupted", "done"]


def _snapshot(data: Path) -> tuple:
    """Every file under the data folder but the logs (name, size, modification time) and the catalog's rows."""
    files = sorted((str(path.relative_to(data)), path.stat().st_size, path.stat().st_mtime_ns)
                   for path in data.rglob("*") if path.is_file() and "logs" not in path.parts)
    with connect(data, read_only=True) as connection:
        rows = [connection.execute(f"SELECT * FROM {table} ORDER BY ALL").fetchall() for table in ("jobs", "items")]
    return files, rows


def test_a_second_run_on_a_busy_dataset_exits_at_once_naming_the_job_and_touches_nothing(tmp_path: Path,
                                                                                         gate: Path):
    source, data = many_pieces(tmp_path / "midi", HELD_JOB_PIECES), tmp_path / "data"
    options = GenerateOptions(name="busy", source=str(source), data_dir=str(data), workers=1, clip_seconds=2.0)
    set_gate(gate, 1)
    start_generation(options)
    running = wait_for(lambda: (p := job_progress(data, "busy")) and p.status == "running" and p.done == 1 and p)
    before = _snapshot(data)
    second = subprocess.run([sys.executable, "-m", "pipeline", *generation_arguments(options)], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert second.returncode == 2 and second.stdout == ""
    assert second.stderr == (f"error: dataset 'busy' already has a job running: job {running.job_id} (pid"
                             f" {running.pid} on {socket.gethostname()}); wait for it to finish or cancel it\n")
    with pytest.raises(Mp3MidiError, match=f"already has a job running: job {running.job_id} "):
        start_generation(options)  # the dashboard's launch asks the same lock
    assert _snapshot(data) == before
    assert cancel_generation(data, "busy")
    wait_for(lambda: job_progress(data, "busy").status == "cancelled")


def test_processes_are_known_by_host_pid_and_start_time():
    me = this_process()
    assert is_alive(me) and me.host == socket.gethostname()
    assert not is_alive(ProcessId(me.host, me.pid, me.started - 5.0))  # the pid, reused by a later process
    assert not is_alive(ProcessId("another-host", me.pid, me.started))
    assert not is_alive(None)
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    try:
        recorded = ProcessId(me.host, sleeper.pid, psutil.Process(sleeper.pid).create_time())
        impostor = ProcessId(me.host, sleeper.pid, recorded.started - 60.0)
        assert not stop(impostor) and sleeper.poll() is None  # a pid that is not our process is never signalled
        assert stop(recorded) and sleeper.wait(timeout=30) == -signal.SIGTERM
        assert not is_alive(recorded) and not stop(recorded)
    finally:
        sleeper.kill()
        sleeper.wait()


def test_a_process_we_may_not_signal_is_not_taken_for_alive():
    """Process 1 exists, but an unprivileged user may not signal it: neither alive to us nor stopped."""
    code = ("import psutil, socket; from pipeline.background import ProcessId, is_alive, stop;"
            " init = ProcessId(socket.gethostname(), 1, psutil.Process(1).create_time());"
            " print(psutil.pid_exists(1), is_alive(init), stop(init))")
    command = [sys.executable, "-c", code]
    if os.geteuid() == 0:  # root may signal every process: ask as the unprivileged user 'nobody'
        if shutil.which("setpriv") is None:
            pytest.skip("running as root without setpriv to drop the privilege")
        command = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", *command]
    answer = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=120,
                            env={**os.environ, "PYTHONPATH": str(REPO)})
    assert answer.stdout.split() == ["True", "False", "False"], answer.stderr


def test_resume_options_reproduce_the_stored_settings(good_folder: Path, tmp_path: Path):
    from pipeline.jobs import check_options, generate

    options = GenerateOptions(name="again", source=str(good_folder), data_dir=str(tmp_path), workers=1,
                              clip_seconds=2.0, seed=3, families=("organ",), mix_probability=0.0,
                              performance_probability=0.5)
    generate(options)
    resumed = resume_options(tmp_path, "again", workers=2)
    assert check_options(resumed)["families"] == ["organ"] and resumed.limit == 3 and resumed.seed == 3
    assert resumed.performance_probability == 0.5
    with pytest.raises(Mp3MidiError, match="no dataset named 'nothing'"):
        resume_options(tmp_path, "nothing", workers=1)


def test_installed_soundfonts_list_the_default_first_and_user_files(tmp_path: Path):
    from pipeline.render import default_soundfont
    from pipeline.soundfonts import installed_soundfonts, user_soundfont_dir

    folder = user_soundfont_dir(tmp_path)
    folder.mkdir(parents=True)
    (folder / "mine.SF2").write_bytes(Path(default_soundfont()).read_bytes())
    (folder / "readme.txt").write_text("not a soundfont")
    found = installed_soundfonts(tmp_path)
    assert found[0] == default_soundfont() and str(folder / "mine.SF2") in found
    assert not any(path.endswith(".txt") for path in found)


def test_the_child_gets_the_forms_paths_resolved(tmp_path: Path, monkeypatch):
    """A relative folder, one whose name starts with '-' (which the child's parser would read as an option), and
    a soundfont under '~' reach the job as absolute paths, the ones the dashboard's process checked."""
    import shutil

    from pipeline.render import default_soundfont

    home, work = tmp_path / "home", tmp_path / "work"
    write_piece(work / "-midi" / "one.mid", n_notes=4)
    (home / "fonts").mkdir(parents=True)
    shutil.copy(default_soundfont(), home / "fonts" / "mine.sf2")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(work)
    launched = start_generation(GenerateOptions(name="paths", source="-midi", soundfonts=("~/fonts/mine.sf2",),
                                                data_dir="data", workers=1, clip_seconds=1.0))
    command = list(launched.command)
    assert command[command.index("--source") + 1] == str(work / "-midi")
    assert command[command.index("--soundfont") + 1] == str(home / "fonts" / "mine.sf2")
    assert command[command.index("--data-dir") + 1] == str(work / "data")
    progress = wait_for(lambda: (p := job_progress(work / "data", "paths")) and p.status == "done" and p)
    assert (progress.done, progress.total) == (1, 1)
    wait_for(lambda: ended(launched.pid))
