"""Long work in its own process: dataset generation and training runs, started, watched and stopped from another
process (the dashboard) through the catalog. This is the one way work runs in the background.

A launch starts ``python -m pipeline|model ...`` in a new session, so closing or reloading a page never touches it,
and the child writes what it prints to a log under the data folder. The child records itself in the catalog as a
process identity: host, pid and the process's start time (psutil). Liveness and stop check all three, so a pid the
system has since given to another process is never taken for the job, and never signalled; a process we may not
signal is not taken for alive. A stop is SIGTERM, which the child's command line turns into Ctrl-C
(pipeline.sigterm) and the generation and training loops into an orderly 'cancelled' with everything made so far kept.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import psutil

from .catalog import connect, validate_name
from .errors import Mp3MidiError

ROOT = Path(__file__).resolve().parents[1]
LOG_TAIL_LINES = 20
ACTIVE = ("planning", "running")
START_TIME_TOLERANCE_S = 0.05  # the kernel counts process start times in clock ticks (10 ms)


# --- processes known by host, pid and start time -----------------------------------------------------------------

@dataclass(frozen=True)
class ProcessId:
    host: str
    pid: int
    started: float  # the process's start time, seconds since the epoch (psutil's create_time)


def this_process() -> ProcessId:
    return ProcessId(socket.gethostname(), os.getpid(), psutil.Process().create_time())


def process_id(host, pid, started) -> ProcessId | None:
    """A ``ProcessId`` from catalog columns; None when any is missing (a row from before start times were kept)."""
    if any(value is None or (isinstance(value, float) and pd.isna(value)) for value in (host, pid, started)):
        return None
    return ProcessId(str(host), int(pid), float(started))


def is_alive(process: ProcessId | None) -> bool:
    """True only when ``process`` runs on this host, is the very process recorded (same start time), is no zombie
    and may be signalled by us. Anything we cannot tell, or cannot signal, is not taken for alive."""
    if process is None or process.host != socket.gethostname() or process.pid <= 0:
        return False
    try:
        found = psutil.Process(process.pid)
        if abs(found.create_time() - process.started) > START_TIME_TOLERANCE_S:
            return False  # the pid now belongs to another process
        if found.status() == psutil.STATUS_ZOMBIE:
            return False
        os.kill(process.pid, 0)
    except (psutil.Error, ProcessLookupError, PermissionError):
        return False
    return True


def stop(process: ProcessId | None) -> bool:
    """Ask ``process`` to stop (SIGTERM); False when it is not running (or not the process recorded)."""
    if not is_alive(process):
        return False
    try:
        os.kill(process.pid, signal.SIGTERM)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def on_this_host_and_dead(frame: pd.DataFrame) -> pd.Series:
    """Rows of a catalog table (columns status, host, pid, process_started) marked active on this host whose
    process is gone: they read 'interrupted'."""
    active = frame["status"].isin(ACTIVE) & (frame["host"] == socket.gethostname())
    if frame.empty:
        return active
    alive = frame.apply(lambda row: is_alive(process_id(row["host"], row["pid"], row["process_started"])), axis=1)
    return active & ~alive.astype(bool)


# --- launching ---------------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class Launched:
    pid: int
    log_path: Path
    command: tuple[str, ...]


def log_path(data_dir: str | Path, kind: str, name: str) -> Path:
    """data/logs/KIND-NAME.log; ``name`` is a validated slug, so the path stays in the data folder."""
    return Path(data_dir).resolve() / "logs" / f"{kind}-{validate_name(name, what=kind)}.log"


def launch(module: str, arguments: list[str], *, log: Path, pass_fds: tuple[int, ...] = ()) -> Launched:
    """Start ``python -m module arguments...`` detached from the caller; returns without waiting.

    ``pass_fds``: open files the child inherits (the dataset lock it takes over)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    command = (sys.executable, "-m", module, *arguments)
    with open(log, "ab") as output:
        output.write(f"$ {' '.join(command[1:])}\n".encode())
        output.flush()
        process = subprocess.Popen(command, cwd=ROOT, stdout=output, stderr=subprocess.STDOUT,
                                   stdin=subprocess.DEVNULL, start_new_session=True, pass_fds=pass_fds,
                                   env={**os.environ, "PYTHONUNBUFFERED": "1"})
    # Reap the child when it ends, so a finished job never lingers as a zombie that still looks alive.
    threading.Thread(target=process.wait, daemon=True).start()
    return Launched(process.pid, log, command)


def log_tail(path: str | Path, *, lines: int = LOG_TAIL_LINES) -> str:
    """The last lines of a log (progress-bar carriage returns folded), or '' when there is none yet."""
    path = Path(path)
    if not path.is_file():
        return ""
    with open(path, "rb") as handle:
        handle.seek(0, os.SEEK_END)
        handle.seek(max(0, handle.tell() - 64_000))
        text = handle.read().decode(errors="replace")
    rows = [row.rsplit("\r", 1)[-1] for row in text.splitlines()]
    return "\n".join(rows[-lines:])


