"""Generation jobs launched as separate processes, watched through the catalog and cancelled with SIGTERM."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from pipeline.background import is_alive
from pipeline.errors import Mp3MidiError
from pipeline.jobcontrol import (cancel_generation, generation_arguments, job_progress, resume_options,
                                 start_generation)
from pipeline.jobs import GenerateOptions
from tests.conftest import write_piece


def wait_for(condition, *, timeout_s: float = 120.0, every_s: float = 0.2):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every_s)
    raise AssertionError("condition not met in time")


# Pieces in a job that a test cancels midway: enough that it is still running a few seconds after its first items
# (one worker makes about five 3-second items a second), and few enough that resuming it takes seconds.
LONG_JOB_PIECES = 80


def many_pieces(root: Path, count: int) -> Path:
    for index in range(count):
        write_piece(root / f"piece-{index:02d}.mid", program=(index * 8) % 96, start_pitch=40 + index % 40,
                    n_notes=10)
    return root


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
                              limit=5, clip_seconds=None, workers=2, seed=7, data_dir=str(tmp_path), render_drums=True)
    arguments = generation_arguments(options)
    assert arguments[:3] == ["generate", "--name", "x"]
    assert "--render-drums" in arguments and arguments[arguments.index("--clip-seconds") + 1] == "0"
    assert arguments[arguments.index("--families") + 1: arguments.index("--families") + 3] == ["piano", "organ"]


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
    wait_for(lambda: not is_alive(launched.pid))


def test_cancel_keeps_what_was_made_and_a_restart_resumes(tmp_path: Path):
    source, data = many_pieces(tmp_path / "midi", LONG_JOB_PIECES), tmp_path / "data"
    options = GenerateOptions(name="long", source=str(source), data_dir=str(data), workers=1, clip_seconds=3.0)
    launched = start_generation(options)
    wait_for(lambda: (p := job_progress(data, "long")) and p.status == "running" and p.done >= 2)
    with pytest.raises(Mp3MidiError, match="already has a job running"):
        start_generation(options)
    assert cancel_generation(data, "long")
    stopped = wait_for(lambda: (p := job_progress(data, "long")) and p.status == "cancelled" and p)
    wait_for(lambda: not is_alive(launched.pid))
    assert 2 <= stopped.done < LONG_JOB_PIECES and not cancel_generation(data, "long")

    start_generation(options)
    finished = wait_for(lambda: (p := job_progress(data, "long")) and p.status == "done" and p)
    assert finished.done == finished.total == LONG_JOB_PIECES
    assert finished.items_per_s > 0


def test_a_job_whose_process_died_reads_interrupted(good_folder: Path, tmp_path: Path):
    import os
    import signal

    data = tmp_path / "data"
    many_pieces(good_folder / "more", LONG_JOB_PIECES)
    launched = start_generation(GenerateOptions(name="killed", source=str(good_folder), data_dir=str(data),
                                                workers=1, clip_seconds=3.0))
    wait_for(lambda: (p := job_progress(data, "killed")) and p.status == "running")
    os.killpg(launched.pid, signal.SIGKILL)
    assert wait_for(lambda: job_progress(data, "killed").status == "interrupted")


def test_resume_options_reproduce_the_stored_settings(good_folder: Path, tmp_path: Path):
    from pipeline.jobs import check_options, generate

    options = GenerateOptions(name="again", source=str(good_folder), data_dir=str(tmp_path), workers=1,
                              clip_seconds=2.0, seed=3, families=("organ",), mix_probability=0.0)
    generate(options)
    resumed = resume_options(tmp_path, "again", workers=2)
    assert check_options(resumed)["families"] == ["organ"] and resumed.limit == 3 and resumed.seed == 3
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
    wait_for(lambda: not is_alive(launched.pid))
