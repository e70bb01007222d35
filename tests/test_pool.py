import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.pool import run_tolerant
from tests.tasks import failed, square_or_die, square_or_hang

REPO = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_crash_or_exception_fails_only_its_own_task(workers):
    results = list(run_tolerant(square_or_die, range(20), workers=workers, on_failure=failed))
    assert len(results) == 20
    assert "13 failed: the worker process crashed while making this item" in results
    assert "7 failed: unexpected ValueError: seven is unlucky" in results
    assert sorted(r for r in results if isinstance(r, int)) == [i * i for i in range(20) if i not in (7, 13)]


@pytest.mark.parametrize("workers", [1, 2])
def test_a_hung_task_times_out_alone_and_its_worker_is_replaced(workers):
    # The hung task has half a second; the others take milliseconds but get a minute, for a busy machine.
    results = list(run_tolerant(square_or_hang, range(12), workers=workers, on_failure=failed,
                                time_limit=lambda task: 0.5 if task == 5 else 60.0))
    assert "5 failed: timed out after 0.5 s" in results
    assert sorted(r for r in results if isinstance(r, int)) == [i * i for i in range(12) if i != 5]


def test_tasks_without_a_limit_and_bad_worker_counts():
    assert sorted(run_tolerant(square_or_die, [1, 2, 3], workers=3, on_failure=failed)) == [1, 4, 9]
    with pytest.raises(ValueError, match="workers must be at least 1; got 0"):
        list(run_tolerant(square_or_die, [1], workers=0, on_failure=failed))


def test_workers_exit_when_their_coordinator_is_killed(tmp_path):
    coordinator = subprocess.Popen([sys.executable, "-m", "tests.tasks", str(tmp_path)], cwd=REPO)
    deadline = time.monotonic() + 60
    while len(list(tmp_path.glob("*.pid"))) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    workers = [int(path.stem) for path in tmp_path.glob("*.pid")]
    assert len(workers) == 2, "the workers never started"
    coordinator.kill()  # SIGKILL: no clean-up runs in the coordinator
    coordinator.wait()
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    survivors = [pid for pid in workers if _alive(pid)]
    for pid in survivors:  # leave nothing behind, even when the check fails
        os.kill(pid, signal.SIGKILL)
    assert not survivors, "workers outlived their coordinator"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().split(")")[-1].split()[0] != "Z"  # a zombie has exited
    except FileNotFoundError:
        return False


def test_workers_fork_with_the_jobs_soundfonts_loaded_and_still_load_others(tmp_path):
    """The server loads the job's banks once (pipeline.soundfont_preload); both workers find the good one loaded,
    run OpenMP on one thread, and load a bank the server never saw without hanging (GNU OpenMP cannot start threads
    again in a process forked after it ran some). A bank that fails in the server is said on stderr, and fails in a
    worker at once, without a second load. A fresh coordinator, so the server is this test's own."""
    from pipeline.render import check_soundfont, default_soundfont

    other = tmp_path / "other bank.sf2"
    other.write_bytes(Path(default_soundfont()).read_bytes())
    bad = tmp_path / "bad bank.sf2"
    bad.write_bytes(b"RIFF\0\0\0\0sfbkLIST")  # passes no check: the server meets it as a damaged bank
    bank, other_bank = check_soundfont(default_soundfont()), check_soundfont(str(other))
    probe = ("import json, sys; from tests.tasks import preloaded_workers;"
             " print(json.dumps(preloaded_workers(*sys.argv[1:])))")
    # Several OpenMP threads asked for, so the server's load runs some whatever the machine or the caller's setting.
    done = subprocess.run([sys.executable, "-c", probe, bank, other_bank, str(bad)], cwd=REPO, capture_output=True,
                          text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "4"})
    assert done.returncode == 0, done.stderr
    *reports, (said, loads) = json.loads(done.stdout.strip().splitlines()[-1])
    # (A worker that hung reports "... failed: timed out after 120 s"; None: a FluidSynth built without OpenMP.)
    assert reports in ([[True, 1, True]] * 2, [[True, None, True]] * 2)
    assert said == f"FluidSynth cannot load soundfont {str(bad)!r}" and loads == 0
    assert f"warning: FluidSynth cannot load soundfont {str(bad)!r}; items drawing this soundfont will fail" in \
        done.stderr