# --- dataset generation ------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class JobProgress:
    job_id: str
    dataset: str
    status: str  # planning, running, done, cancelled, failed, interrupted (its process died)
    done: int
    failed: int
    total: int | None
    audio_s: float  # audio made by this job
    elapsed_s: float  # since the job started, planning included
    making_s: float  # since it began making items
    items_per_s: float  # items made by this job per second
    eta_s: float | None
    process: ProcessId | None
    message: str | None
    log: str

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    @property
    def fraction(self) -> float:
        return (self.done + self.failed) / self.total if self.total else 0.0

    @property
    def speed(self) -> float:
        """Audio seconds made per wall second."""
        return self.audio_s / self.making_s if self.making_s > 0 else 0.0


def generation_arguments(options) -> list[str]:
    """The ``python -m pipeline generate`` arguments that reproduce ``options`` (a ``GenerateOptions``)."""
    arguments = ["generate", "--name", options.name, "--source", options.source, "--workers", str(options.workers),
                 "--seed", str(options.seed), "--mix-probability", str(options.mix_probability),
                 "--bitrate", options.bitrate, "--clip-seconds", str(options.clip_seconds or 0),
                 "--data-dir", str(Path(options.data_dir).resolve())]
    if options.soundfonts:
        arguments += ["--soundfont", *options.soundfonts]
    if options.families:
        arguments += ["--families", *options.families]
    if options.limit is not None:
        arguments += ["--limit", str(options.limit)]
    if options.render_drums:
        arguments.append("--render-drums")
    if options.cluster:
        arguments += ["--cluster", options.cluster]
    if options.performance_probability:
        arguments += ["--performance-probability", str(options.performance_probability)]
    if options.chain_probability:
        arguments += ["--chain-probability", str(options.chain_probability)]
    if options.synth_probability:
        arguments += ["--synth-probability", str(options.synth_probability)]
    if options.voice_probability:
        arguments += ["--voice-probability", str(options.voice_probability)]
    if options.item_timeout_s is not None:
        arguments += ["--item-timeout", str(options.item_timeout_s)]
    return arguments


def start_generation(options) -> Launched:
    """Check ``options`` and launch the job in its own process; refuses while the dataset has a live job.

    The dataset's lock is taken here and handed to the child, so two launches can never both start. The child
    gets the paths resolved here (``resolved_options``), never the form's text as typed."""
    from . import dataset_lock
    from .jobs import check_options, dataset_dir, resolved_options

    options = resolved_options(options)
    check_options(options)
    with dataset_lock.acquire(dataset_dir(options.data_dir, options.name), options.name) as lock:
        return launch("pipeline", [*generation_arguments(options), "--lock-fd", str(lock.fd)],
                      log=log_path(options.data_dir, "generate", options.name), pass_fds=(lock.fd,))


def resume_options(data_dir: str | Path, dataset: str, *, workers: int):
    """Options that continue ``dataset`` exactly as planned: its stored settings, limited to its planned items."""
    from .jobs import LEGACY_CONFIG, GenerateOptions

    with connect(data_dir, read_only=True) as connection:
        row = connection.execute("SELECT d.config, count(i.item_id) FROM datasets d LEFT JOIN items i"
                                 " ON i.dataset = d.name WHERE d.name = ? GROUP BY d.config", [dataset]).fetchone()
    if row is None:
        raise Mp3MidiError(f"no dataset named {dataset!r}")
    config, planned = {**LEGACY_CONFIG, **json.loads(row[0])}, row[1]
    return GenerateOptions(
        name=dataset, source=config["source"], soundfonts=tuple(config["soundfonts"]),
        families=tuple(config["families"]), limit=planned or None, clip_seconds=config["clip_seconds"],
        workers=workers, seed=config["seed"], data_dir=str(data_dir), mix_probability=config["mix_probability"],
        render_drums=config["render_drums"], bitrate=config["bitrate"],
        performance_probability=config["performance_probability"], chain_probability=config["chain_probability"],
        synth_probability=config["synth_probability"], voice_probability=config["voice_probability"])


def cancel_generation(data_dir: str | Path, dataset: str) -> bool:
    """Stop the dataset's running job; items made so far stay. False when none is running."""
    current = job_progress(data_dir, dataset)
    return current is not None and current.active and stop(current.process)


def job_progress(data_dir: str | Path, dataset: str) -> JobProgress | None:
    """The dataset's latest job, or None when it never had one. A job whose process is gone reads 'interrupted',
    or 'failed' with its reason when it left one in the dataset's lock file (the catalog was locked then)."""
    with connect(data_dir, read_only=True) as connection:
        frame = connection.execute(
            "SELECT job_id, status, host, pid, process_started, done, failed, total, audio_s, message,"
            " epoch(coalesce(finished_at, now()::TIMESTAMP) - started_at) AS elapsed_s,"
            " epoch(coalesce(finished_at, now()::TIMESTAMP) - coalesce(running_at, started_at)) AS making_s,"
            " (SELECT count(*) FROM items i WHERE i.job_id = j.job_id AND i.status = 'done') AS made"
            " FROM jobs j WHERE dataset = ? ORDER BY started_at DESC LIMIT 1", [dataset]).df()
    if frame.empty:
        return None
    row = frame.iloc[0]
    status, message = row.status, None if pd.isna(row.message) else row.message
    process = process_id(row.host, row.pid, row.process_started)
    if status in ACTIVE and not is_alive(process):
        status, message = ended_status(data_dir, dataset, row.job_id, message=message)
    elapsed = max(float(row.elapsed_s), 0.0)
    total = None if pd.isna(row.total) else int(row.total)
    done, failed = int(row.done), int(row.failed)
    making = max(float(row.making_s), 0.0) if pd.notna(row.making_s) else 0.0
    rate = int(row.made) / making if making > 0 else 0.0
    remaining = total - done - failed if total is not None else None
    eta = remaining / rate if status == "running" and rate > 0 and remaining is not None else None
    return JobProgress(row.job_id, dataset, status, done, failed, total, float(row.audio_s or 0.0), elapsed, making,
                       rate, eta, process, message, generation_log(data_dir, dataset))


def ended_status(data_dir, dataset: str, job_id: str, *, message: str | None = None) -> tuple[str, str | None]:
    """How a job marked active whose process is gone ended: ('failed', reason) when it left its reason in the
    dataset's lock file (the catalog was locked then), else ('interrupted', ``message``)."""
    from .dataset_lock import last_holder
    from .jobs import dataset_dir

    holder = last_holder(dataset_dir(data_dir, dataset))
    if holder.get("job_id") == job_id and holder.get("status") == "failed":
        return "failed", holder.get("message")
    return "interrupted", message


def generation_log(data_dir: str | Path, dataset: str) -> str:
    """The end of what the dataset's job processes printed ('' when none was launched from here)."""
    return log_tail(log_path(data_dir, "generate", dataset))


# --- training runs -----------------------------------------------------------------------------------------------

def training_arguments(options) -> list[str]:
    """The ``python -m model train`` arguments that reproduce ``options`` (a ``model.train.TrainOptions``)."""
    from model.train import init_path

    arguments = ["train", "--dataset", *options.datasets, "--run", options.run, "--steps", str(options.steps),
                 "--batch-size", str(options.batch_size), "--lr", repr(options.lr),
                 "--seed", str(options.seed), "--device", options.device, "--eval-every", str(options.eval_every),
                 "--eval-items", str(options.eval_items), "--data-dir", str(Path(options.data_dir).resolve())]
    if options.size:
        arguments += ["--size", options.size]
    if options.init_from:
        arguments += ["--init-from", str(init_path(options.init_from))]
    if options.bin_shift:
        arguments += ["--bin-shift", str(options.bin_shift)]
    recipe = options.onset_loss
    arguments += ["--onset-pos-weight", repr(recipe.pos_weight), "--onset-tail", repr(recipe.tail),
                  "--inside-onset-weight", repr(recipe.inside_weight)]
    if options.threads:
        arguments += ["--threads", str(options.threads)]
    return arguments


def start_training(options) -> Launched:
    """Check ``options`` and the datasets, then launch the run; refuses while a run of that name is running."""
    from model.runs import list_runs
    from model.train import check_options

    check_options(options)
    _check_datasets(options.data_dir, options.datasets)
    runs = list_runs(options.data_dir)
    running = runs[(runs["name"] == options.run) & (runs["status"] == "running")]
    if not running.empty:
        raise Mp3MidiError(f"run {options.run!r} is already running (pid {int(running['pid'].iloc[0])})")
    return launch("model", training_arguments(options), log=log_path(options.data_dir, "train", options.run))


def stop_training(data_dir: str | Path, run: str) -> bool:
    """Ask a running run to stop; it saves its latest state first. False when it is not running."""
    from model.runs import list_runs

    runs = list_runs(data_dir)
    row = runs[(runs["name"] == validate_name(run, what="run")) & (runs["status"] == "running")]
    if row.empty:
        return False
    first = row.iloc[0]
    return stop(process_id(first["host"], first["pid"], first.get("process_started")))


def _check_datasets(data_dir: str | Path, datasets: list[str]) -> None:
    with connect(data_dir, read_only=True) as connection:
        done = dict(connection.execute(
            "SELECT d.name, count(i.item_id) FILTER (i.status = 'done') FROM datasets d"
            " LEFT JOIN items i ON i.dataset = d.name GROUP BY d.name").fetchall())
    for name in datasets:
        if validate_name(name) not in done:
            raise Mp3MidiError(f"no dataset named {name!r}")
        if not done[name]:
            raise Mp3MidiError(f"dataset {name!r} has no finished items to train on yet")
